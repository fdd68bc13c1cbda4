#!/usr/bin/env bash
# Benchmarks of the packed runtime, written to bench/results.md (the CPU figures, then the wgpu
# backend's on the adapter wgpu picks, e.g. Mesa's lavapipe):
#   bench/run.sh           # full run (a few minutes on 2 cores)
#   bench/run.sh --quick   # short timings, for a smoke test
#   FQ_MAX_ISA=avx2 bench/run.sh   # the AVX2 kernels, against torch.mm capped to AVX2 too
#
# The PyTorch/onnxruntime columns come from bench/reference.py, run with the first Python that
# has torch and torchvision: $FQ_BENCH_PYTHON, the reference venv of tools/reference/generate.sh
# (${FQ_REF_VENV:-$HOME/.cache/fq-ref-venv}), then python3. onnxruntime (pip install onnxruntime
# onnx) is optional. Without any of them the Rust figures are still measured.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=()
case "${1:-}" in
  "") ;;
  --quick) quick=(--quick) ;;
  *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac

python=""
for p in "${FQ_BENCH_PYTHON:-}" "${FQ_REF_VENV:-$HOME/.cache/fq-ref-venv}/bin/python" python3; do
  if [ -n "$p" ] && "$p" -c "import torch, torchvision" 2>/dev/null; then
    python="$p"
    break
  fi
done
# With FQ_MAX_ISA=avx2 the runtime's AVX-512 kernels are off; cap PyTorch's MKL and oneDNN to
# AVX2 as well, so torch.mm is the reference on the same instruction set ("on each ISA").
# Exported: the bench's own torch.mm child (reference.py --serve-mm) inherits the cap.
if [ "${FQ_MAX_ISA:-}" = avx2 ]; then
  export MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2
fi
if [ -n "$python" ]; then
  "$python" -W ignore::DeprecationWarning bench/reference.py bench/reference.json "${quick[@]}"
else
  echo "bench/run.sh: no Python with torch and torchvision; PyTorch/onnxruntime columns stay empty" >&2
  rm -f bench/reference.json
fi
torch_args=()
[ -n "$python" ] && torch_args=(--torch "$python")
cargo run --release -p fq-e2e --example bench -- "${torch_args[@]}" \
  --out bench/results.md --reference bench/reference.json "${quick[@]}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
chmod 700 "$XDG_RUNTIME_DIR"
cargo run --release -p fq-e2e --example bench_gpu -- --out bench/results.md "${quick[@]}"
