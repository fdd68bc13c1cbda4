#!/usr/bin/env python3
"""FairQuant stages (spec §1-§4) on the narrow ResNet18 `resnet18_w8`: an independent PyTorch reference.

Writes fixtures/fairquant_ref.safetensors (all float tensors F32, all integer tensors I64, no metadata) and
fixtures/fairquant_ref.json (a readable summary: layer names, thresholds, histograms, losses, diagnostic
counts). The key list is in README.md ("fairquant_ref"). Everything is computed on the CPU, single-threaded, from
fixtures/resnet18_w8.safetensors (written by resnet_ref.py, which generate.sh runs first).

Conventions a Rust port must follow to reproduce these numbers
==============================================================

Layers and concatenation
  * The quantized layers are `[m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]`, in module
    registration order (= torchvision's order: conv1, layer1.0.conv1, layer1.0.conv2, layer1.1.conv1, ...,
    layer2.0.conv1, layer2.0.conv2, layer2.0.downsample.0, ..., fc). Names in the JSON `layer_names`, out-channel
    counts in `layer_channels` (21 layers, N = 605 scopes for resnet18_w8).
  * Every "concat [N]" tensor is the per-output-channel vectors of those layers concatenated in that order.
  * Only the `.weight` of those layers takes part (no biases, no BN parameters).

Inputs (seed 4321, one torch.Generator, in this order): `input` = randn [12,3,32,32] (see "Input size" below),
  `target` = randint(0, 5, [12]), `group` = [0]*8 + [1]*4 permuted by randperm(12), then (stage 5) the theta noise
  randn [N]. The Rust side reads them from the file; it never has to regenerate them.

Stage 1, importance (spec §2, "grape"): a copy of the loaded model in TRAIN mode; ONE forward on the whole batch
  (BN normalises with batch statistics and updates its running stats once, momentum 0.1, unbiased variance; this
  is the only forward, so `bn_after.*` are the stats after exactly one update). Then for g in sorted(unique(group))
  (= 0, 1): zero all grads; L_g = cross_entropy(logits[group == g], target[group == g]) (mean); backward through
  the same graph; I_g = (grad_W * W)^2 elementwise (float32: t = grad * w; t * t) for every layer weight W.
  `imp.gG.<layer>.weight` are these full maps.

Stage 2, reducers (spec §2.1) elementwise across the groups, then per-channel aggregation (§2.2, code order):
  * balanced: T_g = sum over layers (in order) of sum(I_g^l) (float32; torch's sum inside a tensor, then a
    left-to-right sum over the layers), total = T_0 + T_1, pi_g = T_g / total,
    Ihat = max_g (I_g / max(pi_g, 1e-8)). The last-bit value of T_g depends on the summation order, so compare
    the balanced scores with a relative tolerance (~1e-5), not bit-exactly. T_g and pi_g are in the JSON.
  * max: max_g I_g.  mean: (I_0 + I_1) / 2.  cvar (alpha = 0.1): mean of the top ceil((1 - alpha) * |G|) values
    per element; with |G| = 2 that is ceil(1.8) = 2, i.e. cvar == mean here (checked).
  * subtractive (FairQuantize): I_0 - 1.0 * I_1 (signed), then |.| in the aggregation.
  * per-channel score: S_o = mean over all non-output axes of |Ihat| (axes 1,2,3 for conv, 1 for linear).
    per-tensor score (`score.balanced_per_tensor`, one per layer): mean over the whole tensor of |Ihat|.

Stage 3, allocation (spec §3):
  * cumulative levels c_k = float32(sum of the first k proportions, summed left to right in float64), k < K, as the
    official `_quantile_thresholds` (proportions are renormalised only if |sum - 1| > 1e-5).
    {0.2,0.4,0.4} -> c = [0.2, 0.6] (f32); uniform 1/7 -> c = f32(k/7 partial sums); {0.4,0.4,0.2} -> [0.4, 0.8].
  * thresholds t_k = torch.quantile(s, c_k) (linear). Bit-exact recipe of torch 2.15 (checked in this script):
      x = sort(s) ascending; pos = (c_k as f64) * (N - 1) in FLOAT64; lo = floor(pos); hi = ceil(pos);
      w = (pos - lo) as f32; d = x[hi] - x[lo] (f32);
      if w < 0.5: t = fma(w, d, x[lo])  else: t = fma(w - 1, d, x[hi])   (one f32 rounding: f32::mul_add)
    The spec's plain `x[lo] + w*(x[hi]-x[lo])` in f32 can be 1 ulp off; whether it matches is recorded in the
    JSON (`quantile_plain_formula_matches`).
  * tiering: b_i = b_k for the smallest k with s_i <= t_k (ties go to the lower tier), else b_K.
    FairQuantize pairs the REVERSED proportions {0.4,0.4,0.2} with the sorted bits {2,4,8} and tiers
    score.subtractive.

Stage 4, fixed-bit fake quant (spec §1): a FRESH copy of the loaded weights (not the BN-updated calibration copy),
  EVAL mode (BN uses the stored running stats), every layer weight replaced by Q(W) with the per-channel bits
  `bits.qat`: qmax = 2^(b-1) - 1, s = max(max_o |w|, 1e-8) / qmax, q = clamp(round_half_even(w / s), -qmax, qmax),
  Q = q * s (float32, true division w / s). Biases untouched. -> `logits.qat_eval`.

Stage 5, BAQ (spec §4, b_min = 2, b_max = 8, per-channel scopes):
  * warm start (§4.3): b0 = clamp(bits.baq, 2, 8) as f32; u = (b0 - 2) / 6 (f32); u = clamp(u, -0.95, 0.95);
    theta = atanh(u) (f32 atanh; 1 ulp differences between libms are possible: compare theta with ~1e-6).
    -> `theta.warm`. phi = -6.0 for every scope.
  * `theta.test` = theta.warm + 0.3 * randn(N) (f32; stored, so the Rust side just loads it).
  * continuous proxy (official operand order): btil = tanh(|theta|) * (b_max - b_min) + b_min -> `btil.test`;
    b = round_STE(btil) = btil + stopgrad(round_half_even(btil) - btil); its forward value is exactly the integer
    round_half_even(btil) -> `b.test` (I64).
  * BAQ weight for one layer with FP32 master W (per output channel o, all values broadcast per channel):
        A   = max_j |w_oj|                          DETACHED (no gradient into W through A), no eps
        d   = (1 - tanh(|phi|)) * A
        M   = 2^(b - 1) - 1                         differentiable in b: dM/db = 2^(b-1) * ln 2 (torch.pow(2, b))
        Dlt = (A - d/2) / clamp_min(M, 1)           scalar-bound clamp_min (see the tie rules below)
        c   = (|w| - d/2) / clamp_min(Dlt, 1e-8)    d|w|/dw = sign(w) (0 at w = 0)
        q   = round_STE(clamp(c, 0, M))             clamp with TENSOR bounds (zeros_like(c), M broadcast);
                                                    round_STE is the identity backward
        What = sign(w) * (q * Dlt + d/2), and What = 0 where |w| < d/2 (dead zone; no gradient there at all)
    Gradient rules at the clamp boundaries, as torch 2.15 does them (they matter: see the counts in the JSON):
      - clamp with a SCALAR bound (clamp_min(M, 1), clamp_min(Dlt, 1e-8)) passes the gradient only strictly
        inside: x > bound. So for b = 2 (M == 1 exactly) NO gradient reaches M through Dlt.
      - clamp with TENSOR bounds splits ties evenly: 0 < c < M: all to c; c == M: 1/2 to c and 1/2 to M;
        c > M: all to M; c == 0: 1/2 to c, 1/2 to the (constant) zero bound; c < 0 cannot happen outside the
        dead zone. c == M exactly is common: it is the channel's max-|w| element, whenever
        fl((A - d/2) / fl((A - d/2) / M)) == M. (candle's maximum/minimum backward also split ties 1/2-1/2; its
        scalar clamp is maximum/minimum against a constant, so at M == 1 it would pass 1/2, not 0, to M.)
    With these rules the chain rule, written out by hand in float64 (check_baq_grad_formula), equals autograd to
    ~1e-15 for theta, phi and W:
      dWhat/dDlt = s*(q - dq/dc*c),  dWhat/dM|direct = s*Dlt*dq/dM,  dDlt/dM = -Dlt/M * [M > 1],
      dM/db = (M + 1) ln 2,  db/dtheta = 6 (1 - tanh^2|theta|) sign(theta),
      dWhat/dd = s*(q*dDlt/dd + Dlt*dq/dc*dc/dd + 1/2),  dDlt/dd = -1/(2 max(M,1)),
      dc/dd = -1/(2 Dlt) - (c/Dlt) dDlt/dd,  dd/dphi = -(1 - tanh^2|phi|) sign(phi) A,
      dWhat/dw = dq/dc (live weights; s*s*Dlt/Dlt), all multiplied by [|w| >= d/2].
    paper mode (project default, spec §11.1): W_used = What (gradients reach theta, phi and W through What).
    official-code mode: W_used = W + stopgrad(What - W) (W gets the identity STE; theta/phi get no task/fair grad).
    d/2 is computed as d / 2 (exact). The official code clamps with a Python scalar `M[i].item()`, so there the
    clamp bound carries no gradient; here (as the brief asks) it is a tensor: this matters only for weights with
    c > M, whose count is recorded in the JSON (`baq.paper.elements_c_gt_M`, ties in `elements_c_eq_M`).
  * `what.<layer>.weight` = What under theta.test / phi = -6 (forward values).
  * losses on a FRESH copy of the loaded model in TRAIN mode, every layer weight = W_used:
        L_task = CE(logits, target) (mean); L_g = CE over group g (mean); L_fair = max_g L_g - min_g L_g
        (groups present, sorted); L_bit_anchor = mean over all N scopes of (theta - theta.warm)^2;
        L_bit_shrink = mean over all N scopes of theta^2 (stored only, not in the total);
        total = (L_task + 0.5 * L_fair) + 1e-2 * L_bit_anchor (this summation order).
    One backward of `total`; `baq.grad_theta` / `baq.grad_phi` are d total / d theta, phi (concat [N]) and
    `baq.grad_conv1_weight` is d total / d conv1's FP32 master weight. theta.warm is a constant (no gradient).
  * official mode, same input/loss: `baq_official.grad_theta` = 1e-2 * 2 * (theta - theta.warm) / N exactly
    as autograd computes it (only the regularizer reaches theta); its phi gradient is exactly 0.
    `baq_official.logits_train` is the official forward. It is NOT bit-identical to `baq.logits_train`:
    W + (What - W) rounds differently from What wherever q = 0 outside the dead zone (What = +-d/2 is tiny
    next to W, so What - W is inexact); ~50k such weights here (most b = 2 channels), logits differ by ~2e-6
    (counts and the max difference in the JSON). A bit-faithful port computes w + (what - w) in f32 in that
    mode; otherwise compare with ~1e-5 relative.

Input size
  The brief asked for a [12,3,64,64] input and a fixture < 400 KB; the input alone would be 576 KiB at 64x64, so
  the spatial size is 32x32 (INPUT_HW). The ResNet is fully convolutional (global average pool), so the graph
  built for 64x64 runs it unchanged; layer4 then sees 1x1 pixels (train-mode BN over the 12 samples).

Tolerances (CPU f32 kernels differ in summation order): elementwise formulas (theta, btil, b, What, M, the bits)
  are exact or 1-ulp; logits ~1e-4 relative; the importance maps and the gradients that pass through every
  train-mode BN ~1e-3 relative (as in resnet18_w8_io); the thresholds are exact given the same scores.
"""

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save
from timm.models.resnet import BasicBlock
from torch import nn
from torch.func import functional_call

