#!/usr/bin/env bash
# The full-size reference check: timm's deit_tiny_patch16_224, tiny_vit_5m_224 and resnet50 (random
# weights, every norm/token/bias randomised, 1000 classes, 224x224) against the Rust forward pass,
# logits within 1e-4 relative. Too big to commit (about 150 MB), so it is generated into a temp dir.
#
#   tools/reference/full_size_check.sh
#
# Uses (and creates if missing) the reference venv of generate.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${FQ_REF_VENV:-$HOME/.cache/fq-ref-venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.fq-ref-requirements.sha256"
want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
  echo "$want" > "$stamp"
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
export PYTHONDONTWRITEBYTECODE=1 PYTHONHASHSEED=0 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
(cd "$HERE" && "$VENV/bin/python" transformer_ref.py --full "$out")
cd "$HERE/../.."
FQ_FULL_REF_DIR="$out" cargo test --release -p fq-compress --test suite reference_transformer::full_size -- --ignored --nocapture --test-threads 1
