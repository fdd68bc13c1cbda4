//! The CPU executor: runs a packed model's folded graph on one image at a time, the weights
//! unpacked from their 2–8-bit codes inside the GEMM (no candle, no f32 copy of the model).
//!
//! Convolutions are im2col + packed GEMM (rayon over row or column blocks, see [`conv`]; an
//! AVX2/FMA micro-kernel when the CPU has it); Linear is a packed GEMV; pooling, residual adds and ReLU are plain loops, most
//! of them fused into the GEMM's epilogue (see [`plan`]). Batches run image-parallel.

mod blocked;
mod buf;
mod busy;
mod conv;
mod conv_direct;
mod conv_i8;
mod conv_lanes;
mod depthwise;
mod disjoint;
mod epilogue;
#[cfg(target_arch = "x86_64")]
mod finish_quads;
mod float_conv;
pub mod gemm;
#[cfg(target_arch = "x86_64")]
mod gemv_i8;
mod im2col;
pub mod int8_gemm;
pub mod kernel;
mod phases;
mod plan;
mod pool;
mod quads;
mod scratch;
mod stem_pool;
mod tap_blocks;
mod taps;
mod tasks;
mod token_gemm;
pub mod tokens;
mod transpose;
pub(crate) mod vmath;
mod winograd;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use fq_models::{Graph, Shape, ValueId};
use rayon::prelude::*;

use crate::format::{FormatError, Layer, LayerWeights, NamedTensor, PackedModel};
pub use buf::{Buf, Plain};
use conv_i8::CodesIn;
pub use float_conv::FloatConv;
use gemm::{Epilogue, Rows};
use int8_gemm::{CodesOut, InputLayout, Residual8, WeightsI8};
pub use plan::{Plan, Step};
use quads::{QuadShape, Quads};

/// A layer ready to run: its weights as stored plus the per-row offsets into the packed bytes.
struct Prepared {
    layer: Layer,
    offsets: Vec<usize>,
}

impl Prepared {
    fn new(layer: Layer) -> Self {
        let offsets = match &layer.weights {
            LayerWeights::Packed(m) => m.row_offsets(),
            LayerWeights::F32 { .. } => Vec::new(),
        };
        Self { layer, offsets }
    }

    fn rows(&self) -> Rows<'_> {
        match &self.layer.weights {
            LayerWeights::Packed(m) => Rows::Packed {
                m,
                offsets: &self.offsets,
            },
            LayerWeights::F32 { data, cols, .. } => Rows::F32 { data, cols: *cols },
        }
    }

    fn scale(&self) -> Option<&[f32]> {
        match &self.layer.weights {
            LayerWeights::Packed(m) => Some(&m.scales),
            LayerWeights::F32 { .. } => None,
        }
    }
}

/// How a convolution's epilogue requantises its output for the integer convolutions reading it.
#[derive(Clone, Copy, Debug)]
struct Requant {
    scale: f32,
    /// `Some(pad)`: in quads with that padding; `None`: channel-major.
    quads_pad: Option<usize>,
}

/// A value's codes as its producer's epilogue wrote them.
enum Codes {
    Rows(Buf<i8>),
    Quads(Quads),
}

impl Codes {
    fn view(&self) -> CodesIn<'_> {
        match self {
            Codes::Rows(v) => CodesIn::Rows(v),
            Codes::Quads(q) => CodesIn::Quads(q),
        }
    }
}

/// What the convolutions multiply the weight codes with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Activations {
    /// f32 activations, the codes unpacked to f32: the reference path.
    #[default]
    F32,
    /// Activations quantised to i8 at run time, one scale per tensor from its largest magnitude
    /// (dynamic quantisation), the codes as i8, exact i32 sums (`int8_gemm`). For ungrouped
    /// convolutions with packed weights; the other steps stay f32.
    Int8Dynamic,
    /// As `Int8Dynamic`, but each convolution's input scale fixed in advance from calibration
    /// images ([`Executor::calibrate`], [`Executor::set_activation_scales`]); a layer without
    /// one falls back to its dynamic scale. Values past the calibrated range are clipped.
    Int8Static,
}

impl Activations {
    /// "f32" or "int8-dynamic".
    pub fn name(self) -> &'static str {
        match self {
            Activations::F32 => "f32",
            Activations::Int8Dynamic => "int8-dynamic",
            Activations::Int8Static => "int8-static",
        }
    }
}

/// A compiled model: steps, value shapes and layers.
pub struct Executor {
    /// The steps that run: the plan's, with its GELUs fused into the Linear/Conv steps before them
    /// unless [`Executor::set_gelu_fusion`] turned that off.
    steps: Vec<Step>,
    /// The plan's steps as compiled (unfused), to fuse again or not.
    plan_steps: Vec<Step>,
    shapes: Vec<Shape>,
    layers: Vec<Prepared>,
    /// The unquantized parameters (layer norms, tokens, embeddings, attention biases).
    tensors: Vec<NamedTensor>,
    /// Index of the last step reading each value (`usize::MAX`: the output, kept).
    last_use: Vec<usize>,
    output: ValueId,
    activations: Activations,
    /// Per layer, its i8 weights when it runs on the integer path (empty on the f32 path).
    int8: Vec<Option<WeightsI8>>,
    /// Per layer, a token Linear layer's weights in the f32 kernel's panels, or a convolution's
    /// rows unpacked ([`gemm::unpacked_rows`]), made on the first f32 run that needs them and
    /// dropped when the integer path is chosen: 4 bytes a weight (what an f32 runtime holds
    /// anyway) for not unpacking them on every run.
    f32_panels: Vec<OnceLock<Buf<f32>>>,
    /// Per layer, a Winograd convolution's transformed weights as quarters on the AVX-512F
    /// path ([`winograd::QuarterWeights`]: half the bytes of their floats in `f32_panels`),
    /// made and dropped with `f32_panels`; `None` inside where its weights are no quarters.
    winograd_quarters: Vec<OnceLock<Option<winograd::QuarterWeights>>>,
    /// Per layer, a convolution's weight codes in [`conv_lanes`]' panels as `i8` on the
    /// AVX-512F and AVX2 paths ([`conv_lanes::bytes_pay`]: a quarter of the bytes of their
    /// floats in `f32_panels`), made and dropped with `f32_panels`; `None` inside where its
    /// weights are no codes.
    lane_bytes: Vec<OnceLock<Option<Buf<i8>>>>,
    /// Per layer, a Linear layer on one vector (the classifier head) as i8 codes, made on its
    /// first run on either path: its GEMV unpacked every row on every run, 0.27 ms of ResNet50's
    /// 9 ms integer path for its 2048 x 1000 head. One byte a weight; the same values as the
    /// unpacked rows, so the same sums.
    vector_codes: Vec<OnceLock<Buf<i8>>>,
    /// Per tensor, a window attention's bias table as the rows its scores add
    /// ([`tokens::window_bias_rows`]), made on its first run (`None` inside for a table of no
    /// window).
    window_bias_rows: Vec<OnceLock<Option<Buf<f32>>>>,
    /// Calibrations under way: their f32 runs make no `f32_panels` (a calibration
    /// is a few images before the integer path, which drops them: keeping them only raised the
    /// peak memory, 32 to 64 MiB for ResNet18).
    calibrating: AtomicUsize,
    /// Per layer, the calibrated scale of its input (`Int8Static`); empty when none were set.
    scales: Vec<Option<f32>>,
    /// Whether an integer convolution's epilogue writes the next integer convolution's input
    /// codes (on by default; [`Executor::set_requantize_in_epilogue`]).
    requantize_in_epilogue: bool,
    /// Whether an integer convolution adds a residual from its codes when its producer wrote
    /// them (on by default; [`Executor::set_residual_codes`]).
    residual_codes: bool,
    /// Whether an integer convolution whose output is only the next one's residual runs with it
    /// as one pair of blocks (on by default; [`Executor::set_pair_fusion`]).
    pair_fusion: bool,
    /// Whether convolutions with a multiple of 4 input channels take their codes as quads (on by
    /// default; [`Executor::set_quad_layout`]).
    quad_layout: bool,
    /// Whether the stems (integer and f32) run with their max pooling as one step (on by default;
    /// [`Executor::set_stem_pool_fusion`]).
    stem_pool_fusion: bool,
    /// Whether integer convolutions over a ReLU's output multiply its codes unflipped
    /// ([`Executor::set_unsigned_inputs`]).
    unsigned_inputs: bool,
    /// Whether f32 3x3 stride-1 convolutions run by Winograd's F(2x2, 3x3) (on by default;
    /// [`Executor::set_winograd`]).
    winograd: bool,
    /// Whether the f32 path's convolutions put their output channels along the lanes where
    /// that pays ([`Executor::set_conv_lanes`]).
    conv_lanes: bool,
    /// Whether f32 runs keep the values between [`conv_lanes`]' and Winograd's convolutions in
    /// blocks of channels where they can ([`blocked`], [`Executor::set_blocked_values`]).
    blocks: bool,
    /// Per value, whether the 1x1 convolution writing it runs along the lanes where this path
    /// runs it so only with its values in blocks ([`conv_lanes::wants_blocks`]): made on first
    /// use ([`Executor::wide_lanes`]), dropped by the settings it depends on.
    wide_lanes: OnceLock<Vec<bool>>,
}

/// Why an input cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("input has {got} values, the model takes {expected} (3 x {size} x {size}) per image")]
    InputSize {
        got: usize,
        expected: usize,
        size: usize,
    },
    /// The GPU backend failed (device lost, out of memory); the message says how.
    #[error("{0}")]
    Gpu(String),
}

