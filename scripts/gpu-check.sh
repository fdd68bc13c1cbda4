#!/usr/bin/env bash
# The GPU promises of issue 22, checked on a real GPU in one prepared run (<= 8 minutes of device
# time). Two parts:
#
#   scripts/gpu-check.sh prepare      # HERE (no GPU needed, ~10-15 min the first time): builds the
#                                     # CUDA parity test, fq-compress and the training benchmark
#                                     # with --features cuda, the wgpu benchmark, and packs them
#                                     # with the Vulkan loader's .debs into target/gpu-carry/
#   scripts/gpu-check.sh run [--quick]  # ON THE GPU MACHINE: each step under its own timeout,
#                                     # results in $OUT/gpu-results.md (a section to paste into
#                                     # bench/results.md) and the raw JSON/logs beside it
#
# The device call (the `run` tool of this workplace; the machine has no Rust, nvcc 13.0, driver
# 580, PyTorch 2.11 + timm, nothing downloadable):
#   command:   bash scripts/gpu-check.sh run
#   carry:     ["target/gpu-carry"]
#   timeout_s: 480
# Steps and their timeouts (seconds): parity 75, PyTorch 80, candle training 80, wgpu 90, demo 90
# = 415 s at most, plus unpacking; the machine's start comes on top.
#
# Not yet run on a GPU (written and checked on a machine without one: `prepare` fully, `run` up to
# its "no GPU" exit, and its steps with FQ_GPU_CHECK_FORCE=1 against the stub driver).
#
# Exit status of `run`: 0 every step passed, 1 a step failed or timed out, 2 no NVIDIA GPU here.
set -uo pipefail
cd "$(dirname "$0")/.."
carry=target/gpu-carry

