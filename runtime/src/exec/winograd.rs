//! 3x3 stride-1 convolutions of the f32 path by Winograd's minimal filtering F(2x2, 3x3)
//! (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): each 2x2 block of
//! outputs (a *tile*) comes from the 4x4 patch of input under it, transformed (`Bᵀ d B`),
//! multiplied point by point with the transformed filter (`G g Gᵀ`, made once per layer) and
//! transformed back (`Aᵀ m A`). Summed over the input channels, the 16 points of the transform
//! domain are 16 independent GEMMs, `M_ξ[tile][o] = Σ_c V_ξ[tile][c] U_ξ[c][o]`: 16
//! multiply-adds per tile and channel pair instead of 36, 2.25 times fewer. On the AVX-512F
//! and AVX2 paths the layers of large maps and few weights take F(4x4, 3x3) instead ([`Tile`],
//! [`tile_for`]): 4x4 tiles from 6x6 patches, 36 points, 4 times fewer multiply-adds.
//!
//! Why: the f32 path's direct convolution ([`super::conv_direct`]) runs its kernel at the CPU's
//! peak, and so does onnxruntime's (MLAS), so the only way past it is less arithmetic. ResNet18
//! spends 83% of its multiply-adds in 3x3 stride-1 convolutions, ResNet50 37%. XNNPACK and NCNN
//! do the same; F(2x2, 3x3) keeps the rounding closest to the direct sum's (its transforms only
//! add, subtract and halve); F(4x4, 3x3)'s larger tiles round more (multiples up to 8, sixths in
//! its filters'), within the bound the tests hold both to.
//!
//! Layout: the tiles are the GEMMs' rows and the output channels their columns, so the weights
//! are the packed panels the micro-kernel streams (`U_ξ`, made on the layer's first run) and a
//! 7x7 map's 16 tiles are 18 rows of work (a 12-row and a 6-row block), not 32 columns. The
//! input is first copied channels-last ([`tile_rows`]), so that the input transform reads and
//! writes whole runs of channels, and the output transform writes each output channel's pixels,
//! finished by the epilogue as every convolution is.
//! Either value may lie in blocks of 16 channels instead ([`super::blocked`]): the input is then
//! copied a pixel's channels at a time (no transpose), the output tiles' channels written pixel
//! by pixel.

use rayon::prelude::*;

use super::blocked::{Layout, LANES as BLOCK_LANES};
use super::buf::Buf;
use super::disjoint::Shared;
use super::epilogue::{finish_pixels, finish_row};
use super::gemm::Epilogue;
use super::im2col::Geometry;
#[cfg(target_arch = "x86_64")]
use super::kernel::{path, KernelPath};
use super::kernel::{tile_pair_halves_to, tile_pair_to, MR, NR};
use super::scratch::Spare;
use super::transpose::columns_to_rows;

/// The transformed inputs (`V`), kept between layers and runs apart from the activations' pool
/// ([`super::scratch::F32`]): sharing it, they displaced the activations, and both were
/// allocated and faulted in again on every image.
static POINTS: Spare<f32> = Spare::new();

thread_local! {
    /// Each thread's block of `M` ([`conv_winograd`]'s tasks), kept between tasks.
    static PRODUCTS: std::cell::Cell<Buf<f32>> = const { std::cell::Cell::new(Buf::new()) };
}

/// Points of F(2x2, 3x3)'s transform domain (4x4).
const XI: usize = 16;
/// Tiles (GEMM rows) per kernel call.
const ROWS: usize = 2 * MR;
/// Output channels per kernel call (a pair of panels).
const PAIR: usize = 2 * NR;

/// The tile of a layer's transform: F(2x2, 3x3) (16 points, 2.25 times fewer multiply-adds
/// than the direct sum) or F(4x4, 3x3) (36 points, 4 times fewer) ([`tile_for`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tile {
    F2,
    F4,
}

impl Tile {
    /// Output pixels along each side of a tile.
    const fn out(self) -> usize {
        match self {
            Tile::F2 => 2,
            Tile::F4 => 4,
        }
    }

    /// Input pixels along each side of the patch under a tile.
    const fn patch(self) -> usize {
        self.out() + 2
    }

    /// Points of the transform domain.
    const fn points(self) -> usize {
        self.patch() * self.patch()
    }

    /// The tile whose transformed weights of `pairs` pairs of panels over `c` channels are
    /// `len` floats.
    fn of_weights(len: usize, pairs: usize, c: usize) -> Tile {
        match len / (pairs * c * PAIR).max(1) {
            16 => Tile::F2,
            36 => Tile::F4,
            _ => panic!("winograd: {len} transformed weights for {pairs} pairs of {c} channels"),
        }
    }

    /// Tiles down and across an output map.
    fn grid(self, g: &Geometry) -> (usize, usize) {
        (g.ho.div_ceil(self.out()), g.wo.div_ceil(self.out()))
    }
}

/// Transformed weights (bytes, as floats) up to which a layer takes F(4x4, 3x3) ([`tile_for`]).
const F4_MAX_BYTES: usize = 4 << 20;

/// The tile of a layer ([`suits`]) of `m` filters: F(4x4, 3x3) on the AVX-512F and AVX2 paths
/// where its
/// tiles cover the map with little to spare (sides of 4 pixels: ResNet's 56x56 and 28x28 maps;
/// its 14x14 and 7x7 ones would compute 31% more pixels) and its transformed weights (36/16 of
/// F(2x2, 3x3)'s) stay in cache ([`F4_MAX_BYTES`]: ResNet's 64- and 128-channel layers);
/// F(2x2, 3x3) elsewhere.
///
/// Why: F(4x4, 3x3) multiplies 36 points per 16 output pixels where F(2x2, 3x3) multiplies 16
/// per 4, 1.78 times fewer multiply-adds; its transforms round more (multiples of 2, 4, 5 and
/// 8, and sixths in the filters'), which the tests bound as the direct sum's. In ResNet50
/// (`step_times`, both tiles' weights alternated in one process, 4 processes, the Xeon of stop
/// 65): its 64-channel layers on 56x56 0.495-0.547 -> 0.451-0.469 ms, its 128-channel ones on
/// 28x28 0.504-0.518 -> 0.417-0.427 ms. On the AVX2 path (`FQ_MAX_ISA=avx2` on the same Xeon,
/// 3 processes): those layers 1.28-1.32 -> 0.88-0.95 and 1.06-1.11 -> 0.75-0.80 ms, ResNet18's
/// step sum 22.8 -> 20.3 ms. The portable, NEON and wasm paths keep F(2x2, 3x3): the transforms
/// have no vector code of theirs (the plain form, kept for the tests and any caller, rounds
/// each `k a + b` once through `f32::mul_add`).
pub fn tile_for(geo: &Geometry, m: usize) -> Tile {
    let cover = |t: usize| geo.ho.div_ceil(t) * t * geo.wo.div_ceil(t) * t;
    let bytes = Tile::F4.points() * padded(m) * geo.c * std::mem::size_of::<f32>();
    if vector_transforms() && bytes <= F4_MAX_BYTES && cover(4) <= cover(2) {
        Tile::F4
    } else {
        Tile::F2
    }
}

/// Whether the kernel path is AVX-512F.
fn path_is_avx512f() -> bool {
    super::kernel::path() == super::kernel::KernelPath::Avx512F
}

/// Whether F(4x4, 3x3)'s transforms have vector code on this CPU's path: AVX-512F and AVX2
/// with FMA ([`input_row4`], [`run_out4`]).
fn vector_transforms() -> bool {
    use super::kernel::KernelPath;
    matches!(
        super::kernel::path(),
        KernelPath::Avx512F | KernelPath::Avx2Fma
    )
}

/// Whether a convolution group runs here: 3x3, stride 1, with enough channels for the transforms
/// to pay for themselves (a stem's 3 input channels do not), on every f32 kernel path (the
/// micro-kernel is each path's own: [`tile_pair_to`]; the transforms are compiled for AVX-512F or
/// AVX2 where the CPU has them, for the baseline's vectors elsewhere: NEON on aarch64, SIMD128 in
/// a wasm build with it).
pub fn suits(geo: &Geometry, m: usize) -> bool {
    geo.kernel == 3
        && geo.stride == 1
        && geo.padding <= 2
        && geo.c >= 16
        && m >= 16
        && geo.ho >= 2
        && geo.wo >= 2
}

/// Output channels of `m` as the transformed weights hold them: whole pairs of panels.
fn padded(m: usize) -> usize {
    m.div_ceil(PAIR) * PAIR
}

/// A layer's transformed weights (`U`, [`transform_weights`]) as [`conv_winograd`] reads them:
/// the floats, or each one times 4 as an `i16` ([`quarters`]), which the kernel turns into its
/// float as it loads it (then the epilogue's scales must hold the quarter: `4 U` multiplies
/// every sum by 4, exactly).
#[derive(Clone, Copy)]
pub enum Transformed<'a> {
    F32(&'a [f32]),
    Quarters(&'a [i16]),
}

impl Transformed<'_> {
    fn len(&self) -> usize {
        match self {
            Transformed::F32(u) => u.len(),
            Transformed::Quarters(q) => q.len(),
        }
    }
}

/// Bytes of `U` (as floats) from which a layer keeps it as quarters ([`quarters_pay`]).
const QUARTERS_MIN_BYTES: usize = 4 << 20;

/// Whether a layer of `c` input channels and `m` filters keeps its `U` as quarters
/// ([`QuarterWeights`]): on AVX-512F (whose kernel turns them into floats in its registers), when
/// `U` is large enough to come from memory on every image.
///
/// Why the size: the conversion costs the kernel two instructions per row of `B`, which a layer
/// whose `U` stays in cache pays for nothing. In ResNet18 (`step_times`, the Xeon of stop 52, 3
/// rounds alternated): its last stage's 512-channel convolutions (16.8 MB of `U`) 0.89-1.03 ->
/// 0.75-0.86 ms, the 256-channel ones (4.2 MB) unchanged, the 128- and 64-channel ones (1 MB and
/// 0.26 MB) 0.02-0.04 ms slower each.
/// F(4x4, 3x3)'s transformed weights are no quarters (its `G` holds sixths), and its layers'
/// are small: only F(2x2, 3x3) layers keep them.
pub fn quarters_pay(geo: &Geometry, m: usize) -> bool {
    let bytes = XI * padded(m) * geo.c * std::mem::size_of::<f32>();
    path_is_avx512f() && bytes >= QUARTERS_MIN_BYTES && tile_for(geo, m) == Tile::F2
}

/// A layer's transformed weights as quarters ([`quarters`]) with the epilogue's scales that go
/// with them (the layer's own, a quarter of each).
pub struct QuarterWeights {
    pub u: Vec<i16>,
    pub scales: Vec<f32>,
}

