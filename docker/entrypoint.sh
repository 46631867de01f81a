#!/bin/bash
# Entrypoint of the CUDA image: runs `g2s ARGS...`.
# Compose exposes the host GPUs listed in G2S_GPUS (device_ids), and CUDA inside the
# container numbers them 0..n-1; an argument "@gpus" becomes that container-side list,
# so `--gpus @gpus` always names exactly the GPUs the container was given.
set -euo pipefail
args=()
for a in "$@"; do
  if [[ $a == "@gpus" ]]; then
    IFS=, read -ra ids <<< "${G2S_GPUS:-}"
    if [[ ${#ids[@]} -eq 0 ]]; then
      echo "entrypoint: '@gpus' needs G2S_GPUS (host GPU ids, e.g. 0 or 0,1)" >&2
      exit 2
    fi
    a=$(seq -s, 0 $((${#ids[@]} - 1)))
  fi
  args+=("$a")
done
exec g2s "${args[@]}"
