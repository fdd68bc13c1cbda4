//! x86-64 AMX-INT8 integer kernel: `TDPBSSD` on tile registers (Sapphire Rapids and later Xeons),
//! through `asm!` (Rust's AMX intrinsics are not stable).
//!
//! Why AMX: on this project's Xeon, onnxruntime's int8 convolutions run MLAS's AVX-512 VNNI kernel
//! (`vpdpbusds` on a 6-pixel x 64-channel register tile; found with `perf` on its ResNet18, issue
//! 16), whose peak is 2 x 64 multiply-adds per cycle. One `TDPBSSD` multiplies a 16x64 tile of
//! i8 by a 64x16 tile into 16x16 i32 sums: 16,384 multiply-adds, issued every 16 cycles, so 1,024
//! per cycle, 8 times that. It is also *signed by signed*: the symmetric i8 activations go in as
//! they are, with no `+ 128` and no row-sum correction, exact for every 8-bit code.
//!
//! Layout: `TDPBSSD C, A, B` computes `C[m][n] += sum_k A[m][4k..4k+4] . B[k][4n..4n+4]`. `A` is
//! 16 weight rows of 64 codes, `lda` apart, as `WeightsI8` stores them; `B` is 16 rows of 64
//! bytes, each one group of 4 `k` for 16 columns: exactly 1 KiB of a panel in `int8.rs`'s
//! `[k / 4][NR][4]` layout, contiguous. So both load straight from the existing buffers.
//!
//! A block is 16 rows x 32 columns (two panels): per 64 `k`, one `A` load, two `B` loads and two
//! `TDPBSSD` into the two accumulator tiles. A `k` that is not a multiple of 64 ends with one
//! zero-padded chunk copied to the stack (a zero code adds nothing).
//!
//! The OS side: Linux enables the 8 KiB tile state per process only on request
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, Linux 5.16+); [`supported`] makes that
//! request once and reports AMX only when it succeeds. The tile configuration (palette 1, every
//! tile 16 rows of 64 bytes) is loaded once per thread and never released: no other code of the
//! process uses the tiles.

use std::arch::asm;
use std::cell::Cell;
use std::sync::OnceLock;

use super::int8::{MR, NR};

/// Rows of one block (one `A` tile).
pub const ROWS: usize = 16;
/// Columns of one block: two panels of `NR`.
pub const COLS: usize = 2 * NR;
/// `k` per tile operation: one 64-byte tile row.
const KCHUNK: usize = 64;

/// Whether this process may run AMX-INT8: the CPU has AMX-TILE and AMX-INT8 (CPUID leaf 7) and
/// Linux granted the tile state. Decided once.
pub fn supported() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| cpu_has_amx_int8() && request_tile_state())
}

fn cpu_has_amx_int8() -> bool {
    // CPUID exists on every x86-64 CPU; leaf 7 is valid when the maximum leaf allows it.
    let max_leaf = std::arch::x86_64::__cpuid(0).eax;
    if max_leaf < 7 {
        return false;
    }
    let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
    (edx >> 24) & 1 == 1 && (edx >> 25) & 1 == 1
}

