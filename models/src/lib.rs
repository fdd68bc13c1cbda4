//! FairQuant model architectures, shared by the compressor (training) and the runtime (inference).
//!
//! An architecture is data (`Graph`): the layer DAG, shapes, parameter names in torchvision/timm
//! convention, parameter and MAC counts, and the ordered Conv2d/Linear layers that FairQuant quantizes.

mod builder;
pub mod geometry;
pub mod graph;
pub mod resnet;
mod shapes;
pub mod tiny_vit;
pub mod vit;
pub mod zoo;

pub use graph::{
    windows, Attention, Conv2d, Graph, GraphError, Linear, Node, Op, ParamSpec, QkvLayout,
    QuantLayer, Shape, ValueId,
};
pub use resnet::{Block, ResNetConfig};
pub use tiny_vit::{TinyVitConfig, TINY_VIT_5M};
pub use vit::{VitConfig, DEIT_TINY};
pub use zoo::{Arch, ArchError, ArchSpec, KNOWN};
