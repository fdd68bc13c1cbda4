//! The CPU executor against an independent f64 interpreter of the unfolded graph: batch-norm
//! folding, im2col, the packed GEMM (every width, mixed within a layer), fused epilogues.

use crate::packed;

use fq_models::{Arch, ArchSpec};
use fq_runtime::exec::gemm::{gemm, Epilogue, PanelB, Rows};
use fq_runtime::exec::kernel::NR;
use fq_runtime::exec::{Activations, ExecError, Executor, Step};
use fq_runtime::format::PackedMatrix;
use packed::{odd_graph, random_input, random_model, reference, rel_err, Bits};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// f32 accumulation over a few hundred terms per output, compared with f64 sums.
const TOL: f64 = 1e-5;

fn check(graph: &fq_models::Graph, bits: Bits, seed: u64) -> f64 {
    let mut t = random_model(graph, bits, seed);
    let mut model = t.model.clone();
    let exec = Executor::from_model(&mut model).unwrap();
    let mut worst = 0f64;
    for s in 0..2 {
        let x = random_input(exec.input_len(), seed * 10 + s);
        let got = exec.run(&x).unwrap();
        let want = reference(&t, &x);
        let e = rel_err(&got, &want);
        assert!(e < TOL, "{} {bits:?}: relative error {e:.2e}", graph.arch);
        worst = worst.max(e);
    }
    t.model.layers.clear();
    worst
}

#[test]
fn odd_graph_matches_reference_for_every_storage() {
    for (i, bits) in [
        Bits::F32,
        Bits::Uniform(2),
        Bits::Uniform(3),
        Bits::Uniform(5),
        Bits::Uniform(8),
        Bits::RandomMix,
    ]
    .into_iter()
    .enumerate()
    {
        let e = check(&odd_graph(), bits, i as u64);
        eprintln!("odd graph {bits:?}: max relative error {e:.2e}");
    }
}

#[test]
fn resnets_match_reference() {
    let r18 = ArchSpec::new(Arch::ResNet18, 4, 32, 5).graph().unwrap();
    let r50 = ArchSpec::new(Arch::ResNet50, 4, 32, 3).graph().unwrap();
    for (g, bits) in [
        (&r18, Bits::Uniform(4)),
        (&r18, Bits::RandomMix),
        (&r18, Bits::F32),
        (&r50, Bits::RandomMix),
    ] {
        let e = check(g, bits, 7);
        eprintln!("{} {bits:?}: max relative error {e:.2e}", g.arch);
    }
}

/// The f32 path keeps each layer's weights unpacked after its first run (no unpacking per run),
/// a calibration's runs do not (the integer path drops them, so they only raised the peak
/// memory), and choosing the integer path drops them; the logits are the same either way.
#[test]
fn f32_runs_keep_unpacked_weights_and_calibration_does_not() {
    let r18 = ArchSpec::new(Arch::ResNet18, 4, 32, 5).graph().unwrap();
    let t = random_model(&r18, Bits::RandomMix, 5);
    let mut model = t.model.clone();
    let mut exec = Executor::from_model(&mut model).unwrap();
    let x = random_input(exec.input_len(), 9);
    let scales = exec.calibrate([x.as_slice()]).unwrap();
    assert_eq!(exec.unpacked_weight_bytes(), 0, "calibration kept weights");
    let first = exec.run(&x).unwrap();
    let held = exec.unpacked_weight_bytes();
    let weights: usize = t
        .model
        .layers
        .iter()
        .map(|l| l.weights.dims().0 * l.weights.dims().1)
        .sum();
    assert!(
        held >= 4 * weights / 2,
        "{held} bytes held for {weights} weights"
    );
    assert_eq!(
        exec.run(&x).unwrap(),
        first,
        "the kept weights change the logits"
    );
    exec.set_activation_scales(scales);
    assert_eq!(
        exec.unpacked_weight_bytes(),
        0,
        "the integer path kept f32 weights"
    );
}

/// A random mixed-width model of `g` (seed `seed`), its executor with static scales calibrated
/// on three random images (seeds from `images`), and those images.
fn calibrated(
    g: &fq_models::Graph,
    seed: u64,
    images: u64,
) -> (packed::TestModel, Executor, Vec<Vec<f32>>) {
    let t = random_model(g, Bits::RandomMix, seed);
    let mut model = t.model.clone();
    let mut exec = Executor::from_model(&mut model).unwrap();
    let xs: Vec<Vec<f32>> = (0..3)
        .map(|s| random_input(exec.input_len(), images + s))
        .collect();
    exec.set_activation_scales(exec.calibrate(xs.iter().map(Vec::as_slice)).unwrap());
    (t, exec, xs)
}

