//! TinyViT-5M (timm `tiny_vit_5m_224`) with timm's module names, and its narrow variants.
//!
//! A conv stem (two ConvNorm + GELU), an MBConv stage, then three stages of patch merging and
//! TinyViT blocks: windowed attention with learned attention biases (LayerNorm inside the
//! attention), a depthwise "local" ConvNorm, and a pre-norm MLP. Head: average pool,
//! LayerNorm, Linear. Activations between blocks are `[C, H, W]`; blocks work on tokens.

use crate::builder::Builder;
use crate::graph::{Attention, Graph, Op, QkvLayout, ValueId};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TinyVitConfig {
    pub embed_dims: [usize; 4],
    pub depths: [usize; 4],
    pub heads: [usize; 4],
    pub window_sizes: [usize; 4],
    pub mlp_ratio: usize,
    pub mbconv_expand: usize,
    pub num_classes: usize,
    pub input_size: usize,
}

pub const TINY_VIT_5M: &str = "tiny_vit_5m_224";

impl TinyVitConfig {
    pub fn tiny_vit_5m(num_classes: usize) -> Self {
        Self {
            embed_dims: [64, 128, 160, 320],
            depths: [2, 2, 6, 2],
            heads: [2, 4, 5, 10],
            window_sizes: [7, 7, 14, 7],
            mlp_ratio: 4,
            mbconv_expand: 4,
            num_classes,
            input_size: 224,
        }
    }

    pub fn build(&self, arch: String) -> Graph {
        let mut b = Builder::new();
        let dims = self.embed_dims;
        // Grid side after a 3x3, stride-2, padding-1 convolution.
        let conv = |h: usize| {
            crate::geometry::window_output(h, 3, 2, 1).expect("an input of at least one pixel")
        };
        // Stem: two stride-2 ConvNorms.
        let mut x = conv_norm(&mut b, "patch_embed.conv1", 0, 3, dims[0] / 2, 3, 2, 1);
        x = b.gelu("patch_embed.act", x);
        x = conv_norm(
            &mut b,
            "patch_embed.conv2",
            x,
            dims[0] / 2,
            dims[0],
            3,
            2,
            1,
        );
        let mut hw = conv(conv(self.input_size));
        // Stage 0: MBConv blocks.
        for i in 0..self.depths[0] {
            let p = format!("stages.0.blocks.{i}");
            let (c, mid) = (dims[0], dims[0] * self.mbconv_expand);
            let y = conv_norm(&mut b, &format!("{p}.conv1"), x, c, mid, 1, 1, 0);
            let y = b.gelu(&format!("{p}.act1"), y);
            let y = conv_norm_g(&mut b, &format!("{p}.conv2"), y, mid, mid, 3, 1, 1, mid);
            let y = b.gelu(&format!("{p}.act2"), y);
            let y = conv_norm(&mut b, &format!("{p}.conv3"), y, mid, c, 1, 1, 0);
            let y = b.add(&format!("{p}.add"), y, x);
            x = b.gelu(&format!("{p}.act3"), y);
        }
        // Stages 1-3: patch merging, then TinyViT blocks.
        for s in 1..4 {
            let (cin, c) = (dims[s - 1], dims[s]);
            let p = format!("stages.{s}.downsample");
            x = conv_norm(&mut b, &format!("{p}.conv1"), x, cin, c, 1, 1, 0);
            x = b.gelu(&format!("{p}.act1"), x);
            x = conv_norm_g(&mut b, &format!("{p}.conv2"), x, c, c, 3, 2, 1, c);
            x = b.gelu(&format!("{p}.act2"), x);
            x = conv_norm(&mut b, &format!("{p}.conv3"), x, c, c, 1, 1, 0);
            hw = conv(hw);
            // The blocks pass tokens from one to the next: one layout change into the stage and
            // one out of it, not a `[C, H, W]` round trip between every two blocks.
            let mut t = b.push(&format!("stages.{s}.to_tokens"), Op::ToTokens, vec![x]);
            for i in 0..self.depths[s] {
                t = self.block(&mut b, &format!("stages.{s}.blocks.{i}"), t, s, hw);
            }
            let chw = Op::ToChw {
                height: hw,
                width: hw,
            };
            x = b.push(&format!("stages.{s}.to_chw"), chw, vec![t]);
        }
        let c = dims[3];
        let x = b.push("head.global_pool", Op::GlobalAvgPool, vec![x]);
        let x = b.layer_norm("head.norm", x, c, 1e-5);
        let out = b.linear("head.fc", x, c, self.num_classes);
        Graph {
            arch,
            in_channels: 3,
            input_size: self.input_size,
            num_classes: self.num_classes,
            nodes: b.nodes,
            output: out,
        }
    }