/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`: 0 when granted.
#[cfg(target_os = "linux")]
fn request_tile_state() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: a plain Linux system call; it reads no memory and only changes the process's
    // permitted extended states. `syscall` clobbers rcx and r11.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == 0
}

/// Other systems need their own request (Windows enables AMX for every thread); not done yet, so
/// they run the VNNI kernels.
#[cfg(not(target_os = "linux"))]
fn request_tile_state() -> bool {
    false
}

/// The tile configuration: palette 1, tiles 0..8 all 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

/// Loads the configuration on this thread once (`LDTILECFG` also zeroes the tiles).
///
/// # Safety
/// [`supported`] must be true.
#[inline]
unsafe fn configure() {
    thread_local! { static DONE: Cell<bool> = const { Cell::new(false) }; }
    if DONE.with(Cell::get) {
        return;
    }
    let mut cfg = TileConfig([0; 64]);
    cfg.0[0] = 1;
    for t in 0..8 {
        cfg.0[16 + 2 * t] = KCHUNK as u8;
        cfg.0[48 + t] = ROWS as u8;
    }
    // SAFETY: the caller guarantees AMX and the permission; `cfg` is 64 aligned bytes.
    unsafe { asm!("ldtilecfg [{0}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly)) };
    DONE.with(|d| d.set(true));
}

/// Chunks ahead of the one multiplied at which [`block`] asks for each weight row's next 64
/// bytes (256 bytes ahead).
///
/// Why: a 16-row block reads its weights as 16 streams, `lda` apart, 64 bytes each per
/// 32-cycle step, more than the hardware prefetcher follows; at batch 1 a ResNet's later
/// layers read their weights once per image from L3 or memory (ResNet50's: 23 MB). On the
/// Xeon of stop 48 at two threads (`step_times`, alternated): ResNet50's integer path 10.65-11.15
/// ms without the hints, 9.11-9.70 with them (the 1x1 convolutions of the last two stages
/// 0.21-0.25 ms each against 0.14-0.19); ResNet18's 3.53-3.92 against 3.13-3.36. One and eight
/// chunks ahead did about as well as four, or a little worse.
const PREFETCH_CHUNKS: usize = 4;

/// 64-aligned scratch for a zero-padded last chunk.
#[repr(C, align(64))]
struct Chunk([i8; ROWS * KCHUNK]);

/// `out[r * COLS + c] = sum_i a[r * lda + i] * col_c[i]` for `r < 16`, `i < k`, where columns
/// `0..16` are panel `b0` and `16..32` panel `b1` (each `[k / 4][NR][4]`; pass `b1 = b0` for a
/// single panel and ignore the right half).
///
/// # Safety
/// [`supported`] must be true; `a` must hold 16 rows of `k` codes `lda` apart, `b0` and `b1`
/// `k * NR` codes each, and `k` must be a multiple of 4.
pub unsafe fn block(
    k: usize,
    a: *const i8,
    lda: usize,
    b0: *const i8,
    b1: *const i8,
    out: &mut [i32; ROWS * COLS],
) {
    // SAFETY: the caller's contract (see `# Safety`): chunk `c < k / 64` reads
    // `a[r * lda + 64c..+64]` for `r < 16` and `b[1024c..+1024]` of each panel; the tail copies
    // stay inside the same extents; the stores write 16 rows of 32 i32 of `out`.
    unsafe {
        configure();
        asm!("tilezero tmm0", "tilezero tmm1", options(nostack, nomem));
        let whole = k / KCHUNK;
        for c in 0..whole {
            for r in 0..ROWS {
                // A hint, which never faults: the address need not be in bounds.
                let ahead = a.wrapping_add(r * lda + (c + PREFETCH_CHUNKS) * KCHUNK);
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(ahead);
            }
            step(
                a.add(c * KCHUNK),
                lda,
                b0.add(c * KCHUNK * NR),
                b1.add(c * KCHUNK * NR),
            );
        }
        let rest = k - whole * KCHUNK;
        if rest > 0 {
            let (mut at, mut bt0, mut bt1) = (
                Chunk([0; ROWS * KCHUNK]),
                Chunk([0; ROWS * KCHUNK]),
                Chunk([0; ROWS * KCHUNK]),
            );
            for r in 0..ROWS {
                let src = a.add(r * lda + whole * KCHUNK);
                std::ptr::copy_nonoverlapping(src, at.0.as_mut_ptr().add(r * KCHUNK), rest);
            }
            let off = whole * KCHUNK * NR;
            std::ptr::copy_nonoverlapping(b0.add(off), bt0.0.as_mut_ptr(), rest * NR);
            std::ptr::copy_nonoverlapping(b1.add(off), bt1.0.as_mut_ptr(), rest * NR);
            step(at.0.as_ptr(), KCHUNK, bt0.0.as_ptr(), bt1.0.as_ptr());
        }
        let o = out.as_mut_ptr();
        asm!(
            "tilestored [{c0} + {s}*1], tmm0",
            "tilestored [{c1} + {s}*1], tmm1",
            c0 = in(reg) o,
            c1 = in(reg) o.add(NR),
            s = in(reg) COLS * 4,
            options(nostack),
        );
    }
}

/// One 64-`k` step: `tmm0 += A . B0`, `tmm1 += A . B1`.
///
/// # Safety
/// As [`block`], for one chunk.
#[inline(always)]
unsafe fn step(a: *const i8, lda: usize, b0: *const i8, b1: *const i8) {
    // SAFETY: the caller guarantees AMX and 16 rows at each pointer (`lda` and 64 apart).
    unsafe {
        asm!(
            "tileloadd tmm2, [{a} + {lda}*1]",
            "tileloadd tmm4, [{b0} + {s}*1]",
            "tileloadd tmm5, [{b1} + {s}*1]",
            "tdpbssd tmm0, tmm2, tmm4",
            "tdpbssd tmm1, tmm2, tmm5",
            a = in(reg) a,
            lda = in(reg) lda,
            b0 = in(reg) b0,
            b1 = in(reg) b1,
            s = in(reg) KCHUNK,
            options(nostack, readonly),
        );
    }
}