/// Requantising in the epilogue (an integer convolution writes the next one's input codes) gives
/// the same codes as the next layer quantising the floats itself: the logits are identical bit
/// for bit with and without it, and it really happens on most convolutions of a ResNet.
#[test]
fn requantising_in_the_epilogue_changes_no_logit() {
    let r18 = ArchSpec::new(Arch::ResNet18, 4, 32, 5).graph().unwrap();
    let r50 = ArchSpec::new(Arch::ResNet50, 4, 32, 3).graph().unwrap();
    for g in [&r18, &r50] {
        let (_, mut exec, images) = calibrated(g, 11, 40);
        let fused = exec.epilogue_requantizations();
        let convs = exec.steps().iter().filter(|s| s.kind() == "conv").count();
        eprintln!(
            "{}: {fused} of {convs} convolution outputs requantised in the epilogue",
            g.arch
        );
        // Every convolution output that feeds another convolution: all but the stem's (max pool
        // reads it), the downsample branches' (residuals, read as floats) and the last one's.
        assert!(fused * 2 > convs, "{}: only {fused} of {convs}", g.arch);
        // Of those, the values no step reads as floats are kept as codes alone: the inner
        // convolutions' outputs (one in each of ResNet18's 8 blocks, two in each of ResNet50's
        // 16), the outputs of stages 1-3, which only the next stage's first convolution and
        // its downsampling convolution read, and in ResNet50 the max pooling's output, which
        // its first block's two convolutions read. (The block outputs read as residuals too
        // are `residual_codes_stay_within_a_code_step`'s.)
        exec.set_residual_codes(false);
        let inner = if std::ptr::eq(g, &r18) {
            8 + 3
        } else {
            32 + 3 + 1
        };
        assert_eq!(exec.codes_only_values(), inner, "{}", g.arch);
        for x in &images {
            let with = exec.run(x).unwrap();
            exec.set_requantize_in_epilogue(false);
            assert_eq!(exec.epilogue_requantizations(), 0);
            assert_eq!(exec.codes_only_values(), 0);
            let without = exec.run(x).unwrap();
            exec.set_requantize_in_epilogue(true);
            assert_eq!(with, without, "{}", g.arch);
        }
        exec.set_activations(Activations::Int8Dynamic);
        assert_eq!(
            exec.epilogue_requantizations(),
            0,
            "dynamic scales are the readers' own"
        );
        assert_eq!(exec.codes_only_values(), 0, "dynamic scales read floats");
    }
}

/// Residuals added from their codes (`set_residual_codes`, on by default): every block output
/// that a later block adds as its identity residual keeps codes alone too, and so does
/// ResNet18's max pooling output, its first block's residual (5 more values in ResNet18, 12 in
/// ResNet50); the logits differ from those with the residual floats, and stay
/// within the integer path's bound of the float model's f64 reference; off, the floats come back.
#[test]
fn residual_codes_stay_within_a_code_step() {
    let r18 = ArchSpec::new(Arch::ResNet18, 4, 32, 5).graph().unwrap();
    let r50 = ArchSpec::new(Arch::ResNet50, 4, 32, 3).graph().unwrap();
    for (g, without, with) in [(&r18, 11, 16), (&r50, 36, 48)] {
        let (t, mut exec, images) = calibrated(g, 21, 80);
        assert_eq!(exec.codes_only_values(), with, "{}", g.arch);
        for x in &images {
            let codes = exec.run(x).unwrap();
            exec.set_residual_codes(false);
            assert_eq!(exec.codes_only_values(), without, "{}", g.arch);
            let floats = exec.run(x).unwrap();
            exec.set_residual_codes(true);
            assert_ne!(codes, floats, "{}: the residuals were not rounded", g.arch);
            // Against the f64 reference of the float model, as the integer path's other
            // tests: the codes' rounding adds to the activations' quantisation error, within
            // the same bound.
            let want = reference(&t, x);
            let (e_codes, e_floats) = (rel_err(&codes, &want), rel_err(&floats, &want));
            eprintln!(
                "{}: relative error with residual codes {e_codes:.2e}, with floats {e_floats:.2e}",
                g.arch
            );
            assert!(e_codes < 5e-2, "{}: {e_codes:.2e}", g.arch);
        }
    }
}

/// A downsampling convolution and the one whose residual it is run as one pair of blocks on
/// AMX and AVX-512 VNNI (`set_pair_fusion`): one pair in each stage with a downsampling branch
/// (3 in ResNet18, 4 in ResNet50; at 32 px their maps are 8x8 to 1x1, so on VNNI the pairs
/// of the 2x2 and 1x1 maps run their narrow last panels through the narrow blocks, both
/// convolutions'); none elsewhere; the logits identical bit for bit to the two convolutions
/// apart.
#[test]
fn pairs_of_convolutions_change_no_logit() {
    use fq_runtime::exec::kernel::int8::{int8_path, Int8Path};
    use fq_runtime::exec::kernel::{path, KernelPath};
    let avx512 = path() == KernelPath::Avx512F;
    let r18 = ArchSpec::new(Arch::ResNet18, 4, 32, 5).graph().unwrap();
    let r50 = ArchSpec::new(Arch::ResNet50, 4, 32, 3).graph().unwrap();
    // ResNet18's downsampling stages at 32 px: 4x4, 2x2, 1x1; ResNet50's: 8x8, 4x4, 2x2, 1x1.
    for (g, pairs) in [(&r18, 3), (&r50, 4)] {
        let (_, mut exec, images) = calibrated(g, 23, 90);
        let want = match int8_path() {
            Int8Path::Amx | Int8Path::Avx512Vnni if avx512 => pairs,
            _ => 0,
        };
        assert_eq!(exec.fused_pairs(), want, "{}", g.arch);
        for x in &images {
            let with = exec.run(x).unwrap();
            exec.set_pair_fusion(false);
            assert_eq!(exec.fused_pairs(), 0);
            let apart = exec.run(x).unwrap();
            exec.set_pair_fusion(true);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&with), bits(&apart), "{}", g.arch);
        }
    }
}

