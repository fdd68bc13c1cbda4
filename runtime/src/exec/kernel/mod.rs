//! The GEMM micro-kernel: an `MR x NR` tile of `A * B` from packed panels, in registers.
//!
//! `A` is `MR` rows of `k` weights, row `r` at `a[r * lda..]` (rows as the unpacker writes them,
//! so packing `A` is no more than unpacking it), `B` is packed `[k][NR]`.
//!
//! One binary serves every CPU of an architecture: the instruction set is detected once, at the
//! first call ([`path`]), and every tile goes through the kernel of that path. Each ISA's kernel
//! lives in its own file (`x86.rs`, `neon.rs`, ...) and is tested against `portable.rs`, the
//! reference and the fallback.
//!
//! On aarch64, NEON is part of the baseline instruction set (every aarch64 Linux, Android, iOS
//! and macOS target enables it), so `neon.rs` needs no run-time check, and the elementwise and
//! token-model loops (bias, ReLU, GELU's polynomial parts, layer norm, softmax, the im2col copies)
//! are plain Rust that the compiler auto-vectorises to NEON for that target, as it does to SSE2
//! on x86-64; only the GEMM tile, where register blocking decides the speed, is written by hand.
//! The exception is GELU's erf and softmax's exp: their polynomial-and-branch code does not
//! auto-vectorise, so `exec::vmath` has AVX2+FMA, NEON and SIMD128 versions, chosen by the same
//! [`path`] detection (the portable scalar loops on the portable path).
//!
//! [`int8`] is the integer micro-kernel's interface (i8 codes times i8 activations into i32,
//! `K` grouped by 4 for SDOT and VNNI) with its portable, AVX2, AVX-VNNI, AVX-512 VNNI, NEON SDOT
//! and NEON SMLAL kernels (the VNNI ones in `int8_vnni.rs`); its
//! path is detected separately ([`int8_path`]); the executor calls it on the integer path
//! (`Activations::Int8Static` for a file with calibrated activation scales, or
//! `Int8Dynamic`).
//!
//! On x86-64 the f32 tile has an AVX-512F kernel (`avx512.rs`) above the AVX2+FMA one. The
//! AVX-512 and VNNI kernels are written once over a few register operations and also run, in the
//! tests, over a plain-Rust model of those operations, so their loops are checked on CPUs
//! without the instructions too (the development machines have had AVX2 only in some months).
//!
//! Both detections honour the ceiling `FQ_MAX_ISA` ([`max_isa`]: `portable`, `avx2`, `avxvnni`,
//! `avx512`, `neon`, `native`), so one binary can time every path the CPU offers; it never adds
//! an instruction set.

#[cfg(target_arch = "x86_64")]
mod avx512;
mod dot_rows;
pub mod int8;
#[cfg(target_arch = "x86_64")]
pub mod int8_amx;
pub mod int8_narrow;
#[cfg(target_arch = "aarch64")]
mod int8_neon;
mod int8_portable;
#[cfg(target_arch = "x86_64")]
mod int8_ssse3;
#[cfg(target_arch = "x86_64")]
pub mod int8_vnni;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod int8_wasm;
#[cfg(target_arch = "x86_64")]
mod int8_x86;
pub mod max_isa;
#[cfg(target_arch = "aarch64")]
mod neon;
mod portable;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_lanes;

pub use dot_rows::dot_rows;
pub use int8::{int8_path, Int8Path};
pub use max_isa::{max_isa, MaxIsa};

use std::sync::OnceLock;

/// Rows of the tile (output channels).
pub const MR: usize = 6;
/// Columns of the tile (output pixels).
pub const NR: usize = 16;

/// The micro-kernel a CPU runs; its name is what `fq-classify` and the benchmarks report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelPath {
    /// x86-64 with AVX-512F: one 512-bit register per tile row, even and odd `k` apart.
    Avx512F,
    /// x86-64 with AVX2 and FMA.
    Avx2Fma,
    /// aarch64 Advanced SIMD (baseline on every aarch64 CPU).
    Neon,
    /// WebAssembly SIMD128 (chosen at compile time: wasm has no run-time detection).
    Simd128,
    /// Plain Rust loops, vectorised by the compiler for the build target.
    Portable,
}

impl KernelPath {
    /// A short, stable name ("avx2+fma", "portable").
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Avx512F => "avx512f",
            KernelPath::Avx2Fma => "avx2+fma",
            KernelPath::Neon => "neon",
            KernelPath::Simd128 => "simd128",
            KernelPath::Portable => "portable",
        }
    }

    /// The best path of this CPU under the ceiling `max` (`FQ_MAX_ISA`).
    fn detect(max: MaxIsa) -> KernelPath {
        if max.allows_avx512() && KernelPath::Avx512F.available() {
            return KernelPath::Avx512F;
        }
        if max.allows_avx2() && KernelPath::Avx2Fma.available() {
            return KernelPath::Avx2Fma;
        }
        if max == MaxIsa::Portable {
            return KernelPath::Portable;
        }
        if cfg!(target_arch = "aarch64") && max.allows_neon() {
            return KernelPath::Neon;
        }
        if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) {
            return KernelPath::Simd128;
        }
        KernelPath::Portable
    }
}

