//! DeiT-Tiny (timm `deit_tiny_patch16_224`) with timm's module names, and its narrow variants.
//!
//! Patch embedding (16x16 conv), class token, position embedding, 12 pre-norm blocks
//! (LayerNorm → fused qkv → attention → proj, LayerNorm → fc1 → GELU → fc2), final LayerNorm,
//! the class token into the head. LayerNorm eps is 1e-6 as in timm's ViT.

use crate::builder::Builder;
use crate::graph::{Attention, Graph, Op, QkvLayout};
use serde::{Deserialize, Serialize};

/// A plain ViT's hyperparameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VitConfig {
    pub patch: usize,
    pub dim: usize,
    pub depth: usize,
    pub heads: usize,
    pub mlp_ratio: usize,
    pub num_classes: usize,
    pub input_size: usize,
}

pub const DEIT_TINY: &str = "deit_tiny_patch16_224";

impl VitConfig {
    pub fn deit_tiny(num_classes: usize) -> Self {
        Self {
            patch: 16,
            dim: 192,
            depth: 12,
            heads: 3,
            mlp_ratio: 4,
            num_classes,
            input_size: 224,
        }
    }

    pub fn build(&self, arch: String) -> Graph {
        let mut b = Builder::new();
        let d = self.dim;
        let grid = self.input_size / self.patch;
        let tokens = grid * grid + 1;
        let x = b.conv_g(
            "patch_embed.proj",
            0,
            3,
            d,
            self.patch,
            self.patch,
            0,
            1,
            true,
        );
        let x = b.push("patch_embed.flatten", Op::ToTokens, vec![x]);
        let x = b.push("cls_token", Op::ClassToken { dim: d }, vec![x]);
        let mut x = b.push("pos_embed", Op::PosEmbed { tokens, dim: d }, vec![x]);
        let head_dim = d / self.heads;
        for i in 0..self.depth {
            let p = format!("blocks.{i}");
            let y = b.layer_norm(&format!("{p}.norm1"), x, d, 1e-6);
            let y = b.linear(&format!("{p}.attn.qkv"), y, d, 3 * d);
            let y = b.attention(
                &format!("{p}.attn"),
                y,
                Attention {
                    heads: self.heads,
                    key_dim: head_dim,
                    val_dim: head_dim,
                    layout: QkvLayout::QkvHeads,
                    group: None,
                    bias_window: None,
                },
            );
            let y = b.linear(&format!("{p}.attn.proj"), y, d, d);
            x = b.add(&format!("{p}.add1"), x, y);
            let y = b.layer_norm(&format!("{p}.norm2"), x, d, 1e-6);
            let y = b.linear(&format!("{p}.mlp.fc1"), y, d, d * self.mlp_ratio);
            let y = b.gelu(&format!("{p}.mlp.act"), y);
            let y = b.linear(&format!("{p}.mlp.fc2"), y, d * self.mlp_ratio, d);
            x = b.add(&format!("{p}.add2"), x, y);
        }
        let x = b.layer_norm("norm", x, d, 1e-6);
        let x = b.push("pool", Op::TakeToken { index: 0 }, vec![x]);
        let out = b.linear("head", x, d, self.num_classes);
        Graph {
            arch,
            in_channels: 3,
            input_size: self.input_size,
            num_classes: self.num_classes,
            nodes: b.nodes,
            output: out,
        }
    }
}
