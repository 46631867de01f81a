#!/bin/bash
# Entrypoint of both images: runs `g2s ARGS... $G2S_ARGS`.
# - Compose exposes the host GPUs listed in G2S_GPUS (device_ids), and CUDA inside the
#   container numbers them 0..n-1: an argument "@gpus" becomes that container-side list and
#   "@gpu" the first of them, so `--gpus @gpus` names exactly the GPUs the container was given.
# - G2S_GPUS=cpu (docker/compose.cpu.yaml) drops every option whose value is @gpus or @gpu:
#   the same commands then run on the CPU.
# - G2S_ARGS: more arguments, appended (split at spaces; a later option wins over the
#   service's own, e.g. --set solver.max_iter_step1=200 or --weights-a none).
# - The folders the containers write (host folders mounted by compose) must be writable by
#   the user compose runs them as (G2S_UID:G2S_GID): one line says so before anything runs.
set -euo pipefail
for d in /opt/g2s/demo_output /opt/g2s/work /opt/g2s/runs; do
  if [[ -d $d && ! -w $d ]]; then
    echo "entrypoint: error: $d is not writable by uid $(id -u) gid $(id -g): create its host folder first" \
         "and set G2S_UID=\$(id -u) G2S_GID=\$(id -g) to its owner (docs/docker.md)" >&2
    exit 2
  fi
done
args=()
for a in "$@"; do
  if [[ $a == "@gpus" || $a == "@gpu" ]]; then
    if [[ ${G2S_GPUS:-} == cpu ]]; then
      unset 'args[-1]'          # the option this value belongs to
      continue
    fi
    IFS=, read -ra ids <<< "${G2S_GPUS:-}"
    if [[ ${#ids[@]} -eq 0 ]]; then
      echo "entrypoint: '$a' needs G2S_GPUS (host GPU ids, e.g. 0 or 0,1; or cpu)" >&2
      exit 2
    fi
    if [[ $a == "@gpu" ]]; then a=0; else a=$(seq -s, 0 $((${#ids[@]} - 1))); fi
  fi
  args+=("$a")
done
read -ra extra <<< "${G2S_ARGS:-}"
exec g2s "${args[@]}" "${extra[@]}"
