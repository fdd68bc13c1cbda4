//! Named architectures a user can ask for on the command line or store in a model file.

use crate::graph::Graph;
use crate::resnet::ResNetConfig;
use crate::tiny_vit::{TinyVitConfig, TINY_VIT_5M};
use crate::vit::{VitConfig, DEIT_TINY};
use serde::{Deserialize, Serialize};

/// The architectures this build knows. Stored (run configs, JSON) and printed as the canonical
/// timm name; read from any of [`Arch::aliases`], so files written with an alias keep loading.
/// An unknown name is an error, never a silent fallback to ResNet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Arch {
    ResNet18,
    ResNet50,
    DeitTiny,
    TinyVit5m,
}

impl Arch {
    pub const ALL: [Arch; 4] = [
        Arch::ResNet18,
        Arch::ResNet50,
        Arch::DeitTiny,
        Arch::TinyVit5m,
    ];

    /// The canonical (timm) name.
    pub fn name(self) -> &'static str {
        match self {
            Arch::ResNet18 => "resnet18",
            Arch::ResNet50 => "resnet50",
            Arch::DeitTiny => DEIT_TINY,
            Arch::TinyVit5m => TINY_VIT_5M,
        }
    }

    /// Every name accepted for this architecture (compared case-insensitively, `_` = `-`).
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            Arch::ResNet18 => &["resnet18"],
            Arch::ResNet50 => &["resnet50"],
            Arch::DeitTiny => &["deit-tiny", "deit-tiny-patch16-224"],
            Arch::TinyVit5m => &["tinyvit", "tinyvit-5m", "tiny-vit-5m", "tiny-vit-5m-224"],
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Arch {
    type Err = ArchError;

    fn from_str(name: &str) -> Result<Self, ArchError> {
        let key = name.to_ascii_lowercase().replace('_', "-");
        Arch::ALL
            .into_iter()
            .find(|a| a.aliases().contains(&key.as_str()))
            .ok_or_else(|| ArchError::Unknown(name.to_string()))
    }
}

impl From<Arch> for String {
    fn from(a: Arch) -> String {
        a.name().to_string()
    }
}

impl TryFrom<String> for Arch {
    type Error = ArchError;

    fn try_from(name: String) -> Result<Self, ArchError> {
        name.parse()
    }
}

/// An architecture plus the knobs that scale it down for the embedded default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchSpec {
    pub arch: Arch,
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

/// The canonical names of the architectures this build knows.
pub const KNOWN: &[&str] = &["resnet18", "resnet50", DEIT_TINY, TINY_VIT_5M];

impl ArchSpec {
    pub fn new(arch: Arch, width: usize, input_size: usize, num_classes: usize) -> Self {
        Self {
            arch,
            width,
            input_size,
            num_classes,
        }
    }

    /// The graph of this architecture, or why it cannot be built.
    pub fn graph(&self) -> Result<Graph, ArchError> {
        let invalid = |msg: &str| ArchError::Invalid {
            name: self.arch.to_string(),
            msg: msg.to_string(),
        };
        if self.width == 0 || self.num_classes == 0 {
            return Err(invalid("width and number of classes must be positive"));
        }
        // The stem and four stages downsample by 32; smaller inputs collapse to nothing.
        if self.input_size < 32 {
            return Err(invalid("input size must be at least 32 pixels"));
        }
        let name = self.arch.name();
        let arch = if self.width == 64 {
            name.to_string()
        } else {
            format!("{name}-w{}", self.width)
        };
        let (w, size, k) = (self.width, self.input_size, self.num_classes);
        match self.arch {
            Arch::DeitTiny => {
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
            Arch::TinyVit5m => {
                let mut cfg = TinyVitConfig::tiny_vit_5m(k);
                if w % 2 != 0 {
                    return Err(invalid("TinyViT's width must be even (stage 3 is 2.5x it)"));
                }
                cfg.embed_dims = [w, 2 * w, 5 * w / 2, 5 * w];
                cfg.input_size = size;
                Ok(cfg.build(arch))
            }
            Arch::ResNet18 | Arch::ResNet50 => {
                let mut cfg = if self.arch == Arch::ResNet50 {
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