from _common import FIXTURES, seed_everything, write_atomic, write_json
from quantizer import quantize as quantize_s1
from resnet_ref import MODELS, NUM_CLASSES, build

SEED = 4321
NAME = "resnet18_w8"
BATCH = 12
INPUT_HW = 32  # see "Input size" in the docstring
GROUP_COUNTS = (8, 4)  # group 0, group 1
B_MIN, B_MAX = 2, 8
PHI_INIT = -6.0
THETA_NOISE = 0.3
LAMBDA_FAIR = 0.5
LAMBDA_B = 1e-2
CVAR_ALPHA = 0.1
BETA = 1.0
MAX_BYTES = 400_000

QAT_BITS, QAT_LEVELS = [2, 4, 8], [0.2, 0.4, 0.4]
BAQ_BITS = [2, 3, 4, 5, 6, 7, 8]
BAQ_LEVELS = [1.0 / len(BAQ_BITS)] * len(BAQ_BITS)  # official: proportions not passed -> uniform
FQZ_BITS, FQZ_LEVELS = [2, 4, 8], [0.4, 0.4, 0.2]  # FairQuantize: {0.2,0.4,0.4} reversed

WHAT_LAYERS = ["conv1", "layer3.0.conv1"]
BN_AFTER = [("bn1", "running_mean"), ("bn1", "running_var"), ("layer4.1.bn2", "running_var")]


