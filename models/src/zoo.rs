//! Named architectures a user can ask for on the command line or store in a model file.

use crate::graph::Graph;
use crate::resnet::ResNetConfig;
use serde::{Deserialize, Serialize};

/// An architecture by name plus the knobs that scale it down for the embedded default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchSpec {
    /// `resnet18` or `resnet50`.
    pub name: String,
    /// Stem/first-stage width (64 = the torchvision model).
    pub width: usize,
    pub input_size: usize,
    pub num_classes: usize,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ArchError {
    #[error("unknown architecture `{0}` (known: resnet18, resnet50)")]
    Unknown(String),
    #[error("architecture `{name}`: {msg}")]
    Invalid { name: String, msg: String },
}

/// The architectures this build knows.
pub const KNOWN: &[&str] = &["resnet18", "resnet50"];

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
        let mut cfg = match self.name.as_str() {
            "resnet18" => ResNetConfig::resnet18(self.num_classes),
            "resnet50" => ResNetConfig::resnet50(self.num_classes),
            other => return Err(ArchError::Unknown(other.to_string())),
        };
        cfg.width = self.width;
        cfg.input_size = self.input_size;
        Ok(cfg.build())
    }
}