impl QuarterWeights {
    /// `u` (of `m` filters) as quarters, with `scales` (or 1 for every filter) quartered; `None`
    /// where `u` is not made of quarters.
    ///
    /// Why: `U` is the f32 path's largest weights (16/9 of the filters': 16.8 MB for each of
    /// ResNet18's last three convolutions) and a model's weights do not stay in cache from one
    /// image to the next (ResNet18's f32 ones, 73 MB, came from memory: timed alone with 128 MB
    /// of other data between runs, its last stage's convolutions took 1.08 ms against 0.74 with
    /// its weights in L3, as in the model's 1.0). As `i16` they are half the bytes, and the
    /// kernel turns them into floats in its registers: alone on the Xeon of stop 52 (2 threads),
    /// 1.08 -> 0.88 ms cold and 0.74 -> 0.68 ms warm. Which layers: [`quarters_pay`].
    pub fn new(u: &[f32], scales: Option<&[f32]>, m: usize) -> Option<Self> {
        let u = quarters(u)?;
        let scales = (0..m)
            .map(|o| scales.map_or(1.0, |s| s[o]) * 0.25)
            .collect();
        Some(Self { u, scales })
    }
}

/// `U` times 4 as `i16`, when every value of it is a whole number of quarters within `i16`'s
/// range: the transform of integer weights (a packed layer's codes, which the executor
/// multiplies by their scales in the epilogue) only adds, subtracts and halves twice, so its
/// values are quarters (at most 9 x 128 x 4 in magnitude for 8-bit codes), exact as floats and
/// as `i16`. `None` for any other weights (an FP32 export's).
fn quarters(u: &[f32]) -> Option<Vec<i16>> {
    u.iter()
        .map(|&v| {
            let q = v * 4.0;
            (q.fract() == 0.0 && q.abs() <= f32::from(i16::MAX)).then_some(q as i16)
        })
        .collect()
}

/// The transformed weights of `m` filters over `c` channels, `w` being `[m][c][3][3]` row-major
/// (the unpacked rows of the layer; the epilogue's scale applies after, as on every path):
/// `u[((ξ * panels + q) * c + i) * NR + l] = (G g Gᵀ)_ξ` of filter `q * NR + l`, channel `i`,
/// zero past `m`: for each point, the panels the micro-kernel reads (`[c][NR]` each), in pairs.
pub fn transform_weights(w: &[f32], m: usize, c: usize, tile: Tile) -> Buf<f32> {
    assert_eq!(w.len(), m * c * 9, "winograd: weights of {m} x {c} x 3 x 3");
    let panels = padded(m) / NR;
    let mut u = Buf::zeroed(tile.points() * panels * c * NR);
    let base = Shared(u.as_mut_ptr());
    (0..m).into_par_iter().for_each(|o| {
        let (q, l) = (o / NR, o % NR);
        for i in 0..c {
            let g = w[(o * c + i) * 9..][..9].try_into().expect("9 taps");
            // On the stack, either size (no allocation per filter and channel).
            let (f2, f4);
            let t: &[f32] = match tile {
                Tile::F2 => {
                    f2 = filter_transform(g);
                    &f2
                }
                Tile::F4 => {
                    f4 = filter_transform4(g);
                    &f4
                }
            };
            for (xi, &v) in t.iter().enumerate() {
                // SAFETY: filter `o` alone writes lane `l` of panel `q`: one element per point
                // and channel, inside `u`, which outlives the loop.
                unsafe { *base.offset(((xi * panels + q) * c + i) * NR + l).0 = v };
            }
        }
    });
    u
}

/// `G g Gᵀ` for one 3x3 filter `g` (row-major), as 16 points row-major; `G` is
/// `[[1, 0, 0], [½, ½, ½], [½, -½, ½], [0, 0, 1]]`.
fn filter_transform(g: &[f32; 9]) -> [f32; XI] {
    let col = |a: f32, b: f32, c: f32| [a, (a + b + c) * 0.5, (a - b + c) * 0.5, c];
    // `G g`: 4 rows of 3.
    let mut gg = [[0f32; 3]; 4];
    for j in 0..3 {
        let t = col(g[j], g[3 + j], g[6 + j]);
        for (r, v) in t.into_iter().enumerate() {
            gg[r][j] = v;
        }
    }
    let mut out = [0f32; XI];
    for (r, row) in gg.iter().enumerate() {
        out[r * 4..r * 4 + 4].copy_from_slice(&col(row[0], row[1], row[2]));
    }
    out
}

/// `G g Gᵀ` of F(4x4, 3x3) for one 3x3 filter `g` (row-major), as 36 points row-major; `G` is
/// `[[¼, 0, 0], [-⅙, -⅙, -⅙], [-⅙, ⅙, -⅙], [1/24, 1/12, ⅙], [1/24, -1/12, ⅙], [0, 0, 1]]`
/// (Lavin & Gray's), computed in f64 and rounded once.
fn filter_transform4(g: &[f32; 9]) -> [f32; 36] {
    let col = |a: f64, b: f64, c: f64| {
        [
            a / 4.0,
            -(a + b + c) / 6.0,
            -(a - b + c) / 6.0,
            a / 24.0 + b / 12.0 + c / 6.0,
            a / 24.0 - b / 12.0 + c / 6.0,
            c,
        ]
    };
    let g = g.map(f64::from);
    // `G g`: 6 rows of 3.
    let mut gg = [[0f64; 3]; 6];
    for j in 0..3 {
        for (r, v) in col(g[j], g[3 + j], g[6 + j]).into_iter().enumerate() {
            gg[r][j] = v;
        }
    }
    let mut out = [0f32; 36];
    for (r, row) in gg.iter().enumerate() {
        for (s, v) in col(row[0], row[1], row[2]).into_iter().enumerate() {
            out[r * 6 + s] = v as f32;
        }
    }
    out
}

/// The padded input rows under tile row `ty` (4 for F(2x2, 3x3), 6 for F(4x4, 3x3)),
/// channels-last: pixel `(u, x)` (`x` from `-padding`, `wp = T tw + 2` of them for tiles of `T`)
/// at `(u * wp + x + padding) * c` of `buf`, zero past the input's borders. Each task makes
/// those of its tile rows (two of them are the previous tile row's too): a copy of the whole input first was one more pass and one more parallel
/// loop per layer.
///
/// A blocked input ([`Layout`]) is copied a pixel's `BLOCK_LANES` channels at a time instead of
/// transposed.
fn tile_rows(
    (x, blocked): (&[f32], bool),
    g: &Geometry,
    (tile, ty): (Tile, usize),
    wp: usize,
    buf: &mut Buf<f32>,
) {
    let (c, p, a) = (g.c, g.padding, tile.patch());
    buf.resize(a * wp * c, 0.0);
    for (u, row) in buf[..a * wp * c].chunks_exact_mut(wp * c).enumerate() {
        match (tile.out() * ty + u).checked_sub(p) {
            Some(y) if y < g.h => {
                row[..p * c].fill(0.0);
                row[(p + g.w) * c..].fill(0.0);
                if blocked {
                    let plane = g.h * g.w * BLOCK_LANES;
                    let pixels = row[p * c..(p + g.w) * c].chunks_exact_mut(c);
                    for (px, dst) in pixels.enumerate() {
                        let at = (y * g.w + px) * BLOCK_LANES;
                        for (b, lanes) in dst.chunks_exact_mut(BLOCK_LANES).enumerate() {
                            lanes.copy_from_slice(&x[b * plane + at..][..BLOCK_LANES]);
                        }
                    }
                } else {
                    transpose_row(&x[y * g.w..], g.h * g.w, (c, g.w), &mut row[p * c..]);
                }
            }
            _ => row.fill(0.0),
        }
    }
}

thread_local! {
    /// Each thread's buffer of [`tile_rows`], kept between layers.
    static TILE_ROWS: std::cell::Cell<Buf<f32>> = const { std::cell::Cell::new(Buf::new()) };
}

/// `dst[x * c + i] = src[i * pitch + x]` for `x < w`, `i < c`: one row of pixels of every
/// channel, channels-last, by [`columns_to_rows`] (16x16 blocks through registers on AVX-512F).
///
/// Why: element by element (in 8x8 blocks) this copy was 19% of a 64-channel 56x56 layer's time
/// on one core of the Xeon of stop 52, as much as half its multiply-adds.
fn transpose_row(src: &[f32], pitch: usize, (c, w): (usize, usize), dst: &mut [f32]) {
    assert!(dst.len() >= w * c, "transpose_row: destination");
    // SAFETY: `dst` holds the `w` rows of `c` floats written, and is borrowed mutably here.
    unsafe { columns_to_rows(src, pitch, (c, w), Shared(dst.as_mut_ptr()), c) };
}

/// `out = epilogue(conv(x))` for one group ([`suits`]): `x` is `[geo.c, geo.h, geo.w]`, `u` the
/// group's `m` filters transformed ([`transform_weights`]), `out` `[m, ho * wo]`; `epi`'s rows
/// are the group's. Either value may be in blocks of channels instead ([`Layout`]; `c` and `m`
/// then multiples of [`BLOCK_LANES`]), the residual laid out as `out`.
pub fn conv_winograd(
    x: &[f32],
    geo: &Geometry,
    u: Transformed,
    m: usize,
    out: &mut [f32],
    (epi, layout): (Epilogue, Layout),
) {
    assert!(
        (!layout.input_blocked || geo.c.is_multiple_of(BLOCK_LANES))
            && (!layout.output_blocked || m.is_multiple_of(BLOCK_LANES)),
        "winograd: blocks of {} or {m} channels",
        geo.c
    );
    let pairs = padded(m) / PAIR;
    let tile = Tile::of_weights(u.len(), pairs, geo.c);
    let bands = band_rows(geo, tile, pairs, rayon::current_num_threads().max(1));
    run(x, geo, u, m, out, (epi, layout), bands)
}

/// Transformed weights (bytes) up to which a layer runs in bands ([`band_rows`]): every task
/// then reads all of them, which should stay in its core's L2 (1 MB on Zen 4, 2 MB on the
/// Xeon) beside its band's transformed inputs and products.
///
/// Above ResNet's 64-channel layers' as F(4x4, 3x3) (576 KB; 256 KB as F(2x2, 3x3)): in
/// bands, their transformed tiles stay in L2 (252 KB a band of 2 tile rows, against 1.8 MB for
/// the whole map). ResNet50's three on 56x56 (`step_times`, alternated in one
/// process, 4 processes, the Xeon of stop 65): 0.454-0.487 ms each with the whole map
/// transformed, 0.423-0.468 in bands.
const BAND_MAX_WEIGHTS: usize = 640 << 10;

/// A band's transformed tiles (bytes) at most: a quarter of a Zen 4 core's L2, 2 tile rows of
/// ResNet's first stage.
const BAND_MAX_POINTS: usize = 256 << 10;