impl Executor {
    /// Runs a compiled [`Plan`], taking its layers.
    pub fn from_plan(plan: Plan) -> Self {
        let (plan_steps, shapes, output, layers, tensors) = plan.into_parts();
        let steps = plan::fuse_gelu(plan_steps.clone(), output);
        let last_use = last_uses(&steps, shapes.len(), output);
        Self {
            steps,
            plan_steps,
            shapes,
            f32_panels: layers.iter().map(|_| OnceLock::new()).collect(),
            winograd_quarters: layers.iter().map(|_| OnceLock::new()).collect(),
            lane_bytes: layers.iter().map(|_| OnceLock::new()).collect(),
            vector_codes: layers.iter().map(|_| OnceLock::new()).collect(),
            window_bias_rows: tensors.iter().map(|_| OnceLock::new()).collect(),
            calibrating: AtomicUsize::new(0),
            layers: layers.into_iter().map(Prepared::new).collect(),
            tensors,
            last_use,
            output,
            activations: Activations::F32,
            int8: Vec::new(),
            scales: Vec::new(),
            requantize_in_epilogue: true,
            residual_codes: true,
            pair_fusion: true,
            quad_layout: true,
            stem_pool_fusion: true,
            unsigned_inputs: true,
            winograd: true,
            conv_lanes: true,
            blocks: true,
            wide_lanes: OnceLock::new(),
        }
    }

