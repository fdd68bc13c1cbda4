//! ResNet18/50 graphs with torchvision/timm module names, and the narrow variants of the embedded default.

use crate::builder::Builder;
use crate::graph::{Graph, Linear, Op};
use serde::{Deserialize, Serialize};

/// Which residual block the network stacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Block {
    /// Two 3x3 convolutions (ResNet18/34).
    Basic,
    /// 1x1 → 3x3 (stride here, torchvision "v1.5") → 1x1 with 4x expansion (ResNet50).
    Bottleneck,
}

/// A ResNet's hyperparameters. `width` is the stem/first-stage width: 64 for torchvision's models,
/// smaller for the embedded default (e.g. 16 = a quarter of the channels).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResNetConfig {
    pub block: Block,
    pub layers: [usize; 4],
    pub width: usize,
    pub num_classes: usize,
    pub input_size: usize,
}

impl ResNetConfig {
    pub fn resnet18(num_classes: usize) -> Self {
        Self {
            block: Block::Basic,
            layers: [2, 2, 2, 2],
            width: 64,
            num_classes,
            input_size: 224,
        }
    }

    pub fn resnet50(num_classes: usize) -> Self {
        Self {
            block: Block::Bottleneck,
            layers: [3, 4, 6, 3],
            width: 64,
            num_classes,
            input_size: 224,
        }
    }

    /// Architecture name: `resnet18`, or `resnet18-w16` for a narrow variant.
    pub fn arch_name(&self) -> String {
        let base = match (self.block, self.layers) {
            (Block::Basic, [2, 2, 2, 2]) => "resnet18".to_string(),
            (Block::Basic, [3, 4, 6, 3]) => "resnet34".to_string(),
            (Block::Bottleneck, [3, 4, 6, 3]) => "resnet50".to_string(),
            (b, l) => format!("resnet-{b:?}-{l:?}").to_lowercase(),
        };
        if self.width == 64 {
            base
        } else {
            format!("{base}-w{}", self.width)
        }
    }

    /// Build the graph, emitting nodes in torchvision's module registration order.
    pub fn build(&self) -> Graph {
        let mut b = Builder::new();
        let w = self.width;
        let mut x = b.conv("conv1", 0, 3, w, 7, 2, 3);
        x = b.bn("bn1", x, w);
        x = b.relu("relu", x);
        x = b.push(
            "maxpool",
            Op::MaxPool2d {
                kernel: 3,
                stride: 2,
                padding: 1,
            },
            vec![x],
        );
        let expansion = match self.block {
            Block::Basic => 1,
            Block::Bottleneck => 4,
        };
        let mut inplanes = w;
        for (stage, &n) in self.layers.iter().enumerate() {
            let planes = w << stage;
            for i in 0..n {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                let p = format!("layer{}.{i}", stage + 1);
                let input = x;
                let out_ch = planes * expansion;
                let mut y = match self.block {
                    Block::Basic => {
                        let y =
                            b.conv(&format!("{p}.conv1"), input, inplanes, planes, 3, stride, 1);
                        let y = b.bn(&format!("{p}.bn1"), y, planes);
                        let y = b.relu(&format!("{p}.relu1"), y);
                        let y = b.conv(&format!("{p}.conv2"), y, planes, planes, 3, 1, 1);
                        b.bn(&format!("{p}.bn2"), y, planes)
                    }
                    Block::Bottleneck => {
                        let y = b.conv(&format!("{p}.conv1"), input, inplanes, planes, 1, 1, 0);
                        let y = b.bn(&format!("{p}.bn1"), y, planes);
                        let y = b.relu(&format!("{p}.relu1"), y);
                        let y = b.conv(&format!("{p}.conv2"), y, planes, planes, 3, stride, 1);
                        let y = b.bn(&format!("{p}.bn2"), y, planes);
                        let y = b.relu(&format!("{p}.relu2"), y);
                        let y = b.conv(&format!("{p}.conv3"), y, planes, out_ch, 1, 1, 0);
                        b.bn(&format!("{p}.bn3"), y, out_ch)
                    }
                };
                let shortcut = if stride != 1 || inplanes != out_ch {
                    let s = b.conv(
                        &format!("{p}.downsample.0"),
                        input,
                        inplanes,
                        out_ch,
                        1,
                        stride,
                        0,
                    );
                    b.bn(&format!("{p}.downsample.1"), s, out_ch)
                } else {
                    input
                };
                y = b.push(&format!("{p}.add"), Op::Add, vec![y, shortcut]);
                x = b.relu(&format!("{p}.relu"), y);
                inplanes = out_ch;
            }
        }
        x = b.push("avgpool", Op::GlobalAvgPool, vec![x]);
        let out = b.push(
            "fc",
            Op::Linear(Linear {
                in_features: inplanes,
                out_features: self.num_classes,
                bias: true,
            }),
            vec![x],
        );
        Graph {
            arch: self.arch_name(),
            in_channels: 3,
            input_size: self.input_size,
            num_classes: self.num_classes,
            nodes: b.nodes,
            output: out,
        }
    }
}