/// Tile rows per task where a layer's tasks transform their own tile rows and multiply them
/// with every output channel (bands), or `None` where the whole input is transformed first and
/// the tasks then split the channels too.
///
/// Why: the whole input transformed is 16/4 = 4 times the input (ResNet's first stage: 3.2 MB
/// at 56x56x64), written out and read back from beyond L2; a band's (28 tiles: 115 KB) stays in
/// L2 between its transform and its products. Splitting the channels as well would transform
/// each band once per task, so bands suit layers of few weights (ResNet's first stage: 256 KB
/// transformed) and many tiles. The band height minimises the rounds of equal tasks on
/// `threads` times the kernel's row blocks per task (12 rows, or 6 at the end), with two tasks
/// a thread at least (so that one slowed thread's work is taken by the others).
fn band_rows(geo: &Geometry, tile: Tile, pairs: usize, threads: usize) -> Option<usize> {
    let (th, tw) = tile.grid(geo);
    let xi = tile.points();
    let weights = xi * pairs * PAIR * geo.c * std::mem::size_of::<f32>();
    // A band's transformed tiles, per tile row.
    let per_row = xi * tw * geo.c * std::mem::size_of::<f32>();
    if weights > BAND_MAX_WEIGHTS || th < 2 * threads || per_row > BAND_MAX_POINTS {
        return None;
    }
    let work = |r: usize| {
        let tiles = r * tw;
        tiles / ROWS * ROWS
            + match tiles % ROWS {
                0 => 0,
                t if t <= MR => MR,
                _ => ROWS,
            }
    };
    (1..=th)
        .take_while(|&r| r * per_row <= BAND_MAX_POINTS && th.div_ceil(r) >= 2 * threads)
        .min_by_key(|&r| th.div_ceil(r).div_ceil(threads) * work(r))
}

/// [`conv_winograd`] in bands of `bands` tile rows ([`band_rows`]) or, with `None`, with the
/// whole input transformed first.
fn run(
    x: &[f32],
    geo: &Geometry,
    u: Transformed,
    m: usize,
    out: &mut [f32],
    (epi, layout): (Epilogue, Layout),
    bands: Option<usize>,
) {
    let g = geo;
    let (c, n) = (g.c, g.n());
    assert_eq!(x.len(), c * g.h * g.w, "winograd: input size");
    assert_eq!(out.len(), m * n, "winograd: output size");
    let pairs = padded(m) / PAIR;
    let tile = Tile::of_weights(u.len(), pairs, c);
    let xi = tile.points();
    assert_eq!(
        u.len(),
        xi * pairs * c * PAIR,
        "winograd: transformed weights"
    );
    let (th, tw) = tile.grid(g);
    let tiles = th * tw;
    let products = Products {
        g,
        tile,
        u,
        m,
        base: Shared(out.as_mut_ptr()),
        epi: &epi,
        blocked: layout.output_blocked,
    };
    let x = (x, layout.input_blocked);
    if let Some(rows_per) = bands {
        (0..th.div_ceil(rows_per)).into_par_iter().for_each(|band| {
            let (ty0, ty1) = (band * rows_per, ((band + 1) * rows_per).min(th));
            let (t0, t1) = (ty0 * tw, ty1 * tw);
            // As below, for the band's tiles alone: tile `t0 + t` at row `t`.
            let rows = (t1 - t0).div_ceil(MR) * MR + MR;
            let mut v = BAND.take();
            v.resize(xi * rows * c, 0.0);
            transform_tiles(x, (g, tile), (ty0, ty1), (Shared(v.as_mut_ptr()), rows, t0));
            products.task(&v, (rows, t0), (ty0, ty1, 0, pairs));
            BAND.set(v);
        });
        return;
    }
    // `V_ξ[t][i]` at `v[(ξ * rows + t) * c + i]`, with rows past the last tile: the micro-kernel
    // reads whole 6- or 12-row blocks. Those rows hold whatever the buffer held: their sums are
    // never stored (the kernel stores a block's real rows alone), so they are not zeroed (up to
    // 11 rows of every point, 260 KB per layer at 512 channels, zeroed by one thread while the
    // other waited).
    let rows = tiles.div_ceil(MR) * MR + MR;
    let mut v = POINTS.take(xi * rows * c, false);
    {
        let vb = Shared(v.as_mut_ptr());
        (0..th).into_par_iter().for_each(|ty| {
            transform_tiles(x, (g, tile), (ty, ty + 1), (vb, rows, 0));
        });
    }
    let split = TaskSplit::new(th, pairs);
    let vs = &v[..];
    super::tasks::each(split.tasks(), |task| {
        products.task(vs, (rows, 0), split.task(task))
    });
    POINTS.give(v);
}

thread_local! {
    /// Each thread's transformed band ([`run`] in bands), kept between tasks and layers.
    static BAND: std::cell::Cell<Buf<f32>> = const { std::cell::Cell::new(Buf::new()) };
}

/// `V` of the tiles of tile rows `ty0..ty1`, tile `t = ty * tw + tx` at row `t - v0` of each
/// point's matrix (`rows` rows of `c` floats) in `v`.
fn transform_tiles(
    x: (&[f32], bool),
    (g, tile): (&Geometry, Tile),
    (ty0, ty1): (usize, usize),
    (v, rows, v0): (Shared<f32>, usize, usize),
) {
    let tw = tile.grid(g).1;
    // The padded width of the input rows under a tile row ([`tile_rows`]).
    let wp = tile.out() * tw + 2;
    let mut buf = TILE_ROWS.take();
    for ty in ty0..ty1 {
        tile_rows(x, g, (tile, ty), wp, &mut buf);
        if tile == Tile::F4 {
            // SAFETY: as below.
            unsafe { input_row4(&buf, (wp, g.c), tw, v, (ty * tw - v0, rows)) };
            continue;
        }
        #[cfg(target_arch = "x86_64")]
        if path() == KernelPath::Avx512F {
            // SAFETY: the CPU has AVX-512F (`path`); this call alone writes this tile row's
            // rows of every point's matrix, which lie in `v` (`ty * tw + tw - 1 - v0 < rows`).
            unsafe { input_row_avx512(&buf, (wp, g.c), tw, v, (ty * tw - v0, rows)) };
            continue;
        }
        for tx in 0..tw {
            // SAFETY: this call alone writes this tile's row of every point's matrix, which
            // lies in `v` (`ty * tw + tx - v0 < rows`).
            unsafe { input_tile(&buf, (wp, g.c), tx, v, (ty * tw + tx - v0, rows)) };
        }
    }
    TILE_ROWS.set(buf);
}

/// What every task of a layer multiplies its transformed tiles with, and where it writes.
struct Products<'a> {
    g: &'a Geometry,
    tile: Tile,
    u: Transformed<'a>,
    m: usize,
    base: Shared<f32>,
    epi: &'a Epilogue<'a>,
    /// Whether `base` is a blocked value ([`Layout`]).
    blocked: bool,
}

impl Products<'_> {
    /// Tile rows `ty0..ty1`, channel pairs `p0..p1`: their products, output transform and
    /// epilogue. `vs` holds the transformed tiles from tile `v0` on, `rows` rows per point.
    fn task(&self, vs: &[f32], (rows, v0): (usize, usize), task: (usize, usize, usize, usize)) {
        let (g, u, c, tile) = (self.g, self.u, self.g.c, self.tile);
        let (xi_n, pairs) = (tile.points(), padded(self.m) / PAIR);
        let (th, tw) = tile.grid(g);
        let (n, tiles) = (g.n(), th * tw);
        let (ty0, ty1, p0, p1) = task;
        let (t0, t1) = (ty0 * tw, (ty1 * tw).min(tiles));
        let o0 = p0 * PAIR;
        let o1 = (p1 * PAIR).min(self.m);
        let width = (p1 - p0) * PAIR;
        // Chunks of tiles, each point's panels of `U` swept over all the chunk's rows while
        // they are in cache (a 7x7 map's are 64 KB a pair of panels and point, read once, not
        // once per block of 12 tiles); `M_ξ` of the chunk at `mm[(ξ * chunk + r) * width + l]`.
        // F(4x4, 3x3)'s tiles have 36 points: half as many of them per chunk.
        let most = match tile {
            Tile::F2 => 4 * ROWS,
            Tile::F4 => 2 * ROWS,
        };
        let chunk = if t1 - t0 <= most + ROWS {
            t1 - t0
        } else {
            most
        };
        let mut mm = PRODUCTS.take();
        mm.resize(xi_n * chunk * width, 0.0);
        for k0 in (t0..t1).step_by(chunk) {
            let k1 = (k0 + chunk).min(t1);
            for xi in 0..xi_n {
                for p in p0..p1 {
                    let panel = |q: usize| (xi * 2 * pairs + q) * c * NR..;
                    for r0 in (k0..k1).step_by(ROWS) {
                        let count = ROWS.min(k1 - r0);
                        let a = &vs[(xi * rows + r0 - v0) * c..];
                        let at = (xi * chunk + r0 - k0) * width + (p - p0) * PAIR;
                        let to = (mm[at..].as_mut_ptr(), width, count, false);
                        // SAFETY: `count` rows of `PAIR` floats, `width` apart, from row
                        // `r0 - k0 + count <= chunk` and column `(p - p0) * PAIR < width` of
                        // point `xi`'s block: inside `mm`, this task's.
                        unsafe {
                            match u {
                                Transformed::F32(u) => {
                                    let b = (&u[panel(2 * p)], &u[panel(2 * p + 1)]);
                                    tile_pair_to(c, a, c, b, to)
                                }
                                Transformed::Quarters(q) => {
                                    let b = (&q[panel(2 * p)], &q[panel(2 * p + 1)]);
                                    tile_pair_halves_to(c, a, c, b, to)
                                }
                            }
                        };
                    }
                }
            }
            let block = (k0, k1 - k0, tw);
            let out = (self.base, self.blocked);
            // SAFETY: this task alone owns output channels `o0..o1` of its tiles' pixels.
            unsafe { output_tiles(&mm, (width, chunk), block, (o0, o1), (g, tile), out) };
        }
        PRODUCTS.set(mm);
        // The epilogue, on each channel's pixels of this task's tile rows.
        let t = tile.out();
        let (q0, q1) = (t * ty0 * g.wo, (t * ty1).min(g.ho) * g.wo);
        if self.blocked {
            for c0 in (o0..o1).step_by(BLOCK_LANES) {
                let at = c0 * n + q0 * BLOCK_LANES..c0 * n + q1 * BLOCK_LANES;
                // SAFETY: as above; block `c0 / BLOCK_LANES` of `out`, pixels `q0..q1 <= n`.
                let plane = unsafe { self.base.slice(at.start, at.len()) };
                let res = self.epi.residual.map(|r| &r[at]);
                finish_pixels(plane, None, self.epi, c0, res);
            }
            return;
        }
        for o in o0..o1 {
            // SAFETY: as above; row `o < m` of `out`, columns `q0..q1 <= n`.
            let row = unsafe { self.base.slice(o * n + q0, q1 - q0) };
            let res = self.epi.residual.map(|r| &r[o * n + q0..o * n + q1]);
            finish_row(row, self.epi, o, res);
        }
    }
}