    /// One TinyViT block on an `hw x hw` grid (`t` is its `[H*W, C]` tokens; so is the result).
    fn block(&self, b: &mut Builder, p: &str, t: ValueId, stage: usize, hw: usize) -> ValueId {
        let c = self.embed_dims[stage];
        let heads = self.heads[stage];
        let ws = self.window_sizes[stage];
        // timm skips the partition when the grid is exactly one window.
        let windowed = hw != ws;
        let geo = |b: &mut Builder, name: &str, v: ValueId, reverse: bool| {
            let (height, width, window) = (hw, hw, ws);
            let op = if reverse {
                Op::WindowReverse {
                    height,
                    width,
                    window,
                }
            } else {
                Op::WindowPartition {
                    height,
                    width,
                    window,
                }
            };
            b.push(name, op, vec![v])
        };
        let mut y = t;
        if windowed {
            y = geo(b, &format!("{p}.attn.window_partition"), y, false);
        }
        let head_dim = c / heads;
        let a = Attention {
            heads,
            key_dim: head_dim,
            val_dim: head_dim,
            layout: QkvLayout::HeadsQkv,
            group: windowed.then_some(ws * ws),
            bias_window: Some(ws),
        };
        y = b.layer_norm(&format!("{p}.attn.norm"), y, c, 1e-5);
        y = b.linear(&format!("{p}.attn.qkv"), y, c, a.qkv_features());
        y = b.attention(&format!("{p}.attn"), y, a);
        y = b.linear(&format!("{p}.attn.proj"), y, c, c);
        if windowed {
            y = geo(b, &format!("{p}.attn.window_reverse"), y, true);
        }
        let t = b.add(&format!("{p}.add1"), t, y);
        let chw = Op::ToChw {
            height: hw,
            width: hw,
        };
        let x = b.push(&format!("{p}.to_chw"), chw, vec![t]);
        let x = conv_norm_g(b, &format!("{p}.local_conv"), x, c, c, 3, 1, 1, c);
        let t = b.push(&format!("{p}.local_conv.to_tokens"), Op::ToTokens, vec![x]);
        let hidden = c * self.mlp_ratio;
        let y = b.layer_norm(&format!("{p}.mlp.norm"), t, c, 1e-5);
        let y = b.linear(&format!("{p}.mlp.fc1"), y, c, hidden);
        let y = b.gelu(&format!("{p}.mlp.act"), y);
        let y = b.linear(&format!("{p}.mlp.fc2"), y, hidden, c);
        b.add(&format!("{p}.add2"), t, y)
    }
}

/// timm's `ConvNorm`: conv (no bias) `{p}.conv` then batch norm `{p}.bn`.
#[allow(clippy::too_many_arguments)]
fn conv_norm(
    b: &mut Builder,
    p: &str,
    x: ValueId,
    cin: usize,
    cout: usize,
    k: usize,
    s: usize,
    pad: usize,
) -> ValueId {
    conv_norm_g(b, p, x, cin, cout, k, s, pad, 1)
}

#[allow(clippy::too_many_arguments)]
fn conv_norm_g(
    b: &mut Builder,
    p: &str,
    x: ValueId,
    cin: usize,
    cout: usize,
    k: usize,
    s: usize,
    pad: usize,
    groups: usize,
) -> ValueId {
    let y = b.conv_g(&format!("{p}.conv"), x, cin, cout, k, s, pad, groups, false);
    b.bn(&format!("{p}.bn"), y, cout)
}
