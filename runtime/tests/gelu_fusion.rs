//! The CPU executor folds each GELU into the epilogue of the Linear or convolution before it
//! (`exec/plan.rs`, `fuse_gelu`). On the real DeiT-Tiny and TinyViT-5M graphs (narrow, random
//! packed weights): every GELU step is fused away (DeiT's after its MLPs' first Linear,
//! TinyViT's there and after its MBConv convolutions), and the logits are bit for bit those of the
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

/// Steps of `kind` with a GELU in their epilogue.
fn fused(steps: &[Step], kind: &str) -> usize {
    steps
        .iter()
        .filter(|s| {
            s.kind() == kind
                && matches!(
                    s,
                    Step::Linear { gelu: true, .. } | Step::Conv { gelu: true, .. }
                )
        })
        .count()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn gelu_fuses_into_the_step_before_it_on_deit_and_tinyvit_bit_for_bit() {
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
            fused(plan.steps(), "linear"),
            0,
            "the shared plan fuses no GELU"
        );
        assert_eq!(
            fused(plan.steps(), "conv"),
            0,
            "the shared plan fuses no GELU"
        );
        let mut exec = Executor::from_plan(plan);
        // Every GELU is fused away: into the Linear before it (the MLPs) or the convolution
        // before it (TinyViT's MBConv stages).
        assert_eq!(gelus(exec.steps()), 0, "{arch:?}: a GELU was left unfused");
        assert_eq!(in_plan, after_linear + after_conv, "{arch:?}");
        assert_eq!(fused(exec.steps(), "linear"), after_linear, "{arch:?}");
        assert_eq!(fused(exec.steps(), "conv"), after_conv, "{arch:?}");
        assert_eq!(exec.steps().len(), plan_steps - in_plan, "{arch:?}");
        eprintln!(
            "{arch:?}: {in_plan} GELU steps in the plan, {after_linear} after a Linear, \
             {after_conv} after a convolution, all fused"
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
                // A fused GELU's output has codes, so a residual reading it would be added from
                // them (`set_residual_codes`), the unfused GELU's from its floats: compare the
                // fusion alone.
                exec.set_residual_codes(false);
            } else {
                exec.set_activations(activations);
            }
            exec.set_gelu_fusion(true);
            let with = exec.run(&x).unwrap();
            exec.set_gelu_fusion(false);
            assert_eq!(gelus(exec.steps()), in_plan);
            assert_eq!(
                fused(exec.steps(), "linear") + fused(exec.steps(), "conv"),
                0
            );
            let unfused = exec.run(&x).unwrap();
            assert!(
                with.iter().all(|v| v.is_finite()) && with.iter().any(|&v| v != 0.0),
                "{arch:?} {}: degenerate logits {with:?}",
                activations.name()
            );
            assert_eq!(
                bits(&with),
                bits(&unfused),
                "{arch:?} {}: fused {with:?} vs unfused {unfused:?}",
                activations.name()
            );
            eprintln!(
                "{arch:?} {}: {in_plan} GELUs fused, logits bit-identical",
                activations.name()
            );
        }
        // A calibration on the fused executor sees the same ranges as on the unfused one.
        exec.set_gelu_fusion(true);
        assert_eq!(exec.calibrate([x.as_slice()]).unwrap(), scales);
    }
}
