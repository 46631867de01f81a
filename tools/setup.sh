#!/usr/bin/env bash
# `make setup`: everything the project needs on a fresh Debian 12 machine, idempotent.
#   1. Debian packages (tools/system-packages.txt): installed only if some are missing.
#   2. The venv (.venv) with the pinned requirements (tools/requirements.txt) and the
#      project installed in editable mode; reinstalled only when those files change.
#   3. Caffe from source (tools/caffe/build_caffe.py), cached per machine by key.
#   4. Registry assets (MTCNN weights converted to .caffemodel, demo source photos).
#   5. Debian 12's Slurm + munge for tests/methods/g2s/test_slurm.py, unpacked into the cache, never
#      installed (tools/slurm/fetch_slurm.py says why); a few MB, cached.
# A second run with nothing changed takes seconds.
#
# G2S_SETUP_STEPS: the steps to run, of "packages venv caffe project assets slurm" (default:
# all); the Dockerfiles run the slow ones first so that their layer cache keeps them.
# G2S_SETUP_FOR_TESTS=1 (`make test`): also the Debian packages in tools/test-packages.txt
# (a Docker engine and mmdebstrap for tests/tools/test_docker_lanes.py; `make demo` needs none).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${G2S_VENV:-$ROOT/.venv}
# Debian's own Python runs the build scripts too: a newer python3 first on PATH would hide
# what a fresh Debian 12 (3.11.2) lacks.
PY_SYS=${G2S_SYSTEM_PYTHON:-/usr/bin/python3}
STEPS=" ${G2S_SETUP_STEPS:-packages venv caffe project assets slurm} "
t0=$(date +%s)
log() { printf '[setup] %s\n' "$*"; }
step() { [[ $STEPS == *" $1 "* ]]; }

# ---- 1. Debian packages -----------------------------------------------------------
if step packages; then
  lists=("$ROOT/tools/system-packages.txt")
  [ "${G2S_SETUP_FOR_TESTS:-}" = 1 ] && lists+=("$ROOT/tools/test-packages.txt")
  mapfile -t pkgs < <(cat "${lists[@]}" | grep -v '^\s*#' | sed '/^\s*$/d')
  missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
      echo "[setup] missing Debian packages; run as root:" >&2
      echo "  $cmd" >&2
      exit 1
    fi
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    log "Debian packages: all ${#pkgs[@]} present"
  fi
fi

# ---- 2. venv (the pinned requirements) and the project in it (editable) -------------
if step venv; then
  stamp="$VENV/.g2s-requirements.sha256"
  want=$(sha256sum < "$ROOT/tools/requirements.txt" | cut -d' ' -f1)
  if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "creating/updating venv $VENV"
    [ -x "$VENV/bin/python" ] || "$PY_SYS" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade "pip==24.2" "setuptools==75.1.0" wheel
    "$VENV/bin/python" -m pip install -q -r "$ROOT/tools/requirements.txt"
    echo "$want" > "$stamp"
  else
    log "venv: up to date ($VENV)"
  fi
fi
if step project; then
  stamp="$VENV/.g2s-project.sha256"
  want=$( (cat "$ROOT/pyproject.toml"; echo "$ROOT") | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$ROOT"
    echo "$want" > "$stamp"
  fi
fi

# ---- 3. Caffe -----------------------------------------------------------------------
if step caffe; then
  "$PY_SYS" "$ROOT/tools/caffe/build_caffe.py" --variant cpu --python "$VENV/bin/python" --venv "$VENV" \
    ${G2S_CAFFE_ARGS:-}
fi

# ---- 4. registry assets -------------------------------------------------------------
if step assets; then
  "$VENV/bin/python" -m data_prep.assets
fi

# ---- 5. Slurm kit for the tests (unpacked, not installed: no services, no /etc changes) ----
if step slurm && ! "$PY_SYS" "$ROOT/tools/slurm/fetch_slurm.py"; then
  if [ "${CI:-}" = true ]; then exit 1; fi
  log "warning: no Slurm kit; tests/methods/g2s/test_slurm.py will be skipped (see the error above)"
fi
log "done in $(( $(date +%s) - t0 )) s"