/// How a convolution's tiles and output channels are shared out: whole tile rows (each task's
/// pixels are then one range per channel, for the epilogue) by ranges of channel pairs.
struct TaskSplit {
    rows_per: usize,
    row_tasks: usize,
    pairs_per: usize,
    pair_tasks: usize,
    th: usize,
    pairs: usize,
}

impl TaskSplit {
    fn new(th: usize, pairs: usize) -> Self {
        // About four tasks per thread: channels first (every task then has all the tiles, so
        // a small map is not cut into blocks of few rows), then tile rows.
        let want = 4 * rayon::current_num_threads().max(1);
        let pair_tasks = pairs.min(want);
        let pairs_per = pairs.div_ceil(pair_tasks);
        let pair_tasks = pairs.div_ceil(pairs_per);
        let row_tasks = want.div_ceil(pair_tasks).min(th);
        let rows_per = th.div_ceil(row_tasks);
        let row_tasks = th.div_ceil(rows_per);
        Self {
            rows_per,
            row_tasks,
            pairs_per,
            pair_tasks,
            th,
            pairs,
        }
    }

    fn tasks(&self) -> usize {
        self.row_tasks * self.pair_tasks
    }

    /// Task `t`'s tile rows `ty0..ty1` and channel pairs `p0..p1`.
    fn task(&self, t: usize) -> (usize, usize, usize, usize) {
        let (r, p) = (t / self.pair_tasks, t % self.pair_tasks);
        let ty0 = r * self.rows_per;
        let p0 = p * self.pairs_per;
        (
            ty0,
            (ty0 + self.rows_per).min(self.th),
            p0,
            (p0 + self.pairs_per).min(self.pairs),
        )
    }
}

/// `V_ξ` of tile `tx` of the tile row whose input rows are `rows4` ([`tile_rows`]): `Bᵀ d B` of
/// its 4x4 patch `d` (all channels at once) into row `t` of each point's matrix (`rows` rows of
/// `c` apart), with `Bᵀ` = `[[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]`.
///
/// # Safety
/// Row `t` of every point's matrix must lie in `v` and be written by no one else meanwhile.
unsafe fn input_tile(
    rows4: &[f32],
    (wp, c): (usize, usize),
    tx: usize,
    v: Shared<f32>,
    (t, rows): (usize, usize),
) {
    let px = |u: usize, w: usize| &rows4[(u * wp + 2 * tx + w) * c..][..c];
    let d: [[&[f32]; 4]; 4] = std::array::from_fn(|u| std::array::from_fn(|w| px(u, w)));
    // SAFETY: the caller's contract, for each point's row `t`.
    let dst: [&mut [f32]; XI] =
        std::array::from_fn(|xi| unsafe { v.slice((xi * rows + t) * c, c) });
    transform_in(&d, dst);
}

/// [`input_tile`] for the `tw` tiles of a tile row, from row `t0` of each point's matrix, in
/// AVX-512 registers by hand (the last channels masked): the same operations in the same
/// order as [`transform_in_lanes`], so the same floats.
///
/// Why: tile by tile, the 16 source and 16 destination slices were built and checked per
/// tile and the transform's rows went through the stack; at 64 channels (four vectors a tile)
/// that was a quarter of a layer's time outside its products (`perf`: the transform 15% of
/// ResNet18's 64-channel layer alone).
///
/// # Safety
/// AVX-512F must be available; rows `t0..t0 + tw` of every point's matrix must lie in `v` and
/// be written by no one else meanwhile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn input_row_avx512(
    rows4: &[f32],
    (wp, c): (usize, usize),
    tw: usize,
    v: Shared<f32>,
    (t0, rows): (usize, usize),
) {
    use std::arch::x86_64::*;
    assert!(
        2 * tw + 2 <= wp && rows4.len() >= 4 * wp * c && t0 + tw <= rows,
        "winograd: tile row"
    );
    let src = rows4.as_ptr();
    for tx in 0..tw {
        let mut i = 0;
        while i < c {
            // SAFETY: AVX-512F, this function's.
            let m: __mmask16 = unsafe { <__m512 as Vector>::first(c - i) };
            // SAFETY: lanes `i..min(i + 16, c)` (the mask) of pixels `2 tx + w < wp` of the
            // four rows (checked above), and of row `t0 + tx < rows` of each point's matrix
            // (the caller's).
            unsafe {
                let at = |u: usize, w: usize| src.add((u * wp + 2 * tx + w) * c + i);
                let mut e = [[_mm512_setzero_ps(); 4]; 4];
                for (u, e) in e.iter_mut().enumerate() {
                    let r0 = _mm512_maskz_loadu_ps(m, at(u, 0));
                    let r1 = _mm512_maskz_loadu_ps(m, at(u, 1));
                    let r2 = _mm512_maskz_loadu_ps(m, at(u, 2));
                    let r3 = _mm512_maskz_loadu_ps(m, at(u, 3));
                    *e = [
                        _mm512_sub_ps(r0, r2),
                        _mm512_add_ps(r1, r2),
                        _mm512_sub_ps(r2, r1),
                        _mm512_sub_ps(r1, r3),
                    ];
                }
                let to = |xi: usize| v.offset((xi * rows + t0 + tx) * c + i).0;
                // Indexed as the matrices are (`Bᵀ e`, column `s`).
                #[allow(clippy::needless_range_loop)]
                for s in 0..4 {
                    _mm512_mask_storeu_ps(to(s), m, _mm512_sub_ps(e[0][s], e[2][s]));
                    _mm512_mask_storeu_ps(to(4 + s), m, _mm512_add_ps(e[1][s], e[2][s]));
                    _mm512_mask_storeu_ps(to(8 + s), m, _mm512_sub_ps(e[2][s], e[1][s]));
                    _mm512_mask_storeu_ps(to(12 + s), m, _mm512_sub_ps(e[1][s], e[3][s]));
                }
            }
            i += 16;
        }
    }
}

