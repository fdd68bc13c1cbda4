//! The one error type of the device API, so an app handles a single `Result` type from loading to
//! classification. Each variant keeps the underlying error (and its message, which names the model
//! file, the image file or the field at fault) unchanged.

use crate::backend::BackendError;
use crate::exec::ExecError;
use crate::format::{FormatError, ModelFileError};
use crate::preprocess::DecodeError;

/// Anything that can go wrong loading a model or classifying with it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model file that cannot be read or is not a valid model; the message names the file.
    #[error(transparent)]
    File(#[from] ModelFileError),
    /// Model bytes (not from a named file) that are not a valid model.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// An input tensor of the wrong size, or the GPU failing mid-run.
    #[error(transparent)]
    Input(#[from] ExecError),
    /// An image that cannot be read or decoded; the message names the file (or the name given
    /// for in-memory bytes).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A backend that was asked for and cannot be had (no GPU adapter, a build without it).
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The GPU backend failed while compiling a model for it.
    #[cfg(feature = "wgpu")]
    #[error(transparent)]
    Gpu(#[from] crate::gpu::GpuError),
}
