#!/usr/bin/env bash
# Makes (once) a CUDA 13.0 toolkit from NVIDIA's PyPI wheels so that `--features cuda` builds on a
# machine WITHOUT a GPU or driver (CI, the dev machines), and prints the `export` lines the build
# needs. Why wheels: Debian has no CUDA 13 and CI may download only from package registries; why a
# stub libcuda: candle 0.11.1 links the driver library directly, so every cuda binary needs
# `libcuda.so.1` to link and to start, and a machine without the driver has none.
#
#   eval "$(scripts/cuda-toolchain.sh)"            # build env: CUDA_HOME, PATH (nvcc), CUDA_COMPUTE_CAP...
#   eval "$(scripts/cuda-toolchain.sh --stub-run)" # also LD_LIBRARY_PATH with the stub libcuda, to RUN
#                                                  # cuda binaries here (they then see no GPU)
#
# Never use --stub-run on a machine with a real driver: the stub would hide the GPU.
# Idempotent: a toolkit whose stamp matches the pins is reused (a few ms); the first call costs
# ~20-40 s of pip (~1.2 GB download, ~3 GB on disk). FQ_CUDA_PREFIX overrides the location
# (default: target/cuda-toolchain inside the clone, so CI caches nothing outside it).
# Progress goes to stderr; stdout carries only the export lines.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="${FQ_CUDA_PREFIX:-$root/target/cuda-toolchain}"
stub_run=0
case "${1:-}" in
  "") ;;
  --stub-run) stub_run=1 ;;
  *) echo "usage: $0 [--stub-run]" >&2; exit 2 ;;
esac

# The versions platform.md verified together; cudarc 0.19 accepts toolkits 13.0-13.4, and cccl is
# needed because a candle kernel includes its headers.
pins="nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88 nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35"
home="$prefix/cuda"

if [ "$(cat "$prefix/stamp" 2>/dev/null)" != "$pins" ] || [ ! -x "$home/bin/nvcc" ] ||
  [ ! -e "$home/lib64/stubs/libcuda.so.1" ]; then
  echo "cuda-toolchain.sh: installing the CUDA 13.0 wheels into $prefix (once)" >&2
  command -v gcc >/dev/null || { echo "cuda-toolchain.sh: gcc is needed for the stub libcuda" >&2; exit 1; }
  mkdir -p "$prefix"
  rm -f "$prefix/stamp"
  python3 -m venv --clear "$prefix/venv" >&2 || {
    echo "cuda-toolchain.sh: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2
    exit 1
  }
  # shellcheck disable=SC2086  # $pins is a list of words
  "$prefix/venv/bin/python" -m pip install -q --disable-pip-version-check $pins >&2
  cu13="$("$prefix/venv/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')"

  # CUDA_HOME as nvcc and cudarc's build script expect it: bin/, include/, nvvm/ (nvcc finds cicc
  # and libdevice via ../nvvm) and lib64/ with every library plus the unversioned linker names.
  rm -rf "$home"
  mkdir -p "$home/lib64/stubs"
  for d in bin include nvvm; do ln -sfn "$cu13/$d" "$home/$d"; done
  for f in "$cu13"/lib/*.so* "$cu13"/lib/*.a; do [ -e "$f" ] && ln -sfn "$f" "$home/lib64/"; done
  for l in cudart:13 nvrtc:13 cublas:13 cublasLt:13 curand:10; do
    ln -sfn "lib${l%%:*}.so.${l##*:}" "$home/lib64/lib${l%%:*}.so"
  done

  # Stub libcuda.so (SONAME libcuda.so.1): every driver entry point in cuda.h returns 100
  # (CUDA_ERROR_NO_DEVICE), so a cuda binary links, starts, and reports "no device" cleanly.
  tmp="$(mktemp -d)"
  gcc -E -P -x c "$home/include/cuda.h" -o "$tmp/pp.h"
  {
    grep -oE '\bCUresult[[:space:]]+cu[A-Za-z0-9_]+[[:space:]]*\(' "$tmp/pp.h" |
      sed -E 's/CUresult[[:space:]]+//; s/[[:space:]]*\($//'
    printf '%s\n' cuProfilerInitialize cuProfilerStart cuProfilerStop
  } | grep -vE '^(cuGetErrorName|cuGetErrorString)$' | sort -u >"$tmp/syms.txt"
  {
    echo 'static const char m[] = "CUDA_ERROR_NO_DEVICE (stub libcuda.so.1 from scripts/cuda-toolchain.sh: no NVIDIA driver here)";'
    echo 'int cuGetErrorName(int e, const char **p) { (void)e; if (p) *p = m; return 0; }'
    echo 'int cuGetErrorString(int e, const char **p) { (void)e; if (p) *p = m; return 0; }'
    sed 's/.*/int &(void) { return 100; }/' "$tmp/syms.txt"
  } >"$tmp/stub.c"
  gcc -shared -fPIC -O1 -Wl,-soname,libcuda.so.1 -o "$home/lib64/stubs/libcuda.so" "$tmp/stub.c"
  ln -sfn libcuda.so "$home/lib64/stubs/libcuda.so.1"
  rm -rf "$tmp"
  "$home/bin/nvcc" --version | tail -1 >&2
  echo "$pins" >"$prefix/stamp"
fi

# The build env. cudarc runs a bare `nvcc --version` (PATH only); candle-kernels' cudaforge builds
# for CUDA_COMPUTE_CAP (90 -> sm_90a, the H100/H200 the device machine has); CUDARC_CUDA_VERSION
# pins the toolkit version cudarc binds to, so a newer toolkit on PATH cannot panic its build.
cat <<ENV
export CUDA_HOME='$home'
export CUDA_PATH='$home'
export PATH='$home/bin':"\$PATH"
export CUDA_COMPUTE_CAP="\${CUDA_COMPUTE_CAP:-90}"
export CUDARC_CUDA_VERSION=13000
export CUDAFORGE_THREADS="\${CUDAFORGE_THREADS:-$(nproc)}"
ENV
if [ "$stub_run" = 1 ]; then
  echo "export LD_LIBRARY_PATH='$home/lib64:$home/lib64/stubs'\"\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""
fi