/// The input transform over runs of channels; compiled for the CPU's vectors (the crate's
/// baseline has four lanes on x86-64).
fn transform_in(d: &[[&[f32]; 4]; 4], dst: [&mut [f32]; XI]) {
    #[cfg(target_arch = "x86_64")]
    if path() == KernelPath::Avx2Fma {
        // SAFETY: `path` only returns a path this CPU has. (AVX-512F transforms whole tile
        // rows: `input_row_avx512`.)
        return unsafe { transform_in_avx2(d, dst) };
    }
    transform_in_plain(d, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transform_in_avx2(d: &[[&[f32]; 4]; 4], dst: [&mut [f32]; XI]) {
    transform_in_plain(d, dst)
}

#[inline(always)]
fn transform_in_plain(d: &[[&[f32]; 4]; 4], mut dst: [&mut [f32]; XI]) {
    let c = dst[0].len();
    let full = c / LANES * LANES;
    for i in (0..full).step_by(LANES) {
        transform_in_lanes::<LANES>(d, &mut dst, i);
    }
    for i in full..c {
        transform_in_lanes::<1>(d, &mut dst, i);
    }
}

/// Lanes per step of the transforms: a 512-bit vector.
const LANES: usize = 16;

/// The input transform of channels `i..i + L`, on whole arrays (which the compiler keeps in
/// vector registers: a loop over 16 source and 16 destination slices stayed scalar).
#[inline(always)]
fn transform_in_lanes<const L: usize>(d: &[[&[f32]; 4]; 4], dst: &mut [&mut [f32]; XI], i: usize) {
    let ld = |u: usize, w: usize| -> [f32; L] { d[u][w][i..i + L].try_into().expect("L lanes") };
    // `d B` row by row, then `Bᵀ` over the rows.
    let e: [[[f32; L]; 4]; 4] = std::array::from_fn(|u| {
        let (r0, r1, r2, r3) = (ld(u, 0), ld(u, 1), ld(u, 2), ld(u, 3));
        [sub(r0, r2), add(r1, r2), sub(r2, r1), sub(r1, r3)]
    });
    for s in 0..4 {
        dst[s][i..i + L].copy_from_slice(&sub(e[0][s], e[2][s]));
        dst[4 + s][i..i + L].copy_from_slice(&add(e[1][s], e[2][s]));
        dst[8 + s][i..i + L].copy_from_slice(&sub(e[2][s], e[1][s]));
        dst[12 + s][i..i + L].copy_from_slice(&sub(e[1][s], e[3][s]));
    }
}

/// `a + b`, lane by lane.
#[inline(always)]
fn add<const L: usize>(a: [f32; L], b: [f32; L]) -> [f32; L] {
    let mut o = a;
    for (o, b) in o.iter_mut().zip(b) {
        *o += b;
    }
    o
}

/// `a - b`, lane by lane.
#[inline(always)]
fn sub<const L: usize>(a: [f32; L], b: [f32; L]) -> [f32; L] {
    let mut o = a;
    for (o, b) in o.iter_mut().zip(b) {
        *o -= b;
    }
    o
}

/// `Aᵀ m A` of `count` tiles from `r0` (of a map `tw` tiles wide; tile `r0 + r`'s point `ξ` at
/// row `ξ * stride + r` of `mm`, `width` apart) and channels `o0..o1`, with F(2x2, 3x3)'s
/// `Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]]` ([`run_out`]) or F(4x4, 3x3)'s ([`run_out4`]), into
/// the output pixels inside the map.
///
/// A run of tiles in one tile row at a time: their pixels of each output row gather along
/// `OUT_ROWS`' rows, 32 channels each, then go to the channels' rows through 16x16 transposes
/// ([`columns_to_rows`]).
///
/// Why: tile by tile, each of a tile's 4 pixels times 32 channels was a scalar store into a
/// row of its own (a quarter of ResNet18's 64-channel layers outside the products, `perf`: the
/// products were half of their time).
///
/// # Safety
/// Channels `o0..o1` of those tiles' pixels in `out` (`[m][ho * wo]`, or blocked with `o0` and
/// `o1` multiples of `BLOCK_LANES`) must be written by no one else meanwhile.
unsafe fn output_tiles(
    mm: &[f32],
    (width, stride): (usize, usize),
    (r0, count, tw): (usize, usize, usize),
    (o0, o1): (usize, usize),
    (g, tile): (&Geometry, Tile),
    (out, blocked): (Shared<f32>, bool),
) {
    let n = g.n();
    let t = tile.out();
    let mut rows = OUT_ROWS.take();
    let mut r = 0;
    while r < count {
        let (ty, tx0) = ((r0 + r) / tw, (r0 + r) % tw);
        let run = (tw - tx0).min(count - r);
        let (oy, ox0) = (t * ty, t * tx0);
        // Output rows and pixels per row of the run (the map's last tile row and column may
        // hold fewer).
        let (h2, px) = (t.min(g.ho - oy), (t * run).min(g.wo - ox0));
        rows.resize(rows.len().max(t * px * PAIR), 0.0);
        for l0 in (0..o1 - o0).step_by(PAIR) {
            let lanes = PAIR.min(o1 - o0 - l0);
            let (mm, point) = (&mm[r * width + l0..], (stride * width, width));
            match tile {
                Tile::F2 => run_out(mm, point, run, (&mut rows, px, h2)),
                Tile::F4 => run_out4(mm, point, run, (&mut rows, px, h2)),
            }
            if blocked {
                for dy in 0..h2 {
                    let q = (oy + dy) * g.wo + ox0;
                    for h in (0..lanes).step_by(BLOCK_LANES) {
                        let to = (o0 + l0 + h) * n + q * BLOCK_LANES;
                        // SAFETY: the caller's contract: block `(o0 + l0 + h) / BLOCK_LANES`'s
                        // pixels `q..q + px` (inside the map).
                        let dst = unsafe { out.slice(to, px * BLOCK_LANES) };
                        for (p, d) in dst.chunks_exact_mut(BLOCK_LANES).enumerate() {
                            d.copy_from_slice(&rows[(dy * px + p) * PAIR + h..][..BLOCK_LANES]);
                        }
                    }
                }
                continue;
            }
            for dy in 0..h2 {
                let to = out.offset((o0 + l0) * n + (oy + dy) * g.wo + ox0);
                // SAFETY: the caller's contract: channels `o0 + l0..+lanes` (below `o1 <= m`)
                // of pixels `ox0..ox0 + px` of output row `oy + dy` (inside the map).
                unsafe { columns_to_rows(&rows[dy * px * PAIR..], PAIR, (px, lanes), to, n) };
            }
        }
        r += run;
    }
    OUT_ROWS.set(rows);
}

/// `Aᵀ m A` of `run` tiles of a tile row, 32 lanes each (tile `i`'s point `ξ` at
/// `mm[ξ * point + i * tile..]`), into `rows`: pixel `p < px` of output row `dy < h2` at
/// `rows[(dy * px + p) * PAIR..]`.
fn run_out(
    mm: &[f32],
    (point, tile): (usize, usize),
    run: usize,
    (rows, px, h2): (&mut [f32], usize, usize),
) {
    if run == 0 {
        return;
    }
    assert!(
        mm.len() >= (XI - 1) * point + (run - 1) * tile + PAIR
            && rows.len() >= h2 * px * PAIR
            && px <= 2 * run,
        "winograd: output tiles"
    );
    #[cfg(target_arch = "x86_64")]
    if path() == KernelPath::Avx512F {
        // SAFETY: the CPU has AVX-512F (`path`); the extents were checked above.
        return unsafe { run_out_avx512(mm.as_ptr(), (point, tile), run, (rows, px, h2)) };
    }
    let mut y = [[0f32; PAIR]; 4];
    for i in 0..run {
        let m: [&[f32]; XI] = std::array::from_fn(|xi| &mm[xi * point + i * tile..][..PAIR]);
        transform_out(&m, &mut y);
        for (q, yq) in y.iter().enumerate() {
            let (dy, p) = (q / 2, 2 * i + q % 2);
            if dy < h2 && p < px {
                rows[(dy * px + p) * PAIR..][..PAIR].copy_from_slice(yq);
            }
        }
    }
}

/// [`run_out`] in AVX-512 registers by hand: the operations of [`transform_out_plain`] in the
/// same order, so the same floats (its arrays went through the stack, and building the 16
/// slices per tile cost as much as the transform).
///
/// # Safety
/// AVX-512F must be available; the extents [`run_out`] checks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn run_out_avx512(
    mm: *const f32,
    (point, tile): (usize, usize),
    run: usize,
    (rows, px, h2): (&mut [f32], usize, usize),
) {
    use std::arch::x86_64::*;
    let out = rows.as_mut_ptr();
    for i in 0..run {
        for h in 0..2 {
            // SAFETY: the caller's extents: point `ξ` of tile `i`, lanes `16 h..16 h + 16` of
            // the pair; pixels `2 i + dx < px` of rows `dy < h2`.
            unsafe {
                let p = mm.add(i * tile + h * NR);
                let mut t = [[_mm512_setzero_ps(); 4]; 2];
                // Indexed as the matrices are (`Aᵀ m`, column `s`).
                #[allow(clippy::needless_range_loop)]
                for s in 0..4 {
                    let a = _mm512_loadu_ps(p.add(s * point));
                    let b = _mm512_loadu_ps(p.add((4 + s) * point));
                    let c = _mm512_loadu_ps(p.add((8 + s) * point));
                    let d = _mm512_loadu_ps(p.add((12 + s) * point));
                    t[0][s] = _mm512_add_ps(_mm512_add_ps(a, b), c);
                    t[1][s] = _mm512_sub_ps(_mm512_sub_ps(b, c), d);
                }
                for (dy, t) in t.iter().enumerate().take(h2) {
                    let y0 = _mm512_add_ps(_mm512_add_ps(t[0], t[1]), t[2]);
                    let y1 = _mm512_sub_ps(_mm512_sub_ps(t[1], t[2]), t[3]);
                    let row = out.add(dy * px * PAIR + h * NR);
                    if 2 * i < px {
                        _mm512_storeu_ps(row.add(2 * i * PAIR), y0);
                    }
                    if 2 * i + 1 < px {
                        _mm512_storeu_ps(row.add((2 * i + 1) * PAIR), y1);
                    }
                }
            }
        }
    }
}

thread_local! {
    /// Each thread's output rows of a run of tiles ([`output_tiles`]), kept between calls.
    static OUT_ROWS: std::cell::Cell<Buf<f32>> = const { std::cell::Cell::new(Buf::new()) };
}

/// The output transform of one tile over up to `PAIR` channels: `y[q][l]` for its pixel
/// `q = 2 dy + dx`.
fn transform_out(m: &[&[f32]; XI], y: &mut [[f32; PAIR]; 4]) {
    #[cfg(target_arch = "x86_64")]
    if path() == KernelPath::Avx2Fma {
        // SAFETY: `path` only returns a path this CPU has. (AVX-512F transforms runs of
        // tiles: `run_out_avx512`.)
        return unsafe { transform_out_avx2(m, y) };
    }
    transform_out_plain(m, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transform_out_avx2(m: &[&[f32]; XI], y: &mut [[f32; PAIR]; 4]) {
    transform_out_plain(m, y)
}

#[inline(always)]
fn transform_out_plain(m: &[&[f32]; XI], y: &mut [[f32; PAIR]; 4]) {
    let ld = |xi: usize| -> [f32; PAIR] { m[xi][..PAIR].try_into().expect("a pair of lanes") };
    // `Aᵀ m`: two rows of four.
    let t: [[[f32; PAIR]; 4]; 2] = {
        let col = |s: usize| {
            let (a, b, c, d) = (ld(s), ld(4 + s), ld(8 + s), ld(12 + s));
            (add(add(a, b), c), sub(sub(b, c), d))
        };
        let cols: [([f32; PAIR], [f32; PAIR]); 4] = std::array::from_fn(col);
        [cols.map(|c| c.0), cols.map(|c| c.1)]
    };
    for (i, t) in t.iter().enumerate() {
        y[2 * i] = add(add(t[0], t[1]), t[2]);
        y[2 * i + 1] = sub(sub(t[1], t[2]), t[3]);
    }
}

/// The arithmetic of F(4x4, 3x3)'s transforms ([`in6`], [`out6`]) on one float or on 16 lanes:
/// the same operations in the same order either way, so the same floats.
trait Lane: Copy {
    /// # Safety
    /// For `__m512`, AVX-512F must be available (as for the others).
    unsafe fn add(self, b: Self) -> Self;
    /// # Safety
    /// As [`Lane::add`].
    unsafe fn sub(self, b: Self) -> Self;
    /// `k * self + b`, rounded once.
    ///
    /// # Safety
    /// As [`Lane::add`].
    unsafe fn fma(self, k: f32, b: Self) -> Self;
}

impl Lane for f32 {
    #[inline(always)]
    unsafe fn add(self, b: f32) -> f32 {
        self + b
    }

    #[inline(always)]
    unsafe fn sub(self, b: f32) -> f32 {
        self - b
    }

    #[inline(always)]
    unsafe fn fma(self, k: f32, b: f32) -> f32 {
        self.mul_add(k, b)
    }
}

#[cfg(target_arch = "x86_64")]
impl Lane for std::arch::x86_64::__m512 {
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        // SAFETY: the caller's guarantee (AVX-512F).
        unsafe { std::arch::x86_64::_mm512_add_ps(self, b) }
    }

    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        // SAFETY: as above.
        unsafe { std::arch::x86_64::_mm512_sub_ps(self, b) }
    }

    #[inline(always)]
    unsafe fn fma(self, k: f32, b: Self) -> Self {
        use std::arch::x86_64::{_mm512_fmadd_ps, _mm512_set1_ps};
        // SAFETY: as above.
        unsafe { _mm512_fmadd_ps(self, _mm512_set1_ps(k), b) }
    }
}

#[cfg(target_arch = "x86_64")]
impl Lane for std::arch::x86_64::__m256 {
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        // SAFETY: the caller's guarantee (AVX2 and FMA).
        unsafe { std::arch::x86_64::_mm256_add_ps(self, b) }
    }

    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        // SAFETY: as above.
        unsafe { std::arch::x86_64::_mm256_sub_ps(self, b) }
    }

    #[inline(always)]
    unsafe fn fma(self, k: f32, b: Self) -> Self {
        use std::arch::x86_64::{_mm256_fmadd_ps, _mm256_set1_ps};
        // SAFETY: as above.
        unsafe { _mm256_fmadd_ps(self, _mm256_set1_ps(k), b) }
    }
}

/// `Bᵀ d` of F(4x4, 3x3) for one row (or column) of a 6x6 patch, with
/// `Bᵀ = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
/// [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]`.
///
/// # Safety
/// As [`Lane::add`].
#[inline(always)]
unsafe fn in6<V: Lane>(d: [V; 6]) -> [V; 6] {
    // SAFETY: the caller's guarantee.
    unsafe {
        let (d42, d43) = (d[4].sub(d[2]), d[4].sub(d[3]));
        [
            d[0].fma(4.0, d[2].fma(-5.0, d[4])),
            d[1].add(d[2]).fma(-4.0, d[3].add(d[4])),
            d[1].sub(d[2]).fma(4.0, d43),
            d[3].sub(d[1]).fma(2.0, d42),
            d[1].sub(d[3]).fma(2.0, d42),
            d[1].fma(4.0, d[3].fma(-5.0, d[5])),
        ]
    }
}

/// `Aᵀ m` of F(4x4, 3x3) for one column (or row) of a tile's 6x6 products, with
/// `Aᵀ = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]`.
///
/// # Safety
/// As [`Lane::add`].
#[inline(always)]
unsafe fn out6<V: Lane>(m: [V; 6]) -> [V; 4] {
    // SAFETY: the caller's guarantee.
    unsafe {
        let (a, b) = (m[1].add(m[2]), m[1].sub(m[2]));
        let (c, d) = (m[3].add(m[4]), m[3].sub(m[4]));
        [
            m[0].add(a).add(c),
            d.fma(2.0, b),
            c.fma(4.0, a),
            d.fma(8.0, b).add(m[5]),
        ]
    }
}

