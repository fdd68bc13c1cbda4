//! Stage 2, nn: the trainable model (a graph interpreter over candle), its ops and parameters,
//! the optimizer, the losses and the quantizer's training side.

pub mod fake_quant;
pub mod loss;
pub mod model;
pub mod ops;
pub mod optim;
pub mod params;
pub mod quant;
pub mod quant_ops;
pub mod transform;
pub mod transformer;
