//! Buffers that start on a cache line: the runtime's activations, scratch buffers and kept
//! weight panels.
//!
//! Why: the kernels read and write them 64 bytes at a time (one AVX-512 vector, or a 64-byte
//! row of panel codes) at 64-byte steps from their start, and a `Vec`'s start is wherever the
//! allocator put it. glibc hands out large blocks 16 bytes past a 64-byte boundary (its mmap'd
//! chunks; `malloc(4 MiB) % 64 == 16`), so every such access of a `Vec` spans two cache lines:
//! two loads, and a store split across lines. A 64-byte-aligning global allocator put under the
//! executor made ResNet50's f32 path 3-6% and its integer path 11% faster on the Xeon of stop 59
//! (`bench/results.md`, "Update, stop 59"); a library cannot choose its users' allocator, so the
//! runtime aligns its own buffers instead.
//!
//! A [`Buf`] holds whole 64-byte lines, all of them initialised (zeros when allocated), so
//! lengthening one up to its capacity reads no uninitialised memory: the scratch pool
//! ([`super::scratch`]) lends buffers shorter than their capacity and takes them back whole.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

/// Bytes per line, and the alignment of every buffer's start.
pub const LINE: usize = 64;

/// One cache line of storage.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; LINE]);

mod sealed {
    pub trait Sealed {}
}

/// Element types a [`Buf`] may hold: plain numbers, for which every bit pattern is a value (so
/// zeroed or reused lines read as numbers) and whose size divides a line.
pub trait Plain: Copy + Default + sealed::Sealed {}

macro_rules! plain {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Plain for $t {}
    )*};
}
plain!(f32, i8, u8, i32);

/// A growable run of `T` starting on a 64-byte boundary; dereferences to `[T]` of its length.
pub struct Buf<T: Plain> {
    lines: Vec<Line>,
    len: usize,
    kind: PhantomData<T>,
}

impl<T: Plain> Buf<T> {
    /// Elements per line.
    const PER_LINE: usize = LINE / std::mem::size_of::<T>();

    /// An empty buffer (no allocation).
    pub const fn new() -> Self {
        Buf {
            lines: Vec::new(),
            len: 0,
            kind: PhantomData,
        }
    }

    /// `len` zeros (every `Plain` type's zero is all-zero bits).
    pub fn zeroed(len: usize) -> Self {
        Buf {
            lines: vec![Line([0; LINE]); len.div_ceil(Self::PER_LINE)],
            len,
            kind: PhantomData,
        }
    }

    /// `len` copies of `value`.
    pub fn filled(len: usize, value: T) -> Self {
        let mut b = Self::zeroed(len);
        b.fill(value);
        b
    }

    /// A copy of `values`.
    pub fn from_slice(values: &[T]) -> Self {
        let mut b = Self::zeroed(values.len());
        b.copy_from_slice(values);
        b
    }

    /// Elements it holds without allocating.
    pub fn capacity(&self) -> usize {
        self.lines.len() * Self::PER_LINE
    }

    /// Shortens it to `len` elements (no change when it is shorter); the elements past `len`
    /// stay as they were, up to its capacity.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Lengthens it to its capacity over the elements it holds there: a buffer taken short
    /// comes back whole without writing them.
    pub fn whole(&mut self) {
        self.len = self.capacity();
    }

    /// Makes it `len` long: shortened, or lengthened with copies of `value` (reallocating past
    /// its capacity, which moves it to a new 64-byte boundary).
    pub fn resize(&mut self, len: usize, value: T) {
        if len > self.capacity() {
            self.lines
                .resize(len.div_ceil(Self::PER_LINE), Line([0; LINE]));
        }
        let old = self.len;
        self.len = len;
        if len > old {
            self[old..].fill(value);
        }
    }
}

impl<T: Plain> Default for Buf<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Plain> Clone for Buf<T> {
    fn clone(&self) -> Self {
        Self::from_slice(self)
    }
}

impl<T: Plain + fmt::Debug> fmt::Debug for Buf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Plain + PartialEq> PartialEq for Buf<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Plain + PartialEq> PartialEq<Vec<T>> for Buf<T> {
    fn eq(&self, other: &Vec<T>) -> bool {
        **self == **other
    }
}

impl<T: Plain + PartialEq> PartialEq<Buf<T>> for Vec<T> {
    fn eq(&self, other: &Buf<T>) -> bool {
        **self == **other
    }
}

impl<'a, T: Plain> IntoIterator for &'a Buf<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T: Plain> Deref for Buf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the lines are `capacity()` initialised elements of a `Plain` type (every bit
        // pattern a value, size dividing 64, alignment at most 64) and `len <= capacity()`.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<T>(), self.len) }
    }
}

impl<T: Plain> DerefMut for Buf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, borrowed mutably through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<T>(), self.len) }
    }
}

impl<T: Plain> From<Vec<T>> for Buf<T> {
    fn from(v: Vec<T>) -> Self {
        Self::from_slice(&v)
    }
}

impl<T: Plain> From<&[T]> for Buf<T> {
    fn from(v: &[T]) -> Self {
        Self::from_slice(v)
    }
}

impl<T: Plain> FromIterator<T> for Buf<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut b = Self::zeroed(iter.size_hint().0);
        b.len = 0;
        for v in iter {
            if b.len == b.capacity() {
                b.lines.resize((b.lines.len() * 2).max(1), Line([0; LINE]));
            }
            let at = b.len;
            b.len += 1;
            b[at] = v;
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every buffer starts on a line, whatever its size or element type, grown or not.
    #[test]
    fn buffers_start_on_a_line() {
        for n in [1, 15, 16, 17, 1000, 1 << 20] {
            let f = Buf::<f32>::zeroed(n);
            assert_eq!(f.as_ptr() as usize % LINE, 0, "f32 x {n}");
            assert!(f.iter().all(|&v| v == 0.0));
            let mut b = Buf::<i8>::filled(n, 3);
            assert_eq!(b.as_ptr() as usize % LINE, 0, "i8 x {n}");
            b.resize(3 * n + 5, 7);
            assert_eq!(b.as_ptr() as usize % LINE, 0, "i8 x {n}, grown");
            assert!(b[..n].iter().all(|&v| v == 3) && b[n..].iter().all(|&v| v == 7));
        }
        let c: Buf<i32> = (0..100).collect();
        assert_eq!(c.as_ptr() as usize % LINE, 0);
        assert_eq!(c.to_vec(), (0..100).collect::<Vec<_>>());
    }

    /// Shortened, a buffer keeps what it held past its length, and comes back whole over it.
    #[test]
    fn truncated_then_whole_keeps_the_elements() {
        let mut b = Buf::<f32>::from_slice(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(b.capacity(), 16);
        b.truncate(1);
        assert_eq!(&b[..], &[1.0]);
        b.whole();
        assert_eq!(b.len(), 16);
        assert_eq!(&b[..4], &[1.0, 2.0, 3.0, 4.0]);
        assert!(b[4..].iter().all(|&v| v == 0.0));
    }
}