/// F(4x4, 3x3)'s `V_ξ = Bᵀ d B` ([`in6`] over the rows, then the columns) of the 6x6 patches of
/// a tile row's `tw` tiles (`rows6`: [`tile_rows`]' six rows), tile `tx` into row `t0 + tx` of
/// each point's matrix (`rows` rows of `c` apart): in AVX-512 or AVX2 registers on those paths
/// ([`input_row4_in`]), else channel by channel ([`input_row4_plain`]), the same floats.
///
/// # Safety
/// Rows `t0..t0 + tw` of every point's matrix must lie in `v` and be written by no one else
/// meanwhile.
unsafe fn input_row4(
    rows6: &[f32],
    (wp, c): (usize, usize),
    tw: usize,
    v: Shared<f32>,
    (t0, rows): (usize, usize),
) {
    assert!(
        4 * tw + 2 <= wp && rows6.len() >= 6 * wp * c && t0 + tw <= rows,
        "winograd: tile row"
    );
    #[cfg(target_arch = "x86_64")]
    if path() == KernelPath::Avx512F {
        // SAFETY: the CPU has AVX-512F (`path`); the extents were checked above, the rows
        // are the caller's.
        return unsafe { input_row4_avx512(rows6, (wp, c), tw, v, (t0, rows)) };
    }
    #[cfg(target_arch = "x86_64")]
    if path() == KernelPath::Avx2Fma {
        // SAFETY: the CPU has AVX2 and FMA (`path`); as above.
        return unsafe { input_row4_avx2(rows6, (wp, c), tw, v, (t0, rows)) };
    }
    // SAFETY: the caller's rows, the extents checked above.
    unsafe { input_row4_plain(rows6, (wp, c), tw, v, (t0, rows)) }
}

/// [`input_row4`] channel by channel.
///
/// # Safety
/// As [`input_row4`], with its extents.
unsafe fn input_row4_plain(
    rows6: &[f32],
    (wp, c): (usize, usize),
    tw: usize,
    v: Shared<f32>,
    (t0, rows): (usize, usize),
) {
    for tx in 0..tw {
        for i in 0..c {
            let at = |u: usize, w: usize| rows6[(u * wp + 4 * tx + w) * c + i];
            // SAFETY: `f32` lanes need no CPU feature.
            let e: [[f32; 6]; 6] =
                std::array::from_fn(|u| unsafe { in6(std::array::from_fn(|w| at(u, w))) });
            // Indexed as the matrices are (column `s`).
            #[allow(clippy::needless_range_loop)]
            for s in 0..6 {
                // SAFETY: as above.
                let col = unsafe { in6(std::array::from_fn(|u| e[u][s])) };
                for (r, val) in col.into_iter().enumerate() {
                    // SAFETY: row `t0 + tx < rows` of point `6 r + s`'s matrix: the caller's.
                    unsafe { *v.offset(((r * 6 + s) * rows + t0 + tx) * c + i).0 = val };
                }
            }
        }
    }
}

/// A register of F(4x4, 3x3)'s transforms in vector code ([`input_row4_in`], [`run_out4_in`]):
/// AVX-512F's 16 lanes or AVX2's 8, with the masked loads and stores of a tile row's last
/// channels.
#[cfg(target_arch = "x86_64")]
trait Vector: Lane {
    /// Floats per register.
    const LANES: usize;
    /// The lanes a masked load or store touches.
    type Mask: Copy;

    /// The first `min(n, LANES)` lanes.
    ///
    /// # Safety
    /// The register's CPU features must be available (as for every method here).
    unsafe fn first(n: usize) -> Self::Mask;
    /// # Safety
    /// As [`Vector::first`].
    unsafe fn zero() -> Self;
    /// The mask's lanes from `p` (the others zero; nothing read there).
    ///
    /// # Safety
    /// As [`Vector::first`]; `p` holds the mask's lanes.
    unsafe fn load_masked(p: *const f32, m: Self::Mask) -> Self;
    /// # Safety
    /// As [`Vector::first`]; `p` holds the mask's lanes, writable.
    unsafe fn store_masked(p: *mut f32, m: Self::Mask, v: Self);
    /// # Safety
    /// As [`Vector::first`]; `p` holds `LANES` floats.
    unsafe fn load(p: *const f32) -> Self;
    /// # Safety
    /// As [`Vector::first`]; `p` holds `LANES` writable floats.
    unsafe fn store(p: *mut f32, v: Self);
}

#[cfg(target_arch = "x86_64")]
impl Vector for std::arch::x86_64::__m512 {
    const LANES: usize = 16;
    type Mask = std::arch::x86_64::__mmask16;

    #[inline(always)]
    unsafe fn first(n: usize) -> Self::Mask {
        if n >= 16 {
            0xFFFF
        } else {
            ((1u32 << n) - 1) as Self::Mask
        }
    }

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller's guarantee (AVX-512F), as below.
        unsafe { std::arch::x86_64::_mm512_setzero_ps() }
    }

    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: Self::Mask) -> Self {
        // SAFETY: the caller's guarantees.
        unsafe { std::arch::x86_64::_mm512_maskz_loadu_ps(m, p) }
    }

    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: Self::Mask, v: Self) {
        // SAFETY: the caller's guarantees.
        unsafe { std::arch::x86_64::_mm512_mask_storeu_ps(p, m, v) }
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller's guarantees.
        unsafe { std::arch::x86_64::_mm512_loadu_ps(p) }
    }

    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self) {
        // SAFETY: the caller's guarantees.
        unsafe { std::arch::x86_64::_mm512_storeu_ps(p, v) }
    }
}

#[cfg(target_arch = "x86_64")]
impl Vector for std::arch::x86_64::__m256 {
    const LANES: usize = 8;
    type Mask = std::arch::x86_64::__m256i;

    #[inline(always)]
    unsafe fn first(n: usize) -> Self::Mask {
        use std::arch::x86_64::{_mm256_cmpgt_epi32, _mm256_set1_epi32, _mm256_setr_epi32};
        // SAFETY: the caller's guarantee (AVX2), as below.
        unsafe {
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            _mm256_cmpgt_epi32(_mm256_set1_epi32(n.min(8) as i32), lanes)
        }
    }

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller's guarantee.
        unsafe { std::arch::x86_64::_mm256_setzero_ps() }
    }

    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: Self::Mask) -> Self {
        // SAFETY: the caller's guarantees (masked lanes are neither read nor faulted on).
        unsafe { std::arch::x86_64::_mm256_maskload_ps(p, m) }
    }

    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: Self::Mask, v: Self) {
        // SAFETY: the caller's guarantees.
        unsafe { std::arch::x86_64::_mm256_maskstore_ps(p, m, v) }
    }

    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller's guarantees.
        unsafe { std::arch::x86_64::_mm256_loadu_ps(p) }
    }

    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self) {
        // SAFETY: the caller's guarantees.
        unsafe { std::arch::x86_64::_mm256_storeu_ps(p, v) }
    }
}

/// [`input_row4`] in registers of `V`, `V::LANES` channels at a time (the last ones masked):
/// the same operations in the same order as [`input_row4_plain`], so the same floats.
///
/// # Safety
/// `V`'s CPU features must be available; the extents [`input_row4`] checks; rows
/// `t0..t0 + tw` of every point's matrix written by no one else meanwhile.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn input_row4_in<V: Vector>(
    rows6: &[f32],
    (wp, c): (usize, usize),
    tw: usize,
    v: Shared<f32>,
    (t0, rows): (usize, usize),
) {
    let src = rows6.as_ptr();
    for tx in 0..tw {
        let mut i = 0;
        while i < c {
            // SAFETY: lanes `i..min(i + LANES, c)` (the mask) of pixels `4 tx + w < wp` of the
            // six rows, and of row `t0 + tx < rows` of each point's matrix (the caller's).
            unsafe {
                let m = V::first(c - i);
                let at = |u: usize, w: usize| src.add((u * wp + 4 * tx + w) * c + i);
                let mut e = [[V::zero(); 6]; 6];
                for (u, e) in e.iter_mut().enumerate() {
                    let mut d = [V::zero(); 6];
                    for (w, d) in d.iter_mut().enumerate() {
                        *d = V::load_masked(at(u, w), m);
                    }
                    *e = in6(d);
                }
                // Indexed as the matrices are (column `s`).
                #[allow(clippy::needless_range_loop)]
                for s in 0..6 {
                    let mut col = [V::zero(); 6];
                    for (u, col) in col.iter_mut().enumerate() {
                        *col = e[u][s];
                    }
                    for (r, val) in in6(col).into_iter().enumerate() {
                        let to = v.offset(((r * 6 + s) * rows + t0 + tx) * c + i).0;
                        V::store_masked(to, m, val);
                    }
                }
            }
            i += V::LANES;
        }
    }
}

/// [`input_row4_in`] in AVX-512 registers.
///
/// # Safety
/// AVX-512F must be available; as [`input_row4_in`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn input_row4_avx512(
    rows6: &[f32],
    (wp, c): (usize, usize),
    tw: usize,
    v: Shared<f32>,
    (t0, rows): (usize, usize),
) {
    use std::arch::x86_64::__m512;
    // SAFETY: the caller's guarantees.
    unsafe { input_row4_in::<__m512>(rows6, (wp, c), tw, v, (t0, rows)) }
}

/// [`input_row4_in`] in AVX2 registers.
///
/// # Safety
/// AVX2 and FMA must be available; as [`input_row4_in`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn input_row4_avx2(
    rows6: &[f32],
    (wp, c): (usize, usize),
    tw: usize,
    v: Shared<f32>,
    (t0, rows): (usize, usize),
) {
    use std::arch::x86_64::__m256;
    // SAFETY: the caller's guarantees.
    unsafe { input_row4_in::<__m256>(rows6, (wp, c), tw, v, (t0, rows)) }
}

/// F(4x4, 3x3)'s [`run_out`]: `Aᵀ m A` ([`out6`] over the columns, then the rows) of `run`
/// tiles of a tile row, 32 lanes each (tile `i`'s point `ξ` at `mm[ξ * point + i * tile..]`),
/// into `rows`: pixel `p < px` of output row `dy < h2` at `rows[(dy * px + p) * PAIR..]`.
fn run_out4(
    mm: &[f32],
    (point, tile): (usize, usize),
    run: usize,
    (rows, px, h2): (&mut [f32], usize, usize),
) {
    if run == 0 {
        return;
    }
    assert!(
        mm.len() >= 35 * point + (run - 1) * tile + PAIR
            && rows.len() >= h2 * px * PAIR
            && px <= 4 * run
            && h2 <= 4,
        "winograd: output tiles"
    );
    #[cfg(target_arch = "x86_64")]
    if path() == KernelPath::Avx512F {
        // SAFETY: the CPU has AVX-512F (`path`); the extents were checked above.
        return unsafe { run_out4_avx512(mm.as_ptr(), (point, tile), run, (rows, px, h2)) };
    }
    #[cfg(target_arch = "x86_64")]
    if path() == KernelPath::Avx2Fma {
        // SAFETY: the CPU has AVX2 and FMA (`path`); the extents were checked above.
        return unsafe { run_out4_avx2(mm.as_ptr(), (point, tile), run, (rows, px, h2)) };
    }
    run_out4_plain(mm, (point, tile), run, (rows, px, h2))
}

