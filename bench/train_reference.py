"""PyTorch training-step throughput on the shapes `compressor/examples/train_bench.rs` measures.

Writes bench/train_reference.json: images/s of one training step (forward, cross-entropy,
backward, AdamW update) at batch 32, f32, channels-first, with fake-quant off and on (U4
per-channel, the spec §1 quantizer with a straight-through estimator), for ResNet18 at 224x224
(1000 classes) and the embedded default (ResNet18 at width 16, 64x64, 9 classes); plus the
per-part breakdown (conv forward, backward-data, backward-weight, batch norm, quantizer) summed
over the model's layers, and max pool. torch.set_num_threads(2), as the Rust side's two rayon threads.
Run by bench/train.sh.

With --serve it times single training steps on request instead (`KEY fp32|u4` lines on stdin,
the seconds on stdout): train_bench interleaves them with its own steps.
"""

import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH = 32
THREADS = 2


def fake_quant(w, bits=4):
    """Spec §1: symmetric per-output-channel, qmax = 2^(b-1) - 1, round half to even,
    forward Q(w), gradient identity (written Q(w) + (w - stopgrad(w)) like the Rust side)."""
    qmax = 2 ** (bits - 1) - 1
    with torch.no_grad():
        amax = w.abs().amax(dim=tuple(range(1, w.dim())), keepdim=True).clamp_min(1e-8)
        s = amax / qmax
        q = torch.clamp(torch.round(w / s), -qmax, qmax) * s
    return q + (w - w.detach())


class QConv(nn.Conv2d):
    quant = False

    def forward(self, x):
        w = fake_quant(self.weight) if self.quant else self.weight
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


