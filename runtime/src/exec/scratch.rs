//! Byte buffers kept between runs for the integer path's largest temporary, the im2col panels of
//! a convolution over quads (ResNet18's first stage: 1.8 MB per convolution, about 14 MB per
//! image in all).
//!
//! Why: a fresh `vec![0; n]` of that size is zeroed by `memset` (or faulted in page by page)
//! before the gather overwrites every byte of it; that zeroing was about 10% of ResNet18's
//! integer path on AMX, where the kernel itself takes a third. A recycled buffer is handed out
//! with whatever it held: its taker writes every byte it reads (see `Quads::im2col`).
//!
//! A few buffers are kept (one or two are alive at a time per running image), so the cost is
//! the largest panel's size in resident memory.

use std::sync::{Mutex, PoisonError};

static SPARE: Mutex<Vec<Vec<i8>>> = Mutex::new(Vec::new());

/// Buffers kept at most.
const KEEP: usize = 4;

/// A buffer of at least `len` bytes (its `len()`), with arbitrary contents.
pub fn take(len: usize) -> Vec<i8> {
    let mut spare = SPARE.lock().unwrap_or_else(PoisonError::into_inner);
    // The smallest that fits, else the largest (grown below).
    let fits = (0..spare.len())
        .filter(|&i| spare[i].len() >= len)
        .min_by_key(|&i| spare[i].len());
    let pick = fits.or_else(|| (0..spare.len()).max_by_key(|&i| spare[i].len()));
    let mut v = pick.map(|i| spare.swap_remove(i)).unwrap_or_default();
    drop(spare);
    if v.len() < len {
        v.resize(len, 0);
    }
    v
}

/// Returns a buffer for a later [`take`] (the smallest kept one gives way when all are taken).
pub fn give(v: Vec<i8>) {
    if v.is_empty() {
        return;
    }
    let mut spare = SPARE.lock().unwrap_or_else(PoisonError::into_inner);
    if spare.len() < KEEP {
        spare.push(v);
    } else if let Some(i) = (0..spare.len()).min_by_key(|&i| spare[i].len()) {
        if spare[i].len() < v.len() {
            spare[i] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_is_long_enough_and_comes_back() {
        let v = take(1000);
        assert!(v.len() >= 1000);
        give(v);
        let w = take(10);
        assert!(w.len() >= 10);
        give(w);
    }
}