/// [`run_out4`] lane by lane, on the extents it checks.
fn run_out4_plain(
    mm: &[f32],
    (point, tile): (usize, usize),
    run: usize,
    (rows, px, h2): (&mut [f32], usize, usize),
) {
    for i in 0..run {
        for l in 0..PAIR {
            let at = |xi: usize| mm[xi * point + i * tile + l];
            let mut t = [[0f32; 6]; 4];
            // Indexed as the matrices are (column `s`).
            #[allow(clippy::needless_range_loop)]
            for s in 0..6 {
                // SAFETY: `f32` lanes need no CPU feature.
                let col = unsafe { out6(std::array::from_fn(|r| at(r * 6 + s))) };
                for (q, v) in col.into_iter().enumerate() {
                    t[q][s] = v;
                }
            }
            for (dy, t) in t.iter().enumerate().take(h2) {
                // SAFETY: as above.
                let y = unsafe { out6(*t) };
                for (dx, y) in y.into_iter().enumerate() {
                    let p = 4 * i + dx;
                    if p < px {
                        rows[(dy * px + p) * PAIR + l] = y;
                    }
                }
            }
        }
    }
}

/// [`run_out4`] in registers of `V`: the same operations in the same order as
/// [`run_out4_plain`].
///
/// # Safety
/// `V`'s CPU features must be available; the extents [`run_out4`] checks.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn run_out4_in<V: Vector>(
    mm: *const f32,
    (point, tile): (usize, usize),
    run: usize,
    (rows, px, h2): (&mut [f32], usize, usize),
) {
    let out = rows.as_mut_ptr();
    for i in 0..run {
        for h in 0..PAIR / V::LANES {
            // SAFETY: the caller's extents: point `ξ` of tile `i`, lanes `h LANES..(h + 1)
            // LANES` of the pair; pixels `4 i + dx < px` of rows `dy < h2`.
            unsafe {
                let p = mm.add(i * tile + h * V::LANES);
                let mut t = [[V::zero(); 6]; 4];
                // Indexed as the matrices are (column `s`).
                #[allow(clippy::needless_range_loop)]
                for s in 0..6 {
                    let mut col = [V::zero(); 6];
                    for (r, col) in col.iter_mut().enumerate() {
                        *col = V::load(p.add((r * 6 + s) * point));
                    }
                    for (q, v) in out6(col).into_iter().enumerate() {
                        t[q][s] = v;
                    }
                }
                for (dy, t) in t.iter().enumerate().take(h2) {
                    let row = out.add(dy * px * PAIR + h * V::LANES);
                    for (dx, y) in out6(*t).into_iter().enumerate() {
                        if 4 * i + dx < px {
                            V::store(row.add((4 * i + dx) * PAIR), y);
                        }
                    }
                }
            }
        }
    }
}

/// [`run_out4_in`] in AVX-512 registers.
///
/// # Safety
/// AVX-512F must be available; the extents [`run_out4`] checks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn run_out4_avx512(
    mm: *const f32,
    point: (usize, usize),
    run: usize,
    rows: (&mut [f32], usize, usize),
) {
    // SAFETY: the caller's guarantees.
    unsafe { run_out4_in::<std::arch::x86_64::__m512>(mm, point, run, rows) }
}

