"""Reference outputs of torchvision's AutoAugment (ImageNet policy) ops on PIL images.

Writes fixtures/autoaugment_ref.safetensors (uint8 HxWx3 tensors, no metadata) and
fixtures/autoaugment_ref.json (the policy table, the magnitude table and the list of cases).

Three small deterministic RGB images (a noisy gradient, full-range noise, and a non-square low-contrast
image with one constant channel, so that AutoContrast/Equalize take both their branches) go through:
- every op of the ImageNet policy at every magnitude bin the policy uses, both signs for signed ops,
  plus ShearY, Brightness and a few extra bins (not in the policy, but in its augmentation space);
- every one of the 25 sub-policies with both ops forced on (signs alternate between sub-policies).
Each op is torchvision's own `_apply_op` on a PIL image, with the magnitude taken exactly as
`AutoAugment.forward` takes it (`float(magnitudes[bin].item())`, negated for a signed op with sign 0).
"""

import numpy as np
from PIL import Image
from safetensors.numpy import save
from torchvision.transforms import InterpolationMode
from torchvision.transforms.autoaugment import AutoAugment, AutoAugmentPolicy, _apply_op

from _common import FIXTURES, seed_everything, write_atomic, write_json

NUM_BINS = 10


def images() -> list[np.ndarray]:
    rng = np.random.default_rng(20261123)
    y, x = np.mgrid[0:24, 0:24]
    grad = np.stack([x * 10, y * 9, (x + y) * 5], axis=-1) + rng.integers(-12, 13, (24, 24, 3))
    noise = rng.integers(0, 256, (24, 24, 3))
    y, x = np.mgrid[0:16, 0:20]
    low = np.stack([50 + x * 6, 60 + y * 7, np.full_like(x, 90)], axis=-1)
    low[..., :2] += rng.integers(0, 4, (16, 20, 2))
    return [np.clip(a, 0, 255).astype(np.uint8) for a in (grad, noise, low)]


def f32_bits(v: float) -> int:
    """Bit pattern of a magnitude, which is always a float32 widened to a double (exact in JSON, unlike
    a decimal that a reader might round differently)."""
    f = np.float32(v)
    assert float(f) == v, v
    return int(f.view(np.uint32))


def magnitude(aa: AutoAugment, op: str, bin_: int | None, negative: bool, hw: tuple[int, int]) -> float:
    """Exactly what AutoAugment.forward computes for one op."""
    magnitudes, signed = aa._augmentation_space(NUM_BINS, hw)[op]
    m = float(magnitudes[bin_].item()) if bin_ is not None else 0.0
    if signed and negative:
        m *= -1.0
    return m


def apply(aa: AutoAugment, img: np.ndarray, op: str, bin_: int | None, negative: bool) -> tuple[np.ndarray, float]:
    pil = Image.fromarray(img, "RGB")
    m = magnitude(aa, op, bin_, negative, (img.shape[0], img.shape[1]))
    out = _apply_op(pil, op, m, interpolation=InterpolationMode.NEAREST, fill=None)
    assert out.mode == "RGB" and out.size == pil.size
    return np.asarray(out, dtype=np.uint8).copy(), m


def op_cases(policies) -> list[tuple[str, int | None]]:
    used: dict[str, set] = {}
    for sub in policies:
        for op, _p, b in sub:
            used.setdefault(op, set()).add(b)
    # Ops and bins outside the policy (in its augmentation space), for coverage of both blend branches etc.
    extra = {"ShearY": {5, 9}, "Brightness": {3, 8}, "Sharpness": {2, 9}, "Contrast": {3}, "ShearX": {9}}
    for op, bins in extra.items():
        used.setdefault(op, set()).update(bins)
    return [(op, b) for op in sorted(used) for b in sorted(used[op], key=lambda v: -1 if v is None else v)]


def main() -> None:
    seed_everything(0)
    aa = AutoAugment(AutoAugmentPolicy.IMAGENET, interpolation=InterpolationMode.NEAREST)
    policies = aa.policies
    imgs = images()
    tensors = {f"input.{k}": a for k, a in enumerate(imgs)}

    cases = []
    for op, b in op_cases(policies):
        signed = aa._augmentation_space(NUM_BINS, (24, 24))[op][1]
        for negative in (False, True) if signed else (False,):
            name = f"op.{len(cases)}"
            mags = []
            for k, img in enumerate(imgs):
                tensors[f"{name}.{k}"], m = apply(aa, img, op, b, negative)
                mags.append(m)
            cases.append(
                {
                    "name": name,
                    "op": op,
                    "bin": b,
                    "negative": negative,
                    "magnitude": mags,
                    "magnitude_f32_bits": [f32_bits(m) for m in mags],
                }
            )

    for i, sub in enumerate(policies):
        name = f"sub.{i}"
        signs = [i % 2 == 0, i % 2 == 1]  # which of the two ops gets the negative sign
        for k, img in enumerate(imgs):
            out = img
            for (op, _p, b), negative in zip(sub, signs):
                out, _m = apply(aa, out, op, b, negative)
            tensors[f"{name}.{k}"] = out
        cases.append({"name": name, "sub_policy": i, "negative": signs})

    space = aa._augmentation_space(NUM_BINS, (24, 24))
    magnitude_table = {
        op: {
            "signed": signed,
            "values": [float(v) for v in mags.reshape(-1).tolist()],
            "f32_bits": [f32_bits(float(v)) for v in mags.reshape(-1).tolist()],
        }
        for op, (mags, signed) in space.items()
        if not op.startswith("Translate")
    }
    write_atomic(FIXTURES / "autoaugment_ref.safetensors", save(tensors))
    write_json(
        FIXTURES / "autoaugment_ref.json",
        {
            "policy": [[[op, p, b] for op, p, b in sub] for sub in policies],
            "magnitudes": magnitude_table,
            "images": len(imgs),
            "cases": cases,
        },
    )


if __name__ == "__main__":
    main()
