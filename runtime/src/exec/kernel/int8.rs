//! The integer micro-kernel's interface: an `MR x NR` tile of i32 sums of i8 weight codes times
//! i8 activations, with its kernels chosen once per process ([`int8_path`]).
//!
//! Models run through it only on the integer path (issue 16), which is opt-in
//! (`Activations::Int8Dynamic` / `Int8Static` through `Executor::set_activations` or
//! `Classifier::set_activations`): it quantises the activations, packs them in the layout below
//! and rescales the i32 sums; by default models run in f32. This module fixes the contract of
//! that executor and its kernels, each tested bit for bit against the portable reference.
//!
//! # Layout
//! - `A` (weights): `MR` rows of `k` i8 codes, row `r` at `a[r * lda..]`, as the unpacker writes
//!   them (2- to 8-bit signed codes; the full -128..=127 range is exact).
//! - `B` (activations): packed `[k / 4][NR][4]`: for each group of 4 consecutive `k`, the `NR`
//!   columns one after another, each column's 4 bytes together ([`pack_b`] builds it).
//! - `k` is a multiple of [`KGROUP`] = 4: the caller pads each weight row and the activations'
//!   `K` with zeros (a zero code adds nothing, so padding never changes a sum).
//!
//! # Why `K` grouped by 4
//! Both integer dot-product instructions multiply 4 consecutive bytes of `K` and add them into
//! one i32 lane: ARM's `SDOT v.4s, v.16b, v.16b` (dot-product extension) and x86's VNNI
//! `VPDPBUSD` (AVX-512 VNNI / AVX-VNNI; `VPDPBSSD` with AVX-VNNI-INT8). With `B` as
//! `[k/4][NR][4]`, one 16-byte (SDOT) or 32-byte (VNNI) load is 4 (or 8) columns times 4 `k`,
//! exactly one register operand, and the weight row's 4 bytes for that group are one broadcast
//! 32-bit load (`LD1R` / `VPBROADCASTD`). Without the extension the same layout still serves:
//! widen to i16 and multiply-accumulate long (`SMLAL` here, `VPMADDWD` on AVX2), then add the 4
//! lanes of each column once at the end.
//!
//! The x86 kernels: `VPDPBUSD` (`int8_vnni.rs`) is u8 x s8, so the activations are made unsigned
//! by adding 128 (`x ^ 0x80`) and the sum corrected by `128 * sum_k a[r][k]`, a per-row constant
//! of the weights computed once at load time ([`tile_with_sums`]); `VPMADDUBSW` (AVX2) saturates
//! its i16 pair sums (2 x 255 x -128 does not fit), so it is exact only when one operand has at
//! most 7 bits, while `VPMOVSXBW` + `VPMADDWD` is exact for all codes.
//!
//! # Exactness
//! Every product and sum is an integer, so every kernel must equal [`portable`](tile_portable)
//! bit for bit (the tests check it on random and extreme values). A product is at most
//! `128 * 128 = 2^14`, so no sum can overflow i32 for `k <= MAX_K = 2^17`, which [`tile`] asserts.

use std::sync::OnceLock;

use super::max_isa::{max_isa, MaxIsa};

/// Rows of the integer tile (output channels): the same 6x16 shape as the f32 tile, so the
/// integer executor can share the f32 path's blocking. SDOT keeps 24 q-register accumulators.
pub const MR: usize = 6;
/// Columns of the integer tile (output pixels).
pub const NR: usize = 16;
/// `K` comes in groups of 4 bytes (one SDOT / VNNI lane).
pub const KGROUP: usize = 4;
/// The longest `K` (a multiple of 4) whose sums cannot overflow i32: `2^17` products of
/// `-128 * -128 = 2^14` would reach `2^31`.
pub const MAX_K: usize = (1 << 17) - KGROUP;