# ----------------------------------------------------------------------------------------------------------- model

def weights_path() -> Path:
    p = FIXTURES / f"{NAME}.safetensors"
    if not p.exists():  # FQ_REF_OUT points elsewhere and resnet_ref.py has not run there
        p = Path(__file__).resolve().parent / "fixtures" / f"{NAME}.safetensors"
    return p


def load_model(sd: dict) -> nn.Module:
    block, layers, channels, stem_width = MODELS[NAME]
    assert block is BasicBlock
    m = build(block, layers, channels, stem_width)
    m.load_state_dict(sd, strict=True)
    return m


def quant_layers(model: nn.Module):
    """(name, module) of every Conv2d/Linear in registration order (the order `model.modules()` yields)."""
    named = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [m for _, m in named] == [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return named


def channel_axes(t: torch.Tensor):
    return tuple(range(1, t.dim()))


def cview(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape((-1,) + (1,) * (like.dim() - 1))


# ---------------------------------------------------------------------------------------------- stage 1: importance

def importance(model: nn.Module, x, target, group):
    """Spec §2 (grape), one calibration batch. Returns ({g: [I_g^l per layer]}, sorted groups)."""
    model.train()
    layers = quant_layers(model)
    logits = model(x)
    groups = sorted(torch.unique(group).tolist())
    imp = {}
    for g in groups:
        mask = group == g
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(logits[mask], target[mask])
        loss.backward(retain_graph=True)
        imp[g] = [(m.weight.grad.detach() * m.weight.detach()).pow(2) for _, m in layers]
    model.zero_grad(set_to_none=True)
    return imp, groups


# ------------------------------------------------------------------------------------------------ stage 2: reducers

def reduce_balanced(imp: dict, groups: list):
    totals = []
    for g in groups:
        t = 0
        for a in imp[g]:
            t = t + a.sum()
        totals.append(t)
    total_all = 0
    for t in totals:
        total_all = total_all + t
    if float(total_all) == 0.0:
        shares = torch.full((len(groups),), 1.0 / len(groups), dtype=torch.float32)
    else:
        shares = torch.stack([t / total_all for t in totals])
    out = []
    for li in range(len(imp[groups[0]])):
        stack = torch.stack([imp[g][li] for g in groups])
        sh = shares.clamp(min=1e-8).reshape((-1,) + (1,) * (stack.dim() - 1))
        out.append((stack / sh).max(dim=0).values)
    return out, totals, shares


def reduce_simple(imp: dict, groups: list, how: str):
    out = []
    for li in range(len(imp[groups[0]])):
        stack = torch.stack([imp[g][li] for g in groups])
        if how == "max":
            out.append(stack.max(dim=0).values)
        elif how == "mean":
            out.append(stack.mean(dim=0))
        elif how == "cvar":
            k = max(1, int(math.ceil((1.0 - CVAR_ALPHA) * len(groups))))
            top, _ = torch.topk(stack.reshape(len(groups), -1), k=k, dim=0)
            out.append(top.mean(dim=0).reshape(stack.shape[1:]))
        else:
            raise ValueError(how)
    return out


def reduce_subtractive(imp: dict, groups: list):
    assert groups == [0, 1]
    return [a - BETA * b for a, b in zip(imp[0], imp[1])]


def scores_per_channel(reduced: list) -> torch.Tensor:
    return torch.cat([r.abs().mean(dim=channel_axes(r)) for r in reduced])


def scores_per_tensor(reduced: list) -> torch.Tensor:
    return torch.stack([r.abs().mean() for r in reduced])


# ---------------------------------------------------------------------------------------------- stage 3: allocation

def cumulative_levels(levels: list) -> torch.Tensor:
    if abs(sum(levels) - 1.0) > 1e-5:
        total = sum(levels)
        levels = [v / total for v in levels]
    cum = [sum(levels[: i + 1]) for i in range(len(levels) - 1)]
    return torch.tensor(cum, dtype=torch.float32)


def quantile_fma(s: torch.Tensor, c: torch.Tensor) -> np.ndarray:
    """The documented bit-exact recipe of torch.quantile(..., 'linear') (f64 position, f32 fused lerp)."""
    x = np.sort(s.numpy())
    out = []
    for ck in c.numpy():
        pos = np.float64(ck) * (len(x) - 1)
        lo, hi = int(math.floor(pos)), int(math.ceil(pos))
        w = np.float32(pos - lo)
        d = np.float32(x[hi] - x[lo])
        coeff, base = (w, x[lo]) if w < 0.5 else (np.float32(w - np.float32(1)), x[hi])
        # fma in f32: the product of two f32 is exact in f64; one rounding of the sum (checked equal to torch below)
        out.append(np.float32(np.float64(coeff) * np.float64(d) + np.float64(base)))
    return np.array(out, dtype=np.float32)


def quantile_plain(s: torch.Tensor, c: torch.Tensor) -> np.ndarray:
    """The spec's formula evaluated naively in f32 (for the record only)."""
    x = np.sort(s.numpy())
    out = []
    for ck in c.numpy():
        pos = np.float32(ck) * np.float32(len(x) - 1)
        lo, hi = int(math.floor(pos)), int(math.ceil(pos))
        w = np.float32(pos - np.float32(lo))
        out.append(np.float32(x[lo] + np.float32(w * np.float32(x[hi] - x[lo]))))
    return np.array(out, dtype=np.float32)


def allocate(s: torch.Tensor, bits: list, levels: list):
    bits_sorted = sorted(bits)
    assert len(bits_sorted) == len(levels)
    c = cumulative_levels(levels)
    thr = torch.quantile(s, c)
    exact = quantile_fma(s, c)
    assert np.array_equal(thr.numpy(), exact), (thr, exact)
    plain_ok = bool(np.array_equal(thr.numpy(), quantile_plain(s, c)))
    out = torch.full(s.shape, bits_sorted[-1], dtype=torch.int64)
    for j in reversed(range(len(thr))):  # the smallest j with s <= t_j wins
        out[s <= thr[j]] = bits_sorted[j]
    # the same tiering written as the official per-element loop
    for i in range(0, len(s), 37):
        want = bits_sorted[-1]
        for j, t in enumerate(thr.tolist()):
            if float(s[i]) <= t:
                want = bits_sorted[j]
                break
        assert int(out[i]) == want
    assert torch.equal(out, torch.tensor(bits_sorted)[torch.bucketize(s, thr, right=False)])
    return c, thr, out, plain_ok


# ------------------------------------------------------------------------------------------- stage 4: fixed-bit QAT

def fake_quant_s1(w: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    rows = w.reshape(w.shape[0], -1)
    qmax = (2.0 ** (bits.reshape(-1, 1) - 1) - 1).to(torch.float32)
    assert bool((bits >= 2).all())
    s = rows.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / qmax
    q = torch.clamp(torch.round(rows / s), -qmax, qmax)
    return (q * s).reshape(w.shape)


# ------------------------------------------------------------------------------------------------------ stage 5: BAQ

def round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def warm_theta(bits: torch.Tensor) -> torch.Tensor:
    b0 = torch.clamp(bits.to(torch.float32), B_MIN, B_MAX)
    u = (b0 - B_MIN) / (B_MAX - B_MIN)
    u = torch.clamp(u, min=-0.95, max=0.95)
    return torch.atanh(u)


def btil_of(theta: torch.Tensor) -> torch.Tensor:
    return torch.tanh(torch.abs(theta)) * (B_MAX - B_MIN) + B_MIN


def baq_weight(w: torch.Tensor, theta: torch.Tensor, phi: torch.Tensor, official: bool, stats: dict = None):
    """Spec §4.2 for one layer; theta, phi: [O]. Returns W_used (paper: What; official: W + stopgrad(What - W))."""
    th, ph = cview(theta, w), cview(phi, w)
    b = round_ste(btil_of(th))
    a = w.detach().abs().amax(dim=channel_axes(w), keepdim=True)
    d = (1.0 - torch.tanh(torch.abs(ph))) * a
    m = torch.pow(2.0, b - 1) - 1
    delta = (a - d / 2) / torch.clamp_min(m, 1.0)
    w_abs = w.abs()
    dead = w_abs < d / 2
    c = (w_abs - d / 2) / torch.clamp_min(delta, 1e-8)
    q = round_ste(torch.clamp(c, torch.zeros_like(c), m.expand_as(c)))
    what_abs = torch.where(dead, torch.zeros_like(c), q * delta + d / 2)
    what = what_abs * torch.sign(w)
    if stats is not None:
        live = ~dead
        stats["channels_M_eq_1"] = stats.get("channels_M_eq_1", 0) + int((m == 1).sum())
        stats["elements_c_eq_M"] = stats.get("elements_c_eq_M", 0) + int(((c == m) & live).sum())
        stats["elements_c_gt_M"] = stats.get("elements_c_gt_M", 0) + int(((c > m) & live).sum())
        stats["elements_c_eq_0"] = stats.get("elements_c_eq_0", 0) + int(((c == 0) & live).sum())
        stats["dead_zone_elements"] = stats.get("dead_zone_elements", 0) + int(dead.sum())
        stats["q_zero_live_elements"] = stats.get("q_zero_live_elements", 0) + int(((q == 0) & live).sum())
    if official:
        return w + (what - w).detach()
    return what


def check_baq_grad_formula(w32: torch.Tensor, theta32: torch.Tensor, phi32: torch.Tensor, seed: int) -> int:
    """Autograd through baq_weight == the chain rule written out in the docstring (float64, random upstream
    gradient from its own generator). Returns the number of c == M ties it covered."""
    gen = torch.Generator().manual_seed(seed)
    w = w32.detach().double().clone().requires_grad_(True)
    theta = theta32.detach().double().clone().requires_grad_(True)
    phi = phi32.detach().double().clone().requires_grad_(True)
    up = torch.randn(w.shape, generator=gen, dtype=torch.float64)
    (up * baq_weight(w, theta, phi, official=False)).sum().backward()
    with torch.no_grad():
        t, tp = torch.tanh(cview(theta, w).abs()), torch.tanh(cview(phi, w).abs())
        b = torch.round(t * (B_MAX - B_MIN) + B_MIN)
        a = w.abs().amax(dim=channel_axes(w), keepdim=True)
        d = (1 - tp) * a
        m = 2 ** (b - 1) - 1
        mp = m.clamp(min=1)
        dlt = (a - d / 2) / mp
        c = (w.abs() - d / 2) / dlt
        live = (w.abs() >= d / 2).double()
        dq_dc = ((c > 0) & (c < m)).double() + 0.5 * ((c == m) | (c == 0)).double()
        dq_dm = (c > m).double() + 0.5 * (c == m).double()
        q = torch.round(torch.minimum(c.clamp(min=0), m))
        sg = torch.sign(w)
        ax = channel_axes(w)
        dw_ddlt = sg * (q - dq_dc * c)
        g_m = (up * live * (dw_ddlt * (-dlt / mp) * (m > 1).double() + sg * dlt * dq_dm)).sum(dim=ax)
        g_theta = g_m * (m.flatten() + 1) * math.log(2) * (B_MAX - B_MIN) * (1 - t.flatten() ** 2) * torch.sign(theta)
        ddlt_dd = -0.5 / mp
        dc_dd = -0.5 / dlt - c / dlt * ddlt_dd
        g_d = (up * live * sg * (q * ddlt_dd + dlt * dq_dc * dc_dd + 0.5)).sum(dim=ax)
        g_phi = g_d * (-(1 - tp.flatten() ** 2) * torch.sign(phi) * a.flatten())
        g_w = up * live * dq_dc
    for name, mine, auto in (("theta", g_theta, theta.grad), ("phi", g_phi, phi.grad), ("w", g_w, w.grad)):
        err = float((mine - auto).abs().max() / auto.abs().max())
        assert err < 1e-12, (name, err)
    return int(((c == m) & (live > 0)).sum())


def baq_forward(model: nn.Module, layers, theta, phi, x, official: bool, stats: dict = None):
    """Train-mode forward with every layer weight replaced by its W_used. theta/phi: leaf [N]."""
    sizes = [m.weight.shape[0] for _, m in layers]
    th, ph = torch.split(theta, sizes), torch.split(phi, sizes)
    over = {f"{n}.weight": baq_weight(m.weight, th[i], ph[i], official, stats) for i, (n, m) in enumerate(layers)}
    return functional_call(model, over, (x,)), over


def baq_losses(logits, target, group, theta, theta_warm):
    l_task = F.cross_entropy(logits, target)
    gl = [F.cross_entropy(logits[group == g], target[group == g]) for g in sorted(torch.unique(group).tolist())]
    gl = torch.stack(gl)
    l_fair = gl.max() - gl.min() if len(gl) >= 2 else torch.zeros(())
    anchor = (theta - theta_warm).pow(2).mean()
    shrink = theta.detach().pow(2).mean()
    total = l_task + LAMBDA_FAIR * l_fair
    total = total + LAMBDA_B * anchor
    return l_task, l_fair, anchor, shrink, total, gl


# ------------------------------------------------------------------------------------------------------------- main

def f32(x) -> float:
    """A float32 scalar as the exact double (round-trips to the same f32 bits)."""
    return float(np.float32(x.item() if hasattr(x, "item") else x))


def main():
    seed_everything(SEED)
    gen = torch.Generator().manual_seed(SEED)
    sd = load_file(str(weights_path()))

    x = torch.randn([BATCH, 3, INPUT_HW, INPUT_HW], generator=gen, dtype=torch.float32)
    target = torch.randint(0, NUM_CLASSES, (BATCH,), generator=gen, dtype=torch.int64)
    base_groups = torch.tensor([0] * GROUP_COUNTS[0] + [1] * GROUP_COUNTS[1], dtype=torch.int64)
    group = base_groups[torch.randperm(BATCH, generator=gen)]
    assert sum(GROUP_COUNTS) == BATCH

    out = {"input": x, "target": target, "group": group}
    summary = {"model": NAME, "seed": SEED, "input_shape": list(x.shape), "group_counts": list(GROUP_COUNTS),
               "target": target.tolist(), "group": group.tolist()}

    ref = load_model(sd)
    layers = quant_layers(ref)
    names = [n for n, _ in layers]
    chans = [m.weight.shape[0] for _, m in layers]
    n_scopes = sum(chans)
    out["layer_channels"] = torch.tensor(chans, dtype=torch.int64)
    summary.update({"layer_names": names, "layer_channels": chans, "num_scopes": n_scopes})

    # ---- 1. importance
    calib = load_model(sd)
    imp, groups = importance(calib, x, target, group)
    assert groups == [0, 1]
    li = {n: i for i, n in enumerate(names)}
    for g in groups:
        for ln in ("conv1", "fc"):
            out[f"imp.g{g}.{ln}.weight"] = imp[g][li[ln]]
    cmods = dict(calib.named_modules())
    for mod, buf in BN_AFTER:
        out[f"bn_after.{mod}.{buf}"] = getattr(cmods[mod], buf).detach()
    assert int(cmods["bn1"].num_batches_tracked) == int(sd["bn1.num_batches_tracked"]) + 1
    print(f"stage 1 importance: groups {groups}, sum I_g = "
          f"{[float(sum(a.sum() for a in imp[g])) for g in groups]}, conv1 I_0 max {float(imp[0][0].max()):.3e}")

    # ---- 2. reducers
    bal, totals, shares = reduce_balanced(imp, groups)
    # independent form of the balanced reducer: (sum_g T_g) * max_g (I_g / T_g)
    for i in range(len(names)):
        alt = torch.stack([imp[g][i].double() / totals[k].double() for k, g in enumerate(groups)]).max(0).values
        alt = alt * (totals[0].double() + totals[1].double())
        assert torch.allclose(bal[i].double(), alt, rtol=1e-5, atol=0), names[i]
    red = {
        "balanced": bal,
        "max": reduce_simple(imp, groups, "max"),
        "mean": reduce_simple(imp, groups, "mean"),
        "cvar": reduce_simple(imp, groups, "cvar"),
        "subtractive": reduce_subtractive(imp, groups),
    }
    for k, v in red.items():
        out[f"score.{k}"] = scores_per_channel(v)
        assert out[f"score.{k}"].shape == (n_scopes,)
    assert torch.equal(out["score.cvar"], out["score.mean"])  # |G| = 2: top ceil(0.9*2) = 2 groups = all
    out["score.balanced_per_tensor"] = scores_per_tensor(bal)
    summary["balanced"] = {"T_g": [f32(t) for t in totals], "pi_g": [f32(p) for p in shares]}
    print(f"stage 2 reducers: pi_g = {[round(f32(p), 6) for p in shares]}, score.balanced in "
          f"[{float(out['score.balanced'].min()):.3e}, {float(out['score.balanced'].max()):.3e}], "
          f"cvar == mean (|G| = 2)")

    # ---- 3. allocation
    alloc = {}
    for key, s, bits, levels in (
        ("qat", out["score.balanced"], QAT_BITS, QAT_LEVELS),
        ("baq", out["score.balanced"], BAQ_BITS, BAQ_LEVELS),
        ("fairquantize", out["score.subtractive"], FQZ_BITS, FQZ_LEVELS),
    ):
        c, thr, b, plain_ok = allocate(s, bits, levels)
        if key != "fairquantize":
            out[f"thresholds.{key}"] = thr
        out[f"bits.{key}"] = b
        hist = {str(v): int((b == v).sum()) for v in sorted(bits)}
        ties = int(sum(int((s == t).sum()) for t in thr))
        alloc[key] = {"scores": "score.subtractive" if key == "fairquantize" else "score.balanced",
                      "bits": sorted(bits), "proportions": levels, "levels_c": [f32(v) for v in c],
                      "thresholds": [f32(v) for v in thr], "histogram": hist,
                      "scores_equal_to_a_threshold": ties, "quantile_plain_formula_matches": plain_ok}
    summary["allocation"] = alloc
    print("stage 3 allocation: " + "; ".join(f"{k} {v['histogram']}" for k, v in alloc.items()))

    # ---- 4. fixed-bit fake quant, eval mode, fresh weights
    qat = load_model(sd)
    qat.eval()
    sizes = chans
    bits_qat = torch.split(out["bits.qat"], sizes)
    with torch.no_grad():
        for (n, m), bq in zip(quant_layers(qat), bits_qat):
            wq = fake_quant_s1(m.weight, bq)
            ref_q, _, _ = quantize_s1(m.weight.detach().clone(), bq.tolist(), "per_channel")
            assert torch.equal(wq, ref_q), n
            assert torch.equal(m.weight + (wq - m.weight), wq), n  # the STE form has the same forward value
            m.weight.copy_(wq)
        logits_qat = qat(x)
    out["logits.qat_eval"] = logits_qat
    with torch.no_grad():
        fp_eval = ref.eval()(x)
    summary["qat_eval"] = {"argmax": logits_qat.argmax(1).tolist(), "fp32_eval_argmax": fp_eval.argmax(1).tolist(),
                           "max_abs_diff_vs_fp32": f32((logits_qat - fp_eval).abs().max())}
    print(f"stage 4 fixed-bit eval: logits[0] = {[round(v, 5) for v in logits_qat[0].tolist()]}, "
          f"max |Q - FP32| logits {summary['qat_eval']['max_abs_diff_vs_fp32']:.4f}")

    # ---- 5. BAQ
    theta_warm = warm_theta(out["bits.baq"])
    assert torch.equal(torch.round(btil_of(theta_warm)).to(torch.int64), out["bits.baq"])  # §4.3 round trip
    noise = torch.randn(n_scopes, generator=gen, dtype=torch.float32)
    theta_test = theta_warm + THETA_NOISE * noise
    btil = btil_of(theta_test)
    b_test = torch.round(btil)
    assert torch.equal(round_ste(btil), b_test)
    out["theta.warm"] = theta_warm
    out["theta.test"] = theta_test
    out["btil.test"] = btil
    out["b.test"] = b_test.to(torch.int64)
    phi0 = torch.full((n_scopes,), PHI_INIT, dtype=torch.float32)

    with torch.no_grad():
        th_l, ph_l = torch.split(theta_test, sizes), torch.split(phi0, sizes)
        for ln in WHAT_LAYERS:
            i = li[ln]
            w = layers[i][1].weight.detach()
            what = baq_weight(w, th_l[i], ph_l[i], official=False)
            out[f"what.{ln}.weight"] = what
            # what is on the grid sign(w) * (q * Delta + d/2) with integer q in [0, M]
            assert what.shape == w.shape
    for k, ln in enumerate(WHAT_LAYERS):  # the documented chain rule == autograd (float64)
        i = li[ln]
        check_baq_grad_formula(layers[i][1].weight, th_l[i], ph_l[i], seed=SEED + 1 + k)

    # paper mode
    model_p = load_model(sd)
    model_p.train()
    lay_p = quant_layers(model_p)
    theta_p = theta_test.clone().requires_grad_(True)
    phi_p = phi0.clone().requires_grad_(True)
    stats = {}
    logits_p, used_p = baq_forward(model_p, lay_p, theta_p, phi_p, x, official=False, stats=stats)
    l_task, l_fair, anchor, shrink, total, gl = baq_losses(logits_p, target, group, theta_p, theta_warm)
    model_p.zero_grad(set_to_none=True)
    total.backward()
    out["baq.logits_train"] = logits_p.detach()
    out["baq.loss_task"] = l_task.detach().reshape(1)
    out["baq.loss_fair"] = l_fair.detach().reshape(1)
    out["baq.lbit_anchor"] = anchor.detach().reshape(1)
    out["baq.lbit_shrink"] = shrink.detach().reshape(1)
    out["baq.loss_total"] = total.detach().reshape(1)
    out["baq.grad_theta"] = theta_p.grad.detach()
    out["baq.grad_conv1_weight"] = model_p.conv1.weight.grad.detach()
    out["baq.grad_phi"] = phi_p.grad.detach()
    for ln in WHAT_LAYERS:  # the stored What are the weights this forward used
        assert torch.equal(used_p[f"{ln}.weight"].detach(), out[f"what.{ln}.weight"]), ln
    assert torch.equal(torch.round(btil_of(theta_p.detach())), b_test)

    # official-code mode
    model_o = load_model(sd)
    model_o.train()
    lay_o = quant_layers(model_o)
    theta_o = theta_test.clone().requires_grad_(True)
    phi_o = phi0.clone().requires_grad_(True)
    logits_o, used_o = baq_forward(model_o, lay_o, theta_o, phi_o, x, official=True)
    *_, total_o, _ = baq_losses(logits_o, target, group, theta_o, theta_warm)
    model_o.zero_grad(set_to_none=True)
    total_o.backward()
    inexact = sum(int((used_o[k].detach() != used_p[k].detach()).sum()) for k in used_o)
    inexact_q0 = 0
    for (n, m), t, p in zip(lay_o, torch.split(theta_test, sizes), torch.split(phi0, sizes)):
        w = m.weight.detach()
        diff = used_o[f"{n}.weight"].detach() != used_p[f"{n}.weight"].detach()
        d = cview((1.0 - torch.tanh(torch.abs(p))), w) * w.abs().amax(dim=channel_axes(w), keepdim=True)
        on_offset = used_p[f"{n}.weight"].detach().abs() == d / 2  # q = 0 outside the dead zone
        inexact_q0 += int((diff & on_offset).sum())
    logit_diff = (logits_o.detach() - logits_p.detach()).abs().max()
    rel = float(logit_diff / logits_p.detach().abs().max())
    assert rel < 1e-5, rel
    assert phi_o.grad is None or not bool(phi_o.grad.any())
    expect = LAMBDA_B * (2.0 * (theta_test - theta_warm) / n_scopes)
    assert torch.allclose(theta_o.grad, expect, rtol=1e-6, atol=1e-12)
    out["baq_official.grad_theta"] = theta_o.grad.detach()
    out["baq_official.logits_train"] = logits_o.detach()
    # in the official mode the master weight gets the identity STE (for the record)
    ste_conv1 = model_o.conv1.weight.grad.detach()

    hist_test = {str(v): int((b_test == v).sum()) for v in range(B_MIN, B_MAX + 1)}
    summary["baq"] = {
        "b_min": B_MIN, "b_max": B_MAX, "phi": PHI_INIT, "theta_noise_std": THETA_NOISE,
        "lambda_fair": LAMBDA_FAIR, "lambda_b": LAMBDA_B,
        "b_test_histogram": hist_test,
        "b_test_differs_from_bits_baq": int((out["b.test"] != out["bits.baq"]).sum()),
        "loss_task": f32(l_task), "loss_fair": f32(l_fair), "group_losses": [f32(v) for v in gl],
        "lbit_anchor": f32(anchor), "lbit_shrink": f32(shrink), "loss_total": f32(total),
        "paper": dict(stats),
        "grad_theta_abs_max": f32(out["baq.grad_theta"].abs().max()),
        "grad_phi_abs_max": f32(out["baq.grad_phi"].abs().max()),
        "grad_conv1_weight_abs_max": f32(out["baq.grad_conv1_weight"].abs().max()),
        "official_grad_conv1_weight_abs_max": f32(ste_conv1.abs().max()),
        "official_W_plus_stopgrad_differs_from_What_elements": inexact,
        "official_W_plus_stopgrad_differs_from_What_elements_with_q0": inexact_q0,
        "official_logits_train_max_abs_diff_vs_paper": f32(logit_diff),
        "official_grad_phi_all_zero": True,
    }
    print(f"stage 5 BAQ: b.test {hist_test}, L_task {f32(l_task):.6f} L_fair {f32(l_fair):.6f} "
          f"L_anchor {f32(anchor):.6f} L_shrink {f32(shrink):.6f} total {f32(total):.6f}, "
          f"|grad theta| max {summary['baq']['grad_theta_abs_max']:.3e} (official "
          f"{f32(theta_o.grad.abs().max()):.3e}), c>M elems {stats['elements_c_gt_M']}")

    # ---- write
    tensors = {}
    for k, v in out.items():
        v = v.detach().clone().contiguous()
        assert v.dtype in (torch.float32, torch.int64), (k, v.dtype)
        tensors[k] = v
    data = save(tensors)
    assert len(data) < MAX_BYTES, len(data)
    write_atomic(FIXTURES / "fairquant_ref.safetensors", data)
    summary["tensors"] = {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
                          for k, v in tensors.items()}
    write_json(FIXTURES / "fairquant_ref.json", summary)
    print(f"wrote fairquant_ref.safetensors ({len(data)} bytes, {len(tensors)} tensors) and fairquant_ref.json")


if __name__ == "__main__":
    main()
