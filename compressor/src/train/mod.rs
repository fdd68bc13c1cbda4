//! Stage 3, train: the training loop ([`fit`], re-exported here), its checkpoints and evaluation.

pub mod checkpoint;
pub mod evaluate;
pub mod fit;

pub use fit::*;
