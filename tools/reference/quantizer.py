#!/usr/bin/env python3
"""Reference fixtures for the symmetric uniform quantize-dequantize operator (spec §1) and its STE.

Writes fixtures/quantizer.json; the format is documented in README.md.
"""

import numpy as np
import torch

from _common import FIXTURES, f32_list, seed_everything, write_json

SEED = 20261123


def quantize(w: torch.Tensor, bits: list, granularity: str):
    """Spec §1, in torch, float32 throughout.

    Returns (Q(w), integer levels q, scale per scope). Scope = one output channel (per_channel: max over all
    non-output axes) or the whole tensor (per_tensor, `bits` has one element).
      b == 0: Q = 0 (scale reported as 0.0, it is not used)
      b == 1: Q = sign(w) (unscaled, sign(0) = 0; scale reported as 1.0)
      b >= 2: qmax = 2^(b-1)-1, s = max(max|w|, 1e-8) / qmax, q = clamp(round(w / s), -qmax, qmax), Q = q * s
    torch.round rounds half to even.
    """
    assert w.dtype == torch.float32
    if granularity == "per_tensor":
        assert len(bits) == 1
        rows = w.reshape(1, -1)
    elif granularity == "per_channel":
        assert len(bits) == w.shape[0]
        rows = w.reshape(w.shape[0], -1)
    else:
        raise ValueError(granularity)
    b = torch.tensor(bits, dtype=torch.int64).reshape(-1, 1)
    qmax = (2.0 ** (b - 1) - 1).to(torch.float32)  # exact small integers
    amax = rows.abs().amax(dim=1, keepdim=True)
    scale = torch.clamp_min(amax, 1e-8) / torch.clamp_min(qmax, 1.0)  # b<2 rows are overwritten below
    q = torch.clamp(torch.round(rows / scale), -qmax, qmax)
    deq = q * scale
    # b == 1: sign, b == 0: pruned.
    is1 = (b == 1).expand_as(rows)
    is0 = (b == 0).expand_as(rows)
    q = torch.where(is1, torch.sign(rows), q)
    deq = torch.where(is1, torch.sign(rows), deq)
    q = torch.where(is0, torch.zeros_like(q), q)
    deq = torch.where(is0, torch.zeros_like(deq), deq)
    scale = torch.where(b == 1, torch.ones_like(scale), scale)
    scale = torch.where(b == 0, torch.zeros_like(scale), scale)
    return deq.reshape(w.shape), q.reshape(w.shape).to(torch.int64), scale.reshape(-1)


def quantize_numpy(w: np.ndarray, bits: list, granularity: str):
    """Independent scalar re-implementation (numpy float32, np.round is also half-to-even), used as a check."""
    rows = w.reshape(1, -1) if granularity == "per_tensor" else w.reshape(w.shape[0], -1)
    out = np.zeros_like(rows)
    for i, b in enumerate(bits):
        r = rows[i]
        if b == 0:
            continue
        if b == 1:
            out[i] = np.sign(r)
            continue
        qmax = np.float32(2 ** (b - 1) - 1)
        s = np.float32(max(np.abs(r).max(), np.float32(1e-8))) / qmax
        assert s.dtype == np.float32
        q = np.clip(np.round(r / s), -qmax, qmax)
        out[i] = q * s
    return out.reshape(w.shape)


