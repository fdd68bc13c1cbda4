//! Named architectures a user can ask for on the command line or store in a model file.

use crate::graph::Graph;
use crate::resnet::ResNetConfig;
use crate::tiny_vit::{TinyVitConfig, TINY_VIT_5M};
use crate::vit::{VitConfig, DEIT_TINY};
use serde::{Deserialize, Serialize};

/// An architecture by name plus the knobs that scale it down for the embedded default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchSpec {
    /// `resnet18`, `resnet50`, `deit_tiny_patch16_224` or `tiny_vit_5m_224` (see [`KNOWN`]).
    pub name: String,
    /// Width knob, 64 = the published model: ResNet stem/first-stage channels, DeiT embedding
    /// dimension / 3, TinyViT first-stage dimension (the other stages scale with it; heads are kept).
    pub width: usize,
    pub input_size: usize,
    pub num_classes: usize,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ArchError {
    #[error("unknown architecture `{0}` (known: resnet18, resnet50, deit_tiny_patch16_224 alias deit-tiny, tiny_vit_5m_224 alias tinyvit-5m)")]
    Unknown(String),
    #[error("architecture `{name}`: {msg}")]
    Invalid { name: String, msg: String },
}

/// The architectures this build knows.
pub const KNOWN: &[&str] = &["resnet18", "resnet50", DEIT_TINY, TINY_VIT_5M];

/// The canonical (timm) name of an architecture given by name or short alias.
pub fn canonical_name(name: &str) -> Option<&'static str> {
    match name.to_ascii_lowercase().replace('_', "-").as_str() {
        "resnet18" => Some("resnet18"),
        "resnet50" => Some("resnet50"),
        "deit-tiny" | "deit-tiny-patch16-224" => Some(DEIT_TINY),
        "tinyvit" | "tinyvit-5m" | "tiny-vit-5m" | "tiny-vit-5m-224" => Some(TINY_VIT_5M),
        _ => None,
    }
}

impl ArchSpec {
    pub fn new(name: &str, width: usize, input_size: usize, num_classes: usize) -> Self {
        Self {
            name: name.to_string(),
            width,
            input_size,
            num_classes,
        }
    }

    /// The graph of this architecture, or why it cannot be built.
    pub fn graph(&self) -> Result<Graph, ArchError> {
        let invalid = |msg: &str| ArchError::Invalid {
            name: self.name.clone(),
            msg: msg.to_string(),
        };
        if self.width == 0 || self.num_classes == 0 {
            return Err(invalid("width and number of classes must be positive"));
        }
        // The stem and four stages downsample by 32; smaller inputs collapse to nothing.
        if self.input_size < 32 {
            return Err(invalid("input size must be at least 32 pixels"));
        }
        let name =
            canonical_name(&self.name).ok_or_else(|| ArchError::Unknown(self.name.clone()))?;
        let arch = if self.width == 64 {
            name.to_string()
        } else {
            format!("{name}-w{}", self.width)
        };
        let (w, size, k) = (self.width, self.input_size, self.num_classes);
        match name {
            DEIT_TINY => {
                let mut cfg = VitConfig::deit_tiny(k);
                if size % cfg.patch != 0 {
                    return Err(invalid(
                        "input size must be a multiple of the 16-pixel patch",
                    ));
                }
                cfg.dim = 3 * w;
                cfg.input_size = size;
                Ok(cfg.build(arch))
            }
            TINY_VIT_5M => {
                let mut cfg = TinyVitConfig::tiny_vit_5m(k);
                if w % 2 != 0 {
                    return Err(invalid("TinyViT's width must be even (stage 3 is 2.5x it)"));
                }
                cfg.embed_dims = [w, 2 * w, 5 * w / 2, 5 * w];
                cfg.input_size = size;
                Ok(cfg.build(arch))
            }
            _ => {
                let mut cfg = if name == "resnet50" {
                    ResNetConfig::resnet50(k)
                } else {
                    ResNetConfig::resnet18(k)
                };
                cfg.width = w;
                cfg.input_size = size;
                Ok(cfg.build())
            }
        }
    }
}