/// The f32 path's 3x3 stride-1 convolutions by Winograd's F(2x2, 3x3) against the f64
/// interpreter, and against the direct convolution, on ResNets wide enough (16+ channels) for
/// every such convolution to take it, with f32 and packed mixed-width weights.
#[test]
fn winograd_convolutions_match_reference() {
    let r18 = ArchSpec::new(Arch::ResNet18, 16, 36, 5).graph().unwrap();
    // 64 pixels: the last stage's maps are 2x2, the smallest a 2x2 output tile covers.
    let r50 = ArchSpec::new(Arch::ResNet50, 16, 64, 3).graph().unwrap();
    for (g, bits) in [
        (&r18, Bits::RandomMix),
        (&r18, Bits::F32),
        (&r50, Bits::Uniform(4)),
    ] {
        let t = random_model(g, bits, 21);
        let mut model = t.model.clone();
        let mut exec = Executor::from_model(&mut model).unwrap();
        let x = random_input(exec.input_len(), 70);
        let want = reference(&t, &x);
        let threes = exec
            .steps()
            .iter()
            .filter(
                |s| matches!(s, Step::Conv { conv, .. } if conv.kernel == 3 && conv.stride == 1),
            )
            .count();
        let what = format!("{} {bits:?}", g.arch);
        assert_eq!(exec.winograd_convolutions(), threes, "{what}");
        let winograd = exec.run(&x).unwrap();
        let e = rel_err(&winograd, &want);
        assert!(e < TOL, "{what}: relative error {e:.2e}");
        exec.set_winograd(false);
        assert_eq!(exec.winograd_convolutions(), 0, "{what}");
        let direct: Vec<f64> = exec.run(&x).unwrap().into_iter().map(f64::from).collect();
        assert!(
            rel_err(&winograd, &direct) < TOL,
            "{what}: against the direct convolution"
        );
        eprintln!("{what}: {threes} Winograd convolutions, relative error {e:.2e}");
    }
}

/// A full-width ResNet18's Winograd convolutions of 256 and 512 channels (4.2 and 16.8 MB of
/// transformed weights) keep them as quarters on AVX-512F, and its 256-to-512 stride-2
/// convolution (4.7 MB) its codes as `i8` panels on AVX-512F and AVX2, and its logits still
/// match the f64 interpreter's and the direct convolutions' (a quarter missing from the scales
/// would be a factor of 4 on six layers). FP32 weights (no codes) keep floats, and match as
/// well.
#[test]
fn quartered_winograd_weights_match_reference() {
    use fq_runtime::exec::kernel::{path, KernelPath};
    let g = ArchSpec::new(Arch::ResNet18, 64, 36, 5).graph().unwrap();
    let avx512 = path() == KernelPath::Avx512F;
    let lanes = matches!(path(), KernelPath::Avx512F | KernelPath::Avx2Fma);
    for (bits, quartered, bytes) in [
        (
            Bits::RandomMix,
            if avx512 { 6 } else { 0 },
            usize::from(lanes),
        ),
        (Bits::F32, 0, 0),
    ] {
        let t = random_model(&g, bits, 22);
        let mut model = t.model.clone();
        let mut exec = Executor::from_model(&mut model).unwrap();
        let x = random_input(exec.input_len(), 71);
        let want = reference(&t, &x);
        let got = exec.run(&x).unwrap();
        assert_eq!(exec.quartered_convolutions(), quartered, "{bits:?}");
        assert_eq!(exec.byte_lane_convolutions(), bytes, "{bits:?}");
        let e = rel_err(&got, &want);
        assert!(e < TOL, "{bits:?}: relative error {e:.2e}");
        exec.set_winograd(false);
        let direct: Vec<f64> = exec.run(&x).unwrap().into_iter().map(f64::from).collect();
        assert_eq!(exec.quartered_convolutions(), 0, "{bits:?}");
        assert!(
            rel_err(&got, &direct) < TOL,
            "{bits:?}: against the direct convolution"
        );
    }
}

