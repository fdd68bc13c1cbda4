//! Deterministic seed derivation: every random stream comes from the run seed plus a tag, so a
//! resumed run, or a run on another thread count, sees the same numbers.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// SplitMix64 finaliser: a well-mixed 64-bit value from a 64-bit input.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed for the stream identified by `tags` (e.g. `[EPOCH_SHUFFLE, epoch]`).
pub fn derive(seed: u64, tags: &[u64]) -> u64 {
    tags.iter().fold(mix(seed), |acc, &t| mix(acc ^ mix(t)))
}

/// A ChaCha8 generator for the stream identified by `tags`.
pub fn rng(seed: u64, tags: &[u64]) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive(seed, tags))
}

/// Stream tags, one per use, so streams never collide.
pub mod tag {
    pub const INIT: u64 = 1;
    pub const SHUFFLE: u64 = 2;
    pub const AUGMENT: u64 = 3;
    pub const SPLIT: u64 = 4;
    pub const CALIBRATION: u64 = 5;
    pub const BALANCED: u64 = 6;
    pub const DIAGNOSE: u64 = 7;
    pub const BAQ_FIXED_PHASE: u64 = 8;
    pub const ACTIVATIONS: u64 = 9;
}
