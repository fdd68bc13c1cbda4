#!/usr/bin/env python3
"""Bellam & Kim diagnostics (spec §10) on the narrow ResNet18 `resnet18_w8`: an independent PyTorch reference
for `fq-compress diagnose` (compressor/src/analysis/diagnose.rs).

Writes fixtures/diagnostics_ref.safetensors (F32 / I64 tensors, no metadata) and fixtures/diagnostics_ref.json
(the same numbers, readable). Computed on the CPU, single-threaded, from fixtures/resnet18_w8.safetensors.

Inputs (seed 9876, one torch.Generator, in this order): `input` = randn [16,3,32,32], `target` = randint(0, 5,
[16]), `group` = [0]*10 + [1]*6 permuted by randperm(16). The Rust test reads them from the file.

Models: `fp32` = the loaded weights; `u4` = every Conv2d/Linear weight replaced by its spec §1 4-bit per-channel
quantize-dequantize value (s = max(max|w_o|, 1e-8) / 7, q = clamp(round_half_even(w / s), -7, 7), Q = q * s);
biases and batch norm untouched. Both in EVAL mode (batch norm uses the stored running statistics). Diagnosing
the quantized model at its quantized weights is what double backprop through a straight-through estimator gives
(d w_q / d w = I), so the gradient below equals the STE gradient of the quantized model.

Per model and group g (rows with group == g), with z = the logits [n, K]:
  * `logit_var.<m>.g<g>`   = mean over the rows of var(z_i) over the K classes, population variance (ours, §10).
  * `loss.<m>.g<g>`        = mean cross-entropy L_g.
  * `grad_norm.<m>.g<g>`   = ||grad_theta L_g||_2, theta = model.parameters() (every conv/linear weight and bias,
                             every batch-norm weight and bias; not the running statistics), as one vector (f64 sum).
  * `hessian_top.<m>.g<g>` = the largest-magnitude eigenvalue of the Hessian of L_g in theta, by power iteration on
                             exact Hessian-vector products (double backprop, torch.autograd.grad with create_graph)
                             from v_0 ~ N(0, I) (generator seed 7 + g), 300 iterations; the Rayleigh quotient at
                             the end. `hessian_rel_change.<m>.g<g>` is its last relative change (how converged).
  * `grad_dir_curvature.<m>.g<g>` = u^T H u and `grad_dir_hv_norm.<m>.g<g>` = ||H u|| along the unit gradient
                             direction u = grad / ||grad|| (exact HVP): checks a single finite-difference HVP.
  * `logits.<m>` = z for all rows (to compare the forwards first).
"""

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save
from torch import nn

from _common import FIXTURES, seed_everything, write_atomic, write_json
from fairquant_ref import load_model, quant_layers, weights_path

SEED = 9876
N, HW, CLASSES = 16, 32, 5
GROUP_COUNTS = (10, 6)
POWER_ITERS = 300


def u4_copy(model: nn.Module) -> nn.Module:
    m = load_model({k: v.clone() for k, v in model.state_dict().items()})
    with torch.no_grad():
        for _, mod in quant_layers(m):
            w = mod.weight
            rows = w.reshape(w.shape[0], -1)
            s = rows.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 7.0
            q = torch.clamp(torch.round(rows / s), -7.0, 7.0)
            w.copy_((q * s).reshape(w.shape))
    return m


def group_stats(model: nn.Module, x, y, g_rows, gen_seed: int):
    params = [p for p in model.parameters()]
    z = model(x[g_rows])
    var = z.var(dim=1, unbiased=False).mean()
    loss = F.cross_entropy(z, y[g_rows])
    grads = torch.autograd.grad(loss, params, create_graph=True)
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
    # The Hessian along the unit gradient direction u = g / ||g||: u^T H u and ||H u||.
    u = [(g / norm.float()).detach() for g in grads]
    hu = torch.autograd.grad(grads, params, grad_outputs=u, retain_graph=True)
    uhu = float(sum((a.double() * b.double()).sum() for a, b in zip(u, hu)))
    hu_norm = float(torch.sqrt(sum((t.double() ** 2).sum() for t in hu)))
    gen = torch.Generator().manual_seed(gen_seed)
    v = [torch.randn(p.shape, generator=gen) for p in params]
    nv = torch.sqrt(sum((t ** 2).sum() for t in v))
    v = [t / nv for t in v]
    lam, prev = 0.0, None
    for _ in range(POWER_ITERS):
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
        lam = float(sum((a.double() * b.double()).sum() for a, b in zip(v, hv)))
        change = abs(lam - prev) / abs(lam) if prev is not None else float("inf")
        prev = lam
        nh = torch.sqrt(sum((t ** 2).sum() for t in hv))
        v = [t.detach() / nh for t in hv]
    return float(var.detach()), float(loss.detach()), float(norm.detach()), lam, change, uhu, hu_norm


def main():
    seed_everything(SEED)
    gen = torch.Generator().manual_seed(SEED)
    x = torch.randn(N, 3, HW, HW, generator=gen)
    y = torch.randint(0, CLASSES, (N,), generator=gen)
    base = torch.tensor([0] * GROUP_COUNTS[0] + [1] * GROUP_COUNTS[1])
    group = base[torch.randperm(N, generator=gen)]
    fp32 = load_model(load_file(str(weights_path())))
    models = {"fp32": fp32, "u4": u4_copy(fp32)}
    out = {"input": x, "target": y.to(torch.int64), "group": group.to(torch.int64)}
    summary = {"seed": SEED, "power_iters": POWER_ITERS, "groups": list(GROUP_COUNTS), "results": []}
    for name, m in models.items():
        m.eval()
        with torch.no_grad():
            out[f"logits.{name}"] = m(x).contiguous()
        for g in range(len(GROUP_COUNTS)):
            rows = (group == g).nonzero().flatten()
            var, loss, norm, lam, change, uhu, hu_norm = group_stats(m, x, y, rows, 7 + g)
            for key, val in [("logit_var", var), ("loss", loss), ("grad_norm", norm), ("hessian_top", lam),
                             ("hessian_rel_change", change), ("grad_dir_curvature", uhu),
                             ("grad_dir_hv_norm", hu_norm)]:
                out[f"{key}.{name}.g{g}"] = torch.tensor([val], dtype=torch.float64).to(torch.float32)
            summary["results"].append({"model": name, "group": g, "logit_var": var, "loss": loss,
                                       "grad_norm": norm, "hessian_top": lam, "hessian_rel_change": change,
                                       "grad_dir_curvature": uhu, "grad_dir_hv_norm": hu_norm})
    write_atomic(FIXTURES / "diagnostics_ref.safetensors", save({k: v.contiguous() for k, v in out.items()}))
    write_json(FIXTURES / "diagnostics_ref.json", summary)


if __name__ == "__main__":
    main()
