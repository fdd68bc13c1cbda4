"""Helpers shared by the reference-fixture scripts (seeding, exact float32 JSON, atomic writes)."""

import json
import os
import random
import tempfile
from pathlib import Path

import numpy as np

# Output directory: tools/reference/fixtures, or $FQ_REF_OUT (generate.sh --check writes to a temp dir).
FIXTURES = Path(os.environ.get("FQ_REF_OUT") or Path(__file__).resolve().parent / "fixtures")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch; force single-threaded deterministic torch kernels."""
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:  # metrics_ref.py does not need torch
        return
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def f32_list(t) -> list:
    """Flatten a float32 tensor/array into Python floats. Each float32 converts exactly to a double and
    json writes the double's shortest round-trip repr, so parsing the text back as f64 and casting to f32
    (or parsing straight to f32) gives the original float32 bit pattern."""
    a = np.asarray(t.detach().cpu().numpy() if hasattr(t, "detach") else t)
    assert a.dtype == np.float32, a.dtype
    return [float(x) for x in a.reshape(-1)]


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _dump(x) -> str:
    return json.dumps(x, separators=(",", ":"), allow_nan=False)


def write_json(path: Path, obj: dict) -> None:
    """Deterministic JSON (keys in insertion order, no NaN/Infinity). `obj` is a dict; a value that is a
    list of dicts is written one element per line so that diffs stay readable. The result is ordinary JSON."""
    parts = []
    for k, v in obj.items():
        if isinstance(v, list) and v and all(isinstance(e, dict) for e in v):
            body = ",\n".join(_dump(e) for e in v)
            parts.append(f"{_dump(k)}:[\n{body}\n]")
        else:
            parts.append(f"{_dump(k)}:{_dump(v)}")
    text = "{\n" + ",\n".join(parts) + "\n}\n"
    json.loads(text)  # sanity: valid JSON
    write_atomic(path, text.encode("utf-8"))