/// The convolutions with their channels along the lanes (AVX-512F and AVX2): every 1x1
/// convolution of a narrow ResNet50 at 64 pixels (maps of at most 256 pixels, strided or not;
/// on AVX2 those of at most 196, and of the others those whose input or output lies in blocks
/// of channels) and every 3x3 one Winograd's does not take (all of them with
/// Winograd off), the RGB stem not. The logits agree with the reference and with the same
/// convolutions run the other way, and none runs so on the other paths.
#[test]
fn lane_convolutions_match_reference() {
    // Width 32: every channel count a multiple of 32, as in the full model.
    let r50 = ArchSpec::new(Arch::ResNet50, 32, 64, 3).graph().unwrap();
    for (bits, winograd) in [(Bits::Uniform(4), true), (Bits::F32, false)] {
        let t = random_model(&r50, bits, 23);
        let mut model = t.model.clone();
        let mut exec = Executor::from_model(&mut model).unwrap();
        exec.set_winograd(winograd);
        let x = random_input(exec.input_len(), 71);
        let want = reference(&t, &x);
        use fq_runtime::exec::kernel::{path, KernelPath};
        // Each step's output pixels, from the values a run observes.
        let (values, _) = observed(&exec, &x);
        let pixels = |s: usize, co: usize| values.iter().find(|v| v.0 == s).map(|v| v.1.len() / co);
        // The 1x1 convolutions AVX2 takes: maps of at most 196 pixels.
        let small = |s: usize, c: &fq_models::Conv2d| pixels(s, c.out_channels).unwrap() <= 196;
        let count = |test: &dyn Fn(&fq_models::Conv2d, usize) -> bool| {
            let convs = exec.steps().iter().enumerate();
            convs
                .filter(|(s, st)| matches!(st, Step::Conv { conv, .. } if test(conv, *s)))
                .count()
        };
        let ones = count(&|c, _| c.kernel == 1);
        let small_ones = count(&|c, s| c.kernel == 1 && small(s, c));
        let threes = count(&|c, _| c.kernel == 3) - exec.winograd_convolutions();
        let what = format!("ResNet50 {bits:?}, Winograd {winograd}");
        assert!(ones > small_ones && small_ones > 0 && threes > 0, "{what}");
        let along = exec.lane_convolutions();
        match path() {
            KernelPath::Avx512F => assert_eq!(along, ones + threes, "{what}"),
            // Those on larger maps whose input or output lies in blocks of channels: more.
            KernelPath::Avx2Fma => assert!(
                (small_ones + threes + 1..=ones + threes).contains(&along),
                "{what}: {along}"
            ),
            _ => assert_eq!(along, 0, "{what}"),
        }
        let lanes = exec.run(&x).unwrap();
        let e = rel_err(&lanes, &want);
        assert!(e < TOL, "{what}: relative error {e:.2e}");
        exec.set_conv_lanes(false);
        assert_eq!(exec.lane_convolutions(), 0, "{what}");
        let others: Vec<f64> = exec.run(&x).unwrap().into_iter().map(f64::from).collect();
        assert!(
            rel_err(&lanes, &others) < TOL,
            "{what}: against the other convolutions"
        );
        eprintln!("{what}: {along} convolutions along the lanes, relative error {e:.2e}");
    }
}

/// Values kept in blocks of channels between the 1x1 convolutions along the lanes and the
/// Winograd ones (AVX-512F and AVX2): every value a run observes (copied back into channel
/// planes) and the logits are identical bit for bit to those of the run in channel planes, with
/// Winograd on and off; narrow ResNet50 and ResNet18 at 64 pixels block values in every stage
/// (with the global pooling after the last; on AVX2 in the stages of at most 196 pixels), and no
/// value is blocked on the other paths or on the integer path.
#[test]
fn blocked_values_change_no_value() {
    use fq_runtime::exec::kernel::{path, KernelPath};
    let r50 = ArchSpec::new(Arch::ResNet50, 32, 64, 3).graph().unwrap();
    let r18 = ArchSpec::new(Arch::ResNet18, 32, 64, 3).graph().unwrap();
    // Blocked values at least, with Winograd on and off (46 and 20, 8 and 0 at this stop, on
    // AVX-512F): ResNet50's residual streams (16 blocks' outputs) and, with Winograd, the
    // values around its 3x3 layers; ResNet18's only between its Winograd layers. On AVX2 (49
    // and 36, 11 and 0 at stop 68) the first stage's 1x1 layers (16x16 pixels) are along the
    // lanes only where their values can lie in blocks.
    let avx512 = path() == KernelPath::Avx512F;
    let (r50_least, r18_least) = if avx512 {
        ([40, 16], [8, 0])
    } else {
        ([44, 30], [10, 0])
    };
    for (g, at_least) in [(&r50, r50_least), (&r18, r18_least)] {
        let t = random_model(g, Bits::RandomMix, 29);
        let mut model = t.model.clone();
        let mut exec = Executor::from_model(&mut model).unwrap();
        let x = random_input(exec.input_len(), 37);
        for (winograd, at_least) in [true, false].into_iter().zip(at_least) {
            let what = format!("{} with Winograd {winograd}", g.arch);
            exec.set_winograd(winograd);
            exec.set_blocked_values(true);
            let count = exec.blocked_values_count();
            if matches!(path(), KernelPath::Avx512F | KernelPath::Avx2Fma) {
                assert!(count >= at_least, "{what}: {count} blocked values");
            } else {
                assert_eq!(count, 0, "{what}");
            }
            let blocked = observed(&exec, &x);
            exec.set_blocked_values(false);
            assert_eq!(exec.blocked_values_count(), 0);
            let planes = observed(&exec, &x);
            assert_eq!(blocked.1, planes.1, "{what}: logits");
            assert_eq!(blocked.0.len(), planes.0.len());
            for ((s, a), (_, b)) in blocked.0.iter().zip(&planes.0) {
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert!(bits(a) == bits(b), "{what}: step {s}'s value");
            }
        }
        exec.set_winograd(true);
        exec.set_blocked_values(true);
        exec.set_activation_scales(exec.calibrate([x.as_slice()]).unwrap());
        exec.set_activations(Activations::Int8Static);
        assert_eq!(exec.blocked_values_count(), 0, "{}: integer path", g.arch);
    }
}

