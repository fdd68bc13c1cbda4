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
//! in resident memory, per thread that gives buffers back.
//!
//! Per thread: each thread of the pool takes and gives back buffers of its own (threads outside
//! it share one set), so a buffer is written again by the core that last wrote it, whose caches
//! may still hold its lines. With one set for all, the two images a 2-thread batch runs at once
//! traded buffers: on the Zen 5 EPYC of stop 58, whose host puts the two vCPUs on chiplets that
//! share no cache for minutes at a time, every line of such a buffer then crossed between them
//! (ResNet50's integer path, batch 8: 49.7-50.1 ms with one set, 44.4-45.0 per thread, in the
//! same minutes; with the vCPUs sharing a cache, 43.5-45.0 either way).

use std::sync::{Mutex, PoisonError};

use super::buf::{Buf, Plain};

/// Buffers kept at most, per element type.
const KEEP: usize = 6;

/// A pool of buffers of one element type.
pub struct Spare<T: Plain>([Mutex<Vec<Buf<T>>>; SLOTS]);

/// Sets of buffers per pool: one for the threads outside rayon's pool, one per thread of it
/// (threads past the 16th share them, modulo).
const SLOTS: usize = 17;

/// Panels of i8 codes.
pub static I8: Spare<i8> = Spare::new();
/// f32 activations.
pub static F32: Spare<f32> = Spare::new();

impl<T: Plain> Spare<T> {
    pub const fn new() -> Self {
        Spare([const { Mutex::new(Vec::new()) }; SLOTS])
    }

    /// Gives a buffer made by `make` to the calling thread's set and to every thread's of the
    /// current rayon pool: a test's stale buffer (NaNs, odd codes) reaches whichever thread
    /// takes one, the caller or a task.
    #[cfg(test)]
    pub fn give_everywhere(&self, make: impl Fn() -> Buf<T> + Sync)
    where
        T: Send,
    {
        self.give(make());
        rayon::broadcast(|_| self.give(make()));
    }

    /// The calling thread's set of buffers.
    fn slot(&self) -> &Mutex<Vec<Buf<T>>> {
        let i = rayon::current_thread_index().map_or(0, |i| 1 + i % (SLOTS - 1));
        &self.0[i]
    }

    /// A buffer of at least `len` elements (its `len()`; exactly `len` with `exact`), with
    /// arbitrary contents: the kept one of the smallest capacity that holds `len`, else the
    /// largest, grown.
    ///
    /// By capacity, not length: a buffer taken shorter than its capacity (`exact`) comes back
    /// whole ([`Spare::give`]), so taking it longer again writes nothing. (It came back short
    /// and was lengthened with zeros when taken longer: `memset` was 1.2% of ResNet50's f32
    /// time, and without it the Xeon of stop 53 ran ResNet50 and TinyViT-5M 3-4% faster.) An
    /// empty request takes nothing: it used to take a kept buffer, which came back empty and
    /// was dropped, so the pool ran dry and the largest activations were allocated (and
    /// faulted in, page by page) again on every image: on TinyViT-5M's f32 path 2000 page
    /// faults per image, 17–19 ms images in most processes against 12.7 ms in the others.
    pub fn take(&self, len: usize, exact: bool) -> Buf<T> {
        if len == 0 {
            // Nothing to hold: a kept buffer taken for it came back empty and was dropped.
            return Buf::new();
        }
        let mut spare = self.slot().lock().unwrap_or_else(PoisonError::into_inner);
        let fits = (0..spare.len())
            .filter(|&i| spare[i].capacity() >= len)
            .min_by_key(|&i| spare[i].capacity());
        let pick = fits.or_else(|| (0..spare.len()).max_by_key(|&i| spare[i].capacity()));
        let mut v = pick.map(|i| spare.swap_remove(i)).unwrap_or_default();
        drop(spare);
        debug_assert_eq!(v.len(), v.capacity(), "kept buffers are whole");
        if v.len() < len {
            // Grown past its capacity: a new allocation, zeroed (the old one is dropped).
            return Buf::zeroed(len);
        }
        if exact {
            v.truncate(len);
        }
        v
    }

    /// Returns a buffer for a later [`Spare::take`] on the same thread (the one of the smallest
    /// capacity gives way when full), lengthened to its capacity over the elements it held
    /// there (a [`Buf`]'s lines are all initialised).
    pub fn give(&self, mut v: Buf<T>) {
        if v.capacity() == 0 {
            return;
        }
        v.whole();
        let mut spare = self.slot().lock().unwrap_or_else(PoisonError::into_inner);
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

    /// A buffer given back on a thread of the pool is taken again on that thread, not on
    /// another one (which gets a new buffer).
    #[test]
    #[cfg_attr(target_family = "wasm", ignore = "no threads under WASI")]
    fn buffers_stay_with_their_thread() {
        let pool: Spare<i8> = Spare::new();
        let threads = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("a pool");
        threads.broadcast(|ctx| {
            if ctx.index() == 0 {
                pool.give(Buf::filled(1000, 1));
            }
        });
        let got = threads.broadcast(|_| pool.take(10, true).capacity());
        assert!(got[0] >= 1000, "thread 0 takes back its buffer: {got:?}");
        assert!(got[1] < 1000, "thread 1 gets a new one: {got:?}");
    }

    #[test]
    fn a_buffer_is_long_enough_and_comes_back() {
        let pool: Spare<f32> = Spare::new();
        assert_eq!(pool.take(3000, true).as_ptr() as usize % 64, 0, "on a line");
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
        pool.give(Buf::zeroed(5000));
        let none = pool.take(0, true);
        assert_eq!(none.capacity(), 0);
        pool.give(none);
        let short = pool.take(10, true);
        assert!(short.capacity() >= 5000, "the kept buffer");
        pool.give(short);
        pool.give(Buf::zeroed(100));
        let big = pool.take(4000, true);
        assert_eq!(big.len(), 4000);
        assert!(big.capacity() >= 5000, "chosen by capacity, not grown");
    }

    /// A buffer lent short comes back whole: taken longer again, it holds what it held (no
    /// zeros written over it).
    #[test]
    fn a_buffer_lent_short_comes_back_whole() {
        let pool: Spare<f32> = Spare::new();
        pool.give(Buf::filled(64, 7.0));
        let mut short = pool.take(8, true);
        assert_eq!(short.len(), 8);
        short.fill(1.0);
        pool.give(short);
        let long = pool.take(64, true);
        assert_eq!(long.len(), 64);
        assert_eq!(&long[..8], &[1.0; 8]);
        assert_eq!(&long[8..], &[7.0; 56], "lengthened over what it held");
    }
}
