//! FairQuant model architectures, shared by the compressor (training) and the runtime (inference).
//!
//! An architecture is data (`Graph`): the layer DAG, shapes, parameter names in torchvision/timm
//! convention, parameter and MAC counts, and the ordered Conv2d/Linear layers that FairQuant quantizes.

pub mod graph;
pub mod resnet;
pub mod zoo;

pub use graph::{
    Conv2d, Graph, GraphError, Linear, Node, Op, ParamSpec, QuantLayer, Shape, ValueId,
};
pub use resnet::{Block, ResNetConfig};
pub use zoo::{ArchError, ArchSpec};