impl KernelPath {
    /// Whether this CPU can run the path (for tests that exercise every kernel it has).
    pub fn available(self) -> bool {
        match self {
            KernelPath::Portable => true,
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512F => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2Fma => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            KernelPath::Neon => cfg!(target_arch = "aarch64"),
            KernelPath::Simd128 => cfg!(all(target_arch = "wasm32", target_feature = "simd128")),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

/// The micro-kernel path of this CPU, detected on the first call (under `FQ_MAX_ISA`).
pub fn path() -> KernelPath {
    static PATH: OnceLock<KernelPath> = OnceLock::new();
    *PATH.get_or_init(|| KernelPath::detect(max_isa()))
}

/// `tile[r * NR + c] = sum_i a[r * lda + i] * b[i * NR + c]` for `i < k`.
pub fn tile(k: usize, a: &[f32], lda: usize, b: &[f32], out: &mut [f32; MR * NR]) {
    check_extents(k, a, lda, b);
    // SAFETY: `path` only returns paths this CPU has; the extents were checked.
    unsafe { dispatch(path(), k, a, lda, b, out) };
}

/// Whether [`tile_pair`] has a kernel of its own on this CPU's path (AVX-512F), so the GEMM
/// should walk the panels two at a time.
pub fn pairs_pay() -> bool {
    path() == KernelPath::Avx512F
}

/// Whether [`tile_pair_cols_to`], [`tile_pair_tap_cols_to`] and [`tile_pair_pixel_cols_to`]
/// have kernels of their own on this CPU's path (AVX-512F, AVX2+FMA), so `exec::conv_lanes` may
/// run there.
pub fn lanes_pay() -> bool {
    matches!(path(), KernelPath::Avx512F | KernelPath::Avx2Fma)
}

/// Two [`tile`]s sharing the rows of `a`: `out[r * 2 NR + h * NR + c]` against column `c` of
/// panel `h` (`b0`, then `b1`). One 6x32 kernel on AVX-512F (see `avx512.rs`), two tiles elsewhere.
pub fn tile_pair(
    k: usize,
    a: &[f32],
    lda: usize,
    (b0, b1): (&[f32], &[f32]),
    out: &mut [f32; MR * 2 * NR],
) {
    check_extents(k, a, lda, b0);
    check_extents(k, a, lda, b1);
    #[cfg(target_arch = "x86_64")]
    if path() == KernelPath::Avx512F {
        // SAFETY: `path` chose AVX-512F, so the CPU has it; the extents were checked.
        unsafe { avx512::tile_pair_avx512(k, a.as_ptr(), lda, (b0.as_ptr(), b1.as_ptr()), out) };
        return;
    }
    let mut one = [0f32; MR * NR];
    for (h, b) in [b0, b1].into_iter().enumerate() {
        tile(k, a, lda, b, &mut one);
        for (dst, src) in out.chunks_exact_mut(2 * NR).zip(one.chunks_exact(NR)) {
            dst[h * NR..(h + 1) * NR].copy_from_slice(src);
        }
    }
}

/// [`tile_pair`] (up to `MR` rows of `a`) or [`tile_block`] (up to `2 MR`) with the sums of the
/// first `rows` rows set into the `2 NR` floats at `c + r * ldc` or, with `add`, added there
/// (the K blocks after the first): a token GEMM's output rows, written by its task alone. On
/// AVX-512F from registers (an accumulator block and a pass copying it into the rows were 7% of
/// DeiT-Tiny's f32 time); elsewhere through the accumulator block.
///
/// # Safety
/// `rows` must be in `1..=2 MR` and `c + r * ldc` point to `2 NR` writable floats for
/// `r < rows`, accessed by no one else meanwhile.
pub unsafe fn tile_pair_to(
    k: usize,
    a: &[f32],
    lda: usize,
    (b0, b1): (&[f32], &[f32]),
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
) {
    check_pair_rows(k, a, lda, rows);
    check_extents(k, a, lda, b0);
    check_extents(k, a, lda, b1);
    #[cfg(target_arch = "x86_64")]
    if path() == KernelPath::Avx512F {
        // SAFETY: `path` chose AVX-512F, so the CPU has it; the extents of `a`, `b0` and `b1`
        // were checked, those of `c` are the caller's.
        unsafe {
            avx512::tile_pair_to_avx512(
                k,
                a.as_ptr(),
                lda,
                (b0.as_ptr(), b1.as_ptr()),
                (c, ldc, rows, add),
            )
        };
        return;
    }
    let mut acc = [0f32; 2 * MR * 2 * NR];
    if rows > MR {
        tile_block(k, a, lda, (b0, b1), &mut acc);
    } else {
        let top: &mut [f32; MR * 2 * NR] = (&mut acc[..MR * 2 * NR]).try_into().expect("MR rows");
        tile_pair(k, a, lda, (b0, b1), top);
    }
    // SAFETY: the caller's guarantees for `c`.
    unsafe { store_rows(&acc, (c, ldc, rows, add)) };
}

/// [`tile_pair_to`] with `B`'s panels as whole numbers in `i16` (`b[i * NR + c]`), each
/// multiplied as its float: on AVX-512F in the kernel's registers as it loads them, elsewhere
/// through a copy as floats.
///
/// # Safety
/// As [`tile_pair_to`].
pub unsafe fn tile_pair_halves_to(
    k: usize,
    a: &[f32],
    lda: usize,
    (b0, b1): (&[i16], &[i16]),
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
) {
    check_pair_rows(k, a, lda, rows);
    assert!(
        b0.len() >= k * NR && b1.len() >= k * NR,
        "micro-kernel panels too short"
    );
    #[cfg(target_arch = "x86_64")]
    if path() == KernelPath::Avx512F {
        // SAFETY: `path` chose AVX-512F, so the CPU has it; the extents of `a`, `b0` and `b1`
        // were checked, those of `c` are the caller's.
        unsafe {
            avx512::tile_pair_halves_to_avx512(
                k,
                a.as_ptr(),
                lda,
                (b0.as_ptr(), b1.as_ptr()),
                (c, ldc, rows, add),
            )
        };
        return;
    }
    let floats = |b: &[i16]| -> Vec<f32> { b[..k * NR].iter().map(|&v| f32::from(v)).collect() };
    // SAFETY: the caller's guarantees.
    unsafe { tile_pair_to(k, a, lda, (&floats(b0), &floats(b1)), (c, ldc, rows, add)) }
}

/// `$body` with `$p` bound to the two panels of `$b` (a [`PanelPair`]) as the AVX2 lanes
/// kernels take them (`x86_lanes::Panel8`): floats as they are, or `i8` codes turned into floats
/// as they are loaded. One kernel call, its two instances chosen here rather than spelled out at
/// each of [`tile_pair_cols_to`] and [`tile_pair_pixel_cols_to`].
#[cfg(target_arch = "x86_64")]
macro_rules! with_panels8 {
    ($b:expr, |$p:ident| $body:expr) => {
        match $b {
            PanelPair::F32(b0, b1) => {
                let $p = x86_lanes::FloatPanels(b0.as_ptr(), b1.as_ptr());
                $body
            }
            PanelPair::I8(b0, b1) => {
                let $p = x86_lanes::BytePanels(b0.as_ptr(), b1.as_ptr());
                $body
            }
        }
    };
}

/// Where the pixels of a [`tile_pair_cols_to`] block lie: its `A`'s element `(r, i)` is pixel
/// `r`'s value in input channel `i` (`exec::conv_lanes`).
#[derive(Clone, Copy)]
pub enum Pixels<'a> {
    /// Channel planes `ka` apart (the executor's channel-major values): `a[r + i * ka]`.
    Planes(&'a [f32], usize),
    /// Blocks of `NR` channels, each a plane of pixels with its channels together, `plane`
    /// floats apart (`exec::blocked`): `a[(i / NR) * plane + r * NR + i % NR]`.
    Blocked(&'a [f32], usize),
}

impl Pixels<'_> {
    /// Element `(r, i)`.
    fn at(&self, r: usize, i: usize) -> f32 {
        match *self {
            Pixels::Planes(a, ka) => a[r + i * ka],
            Pixels::Blocked(a, plane) => a[(i / NR) * plane + r * NR + i % NR],
        }
    }

    /// Whether elements `(r, i)`, `r < rows`, `i < k` all lie inside.
    fn holds(&self, k: usize, rows: usize) -> bool {
        if k == 0 {
            return true;
        }
        match *self {
            Pixels::Planes(a, ka) => ka >= rows && a.len() >= (k - 1) * ka + rows,
            Pixels::Blocked(a, plane) => {
                plane >= rows * NR
                    && a.len() > (k - 1) / NR * plane + (rows - 1) * NR + (k - 1) % NR
            }
        }
    }
}

/// [`tile_pair_to`] with `A`'s element `(r, i)` where `a` says ([`Pixels`]: an input's pixels
/// as the rows, `exec::conv_lanes`). On AVX-512F (one 12x32 block) and AVX2 (four 6x16 tiles,
/// `x86_lanes.rs`), where [`lanes_pay`]: elsewhere this is never called by the executor, and
/// runs a plain loop (the same sums, not the same roundings).
///
/// # Safety
/// `rows` must be in `1..=2 MR` and `c + r * ldc` point to `2 NR` writable floats for
/// `r < rows`, accessed by no one else meanwhile.
pub unsafe fn tile_pair_cols_to(
    k: usize,
    a: Pixels,
    b: PanelPair,
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
) {
    let block = if rows > MR { 2 * MR } else { MR };
    assert!(
        (1..=2 * MR).contains(&rows) && a.holds(k, block) && b.holds(k),
        "micro-kernel columns too short"
    );
    #[cfg(target_arch = "x86_64")]
    if path() == KernelPath::Avx512F {
        let c = (c, ldc, rows, add);
        // SAFETY: `path` chose AVX-512F, so the CPU has it; the extents of `a` and `b` were
        // checked, those of `c` are the caller's.
        unsafe {
            match (a, b) {
                (Pixels::Planes(a, ka), PanelPair::F32(b0, b1)) => {
                    let (a, b) = ((a.as_ptr(), ka), (b0.as_ptr(), b1.as_ptr()));
                    avx512::tile_pair_cols_to_avx512(k, a, b, c)
                }
                (Pixels::Planes(a, ka), PanelPair::I8(b0, b1)) => {
                    let (a, b) = ((a.as_ptr(), ka), (b0.as_ptr(), b1.as_ptr()));
                    avx512::tile_pair_cols_bytes_to_avx512(k, a, b, c)
                }
                (Pixels::Blocked(a, plane), PanelPair::F32(b0, b1)) => {
                    let (a, b) = ((a.as_ptr(), plane), (b0.as_ptr(), b1.as_ptr()));
                    avx512::tile_pair_blocked_to_avx512(k, a, b, c)
                }
                (Pixels::Blocked(a, plane), PanelPair::I8(b0, b1)) => {
                    let (a, b) = ((a.as_ptr(), plane), (b0.as_ptr(), b1.as_ptr()));
                    avx512::tile_pair_blocked_bytes_to_avx512(k, a, b, c)
                }
            }
        };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if path() == KernelPath::Avx2Fma {
        use x86_lanes::{cols_blocked_avx2, cols_planes_avx2};
        let c = (c, ldc, rows, add);
        // SAFETY: `path` chose AVX2+FMA, so the CPU has them; the extents of `a` and `b` were
        // checked, those of `c` are the caller's.
        unsafe {
            match a {
                Pixels::Planes(a, ka) => {
                    with_panels8!(b, |p| cols_planes_avx2(k, (a.as_ptr(), ka), p, c))
                }
                Pixels::Blocked(a, plane) => {
                    with_panels8!(b, |p| cols_blocked_avx2(k, (a.as_ptr(), plane), p, c))
                }
            }
        };
        return;
    }
    let (b0, b1) = b.floats(k);
    // SAFETY: the caller's guarantees for `c`.
    unsafe { plain_cols_to(k, |r, i| a.at(r, i), (&b0, &b1), (c, ldc, rows, add)) };
}

/// Two weight panels (`k * NR` values each) for [`tile_pair_cols_to`] and
/// [`tile_pair_tap_cols_to`]: floats, or whole numbers as `i8` (a packed layer's codes, a
/// quarter of the bytes; the kernel turns each into its float as it loads it).
#[derive(Clone, Copy)]
pub enum PanelPair<'a> {
    F32(&'a [f32], &'a [f32]),
    I8(&'a [i8], &'a [i8]),
}

impl PanelPair<'_> {
    /// Whether both panels hold `k` rows.
    fn holds(&self, k: usize) -> bool {
        match self {
            PanelPair::F32(b0, b1) => b0.len() >= k * NR && b1.len() >= k * NR,
            PanelPair::I8(b0, b1) => b0.len() >= k * NR && b1.len() >= k * NR,
        }
    }

    /// Both panels' first `k` rows as floats (the plain loop's operands).
    fn floats(&self, k: usize) -> (Vec<f32>, Vec<f32>) {
        match self {
            PanelPair::F32(b0, b1) => (b0[..k * NR].to_vec(), b1[..k * NR].to_vec()),
            PanelPair::I8(b0, b1) => {
                let f = |b: &[i8]| b[..k * NR].iter().map(|&v| f32::from(v)).collect();
                (f(b0), f(b1))
            }
        }
    }
}

/// [`tile_pair_cols_to`] and [`tile_pair_tap_cols_to`] off AVX-512F and AVX2: the sums by a
/// plain loop, `A`'s element `(r, i)` being `a(r, i)`.
///
/// # Safety
/// As [`tile_pair_cols_to`].
unsafe fn plain_cols_to(
    k: usize,
    a: impl Fn(usize, usize) -> f32,
    (b0, b1): (&[f32], &[f32]),
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
) {
    let mut acc = [0f32; 2 * MR * 2 * NR];
    for (r, sums) in acc.chunks_exact_mut(2 * NR).take(rows).enumerate() {
        for (h, b) in [b0, b1].into_iter().enumerate() {
            for (col, sum) in sums[h * NR..(h + 1) * NR].iter_mut().enumerate() {
                *sum = (0..k).map(|i| a(r, i) * b[i * NR + col]).sum();
            }
        }
    }
    // SAFETY: the caller's guarantees for `c`.
    unsafe { store_rows(&acc, (c, ldc, rows, add)) };
}

/// [`tile_pair_cols_to`] with `A`'s element `(r, i)` at `src[at + taps[i] + r]`
/// (`exec::conv_direct`'s positions along the rows). AVX-512F's kernel; elsewhere
/// [`tile_pair_pixel_cols_to`] with the block's rows as consecutive pixels from `at` (the same
/// elements: AVX2's kernel, the same floats, or the plain loop).
///
/// # Safety
/// `rows` must be in `1..=2 MR` and `c + r * ldc` point to `2 NR` writable floats for
/// `r < rows`, accessed by no one else meanwhile.
pub unsafe fn tile_pair_tap_cols_to(
    (src, at, taps): (&[f32], usize, &Taps),
    (k0, kc): (usize, usize),
    b: PanelPair,
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
) {
    #[cfg(target_arch = "x86_64")]
    if path() == KernelPath::Avx512F {
        let block = if rows > MR { 2 * MR } else { MR };
        let offsets = &taps.offsets()[k0..k0 + kc];
        assert!(
            (1..=2 * MR).contains(&rows) && at + taps.max() + block <= src.len() && b.holds(kc),
            "micro-kernel taps too short"
        );
        let (a, out) = (
            (src.as_ptr().wrapping_add(at), offsets.as_ptr()),
            (c, ldc, rows, add),
        );
        // SAFETY: `path` chose AVX-512F, so the CPU has it; every read of `src` is below
        // `at + taps.max() + block` (checked), those of `c` are the caller's.
        unsafe {
            match b {
                PanelPair::F32(b0, b1) => {
                    avx512::tile_pair_tap_cols_to_avx512(kc, a, (b0.as_ptr(), b1.as_ptr()), out)
                }
                PanelPair::I8(b0, b1) => avx512::tile_pair_tap_cols_bytes_to_avx512(
                    kc,
                    a,
                    (b0.as_ptr(), b1.as_ptr()),
                    out,
                ),
            }
        };
        return;
    }
    let pixels = std::array::from_fn(|r| at + r);
    // SAFETY: the caller's guarantees; the pixel entry checks the reads of `src`.
    unsafe { tile_pair_pixel_cols_to((src, &pixels, taps), (k0, kc), b, (c, ldc, rows, add)) };
}

/// [`tile_pair_cols_to`] with `A`'s element `(r, i)` at `src[pixels[r] + taps[k0 + i]]`
/// (`exec::tap_blocks`: output pixels' bases in a convolution's input in padded blocks of
/// channels, and each step's offset from them). AVX2's kernel ([`lanes_pay`] without
/// [`pairs_pay`]: `exec::conv_lanes` runs its taps there through it); a plain loop elsewhere.
///
/// # Safety
/// `rows` must be in `1..=2 MR` and `c + r * ldc` point to `2 NR` writable floats for
/// `r < rows`, accessed by no one else meanwhile.
pub unsafe fn tile_pair_pixel_cols_to(
    (src, pixels, taps): (&[f32], &[usize; 2 * MR], &Taps),
    (k0, kc): (usize, usize),
    b: PanelPair,
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
) {
    let block = if rows > MR { 2 * MR } else { MR };
    let offsets = &taps.offsets()[k0..k0 + kc];
    assert!(
        (1..=2 * MR).contains(&rows)
            && pixels[..block].iter().all(|&p| p + taps.max() < src.len())
            && b.holds(kc),
        "micro-kernel pixels too short"
    );
    #[cfg(target_arch = "x86_64")]
    if path() == KernelPath::Avx2Fma {
        let (a, out) = (
            (src.as_ptr(), pixels, offsets.as_ptr()),
            (c, ldc, rows, add),
        );
        // SAFETY: `path` chose AVX2+FMA, so the CPU has them; every read of `src` is below
        // `pixels[r] + taps.max()` for a row the kernel reads (checked), those of `c` are the
        // caller's.
        unsafe { with_panels8!(b, |p| x86_lanes::cols_pixels_avx2(kc, a, p, out)) };
        return;
    }
    let (b0, b1) = b.floats(kc);
    // SAFETY: the caller's guarantees for `c`.
    unsafe {
        plain_cols_to(
            kc,
            |r, i| src[pixels[r] + offsets[i]],
            (&b0, &b1),
            (c, ldc, rows, add),
        )
    };
}

/// Sets, or with `add` adds, the first `rows` rows of `2 NR` sums of `acc` at `c + r * ldc`:
/// the store of [`tile_pair_to`] and [`tile_pair_taps_to`] where no kernel stores from
/// registers.
///
/// # Safety
/// `c + r * ldc` must point to `2 NR` writable floats for `r < rows`, accessed by no one else
/// meanwhile.
unsafe fn store_rows(acc: &[f32], (c, ldc, rows, add): (*mut f32, usize, usize, bool)) {
    for (r, sums) in acc.chunks_exact(2 * NR).take(rows).enumerate() {
        // SAFETY: the caller's guarantee for row `r`.
        let dst = unsafe { std::slice::from_raw_parts_mut(c.add(r * ldc), 2 * NR) };
        if add {
            dst.iter_mut().zip(sums).for_each(|(d, s)| *d += s);
        } else {
            dst.copy_from_slice(sums);
        }
    }
}

/// Where the rows of `B` lie in a source buffer: row `i` at offset `taps[i]`, with the largest
/// offset kept, so [`tile_pair_taps_to`] checks its reach once, not per row.
pub struct Taps {
    offsets: Vec<usize>,
    max: usize,
}

impl Taps {
    pub fn new(offsets: Vec<usize>) -> Self {
        let max = offsets.iter().copied().max().unwrap_or(0);
        Taps { offsets, max }
    }

    /// The largest offset.
    pub fn max(&self) -> usize {
        self.max
    }

    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }
}

/// [`tile_pair`] on `B`'s rows `k0..k0 + kc` read in place, into rows behind a pointer: row
/// `i` of panel 0 is `src[at + taps[i]..][..NR]`, of panel 1 the `NR` floats after it
/// (`exec::conv_direct`: a convolution's taps in its padded input), and the sums of `a`'s first
/// `rows` rows are set into the `2 NR` floats at `c + r * ldc` or, with `add`, added there (the
/// K blocks after the first). The rows may be a task's columns of an output that other tasks
/// write between them, hence the pointer.
///
/// Up to `2 MR` rows: more than `MR` take a block of `2 MR` rows of `a` (12x32 on AVX-512F, 24
/// accumulators: half the passes over a pair's taps of the 6x32 tile, and ResNet18's first-stage
/// convolution went from 201 to 218 GFLOP/s on one Zen 5 core).
///
/// One kernel on AVX-512F, whose sums go from registers to `c` (an accumulator block and a pass
/// adding it into `c` per K block were 5% of ResNet18's f32 time); elsewhere the two panels are
/// gathered and [`tile_pair`] runs.
///
/// # Safety
/// `rows` must be in `1..=2 MR` and `c + r * ldc` point to `2 NR` writable floats for
/// `r < rows`, accessed by no one else meanwhile.
pub unsafe fn tile_pair_taps_to(
    a: &[f32],
    lda: usize,
    (src, at): (&[f32], usize),
    (taps_all, k0, kc): (&Taps, usize, usize),
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
) {
    let (max, taps, k) = (taps_all.max, &taps_all.offsets[k0..k0 + kc], kc);
    // Up to `MR` rows, or up to `2 MR` rows from a block of `2 MR`.
    let block = if rows > MR { 2 * MR } else { MR };
    assert!(
        lda >= k && a.len() >= (block - 1) * lda + k,
        "micro-kernel rows too short"
    );
    assert!(
        at + max + 2 * NR <= src.len(),
        "micro-kernel taps past the source"
    );
    debug_assert!((1..=2 * MR).contains(&rows));
    if rows > MR && path() != KernelPath::Avx512F {
        let (a1, c1) = (&a[MR * lda..], c.wrapping_add(MR * ldc));
        // SAFETY: the caller's guarantees, split between the two row blocks.
        unsafe {
            tile_pair_taps_to(a, lda, (src, at), (taps_all, k0, kc), (c, ldc, MR, add));
            tile_pair_taps_to(
                a1,
                lda,
                (src, at),
                (taps_all, k0, kc),
                (c1, ldc, rows - MR, add),
            );
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if path() == KernelPath::Avx512F {
        let b = (src[at..].as_ptr(), taps.as_ptr());
        // SAFETY: `path` chose AVX-512F, so the CPU has it; the extents of `a` and `src` were
        // checked, those of `c` are the caller's.
        unsafe { avx512::tile_pair_taps_avx512(k, a.as_ptr(), lda, b, (c, ldc, rows, add)) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if path() == KernelPath::Avx2Fma {
        for h in 0..2 {
            let b = (src[at + h * NR..].as_ptr(), taps.as_ptr());
            let c = (c.wrapping_add(h * NR), ldc, rows, add);
            // SAFETY: `path` chose AVX2 and FMA, so the CPU has them; the extents of `a` and
            // `src` were checked (panel 1 is the `NR` floats after panel 0), those of `c` are
            // the caller's; `rows <= MR` (larger blocks were split above).
            unsafe { x86::tile_taps_to_avx2(k, a.as_ptr(), lda, b, c) };
        }
        return;
    }
    let gather = |h: usize| -> Vec<f32> {
        taps.iter()
            .flat_map(|&t| &src[at + t + h * NR..][..NR])
            .copied()
            .collect()
    };
    let mut acc = [0f32; MR * 2 * NR];
    tile_pair(k, a, lda, (&gather(0), &gather(1)), &mut acc);
    // SAFETY: the caller's guarantees for `c`.
    unsafe { store_rows(&acc, (c, ldc, rows, add)) };
}

/// [`tile_pair_taps_to`] with `a` in `k`-major tiles of `MR` rows: the first row's tile from its
/// step `k0` on (row `r`'s step `k0 + i` at `a[(r / MR) * MR * k + i * MR + r % MR]`, `k` the
/// layer's full `K`), the layout `exec::conv_direct::Tiles::Interleaved` holds. AVX-512F and
/// AVX2: the other paths' kernels read row-major tiles. With `ahead > 0` (AVX-512F), step `i`
/// also asks for the `2 NR` floats `ahead` past its own (the next pair of positions:
/// `exec::conv_direct::Ahead`); prefetches never fault, so they need not lie in `src`.
///
/// # Safety
/// As [`tile_pair_taps_to`].
pub unsafe fn tile_pair_taps_tiled_to(
    (a, k): (&[f32], usize),
    (src, at): (&[f32], usize),
    (taps_all, k0, kc): (&Taps, usize, usize),
    (c, ldc, rows, add): (*mut f32, usize, usize, bool),
    ahead: usize,
) {
    let (max, taps) = (taps_all.max, &taps_all.offsets[k0..k0 + kc]);
    let tiles = if rows > MR { 2 } else { 1 };
    assert!(
        k >= k0 + kc && a.len() >= (tiles - 1) * MR * k + kc * MR,
        "micro-kernel tiles too short"
    );
    assert!(
        at + max + 2 * NR <= src.len(),
        "micro-kernel taps past the source"
    );
    debug_assert!((1..=2 * MR).contains(&rows));
    #[cfg(target_arch = "x86_64")]
    if path() == KernelPath::Avx2Fma {
        // Each tile's two halves by the 6x16 kernel (`ahead` is AVX-512F's alone).
        for t in 0..tiles {
            let (a, rows_t) = (a[t * MR * k..].as_ptr(), (rows - t * MR).min(MR));
            for h in 0..2 {
                let b = (src[at + h * NR..].as_ptr(), taps.as_ptr());
                let c = (c.wrapping_add(t * MR * ldc + h * NR), ldc, rows_t, add);
                // SAFETY: `path` chose AVX2 and FMA, so the CPU has them; the extents of `a` and
                // `src` were checked (panel 1 is the `NR` floats after panel 0), those of `c`
                // are the caller's.
                unsafe { x86::tile_taps_tiled_avx2(kc, a, b, c) };
            }
        }
        return;
    }
    assert_eq!(
        path(),
        KernelPath::Avx512F,
        "interleaved tiles are AVX-512F's and AVX2's"
    );
    #[cfg(target_arch = "x86_64")]
    {
        let b = (src[at..].as_ptr(), taps.as_ptr());
        // SAFETY: `path` is AVX-512F, so the CPU has it; the extents of `a` and `src` were
        // checked, those of `c` are the caller's.
        unsafe {
            avx512::tile_pair_taps_tiled_avx512(
                kc,
                (a.as_ptr(), MR * k),
                b,
                (c, ldc, rows, add),
                ahead,
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (c, ldc, add, taps, ahead);
}

/// Two [`tile_pair`]s on consecutive row blocks (`a`'s rows `0..MR` and `MR..2 * MR`):
/// `out[r * 2 NR + h * NR + c]` for `r < 2 * MR`. One 12x32 kernel on AVX-512F, two 6x32 tiles
/// elsewhere.
pub fn tile_block(
    k: usize,
    a: &[f32],
    lda: usize,
    (b0, b1): (&[f32], &[f32]),
    out: &mut [f32; 2 * MR * 2 * NR],
) {
    assert!(
        lda >= k && a.len() >= (2 * MR - 1) * lda + k,
        "micro-kernel rows too short"
    );
    check_extents(k, a, lda, b0);
    check_extents(k, a, lda, b1);
    #[cfg(target_arch = "x86_64")]
    if path() == KernelPath::Avx512F {
        // SAFETY: `path` chose AVX-512F, so the CPU has it; the extents were checked.
        unsafe { avx512::tile_block_avx512(k, a.as_ptr(), lda, (b0.as_ptr(), b1.as_ptr()), out) };
        return;
    }
    let (top, bottom) = out.split_at_mut(MR * 2 * NR);
    tile_pair(k, a, lda, (b0, b1), top.try_into().expect("MR rows"));
    let bottom: &mut [f32; MR * 2 * NR] = bottom.try_into().expect("MR rows");
    tile_pair(k, &a[MR * lda..], lda, (b0, b1), bottom);
}

/// [`tile`] on a given path; panics when the CPU lacks it (see [`KernelPath::available`]).
pub fn tile_on(
    path: KernelPath,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    out: &mut [f32; MR * NR],
) {
    check_extents(k, a, lda, b);
    assert!(
        path.available(),
        "f32 path {} not available on this CPU",
        path.name()
    );
    // SAFETY: both checked just above.
    unsafe { dispatch(path, k, a, lda, b, out) };
}

/// The rows a pair kernel call reads of `a` (`MR`, or `2 MR` for more than `MR` rows) and
/// its row count, checked.
fn check_pair_rows(k: usize, a: &[f32], lda: usize, rows: usize) {
    let block = if rows > MR { 2 * MR } else { MR };
    assert!(
        (1..=2 * MR).contains(&rows) && lda >= k && a.len() >= (block - 1) * lda + k,
        "micro-kernel rows too short"
    );
}

fn check_extents(k: usize, a: &[f32], lda: usize, b: &[f32]) {
    assert!(
        lda >= k && a.len() >= (MR - 1) * lda + k && b.len() >= k * NR,
        "micro-kernel panels too short"
    );
}

/// # Safety
/// The CPU must have `path` (checked once, by [`path`] or [`tile_on`], not per tile) and the
/// panels must pass [`check_extents`].
unsafe fn dispatch(
    path: KernelPath,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    out: &mut [f32; MR * NR],
) {
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller guarantees AVX-512F and the panel lengths.
        KernelPath::Avx512F => unsafe { avx512::tile_avx512(k, a.as_ptr(), lda, b.as_ptr(), out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller guarantees AVX2 and FMA and the panel lengths.
        KernelPath::Avx2Fma => unsafe { x86::tile_avx2(k, a.as_ptr(), lda, b.as_ptr(), out) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is baseline on aarch64; the caller guarantees the panel lengths.
        KernelPath::Neon => unsafe { neon::tile_neon(k, a.as_ptr(), lda, b.as_ptr(), out) },
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        // SAFETY: the module was compiled with SIMD128; the caller guarantees the panel lengths.
        KernelPath::Simd128 => unsafe { wasm::tile_simd128(k, a.as_ptr(), lda, b.as_ptr(), out) },
        _ => portable::tile(k, a, lda, b, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The detected path against the portable reference; `path()` is printed so a CI log shows
    /// which kernel was exercised.
    #[test]
    fn matches_the_portable_loop() {
        eprintln!("f32 micro-kernel path: {}", path().name());
        let (k, lda) = (37, 40);
        let a: Vec<f32> = (0..lda * MR).map(|i| (i % 13) as f32 - 6.0).collect();
        let b: Vec<f32> = (0..k * NR).map(|i| (i % 7) as f32 * 0.5 - 1.0).collect();
        let (mut x, mut y) = ([0f32; MR * NR], [0f32; MR * NR]);
        tile(k, &a, lda, &b, &mut x);
        portable::tile(k, &a, lda, &b, &mut y);
        // Small integers and halves: exact in f32 whatever the summation order.
        assert_eq!(x, y);
        for (name, got) in every_kernel(k, &a, lda, &b) {
            assert_eq!(got, y, "{name}");
        }
        // The reference itself against the definition, every row and column.
        for r in 0..MR {
            for c in 0..NR {
                let want: f32 = (0..k).map(|i| a[r * lda + i] * b[i * NR + c]).sum();
                assert_eq!(y[r * NR + c], want, "row {r}, column {c}");
            }
        }
    }

    /// Two panels at once ([`tile_pair`], its own 6x32 kernel on AVX-512F) equal two portable
    /// tiles, each half on its own panel (exact values, so bit for bit).
    #[test]
    fn a_pair_is_two_tiles() {
        let (k, lda) = (29, 31);
        let a: Vec<f32> = (0..lda * MR).map(|i| (i % 11) as f32 - 5.0).collect();
        let b0: Vec<f32> = (0..k * NR).map(|i| (i % 7) as f32 * 0.5 - 1.0).collect();
        let b1: Vec<f32> = (0..k * NR).map(|i| (i % 5) as f32 * 0.25 - 0.5).collect();
        let mut got = [0f32; MR * 2 * NR];
        tile_pair(k, &a, lda, (&b0, &b1), &mut got);
        for (h, b) in [&b0, &b1].into_iter().enumerate() {
            let mut want = [0f32; MR * NR];
            portable::tile(k, &a, lda, b, &mut want);
            for r in 0..MR {
                assert_eq!(
                    &got[r * 2 * NR + h * NR..][..NR],
                    &want[r * NR..][..NR],
                    "{} row {r} panel {h}",
                    path().name()
                );
            }
        }
    }

    /// Twelve rows at once ([`tile_block`], its own 12x32 kernel on AVX-512F) equal four
    /// portable tiles, one per row block and panel (exact values, so bit for bit).
    #[test]
    fn a_block_is_four_tiles() {
        let (k, lda) = (29, 31);
        let a: Vec<f32> = (0..lda * 2 * MR).map(|i| (i % 13) as f32 - 6.0).collect();
        let b0: Vec<f32> = (0..k * NR).map(|i| (i % 7) as f32 * 0.5 - 1.0).collect();
        let b1: Vec<f32> = (0..k * NR).map(|i| (i % 5) as f32 * 0.25 - 0.5).collect();
        let mut got = [0f32; 2 * MR * 2 * NR];
        tile_block(k, &a, lda, (&b0, &b1), &mut got);
        for half in 0..2 {
            for (h, b) in [&b0, &b1].into_iter().enumerate() {
                let mut want = [0f32; MR * NR];
                portable::tile(k, &a[half * MR * lda..], lda, b, &mut want);
                for r in 0..MR {
                    assert_eq!(
                        &got[(half * MR + r) * 2 * NR + h * NR..][..NR],
                        &want[r * NR..][..NR],
                        "{} row {} panel {h}",
                        path().name(),
                        half * MR + r
                    );
                }
            }
        }
    }

    /// The tile by every kernel this CPU has, the detected one included, and on x86-64 by the
    /// AVX-512 tile loop over its plain-Rust model (so its indexing is tested without AVX-512).
    fn every_kernel(k: usize, a: &[f32], lda: usize, b: &[f32]) -> Vec<(String, [f32; MR * NR])> {
        let paths = [
            KernelPath::Avx512F,
            KernelPath::Avx2Fma,
            KernelPath::Neon,
            KernelPath::Simd128,
            KernelPath::Portable,
        ];
        let mut out = Vec::new();
        for p in paths.into_iter().filter(|p| p.available()) {
            let mut x = [f32::NAN; MR * NR];
            tile_on(p, k, a, lda, b, &mut x);
            out.push((p.name().to_string(), x));
        }
        assert!(out.iter().any(|(n, _)| n == path().name()));
        #[cfg(target_arch = "x86_64")]
        {
            let mut x = [f32::NAN; MR * NR];
            // SAFETY: the model needs no CPU feature; `tile_on` checked these extents above.
            unsafe { avx512::tile_model(k, a.as_ptr(), lda, b.as_ptr(), &mut x) };
            out.push(("avx512 tile loop (model)".to_string(), x));
        }
        out
    }

    /// `FQ_MAX_ISA` lowers the choice and never raises it: `portable` gives the portable loop,
    /// no ceiling what the CPU has.
    #[test]
    fn the_ceiling_only_lowers_the_path() {
        let native = KernelPath::detect(MaxIsa::Native);
        assert_eq!(KernelPath::detect(MaxIsa::Portable), KernelPath::Portable);
        let avx2 = KernelPath::detect(MaxIsa::Avx2);
        // On x86-64 the `avx2` ceiling is AVX2+FMA (or portable without it), the CPU's own path
        // unless that is AVX-512. Elsewhere it names no instruction set of the architecture:
        // portable on aarch64, SIMD128 (fixed at compile time) on wasm32.
        #[cfg(target_arch = "x86_64")]
        {
            assert!(
                matches!(avx2, KernelPath::Avx2Fma | KernelPath::Portable),
                "{avx2:?}"
            );
            assert!(
                avx2 == native || native == KernelPath::Avx512F,
                "{avx2:?} {native:?}"
            );
        }
        #[cfg(not(target_arch = "x86_64"))]
        assert!(
            avx2 == native || avx2 == KernelPath::Portable,
            "{avx2:?} {native:?}"
        );
        if max_isa() == MaxIsa::Native {
            assert_eq!(path(), native);
        }
    }

    /// Arbitrary floats, every `k` from 0 to 70 and a ragged `lda`: the detected kernel within
    /// rounding of the portable loop (a fused multiply-add rounds once where `a * b + c` rounds
    /// twice, so only the sum of small integers above is compared bit for bit).
    #[test]
    fn matches_the_portable_loop_on_random_values() {
        eprintln!("f32 micro-kernel path: {}", path().name());
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        for k in 0..=70 {
            let lda = k + 3;
            let a: Vec<f32> = (0..lda * MR).map(|_| next()).collect();
            let b: Vec<f32> = (0..k * NR).map(|_| next()).collect();
            let mut y = [f32::NAN; MR * NR];
            portable::tile(k, &a, lda, &b, &mut y);
            for (name, x) in every_kernel(k, &a, lda, &b) {
                for (j, (u, v)) in x.iter().zip(&y).enumerate() {
                    // Sums of k products of magnitude < 1: the error bound scales with k.
                    let tol = 1e-6 * (k as f32 + 1.0);
                    assert!(
                        (u - v).abs() <= tol,
                        "{name}, k {k}, element {j}: {u} vs {v}"
                    );
                }
            }
        }
    }
}
