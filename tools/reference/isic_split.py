"""CPython's `random.Random(seed).shuffle` permutations, for the Rust port in eval/src/dataset/mt19937.rs.

Writes fixtures/python_shuffle.json:
- "cases": `random.Random(seed).shuffle(list(range(n)))` for several list lengths and int seeds
  (including seeds wider than 32 and 64 bits, which CPython feeds to init_by_array as several words);
- "getrandbits": the first outputs of `Random(seed).getrandbits(k)` for widths around 32 and up to 64;
- "isic2019": the paper's ISIC 2019 split (spec §7.2) of the real ground truth committed in
  tests/data/real/: rows in file order, `random.Random(42).shuffle`, train = first int(0.6 n),
  test = [int(0.6 n), int(0.8 n)), as sorted row indices (0 = first data row).

Seeds are written as decimal strings (JSON readers may turn integers above 2**64 into floats).
Standard library only (no torch/numpy needed).
"""

import csv
import json
import os
import platform
import random
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = Path(os.environ.get("FQ_REF_OUT") or HERE / "fixtures")
GROUND_TRUTH = HERE.parent.parent / "tests" / "data" / "real" / "ISIC_2019_Training_GroundTruth.csv"


def shuffled(n: int, seed: int) -> list:
    x = list(range(n))
    random.Random(seed).shuffle(x)
    return x


def main() -> None:
    cases = []
    for seed in [0, 1, 42, 2026, 2**32 + 7, 2**70 + 5]:
        for n in [0, 1, 2, 3, 10, 100, 1000]:
            cases.append({"seed": str(seed), "n": n, "perm": shuffled(n, seed)})
    cases.append({"seed": "42", "n": 5000, "perm": shuffled(5000, 42)})

    bits = []
    for k in [1, 7, 31, 32, 33, 40, 63, 64]:
        r = random.Random(42)
        bits.append({"seed": "42", "k": k, "values": [r.getrandbits(k) for _ in range(4)]})

    with open(GROUND_TRUTH, newline="") as f:
        ids = [row[0] for row in csv.reader(f)][1:]
    n = len(ids)
    order = shuffled(n, 42)
    a, b = int(0.6 * n), int(0.8 * n)
    isic = {
        "source": "tests/data/real/ISIC_2019_Training_GroundTruth.csv",
        "n": n,
        "first_train_id": ids[order[0]],
        "train": sorted(order[:a]),
        "test": sorted(order[a:b]),
    }

    lines = ["{", f'"python":{json.dumps(platform.python_version())},', '"cases":[']
    lines.append(",\n".join(json.dumps(c, separators=(",", ":")) for c in cases))
    lines.append('],"getrandbits":[')
    lines.append(",\n".join(json.dumps(c, separators=(",", ":")) for c in bits))
    lines.append('],"isic2019":' + json.dumps(isic, separators=(",", ":")))
    lines.append("}")
    data = ("\n".join(lines) + "\n").encode()
    json.loads(data)  # well-formed

    path = OUT / "python_shuffle.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
