//! CPython's `random.Random` reimplemented exactly, as far as `Random(seed).shuffle(list)` needs it: the
//! MT19937 generator (`_randommodule.c`), seeding from a non-negative int (`init_by_array` over the
//! int's 32-bit words, least significant first), `getrandbits`, `_randbelow_with_getrandbits` and
//! `shuffle` (`random.py`, CPython 3.2 and later).
//!
//! Why: the ISIC 2019 split of the paper (spec §7.2) is `random.Random(42).shuffle` over the image list;
//! any other generator gives another permutation, so no number could be compared with Table 1. The
//! permutations are checked against CPython itself (`tools/reference/isic_split.py`).

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// The state of one `random.Random` instance.
#[derive(Clone)]
pub struct PyRandom {
    mt: [u32; N],
    index: usize,
}

impl std::fmt::Debug for PyRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PyRandom {{ index: {} }}", self.index)
    }
}

impl PyRandom {
    /// `random.Random(seed)` for a non-negative int seed (CPython takes `abs(seed)` and feeds its 32-bit
    /// words, least significant first, to `init_by_array`; zero is the one word `0`).
    pub fn new(seed: u128) -> PyRandom {
        let mut key = Vec::new();
        let mut s = seed;
        loop {
            key.push(s as u32);
            s >>= 32;
            if s == 0 {
                break;
            }
        }
        PyRandom::from_key(&key)
    }

    /// `init_genrand(s)`: the reference generator's plain seeding.
    pub fn from_u32(s: u32) -> PyRandom {
        let mut mt = [0u32; N];
        mt[0] = s;
        for i in 1..N {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        PyRandom { mt, index: N }
    }

    /// `init_by_array(key)`.
    pub fn from_key(key: &[u32]) -> PyRandom {
        let mut r = PyRandom::from_u32(19_650_218);
        let mt = &mut r.mt;
        let (mut i, mut j) = (1usize, 0usize);
        let len = key.len().max(1);
        for _ in 0..N.max(len) {
            let k = key.get(j).copied().unwrap_or(0);
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(k)
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if j >= len {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
        r
    }

    /// `genrand_uint32`: the next 32-bit output.
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    fn twist(&mut self) {
        let mag = |y: u32| if y & 1 == 1 { MATRIX_A } else { 0 };
        let mt = &mut self.mt;
        for kk in 0..N {
            let y = (mt[kk] & UPPER_MASK) | (mt[(kk + 1) % N] & LOWER_MASK);
            mt[kk] = mt[(kk + M) % N] ^ (y >> 1) ^ mag(y);
        }
        self.index = 0;
    }

    /// `getrandbits(k)` for `k <= 64`: one output shifted right for `k <= 32`; otherwise 32-bit words,
    /// least significant first, the last one shifted right to its remaining width (CPython's layout).
    pub fn getrandbits(&mut self, k: u32) -> u64 {
        assert!(k <= 64, "getrandbits is implemented up to 64 bits, got {k}");
        if k == 0 {
            return 0;
        }
        if k <= 32 {
            return u64::from(self.next_u32() >> (32 - k));
        }
        let low = u64::from(self.next_u32());
        let high = u64::from(self.next_u32() >> (64 - k));
        low | (high << 32)
    }

    /// `_randbelow_with_getrandbits(n)`: draws `n.bit_length()` bits until the value is below `n`.
    /// `n` must be positive (CPython raises for 0 since 3.10; `shuffle` never asks for it).
    pub fn randbelow(&mut self, n: u64) -> u64 {
        assert!(n > 0, "randbelow(0)");
        let k = 64 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `shuffle(x)`: for `i` from `len-1` down to 1, swap `x[i]` with `x[randbelow(i+1)]`.
    pub fn shuffle<T>(&mut self, x: &mut [T]) {
        for i in (1..x.len()).rev() {
            let j = self.randbelow(i as u64 + 1) as usize;
            x.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference outputs of Matsumoto and Nishimura's `mt19937ar.c` (`mt19937ar.out`): an independent
    /// check of the generator and of `init_by_array`, separate from the CPython fixture.
    #[test]
    fn reference_outputs_of_mt19937ar() {
        let mut r = PyRandom::from_key(&[0x123, 0x234, 0x345, 0x456]);
        let first: Vec<u32> = (0..5).map(|_| r.next_u32()).collect();
        assert_eq!(
            first,
            [
                1_067_595_299,
                955_945_823,
                477_289_528,
                4_107_218_783,
                4_228_976_476
            ]
        );
        // The 1000th output of the same stream (the last of the reference file's integer block).
        let mut r = PyRandom::from_key(&[0x123, 0x234, 0x345, 0x456]);
        let last = (0..1000).map(|_| r.next_u32()).last();
        assert_eq!(last, Some(3_460_025_646));
        // init_genrand(5489), the C++ std::mt19937 default: its 10000th output is 4123659995.
        let mut r = PyRandom::from_u32(5489);
        assert_eq!(
            (0..10_000).map(|_| r.next_u32()).last(),
            Some(4_123_659_995)
        );
    }

    #[test]
    fn int_seeds_use_32_bit_words() {
        let mut a = PyRandom::new(0x1_0000_0002);
        let mut b = PyRandom::from_key(&[2, 1]);
        assert_eq!(a.next_u32(), b.next_u32());
        let mut a = PyRandom::new(0);
        let mut b = PyRandom::from_key(&[0]);
        assert_eq!(a.next_u32(), b.next_u32());
    }

    #[test]
    fn randbelow_stays_below_and_shuffle_permutes() {
        let mut r = PyRandom::new(42);
        for n in 1..200u64 {
            assert!(r.randbelow(n) < n);
        }
        let mut v: Vec<usize> = (0..100).collect();
        r.shuffle(&mut v);
        let mut s = v.clone();
        s.sort_unstable();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
        assert_ne!(v, s);
    }
}