class QLinear(nn.Linear):
    quant = False

    def forward(self, x):
        w = fake_quant(self.weight) if self.quant else self.weight
        return F.linear(x, w, self.bias)


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = QConv(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = QConv(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(QConv(cin, cout, 1, stride, 0, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = x if self.downsample is None else self.downsample(x)
        return F.relu(y + s)


class ResNet18(nn.Module):
    """torchvision's resnet18 with a width multiplier, as fq_models::ResNetConfig builds it."""

    def __init__(self, width, num_classes):
        super().__init__()
        self.conv1 = QConv(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        blocks, cin = [], width
        for stage in range(4):
            cout = width << stage
            for i in range(2):
                blocks.append(Block(cin, cout, 2 if stage > 0 and i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = QLinear(cin, num_classes)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.blocks(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def set_quant(model, on):
    for m in model.modules():
        if isinstance(m, (QConv, QLinear)):
            m.quant = on


def best_of(fn, reps):
    fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def step_inputs(model, size, classes):
    """The step's batch, labels and optimizer (seeded as in every run)."""
    torch.manual_seed(1)
    x = torch.randn(BATCH, 3, size, size)
    y = torch.randint(0, classes, (BATCH,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    return x, y, opt


def timed_step(model, x, y, opt, quant):
    """Seconds of one training step, fake-quant on or off."""
    set_quant(model, quant)
    t = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    opt.step()
    return time.perf_counter() - t


def step_throughput(model, size, classes, steps):
    """Round-robin FP32/U4 steps; (best, median) images/s each."""
    x, y, opt = step_inputs(model, size, classes)
    times = {"fp32": [], "u4": []}
    for r in range(steps + 1):
        for key in times:
            secs = timed_step(model, x, y, opt, key == "u4")
            if r > 0:
                times[key].append(secs)
    out = {}
    for key, t in times.items():
        t.sort()
        out[key] = [BATCH / t[0], BATCH / t[len(t) // 2]]
    return out


def breakdown(model, size, reps):
    """Milliseconds per step of each part, summed over the layers, on the model's shapes."""
    shapes = []
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.append((m, i[0].shape)))
             for m in model.modules() if isinstance(m, (QConv, nn.BatchNorm2d, nn.MaxPool2d))]
    model.train()
    with torch.no_grad():
        model(torch.randn(BATCH, 3, size, size))
    for h in hooks:
        h.remove()
    parts = dict.fromkeys(["conv_fwd", "conv_bwd_data", "conv_bwd_weight", "batch_norm",
                           "quantizer", "max_pool"], 0.0)
    conv_bwd = torch.ops.aten.convolution_backward
    for m, shape in shapes:
        x = torch.randn(shape)
        if isinstance(m, QConv):
            w = torch.randn_like(m.weight)
            s, p = list(m.stride), list(m.padding)
            y = F.conv2d(x, w, None, s, p)
            gy = torch.randn_like(y)
            with torch.no_grad():
                parts["conv_fwd"] += best_of(lambda: F.conv2d(x, w, None, s, p), reps)
                for key, mask in [("conv_bwd_data", [True, False, False]),
                                  ("conv_bwd_weight", [False, True, False])]:
                    parts[key] += best_of(lambda: conv_bwd(gy, x, w, None, s, p, [1, 1], False,
                                                           [0, 0], 1, mask), reps)
            parts["quantizer"] += quantizer_time(w, reps)
        elif isinstance(m, nn.MaxPool2d):
            x = x.relu().requires_grad_(True)
            r = torch.randn_like(F.max_pool2d(x, m.kernel_size, m.stride, m.padding))

            def pool():
                (F.max_pool2d(x, m.kernel_size, m.stride, m.padding) * r).sum().backward()

            parts["max_pool"] += best_of(pool, reps)
        else:
            x.requires_grad_(True)
            g = torch.ones(shape[1], requires_grad=True)
            b = torch.zeros(shape[1], requires_grad=True)
            rm, rv = torch.zeros(shape[1]), torch.ones(shape[1])
            r = torch.randn(shape)

            def bn():
                y = F.batch_norm(x, rm, rv, g, b, training=True)
                (y * r).sum().backward()

            parts["batch_norm"] += best_of(bn, reps)
    parts["quantizer"] += quantizer_time(torch.randn_like(model.fc.weight), reps)
    return {k: v * 1e3 for k, v in parts.items()}


def quantizer_time(w, reps):
    w = w.clone().requires_grad_(True)
    r = torch.randn_like(w)

    def run():
        (fake_quant(w) * r).sum().backward()

    return best_of(run, reps)


# key: (width, input size, classes) of the benchmarked models.
MODELS = {"embedded_64": (16, 64, 9), "resnet18_224": (64, 224, 1000)}


def serve():
    """One timed training step per request, so that `train_bench` can interleave PyTorch's
    steps with its own: run one after the other, a shared machine's slow and fast spells
    (minutes long) fell on one side only and moved the ratio by a quarter. Reads lines
    `KEY fp32|u4` on stdin and answers each with the step's seconds, or `error: ...`."""
    torch.set_num_threads(THREADS)
    state = {}
    for line in sys.stdin:
        try:
            key, mode = line.split()
            if mode not in ("fp32", "u4"):
                raise ValueError(f"mode {mode!r}: expected fp32 or u4")
            if key not in state:
                width, size, classes = MODELS[key]
                torch.manual_seed(0)
                model = ResNet18(width, classes).train()
                state = {key: (model, *step_inputs(model, size, classes))}
            secs = timed_step(*state[key], mode == "u4")
            print(secs, flush=True)
        except (KeyError, ValueError) as e:
            print(f"error: {line.strip()!r}: {e}", flush=True)


def main():
    if "--serve" in sys.argv:
        serve()
        return
    out = sys.argv[1] if len(sys.argv) > 1 else "bench/train_reference.json"
    quick = "--quick" in sys.argv
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    try:
        with open(out) as f:
            result = json.load(f)  # keep the other model's figures on an --only run
    except (OSError, ValueError):
        result = {}
    result |= {"threads": THREADS, "versions": f"PyTorch {torch.__version__.split('+')[0]}"}
    for key, steps in [("embedded_64", 2 if quick else 8), ("resnet18_224", 1 if quick else 3)]:
        if only is not None and key != only:
            continue
        width, size, classes = MODELS[key]
        model = ResNet18(width, classes).train()
        print(f"PyTorch: {key}", file=sys.stderr)
        result[key] = {"step_img_s": step_throughput(model, size, classes, steps),
                       "breakdown_ms": breakdown(model, size, 1 if quick else 2)}
    with open(out + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(out + ".tmp", out)  # atomically
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