/// [`block`] for 32 rows (`a`'s first 16 in `out[..512]`, the next 16 in `out[512..]`, each
/// `[16][32]`): four accumulator tiles, so each 64-`k` step loads two `A` and two `B` tiles for
/// four `TDPBSSD`s instead of one `A` and two `B` for two.
///
/// Why: in [`block`] the two `B` loads were about 40% of the kernel's samples on ResNet50's
/// integer path (its panels come from L2 once a 3x3 convolution's `k` passes 1,000); here each
/// `B` tile serves 32 rows.
///
/// # Safety
/// As [`block`], with 32 rows at `a`.
pub unsafe fn block32(
    k: usize,
    a: *const i8,
    lda: usize,
    b0: *const i8,
    b1: *const i8,
    out: &mut [i32; 2 * ROWS * COLS],
) {
    // SAFETY: as `block`, for rows `0..32` of `a`: chunk `c` reads `a[r * lda + 64c..+64]` for
    // `r < 32`; the stores write both halves of `out`.
    unsafe {
        configure();
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm6",
            "tilezero tmm7",
            options(nostack, nomem)
        );
        let a1 = a.add(ROWS * lda);
        let whole = k / KCHUNK;
        for c in 0..whole {
            for r in 0..2 * ROWS {
                let ahead = a.wrapping_add(r * lda + (c + PREFETCH_CHUNKS) * KCHUNK);
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(ahead);
            }
            step32(
                (a.add(c * KCHUNK), a1.add(c * KCHUNK)),
                lda,
                b0.add(c * KCHUNK * NR),
                b1.add(c * KCHUNK * NR),
            );
        }
        let rest = k - whole * KCHUNK;
        if rest > 0 {
            let (mut at0, mut at1, mut bt0, mut bt1) = (
                Chunk([0; ROWS * KCHUNK]),
                Chunk([0; ROWS * KCHUNK]),
                Chunk([0; ROWS * KCHUNK]),
                Chunk([0; ROWS * KCHUNK]),
            );
            for r in 0..ROWS {
                let off = r * lda + whole * KCHUNK;
                std::ptr::copy_nonoverlapping(a.add(off), at0.0.as_mut_ptr().add(r * KCHUNK), rest);
                std::ptr::copy_nonoverlapping(
                    a1.add(off),
                    at1.0.as_mut_ptr().add(r * KCHUNK),
                    rest,
                );
            }
            let off = whole * KCHUNK * NR;
            std::ptr::copy_nonoverlapping(b0.add(off), bt0.0.as_mut_ptr(), rest * NR);
            std::ptr::copy_nonoverlapping(b1.add(off), bt1.0.as_mut_ptr(), rest * NR);
            step32(
                (at0.0.as_ptr(), at1.0.as_ptr()),
                KCHUNK,
                bt0.0.as_ptr(),
                bt1.0.as_ptr(),
            );
        }
        let o = out.as_mut_ptr();
        asm!(
            "tilestored [{c0} + {s}*1], tmm0",
            "tilestored [{c1} + {s}*1], tmm1",
            "tilestored [{c2} + {s}*1], tmm6",
            "tilestored [{c3} + {s}*1], tmm7",
            c0 = in(reg) o,
            c1 = in(reg) o.add(NR),
            c2 = in(reg) o.add(ROWS * COLS),
            c3 = in(reg) o.add(ROWS * COLS + NR),
            s = in(reg) COLS * 4,
            options(nostack),
        );
    }
}

/// One 64-`k` step of [`block32`]: `tmm0 += A0 . B0`, `tmm1 += A0 . B1`, `tmm6 += A1 . B0`,
/// `tmm7 += A1 . B1`.
///
/// # Safety
/// As [`block32`], for one chunk.
#[inline(always)]
unsafe fn step32((a0, a1): (*const i8, *const i8), lda: usize, b0: *const i8, b1: *const i8) {
    // SAFETY: the caller guarantees AMX and 16 rows at each pointer (`lda` and 64 apart).
    unsafe {
        asm!(
            "tileloadd tmm4, [{b0} + {s}*1]",
            "tileloadd tmm5, [{b1} + {s}*1]",
            "tileloadd tmm2, [{a0} + {lda}*1]",
            "tdpbssd tmm0, tmm2, tmm4",
            "tdpbssd tmm1, tmm2, tmm5",
            "tileloadd tmm3, [{a1} + {lda}*1]",
            "tdpbssd tmm6, tmm3, tmm4",
            "tdpbssd tmm7, tmm3, tmm5",
            a0 = in(reg) a0,
            a1 = in(reg) a1,
            lda = in(reg) lda,
            b0 = in(reg) b0,
            b1 = in(reg) b1,
            s = in(reg) KCHUNK,
            options(nostack, readonly),
        );
    }
}

