//! Buffers kept between runs for the largest temporaries: the im2col panels of a convolution
//! over quads (ResNet18's first stage: 1.8 MB per convolution) and the convolutions' f32
//! outputs.
//!
//! Why: a fresh `vec![0; n]` of that size is zeroed by `memset` (or faulted in page by page)
//! before the layer overwrites every element of it; that zeroing was about 10% of ResNet18's
//! integer path on AMX, where the kernel itself takes a third. A recycled buffer is handed out
//! with whatever it held, so only callers that write every element they later read take one
//! (`Quads::im2col`, the convolutions' outputs), while any buffer may be given back.
//!
//! A few buffers of each type are kept, so the cost is about the largest few activations' size
//! in resident memory.

use std::sync::{Mutex, PoisonError};

/// Buffers kept at most, per element type.
const KEEP: usize = 6;

/// A pool of buffers of one element type.
pub struct Spare<T>(Mutex<Vec<Vec<T>>>);

/// Panels of i8 codes.
pub static I8: Spare<i8> = Spare::new();
/// f32 activations.
pub static F32: Spare<f32> = Spare::new();

impl<T: Copy + Default> Spare<T> {
    const fn new() -> Self {
        Spare(Mutex::new(Vec::new()))
    }

    /// A buffer of at least `len` elements (its `len()`; exactly `len` with `exact`), with
    /// arbitrary contents: the smallest kept one that fits, else the largest, grown.
    pub fn take(&self, len: usize, exact: bool) -> Vec<T> {
        let mut spare = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let fits = (0..spare.len())
            .filter(|&i| spare[i].len() >= len)
            .min_by_key(|&i| spare[i].len());
        let pick = fits.or_else(|| (0..spare.len()).max_by_key(|&i| spare[i].len()));
        let mut v = pick.map(|i| spare.swap_remove(i)).unwrap_or_default();
        drop(spare);
        if v.len() < len {
            v.resize(len, T::default());
        } else if exact {
            v.truncate(len);
        }
        v
    }

    /// Returns a buffer for a later [`Spare::take`] (the smallest kept one gives way when
    /// full).
    pub fn give(&self, v: Vec<T>) {
        if v.is_empty() {
            return;
        }
        let mut spare = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if spare.len() < KEEP {
            spare.push(v);
        } else if let Some(i) = (0..spare.len()).min_by_key(|&i| spare[i].len()) {
            if spare[i].len() < v.len() {
                spare[i] = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_is_long_enough_and_comes_back() {
        let pool: Spare<i8> = Spare::new();
        let v = pool.take(1000, false);
        assert!(v.len() >= 1000);
        pool.give(v);
        let w = pool.take(10, true);
        assert_eq!(w.len(), 10);
        assert!(w.capacity() >= 1000, "the kept buffer came back");
        pool.give(w);
        assert_eq!(pool.take(2000, false).len(), 2000);
    }
}
