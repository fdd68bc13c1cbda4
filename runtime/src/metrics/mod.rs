//! The two metric pieces a device needs: the logits-to-class step ([`argmax_rows`]) and the
//! per-group results type ([`FairnessMetrics`]) that a model file carries as its compression-time
//! figures (so it must deserialize on a device). The rest of spec §8 (confidence intervals, the
//! bit/BOP budget) is evaluation, in the `fq-eval` crate.

mod argmax;
mod fairness;

pub use argmax::argmax_rows;
pub use fairness::{FairnessMetrics, MetricsError};