prepare() {
  set -e
  eval "$(scripts/cuda-toolchain.sh)"
  local cuda_target=target/cuda
  echo "gpu-check: building the cuda binaries in $cuda_target" >&2
  CARGO_TARGET_DIR=$cuda_target cargo build --release -p fq-compress --features cuda \
    --bin fq-compress --example device_train_bench
  local parity
  parity=$(CARGO_TARGET_DIR=$cuda_target cargo test --release -p fq-compress --features cuda \
    --test cuda_parity --no-run --message-format=json |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "cuda_parity" and m.get("executable"):
        print(m["executable"])')
  [ -n "$parity" ] || { echo "gpu-check: no cuda_parity test binary" >&2; exit 1; }
  echo "gpu-check: building the wgpu benchmark" >&2
  cargo build --release -p fq-e2e --example gpu_roofline
  rm -rf "$carry"
  mkdir -p "$carry/bin" "$carry/debs"
  cp "$cuda_target/release/fq-compress" "$cuda_target/release/examples/device_train_bench" \
    "${CARGO_TARGET_DIR:-target}/release/examples/gpu_roofline" "$carry/bin/"
  cp "$parity" "$carry/bin/cuda_parity"
  strip "$carry"/bin/*
  # The Vulkan loader (and GL dispatch libraries the NVIDIA ICD may load), which the GPU
  # machine's image may lack; unpacked there only when `ldconfig` finds no libvulkan.
  local lists
  lists=$(mktemp -d)
  mkdir -p "$lists/partial"
  local o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
  apt-get "${o[@]}" update -qq >&2
  (cd "$carry/debs" && apt-get "${o[@]}" download -qq libvulkan1 libegl1 libglvnd0 libopengl0 \
    libgl1 libglx0 libgles2 >&2)
  rm -rf "$lists"
  # The binaries carry candle's PTX as text: xz shrinks them several-fold, under the 64 MiB the
  # working tree and the carried paths may take together.
  tar -C "$carry" -cJf "$carry/bin.tar.xz" bin
  rm -rf "$carry/bin"
  du -sh "$carry" "$carry"/* >&2
  echo "gpu-check: ready; carry [\"$carry\"] with: bash scripts/gpu-check.sh run" >&2
}

# ---- the device part ----------------------------------------------------------------------------

out="${OUT:-target/gpu-check-out}"
status_lines=()
failed=0

# step NAME SECONDS LOG COMMAND...: runs COMMAND under a timeout, logs into $out/LOG (appended).
step() {
  local name=$1 secs=$2 log=$3
  shift 3
  local start=$SECONDS rc
  echo "== $name (timeout ${secs}s): $*" >>"$out/$log"
  timeout --kill-after=5 "$secs" "$@" >>"$out/$log" 2>&1
  rc=$?
  local took=$((SECONDS - start)) s
  case $rc in
    0) s="ok (${took} s)" ;;
    124 | 137) s="TIMED OUT after ${secs} s"; failed=1 ;;
    *) s="FAILED, exit $rc (${took} s; see $log)"; failed=1 ;;
  esac
  echo "gpu-check: $name: $s" >&2
  status_lines+=("\"$name\": \"$s\"")
}

write_report() {
  local IFS=,
  echo "{${status_lines[*]}}" >"$out/status.json"
  python3 bench/gpu_check.py report "$out" >"$out/gpu-results.md" ||
    echo "gpu-check: the report failed" >&2
  echo "gpu-check: wrote $out/gpu-results.md" >&2
}

# Adds to LD_LIBRARY_PATH the folders that hold the CUDA libraries the binaries link
# (libcublas.so.13, libcurand.so.10, libcudart.so.13, ...) when the loader does not find them:
# on the GPU machine they come with PyTorch's nvidia wheels, the driver's libcuda.so.1 from
# /usr/local/nvidia.
cuda_libs() {
  local bin=$1 missing dirs=() d py_nv
  missing=$(ldd "$bin" 2>/dev/null | awk '/not found/ {print $1}')
  [ -z "$missing" ] && return 0
  py_nv=$(python3 -c 'import nvidia, os; print(" ".join(list(nvidia.__path__)))' 2>/dev/null || true)
  for lib in $missing; do
    d=$(find $py_nv /usr/local/nvidia /usr/local/cuda /usr/lib/x86_64-linux-gnu -name "$lib" 2>/dev/null | head -1)
    [ -n "$d" ] && dirs+=("$(dirname "$d")")
  done
  for d in $(printf '%s\n' "${dirs[@]}" | sort -u); do
    LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  done
  export LD_LIBRARY_PATH
  missing=$(ldd "$bin" 2>/dev/null | awk '/not found/ {print $1}')
  [ -z "$missing" ] || echo "gpu-check: still missing for $bin: $missing" >&2
}

run() {
  local quick=()
  [ "${1:-}" = "--quick" ] && quick=(--quick)
  mkdir -p "$out"
  rm -f "$out"/*.log "$out"/*.json "$out/gpu-results.md"
  if [ ! -f "$carry/bin.tar.xz" ]; then
    echo "gpu-check: $carry/bin.tar.xz missing: run 'scripts/gpu-check.sh prepare' first and carry $carry" >&2
    exit 1
  fi
  local bin=/tmp/fq-gpu-check/bin
  rm -rf /tmp/fq-gpu-check && mkdir -p /tmp/fq-gpu-check
  tar -C /tmp/fq-gpu-check -xJf "$carry/bin.tar.xz"
  {
    date -u
    nvidia-smi -L 2>&1
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv 2>&1
  } >"$out/steps.log"
  if ! nvidia-smi -L >/dev/null 2>&1 && [ -z "${FQ_GPU_CHECK_FORCE:-}" ]; then
    status_lines+=("\"gpu\": \"no NVIDIA GPU here (nvidia-smi -L failed): nothing measured\"")
    write_report
    echo "gpu-check: no NVIDIA GPU on this machine; nothing to run (FQ_GPU_CHECK_FORCE=1 runs the steps anyway)" >&2
    exit 2
  fi
  cuda_libs "$bin/cuda_parity"
  export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
  chmod 700 "$XDG_RUNTIME_DIR"

  # 1. CPU vs CUDA training parity; a missing GPU fails it.
  FQ_REQUIRE_CUDA=1 step parity 75 parity.log "$bin/cuda_parity" --test-threads=1
  # 2. PyTorch: copy bandwidth, ResNet18-224 training at batch 64, eval latency at batch 1/32.
  step pytorch 80 steps.log python3 bench/gpu_check.py torch "$out/torch.json" "${quick[@]}"
  # 3. candle CUDA training throughput, same model and batch.
  local size=224 batch=64
  [ ${#quick[@]} -gt 0 ] && size=64 batch=8
  step candle-train 80 steps.log "$bin/device_train_bench" --device cuda --size $size \
    --batch $batch --steps 10 --budget 25 --json "$out/candle.json"
  # 4. wgpu on the NVIDIA Vulkan driver: the loader from the carried .debs when the image has none.
  if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1'; then
    for f in "$carry"/debs/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  if [ -f "$icd" ] && [ -z "${VK_DRIVER_FILES:-}" ]; then
    export VK_DRIVER_FILES=$icd
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  fi
  local bw
  bw=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["copy_bytes_per_s"])' \
    "$out/torch.json" 2>/dev/null || echo 4.3e12)
  step wgpu 90 steps.log "$bin/gpu_roofline" --json "$out/wgpu.json" --bandwidth "$bw" "${quick[@]}"
  # 5. The demo on CUDA (synthetic data, short training), last: the longest and least critical.
  local demo=(--num-images 1200 --epochs 3)
  [ ${#quick[@]} -gt 0 ] && demo=(--num-images 300 --epochs 1)
  step demo 90 demo.log "$bin/fq-compress" --quiet --device cuda demo --out /tmp/fq-gpu-check/demo \
    --fresh "${demo[@]}"
  write_report
  exit $failed
}

case "${1:-}" in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 prepare | run [--quick]   (see the top of this file)" >&2; exit 2 ;;
esac
