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
    pub const fn new() -> Self {
        Spare(Mutex::new(Vec::new()))
    }

    /// A buffer of at least `len` elements (its `len()`; exactly `len` with `exact`), with
    /// arbitrary contents: the kept one of the smallest capacity that holds `len`, else the
    /// largest, grown.
    ///
    /// By capacity, not length: a buffer taken shorter than it was (`exact`) keeps its memory,
    /// and lengthening it within that memory writes zeros but touches no new page. An empty
    /// request takes nothing: it used to take a kept buffer, which came back empty and was
    /// dropped, so the pool ran dry and the largest activations were allocated (and faulted in,
    /// page by page) again on every image: on TinyViT-5M's f32 path 2000 page faults per image,
    /// 17–19 ms images in most processes against 12.7 ms in the others.
    pub fn take(&self, len: usize, exact: bool) -> Vec<T> {
        if len == 0 {
            // Nothing to hold: a kept buffer taken for it came back empty and was dropped.
            return Vec::new();
        }
        let mut spare = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let fits = (0..spare.len())
            .filter(|&i| spare[i].capacity() >= len)
            .min_by_key(|&i| spare[i].capacity());
        let pick = fits.or_else(|| (0..spare.len()).max_by_key(|&i| spare[i].capacity()));
        let mut v = pick.map(|i| spare.swap_remove(i)).unwrap_or_default();
        drop(spare);
        if v.len() < len {
            v.resize(len, T::default());
        } else if exact {
            v.truncate(len);
        }
        v
    }

    /// Returns a buffer for a later [`Spare::take`] (the one of the smallest capacity gives way
    /// when full).
    pub fn give(&self, v: Vec<T>) {
        if v.capacity() == 0 {
            return;
        }
        let mut spare = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if spare.len() < KEEP {
            spare.push(v);
        } else if let Some(i) = (0..spare.len()).min_by_key(|&i| spare[i].capacity()) {
            if spare[i].capacity() < v.capacity() {
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

    /// An empty request takes no kept buffer (it came back empty and was dropped: TinyViT-5M's
    /// f32 path then allocated and faulted in its largest activations on every image), and a
    /// buffer taken short is chosen again by its capacity.
    #[test]
    fn empty_requests_and_short_takes_keep_the_memory() {
        let pool: Spare<f32> = Spare::new();
        pool.give(vec![0.0; 5000]);
        let none = pool.take(0, true);
        assert_eq!(none.capacity(), 0);
        pool.give(none);
        let short = pool.take(10, true);
        assert!(short.capacity() >= 5000, "the kept buffer");
        pool.give(short);
        pool.give(vec![0.0; 100]);
        let big = pool.take(4000, true);
        assert_eq!(big.len(), 4000);
        assert!(big.capacity() >= 5000, "chosen by capacity, not grown");
    }
}
