#!/usr/bin/env bash
# One benchmark run, side by side (issue 16 item 7): fq-runtime (integer and f32 paths, every
# instruction-set path the CPU offers, via FQ_MAX_ISA), onnxruntime f32 and static int8 (QDQ),
# and PyTorch, on ResNet18, ResNet50, DeiT-Tiny and TinyViT-5M at batch 1 and 8 with 2 threads,
# interleaved in one run. Writes the "Side by side" section of bench/results.md (other sections
# are kept), bench/compare.json and its chart bench/compare.svg. Not part of scripts/test.sh: benchmarks are not CI.
#   bench/compare.sh [--quick] [--rounds N] [--budget SECONDS] [--paired-rounds N] [--paired-block SECONDS]
#     [--paired-threads LIST (default 2,1)]
# Installs what it needs (idempotent): a Python venv ($FQ_REF_VENV, default ~/.cache/fq-ref-venv)
# with torch, timm, onnx, onnxruntime, onnxscript and Pillow, and GNU time (apt, as root);
# builds bench_side and fq-classify.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${FQ_REF_VENV:-$HOME/.cache/fq-ref-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import torch, timm, onnx, onnxruntime, onnxscript, PIL" 2>/dev/null; then
  "$venv/bin/pip" install --quiet torch timm onnx onnxruntime onnxscript pillow
fi
# GNU time measures each child's peak memory (see run_child in compare.py).
if [ ! -x /usr/bin/time ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get install -y -qq time >/dev/null || echo "compare.sh: no GNU time; peak memory from VmHWM" >&2
fi
cargo build --release -p fq-e2e --example bench_side
cargo build --release -p fq-classify
target_dir="${CARGO_TARGET_DIR:-target}"
nice -n 10 "$venv/bin/python" -W ignore bench/compare.py \
  --fq-bin "$target_dir/release/examples/bench_side" \
  --classify-bin "$target_dir/release/fq-classify" "$@"
