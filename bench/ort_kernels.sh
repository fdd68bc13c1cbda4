#!/usr/bin/env bash
# Which integer (or f32) kernel onnxruntime's MLAS runs on this CPU (issue 16): times an ONNX
# model with onnxruntime (2 threads) under `perf record`, finds the hottest instruction addresses
# in onnxruntime's shared library (it ships without symbols), disassembles around them and counts
# the SIMD instructions of the hot loop (VNNI `vpdpbusd(s)`, AMX `tdpb*`, AVX2 `vpmaddubsw`, FMA).
#   bench/ort_kernels.sh [MODEL.onnx]   # default: target/bench-compare/resnet18.int8.onnx
# Needs perf (linux-perf / linux-tools) and objdump; the venv of bench/compare.sh (run it first:
# it also writes the default model).
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-target/bench-compare/resnet18.int8.onnx}"
venv="${FQ_REF_VENV:-$HOME/.cache/fq-ref-venv}"
[ -f "$model" ] || { echo "ort_kernels.sh: no $model (run bench/compare.sh first)" >&2; exit 2; }
command -v perf >/dev/null || { echo "ort_kernels.sh: needs perf" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/run.py" <<'PY'
import sys, time
import numpy as np, onnxruntime as ort
o = ort.SessionOptions()
o.intra_op_num_threads = 2
s = ort.InferenceSession(sys.argv[1], o, providers=["CPUExecutionProvider"])
name = s.get_inputs()[0].name
x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
t = time.time()
while time.time() - t < 4:
    s.run(None, {name: x})
PY
so="$("$venv/bin/python" -c 'import onnxruntime, glob, os; print(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "onnxruntime_pybind11_state*.so"))[0])')"
perf record -q -o "$work/perf.data" "$venv/bin/python" "$work/run.py" "$model" >/dev/null 2>&1
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "model: $model"
echo "samples per library:"
perf report -i "$work/perf.data" --no-children --sort dso 2>/dev/null > "$work/dso.txt"
grep -E '^ +[0-9]' "$work/dso.txt" | sed -n 1,4p
# The hottest addresses inside onnxruntime's library (the first may be a spin-wait); the SIMD
# instructions within 128 bytes of each of the five hottest.
perf report -i "$work/perf.data" --no-children --sort dso,symbol 2>/dev/null > "$work/sym.txt"
grep -E '^ +[0-9].*onnxruntime_pybind11_state' "$work/sym.txt" | sed -n 1,5p \
  | awk '{a = ""; for (i = 2; i <= NF; i++) if ($i ~ /^0x/) a = $i; if (a != "") print $1, a}' > "$work/hot.txt" || true
[ -s "$work/hot.txt" ] || { echo "no samples in onnxruntime's library" >&2; exit 1; }
while read -r share addr; do
  start=$(printf '0x%x' $((addr - 128))); stop=$(printf '0x%x' $((addr + 128)))
  echo "around $addr ($share of the samples):"
  objdump -d --no-show-raw-insn --start-address="$start" --stop-address="$stop" "$so" \
    | grep -oE '\s(vpdpbusds?|vpdpwssds?|tdpb[su]{2}d|vpmaddubsw|vpmaddwd|vfmadd[0-9a-z]+|vpbroadcastd|vbroadcastss|pause)\s*[^ ]*' \
    | awk '{n = split($2, r, ","); reg = r[n]; sub(/[0-9]+$/, "", reg); print "   ", $1, reg}' \
    | sort | uniq -c | sort -rn
done < "$work/hot.txt"
