#!/usr/bin/env bash
# CUDA for the CUDA image (docker/Dockerfile), on Debian 12 where no CUDA base image can be
# pulled: Debian's own CUDA 11.8 toolkit (non-free: nvcc, cudart, cuBLAS, cuRAND) and cuDNN 8.9
# and NCCL 2.21 for CUDA 11 from NVIDIA's PyPI wheels (sha256-pinned in
# tools/cuda/requirements-cuda11.txt), installed into the project's venv and linked into /usr/local.
#   tools/cuda/install_cuda.sh VENV      then: source /etc/g2s-cuda.env (build_caffe.py's flags)
# Why CUDA 11.8: it still targets Pascal (the paper's GTX 1080 Ti, sm_61) .. Hopper (sm_90) and
# runs on drivers >= 520; CUDA 12.x needs >= 525 and CUDA 13 >= 580 without pre-Turing GPUs.
# On an image that already has a CUDA toolkit (BASE_IMAGE=nvidia/cuda:...-cudnn-devel) it only
# writes /etc/g2s-cuda.env for that toolkit.
set -euo pipefail
VENV=${1:?usage: install_cuda.sh VENV}
HERE=$(cd "$(dirname "$0")" && pwd)
ENV_FILE=/etc/g2s-cuda.env
log() { printf '[cuda] %s\n' "$*"; }

if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then
  log "CUDA toolkit already in the base image: $(PATH=$PATH:/usr/local/cuda/bin nvcc --version | tail -1)"
  echo "export PATH=\$PATH:/usr/local/cuda/bin CAFFE_CUDA_ARGS=" > "$ENV_FILE"
  exit 0
fi
. /etc/os-release
if [ "${VERSION_CODENAME:-}" != bookworm ]; then
  echo "[cuda] error: no CUDA toolkit in the base image and this is not Debian 12 ($PRETTY_NAME)" >&2
  exit 1
fi

# Debian's CUDA packages are in non-free, and what they pull in (the driver's user-space
# libraries and their helpers) in non-free and contrib of the same three suites; the image's own
# sources name main only.
read -r mirror security < <(python3 -c "import sys; sys.path.insert(0, '$HERE/..'); import debian_apt as d; \
print(d.mirror_from_system(), d.security_mirror_from_system())")
cat > /etc/apt/sources.list.d/g2s-non-free.list <<EOF
deb $mirror bookworm contrib non-free
deb $mirror bookworm-updates contrib non-free
deb $security bookworm-security contrib non-free
EOF
# The toolkit depends on the driver's user-space libraries (libcuda1, libnvidia-ml1), which
# must come from the host's driver at run time (the NVIDIA Container Toolkit mounts them):
# their files are not unpacked, as in NVIDIA's own CUDA images.
cat > /etc/dpkg/dpkg.cfg.d/g2s-no-driver <<'EOF'
path-exclude=/usr/lib/x86_64-linux-gnu/nvidia/*
path-exclude=/usr/lib/x86_64-linux-gnu/libcuda.so*
path-exclude=/usr/lib/x86_64-linux-gnu/libnvidia-*
EOF
mapfile -t pkgs < <(grep -v '^\s*#' "$HERE/debian-cuda-packages.txt" | sed '/^\s*$/d')
log "installing ${pkgs[*]} (Debian non-free, about 3 GB unpacked)"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
rm -rf /var/lib/apt/lists/*
# Dangling alternatives of the excluded driver files: the host's driver provides them.
find /usr/lib/x86_64-linux-gnu /etc/alternatives -maxdepth 1 -xtype l \( -name 'libcuda*' -o -name 'libnvidia*' \) -delete

log "cuDNN and NCCL for CUDA 11 (PyPI wheels, sha256-pinned)"
"$VENV/bin/python" -m pip install -q --no-deps --require-hashes -r "$HERE/requirements-cuda11.txt"
site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
# Linked into /usr/local, where Caffe's CMake, the compiler and the loader look by default, as
# NVIDIA's tarballs install them; the wheels ship libfoo.so.N only, the link step wants libfoo.so.
for pkg in cudnn nccl; do
  ln -sf "$site/nvidia/$pkg/include/"*.h /usr/local/include/
  ln -sf "$site/nvidia/$pkg/lib/"lib*.so* /usr/local/lib/
done
ln -sf libcudnn.so.8 /usr/local/lib/libcudnn.so
ln -sf libnccl.so.2 /usr/local/lib/libnccl.so
ldconfig

# For build_caffe.py: nvcc 11.8 accepts g++ <= 11 as its host compiler.
echo 'export CAFFE_CUDA_ARGS="--cmake CUDA_HOST_COMPILER=/usr/bin/g++-11"' > "$ENV_FILE"
log "nvcc: $(nvcc --version | tail -1); cuDNN $(grep -m3 -E 'define CUDNN_(MAJOR|MINOR|PATCHLEVEL) ' /usr/local/include/cudnn_version.h | awk '{print $3}' | paste -sd.); $ENV_FILE written"