/// The integer micro-kernel a CPU runs; named like [`super::KernelPath`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int8Path {
    /// x86-64 with AMX-INT8 (Sapphire Rapids and later Xeons, Linux 5.16+): `TDPBSSD` on tile
    /// registers, 16,384 signed multiply-adds per instruction (`int8_amx.rs`); the GEMM runs it on
    /// 16 x 32 blocks.
    Amx,
    /// x86-64 with AVX-512F, AVX-512BW and AVX-512 VNNI: `VPDPBUSD` on 512-bit registers, 64
    /// multiply-adds per instruction, exact for all 8-bit codes (needs the row code sums).
    Avx512Vnni,
    /// x86-64 with AVX-VNNI (no AVX-512): the 256-bit `VPDPBUSD`, 32 multiply-adds per
    /// instruction (needs the row code sums).
    AvxVnni,
    /// x86-64 with AVX2: codes sign-extended to i16 and `VPMADDWD`, exact for all 8-bit codes.
    Avx2,
    /// x86-64 with SSSE3 and no AVX2: the narrow kernel's `PMADDUBSW` on 128-bit registers
    /// (`int8_ssse3.rs`) for codes of at most 7 bits, `PMADDWD` on widened codes for the others.
    Ssse3,
    /// aarch64 with the dot-product extension (`FEAT_DotProd`: Cortex-A55/A75 and later, Apple
    /// M1 and later, Neoverse): `SDOT`, 16 multiply-adds per instruction.
    NeonSdot,
    /// aarch64 without it (Cortex-A53, A72: Raspberry Pi 3 and 4): i8 widened to i16 and
    /// `SMLAL`, 4 multiply-adds per instruction.
    NeonSmlal,
    /// WebAssembly SIMD128 (compile time, as the f32 kernel): `i32x4.dot_i16x8_s` on widened
    /// codes.
    Simd128,
    /// Plain Rust loops, vectorised by the compiler for the build target.
    Portable,
}

