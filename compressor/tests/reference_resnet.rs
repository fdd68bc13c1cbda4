//! The candle ResNet against timm: narrow ResNet18/50 with random weights (fixtures written by
//! `tools/reference/resnet_ref.py`): eval logits, train-mode logits, running-stat updates, gradients.

use crate::common;
use common::{fixture, rel_err};

use candle_core::Device;
use fq_compress::nn::model::{Mode, Model};
use fq_compress::nn::params::ParamStore;
use fq_models::{Arch, ArchSpec};

/// `grad_tol`: the first conv's gradient passes through every train-mode batch norm of a batch of 2;
/// for ResNet50-w4 PyTorch's own f32 gradient differs from its f64 gradient by 5.0e-3 (relative).
/// `loss_tol`: likewise the train-mode loss; PyTorch's own f32 train logits of ResNet50-w4 differ
/// from f64 by up to 9e-5 (tools/reference/resnet_ref.py), so a different but equally exact f32
/// summation order (the im2col convolution's) moves the loss by ~2.4e-5 there.
fn check(arch: &str, width: usize, stem: &str, grad_tol: f32, loss_tol: f32) {
    let dev = Device::Cpu;
    let graph = ArchSpec::new(arch.parse().unwrap(), width, 64, 5)
        .graph()
        .unwrap();
    let io =
        candle_core::safetensors::load(fixture(&format!("{stem}_io.safetensors")), &dev).unwrap();
    let weights = fixture(&format!("{stem}.safetensors"));

    let model = Model::new(
        graph.clone(),
        ParamStore::load_safetensors(&graph, &weights, 0, &dev, false).unwrap(),
        dev.clone(),
    );
    let logits = model.forward(&io["input"], Mode::Eval, None).unwrap();
    let e = rel_err(&logits, &io["logits_eval"]);
    assert!(e < 1e-4, "{arch}: eval logits differ from timm by {e}");

    // Eval mode leaves the running statistics untouched, so the same model serves train mode.
    let logits = model.forward(&io["input"], Mode::Train, None).unwrap();
    let e = rel_err(&logits, &io["logits_train"]);
    assert!(e < 1e-4, "{arch}: train logits differ from timm by {e}");
    for stat in ["running_mean", "running_var"] {
        let ours = model
            .params
            .get(&format!("bn1.{stat}"))
            .unwrap()
            .as_tensor()
            .clone();
        let e = rel_err(&ours, &io[&format!("bn1.{stat}_after")]);
        assert!(e < 1e-5, "{arch}: bn1.{stat} update differs by {e}");
    }

    let target = io["target"].to_dtype(candle_core::DType::U32).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &target).unwrap();
    let e = rel_err(&loss.reshape(1).unwrap(), &io["loss_train"]);
    assert!(e < loss_tol, "{arch}: loss differs by {e}");
    let grads = loss.backward().unwrap();
    for (p, key) in [
        ("fc.weight", "grad_fc_weight"),
        ("fc.bias", "grad_fc_bias"),
        ("conv1.weight", "grad_conv1_weight"),
    ] {
        let g = grads.get(model.params.get(p).unwrap().as_tensor()).unwrap();
        let e = rel_err(g, &io[key]);
        assert!(e < grad_tol, "{arch}: gradient of {p} differs by {e}");
    }
}

#[test]
fn narrow_resnet18_matches_timm() {
    check("resnet18", 8, "resnet18_w8", 1e-3, 1e-5);
}

#[test]
fn narrow_resnet50_matches_timm() {
    check("resnet50", 4, "resnet50_w4", 1e-2, 1e-4);
}

#[test]
fn missing_and_misshaped_tensors_are_named() {
    let dev = Device::Cpu;
    // ResNet50 weights cannot fit a ResNet18 graph: the error lists the offending tensors.
    let graph = ArchSpec::new(Arch::ResNet18, 8, 64, 5).graph().unwrap();
    let err =
        ParamStore::load_safetensors(&graph, &fixture("resnet50_w4.safetensors"), 0, &dev, false)
            .err()
            .unwrap()
            .to_string();
    assert!(err.contains("resnet50_w4.safetensors"), "{err}");
    assert!(
        err.contains("tensor `conv1.weight` has shape [4, 3, 7, 7]"),
        "{err}"
    );
    assert!(
        err.contains("unexpected tensor `layer1.0.conv3.weight`"),
        "{err}"
    );
    // A new head of another class count loads with `replace_head`.
    let graph = ArchSpec::new(Arch::ResNet18, 8, 64, 3).graph().unwrap();
    assert!(ParamStore::load_safetensors(
        &graph,
        &fixture("resnet18_w8.safetensors"),
        0,
        &dev,
        false
    )
    .is_err());
    ParamStore::load_safetensors(&graph, &fixture("resnet18_w8.safetensors"), 0, &dev, true)
        .unwrap();
}