/// Codes in quads (four channels interleaved per pixel, the weights' columns permuted to match)
/// multiply the same codes as the channel-major layout: the logits are identical bit for bit,
/// with static scales (quads written by the epilogues, padded for their readers) and dynamic
/// ones (quantised by each reader), and every convolution but the RGB stem takes them.
#[test]
fn quads_change_no_logit() {
    let r18 = ArchSpec::new(Arch::ResNet18, 4, 32, 5).graph().unwrap();
    let r50 = ArchSpec::new(Arch::ResNet50, 4, 32, 3).graph().unwrap();
    for g in [&r18, &r50] {
        let t = random_model(g, Bits::RandomMix, 13);
        let mut model = t.model.clone();
        let mut exec = Executor::from_model(&mut model).unwrap();
        let x = random_input(exec.input_len(), 50);
        exec.set_activation_scales(exec.calibrate([x.as_slice()]).unwrap());
        let convs = exec.steps().iter().filter(|s| s.kind() == "conv").count();
        for activations in [Activations::Int8Static, Activations::Int8Dynamic] {
            exec.set_activations(activations);
            exec.set_quad_layout(true);
            assert_eq!(exec.quad_layout_convolutions(), convs - 1, "{}", g.arch);
            let quads = exec.run(&x).unwrap();
            exec.set_quad_layout(false);
            assert_eq!(exec.quad_layout_convolutions(), 0);
            let rows = exec.run(&x).unwrap();
            assert_eq!(quads, rows, "{} {activations:?}", g.arch);
        }
        exec.set_quad_layout(true);
    }
}

/// The integer GEMM's tasks in bands of rows (`Executor::set_int8_bands`, where a task's
/// floats outgrow a core's L2) give the logits of the same tasks as one block, bit for bit:
/// a half-width ResNet50 at 112 px on one thread, whose first stage's tasks (128 and 256
/// rows by 784 pixels, residuals from codes and quads written) are banded on the paths of
/// the 6x16 tile, with static and dynamic scales.
#[test]
fn integer_bands_change_no_logit() {
    let g = ArchSpec::new(Arch::ResNet50, 32, 112, 5).graph().unwrap();
    let mut model = random_model(&g, Bits::RandomMix, 23).model;
    let mut exec = Executor::from_model(&mut model).unwrap();
    let x = random_input(exec.input_len(), 70);
    exec.set_activation_scales(exec.calibrate([x.as_slice()]).unwrap());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for activations in [Activations::Int8Static, Activations::Int8Dynamic] {
        exec.set_activations(activations);
        exec.set_int8_bands(false);
        let whole = pool.install(|| exec.run(&x).unwrap());
        exec.set_int8_bands(true);
        let banded = pool.install(|| exec.run(&x).unwrap());
        assert_eq!(banded, whole, "{activations:?}");
    }
}

/// An executor of a random mixed 2-8-bit `arch` (4 classes, `size` px input) drawn from `seed`.
fn small_resnet(arch: Arch, size: usize, seed: u64) -> Executor {
    let g = ArchSpec::new(arch, 4, size, 5).graph().unwrap();
    let mut model = random_model(&g, Bits::RandomMix, seed).model;
    Executor::from_model(&mut model).unwrap()
}

/// Every step's value (step index and values, as `run_observed` reports them) and the logits.
fn observed(exec: &Executor, x: &[f32]) -> (Vec<(usize, Vec<f32>)>, Vec<f32>) {
    let mut seen = Vec::new();
    let logits = exec
        .run_observed(x, |s, v| seen.push((s, v.to_vec())))
        .unwrap();
    (seen, logits)
}