def tie_row(rng: np.random.Generator, n: int, bits: int, scale_hint: float) -> np.ndarray:
    """A row of `n` float32 values whose max |w| = A and whose other entries w satisfy, in float32,
    w / s == k + 0.5 exactly, where s = fl(A / qmax) is the scale the quantizer will compute.
    Half the ties are negative. A few entries are the float32 neighbours of a tie (near-ties)."""
    qmax = 2 ** (bits - 1) - 1
    A = np.float32(scale_hint * qmax)
    s = np.float32(A) / np.float32(qmax)
    row = [A]
    near = []
    ks = list(range(0, qmax))  # k + 0.5 <= qmax - 0.5 < qmax, so |w| < A
    rng.shuffle(ks)
    for k in ks:
        for sign in (1.0, -1.0):
            w = np.float32(sign * (k + 0.5)) * s
            if np.float32(w / s) == np.float32(sign * (k + 0.5)) and abs(w) < A:
                row.append(w)
                if len(near) < 2:
                    near.append(np.nextafter(w, np.float32(np.inf), dtype=np.float32))
                    near.append(np.nextafter(w, np.float32(-np.inf), dtype=np.float32))
            if len(row) >= n - 4:
                break
        if len(row) >= n - 4:
            break
    row += near
    while len(row) < n:
        row.append(np.float32(rng.uniform(-1.0, 1.0)) * A)
    return np.array(row[:n], dtype=np.float32)


def make_case(name, w: torch.Tensor, bits, granularity, cases):
    deq, q, scale = quantize(w, bits, granularity)
    ref = quantize_numpy(w.numpy(), bits, granularity)
    assert np.array_equal(ref.view(np.uint32) & 0x7FFFFFFF, deq.numpy().view(np.uint32) & 0x7FFFFFFF) and np.array_equal(
        ref, deq.numpy()
    ), name
    cases.append(
        {
            "name": name,
            "shape": list(w.shape),
            "granularity": granularity,
            "bits": [int(b) for b in bits],
            "w": f32_list(w),
            "q": f32_list(deq),
            "q_int": [int(x) for x in q.reshape(-1)],
            "scale": f32_list(scale),
        }
    )


def count_ties(w: torch.Tensor, bits, granularity) -> int:
    """How many entries have w / s exactly on a .5 (with b >= 2)."""
    rows = w.reshape(1, -1) if granularity == "per_tensor" else w.reshape(w.shape[0], -1)
    n = 0
    for i, b in enumerate(bits):
        if b < 2:
            continue
        qmax = np.float32(2 ** (b - 1) - 1)
        r = rows[i].numpy()
        s = np.float32(max(np.abs(r).max(), np.float32(1e-8))) / qmax
        x = r / s
        n += int(np.sum((x - np.floor(x)) == np.float32(0.5)))
    return n


