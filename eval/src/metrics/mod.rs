//! Evaluation metrics of spec §8: per-group accuracy and fairness gaps (the runtime's type, which a
//! model file carries, re-exported here so evaluation code has one place to import from), how sure
//! an accuracy measured on `n` images is, and the bit/BOP budget of a quantized model.

mod bits;
mod intervals;

pub use bits::{avg_bits, gbops};
pub use fq_runtime::metrics::{argmax_rows, FairnessMetrics, MetricsError};
pub use intervals::{
    critical_z, erfc, newcombe_difference, normal_cdf, normal_quantile, two_proportion_z_test,
    wilson, Interval, TwoProportionTest,
};