/// The stem and its max pooling run as one step, band by band: every value the pooling's step
/// observes and the logits are identical bit for bit to the two steps apart, on the integer
/// path with static and dynamic scales and on the f32 path (where its kernel reads taps: AVX2
/// and AVX-512F), on images whose stem rows are and are not whole panels, in pools of 1-3
/// threads (so 1-8 bands); the stem's own output is never written (observed empty).
#[test]
fn stem_and_pool_as_one_step_change_no_value() {
    use fq_runtime::exec::kernel::{path, KernelPath};
    let f32_fused = matches!(path(), KernelPath::Avx512F | KernelPath::Avx2Fma);
    for (arch, size) in [
        (Arch::ResNet18, 32),
        (Arch::ResNet18, 40),
        (Arch::ResNet50, 36),
    ] {
        let mut exec = small_resnet(arch, size, 17);
        let x = random_input(exec.input_len(), 60);
        exec.set_activation_scales(exec.calibrate([x.as_slice()]).unwrap());
        let run = |exec: &Executor| observed(exec, &x);
        for activations in [
            Activations::Int8Static,
            Activations::Int8Dynamic,
            Activations::F32,
        ] {
            exec.set_activations(activations);
            for threads in 1..=3 {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                exec.set_stem_pool_fusion(false);
                let (apart, want) = pool.install(|| run(&exec));
                exec.set_stem_pool_fusion(true);
                let (fused, got) = pool.install(|| run(&exec));
                let what = format!("{arch:?} {size} px, {activations:?}, {threads} threads");
                assert_eq!(got, want, "{what}: logits");
                let fuses = activations != Activations::F32 || f32_fused;
                assert_eq!(
                    fused[0].1.is_empty(),
                    fuses,
                    "{what}: the stem fused or not"
                );
                assert_eq!(apart[1].1, fused[1].1, "{what}: the pooled values");
                // With static scales the pooled value is kept as codes alone (its readers
                // take them), so the logits above are what compare its codes.
                assert_eq!(
                    fused[1].1.is_empty(),
                    activations == Activations::Int8Static,
                    "{what}: the pooled value's floats"
                );
                assert_eq!(apart[2..], fused[2..], "{what}: the later steps");
            }
        }
    }
}

/// A stem kept in f32 (its weights unquantised) under integer readers with static scales: the
/// max pooling after it still hands them its codes, made from its floats, with the stem and
/// pooling fused or apart (the same logits), and none is missing (a reader expecting codes
/// would panic).
#[test]
fn an_f32_stem_hands_integer_readers_its_pooled_codes() {
    use fq_runtime::format::LayerWeights;
    for (arch, size) in [(Arch::ResNet18, 32), (Arch::ResNet50, 36)] {
        let g = ArchSpec::new(arch, 4, size, 5).graph().unwrap();
        let t = random_model(&g, Bits::RandomMix, 29);
        let mut model = t.model.clone();
        let stem = &mut model.layers[0];
        assert_eq!(stem.name, "conv1", "{arch:?}: the first layer is the stem");
        let (rows, cols) = stem.weights.dims();
        let data = stem.weights.to_f32();
        stem.weights = LayerWeights::F32 { rows, cols, data };
        let mut exec = Executor::from_model(&mut model).unwrap();
        let x = random_input(exec.input_len(), 61);
        exec.set_activation_scales(exec.calibrate([x.as_slice()]).unwrap());
        exec.set_activations(Activations::Int8Static);
        let fused = exec.run(&x).unwrap();
        exec.set_stem_pool_fusion(false);
        let apart = exec.run(&x).unwrap();
        assert_eq!(fused, apart, "{arch:?}");
        assert!(fused.iter().all(|v| v.is_finite()), "{arch:?}: {fused:?}");
    }
}

/// The graph's ReLU outputs are known to be `>= 0` (every ResNet convolution but the stem reads
/// one), and the integer convolutions reading them as unsigned codes change no value: every
/// step and the logits are identical bit for bit with the kernels told and not told, with mixed
/// 2-8-bit rows (8-bit ones take the unflipped 7-bit kernel on AVX2), static and dynamic scales.
#[test]
fn relu_outputs_read_as_unsigned_change_no_value() {
    for (arch, size) in [(Arch::ResNet18, 32), (Arch::ResNet50, 36)] {
        let mut exec = small_resnet(arch, size, 23);
        let convs: Vec<bool> = exec
            .steps()
            .iter()
            .filter_map(|s| match s {
                Step::Conv { input, .. } => Some(exec.is_nonneg(*input)),
                _ => None,
            })
            .collect();
        assert!(!convs[0], "{arch:?}: the stem reads the image");
        assert!(convs[1..].iter().all(|&n| n), "{arch:?}: {convs:?}");
        let x = random_input(exec.input_len(), 61);
        assert!(!exec.is_nonneg(0) && x.iter().any(|&v| v < 0.0));
        exec.set_activation_scales(exec.calibrate([x.as_slice()]).unwrap());
        let run = |exec: &Executor| observed(exec, &x);
        for activations in [Activations::Int8Static, Activations::Int8Dynamic] {
            exec.set_activations(activations);
            exec.set_unsigned_inputs(false);
            let (flipped, want) = run(&exec);
            exec.set_unsigned_inputs(true);
            let (unsigned, got) = run(&exec);
            assert_eq!(got, want, "{arch:?} {activations:?}: logits");
            assert_eq!(unsigned, flipped, "{arch:?} {activations:?}: the steps");
        }
    }
}