def main():
    seed_everything(SEED)
    gen = torch.Generator().manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    cases = []

    shapes = {
        "conv": ([6, 3, 3, 3], [2, 3, 4, 5, 6, 8]),
        "linear": ([5, 7], [2, 4, 8, 0, 5]),
        "depthwise": ([4, 1, 3, 3], [3, 5, 7, 8]),
    }
    for kind, (shape, mixed) in shapes.items():
        w = (torch.randn(shape, generator=gen) * 0.1).to(torch.float32)
        for b in (2, 4, 8):
            make_case(f"{kind}_per_tensor_b{b}", w, [b], "per_tensor", cases)
        for b in range(2, 9):
            make_case(f"{kind}_per_channel_b{b}", w, [b] * shape[0], "per_channel", cases)
        make_case(f"{kind}_per_channel_mixed", w, mixed, "per_channel", cases)

    # Exact ties (w / s == k + 0.5 in float32) in every row, several bit-widths, plus near-ties.
    tie_bits = [2, 3, 4, 5, 8, 6]
    hints = [2.0**-4, 0.1, 2.0**-6, 0.037, 2.0**-3, 0.71]
    w_ties = torch.from_numpy(np.stack([tie_row(rng, 24, b, h) for b, h in zip(tie_bits, hints)]))
    assert count_ties(w_ties, tie_bits, "per_channel") >= 40
    make_case("ties_per_channel_mixed", w_ties.reshape(6, 2, 3, 4), tie_bits, "per_channel", cases)
    w_tt = torch.from_numpy(tie_row(rng, 30, 4, 2.0**-5)).reshape(5, 6)
    assert count_ties(w_tt, [4], "per_tensor") >= 10
    make_case("ties_per_tensor_b4", w_tt, [4], "per_tensor", cases)
    w_tt8 = torch.from_numpy(tie_row(rng, 40, 8, 0.013)).reshape(4, 10)
    assert count_ties(w_tt8, [8], "per_tensor") >= 20
    make_case("ties_per_tensor_b8", w_tt8, [8], "per_tensor", cases)

    # An all-zero output channel (scale = 1e-8 / qmax, Q = 0) next to ordinary ones; an all-zero tensor.
    wz = (torch.randn([4, 2, 3, 3], generator=gen) * 0.05).to(torch.float32)
    wz[2] = 0.0
    make_case("zero_channel_per_channel_b4", wz, [4, 4, 4, 4], "per_channel", cases)
    make_case("zero_channel_per_channel_mixed", wz, [8, 2, 3, 0], "per_channel", cases)
    make_case("zero_tensor_per_tensor_b8", torch.zeros([3, 4], dtype=torch.float32), [8], "per_tensor", cases)

    # Tiny and large magnitudes, exact zeros inside a channel, b = 16.
    wm = torch.cat(
        [
            (torch.randn([1, 8], generator=gen) * 1e-7),
            (torch.randn([1, 8], generator=gen) * 30.0),
            torch.tensor([[0.0, 0.5, -0.0, -0.25, 1.0, 0.0, -1.0, 0.75]]),
        ]
    ).to(torch.float32)
    make_case("magnitudes_per_channel_mixed", wm, [4, 16, 2], "per_channel", cases)

    # b = 1 (sign, unscaled). Defined by the spec but unused by the paper's configurations.
    w1 = (torch.randn([3, 5], generator=gen)).to(torch.float32)
    w1[1, 2] = 0.0
    make_case("b1_sign_per_channel_mixed", w1, [1, 1, 4], "per_channel", cases)

    # STE: d/dw sum(g * (w + (Q(w) - w).detach())) == g, for every weight (clipped and b=0 included).
    ste_cases = []
    for name, shape, bits in [
        ("ste_conv_per_channel_mixed", [6, 3, 3, 3], [2, 3, 4, 0, 6, 8]),
        ("ste_linear_per_tensor_b2", [5, 7], [2]),
    ]:
        w = (torch.randn(shape, generator=gen) * 0.1).to(torch.float32).requires_grad_(True)
        g = torch.randn(shape, generator=gen).to(torch.float32)
        gran = "per_tensor" if len(bits) == 1 else "per_channel"
        with torch.no_grad():
            deq, _, _ = quantize(w.detach(), bits, gran)
        w_used = w + (deq - w).detach()
        (g * w_used).sum().backward()
        assert torch.equal(w.grad, g), name
        assert torch.equal(w_used.detach(), deq), name
        ste_cases.append(
            {
                "name": name,
                "shape": shape,
                "granularity": gran,
                "bits": bits,
                "w": f32_list(w.detach()),
                "upstream_grad": f32_list(g),
                "q": f32_list(deq),
                "grad_w": f32_list(w.grad),
            }
        )

    n_ties = sum(count_ties(torch.tensor(c["w"]).reshape(c["shape"]), c["bits"], c["granularity"]) for c in cases)
    n_away = 0  # ties where round-half-away-from-zero would give a different level
    for c in cases:
        w = torch.tensor(c["w"]).reshape(c["shape"])
        rows = w.reshape(1, -1) if c["granularity"] == "per_tensor" else w.reshape(w.shape[0], -1)
        for r, b, s in zip(rows.numpy(), c["bits"], c["scale"]):
            if b >= 2:
                x = r / np.float32(s)
                n_away += int(np.sum(((x - np.floor(x)) == np.float32(0.5)) & (np.round(x) != np.trunc(x + np.copysign(0.5, x)))))
    assert n_away >= 20
    print(f"exact ties: {n_ties}, of which {n_away} round differently under half-away-from-zero")
    write_json(FIXTURES / "quantizer.json", {"cases": cases, "ste_cases": ste_cases})
    print(f"quantizer.json: {len(cases)} cases, {len(ste_cases)} STE cases")


if __name__ == "__main__":
    main()
