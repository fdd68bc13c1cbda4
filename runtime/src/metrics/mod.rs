//! Evaluation metrics of spec §8: per-group accuracy and fairness gaps, and the bit/BOP budget of a
//! quantized model.

mod argmax;
mod bits;
mod fairness;
mod intervals;

pub use argmax::argmax_rows;
pub use bits::{avg_bits, gbops};
pub use fairness::{FairnessMetrics, MetricsError};
pub use intervals::{
    critical_z, erfc, newcombe_difference, normal_cdf, normal_quantile, two_proportion_z_test,
    wilson, Interval, TwoProportionTest,
};
