//! Evaluation metrics of spec §8: per-group accuracy and fairness gaps, and the bit/BOP budget of a
//! quantized model.

mod argmax;
mod bits;
mod fairness;

pub use argmax::argmax_rows;
pub use bits::{avg_bits, gbops};
pub use fairness::{FairnessMetrics, MetricsError};
