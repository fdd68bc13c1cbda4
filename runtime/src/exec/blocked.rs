//! The channel-blocked layout of an f32 value between convolutions: `[C / 16][H * W][16]`,
//! each block of 16 channels a plane of pixels with a pixel's 16 channels together (what
//! onnxruntime's NCHWc convolutions read and write), against the executor's usual channel
//! planes `[C][H * W]`.
//!
//! Why: [`super::conv_lanes`] multiplies 12 pixels by 32 output channels per kernel call, its
//! input's pixels broadcast one input channel at a time. Over channel planes a K block of 128
//! channels reads its 12 pixels from 128 planes (128 short runs, more streams than the
//! hardware prefetcher follows), and each pair of output channels goes to its 32 planes through
//! a transpose. Blocked, the 12 pixels of 16 channels are one run of 768 bytes, and a pixel's
//! sums leave the registers' lanes as they are. Measured with a side copy (stop 63, the Xeon,
//! in-process alternation): ResNet50's 1024→256 layers on 14x14 0.89–0.94 of their time with
//! their input so laid out.
//!
//! Winograd's convolutions ([`super::winograd`]) read a blocked input by plain copies of a
//! pixel's channels instead of a transpose, and write their output tiles' channels as they
//! leave the transform, so the 3x3 layers between 1x1 ones keep the layout too.
//!
//! Which values: those [`values`] finds, where every step that writes or reads the value
//! takes this layout; the others stay in planes. Observers see planes ([`to_planes`]).
//! Measured in one process, alternating the two layouts run by run (`step_times`' fastest
//! step over 4 processes, the Xeon of stop 64): ResNet50's f32 step sum 29.92 → 29.00 ms (its
//! 1x1 layers on 14x14 0.87–0.91 of their time, on 7x7 0.92–0.98, the global pooling 0.034 →
//! 0.016 ms), ResNet18's 10.07 → 9.97.

use fq_models::ValueId;

use super::buf::Buf;
use super::disjoint::Shared;
use super::kernel::NR;
use super::plan::Step;
use super::transpose::columns_to_rows;

/// Channels per block: the AVX-512F kernel's lanes.
pub const LANES: usize = NR;

/// How a convolution's values lie: channel planes (`[c][h * w]`, the executor's usual layout),
/// or blocks of [`LANES`] channels: its input, its output (with the residual laid out as the
/// output).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    pub input_blocked: bool,
    pub output_blocked: bool,
}

/// Where channel `c`'s pixel `p` lies in a blocked value of `n` pixels a channel (the
/// definition the tests build blocked values by).
#[cfg(test)]
pub fn at(c: usize, p: usize, n: usize) -> usize {
    (c / LANES) * n * LANES + p * LANES + c % LANES
}

/// A blocked value of `c` channels (a multiple of [`LANES`]) of `n` pixels as channel planes
/// `[c][n]`: each block's `n` rows of `LANES` transposed into its `LANES` planes
/// ([`columns_to_rows`], 16x16 blocks through registers on AVX-512F).
pub fn to_planes(x: &[f32], c: usize, n: usize) -> Buf<f32> {
    assert!(
        c.is_multiple_of(LANES) && x.len() == c * n,
        "blocked value: {} floats for {c} channels of {n} pixels",
        x.len()
    );
    let mut out = Buf::zeroed(c * n);
    let base = Shared(out.as_mut_ptr());
    for (b, block) in x.chunks_exact((n * LANES).max(1)).enumerate() {
        // SAFETY: planes `b * LANES..(b + 1) * LANES` of `out`, `n` floats each, inside `out`
        // (`c * n` floats), which this loop alone writes.
        unsafe { columns_to_rows(block, LANES, (n, LANES), base.offset(b * LANES * n), n) };
    }
    out
}

/// Channel planes `[c][n]` as a blocked value (`c` a multiple of [`LANES`]).
#[cfg(test)]
pub fn from_planes(x: &[f32], c: usize, n: usize) -> Buf<f32> {
    assert!(
        c.is_multiple_of(LANES) && x.len() == c * n,
        "channel planes: {} floats for {c} channels of {n} pixels",
        x.len()
    );
    let mut out = Buf::zeroed(c * n);
    for ch in 0..c {
        for p in 0..n {
            out[at(ch, p, n)] = x[ch * n + p];
        }
    }
    out
}

/// A convolution test's input and residual as `layout` lays them out: each given as
/// (planes, blocks).
#[cfg(test)]
pub fn laid_out<'a>(
    layout: Layout,
    x: (&'a [f32], &'a [f32]),
    residual: (&'a [f32], &'a [f32]),
) -> (&'a [f32], &'a [f32]) {
    let pick = |blocked: bool, (planes, blocks): (&'a [f32], &'a [f32])| {
        if blocked {
            blocks
        } else {
            planes
        }
    };
    (
        pick(layout.input_blocked, x),
        pick(layout.output_blocked, residual),
    )
}

/// The mean of each channel of a blocked value, `[c]`: the same floats as
/// [`super::pool::global_avg_pool`] on its planes (each channel summed over its pixels in order).
///
/// A block's channels are summed together, pixel after pixel (each lane's sum in the order of
/// its channel's pixels, from the neutral element of `f32`'s `Sum`): a pass over the value
/// rather than a strided walk per channel (which took 0.11 ms of ResNet50's 0.03).
pub fn global_avg_pool(x: &[f32], c: usize, n: usize) -> Buf<f32> {
    assert!(
        c.is_multiple_of(LANES) && x.len() == c * n,
        "blocked value: {} floats for {c} channels of {n} pixels",
        x.len()
    );
    if n == 0 {
        return Buf::zeroed(c);
    }
    let zero = std::iter::empty::<f32>().sum::<f32>();
    let mut out = Buf::zeroed(c);
    for (means, block) in out.chunks_exact_mut(LANES).zip(x.chunks_exact(n * LANES)) {
        let mut acc = [zero; LANES];
        for px in block.chunks_exact(LANES) {
            for (a, v) in acc.iter_mut().zip(px) {
                *a += v;
            }
        }
        for (m, a) in means.iter_mut().zip(acc) {
            *m = a / n as f32;
        }
    }
    out
}