/// The `MR x NR` tile of `int8.rs`'s contract through one AMX block (its rows copied into a
/// 16-row buffer): what the kernel tests and single-tile callers get. The GEMM calls [`block`]
/// directly on whole 16-row blocks.
///
/// # Safety
/// [`supported`] must be true; the extents of `int8::check_extents`.
pub unsafe fn tile(k: usize, a: *const i8, lda: usize, b: *const i8, out: &mut [i32; MR * NR]) {
    let mut rows = vec![0i8; ROWS * k.max(1)];
    for r in 0..MR {
        // SAFETY: the caller guarantees `MR` rows of `k` codes `lda` apart.
        unsafe { std::ptr::copy_nonoverlapping(a.add(r * lda), rows.as_mut_ptr().add(r * k), k) };
    }
    let mut acc = [0i32; ROWS * COLS];
    // SAFETY: `rows` holds 16 rows of `k`; the caller guarantees AMX and the panel.
    unsafe { block(k, rows.as_ptr(), k.max(1), b, b, &mut acc) };
    for (dst, src) in out.chunks_exact_mut(NR).zip(acc.chunks_exact(COLS)) {
        dst.copy_from_slice(&src[..NR]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::int8::{pack_b, tile_portable};
    use super::*;

    /// A whole 16 x 32 block (two different panels, every `k` tail against 64, extreme codes
    /// included) equals the portable loop on each 6-row, one-panel piece, bit for bit; only where
    /// the CPU has AMX (and Linux grants it).
    #[test]
    fn a_block_is_the_portable_tiles() {
        if !supported() {
            // As the other kernel tests, only the paths this CPU has; said in the log.
            eprintln!("int8_amx: no AMX-INT8 here (or Linux refused the tile state): not run");
            return;
        }
        let mut next = super::super::int8::tests::lcg(9);
        for k in [0usize, 4, 60, 64, 68, 128, 576, 1000] {
            let lda = k + 8;
            let mut a: Vec<i8> = (0..(ROWS + MR) * lda).map(|_| next()).collect();
            a[..k].fill(-128);
            let cols: Vec<Vec<i8>> = (0..2)
                .map(|_| (0..k * NR).map(|_| next()).collect())
                .collect();
            let (b0, b1) = (pack_b(k, &cols[0]), pack_b(k, &cols[1]));
            let mut got = [0i32; ROWS * COLS];
            // SAFETY: AMX is supported; `a` has 16 rows of `k` codes `lda` apart, each panel `k * NR`.
            unsafe { block(k, a.as_ptr(), lda, b0.as_ptr(), b1.as_ptr(), &mut got) };
            // The 32-row block: its first half the 16-row block's, its second the next rows'.
            let mut a32: Vec<i8> = (0..2 * ROWS * lda).map(|_| next()).collect();
            a32[..ROWS * lda].copy_from_slice(&a[..ROWS * lda]);
            let mut got32 = [0i32; 2 * ROWS * COLS];
            // SAFETY: as above, 32 rows.
            unsafe { block32(k, a32.as_ptr(), lda, b0.as_ptr(), b1.as_ptr(), &mut got32) };
            assert_eq!(
                &got32[..ROWS * COLS],
                &got[..],
                "k {k}: 32-row block, first half"
            );
            let mut second = [0i32; ROWS * COLS];
            // SAFETY: as above, rows 16..32 of `a32`.
            unsafe {
                block(
                    k,
                    a32.as_ptr().add(ROWS * lda),
                    lda,
                    b0.as_ptr(),
                    b1.as_ptr(),
                    &mut second,
                )
            };
            assert_eq!(
                &got32[ROWS * COLS..],
                &second[..],
                "k {k}: 32-row block, second half"
            );
            for (h, b) in [&b0, &b1].into_iter().enumerate() {
                for r0 in (0..ROWS).step_by(MR) {
                    let mut want = [0i32; MR * NR];
                    tile_portable(k, &a[r0 * lda..], lda, b, &mut want);
                    for r in 0..MR.min(ROWS - r0) {
                        assert_eq!(
                            &got[(r0 + r) * COLS + h * NR..][..NR],
                            &want[r * NR..][..NR],
                            "k {k}, row {}, panel {h}",
                            r0 + r
                        );
                    }
                }
            }
        }
    }
}
