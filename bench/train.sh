#!/usr/bin/env bash
# Training-throughput benchmark of the compressor, written into the "Training throughput"
# section of bench/results.md (the other sections are kept):
#   bench/train.sh           # full run (~10 minutes on 2 cores)
#   bench/train.sh --quick   # one or two steps per variant, for a smoke test
#   bench/train.sh --only embedded_64   # one model (embedded_64 or resnet18_224); with --quick too
#
# The PyTorch column comes from bench/train_reference.py, run just before the Rust side with
# the first Python that has torch: $FQ_BENCH_PYTHON, the reference venv
# (${FQ_REF_VENV:-$HOME/.cache/fq-ref-venv}), then python3. Without one, it makes a venv in
# target/bench-venv and installs PyTorch from PyPI (pip install torch); with FQ_BENCH_NO_TORCH=1
# the Rust figures are measured alone.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick+=(--quick) ;;
    --only) quick+=(--only "$2"); shift ;;
    *) echo "usage: $0 [--quick] [--only embedded_64|resnet18_224]" >&2; exit 2 ;;
  esac
  shift
done

python=""
for p in "${FQ_BENCH_PYTHON:-}" "${FQ_REF_VENV:-$HOME/.cache/fq-ref-venv}/bin/python" python3; do
  if [ -n "$p" ] && "$p" -c "import torch" 2>/dev/null; then
    python="$p"
    break
  fi
done
if [ -z "$python" ] && [ -z "${FQ_BENCH_NO_TORCH:-}" ]; then
  echo "bench/train.sh: no Python with torch; installing PyTorch into target/bench-venv" >&2
  python3 -m venv target/bench-venv
  target/bench-venv/bin/pip install --quiet torch
  python=target/bench-venv/bin/python
fi
cargo build --release -p fq-compress --example train_bench
echo "load before the run: $(uptime)" >&2
if [ -n "$python" ]; then
  "$python" -W ignore::DeprecationWarning bench/train_reference.py bench/train_reference.json "${quick[@]}"
else
  rm -f bench/train_reference.json
fi
# With torch, PyTorch's training steps are timed again inside the Rust run, interleaved with
# its own (train_bench --python; the reference run above gives the per-part breakdown).
serve=()
if [ -n "$python" ]; then serve=(--python "$python"); fi
target/release/examples/train_bench --out bench/results.md \
  --reference bench/train_reference.json "${serve[@]}" "${quick[@]}"
echo "load after the run: $(uptime)" >&2
