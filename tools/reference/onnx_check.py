"""Checks fq-compress ONNX exports with the real onnx checker and onnxruntime.

Usage: onnx_check.py CASES.json  (run with the venv of tools/reference/onnx_venv.sh)

CASES.json is a list of cases written by tests/tests/onnx_export.rs:
  {"name", "model": path.onnx, "shape": [n, 3, h, w], "input": [n*3*h*w floats],
   "logits": [n*classes floats from fq-runtime's CPU executor], "tol": relative tolerance,
   "metadata": {key: expected JSON value, ...} (optional), "int4": expect int4 weights}
For each case: onnx.checker.check_model (full check, with shape inference); every quantized
weight is an int8/int4 initializer behind a per-channel DequantizeLinear (axis 0, zero points 0)
whose codes fit that channel's bit-width from the `fairquant.bits` metadata; the expected
metadata values; onnxruntime's logits on the CPU vs fq-runtime's: max |diff| / max |reference|
<= tol and the same class (argmax) for every image. Prints one JSON line per case and exits 1
if any case fails.
"""

import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def check_weights(model, bits, expect_int4):
    """Every DequantizeLinear reads integer codes that fit its channels' widths."""
    inits = {t.name: t for t in model.graph.initializer}
    seen = 0
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear":
            continue
        q, scale, zp = (inits[n] for n in node.input)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        assert axis == 0, f"{node.name}: axis {axis}, want 0 (output channels)"
        layer = q.name.rsplit("_", 1)[0].removesuffix(".weight")
        widths = np.array(bits[layer])
        want_type = onnx.TensorProto.INT4 if expect_int4 and widths.max() <= 4 else onnx.TensorProto.INT8
        assert q.data_type == want_type, f"{layer}: weight type {q.data_type}, want {want_type}"
        codes = numpy_helper.to_array(q).astype(np.int32).reshape(q.dims[0], -1)
        assert codes.shape[0] == len(widths) == numpy_helper.to_array(scale).shape[0]
        assert not numpy_helper.to_array(zp).any(), f"{layer}: non-zero zero point"
        qmax = (1 << (widths - 1)) - 1
        over = np.abs(codes).max(axis=1) > qmax
        assert not over.any(), f"{layer}: channel {np.argmax(over)} has codes beyond {widths[np.argmax(over)]} bits"
        seen += 1
    return seen


def run_case(case):
    model = onnx.load(case["model"])
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    for key, want in case.get("metadata", {}).items():
        got = json.loads(meta[key])
        assert got == want, f"metadata {key}: {got!r} != {want!r}"
    bits = json.loads(meta["fairquant.bits"])
    quantized = check_weights(model, bits, case.get("int4", False))

    sess = ort.InferenceSession(case["model"], providers=["CPUExecutionProvider"])
    x = np.asarray(case["input"], dtype=np.float32).reshape(case["shape"])
    (got,) = sess.run(["logits"], {"input": x})
    want = np.asarray(case["logits"], dtype=np.float32).reshape(got.shape)
    max_abs = float(np.abs(got - want).max())
    rel = max_abs / float(np.abs(want).max())
    same = bool((got.argmax(1) == want.argmax(1)).all())
    ok = rel <= case["tol"] and same
    return {
        "name": case["name"],
        "ok": ok,
        "max_abs_diff": max_abs,
        "rel_diff": rel,
        "same_classes": same,
        "images": int(x.shape[0]),
        "quantized_layers": quantized,
        "opset": model.opset_import[0].version,
        "onnxruntime": ort.__version__,
    }


def main():
    cases = json.load(open(sys.argv[1]))
    failed = 0
    for case in cases:
        try:
            r = run_case(case)
        except Exception as e:  # report every case, then fail
            r = {"name": case["name"], "ok": False, "error": f"{type(e).__name__}: {e}"}
        failed += not r["ok"]
        print(json.dumps(r), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
