//! The candle DeiT and TinyViT against timm (fixtures written by
//! `tools/reference/transformer_ref.py`): narrow variants with every norm, token, embedding and
//! attention-bias table randomised; eval and train logits, the loss and gradients within 1e-4.
//! `full_size_*` repeat the logit check on the full-size models: ignored tests that
//! `tools/reference/full_size_check.sh` runs explicitly (`--ignored`) on the fixtures it writes.

use crate::common;
use common::{fixture, rel_err};

use candle_core::{DType, Device};
use fq_compress::nn::model::{Mode, Model};
use fq_compress::nn::params::ParamStore;
use fq_models::{Arch, ArchSpec, Graph, TinyVitConfig, VitConfig};
use std::path::Path;

/// Loads `{stem}.safetensors` into `graph` and compares with `{stem}_io.safetensors`;
/// `grads` maps our parameter names to the fixture's gradient keys (empty: logits only).
fn check(graph: Graph, dir: &Path, stem: &str, grads: &[(&str, &str)]) {
    let dev = Device::Cpu;
    let io =
        candle_core::safetensors::load(dir.join(format!("{stem}_io.safetensors")), &dev).unwrap();
    let params = ParamStore::load_safetensors(
        &graph,
        &dir.join(format!("{stem}.safetensors")),
        0,
        &dev,
        false,
    )
    .unwrap();
    let model = Model::new(graph, params, dev);
    let logits = model.forward(&io["input"], Mode::Eval, None).unwrap();
    let e = rel_err(&logits, &io["logits_eval"]);
    println!("{stem}: eval logits rel err {e:.2e}");
    assert!(e < 1e-4, "{stem}: eval logits differ from timm by {e}");
    if grads.is_empty() {
        return;
    }
    let logits = model.forward(&io["input"], Mode::Train, None).unwrap();
    let e = rel_err(&logits, &io["logits_train"]);
    assert!(e < 1e-4, "{stem}: train logits differ from timm by {e}");
    let target = io["target"].to_dtype(DType::U32).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &target).unwrap();
    let e = rel_err(&loss.reshape(1).unwrap(), &io["loss_train"]);
    assert!(e < 1e-4, "{stem}: loss differs by {e}");
    let g = loss.backward().unwrap();
    for (p, key) in grads {
        let ours = g.get(model.params.get(p).unwrap().as_tensor()).unwrap();
        let e = rel_err(ours, &io[*key]);
        assert!(e < 1e-4, "{stem}: gradient of {p} differs by {e}");
    }
}

#[test]
fn narrow_deit_tiny_matches_timm() {
    let cfg = VitConfig {
        dim: 48,
        depth: 2,
        input_size: 64,
        ..VitConfig::deit_tiny(5)
    };
    check(
        cfg.build("deit_tiny_patch16_224-w16-d2".into()),
        &fixture(""),
        "deit_tiny_w16",
        &[
            ("head.weight", "grad_head_weight"),
            ("patch_embed.proj.weight", "grad_patch_embed_weight"),
            ("blocks.0.attn.qkv.weight", "grad_qkv0_weight"),
            ("pos_embed", "grad_pos_embed"),
            ("cls_token", "grad_cls_token"),
        ],
    );
}

#[test]
fn narrow_tiny_vit_with_padded_windows_matches_timm() {
    let cfg = TinyVitConfig {
        embed_dims: [16, 32, 40, 80],
        depths: [1, 1, 2, 1],
        input_size: 64,
        ..TinyVitConfig::tiny_vit_5m(5)
    };
    check(
        cfg.build("tiny_vit_5m_224-w16-d1122".into()),
        &fixture(""),
        "tiny_vit_w16",
        &[
            ("head.fc.weight", "grad_head_weight"),
            ("patch_embed.conv1.conv.weight", "grad_patch_embed_weight"),
            ("stages.1.blocks.0.attn.qkv.weight", "grad_qkv0_weight"),
            (
                "stages.1.blocks.0.attn.attention_biases",
                "grad_attention_biases",
            ),
        ],
    );
}

#[test]
fn a_checkpoint_that_does_not_fit_names_every_bad_tensor() {
    // The narrow TinyViT file against a DeiT graph: missing, unexpected and mis-shaped tensors.
    let graph = ArchSpec::new(Arch::DeitTiny, 16, 64, 5).graph().unwrap();
    let msg = load_error(&graph, "tiny_vit_w16.safetensors");
    assert!(msg.contains("tiny_vit_w16.safetensors"), "{msg}");
    assert!(
        msg.contains("missing tensor `blocks.0.attn.qkv.weight`"),
        "{msg}"
    );
    assert!(
        msg.contains("unexpected tensor `stages.1.blocks.0.attn.attention_biases`"),
        "{msg}"
    );
    // A DeiT checkpoint of another depth: the extra blocks are unexpected.
    let graph = VitConfig {
        dim: 48,
        depth: 1,
        input_size: 64,
        ..VitConfig::deit_tiny(5)
    }
    .build("d1".into());
    let msg = load_error(&graph, "deit_tiny_w16.safetensors");
    assert!(
        msg.contains("unexpected tensor `blocks.1.norm1.weight`"),
        "{msg}"
    );
    // At another input size the position embedding is mis-shaped.
    let graph = ArchSpec::new(Arch::DeitTiny, 16, 32, 5).graph().unwrap();
    let msg = load_error(&graph, "deit_tiny_w16.safetensors");
    assert!(
        msg.contains("tensor `pos_embed` has shape [1, 17, 48], the model needs [1, 5, 48]"),
        "{msg}"
    );
}

/// The message of loading fixture `file` into `graph`, which must fail.
fn load_error(graph: &Graph, file: &str) -> String {
    let r = ParamStore::load_safetensors(graph, &fixture(file), 0, &Device::Cpu, false);
    format!("{:#}", r.err().expect("the checkpoint does not fit"))
}

/// The full-size models, written by `tools/reference/full_size_check.sh` into the directory
/// it passes in `FQ_FULL_REF_DIR`. These tests are `#[ignore]`d (the fixtures are ~150 MB and
/// need PyTorch): that script runs them with `--ignored`, and run that way without the
/// directory they fail instead of passing silently.
fn full(arch: &str, stem: &str) {
    let dir = std::env::var_os("FQ_FULL_REF_DIR").unwrap_or_else(|| {
        panic!(
            "FQ_FULL_REF_DIR is not set: run tools/reference/full_size_check.sh, which writes \
             the full-size {arch} fixtures and runs these ignored tests"
        )
    });
    let graph = ArchSpec::new(arch.parse().unwrap(), 64, 224, 1000)
        .graph()
        .unwrap();
    check(graph, Path::new(&dir), stem, &[]);
}

#[test]
#[ignore = "needs tools/reference/full_size_check.sh (PyTorch, ~150 MB of fixtures)"]
fn full_size_deit_tiny_matches_timm() {
    full("deit_tiny_patch16_224", "deit_tiny_patch16_224");
}

#[test]
#[ignore = "needs tools/reference/full_size_check.sh (PyTorch, ~150 MB of fixtures)"]
fn full_size_tiny_vit_5m_matches_timm() {
    full("tiny_vit_5m_224", "tiny_vit_5m_224");
}

#[test]
#[ignore = "needs tools/reference/full_size_check.sh (PyTorch, ~150 MB of fixtures)"]
fn full_size_resnet50_matches_timm() {
    full("resnet50", "resnet50");
}
