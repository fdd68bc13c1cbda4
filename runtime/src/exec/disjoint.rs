//! A raw pointer into one output buffer, shared by parallel GEMM tasks that each write their own
//! rectangle of it (`gemm::gemm`, `int8_gemm`).
//!
//! Why not `par_chunks_mut`: a rectangle (a block of rows by a range of columns) is not a
//! contiguous chunk, and handing each task `&mut` slices that overlap other tasks' rows would be
//! undefined behaviour even if no element were written twice. Each task instead makes a slice of
//! each of its row segments, which are disjoint from every other task's.

/// A pointer into a buffer whose disjoint parts parallel tasks write.
pub(super) struct Shared<T>(pub(super) *mut T);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Shared<T> {}
// SAFETY: the tasks write disjoint elements (each user says how); `T` is a plain number.
unsafe impl<T: Send> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Shared<T> {
    pub(super) fn offset(self, i: usize) -> Self {
        Shared(self.0.wrapping_add(i))
    }

    /// # Safety
    /// `i..i + len` must lie in the buffer, which must outlive `'a`, and be accessed by no one
    /// else meanwhile.
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn slice<'a>(self, i: usize, len: usize) -> &'a mut [T] {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(i), len) }
    }
}