/// Which of `values` values are kept blocked: those written by a step that `writes` (a
/// convolution that can write this layout: `writes(s)`) and read only by steps that take it —
/// as the input of a convolution that `reads` it (`reads(s)`), as the residual of a
/// convolution whose own output is blocked, or by a global average pooling — and never the
/// plan's `output`.
///
/// Why a fixed point: a convolution adds its residual in its output's layout, so a value and
/// the residual added into it are blocked together or not at all, and dropping one can drop
/// another.
pub fn values(
    steps: &[Step],
    values: usize,
    output: ValueId,
    writes: impl Fn(usize) -> bool,
    reads: impl Fn(usize) -> bool,
) -> Vec<bool> {
    let mut blocked = vec![false; values];
    for (s, step) in steps.iter().enumerate() {
        if let Step::Conv { output: o, .. } = step {
            blocked[*o] = writes(s) && *o != output;
        }
    }
    loop {
        let mut changed = false;
        let mut drop = |v: ValueId, blocked: &mut [bool]| {
            if blocked[v] {
                blocked[v] = false;
                changed = true;
            }
        };
        for (s, step) in steps.iter().enumerate() {
            match step {
                Step::Conv {
                    input,
                    residual,
                    output: o,
                    ..
                } => {
                    if !reads(s) {
                        drop(*input, &mut blocked);
                    }
                    if let Some(r) = *residual {
                        if blocked[r] != blocked[*o] {
                            drop(r, &mut blocked);
                            drop(*o, &mut blocked);
                        }
                    }
                }
                Step::GlobalAvgPool { .. } => {}
                other => {
                    for v in other.inputs() {
                        drop(v, &mut blocked);
                    }
                }
            }
        }
        if !changed {
            return blocked;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout's definition: planes and blocks hold the same value at each (channel, pixel),
    /// both ways, and the blocked pooling gives the planes' floats bit for bit (a channel of
    /// negative zeros too, and maps of no pixel and of one).
    #[test]
    fn planes_and_blocks_agree() {
        for (c, n) in [(48, 13), (16, 0), (32, 1)] {
            let mut planes: Vec<f32> = (0..c * n).map(|i| (i as f32 * 0.37).sin()).collect();
            planes[..n].fill(-0.0);
            let blocked = from_planes(&planes, c, n);
            for ch in 0..c {
                for p in 0..n {
                    let want = planes[ch * n + p];
                    assert_eq!(blocked[(ch / 16) * n * 16 + p * 16 + ch % 16], want);
                }
            }
            assert_eq!(&to_planes(&blocked, c, n)[..], &planes[..]);
            let pooled = global_avg_pool(&blocked, c, n);
            let want = super::super::pool::global_avg_pool(&planes, c, n);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&pooled), bits(&want), "{c} channels of {n} pixels");
        }
    }

    /// The fixed point on a hand-made plan: a value is blocked only when its writer writes
    /// blocks and each reader takes them; a residual goes with its convolution's output, both
    /// ways; the plan's output and a value read by a step of another kind stay in planes.
    #[test]
    fn values_block_where_every_step_takes_blocks() {
        use fq_models::Conv2d;
        let conv = |input, residual, output| Step::Conv {
            layer: 0,
            conv: Conv2d {
                in_channels: 32,
                out_channels: 32,
                kernel: 1,
                stride: 1,
                padding: 0,
                groups: 1,
                bias: true,
            },
            input,
            residual,
            relu: true,
            gelu: false,
            output,
        };
        // Value 1 = conv(0); 2 = conv(1); 3 = conv(2) + 2; 4 = the global pooling of 3; then
        // `tail` (reading 4, or 3).
        let chain = |tail: Step| {
            vec![
                conv(0, None, 1),
                conv(1, None, 2),
                conv(2, Some(2), 3),
                Step::GlobalAvgPool {
                    input: 3,
                    output: 4,
                },
                tail,
            ]
        };
        let relu = Step::Relu {
            input: 4,
            output: 5,
        };
        let all = |_| true;
        // Step 0 cannot read blocks: the image (value 0) is no convolution's output anyway.
        let want = [false, true, true, true, false, false];
        assert_eq!(values(&chain(relu.clone()), 6, 5, all, |s| s != 0), want);
        // A reader of another kind (a max pooling of value 3) unblocks value 3, so the
        // residual added into it (2); value 1 keeps its blocks.
        let pool3 = Step::MaxPool {
            kernel: 3,
            stride: 2,
            padding: 1,
            input: 3,
            output: 5,
        };
        let want = [false, true, false, false, false, false];
        assert_eq!(values(&chain(pool3), 6, 5, all, all), want);
        // A writer that cannot write blocks (step 1): its output (2) in planes, so the output
        // it is added into (3) too.
        assert_eq!(values(&chain(relu.clone()), 6, 5, |s| s != 1, all), want);
        // The plan's output is never blocked, nor then the residual added into it.
        assert_eq!(values(&chain(relu), 6, 3, all, all), want);
    }
}