/// [`run_out4_in`] in AVX2 registers.
///
/// # Safety
/// AVX2 and FMA must be available; the extents [`run_out4`] checks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_out4_avx2(
    mm: *const f32,
    point: (usize, usize),
    run: usize,
    rows: (&mut [f32], usize, usize),
) {
    // SAFETY: the caller's guarantees.
    unsafe { run_out4_in::<std::arch::x86_64::__m256>(mm, point, run, rows) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct sum, in f64, of a 3x3 stride-1 convolution.
    fn reference(x: &[f32], g: &Geometry, w: &[f32], m: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * g.n()];
        for o in 0..m {
            for oy in 0..g.ho {
                for ox in 0..g.wo {
                    let mut s = 0f64;
                    for i in 0..g.c {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (y, xx) = (oy + ky, ox + kx);
                                let (y, xx) = (
                                    y as isize - g.padding as isize,
                                    xx as isize - g.padding as isize,
                                );
                                if y < 0 || xx < 0 || y >= g.h as isize || xx >= g.w as isize {
                                    continue;
                                }
                                let v = x[(i * g.h + y as usize) * g.w + xx as usize];
                                s += f64::from(v) * f64::from(w[((o * g.c + i) * 3 + ky) * 3 + kx]);
                            }
                        }
                    }
                    out[o * g.n() + oy * g.wo + ox] = s as f32;
                }
            }
        }
        out
    }

    #[test]
    fn agrees_with_the_direct_sum() {
        let mut next = crate::exec::int8_gemm::tests::lcg(11);
        for &(c, h, w, padding, m) in &[
            (16, 7, 7, 1, 40),
            (17, 14, 9, 1, 33),
            (32, 8, 8, 0, 64),
            (24, 5, 6, 2, 16),
            (64, 28, 28, 1, 64),
            (16, 60, 60, 1, 16),
        ] {
            for tile in [Tile::F2, Tile::F4] {
                let ho = h + 2 * padding - 2;
                let wo = w + 2 * padding - 2;
                let g = Geometry {
                    c,
                    h,
                    w,
                    kernel: 3,
                    stride: 1,
                    padding,
                    ho,
                    wo,
                };
                assert!(suits(&g, m));
                let x: Vec<f32> = (0..c * h * w).map(|_| next()).collect();
                let wts: Vec<f32> = (0..m * c * 9).map(|_| next()).collect();
                let bias: Vec<f32> = (0..m).map(|_| next()).collect();
                let scale: Vec<f32> = (0..m).map(|_| 0.5 + next().abs()).collect();
                let res: Vec<f32> = (0..m * g.n()).map(|_| next()).collect();
                let u = transform_weights(&wts, m, c, tile);
                let mut out = vec![f32::NAN; m * g.n()];
                let epi = Epilogue {
                    scale: Some(&scale),
                    bias: Some(&bias),
                    residual: Some(&res),
                    relu: true,
                    gelu: false,
                };
                // Stale NaNs in every buffer the layer takes (the rows past the last tile are
                // not zeroed: no NaN may reach an output).
                POINTS.give(Buf::filled(1 << 20, f32::NAN));
                rayon::broadcast(|_| BAND.set(Buf::filled(1 << 18, f32::NAN)));
                conv_winograd(
                    &x,
                    &g,
                    Transformed::F32(&u),
                    m,
                    &mut out,
                    (epi, Layout::default()),
                );
                let want = reference(&x, &g, &wts, m);
                let bound = (c * 9) as f32 * 1e-6 * 8.0;
                for (i, (&got, &sum)) in out.iter().zip(&want).enumerate() {
                    let o = i / g.n();
                    let want = (sum * scale[o] + bias[o] + res[i]).max(0.0);
                    assert!(
                        (got - want).abs() <= bound * (1.0 + want.abs()),
                        "{tile:?} {c}x{h}x{w} pad {padding} -> {m}: output {i}: {got} vs {want}"
                    );
                }
            }
        }
    }

    /// Integer weights (a packed layer's codes) transform into quarters, and the layer run on
    /// them as `i16` with its scales quartered gives the floats of the f32 `U` bit for bit (on
    /// AVX-512F in the kernel's registers, elsewhere through floats), with bands and without;
    /// weights that are not quarters are refused.
    #[test]
    fn quarters_give_the_same_floats() {
        let mut next = crate::exec::int8_gemm::tests::lcg(9);
        for &(c, h, w, m, bits) in &[(16, 9, 7, 40, 8u32), (64, 14, 14, 64, 4), (32, 7, 7, 48, 2)] {
            let g = Geometry::of(c, h, w, 3, 1, 1);
            let top = (1i32 << (bits - 1)) as f32;
            let codes: Vec<f32> = (0..m * c * 9)
                .map(|_| (next() * top).round().clamp(-top, top - 1.0))
                .collect();
            let x: Vec<f32> = (0..c * h * w).map(|_| next()).collect();
            let scale: Vec<f32> = (0..m).map(|_| 0.01 + next().abs() * 0.1).collect();
            let bias: Vec<f32> = (0..m).map(|_| next()).collect();
            let u = transform_weights(&codes, m, c, Tile::F2);
            let q = QuarterWeights::new(&u, Some(&scale), m).expect("quarters");
            for bands in [None, Some(1)] {
                let epi = Epilogue {
                    scale: Some(&scale),
                    bias: Some(&bias),
                    relu: true,
                    ..Epilogue::default()
                };
                let mut want = vec![f32::NAN; m * g.n()];
                run(
                    &x,
                    &g,
                    Transformed::F32(&u),
                    m,
                    &mut want,
                    (epi, Layout::default()),
                    bands,
                );
                let epi = Epilogue {
                    scale: Some(&q.scales),
                    ..epi
                };
                let mut got = vec![f32::NAN; m * g.n()];
                run(
                    &x,
                    &g,
                    Transformed::Quarters(&q.u),
                    m,
                    &mut got,
                    (epi, Layout::default()),
                    bands,
                );
                let first = got
                    .iter()
                    .zip(&want)
                    .position(|(a, b)| a.to_bits() != b.to_bits());
                assert_eq!(
                    first, None,
                    "{g:?} to {m}, {bits}-bit codes, bands {bands:?}"
                );
            }
        }
        let u = transform_weights(&[0.3; 9], 1, 1, Tile::F2);
        assert!(
            QuarterWeights::new(&u, None, 1).is_none(),
            "0.3 is no quarter"
        );
    }

    #[test]
    fn bands_give_the_same_floats() {
        use crate::exec::int8_gemm::tests::in_pool;
        let mut next = crate::exec::int8_gemm::tests::lcg(5);
        for (&(c, h, w, m), tile) in [(16, 13, 11, 40), (24, 20, 20, 32), (64, 28, 28, 64)]
            .iter()
            .flat_map(|s| [(s, Tile::F2), (s, Tile::F4)])
        {
            let g = Geometry::of(c, h, w, 3, 1, 1);
            let x: Vec<f32> = (0..c * h * w).map(|_| next()).collect();
            let wts: Vec<f32> = (0..m * c * 9).map(|_| next()).collect();
            let bias: Vec<f32> = (0..m).map(|_| next()).collect();
            let u = transform_weights(&wts, m, c, tile);
            let epi = Epilogue {
                bias: Some(&bias),
                relu: true,
                ..Epilogue::default()
            };
            let mut whole = vec![f32::NAN; m * g.n()];
            run(
                &x,
                &g,
                Transformed::F32(&u),
                m,
                &mut whole,
                (epi, Layout::default()),
                None,
            );
            let th = tile.grid(&g).0;
            for (rows, threads) in [(1, 1), (1, 2), (2, 3), (3, 2), (th, 2)] {
                let mut got = vec![f32::NAN; m * g.n()];
                let u = Transformed::F32(&u);
                in_pool(threads, || {
                    run(&x, &g, u, m, &mut got, (epi, Layout::default()), Some(rows))
                });
                let first = got
                    .iter()
                    .zip(&whole)
                    .position(|(a, b)| a.to_bits() != b.to_bits());
                assert_eq!(
                    first, None,
                    "{tile:?} {g:?} to {m}, bands of {rows} tile rows"
                );
            }
        }
    }

    #[test]
    fn bands_take_the_layers_of_few_weights() {
        // ResNet's first stage: 28 tile rows of 28, 256 KB transformed.
        let first = Geometry::of(64, 56, 56, 3, 1, 1);
        assert_eq!(band_rows(&first, Tile::F2, 2, 2), Some(1));
        assert_eq!(band_rows(&first, Tile::F2, 2, 1), Some(1));
        // Its second (1 MB) and later stages keep the whole transform.
        let second = Geometry::of(128, 28, 28, 3, 1, 1);
        assert_eq!(band_rows(&second, Tile::F2, 4, 2), None);
        assert_eq!(
            band_rows(&Geometry::of(512, 7, 7, 3, 1, 1), Tile::F2, 16, 2),
            None
        );
        // Too few tile rows to share out.
        assert_eq!(
            band_rows(&Geometry::of(16, 6, 6, 3, 1, 1), Tile::F2, 1, 2),
            None
        );
        // 14 tiles a row: bands of 2 rows (28 tiles: 3 kernel blocks) in 4 rounds of 2 tasks,
        // not 14 bands of one row (2 blocks each, one of them mostly empty) in 7.
        let narrow = Geometry::of(16, 28, 28, 3, 1, 1);
        assert_eq!(band_rows(&narrow, Tile::F2, 1, 2), Some(2));
        // As F(4x4, 3x3) (576 KB transformed): bands of 2 rows of 14 tiles (252 KB of
        // points); its second stage's (2.3 MB) keep the whole transform.
        assert_eq!(band_rows(&first, Tile::F4, 2, 2), Some(2));
        assert_eq!(band_rows(&second, Tile::F4, 4, 2), None);
    }

    #[test]
    fn filter_transform_is_g_g_gt() {
        let g: [f32; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let gm = [
            [1.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
            [0.5, -0.5, 0.5],
            [0.0, 0.0, 1.0],
        ];
        let u = filter_transform(&g);
        for i in 0..4 {
            for j in 0..4 {
                let mut s = 0f32;
                for a in 0..3 {
                    for b in 0..3 {
                        s += gm[i][a] * g[a * 3 + b] * gm[j][b];
                    }
                }
                assert_eq!(u[i * 4 + j], s, "point ({i}, {j})");
            }
        }
    }

    /// Blocked values ([`Layout`]) in, out, or both give the floats of channel planes bit for
    /// bit, with a residual laid out as the output, the whole input transformed first and in
    /// bands, padding 1 and 0, maps whose last tile row and column hold one pixel.
    #[test]
    fn blocked_values_give_the_same_floats() {
        use crate::exec::blocked::{from_planes, laid_out, to_planes};
        use crate::exec::int8_gemm::tests::in_pool;
        let mut next = crate::exec::int8_gemm::tests::lcg(9);
        let shapes = [(16, 13, 11, 32, 1), (32, 14, 14, 48, 1), (48, 7, 7, 16, 0)];
        for (&(c, h, w, m, pad), tile) in shapes.iter().flat_map(|s| [(s, Tile::F2), (s, Tile::F4)])
        {
            let g = Geometry::of(c, h, w, 3, 1, pad);
            let n = g.n();
            let x: Vec<f32> = (0..c * h * w).map(|_| next()).collect();
            let wts: Vec<f32> = (0..m * c * 9).map(|_| next()).collect();
            let bias: Vec<f32> = (0..m).map(|_| next()).collect();
            let res: Vec<f32> = (0..m * n).map(|_| next()).collect();
            let u = transform_weights(&wts, m, c, tile);
            let u = Transformed::F32(&u);
            let (x_blocked, res_blocked) = (from_planes(&x, c, h * w), from_planes(&res, m, n));
            let epi = |residual| Epilogue {
                bias: Some(&bias),
                residual: Some(residual),
                relu: true,
                ..Epilogue::default()
            };
            for bands in [None, Some(1), Some(2)] {
                let mut want = vec![f32::NAN; m * n];
                run(
                    &x,
                    &g,
                    u,
                    m,
                    &mut want,
                    (epi(&res), Layout::default()),
                    bands,
                );
                for (input_blocked, output_blocked) in [(true, false), (false, true), (true, true)]
                {
                    let layout = Layout {
                        input_blocked,
                        output_blocked,
                    };
                    let (input, residual) =
                        laid_out(layout, (&x, &x_blocked), (&res, &res_blocked));
                    let mut got = vec![f32::NAN; m * n];
                    in_pool(2, || {
                        run(input, &g, u, m, &mut got, (epi(residual), layout), bands)
                    });
                    if output_blocked {
                        got = to_planes(&got, m, n).to_vec();
                    }
                    let first = got
                        .iter()
                        .zip(&want)
                        .position(|(a, b)| a.to_bits() != b.to_bits());
                    let what = format!("{tile:?} {g:?} to {m}, {layout:?}, bands {bands:?}");
                    assert_eq!(first, None, "{what}");
                }
            }
        }
    }
    #[test]
    fn filter_transform4_is_g_g_gt() {
        let g: [f32; 9] = [1.0, -2.0, 3.0, 0.5, 5.0, -6.0, 7.0, 8.0, 0.25];
        let s6 = 1.0 / 6.0;
        let gm = [
            [0.25, 0.0, 0.0],
            [-s6, -s6, -s6],
            [-s6, s6, -s6],
            [1.0 / 24.0, 1.0 / 12.0, s6],
            [1.0 / 24.0, -1.0 / 12.0, s6],
            [0.0, 0.0, 1.0],
        ];
        let u = filter_transform4(&g);
        for i in 0..6 {
            for j in 0..6 {
                let mut s = 0f64;
                for a in 0..3 {
                    for b in 0..3 {
                        s += gm[i][a] * f64::from(g[a * 3 + b]) * gm[j][b];
                    }
                }
                let got = f64::from(u[i * 6 + j]);
                assert!(
                    (got - s).abs() <= 1e-6 * (1.0 + s.abs()),
                    "point ({i}, {j})"
                );
            }
        }
    }

    /// F(4x4, 3x3)'s transforms in AVX-512 and AVX2 registers give the floats of the plain
    /// ones, bit for bit, with masked last channels (each where the CPU has it).
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn transforms4_in_registers_give_the_plain_floats() {
        let avx512 = is_x86_feature_detected!("avx512f");
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        let isas = [("AVX-512F", avx512), ("AVX2", avx2)];
        let mut next = crate::exec::int8_gemm::tests::lcg(3);
        for &(c, tw) in &[(16, 3), (40, 2), (7, 5), (13, 1)] {
            let wp = 4 * tw + 2;
            let rows6: Vec<f32> = (0..6 * wp * c).map(|_| next()).collect();
            let rows = tw + 3;
            let mut want = vec![f32::NAN; 36 * rows * c];
            // SAFETY: rows `1..1 + tw` of 36 matrices of `rows` rows, in `want`.
            unsafe { input_row4_plain(&rows6, (wp, c), tw, Shared(want.as_mut_ptr()), (1, rows)) };
            for (isa, _) in isas.iter().filter(|i| i.1) {
                let mut got = vec![f32::NAN; 36 * rows * c];
                let v = Shared(got.as_mut_ptr());
                // SAFETY: the CPU has the ISA; as above, in `got`.
                unsafe {
                    if *isa == "AVX2" {
                        input_row4_avx2(&rows6, (wp, c), tw, v, (1, rows))
                    } else {
                        input_row4_avx512(&rows6, (wp, c), tw, v, (1, rows))
                    }
                };
                let first = got
                    .iter()
                    .zip(&want)
                    .position(|(a, b)| a.to_bits() != b.to_bits());
                assert_eq!(
                    first, None,
                    "{isa} input transform, {c} channels, {tw} tiles"
                );
            }
        }
        for &(run, px, h2) in &[(3, 12, 4), (2, 7, 3), (1, 1, 1)] {
            let (tile, point) = (PAIR + 8, run * (PAIR + 8) + 5);
            let mm: Vec<f32> = (0..36 * point).map(|_| next()).collect();
            let mut want = vec![f32::NAN; h2 * px * PAIR];
            run_out4_plain(&mm, (point, tile), run, (&mut want, px, h2));
            for (isa, _) in isas.iter().filter(|i| i.1) {
                let mut got = vec![f32::NAN; h2 * px * PAIR];
                let rows = (&mut got[..], px, h2);
                // SAFETY: the CPU has the ISA; the extents `run_out4` checks.
                unsafe {
                    if *isa == "AVX2" {
                        run_out4_avx2(mm.as_ptr(), (point, tile), run, rows)
                    } else {
                        run_out4_avx512(mm.as_ptr(), (point, tile), run, rows)
                    }
                };
                let first = got
                    .iter()
                    .zip(&want)
                    .position(|(a, b)| a.to_bits() != b.to_bits());
                let what = format!("{isa} output transform, {run} tiles, {px} x {h2} pixels");
                assert_eq!(first, None, "{what}");
            }
        }
    }

    /// ResNet's layers: F(4x4, 3x3) on the 56x56 and 28x28 maps of 64 and 128 channels, on the
    /// AVX-512F and AVX2 paths only; F(2x2, 3x3) on 14x14 and 7x7 maps (31% more pixels in whole tiles of
    /// 4) and where the transformed weights would outgrow the caches.
    #[test]
    fn tile_for_resnet_layers() {
        let f4 = if vector_transforms() {
            Tile::F4
        } else {
            Tile::F2
        };
        assert_eq!(tile_for(&Geometry::of(64, 56, 56, 3, 1, 1), 64), f4);
        assert_eq!(tile_for(&Geometry::of(128, 28, 28, 3, 1, 1), 128), f4);
        assert_eq!(tile_for(&Geometry::of(256, 28, 28, 3, 1, 1), 256), Tile::F2);
        assert_eq!(tile_for(&Geometry::of(256, 14, 14, 3, 1, 1), 256), Tile::F2);
        assert_eq!(tile_for(&Geometry::of(64, 14, 14, 3, 1, 1), 64), Tile::F2);
        assert_eq!(tile_for(&Geometry::of(512, 7, 7, 3, 1, 1), 512), Tile::F2);
    }
}
