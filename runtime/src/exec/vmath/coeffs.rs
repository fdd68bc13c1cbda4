//! The constants of the hand-vectorised `vmath` loops, shared by every architecture's file so the
//! x86-64, aarch64 and wasm32 versions compute the same polynomials (and the accuracy bounds the
//! tests measure on one hold for all). `portable.rs` spells the `erfc` fit out on its own: it is
//! the reference the SIMD loops are checked against.
//!
//! `exp` is the Cephes `expf` scheme: `n = round(x log2 e)`, `r = x - n ln 2` in two parts (so
//! `r` is exact), a degree-5 polynomial for `e^r` on `|r| <= ln2/2` and `2^n` built in the
//! exponent bits; about 1 ulp. The argument is clamped to `[EXP_LO, EXP_HI]` so `2^n` stays a
//! normal float.

pub const LOG2E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` split so that `n * LN2_HI` is exact for `|n| <= 128`.
pub const LN2_HI: f32 = 0.693_359_4;
pub const LN2_LO: f32 = -2.121_944_4e-4;
pub const EXP_LO: f32 = -87.336_54;
pub const EXP_HI: f32 = 88.0;
/// `e^r = 1 + r + r^2 p(r)`, `p`'s coefficients highest power first.
pub const P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];
/// The `erfcc` fit's coefficients (Numerical Recipes §6.2), highest power of `t` first:
/// `erfc(z) = t exp(-z^2 + poly(t))` with `t = 1 / (1 + z/2)`, `z >= 0`.
pub const ERFC: [f32; 10] = [
    0.170_872_77,
    -0.822_152_23,
    1.488_515_9,
    -1.135_204,
    0.278_868_07,
    -0.186_288_06,
    0.096_784_18,
    0.374_091_96,
    1.000_023_7,
    -1.265_512_2,
];
/// GELU's clamp, defined with the scalar reference (compiled on every target).
pub use super::portable::GELU_Z_MAX;
