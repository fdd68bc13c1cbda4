"""The piecewise fit of erfc behind the AVX-512F GELU (runtime/src/exec/vmath/coeffs.rs, ERFC_PIECES).

    python tools/reference/erfc_pieces.py          # AVX-512F: prints ERFC_PIECES and its worst error
    python tools/reference/erfc_pieces.py --avx2   # the 8-piece fit the AVX2 GELU used until stop 71

AVX-512F: erfc(z) on z in [i/8, (i+1)/8), i < 32, as a degree-5 polynomial in u = 8z - i - 1/2 (u in
[-1/2, 1/2); a coefficient's 32 values are two registers, one permute picks them per lane). AVX2: on
z in [i/2, (i+1)/2), i < 8, degree 8 in u = 2z - i - 1/2 (8 values: one register, one permute). Each
is fitted for relative error (Chebyshev nodes, weighted least squares re-weighted towards minimax) against
mpmath's erfc at 40 digits, then rounded to f32. The error printed is the worst relative error over 2001
points per piece with the polynomial evaluated in f32 (Horner, each step rounded twice: the kernel's FMAs
round once, so it is a bound). Deterministic: the same constants on every run.
"""

import sys

import mpmath as mp
import numpy as np

PIECES, WIDTH, DEGREE = 32, 8.0, 5
mp.mp.dps = 40


def erfc(z):
    return float(mp.erfc(z))


def fit_piece(i):
    n = 200
    u = 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)
    f = np.array([erfc((i + 0.5 + x) / WIDTH) for x in u])
    basis = np.vander(u, DEGREE + 1, increasing=True)
    w = 1 / f
    for _ in range(30):
        c, *_ = np.linalg.lstsq(basis * w[:, None], f * w, rcond=None)
        err = np.abs(basis @ c - f) / f
        w = w * (1 + 5 * err / err.max())
    return np.float32(c)


def worst_error(c):
    worst = 0.0
    for i in range(PIECES):
        z = ((i + 0.5 + np.linspace(-0.5, 0.5, 2001)) / WIDTH).astype(np.float32)
        u = z * np.float32(WIDTH) - np.float32(i) - np.float32(0.5)
        p = np.full_like(u, c[i][DEGREE])
        for k in range(DEGREE - 1, -1, -1):
            p = (p * u + c[i][k]).astype(np.float32)
        f = np.array([erfc(float(v)) for v in z])
        worst = max(worst, float((np.abs(p - f) / f).max()))
    return worst


def main():
    global PIECES, WIDTH, DEGREE
    name = "ERFC_PIECES"
    if "--avx2" in sys.argv[1:]:
        PIECES, WIDTH, DEGREE, name = 8, 2.0, 8, "ERFC_PIECES8"
    c = np.array([fit_piece(i) for i in range(PIECES)])
    print(f"pub const {name}: [[f32; {PIECES}]; {DEGREE + 1}] = [")
    for k in range(DEGREE + 1):
        print("    [")
        for i in range(0, PIECES, 4):
            row = " ".join(np.format_float_scientific(c[j][k], unique=True) + "," for j in range(i, i + 4))
            print("        " + row)
        print("    ],")
    print("];")
    print(f"// worst relative error, f32 evaluation: {worst_error(c):.2e}")


if __name__ == "__main__":
    main()