/// The integer path (i8 activations per tensor, exact i32 sums) against the same f64 reference:
/// 8-bit activations through a ResNet's 20-50 convolutions keep the logits within a few percent
/// of the largest logit, and they must differ from the f32 path's (the integer path really ran).
#[test]
fn int8_activations_stay_within_quantisation_error_of_the_reference() {
    let r18 = ArchSpec::new(Arch::ResNet18, 4, 32, 5).graph().unwrap();
    let r50 = ArchSpec::new(Arch::ResNet50, 4, 32, 3).graph().unwrap();
    for (g, bits) in [
        (&r18, Bits::Uniform(4)),
        (&r18, Bits::RandomMix),
        (&r50, Bits::RandomMix),
    ] {
        let t = random_model(g, bits, 7);
        let mut model = t.model.clone();
        let mut exec = Executor::from_model(&mut model).unwrap();
        let x = random_input(exec.input_len(), 70);
        let f32_logits = exec.run(&x).unwrap();
        exec.set_activations(Activations::Int8Dynamic);
        assert_eq!(exec.activations().name(), "int8-dynamic");
        let got = exec.run(&x).unwrap();
        let want = reference(&t, &x);
        let (e_int8, e_f32) = (rel_err(&got, &want), rel_err(&f32_logits, &want));
        eprintln!(
            "{} {bits:?}: int8 activations {e_int8:.2e}, f32 {e_f32:.2e} (relative to the largest logit)",
            g.arch
        );
        assert!(
            e_int8 < 5e-2,
            "{} {bits:?}: int8 relative error {e_int8:.2e}",
            g.arch
        );
        assert!(e_int8 > 10.0 * e_f32, "the integer path did not run");
        // Static scales calibrated (on the float model) on this very input: as close as the
        // dynamic ones; calibrated on other images of the same distribution: a little further
        // (some clipping, some coarser steps), still within the bound.
        let scales = exec.calibrate([x.as_slice()]).unwrap();
        assert!(scales.iter().flatten().count() > 10);
        exec.set_activation_scales(scales);
        assert_eq!(exec.activations().name(), "int8-static");
        let e_own = rel_err(&exec.run(&x).unwrap(), &want);
        let others: Vec<Vec<f32>> = (0..16).map(|s| random_input(x.len(), 100 + s)).collect();
        exec.set_activation_scales(exec.calibrate(others.iter().map(Vec::as_slice)).unwrap());
        let e_static = rel_err(&exec.run(&x).unwrap(), &want);
        eprintln!(
            "  static scales: calibrated on the input {e_own:.2e}, on 16 others {e_static:.2e}"
        );
        assert!(
            e_own < 1e-1,
            "{} {bits:?}: static int8 (own) {e_own:.2e}",
            g.arch
        );
        // Random He-initialised networks have per-image activation peaks that vary about 2x
        // between inputs, so ranges from 16 other images clip or coarsen more than a trained
        // model's would: looser bounds here (measured: 1.2e-2..6.7e-2 on the input itself,
        // 3.2e-2..1.4e-1 on 16 others); the demo's real data is the test that matters. A scale
        // off by 2x (half of every range clipped) gives errors of order 1.
        assert!(
            e_static < 2.5e-1,
            "{} {bits:?}: static int8 relative error {e_static:.2e}",
            g.arch
        );
        exec.set_activations(Activations::F32);
        assert_eq!(exec.run(&x).unwrap(), f32_logits);
    }
}

#[test]
fn resnet_plan_fuses_every_relu_and_add() {
    let g = ArchSpec::new(Arch::ResNet18, 4, 32, 5).graph().unwrap();
    let mut model = random_model(&g, Bits::Uniform(4), 1).model;
    assert!(!model
        .graph
        .nodes
        .iter()
        .any(|n| matches!(n.op, fq_models::Op::BatchNorm2d { .. })));
    assert_eq!(
        model.summary.folded.len(),
        20,
        "ResNet18 has 20 batch norms"
    );
    let exec = Executor::from_model(&mut model).unwrap();
    let steps = exec.steps();
    // 20 convolutions, the max pool, the global pool and fc: nothing else survives fusion.
    assert_eq!(steps.len(), 23, "{steps:#?}");
    let residual = steps
        .iter()
        .filter(|s| {
            matches!(
                s,
                Step::Conv {
                    residual: Some(_),
                    relu: true,
                    ..
                }
            )
        })
        .count();
    assert_eq!(residual, 8, "every basic block ends in conv + add + relu");
}