    /// The layers the integer path takes, `(layer, input)`: ungrouped convolutions and Linear
    /// layers over token sequences, with packed weights. (A Linear layer on one feature vector
    /// is a GEMV: too little work to pay for quantising its input.)
    fn int8_layers(&self) -> impl Iterator<Item = (usize, ValueId)> + '_ {
        let packed = |l: usize| matches!(self.layers[l].layer.weights, LayerWeights::Packed(_));
        self.steps.iter().filter_map(move |step| match step {
            Step::Conv {
                layer, conv, input, ..
            } if conv.groups == 1 && packed(*layer) => Some((*layer, *input)),
            Step::Linear { layer, input, .. }
                if packed(*layer) && matches!(self.shapes[*input], Shape::Seq(..)) =>
            {
                Some((*layer, *input))
            }
            _ => None,
        })
    }

    /// Static activation scales from calibration images (CHW, preprocessed like the model's
    /// input): per layer, the largest magnitude its input reaches over `images` in the float
    /// model (whatever path the executor is set to), over 127;
    /// `None` for layers off the integer path. Which images is the caller's choice: the
    /// compressor's group-balanced calibration passes the same number from every patient group.
    pub fn calibrate<'a>(
        &self,
        images: impl IntoIterator<Item = &'a [f32]>,
    ) -> Result<Vec<Option<f32>>, ExecError> {
        let convs: Vec<(usize, ValueId)> = self.int8_layers().collect();
        let mut max_abs = vec![0f32; self.shapes.len()];
        let wanted: std::collections::HashSet<ValueId> = convs.iter().map(|c| c.1).collect();
        let peak = |v: &[f32]| v.iter().fold(0f32, |m, x| m.max(x.abs()));
        /// Counts a calibration as under way while it lives (its runs may fail with `?`).
        struct Calibrating<'a>(&'a AtomicUsize);
        impl Drop for Calibrating<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.calibrating.fetch_add(1, Ordering::Relaxed);
        let _calibrating = Calibrating(&self.calibrating);
        for image in images {
            if wanted.contains(&0) {
                max_abs[0] = max_abs[0].max(peak(image));
            }
            let mut seen = |s: usize, v: &[f32]| {
                let out = self.steps[s].output();
                if wanted.contains(&out) {
                    max_abs[out] = max_abs[out].max(peak(v));
                }
            };
            self.run_inner(image, Activations::F32, Observe::Values(&mut seen))?;
        }
        let mut scales = vec![None; self.layers.len()];
        for (layer, input) in convs {
            let m = max_abs[input];
            scales[layer] = Some(if m > 0.0 && m.is_finite() {
                m / int8_gemm::QMAX
            } else {
                1.0
            });
        }
        Ok(scales)
    }

    /// Fixes the convolutions' input scales (per layer, as [`Executor::calibrate`] returns
    /// them) and switches to [`Activations::Int8Static`].
    pub fn set_activation_scales(&mut self, scales: Vec<Option<f32>>) {
        self.scales = scales;
        self.set_activations(Activations::Int8Static);
    }

    /// Bytes of unpacked weights the executor holds (`f32_panels`, `winograd_quarters`,
    /// `lane_bytes`):
    /// what the f32 path adds to the resident memory once it has run.
    pub fn unpacked_weight_bytes(&self) -> usize {
        let floats: usize = self
            .f32_panels
            .iter()
            .filter_map(OnceLock::get)
            .map(|v| v.len() * std::mem::size_of::<f32>())
            .sum();
        let quarters: usize = self
            .winograd_quarters
            .iter()
            .filter_map(|q| q.get()?.as_ref())
            .map(|q| q.u.len() * std::mem::size_of::<i16>())
            .sum();
        let bytes: usize = self
            .lane_bytes
            .iter()
            .filter_map(|b| b.get()?.as_ref())
            .map(|b| b.len())
            .sum();
        floats + quarters + bytes
    }

    /// Drops the weights the f32 path made for itself (`f32_panels`, `winograd_quarters`,
    /// `lane_bytes`).
    fn drop_f32_weights(&mut self) {
        self.f32_panels.iter_mut().for_each(|p| drop(p.take()));
        self.winograd_quarters
            .iter_mut()
            .for_each(|p| drop(p.take()));
    }

    /// The geometry of an f32 convolution from `input` to `output` that runs by Winograd's
    /// F(2x2, 3x3) ([`winograd::suits`]), whose transformed weights are then kept in
    /// `f32_panels`; `None` for the others, and during a calibration (which keeps no weights: its
    /// few images take the direct convolution).
    fn winograd_geometry(
        &self,
        conv: &fq_models::Conv2d,
        input: ValueId,
        output: ValueId,
    ) -> Option<im2col::Geometry> {
        self.keeps_f32_panels()
            .then(|| self.winograd_suits(conv, input, output))
            .flatten()
    }

    /// [`Executor::winograd_geometry`] whether a calibration is under way or not.
    fn winograd_suits(
        &self,
        conv: &fq_models::Conv2d,
        input: ValueId,
        output: ValueId,
    ) -> Option<im2col::Geometry> {
        let (geo, co) = self.conv_geometry(conv, input, output)?;
        (self.winograd && conv.groups == 1 && winograd::suits(&geo, co)).then_some(geo)
    }

    /// A convolution's geometry, when it runs with its output channels along the lanes on the
    /// f32 path ([`conv_lanes`]): those Winograd's does not take, and of those that want their
    /// values in blocks ([`conv_lanes::wants_blocks`]), those that get them
    /// ([`Executor::wide_lanes`]).
    fn lanes_geometry(
        &self,
        conv: &fq_models::Conv2d,
        input: ValueId,
        output: ValueId,
    ) -> Option<im2col::Geometry> {
        if !self.keeps_f32_panels() {
            return None;
        }
        let geo = self.lanes_suits(conv, input, output)?;
        (!conv_lanes::wants_blocks(&geo) || self.wide_lanes()[output]).then_some(geo)
    }

    /// The convolutions [`conv_lanes`] can run ([`conv_lanes::pays`], Winograd's first),
    /// whatever their values' layout and whether a calibration is under way.
    fn lanes_suits(
        &self,
        conv: &fq_models::Conv2d,
        input: ValueId,
        output: ValueId,
    ) -> Option<im2col::Geometry> {
        let (geo, co) = self.conv_geometry(conv, input, output)?;
        // Winograd's take precedence (`step`).
        let on = self.conv_lanes && self.winograd_suits(conv, input, output).is_none();
        (on && conv_lanes::pays(&geo, co, conv.groups)).then_some(geo)
    }

    /// Per value, whether the convolution writing it is one that wants its values in blocks
    /// ([`conv_lanes::wants_blocks`]) and runs along the lanes: those whose input or output
    /// stays blocked ([`Executor::blocked_with`]) when they do. A fixed point: a convolution
    /// that goes back to [`conv_direct`] reads and writes channel planes, which can take the
    /// blocks from the values around it (its residual's, its readers') and so from another.
    ///
    /// Why: with neither in blocks these layers lost on AVX2 ([`conv_lanes::wants_blocks`]).
    /// One of the two is enough: ResNet50's 256 to 128 on 56x56, whose output the strided 3x3
    /// layer after it reads in planes, reads the first stage's residual stream, which stays in
    /// blocks only while every reader takes them.
    fn wide_lanes(&self) -> &[bool] {
        self.wide_lanes.get_or_init(|| {
            let mut on = vec![false; self.shapes.len()];
            if !self.blocks || !conv_lanes::blocks_pay() {
                return on;
            }
            for step in &self.steps {
                if let Step::Conv {
                    conv,
                    input,
                    output,
                    gelu: false,
                    ..
                } = step
                {
                    let geo = self.lanes_suits(conv, *input, *output);
                    on[*output] = geo.is_some_and(|g| conv_lanes::wants_blocks(&g));
                }
            }
            loop {
                let blocked = self.blocked_with(&on);
                let mut changed = false;
                for step in &self.steps {
                    if let Step::Conv { input, output, .. } = step {
                        if on[*output] && !blocked[*input] && !blocked[*output] {
                            on[*output] = false;
                            changed = true;
                        }
                    }
                }
                if !changed {
                    return on;
                }
            }
        })
    }

    /// A convolution's geometry, when the f32 path runs it by [`conv_direct`]: one group, and
    /// neither Winograd's nor [`conv_lanes`] takes it.
    fn direct_geometry(
        &self,
        conv: &fq_models::Conv2d,
        input: ValueId,
        output: ValueId,
    ) -> Option<im2col::Geometry> {
        let (geo, _) = self.conv_geometry(conv, input, output)?;
        let others = self.winograd_geometry(conv, input, output).is_some()
            || self.lanes_geometry(conv, input, output).is_some();
        (conv.groups == 1 && !others && conv_direct::pays(&geo)).then_some(geo)
    }

    /// A convolution's geometry from its input's and output's shapes, and its output channels.
    fn conv_geometry(
        &self,
        conv: &fq_models::Conv2d,
        input: ValueId,
        output: ValueId,
    ) -> Option<(im2col::Geometry, usize)> {
        let (Shape::Chw(c, h, w), Shape::Chw(co, ho, wo)) =
            (self.shapes[input], self.shapes[output])
        else {
            return None;
        };
        let geo = im2col::Geometry {
            c,
            h,
            w,
            kernel: conv.kernel,
            stride: conv.stride,
            padding: conv.padding,
            ho,
            wo,
        };
        Some((geo, co))
    }

    /// Whether f32 runs keep their unpacked weights (`f32_panels`): not while a
    /// calibration is under way.
    fn keeps_f32_panels(&self) -> bool {
        self.calibrating.load(Ordering::Relaxed) == 0
    }

    /// Chooses how the convolutions take their input; the integer path prepares each eligible
    /// layer's i8 weights here, once (about one byte per weight).
    pub fn set_activations(&mut self, activations: Activations) {
        self.activations = activations;
        if activations != Activations::F32 {
            self.drop_f32_weights();
        }
        // Both integer modes use the same i8 weights: switching between them (or setting the
        // same mode again) keeps the ones already prepared.
        let prepared = !self.int8.is_empty();
        self.int8 = match activations {
            Activations::F32 => Vec::new(),
            Activations::Int8Dynamic | Activations::Int8Static if prepared => {
                std::mem::take(&mut self.int8)
            }
            Activations::Int8Dynamic | Activations::Int8Static => {
                let mut int8: Vec<Option<WeightsI8>> = self.layers.iter().map(|_| None).collect();
                let convs: Vec<(usize, ValueId)> = self.int8_layers().collect();
                for (layer, _) in convs {
                    if let LayerWeights::Packed(m) = &self.layers[layer].layer.weights {
                        let (columns, layout) = self.input_layout(layer);
                        int8[layer] = Some(WeightsI8::with_columns(m, columns.as_deref(), layout));
                    }
                }
                int8
            }
        };
    }

    /// The column order of a convolution on the integer path and the layout of its input:
    /// [`Quads`] for every ungrouped one whose input channels are a multiple of 4, tap rows
    /// ([`taps`]) for the others that suit them (an RGB stem), PyTorch's order otherwise.
    fn input_layout(&self, layer: usize) -> (Option<Vec<Option<usize>>>, InputLayout) {
        if !self.quad_layout {
            return (None, InputLayout::Rows);
        }
        let found = self.steps.iter().find_map(|step| match step {
            Step::Conv {
                layer: l,
                conv,
                input,
                ..
            } if *l == layer && conv.groups == 1 => match self.shapes[*input] {
                Shape::Chw(c, _, _) if c % quads::Q == 0 => Some((
                    Some(quads::column_order(c, conv.kernel)),
                    InputLayout::Quads,
                )),
                Shape::Chw(c, _, _) if taps::suits(c, conv.kernel, conv.stride, conv.groups) => {
                    Some((Some(taps::column_order(c, conv.kernel)), InputLayout::Taps))
                }
                _ => None,
            },
            _ => None,
        });
        found.unwrap_or((None, InputLayout::Rows))
    }

    /// A layer's i8 weights when it runs on the integer path under `activations`.
    fn int8_weights(&self, layer: usize, activations: Activations) -> Option<&WeightsI8> {
        match activations {
            Activations::F32 => None,
            _ => self.int8.get(layer).and_then(Option::as_ref),
        }
    }

    /// A layer's calibrated input scale under `Int8Static` (`None`: its dynamic scale).
    fn static_scale(&self, layer: usize, activations: Activations) -> Option<f32> {
        match activations {
            Activations::Int8Static => self.scales.get(layer).copied().flatten(),
            _ => None,
        }
    }

    /// How the convolutions take their input.
    pub fn activations(&self) -> Activations {
        self.activations
    }

    /// Under [`Activations::Int8Static`], an integer convolution whose output feeds integer
    /// convolutions of one calibrated scale quantises that output in its epilogue, and they
    /// take the codes instead of quantising the floats again (on by default). The codes are
    /// the same either way, so turning it off changes no result, only the time: it is here so
    /// tests and benchmarks can compare the two.
    pub fn set_requantize_in_epilogue(&mut self, on: bool) {
        self.requantize_in_epilogue = on;
    }

    /// Whether an integer convolution with a residual adds it from the codes its producer's
    /// epilogue wrote for the integer convolutions reading it (on by default; `int8_gemm::Residual8`):
    /// then that value keeps no floats when nothing else reads them. Unlike the other switches
    /// this changes the numbers: the residual is rounded to its codes, at most half a step of
    /// their scale per value, as onnxruntime's quantised models add residuals. Off, the floats.
    pub fn set_residual_codes(&mut self, on: bool) {
        self.residual_codes = on;
    }

    /// Whether a GELU whose input only a Linear or convolution step writes and reads runs in
    /// that step's epilogue (on by default) or as its own step, as the [`Plan`] has it. The same
    /// [`vmath::gelu`] on the same finished floats either way, so turning it off changes no
    /// result, only the time: it is here so tests and benchmarks can compare the two.
    pub fn set_gelu_fusion(&mut self, on: bool) {
        let steps = if on {
            plan::fuse_gelu(self.plan_steps.clone(), self.output)
        } else {
            self.plan_steps.clone()
        };
        if steps == self.steps {
            return;
        }
        self.steps = steps;
        self.last_use = last_uses(&self.steps, self.shapes.len(), self.output);
        // Which convolutions take blocks of channels, so which run along the lanes on AVX2
        // ([`Executor::wide_lanes`]), depends on their GELU epilogues: their weights' layout
        // with it.
        self.wide_lanes = OnceLock::new();
        self.drop_f32_weights();
    }

    /// Whether the integer convolutions whose input channels are a multiple of 4 take their
    /// input codes in quads (on by default) or channel-major like the stem. The integer sums
    /// are the same either way, so turning it off changes no result, only the time: it is here
    /// so tests and benchmarks can compare the two. Prepares the i8 weights again when it
    /// changes.
    pub fn set_quad_layout(&mut self, on: bool) {
        if self.quad_layout != on {
            self.quad_layout = on;
            self.int8.clear();
            self.set_activations(self.activations);
        }
    }

    /// Whether a stem convolution (an integer one over tap rows, or an f32 one that
    /// [`conv_direct`] runs) and the max pooling that alone reads its output run as one step,
    /// band by band (`stem_pool`; on by default). The same numbers
    /// either way; here so tests and benchmarks can compare the two.
    pub fn set_stem_pool_fusion(&mut self, on: bool) {
        self.stem_pool_fusion = on;
    }

    /// Whether the integer convolutions reading a value that the graph makes `>= 0` (see
    /// [`Executor::is_nonneg`]) tell the kernels so (on by default): the AVX2 kernel then
    /// multiplies the codes as they are and adds twice as many pairs in i16. The same numbers
    /// either way; here so tests and benchmarks can compare the two.
    pub fn set_unsigned_inputs(&mut self, on: bool) {
        self.unsigned_inputs = on;
    }

    /// Whether an integer convolution whose output only the next convolution reads, as its
    /// residual (a ResNet's downsampling branch and the block's last convolution), runs with it
    /// as one step, block by block (`int8_gemm::gemm_i8_pair`, on AMX and AVX-512 VNNI; on by default): the
    /// first one's floats are never written. The same numbers either way; here so tests and
    /// benchmarks can compare the two.
    pub fn set_pair_fusion(&mut self, on: bool) {
        self.pair_fusion = on;
    }

    /// How many pairs of convolutions run as one step under the current settings
    /// ([`Executor::set_pair_fusion`]): what profiles report.
    pub fn fused_pairs(&self) -> usize {
        let requant = self.requant_targets(self.activations);
        let read = self.floats_read(&requant, self.activations);
        self.pairs(self.activations, &requant, &read)
            .iter()
            .filter(|&&p| p)
            .count()
    }

    /// Per step, whether it is the first of a pair of integer convolutions that run as one
    /// ([`Executor::set_pair_fusion`]): its output, not the model's, is read only by the next
    /// step, a convolution of the same output shape, as its residual; both take quads, have
    /// calibrated scales, and the second's output is kept as codes alone in quads.
    fn pairs(
        &self,
        activations: Activations,
        requant: &[Option<Requant>],
        floats_read: &[bool],
    ) -> Vec<bool> {
        let fused = |(s, step): (usize, &Step)| {
            let Some(next) = self.steps.get(s + 1) else {
                return false;
            };
            let (
                Step::Conv {
                    layer: lp,
                    residual: None,
                    gelu: false,
                    output: op,
                    ..
                },
                Step::Conv {
                    layer,
                    input,
                    residual: Some(r),
                    gelu: false,
                    output,
                    ..
                },
            ) = (step, next)
            else {
                return false;
            };
            let quads = |l: usize| {
                self.int8_weights(l, activations)
                    .filter(|w| w.layout() == InputLayout::Quads)
                    .filter(|_| self.static_scale(l, activations).is_some())
            };
            let (Some(wp), Some(w)) = (quads(*lp), quads(*layer)) else {
                return false;
            };
            let epi = |step| self.conv_epilogue(step);
            self.pair_fusion
                && r == op
                && input != op
                && *op != self.output
                && self.last_use[*op] == s + 1
                && self.shapes[*op] == self.shapes[*output]
                && requant[*output].is_some_and(|q| q.quads_pad.is_some())
                && !floats_read[*output]
                && int8_gemm::pair_fuses(
                    (wp, &epi(step)),
                    (w, &epi(next)),
                    match self.shapes[*output] {
                        Shape::Chw(_, h, w) => h * w,
                        _ => 0,
                    },
                )
        };
        self.steps.iter().enumerate().map(fused).collect()
    }

    /// Which values an f32 run keeps in blocks of channels ([`blocked`]): between the
    /// convolutions [`conv_lanes`] runs (reading them in its 1x1 products alone) and the
    /// Winograd ones (of whole blocks of channels) among them, on the AVX-512F and AVX2 paths
    /// (ResNet50's 14x14 and 7x7 stages; on AVX2 its 56x56 and 28x28 ones too,
    /// [`Executor::wide_lanes`]), with their residuals and the global pooling after them. None
    /// on the integer paths, whose layers take other kernels.
    fn blocked_values(&self, activations: Activations) -> Vec<bool> {
        let on = activations == Activations::F32 && self.keeps_f32_panels();
        if !on || !self.blocks || !conv_lanes::blocks_pay() {
            return vec![false; self.shapes.len()];
        }
        self.blocked_with(self.wide_lanes())
    }

    /// [`Executor::blocked_values`] with the convolutions that want blocks
    /// ([`conv_lanes::wants_blocks`]) along the lanes where `wide` says (per output value).
    fn blocked_with(&self, wide: &[bool]) -> Vec<bool> {
        // Whether step `s` writes (`reads` false) or reads its input in blocks.
        let takes = |s: usize, reads: bool| match &self.steps[s] {
            Step::Conv {
                conv,
                input,
                output,
                gelu: false,
                ..
            } => {
                let whole = conv.in_channels.is_multiple_of(blocked::LANES)
                    && conv.out_channels.is_multiple_of(blocked::LANES);
                let lanes = self
                    .lanes_suits(conv, *input, *output)
                    .filter(|g| !conv_lanes::wants_blocks(g) || wide[*output]);
                lanes.is_some_and(|g| !reads || conv_lanes::takes_blocks(&g))
                    || (whole && self.winograd_suits(conv, *input, *output).is_some())
            }
            _ => false,
        };
        let (writes, reads) = (|s| takes(s, false), |s| takes(s, true));
        blocked::values(&self.steps, self.shapes.len(), self.output, writes, reads)
    }

    /// Per step, whether it is a stem convolution that runs with the max pooling after it (the
    /// next step, the only reader of its output, which is not the model's): an integer one over
    /// tap rows, or an f32 one that [`conv_direct`] would run ([`Executor::direct_geometry`]).
    fn stem_pools(&self, activations: Activations) -> Vec<bool> {
        let fused = |(s, step): (usize, &Step)| {
            let Step::Conv {
                layer,
                conv,
                input,
                output,
                ..
            } = step
            else {
                return false;
            };
            let stem = match self.int8_weights(*layer, activations) {
                Some(w) => w.layout() == InputLayout::Taps,
                None => self.direct_geometry(conv, *input, *output).is_some(),
            };
            self.stem_pool_fusion
                && stem
                && matches!(self.steps.get(s + 1), Some(Step::MaxPool { input, .. }) if input == output)
                && self.last_use[*output] == s + 1
                && *output != self.output
        };
        self.steps.iter().enumerate().map(fused).collect()
    }

    /// Whether the integer GEMM may run its large tasks in bands of rows, each finished
    /// before the next (on by default; `int8_gemm::bands_pay`), or always as one block: the
    /// same values either way, so tests and benchmarks can compare the two. The switch is the
    /// process's, not this executor's (it is about the caches, which the process shares).
    pub fn set_int8_bands(&self, on: bool) {
        int8_gemm::set_bands(on);
    }

    /// Whether the f32 path runs its 3x3 stride-1 convolutions by Winograd's F(2x2, 3x3)
    /// ([`winograd`]; on by default) or directly, as the integer path and the compressor do.
    /// Its sums are rounded differently (to a few units in the last place of each sum's
    /// terms), so turning it off changes the f32 path's logits in their last digits: it is
    /// here so tests and benchmarks can compare the two. Drops the f32 weights kept for the
    /// other way.
    pub fn set_winograd(&mut self, on: bool) {
        if self.winograd != on {
            self.winograd = on;
            self.wide_lanes = OnceLock::new();
            self.drop_f32_weights();
        }
    }

    /// Whether the f32 path runs the convolutions that suit it ([`conv_lanes::pays`]) with the
    /// output channels along the kernel's lanes ([`conv_lanes`], AVX-512F and AVX2; on by
    /// default) or with the pixels along them, for tests and benchmarks to compare the two.
    /// Drops the f32 weights kept for the other way.
    pub fn set_conv_lanes(&mut self, on: bool) {
        if self.conv_lanes != on {
            self.conv_lanes = on;
            self.wide_lanes = OnceLock::new();
            self.drop_f32_weights();
        }
    }

    /// Whether f32 runs keep the values between [`conv_lanes`]' and Winograd's convolutions in
    /// blocks of channels where they can ([`blocked`]; on by default) or in channel planes, for
    /// tests and benchmarks to compare the two (the same floats either way). Drops the f32
    /// weights kept, as [`Executor::set_conv_lanes`] does: on AVX2 the layout decides which 1x1
    /// convolutions run along the lanes ([`conv_lanes::wants_blocks`]), whose weights are
    /// laid out otherwise.
    pub fn set_blocked_values(&mut self, on: bool) {
        if self.blocks != on {
            self.blocks = on;
            self.wide_lanes = OnceLock::new();
            self.drop_f32_weights();
        }
    }

    /// How many values a run keeps in blocks of channels ([`blocked`]) under the current
    /// settings (0 on the integer path) and on this CPU.
    pub fn blocked_values_count(&self) -> usize {
        self.blocked_values(self.activations)
            .iter()
            .filter(|&&b| b)
            .count()
    }

    /// How many convolutions the f32 path runs by Winograd's F(2x2, 3x3) under the current
    /// settings (0 on the integer path, which runs every ungrouped convolution in integers).
    pub fn winograd_convolutions(&self) -> usize {
        self.f32_convolutions(|s, conv, input, output| {
            s.winograd_geometry(conv, input, output).is_some()
        })
    }

    /// How many Winograd convolutions keep their transformed weights as quarters
    /// ([`winograd::QuarterWeights`]): those made so far, by the f32 runs since the path was
    /// last chosen.
    pub fn quartered_convolutions(&self) -> usize {
        self.winograd_quarters
            .iter()
            .filter(|q| matches!(q.get(), Some(Some(_))))
            .count()
    }

    /// How many lane convolutions keep their weight codes as `i8` panels
    /// ([`conv_lanes::bytes_pay`]): those made so far, by the f32 runs since the path was last
    /// chosen.
    pub fn byte_lane_convolutions(&self) -> usize {
        self.lane_bytes
            .iter()
            .filter(|b| matches!(b.get(), Some(Some(_))))
            .count()
    }

    /// How many convolutions the f32 path runs with their output channels along the lanes
    /// ([`conv_lanes`]) under the current settings and on this CPU (0 on the integer path).
    pub fn lane_convolutions(&self) -> usize {
        self.f32_convolutions(|s, conv, input, output| {
            s.lanes_geometry(conv, input, output).is_some()
        })
    }

    /// How many convolutions pass `test` on the f32 path (none on the others).
    fn f32_convolutions(
        &self,
        test: impl Fn(&Self, &fq_models::Conv2d, ValueId, ValueId) -> bool,
    ) -> usize {
        if self.activations != Activations::F32 {
            return 0;
        }
        self.steps
            .iter()
            .filter(|step| match step {
                Step::Conv {
                    conv,
                    input,
                    output,
                    ..
                } => test(self, conv, *input, *output),
                _ => false,
            })
            .count()
    }

    /// How many layers take their input codes in quads under the current settings (0 off the
    /// integer path): what profiles report.
    pub fn quad_layout_convolutions(&self) -> usize {
        self.int8
            .iter()
            .flatten()
            .filter(|w| w.reads_quads())
            .count()
    }

    /// How many values an integer convolution's epilogue requantises for the next ones under
    /// the current settings (0 off the static integer path): what profiles report.
    pub fn epilogue_requantizations(&self) -> usize {
        self.requant_targets(self.activations)
            .iter()
            .flatten()
            .count()
    }

    /// The scale of a convolution step's residual codes when it adds them instead of the floats
    /// ([`Executor::set_residual_codes`]): an integer convolution whose residual's producer
    /// writes codes (`requant`).
    fn residual_scale(
        &self,
        step: &Step,
        requant: &[Option<Requant>],
        activations: Activations,
    ) -> Option<f32> {
        match step {
            Step::Conv {
                layer,
                residual: Some(r),
                ..
            } if self.residual_codes && self.int8_weights(*layer, activations).is_some() => {
                requant[*r].map(|q| q.scale)
            }
            _ => None,
        }
    }

    /// How many values the executor keeps as codes alone, their floats never written (0 off the
    /// static integer path; [`Executor::floats_read`]): what profiles report.
    pub fn codes_only_values(&self) -> usize {
        let requant = self.requant_targets(self.activations);
        let read = self.floats_read(&requant, self.activations);
        read.iter().filter(|&&r| !r).count()
    }

    /// Per value, how its producer's epilogue requantises it: its scale, set when an integer
    /// convolution produces it and every integer convolution reading it has the same calibrated
    /// scale (a dynamic-scale reader, or two different scales, leave it to the readers); and
    /// in quads with the readers' largest padding when they all read quads, else channel-major.
    fn requant_targets(&self, activations: Activations) -> Vec<Option<Requant>> {
        let mut scales = vec![None; self.shapes.len()];
        if !self.requantize_in_epilogue || activations != Activations::Int8Static {
            return scales;
        }
        let int8_conv = |step: &Step| match step {
            Step::Conv { layer, .. } if self.int8_weights(*layer, activations).is_some() => {
                Some(*layer)
            }
            _ => None,
        };
        // Per value: `None` no integer reader yet, `Some(Some(s))` all read with `s`,
        // `Some(None)` readers that disagree.
        let mut readers: Vec<Option<Option<f32>>> = vec![None; self.shapes.len()];
        // Per value: the largest padding of its readers while they all read quads.
        let mut quads: Vec<Option<usize>> = vec![Some(0); self.shapes.len()];
        for step in &self.steps {
            if let (Some(layer), Step::Conv { input, conv, .. }) = (int8_conv(step), step) {
                let s = self.static_scale(layer, activations);
                readers[*input] = match readers[*input] {
                    None => Some(s),
                    Some(prev) if prev.map(f32::to_bits) == s.map(f32::to_bits) => Some(prev),
                    Some(_) => Some(None),
                };
                let reads_quads = self
                    .int8_weights(layer, activations)
                    .is_some_and(WeightsI8::reads_quads);
                quads[*input] = quads[*input]
                    .filter(|_| reads_quads)
                    .map(|p| p.max(conv.padding));
            }
        }
        for step in &self.steps {
            if int8_conv(step).is_some() {
                let o = output_of(step);
                scales[o] = readers[o].flatten().map(|scale| Requant {
                    scale,
                    quads_pad: quads[o],
                });
            }
        }
        // A max pooling writes its output's codes too (after its floats, or with an integer
        // stem it runs with: [`Executor::stem_pools`]), so that the value reaches its readers,
        // and the residual after them, as codes whether or not the stem and pooling run as one.
        for step in &self.steps {
            if let Step::MaxPool { output: o, .. } = *step {
                scales[o] = readers[o].flatten().map(|scale| Requant {
                    scale,
                    quads_pad: quads[o],
                });
            }
        }
        scales
    }

    /// Value `o`'s codes from its floats `x`, as `requant` says (quads or channel-major), as
    /// an integer convolution's epilogue writes them.
    fn codes_of_floats(&self, x: &[f32], o: ValueId, requant: Requant) -> Codes {
        let Shape::Chw(c, h, w) = self.shapes[o] else {
            unreachable!("validated: a pooling's output is [C,H,W]")
        };
        let inv = 1.0 / requant.scale;
        match requant.quads_pad {
            Some(pad) => Codes::Quads(Quads::quantize(x, QuadShape { c, h, w, pad }, inv)),
            None => Codes::Rows(int8_gemm::quantize_all(x, inv)),
        }
    }

    /// Per value, whether a step reads its floats: `false` for a value whose producer's epilogue
    /// writes codes (`requant`) that every reader takes as they are (integer convolutions whose
    /// weights read that layout, as their input, or adding it as a residual from its codes:
    /// [`Executor::residual_scale`]), so the floats are never kept
    /// ([`int8_gemm::gemm_i8_requant`] with an empty output). The model's output always is.
    fn floats_read(&self, requant: &[Option<Requant>], activations: Activations) -> Vec<bool> {
        let mut read: Vec<bool> = requant.iter().map(Option::is_none).collect();
        read[self.output] = true;
        for step in &self.steps {
            let Step::Conv {
                layer,
                input,
                residual,
                ..
            } = step
            else {
                step.inputs().into_iter().for_each(|v| read[v] = true);
                continue;
            };
            let input_codes = requant[*input].is_some_and(|r| {
                self.int8_weights(*layer, activations)
                    .is_some_and(|w| match w.layout() {
                        InputLayout::Quads => r.quads_pad.is_some(),
                        InputLayout::Rows => r.quads_pad.is_none(),
                        InputLayout::Taps => false,
                    })
            });
            if !input_codes {
                read[*input] = true;
            }
            if let Some(r) = residual {
                if self.residual_scale(step, requant, activations).is_none() {
                    read[*r] = true;
                }
            }
        }
        read
    }

    /// Validates and compiles a model, taking its layers ([`Plan::from_model`]).
    pub fn from_model(model: &mut PackedModel) -> Result<Self, FormatError> {
        Plan::from_model(model).map(Self::from_plan)
    }

    /// A bare graph with its layers ([`Plan::from_graph`]).
    pub fn from_graph(graph: &Graph, layers: Vec<Layer>) -> Result<Self, FormatError> {
        Plan::from_graph(graph, layers).map(Self::from_plan)
    }

    /// A graph with its layers and extra parameter tensors ([`Plan::from_parts`]).
    pub fn from_parts(
        graph: &Graph,
        layers: Vec<Layer>,
        tensors: Vec<NamedTensor>,
    ) -> Result<Self, FormatError> {
        Plan::from_parts(graph, layers, tensors).map(Self::from_plan)
    }

    /// Floats of one input image (`3 x size x size`, CHW).
    pub fn input_len(&self) -> usize {
        self.shapes[0].numel()
    }

    /// Number of logits per image.
    pub fn output_len(&self) -> usize {
        self.shapes[self.output].numel()
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Logits of one preprocessed image (CHW).
    pub fn run(&self, image: &[f32]) -> Result<Vec<f32>, ExecError> {
        // On one of the pool's threads: each step's parallel loops then start from a worker
        // (which works on them too) instead of this thread handing every one over and sleeping
        // until it ends, a wake-up per loop (about 15% of ResNet18's integer path at 2 threads);
        // and the pool's other threads kept awake between the loops (`busy`).
        busy::while_busy(|| self.run_inner(image, self.activations, Observe::Nothing))
    }

    /// [`Executor::run`], calling `observe(step, values)` after every step with the value it
    /// wrote: what activation calibration (ranges of the convolutions' inputs) and the parity
    /// tests are built on (profiles time [`Executor::run_stepped`]). No clock in here, so the
    /// core runs where there is none (wasm32-unknown-unknown).
    ///
    /// Every value is observed in channel planes, as the plan describes it, whatever layout
    /// the run keeps it in (a blocked one is copied back first: [`blocked`]).
    pub fn run_observed(
        &self,
        image: &[f32],
        mut observe: impl FnMut(usize, &[f32]),
    ) -> Result<Vec<f32>, ExecError> {
        self.run_inner(image, self.activations, Observe::Values(&mut observe))
    }

    /// [`Executor::run`], calling `at_step(step)` after every step, without its value: what
    /// timings use ([`Executor::run_observed`] would time the copies of blocked values back
    /// into planes too).
    pub fn run_stepped(
        &self,
        image: &[f32],
        mut at_step: impl FnMut(usize),
    ) -> Result<Vec<f32>, ExecError> {
        self.run_inner(image, self.activations, Observe::Steps(&mut at_step))
    }

    /// The run on a given activation path (calibration observes the float model whatever the
    /// executor is set to).
    fn run_inner(
        &self,
        image: &[f32],
        activations: Activations,
        mut watch: Observe,
    ) -> Result<Vec<f32>, ExecError> {
        self.check(image.len(), 1)?;
        let mut values: Vec<Option<Buf<f32>>> = vec![None; self.shapes.len()];
        // The image in a recycled buffer (a fresh copy was page faults at every run).
        let mut input = scratch::F32.take(image.len(), true);
        input.copy_from_slice(image);
        values[0] = Some(input);
        // The i8 codes an epilogue wrote for the next integer convolutions, per value.
        let requant = self.requant_targets(activations);
        let floats_read = self.floats_read(&requant, activations);
        let mut codes: Vec<Option<Codes>> = (0..self.shapes.len()).map(|_| None).collect();
        let stem_pools = self.stem_pools(activations);
        let pairs = self.pairs(activations, &requant, &floats_read);
        let blocked = self.blocked_values(activations);
        let mut observe = |s: usize, v: ValueId, x: &[f32]| match &mut watch {
            Observe::Nothing => {}
            Observe::Steps(f) => f(s),
            Observe::Values(f) if blocked[v] => {
                let Shape::Chw(c, h, w) = self.shapes[v] else {
                    unreachable!("blocked values are [C,H,W]")
                };
                f(s, &blocked::to_planes(x, c, h * w))
            }
            Observe::Values(f) => f(s, x),
        };
        #[cfg(not(target_arch = "x86_64"))]
        debug_assert!(!pairs.contains(&true), "pairs fuse on x86-64 only");
        for (s, step) in self.steps.iter().enumerate() {
            #[cfg(target_arch = "x86_64")]
            if pairs[s] || (s > 0 && pairs[s - 1]) {
                // A pair of convolutions: both run at the first's step, whose own output is
                // never written (observed empty, as the second's codes-only output).
                if pairs[s] {
                    let next = &self.steps[s + 1];
                    let o = output_of(next);
                    let r = requant[o].expect("a pair's output has codes");
                    codes[o] =
                        Some(self.conv_pair_int8((step, next), (&values, &codes), r, activations));
                    values[o] = Some(Buf::new());
                }
                observe(s, 0, &[]);
                self.release(s, step, &mut values, &mut codes);
                continue;
            }
            if stem_pools[s] || (s > 0 && stem_pools[s - 1]) {
                // A stem and its max pooling: both run at the stem's step, whose own output is
                // never written (observed empty); the pooling's step observes the result.
                let o = output_of(step);
                if stem_pools[s] {
                    let pool = &self.steps[s + 1];
                    let p = output_of(pool);
                    values[p] = Some(if let Some(geo) = self.f32_stem(step, activations) {
                        // An f32 stem under integer readers: their codes from the floats.
                        let out = self.conv_pool_f32(step, &geo, pool, &values);
                        codes[p] = requant[p].map(|r| self.codes_of_floats(&out, p, r));
                        out
                    } else {
                        let (out, q) = self.conv_pool_int8(
                            (step, pool),
                            (&values, &codes),
                            (requant[p], floats_read[p]),
                            activations,
                        );
                        codes[p] = q;
                        out
                    });
                    observe(s, 0, &[]);
                } else {
                    observe(s, o, values[o].as_deref().expect("computed with the stem"));
                }
                self.release(s, step, &mut values, &mut codes);
                continue;
            }
            let out = match step {
                Step::Conv { layer, output, .. }
                    if self.int8_weights(*layer, activations).is_some() =>
                {
                    let (out, q) = self.conv_int8(
                        step,
                        (&values, &codes),
                        (requant[*output], floats_read[*output]),
                        self.residual_scale(step, &requant, activations),
                        activations,
                    );
                    codes[*output] = q;
                    Some(out)
                }
                Step::MaxPool { output, .. } => {
                    // Its codes as well, when integer convolutions read it.
                    let mut out = self.step(step, &values, (activations, &blocked));
                    if let (Some(r), Some(x)) = (requant[*output], out.as_deref()) {
                        codes[*output] = Some(self.codes_of_floats(x, *output, r));
                    }
                    if !floats_read[*output] {
                        // Floats nobody reads: back to the pool of buffers.
                        scratch::F32.give(out.take().unwrap_or_default());
                    }
                    out.or(Some(Buf::new()))
                }
                _ => self.step(step, &values, (activations, &blocked)),
            };
            let output = match step {
                Step::Add { a, b, relu, output } => {
                    // Reuse the first operand's buffer when nothing reads it later.
                    let a_buf = if self.last_use[*a] == s && a != b {
                        values[*a].take().expect("computed before use")
                    } else {
                        values[*a].clone().expect("computed before use")
                    };
                    let b_buf = values[*b].as_deref().expect("computed before use");
                    values[*output] = Some(pool::add(a_buf, b_buf, *relu));
                    *output
                }
                Step::Gelu { input, output } => {
                    // In place in the input's buffer when nothing reads it later.
                    let buf = if self.last_use[*input] == s {
                        values[*input].take().expect("computed before use")
                    } else {
                        values[*input].clone().expect("computed before use")
                    };
                    values[*output] = Some(tokens::gelu(buf));
                    *output
                }
                _ => {
                    let o = output_of(step);
                    values[o] = out;
                    o
                }
            };
            debug_assert_eq!(
                values[output].as_deref().map(<[f32]>::len),
                Some(self.shapes[output].numel())
                    .filter(|_| floats_read[output])
                    .or(Some(0))
            );
            observe(s, output, values[output].as_deref().expect("just computed"));
            self.release(s, step, &mut values, &mut codes);
        }
        Ok(values[self.output]
            .take()
            .expect("the plan computes the output")
            .to_vec())
    }

    /// After step `s`: the buffers of its inputs that no later step reads go back to the
    /// scratch pool, and their codes are dropped.
    fn release(
        &self,
        s: usize,
        step: &Step,
        values: &mut [Option<Buf<f32>>],
        codes: &mut [Option<Codes>],
    ) {
        for v in step.inputs() {
            if self.last_use[v] == s {
                if let Some(buf) = values[v].take() {
                    scratch::F32.give(buf);
                }
                codes[v] = None;
            }
        }
    }

    /// Logits of `n` images (NCHW), images in parallel: `[n, output_len]`.
    pub fn run_batch(&self, images: &[f32], n: usize) -> Result<Vec<f32>, ExecError> {
        self.check(images.len(), n)?;
        let per = self.input_len();
        let logits: Vec<Vec<f32>> = images
            .par_chunks(per.max(1))
            .take(n)
            .map(|x| self.run(x))
            .collect::<Result<_, _>>()?;
        Ok(logits.concat())
    }

    fn check(&self, got: usize, n: usize) -> Result<(), ExecError> {
        let expected = self.input_len() * n;
        if got != expected {
            let size = match self.shapes[0] {
                Shape::Chw(_, h, _) => h,
                Shape::Flat(f) | Shape::Seq(_, f) => f,
            };
            return Err(ExecError::InputSize {
                got,
                expected,
                size,
            });
        }
        Ok(())
    }

    /// `(tokens, features)` of a value the validated graph makes a token sequence.
    fn seq(&self, v: ValueId) -> (usize, usize) {
        match self.shapes[v] {
            Shape::Seq(l, d) => (l, d),
            s => unreachable!("validated: value {v} is a token sequence, not {s:?}"),
        }
    }

    /// A convolution step's epilogue (its layer's scales and bias, ReLU, GELU), without its
    /// residual: the integer path's, and the f32 path's with the residual added.
    fn conv_epilogue(&self, step: &Step) -> Epilogue<'_> {
        let Step::Conv {
            layer, relu, gelu, ..
        } = step
        else {
            unreachable!("conv_epilogue reads convolution steps")
        };
        let l = &self.layers[*layer];
        Epilogue {
            scale: l.scale(),
            bias: l.layer.bias.as_deref(),
            residual: None,
            relu: *relu,
            gelu: *gelu,
        }
    }

    /// Two convolution steps run as one ([`Executor::pairs`]): the second's output codes.
    #[cfg(target_arch = "x86_64")]
    fn conv_pair_int8<'s>(
        &'s self,
        (first, second): (&'s Step, &'s Step),
        (values, codes): (&'s [Option<Buf<f32>>], &'s [Option<Codes>]),
        requant: Requant,
        activations: Activations,
    ) -> Codes {
        let operands = |step: &'s Step| {
            let Step::Conv {
                layer,
                conv,
                input,
                output,
                ..
            } = step
            else {
                unreachable!("pairs are convolution steps")
            };
            let (Shape::Chw(c, h, w), Shape::Chw(_, ho, wo)) =
                (self.shapes[*input], self.shapes[*output])
            else {
                unreachable!("validated: conv input and output are [C,H,W]")
            };
            conv_i8::ConvI8 {
                input: conv_i8::InputI8 {
                    x: values[*input].as_deref().expect("computed before use"),
                    codes: codes[*input].as_ref().map_or(CodesIn::None, Codes::view),
                    nonneg: self.unsigned_inputs && self.is_nonneg(*input),
                },
                dims: (c, h, w),
                conv,
                out: (ho, wo),
                weights: self
                    .int8_weights(*layer, activations)
                    .expect("a pair's convolutions have i8 weights"),
                scale: self
                    .static_scale(*layer, activations)
                    .expect("a pair's convolutions have calibrated scales"),
                epi: self.conv_epilogue(step),
            }
        };
        let Shape::Chw(co, ho, wo) = self.shapes[output_of(second)] else {
            unreachable!("validated: conv output is [C,H,W]")
        };
        let mut q = Quads::recycled(QuadShape {
            c: co,
            h: ho,
            w: wo,
            pad: requant.quads_pad.expect("a pair's output is in quads"),
        });
        conv_i8::conv2d_i8_pair(operands(first), operands(second), &mut q, requant.scale);
        Codes::Quads(q)
    }

    /// An integer convolution step's i8 weights and epilogue (scale, bias, residual, ReLU, GELU).
    fn int8_conv_parts<'a>(
        &'a self,
        step: &Step,
        values: &'a [Option<Buf<f32>>],
        activations: Activations,
    ) -> (&'a WeightsI8, Epilogue<'a>) {
        let Step::Conv {
            layer, residual, ..
        } = step
        else {
            unreachable!("int8_conv_parts reads convolution steps")
        };
        let w8 = self
            .int8_weights(*layer, activations)
            .expect("an integer convolution has i8 weights");
        let epi = Epilogue {
            // Empty when its floats are not kept: `conv_int8` then reads its codes instead.
            residual: residual.map(|v| values[v].as_deref().expect("computed before use")),
            ..self.conv_epilogue(step)
        };
        (w8, epi)
    }

    /// A layer's weight rows as the f32 path reads them: unpacked once and kept
    /// (`f32_panels`) unless a calibration is under way.
    fn f32_rows(&self, layer: usize) -> Rows<'_> {
        let l = &self.layers[layer];
        match l.rows() {
            packed @ Rows::Packed { .. } if self.keeps_f32_panels() => {
                let (r, k) = l.layer.weights.dims();
                let data =
                    self.f32_panels[layer].get_or_init(|| gemm::unpacked_rows(&packed, 0, r, k));
                Rows::F32 { data, cols: k }
            }
            rows => rows,
        }
    }

    /// A stem step's geometry when it runs on the f32 path ([`Executor::direct_geometry`]).
    fn f32_stem(&self, step: &Step, activations: Activations) -> Option<im2col::Geometry> {
        let Step::Conv {
            layer,
            conv,
            input,
            output,
            ..
        } = step
        else {
            return None;
        };
        self.int8_weights(*layer, activations)
            .is_none()
            .then(|| self.direct_geometry(conv, *input, *output))
            .flatten()
    }

    /// An f32 stem convolution step (geometry `geo`) and the max pooling step after it: the
    /// pooling's output ([`stem_pool::conv_pool_f32`]).
    fn conv_pool_f32(
        &self,
        step: &Step,
        geo: &im2col::Geometry,
        pool: &Step,
        values: &[Option<Buf<f32>>],
    ) -> Buf<f32> {
        let Step::Conv {
            layer,
            input,
            residual,
            output,
            ..
        } = step
        else {
            unreachable!("conv_pool_f32 runs a convolution and its max pooling")
        };
        let (window, pooled) = pool_window(pool);
        let get = |v: ValueId| values[v].as_deref().expect("computed before use");
        let (Shape::Chw(co, _, _), Shape::Chw(_, ph, pw)) =
            (self.shapes[*output], self.shapes[pooled])
        else {
            unreachable!("validated: conv and pool values are [C,H,W]")
        };
        let epi = Epilogue {
            residual: residual.map(get),
            ..self.conv_epilogue(step)
        };
        // Recycled (stale contents): the bands write every output.
        let mut out = scratch::F32.take(co * ph * pw, true);
        self.with_direct_tiles(*layer, |a| {
            stem_pool::conv_pool_f32(get(*input), geo, a, co, epi, window, (ph, pw), &mut out)
        });
        out
    }

    /// A direct convolution's weights as its kernel reads them ([`conv_direct::Tiles`]), given
    /// to `f`: where the kernel reads them interleaved, laid out so once and kept in
    /// `f32_panels`; else (and during a calibration, which keeps no weights) the row-major tiles
    /// of [`Executor::f32_rows`], in place for an FP32 export.
    fn with_direct_tiles<R>(&self, layer: usize, f: impl FnOnce(conv_direct::Tiles) -> R) -> R {
        let l = &self.layers[layer];
        let (r, k) = l.layer.weights.dims();
        if self.keeps_f32_panels() && conv_direct::interleaves() {
            let w = self.f32_panels[layer].get_or_init(|| {
                conv_direct::interleave(&gemm::unpacked_rows(&l.rows(), 0, r, k), k)
            });
            return f(conv_direct::Tiles::Interleaved(w));
        }
        f(conv_direct::Tiles::Rows(
            &self.f32_rows(layer).tiles(0, r, k),
        ))
    }

    /// An integer stem convolution step and the max pooling step after it: the pooling's output
    /// ([`conv_i8::conv2d_pool_i8`]), the stem's input codes taken from `codes` when its
    /// producer wrote them, as [`Executor::conv_int8`] takes them; and, with `requant`, the
    /// output's codes in quads (its floats then only when `floats`).
    fn conv_pool_int8(
        &self,
        (step, pool): (&Step, &Step),
        (values, codes): (&[Option<Buf<f32>>], &[Option<Codes>]),
        (requant, floats): (Option<Requant>, bool),
        activations: Activations,
    ) -> (Buf<f32>, Option<Codes>) {
        let Step::Conv {
            layer,
            conv,
            input,
            output,
            ..
        } = step
        else {
            unreachable!("conv_pool_int8 runs a convolution and its max pooling")
        };
        let (window, pooled) = pool_window(pool);
        let get = |v: ValueId| values[v].as_deref().expect("computed before use");
        let (Shape::Chw(c, h, w), Shape::Chw(_, ho, wo), Shape::Chw(co, ph, pw)) = (
            self.shapes[*input],
            self.shapes[*output],
            self.shapes[pooled],
        ) else {
            unreachable!("validated: conv and pool values are [C,H,W]")
        };
        let (w8, epi) = self.int8_conv_parts(step, values, activations);
        // Codes in quads with the pooling's bands; channel-major ones from the floats after.
        let mut q = requant.and_then(|r| {
            let shape = QuadShape {
                c: co,
                h: ph,
                w: pw,
                pad: r.quads_pad?,
            };
            Some((Quads::recycled(shape), r.scale))
        });
        // Recycled (stale contents): the bands write every output.
        let mut out = if floats || q.is_none() {
            scratch::F32.take(co * ph * pw, true)
        } else {
            Buf::new()
        };
        conv_i8::conv2d_pool_i8(
            conv_i8::InputI8 {
                x: get(*input),
                codes: codes[*input].as_ref().map_or(CodesIn::None, Codes::view),
                nonneg: self.unsigned_inputs && self.is_nonneg(*input),
            },
            (c, h, w),
            conv,
            (ho, wo),
            w8,
            self.static_scale(*layer, activations),
            epi,
            window,
            (ph, pw),
            &mut out,
            q.as_mut().map(|(q, s)| (q, *s)),
        );
        let codes = match (q, requant) {
            (Some((q, _)), _) => Some(Codes::Quads(q)),
            (None, r) => r.map(|r| self.codes_of_floats(&out, output_of(pool), r)),
        };
        if !floats && codes.is_some() {
            // Floats nobody reads: back to the pool of buffers.
            scratch::F32.give(std::mem::take(&mut out));
        }
        (out, codes)
    }

    /// Whether value `v` is `>= 0` everywhere, by the graph alone: the output of a ReLU (a
    /// step's own or a convolution's, Linear's or Add's epilogue, without a GELU after it), or a
    /// pooling of such a value. The integer convolutions reading it then multiply its codes as
    /// they are (`conv_i8::InputI8::nonneg`); a wrong `true` would change their sums, so only
    /// what the steps guarantee counts (the model's input never does).
    pub fn is_nonneg(&self, v: ValueId) -> bool {
        let Some(step) = self.steps.iter().find(|s| s.output() == v) else {
            return false;
        };
        match *step {
            Step::Conv { relu, gelu, .. } | Step::Linear { relu, gelu, .. } => relu && !gelu,
            Step::Add { relu, .. } => relu,
            Step::Relu { .. } => true,
            Step::MaxPool { input, .. } | Step::GlobalAvgPool { input, .. } => {
                self.is_nonneg(input)
            }
            _ => false,
        }
    }

    /// An integer convolution step: its input codes taken from `codes` when its producer wrote
    /// them, its output's codes returned when `requant` gives their scale, and its floats when a
    /// step reads them (`floats`; else an empty buffer: [`Executor::floats_read`]); its residual
    /// from the codes of its producer when `res_scale` is their scale
    /// ([`Executor::residual_scale`]).
    fn conv_int8(
        &self,
        step: &Step,
        (values, codes): (&[Option<Buf<f32>>], &[Option<Codes>]),
        (requant, floats): (Option<Requant>, bool),
        res_scale: Option<f32>,
        activations: Activations,
    ) -> (Buf<f32>, Option<Codes>) {
        let Step::Conv {
            layer,
            conv,
            input,
            residual,
            output,
            ..
        } = step
        else {
            unreachable!("conv_int8 runs convolution steps")
        };
        let get = |v: ValueId| values[v].as_deref().expect("computed before use");
        let (Shape::Chw(c, h, w), Shape::Chw(co, ho, wo)) =
            (self.shapes[*input], self.shapes[*output])
        else {
            unreachable!("validated: conv input and output are [C,H,W]")
        };
        let (w8, mut epi) = self.int8_conv_parts(step, values, activations);
        let res8 = res_scale.map(|s| {
            epi.residual = None;
            let r = residual.expect("a residual's scale comes with a residual");
            match codes[r]
                .as_ref()
                .expect("its producer wrote the residual's codes")
            {
                Codes::Rows(v) => Residual8::Rows(v, s),
                Codes::Quads(q) => Residual8::Quads(q, s),
            }
        });
        // Recycled (stale contents): the integer GEMM writes every output.
        let mut out = if floats || requant.is_none() {
            scratch::F32.take(co * ho * wo, true)
        } else {
            Buf::new()
        };
        let mut q = requant.map(|r| match r.quads_pad {
            Some(pad) => Codes::Quads(Quads::recycled(QuadShape {
                c: co,
                h: ho,
                w: wo,
                pad,
            })),
            None => Codes::Rows(Buf::zeroed(co * ho * wo)),
        });
        let input = conv_i8::InputI8 {
            x: get(*input),
            codes: codes[*input].as_ref().map_or(CodesIn::None, Codes::view),
            nonneg: self.unsigned_inputs && self.is_nonneg(*input),
        };
        let target = q.as_mut().map(|q| match q {
            Codes::Rows(v) => CodesOut::Rows(v),
            Codes::Quads(v) => CodesOut::Quads(v),
        });
        conv_i8::conv2d_i8(
            input,
            (c, h, w),
            conv,
            (ho, wo),
            w8,
            self.static_scale(*layer, activations),
            epi,
            &mut out,
            target.zip(requant.map(|r| r.scale)),
            res8,
        );
        (out, q)
    }

    /// The output of every step but `Add` and `Gelu` (which [`Executor::run`] does in place) and
    /// the integer convolutions ([`Executor::conv_int8`], which also pass codes between layers).
    fn step(
        &self,
        step: &Step,
        values: &[Option<Buf<f32>>],
        (activations, blocked): (Activations, &[bool]),
    ) -> Option<Buf<f32>> {
        let get = |v: ValueId| values[v].as_deref().expect("computed before use");
        match step {
            Step::Conv {
                layer,
                conv,
                input,
                residual,
                output,
                ..
            } => {
                let Shape::Chw(c, h, w) = self.shapes[*input] else {
                    unreachable!("validated: conv input is [C,H,W]")
                };
                let Shape::Chw(co, ho, wo) = self.shapes[*output] else {
                    unreachable!("validated: conv output is [C,H,W]")
                };
                let l = &self.layers[*layer];
                // Recycled (stale contents): every convolution path writes every output.
                let mut out = scratch::F32.take(co * ho * wo, true);
                let epi = Epilogue {
                    residual: residual.map(get),
                    ..self.conv_epilogue(step)
                };
                debug_assert!(
                    self.int8_weights(*layer, activations).is_none(),
                    "`run_inner` sends integer convolutions to `conv_int8`"
                );
                if let Some(geo) = self.winograd_geometry(conv, *input, *output) {
                    let transform = || {
                        let (r, k) = l.layer.weights.dims();
                        let rows = gemm::unpacked_rows(&l.rows(), 0, r, k);
                        let tile = winograd::tile_for(&geo, co);
                        winograd::transform_weights(&rows[..r * k], r, c, tile)
                    };
                    let quarters = winograd::quarters_pay(&geo, co)
                        .then(|| {
                            self.winograd_quarters[*layer]
                                .get_or_init(|| {
                                    let u = transform();
                                    let q = winograd::QuarterWeights::new(&u, l.scale(), co);
                                    if q.is_none() {
                                        // No quarters (an FP32 export): kept as floats, not
                                        // transformed again below.
                                        let _ = self.f32_panels[*layer].set(u);
                                    }
                                    q
                                })
                                .as_ref()
                        })
                        .flatten();
                    let x = get(*input);
                    let layout = blocked::Layout {
                        input_blocked: blocked[*input],
                        output_blocked: blocked[*output],
                    };
                    match quarters {
                        Some(q) => {
                            let u = winograd::Transformed::Quarters(&q.u);
                            let epi = Epilogue {
                                scale: Some(&q.scales),
                                ..epi
                            };
                            winograd::conv_winograd(x, &geo, u, co, &mut out, (epi, layout));
                        }
                        None => {
                            let u = self.f32_panels[*layer].get_or_init(transform);
                            let u = winograd::Transformed::F32(u);
                            winograd::conv_winograd(x, &geo, u, co, &mut out, (epi, layout));
                        }
                    }
                    return Some(out);
                }
                if let Some(geo) = self.lanes_geometry(conv, *input, *output) {
                    let (r, k) = l.layer.weights.dims();
                    let panels = || token_gemm::weight_panels(&l.rows(), r, k);
                    let bytes = conv_lanes::bytes_pay(r * k)
                        .then(|| {
                            self.lane_bytes[*layer]
                                .get_or_init(|| conv_lanes::byte_panels(&l.rows(), r, k))
                                .as_deref()
                        })
                        .flatten();
                    let wp = match bytes {
                        Some(b) => conv_lanes::LaneWeights::I8(b),
                        None => conv_lanes::LaneWeights::F32(
                            self.f32_panels[*layer].get_or_init(panels),
                        ),
                    };
                    let layout = blocked::Layout {
                        input_blocked: blocked[*input],
                        output_blocked: blocked[*output],
                    };
                    conv_lanes::conv_lanes(get(*input), &geo, wp, co, &mut out, (epi, layout));
                    return Some(out);
                }
                if let Some(geo) = self.direct_geometry(conv, *input, *output) {
                    self.with_direct_tiles(*layer, |a| {
                        conv_direct::conv_direct(get(*input), &geo, a, co, &mut out, epi)
                    });
                    return Some(out);
                }
                conv::conv2d(
                    get(*input),
                    (c, h, w),
                    conv,
                    (co, ho, wo),
                    &self.f32_rows(*layer),
                    epi,
                    &mut out,
                );
                Some(out)
            }
            Step::Linear {
                layer,
                input,
                relu,
                gelu,
                output,
            } => {
                let l = &self.layers[*layer];
                let epi = Epilogue {
                    scale: l.scale(),
                    bias: l.layer.bias.as_deref(),
                    residual: None,
                    relu: *relu,
                    gelu: *gelu,
                };
                if let Shape::Seq(t, _) = self.shapes[*input] {
                    if let Some(w8) = self.int8_weights(*layer, activations) {
                        let scale = self.static_scale(*layer, activations);
                        return Some(tokens::linear_tokens_i8(w8, get(*input), t, scale, epi));
                    }
                    let (rows, k) = l.layer.weights.dims();
                    if !self.keeps_f32_panels() {
                        return Some(token_gemm::linear_tokens(
                            &l.rows(),
                            rows,
                            get(*input),
                            t,
                            epi,
                        ));
                    }
                    let wp = self.f32_panels[*layer]
                        .get_or_init(|| token_gemm::weight_panels(&l.rows(), rows, k));
                    return Some(token_gemm::linear_tokens_panels(
                        wp,
                        rows,
                        get(*input),
                        t,
                        epi,
                    ));
                }
                let mut out = Buf::zeroed(self.shapes[*output].numel());
                let rows = match &l.layer.weights {
                    LayerWeights::Packed(m) => Rows::I8 {
                        data: self.vector_codes[*layer].get_or_init(|| gemm::codes_i8(m)),
                        cols: m.cols,
                    },
                    LayerWeights::F32 { .. } => l.rows(),
                };
                gemm::gemv(&rows, 0, get(*input), &mut out, epi);
                Some(out)
            }
            Step::LayerNorm {
                tensor, eps, input, ..
            } => {
                let (g, b) = (&self.tensors[*tensor].data, &self.tensors[*tensor + 1].data);
                Some(tokens::layer_norm(get(*input), g.len(), g, b, *eps))
            }
            Step::ToTokens { input, .. } => {
                let Shape::Chw(c, h, w) = self.shapes[*input] else {
                    unreachable!("validated: to-tokens input is [C,H,W]")
                };
                Some(tokens::transpose(get(*input), c, h * w))
            }
            Step::ToChw { input, .. } => {
                let (l, c) = self.seq(*input);
                Some(tokens::transpose(get(*input), l, c))
            }
            Step::ClassToken { tensor, input, .. } => Some(tokens::class_token(
                get(*input),
                &self.tensors[*tensor].data,
            )),
            Step::PosEmbed { tensor, input, .. } => Some(
                get(*input)
                    .iter()
                    .zip(&self.tensors[*tensor].data)
                    .map(|(x, p)| x + p)
                    .collect(),
            ),
            Step::TakeToken { index, input, .. } => {
                let (_, d) = self.seq(*input);
                Some(Buf::from_slice(&get(*input)[index * d..(index + 1) * d]))
            }
            Step::WindowPartition {
                height,
                width,
                window,
                input,
                ..
            } => {
                let (_, c) = self.seq(*input);
                Some(tokens::window_partition(
                    get(*input),
                    *height,
                    *width,
                    c,
                    *window,
                ))
            }
            Step::WindowReverse {
                height,
                width,
                window,
                input,
                ..
            } => {
                let (_, c) = self.seq(*input);
                Some(tokens::window_reverse(
                    get(*input),
                    *height,
                    *width,
                    c,
                    *window,
                ))
            }
            Step::Attention {
                attention,
                bias,
                input,
                ..
            } => {
                let (l, _) = self.seq(*input);
                let g = attention.group.unwrap_or(l);
                let rows = bias.and_then(|t| {
                    let table = self.tensors[t].data.as_slice();
                    self.window_bias_rows[t]
                        .get_or_init(|| tokens::window_bias_rows(table, attention, g))
                        .as_deref()
                });
                Some(tokens::attention(get(*input), l, attention, rows))
            }
            Step::MaxPool {
                kernel,
                stride,
                padding,
                input,
                output,
            } => {
                let (Shape::Chw(c, h, w), Shape::Chw(_, ho, wo)) =
                    (self.shapes[*input], self.shapes[*output])
                else {
                    unreachable!("validated: max pool maps [C,H,W] to [C,H,W]")
                };
                // Recycled (stale contents): the pool writes every output.
                let mut out = scratch::F32.take(self.shapes[*output].numel(), true);
                pool::max_pool(
                    get(*input),
                    c,
                    h,
                    w,
                    *kernel,
                    *stride,
                    *padding,
                    (ho, wo),
                    &mut out,
                );
                Some(out)
            }
            Step::GlobalAvgPool { input, .. } => {
                let Shape::Chw(c, h, w) = self.shapes[*input] else {
                    unreachable!("validated: global pool input is [C,H,W]")
                };
                Some(if blocked[*input] {
                    blocked::global_avg_pool(get(*input), c, h * w)
                } else {
                    pool::global_avg_pool(get(*input), c, h * w)
                })
            }
            Step::Relu { input, .. } => Some(pool::relu(Buf::from_slice(get(*input)))),
            Step::Add { .. } | Step::Gelu { .. } => None,
        }
    }
}

/// Index of the last step reading each value; `usize::MAX` for `output`, which is kept.
/// A max pooling step's window (kernel, stride, padding) and output.
fn pool_window(pool: &Step) -> ((usize, usize, usize), ValueId) {
    let Step::MaxPool {
        kernel,
        stride,
        padding,
        output,
        ..
    } = *pool
    else {
        unreachable!("a stem's pooling is a max pooling step")
    };
    ((kernel, stride, padding), output)
}

fn last_uses(steps: &[Step], values: usize, output: ValueId) -> Vec<usize> {
    let mut last_use = vec![0usize; values];
    for (s, step) in steps.iter().enumerate() {
        for v in step.inputs() {
            last_use[v] = s;
        }
    }
    last_use[output] = usize::MAX;
    last_use
}

fn output_of(step: &Step) -> ValueId {
    step.output()
}

/// What a run reports after each step ([`Executor::run_observed`], [`Executor::run_stepped`]).
enum Observe<'a> {
    Nothing,
    Steps(&'a mut dyn FnMut(usize)),
    Values(&'a mut dyn FnMut(usize, &[f32])),
}