impl Int8Path {
    /// A short, stable name ("neon-sdot", "neon-smlal", "portable").
    pub fn name(self) -> &'static str {
        match self {
            Int8Path::Amx => "amx-int8",
            Int8Path::Avx512Vnni => "avx512-vnni",
            Int8Path::AvxVnni => "avx-vnni",
            Int8Path::Avx2 => "avx2",
            Int8Path::Ssse3 => "ssse3",
            Int8Path::NeonSdot => "neon-sdot",
            Int8Path::NeonSmlal => "neon-smlal",
            Int8Path::Simd128 => "simd128",
            Int8Path::Portable => "portable",
        }
    }

    /// The best path of this CPU under the ceiling `max` (`FQ_MAX_ISA`, [`super::max_isa`]).
    fn detect(max: MaxIsa) -> Int8Path {
        if max == MaxIsa::Portable {
            return Int8Path::Portable;
        }
        #[cfg(target_arch = "aarch64")]
        {
            if max.allows_dotprod() && std::arch::is_aarch64_feature_detected!("dotprod") {
                return Int8Path::NeonSdot;
            }
            Int8Path::NeonSmlal
        }
        #[cfg(target_arch = "x86_64")]
        {
            if max.allows_amx() && Int8Path::Amx.available() {
                return Int8Path::Amx;
            }
            if max.allows_avx512() && Int8Path::Avx512Vnni.available() {
                return Int8Path::Avx512Vnni;
            }
            if max.allows_avxvnni() && Int8Path::AvxVnni.available() {
                return Int8Path::AvxVnni;
            }
            if max.allows_avx2() && Int8Path::Avx2.available() {
                return Int8Path::Avx2;
            }
            if max.allows_ssse3() && Int8Path::Ssse3.available() {
                return Int8Path::Ssse3;
            }
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        {
            Int8Path::Simd128
        }
        #[cfg(not(any(
            target_arch = "aarch64",
            all(target_arch = "wasm32", target_feature = "simd128")
        )))]
        Int8Path::Portable
    }

    /// Whether this CPU can run the path (for tests that exercise every kernel it has).
    pub fn available(self) -> bool {
        match self {
            Int8Path::Portable => true,
            Int8Path::Simd128 => cfg!(all(target_arch = "wasm32", target_feature = "simd128")),
            #[cfg(target_arch = "x86_64")]
            Int8Path::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Int8Path::Ssse3 => std::arch::is_x86_feature_detected!("ssse3"),
            #[cfg(target_arch = "x86_64")]
            Int8Path::Amx => super::int8_amx::supported(),
            #[cfg(target_arch = "x86_64")]
            Int8Path::AvxVnni => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("avxvnni")
            }
            #[cfg(target_arch = "x86_64")]
            Int8Path::Avx512Vnni => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "aarch64")]
            Int8Path::NeonSmlal => true,
            #[cfg(target_arch = "aarch64")]
            Int8Path::NeonSdot => std::arch::is_aarch64_feature_detected!("dotprod"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

impl Int8Path {
    /// Whether the path's kernel takes each weight row's code sum (the VNNI kernels make the
    /// activations unsigned and take `128 * sum` back); callers that keep the sums per layer
    /// pass them to [`tile_with_sums`] instead of [`tile`] recomputing them per tile.
    pub fn uses_row_sums(self) -> bool {
        matches!(self, Int8Path::Avx512Vnni | Int8Path::AvxVnni)
    }
}

/// The integer micro-kernel path of this CPU, detected on the first call (under `FQ_MAX_ISA`).
pub fn int8_path() -> Int8Path {
    static PATH: OnceLock<Int8Path> = OnceLock::new();
    *PATH.get_or_init(|| Int8Path::detect(max_isa()))
}

/// `out[r * NR + c] = sum_i a[r * lda + i] * b_ic` for `i < k`, where `b_ic` is column `c`, row
/// `i` of `B` packed `[k / 4][NR][4]` (`b[(i / 4) * NR * 4 + c * 4 + i % 4]`), on this CPU's path.
///
/// # Panics
/// When `k` is not a multiple of 4 or exceeds [`MAX_K`], or a panel is too short.
pub fn tile(k: usize, a: &[i8], lda: usize, b: &[i8], out: &mut [i32; MR * NR]) {
    check_extents(k, a, lda, b);
    // SAFETY: `int8_path` is available on this CPU; the extents were checked.
    unsafe { dispatch(int8_path(), k, a, lda, None, b, out) };
}

/// [`tile`] on a given path; panics when the CPU lacks it (see [`Int8Path::available`]).
pub fn tile_on(path: Int8Path, k: usize, a: &[i8], lda: usize, b: &[i8], out: &mut [i32; MR * NR]) {
    check_available(path);
    check_extents(k, a, lda, b);
    // SAFETY: both checked just above.
    unsafe { dispatch(path, k, a, lda, None, b, out) };
}

/// [`tile`] given `a_sums[r]`, the wrapping sum of row `r`'s `k` codes (as `WeightsI8` keeps
/// them per layer), so the VNNI kernels need not add the rows up per tile; other paths ignore
/// the sums.
pub fn tile_with_sums(
    k: usize,
    a: &[i8],
    lda: usize,
    a_sums: &[i32; MR],
    b: &[i8],
    out: &mut [i32; MR * NR],
) {
    check_extents(k, a, lda, b);
    // SAFETY: `int8_path` is available on this CPU; the extents were checked.
    unsafe { dispatch(int8_path(), k, a, lda, Some(a_sums), b, out) };
}

/// [`tile_with_sums`] on a given path; panics when the CPU lacks it.
pub fn tile_with_sums_on(
    path: Int8Path,
    k: usize,
    a: &[i8],
    lda: usize,
    a_sums: &[i32; MR],
    b: &[i8],
    out: &mut [i32; MR * NR],
) {
    check_available(path);
    check_extents(k, a, lda, b);
    // SAFETY: both checked just above.
    unsafe { dispatch(path, k, a, lda, Some(a_sums), b, out) };
}

/// The one dispatch of every entry point above. The row sums are added up here when a VNNI
/// kernel needs them and the caller has none.
///
/// # Safety
/// The CPU must have `path` ([`int8_path`] only returns such paths, so the per-tile calls on it
/// skip [`check_available`]) and the extents must satisfy [`check_extents`].
unsafe fn dispatch(
    path: Int8Path,
    k: usize,
    a: &[i8],
    lda: usize,
    a_sums: Option<&[i32; MR]>,
    b: &[i8],
    out: &mut [i32; MR * NR],
) {
    #[cfg(target_arch = "x86_64")]
    if path.uses_row_sums() {
        // `k = 0` may come with an empty `a`: no codes, zero sums.
        let own: [i32; MR];
        let sums = match a_sums {
            Some(s) => s,
            None => {
                own = std::array::from_fn(|r| a.get(r * lda..r * lda + k).map_or(0, row_sum));
                &own
            }
        };
        // SAFETY: the caller guarantees the path (AVX-512F/BW/VNNI, or AVX2 and AVX-VNNI) and
        // the extents.
        return unsafe {
            if path == Int8Path::Avx512Vnni {
                super::int8_vnni::tile_avx512_vnni(k, a.as_ptr(), lda, sums, b.as_ptr(), out)
            } else {
                super::int8_vnni::tile_avx_vnni(k, a.as_ptr(), lda, sums, b.as_ptr(), out)
            }
        };
    }
    let _ = a_sums;
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path is available (AVX2); the callers checked the extents.
        Int8Path::Avx2 => unsafe {
            super::int8_x86::tile_avx2(k, a.as_ptr(), lda, b.as_ptr(), out)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE2 is x86-64's baseline; the callers checked the extents.
        Int8Path::Ssse3 => unsafe {
            super::int8_ssse3::tile_exact(k, a.as_ptr(), lda, b.as_ptr(), out)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path is available (AMX-INT8, permission granted); the callers checked the
        // extents.
        Int8Path::Amx => unsafe { super::int8_amx::tile(k, a.as_ptr(), lda, b.as_ptr(), out) },
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        // SAFETY: the module was built with SIMD128; the callers checked the extents.
        Int8Path::Simd128 => unsafe {
            super::int8_wasm::tile_simd128(k, a.as_ptr(), lda, b.as_ptr(), out)
        },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: the path is available (the dot-product extension); the callers checked the
        // extents.
        Int8Path::NeonSdot => unsafe {
            super::int8_neon::tile_sdot(k, a.as_ptr(), lda, b.as_ptr(), out)
        },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is baseline on aarch64; the callers checked the extents.
        Int8Path::NeonSmlal => unsafe {
            super::int8_neon::tile_smlal(k, a.as_ptr(), lda, b.as_ptr(), out)
        },
        _ => tile_portable(k, a, lda, b, out),
    }
}

/// The contract every kernel relies on: `k` grouped by 4 and short enough not to overflow, the
/// panels long enough.
pub(super) fn check_extents(k: usize, a: &[i8], lda: usize, b: &[i8]) {
    assert!(
        k.is_multiple_of(KGROUP) && k <= MAX_K,
        "int8 micro-kernel: k = {k} must be a multiple of {KGROUP} and at most {MAX_K}"
    );
    assert!(
        lda >= k && (k == 0 || a.len() >= (MR - 1) * lda + k) && b.len() >= k * NR,
        "int8 micro-kernel panels too short"
    );
}

/// A path the caller names must be one this CPU has.
fn check_available(path: Int8Path) {
    assert!(
        path.available(),
        "int8 path {} not available on this CPU",
        path.name()
    );
}

/// The wrapping sum of a row of codes (what the VNNI kernels take back, times 128).
pub fn row_sum(row: &[i8]) -> i32 {
    row.iter().fold(0i32, |s, &v| s.wrapping_add(i32::from(v)))
}

/// The reference: plain loops over the packed layout (extents checked by the caller). Sums wrap
/// like the hardware's, so even past [`MAX_K`] every kernel agrees with it.
pub fn tile_portable(k: usize, a: &[i8], lda: usize, b: &[i8], out: &mut [i32; MR * NR]) {
    super::int8_portable::tile(k, a, lda, b, out);
}

/// Packs `cols` (row-major `[k][NR]`, `k` rows of `NR` activations) as `[k4 / 4][NR][4]`, where
/// `k4` is `k` rounded up to a multiple of 4 and the padding is zeros.
pub fn pack_b(k: usize, cols: &[i8]) -> Vec<i8> {
    assert!(
        cols.len() >= k * NR,
        "pack_b: {} values for k = {k}",
        cols.len()
    );
    let k4 = k.div_ceil(KGROUP) * KGROUP;
    let mut out = vec![0i8; k4 * NR];
    for (i, row) in cols.chunks_exact(NR).take(k).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            out[(i / KGROUP) * NR * KGROUP + c * KGROUP + i % KGROUP] = v;
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const PATHS: [Int8Path; 9] = [
        Int8Path::Amx,
        Int8Path::Avx512Vnni,
        Int8Path::AvxVnni,
        Int8Path::Avx2,
        // Its exact tile (`int8_ssse3::tile_exact`; its narrow one: `int8_narrow`'s tests).
        Int8Path::Ssse3,
        Int8Path::Simd128,
        Int8Path::NeonSdot,
        Int8Path::NeonSmlal,
        Int8Path::Portable,
    ];

    /// Pseudo-random codes, the same sequence on every machine (shared by the kernels' tests).
    pub(crate) fn lcg(seed: u64) -> impl FnMut() -> i8 {
        let mut s = seed;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 56) as u8 as i8
        }
    }

    /// A direct i64 sum from unpadded weight rows (`MR x k`) and the unpacked `[k][NR]`
    /// activations: independent of the padding and the packing.
    fn naive(k: usize, rows: &[i8], cols: &[i8]) -> Vec<i64> {
        (0..MR * NR)
            .map(|j| {
                let (r, c) = (j / NR, j % NR);
                (0..k)
                    .map(|i| i64::from(rows[r * k + i]) * i64::from(cols[i * NR + c]))
                    .sum()
            })
            .collect()
    }

    /// Pads the weight rows (`MR x k`) with zeros to a multiple of 4, `lda` a little longer (a
    /// ragged stride), packs the activations, runs every kernel this CPU has and checks each
    /// against the portable loop, and that against the i64 sum. Returns the paths exercised.
    fn check(k: usize, rows: &[i8], cols: &[i8]) -> Vec<&'static str> {
        let k4 = k.div_ceil(KGROUP) * KGROUP;
        let lda = k4 + 4;
        let mut a = vec![0i8; MR * lda];
        for (dst, src) in a.chunks_exact_mut(lda).zip(rows.chunks_exact(k.max(1))) {
            dst[..k].copy_from_slice(&src[..k]);
        }
        let b = pack_b(k, cols);
        let mut want = [0i32; MR * NR];
        tile_portable(k4, &a, lda, &b, &mut want);
        let exact = naive(k, rows, cols);
        for (j, (&w, &e)) in want.iter().zip(&exact).enumerate() {
            assert_eq!(i64::from(w), e, "portable, k {k}, element {j}");
        }
        let sums: [i32; MR] = std::array::from_fn(|r| row_sum(&a[r * lda..r * lda + k4]));
        let mut used = Vec::new();
        for path in PATHS.into_iter().filter(|p| p.available()) {
            let mut got = [i32::MIN; MR * NR];
            tile_on(path, k4, &a, lda, &b, &mut got);
            assert_eq!(got, want, "{} against portable, k {k}", path.name());
            let mut got = [i32::MIN; MR * NR];
            tile_with_sums_on(path, k4, &a, lda, &sums, &b, &mut got);
            assert_eq!(got, want, "{} with row sums, k {k}", path.name());
            used.push(path.name());
        }
        // The VNNI tile loop over a plain-Rust model of `VPDPBUSD` and its loads, with 512-bit
        // and 256-bit registers: its indexing and the + 128 correction, checked on every x86
        // CPU, VNNI or not (Bochs, the emulator used for AVX-512, has no AVX-VNNI model).
        #[cfg(target_arch = "x86_64")]
        for (lanes, name) in [(16, "vnni-512-model"), (8, "vnni-256-model")] {
            let mut got = [i32::MIN; MR * NR];
            // SAFETY: the model needs no CPU feature; the extents are those checked above.
            unsafe {
                super::super::int8_vnni::tile_model(
                    lanes,
                    k4,
                    a.as_ptr(),
                    lda,
                    &sums,
                    b.as_ptr(),
                    &mut got,
                )
            };
            assert_eq!(got, want, "{name} against portable, k {k}");
            used.push(name);
        }
        used
    }

    /// The detected path is named in the log, so CI shows which kernel ran (`int8 micro-kernel
    /// path: ...`), and so is every kernel compared.
    #[test]
    fn every_kernel_matches_the_portable_loop_on_random_codes() {
        eprintln!("int8 micro-kernel path: {}", int8_path().name());
        let mut next = lcg(1);
        let mut used = Vec::new();
        for k in [0usize, 1, 3, 4, 5, 8, 15, 16, 17, 64, 255, 1000] {
            let rows: Vec<i8> = (0..MR * k).map(|_| next()).collect();
            let cols: Vec<i8> = (0..k * NR).map(|_| next()).collect();
            used = check(k, &rows, &cols);
        }
        eprintln!("int8 kernels checked bit for bit: {}", used.join(", "));
        assert!(used.contains(&int8_path().name()));
    }

    /// The extremes: -128 x -128 everywhere over a long `K` (the largest positive sums), -128 x
    /// 127 (the most negative), -128 x -128 at `K = MAX_K` (`2^31 - 2^16`, the largest sum the
    /// contract allows), and the widest codes of every bit width.
    #[test]
    fn every_kernel_is_exact_on_extreme_codes() {
        eprintln!("int8 micro-kernel path: {}", int8_path().name());
        for (wa, wb, k) in [(-128i8, -128i8, 4096), (-128, 127, 4096), (127, 127, 777)] {
            let rows = vec![wa; MR * k];
            let cols = vec![wb; k * NR];
            check(k, &rows, &cols);
        }
        let k = MAX_K;
        let a = vec![-128i8; MR * k];
        let cols = vec![-128i8; k * NR];
        check(k, &a, &cols);
        let mut out = [0i32; MR * NR];
        tile(k, &a, k, &pack_b(k, &cols), &mut out);
        assert!(out.iter().all(|&v| v == i32::MAX - 65535));
        // Each signed width's extremes (2..=8 bits), mixed per row and column.
        for bits in 2..=8u32 {
            let (lo, hi) = (
                -(1i32 << (bits - 1)) as i8,
                ((1i32 << (bits - 1)) - 1) as i8,
            );
            let k = 67;
            let rows: Vec<i8> = (0..MR * k)
                .map(|j| if j % 3 == 0 { lo } else { hi })
                .collect();
            let cols: Vec<i8> = (0..k * NR)
                .map(|j| if j % 5 == 1 { hi } else { -128 })
                .collect();
            check(k, &rows, &cols);
        }
    }

    /// `FQ_MAX_ISA` lowers the integer path and never raises it: the portable loop under
    /// `portable`, an available path under any ceiling.
    #[test]
    fn the_ceiling_only_lowers_the_path() {
        assert_eq!(Int8Path::detect(MaxIsa::Portable), Int8Path::Portable);
        for max in [MaxIsa::Avx2, MaxIsa::Neon, MaxIsa::Native] {
            let p = Int8Path::detect(max);
            assert!(p.available(), "{max:?}: {p:?}");
        }
        #[cfg(target_arch = "aarch64")]
        assert_eq!(Int8Path::detect(MaxIsa::Neon), Int8Path::NeonSmlal);
        #[cfg(target_arch = "x86_64")]
        {
            // `avx2` is what an AVX2-only CPU runs, whatever this one has beyond it.
            let avx2 = Int8Path::detect(MaxIsa::Avx2);
            assert!(
                matches!(avx2, Int8Path::Avx2 | Int8Path::Portable),
                "{avx2:?}"
            );
            let ssse3 = Int8Path::detect(MaxIsa::Ssse3);
            assert!(
                matches!(ssse3, Int8Path::Ssse3 | Int8Path::Portable),
                "{ssse3:?}"
            );
            let vnni = Int8Path::detect(MaxIsa::AvxVnni);
            assert!(vnni != Int8Path::Avx512Vnni, "{vnni:?}");
            // AMX only without a ceiling; `avx512` keeps the VNNI kernel.
            let native = Int8Path::detect(MaxIsa::Native);
            if Int8Path::Amx.available() {
                assert_eq!(native, Int8Path::Amx);
            } else if Int8Path::Avx512Vnni.available() {
                assert_eq!(native, Int8Path::Avx512Vnni);
            }
            assert!(Int8Path::detect(MaxIsa::Avx512) != Int8Path::Amx);
            if Int8Path::Avx512Vnni.available() {
                assert_eq!(Int8Path::detect(MaxIsa::Avx512), Int8Path::Avx512Vnni);
            }
        }
    }

    #[test]
    #[should_panic(expected = "must be a multiple of 4")]
    fn rejects_a_k_that_is_not_grouped_by_4() {
        let mut out = [0i32; MR * NR];
        tile(5, &[0; MR * 8], 8, &[0; 8 * NR], &mut out);
    }

    #[test]
    fn pack_b_groups_k_by_4_and_pads_with_zeros() {
        let cols: Vec<i8> = (0..5 * NR).map(|j| j as i8).collect();
        let b = pack_b(5, &cols);
        assert_eq!(b.len(), 8 * NR);
        // Group 0, column 1: k = 0..4 of column 1.
        assert_eq!(&b[4..8], &[1, 17, 33, 49]);
        // Group 1, column 0: k = 4, then the zero padding.
        assert_eq!(&b[NR * 4..NR * 4 + 4], &[64, 0, 0, 0]);
    }
}
