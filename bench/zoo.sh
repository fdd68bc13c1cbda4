#!/usr/bin/env bash
# CPU latency of the model zoo (ResNet50, DeiT-Tiny, TinyViT-5M at 224x224) in fq-runtime (packed
# U4 and FP32) and the compressor's candle model, beside PyTorch/timm and onnxruntime on the same
# machine; writes the "Model zoo" section of bench/results.md (other sections are kept).
#   bench/zoo.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
quick=()
[ "${1:-}" = "--quick" ] && quick=(--quick)
python=""
for p in "${FQ_BENCH_PYTHON:-}" "${FQ_REF_VENV:-$HOME/.cache/fq-ref-venv}/bin/python" python3; do
  if [ -n "$p" ] && "$p" -c "import torch, timm" 2>/dev/null; then python="$p"; break; fi
done
if [ -n "$python" ]; then
  (cd bench && "$python" -W ignore zoo_reference.py zoo_reference.json "${quick[@]}")
else
  echo "bench/zoo.sh: no Python with torch and timm; the PyTorch columns stay empty" >&2
  rm -f bench/zoo_reference.json
fi
cargo run --release -p fq-e2e --example bench_zoo -- \
  --out bench/results.md --reference bench/zoo_reference.json "${quick[@]}"
