#!/usr/bin/env bash
# Makes (once) the Python environment the ONNX export test runs the real onnxruntime in, and
# prints its python. Idempotent: a venv whose stamp matches the pinned versions is reused, so a
# second call costs a few milliseconds; the first costs ~15 s of pip install.
# Usage: PY=$(tools/reference/onnx_venv.sh)    (FQ_ONNX_VENV overrides the location)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${FQ_ONNX_VENV:-$root/target/onnx-venv}"
# Pinned so a new onnxruntime cannot change the figures under the test; onnxruntime 1.32
# runs opset 21 (int4 DequantizeLinear), onnx 1.23 checks it.
pins="onnx==1.23.2 onnxruntime==1.32.0 numpy==2.4.6"
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/stamp" 2>/dev/null)" = "$pins" ]; then
  echo "$venv/bin/python"
  exit 0
fi
python3 -m venv --clear "$venv" >&2 || {
  echo "onnx_venv.sh: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2
  exit 1
}
"$venv/bin/python" -m pip install -q --disable-pip-version-check $pins >&2
echo "$pins" >"$venv/stamp"
echo "$venv/bin/python"
