//! The CPU executor folds a transformer MLP's GELU into the epilogue of the Linear before it
//! (`exec/plan.rs`, `fuse_gelu`). On the real DeiT-Tiny and TinyViT-5M graphs (narrow, random
//! packed weights): every GELU step after a Linear is fused away (TinyViT's convolution
//! stages keep theirs), and the logits are bit for bit those of the
//! unfused run, on the f32 path and on the integer token path. Bit for bit because the
//! arithmetic is the same: the same `vmath::gelu`, elementwise, on the same finished floats; only
//! when it runs moves.

use crate::packed::random_token_model;
use fq_models::{Arch, ArchSpec};
use fq_runtime::exec::{Activations, Executor, Plan, Step};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn gelus(steps: &[Step]) -> usize {
    steps
        .iter()
        .filter(|s| matches!(s, Step::Gelu { .. }))
        .count()
}

/// GELU steps whose input a step of `kind` ("linear", "conv") writes.
fn gelus_after(steps: &[Step], kind: &str) -> usize {
    steps
        .iter()
        .filter(|s| match s {
            Step::Gelu { input, .. } => steps
                .iter()
                .any(|p| p.output() == *input && p.kind() == kind),
            _ => false,
        })
        .count()
}

fn fused_linears(steps: &[Step]) -> usize {
    steps
        .iter()
        .filter(|s| matches!(s, Step::Linear { gelu: true, .. }))
        .count()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn gelu_fuses_into_the_linear_on_deit_and_tinyvit_bit_for_bit() {
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    for arch in [Arch::DeitTiny, Arch::TinyVit5m] {
        let g = ArchSpec::new(arch, 16, 224, 5).graph().unwrap();
        let plan = Plan::from_model(&mut random_token_model(&g, 16)).unwrap();
        let in_plan = gelus(plan.steps());
        let after_linear = gelus_after(plan.steps(), "linear");
        let after_conv = gelus_after(plan.steps(), "conv");
        let plan_steps = plan.steps().len();
        assert!(after_linear > 0, "{arch:?}: the graph has no Linear-GELU");
        assert_eq!(
            fused_linears(plan.steps()),
            0,
            "the shared plan fuses no GELU"
        );
        let mut exec = Executor::from_plan(plan);
        // Every GELU after a Linear is fused away; TinyViT's convolution stages keep theirs
        // (a GELU after a convolution runs as its own step).
        assert_eq!(
            gelus(exec.steps()),
            in_plan - after_linear,
            "{arch:?}: a Linear-GELU was left unfused"
        );
        assert_eq!(gelus(exec.steps()), after_conv, "{arch:?}");
        assert_eq!(fused_linears(exec.steps()), after_linear, "{arch:?}");
        assert_eq!(exec.steps().len(), plan_steps - after_linear, "{arch:?}");
        eprintln!(
            "{arch:?}: {in_plan} GELU steps in the plan, {after_linear} after a Linear (fused), \
             {after_conv} after a convolution (kept)"
        );
        let x: Vec<f32> = (0..exec.input_len())
            .map(|_| rng.random_range(-2.0..2.0))
            .collect();
        let scales = exec.calibrate([x.as_slice()]).unwrap();
        for activations in [
            Activations::F32,
            Activations::Int8Dynamic,
            Activations::Int8Static,
        ] {
            if activations == Activations::Int8Static {
                exec.set_activation_scales(scales.clone());
            } else {
                exec.set_activations(activations);
            }
            exec.set_gelu_fusion(true);
            let fused = exec.run(&x).unwrap();
            exec.set_gelu_fusion(false);
            assert_eq!(gelus(exec.steps()), in_plan);
            assert_eq!(fused_linears(exec.steps()), 0);
            let unfused = exec.run(&x).unwrap();
            assert!(
                fused.iter().all(|v| v.is_finite()) && fused.iter().any(|&v| v != 0.0),
                "{arch:?} {}: degenerate logits {fused:?}",
                activations.name()
            );
            assert_eq!(
                bits(&fused),
                bits(&unfused),
                "{arch:?} {}: fused {fused:?} vs unfused {unfused:?}",
                activations.name()
            );
            eprintln!(
                "{arch:?} {}: {after_linear} GELUs fused, logits bit-identical",
                activations.name()
            );
        }
        // A calibration on the fused executor sees the same ranges as on the unfused one.
        exec.set_gelu_fusion(true);
        assert_eq!(exec.calibrate([x.as_slice()]).unwrap(), scales);
    }
}
