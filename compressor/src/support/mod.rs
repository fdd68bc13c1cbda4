//! Stage-free utilities every stage may use: atomic files, progress bars, seeds, run locks and
//! the device. Nothing here knows about data, models or methods.

pub mod device;
pub mod io;
pub mod process;
pub mod progress;
pub mod run_files;
pub mod run_lock;
pub mod seed;
