"""PyTorch (timm) and onnxruntime CPU latency of the model zoo at 224x224, 1000 classes, batch 1.

Writes bench/zoo_reference.json: for resnet50, deit_tiny_patch16_224 and tiny_vit_5m_224 (timm, random init,
eval), the best and median seconds of a forward pass with PyTorch eager and, when onnxruntime is installed and
the export works, onnxruntime. Same thread count as the Rust bench. Run by bench/zoo.sh.
"""

import json
import os
import sys
import tempfile

import timm
import torch

from reference import best_time

MODELS = ["resnet50", "deit_tiny_patch16_224", "tiny_vit_5m_224"]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "bench/zoo_reference.json"
    budget = 0.2 if "--quick" in sys.argv else 3.0
    threads = os.cpu_count()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    result = {"threads": threads, "torch": {}, "onnxruntime": {}}
    versions = [f"PyTorch {torch.__version__.split('+')[0]}", f"timm {timm.__version__}"]
    try:
        import onnxruntime as ort
        versions.append(f"onnxruntime {ort.__version__}")
    except ImportError:
        ort = None
    x = torch.randn(1, 3, 224, 224)
    for name in MODELS:
        model = timm.create_model(name, pretrained=False, num_classes=1000).eval()
        with torch.no_grad():
            result["torch"][name] = best_time(lambda: model(x), budget=budget)
            ref = model(x).numpy()
        if ort is None:
            continue
        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, f"{name}.onnx")
                torch.onnx.export(model, (x,), path, input_names=["x"], output_names=["logits"], dynamo=False)
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = threads
                sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
                feed = {"x": x.numpy()}
                diff = abs(sess.run(None, feed)[0] - ref).max()
                assert diff < 1e-3, f"{name}: onnxruntime differs from torch by {diff}"
                result["onnxruntime"][name] = best_time(lambda: sess.run(None, feed), budget=budget)
        except Exception as e:  # noqa: BLE001 — an export failure only drops a column
            print(f"{name}: no onnxruntime figure ({type(e).__name__}: {e})", file=sys.stderr)
    result["versions"] = ", ".join(versions)
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