#[test]
fn batch_equals_single_images_and_input_size_is_checked() {
    let mut model = random_model(&odd_graph(), Bits::RandomMix, 3).model;
    let exec = Executor::from_model(&mut model).unwrap();
    let n = exec.input_len();
    let x = random_input(3 * n, 9);
    let batch = exec.run_batch(&x, 3).unwrap();
    for i in 0..3 {
        let one = exec.run(&x[i * n..(i + 1) * n]).unwrap();
        assert_eq!(&batch[i * 4..(i + 1) * 4], &one[..]);
    }
    assert_eq!(
        exec.run(&x[..n - 1]),
        Err(ExecError::InputSize {
            got: n - 1,
            expected: n,
            size: 75
        })
    );
    assert!(exec.run_batch(&x, 2).is_err());
}

/// The GEMM on its own: several K blocks, rows not a multiple of the tile (a 12-row block and
/// a single row), whole pairs of panels stored from the registers and a partial panel through
/// the accumulator block, scale, bias, residual and ReLU; and last panels of 3 and 1 columns,
/// summed by dot products instead (`gemm::THIN`).
#[test]
fn packed_gemm_matches_naive_product() {
    for n in [37, 35, 49] {
        packed_gemm_of_width_matches_naive_product(n);
    }
}

fn packed_gemm_of_width_matches_naive_product(n: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (rows, k) = (13, 600);
    let bits: Vec<u8> = (0..rows).map(|_| rng.random_range(2..=8)).collect();
    let codes: Vec<i8> = bits
        .iter()
        .flat_map(|&b| {
            let max = (1i32 << (b - 1)) - 1;
            (0..k)
                .map(|_| rng.random_range(-max..=max) as i8)
                .collect::<Vec<_>>()
        })
        .collect();
    let scales: Vec<f32> = (0..rows).map(|_| rng.random_range(0.01..0.1)).collect();
    let m = PackedMatrix::from_codes(k, bits, &codes, scales.clone()).unwrap();
    let offsets = m.row_offsets();
    let bmat: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut panels = vec![f32::NAN; n.div_ceil(NR) * k * NR];
    for i in 0..k {
        for p in 0..n {
            panels[((p / NR) * k + i) * NR + p % NR] = bmat[i * n + p];
        }
    }
    // The padding columns of the last panel hold NaN: they must not leak into real outputs.
    let b = PanelB {
        data: panels.into(),
        k,
        n,
    };
    let bias: Vec<f32> = (0..rows).map(|_| rng.random_range(-1.0..1.0)).collect();
    let residual: Vec<f32> = (0..rows * n).map(|_| rng.random_range(-1.0..1.0)).collect();
    // Stale outputs (NaN) must be overwritten by the first K block, never added to.
    let mut out = vec![f32::NAN; rows * n];
    let epi = Epilogue {
        scale: Some(&scales),
        bias: Some(&bias),
        residual: Some(&residual),
        relu: true,
        gelu: false,
    };
    gemm(
        &Rows::Packed {
            m: &m,
            offsets: &offsets,
        },
        0,
        rows,
        &b,
        &mut out,
        epi,
    );
    let mut want = vec![0f64; rows * n];
    for o in 0..rows {
        for p in 0..n {
            let s: f64 = (0..k)
                .map(|i| codes[o * k + i] as f64 * bmat[i * n + p] as f64)
                .sum();
            want[o * n + p] =
                (s * scales[o] as f64 + bias[o] as f64 + residual[o * n + p] as f64).max(0.0);
        }
    }
    let e = rel_err(&out, &want);
    assert!(e < 1e-5, "gemm of {n} columns: relative error {e:.2e}");
}

/// Every value a run writes starts on a 64-byte cache line (`exec::Buf`), on the f32 and the
/// integer paths: the kernels' 64-byte loads and stores at 64-byte steps then never span two
/// lines (a plain `Vec` from glibc starts 16 bytes past one; aligning them made ResNet50 4-17%
/// faster on the Xeon of stop 60).
#[test]
fn every_value_starts_on_a_cache_line() {
    for (arch, size) in [(Arch::ResNet18, 32), (Arch::ResNet50, 36)] {
        let mut exec = small_resnet(arch, size, 23);
        let x = random_input(exec.input_len(), 61);
        exec.set_activation_scales(exec.calibrate([x.as_slice()]).unwrap());
        for activations in [Activations::F32, Activations::Int8Dynamic] {
            exec.set_activations(activations);
            let mut seen = 0;
            exec.run_observed(&x, |s, v| {
                if !v.is_empty() {
                    seen += 1;
                    let off = v.as_ptr() as usize % 64;
                    assert_eq!(
                        off, 0,
                        "{arch:?} {activations:?}: step {s} is {off} bytes off"
                    );
                }
            })
            .unwrap();
            assert!(
                seen > 10,
                "{arch:?} {activations:?}: {seen} values observed"
            );
        }
    }
}
