//! The hook through which a compression method changes the weights a forward pass sees, so that
//! the model interpreter and the training loop need not know the methods: learnable bit-widths
//! (FQ-BAQ) and pruning masks (FairGRAPE) implement it in `methods/`; fixed bit-widths stay
//! [`crate::nn::model::Quant::Fixed`], which `nn` owns.
//!
//! Besides the transformed weight, a transform may bring what training needs from it: its own
//! trainable variables (at their own learning rate), a term added to the loss, and the state a
//! checkpoint must keep to resume it.

use anyhow::Result;
use candle_core::{Tensor, Var};
use std::collections::HashMap;

/// What a weight transform adds to a model. `Sync`, because a forward pass may read it from
/// several threads.
pub trait WeightTransform: Sync {
    /// The weight layer `name` uses in a forward pass, from its stored weight `w`.
    fn weight(&self, name: &str, w: &Tensor) -> Result<Tensor>;

    /// Variables trained beside the model's, and their learning rate; `None` when nothing of the
    /// transform trains.
    fn variables(&self) -> Option<(Vec<(String, Var)>, f64)> {
        None
    }

    /// A term added to the training loss (e.g. a bitrate regularizer); `None` adds nothing.
    fn extra_loss(&self) -> Result<Option<Tensor>> {
        Ok(None)
    }

    /// Tensors a checkpoint keeps beside the model's own, under names that cannot clash with a
    /// model parameter's (the transform chooses them, e.g. a prefix).
    fn state(&self) -> HashMap<String, Tensor> {
        HashMap::new()
    }

    /// Restore what [`WeightTransform::state`] saved, from all of a checkpoint's tensors.
    fn load_state(&self, _checkpoint: &HashMap<String, Tensor>) -> Result<()> {
        Ok(())
    }
}
