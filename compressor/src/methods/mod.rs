//! Stage 4, methods: the compression methods and their configurations. [`method`] (re-exported
//! here) names them; [`importance`] and [`allocate`] give FairQuant's bit allocation; [`baq`] the
//! learnable bits; [`fairgrape`] and [`fairquantize`] the baselines; [`runner`] runs one method.

pub mod allocate;
pub mod baq;
pub mod baq_shipping;
pub mod calibrate;
pub mod config;
pub mod fairgrape;
pub mod fairquantize;
pub mod importance;
pub mod importance_plot;
pub mod inputs;
pub mod method;
pub mod runner;

pub use method::*;
