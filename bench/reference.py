"""PyTorch and onnxruntime CPU figures on the shapes `tests/examples/bench.rs` measures.

Writes bench/reference.json (best of repeated runs, medians too): f32 matmul GFLOP/s for each GEMM
shape (M x K x N), and ResNet18 (torchvision, random init, 224x224, 1000 classes) batch-1 latency
and batch-8 throughput with PyTorch eager and with onnxruntime (the model exported to ONNX). Same thread count as the Rust
bench (torch.set_num_threads / intra_op_num_threads = the number of CPUs). Run by bench/run.sh.

`reference.py --serve-mm` instead times `torch.mm` shape by shape on request (`serve_mm`): the
Rust bench alternates it with its own GEMM, and its figures replace the file's in the GEMM table.
"""

import json
import os
import sys
import tempfile
import time

import torch
import torchvision

SHAPES = [(64, 147, 12544), (64, 576, 3136), (128, 1152, 784), (256, 2304, 196),
          (512, 4608, 49), (1024, 1024, 1024)]


def best_time(fn, min_reps=5, budget=1.0):
    """Best and median seconds, as the Rust bench measures them."""
    fn()
    times, start = [], time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < budget and len(times) < 200):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[0], times[len(times) // 2]


def record(result, name, batch1, batch8):
    result["resnet18_ms"][name] = batch1[0] * 1e3
    result["resnet18_median_ms"][name] = batch1[1] * 1e3
    result["resnet18_batch8_img_s"][name] = 8 / batch8[0]


def serve_mm():
    """`torch.mm` timed on request, for the Rust bench to interleave with its own GEMM.

    Reads lines `M K N BUDGET` on stdin and answers each with one line, the best GFLOP/s of
    `torch.mm` on that shape within BUDGET seconds. Why: timed minutes apart, the two sides of a
    ratio met different loads on a shared VM (the same `torch.mm` shape measured 224 and 308
    GFLOP/s on two days of the same Xeon); alternated shape by shape, one drift hits both.
    """
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    with torch.no_grad():
        for line in sys.stdin:
            m, k, n, budget = line.split()
            m, k, n = int(m), int(k), int(n)
            a, b = torch.randn(m, k), torch.randn(k, n)
            s, _ = best_time(lambda: torch.mm(a, b), budget=float(budget))
            print(f"{2 * m * k * n / s / 1e9:.3f}", flush=True)


def main():
    if "--serve-mm" in sys.argv:
        return serve_mm()
    out = sys.argv[1] if len(sys.argv) > 1 else "bench/reference.json"
    budget = 0.1 if "--quick" in sys.argv else 1.0
    threads = os.cpu_count()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    result = {"threads": threads, "gemm_gflops": {}, "resnet18_ms": {},
              "resnet18_median_ms": {}, "resnet18_batch8_img_s": {}}
    versions = [f"PyTorch {torch.__version__.split('+')[0]}"]
    if os.environ.get("MKL_ENABLE_INSTRUCTIONS"):
        # bench/run.sh caps MKL and oneDNN when the runtime is capped (FQ_MAX_ISA=avx2).
        versions[0] += f" (MKL and oneDNN capped to {os.environ['MKL_ENABLE_INSTRUCTIONS']})"
    with torch.no_grad():
        for m, k, n in SHAPES:
            a, b = torch.randn(m, k), torch.randn(k, n)
            s, _ = best_time(lambda: torch.mm(a, b), budget=budget)
            result["gemm_gflops"][f"{m}x{k}x{n}"] = 2 * m * k * n / s / 1e9

        model = torchvision.models.resnet18(num_classes=1000).eval()
        x1, x8 = torch.randn(1, 3, 224, 224), torch.randn(8, 3, 224, 224)
        record(result, "torch", best_time(lambda: model(x1), budget=4 * budget),
               best_time(lambda: model(x8), 2, 4 * budget))

    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime not installed: no onnxruntime figures", file=sys.stderr)
    else:
        versions.append(f"onnxruntime {ort.__version__}")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "resnet18.onnx")
            torch.onnx.export(model, (x1,), path, input_names=["x"], output_names=["logits"],
                              dynamic_axes={"x": {0: "n"}}, dynamo=False)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            f1, f8 = {"x": x1.numpy()}, {"x": x8.numpy()}
            ref = model(x1).detach().numpy()
            diff = abs(sess.run(None, f1)[0] - ref).max()
            assert diff < 1e-3, f"onnxruntime differs from torch by {diff}"
            record(result, "onnxruntime", best_time(lambda: sess.run(None, f1), budget=4 * budget),
                   best_time(lambda: sess.run(None, f8), 2, 4 * budget))

    result["versions"] = ", ".join(versions)
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
