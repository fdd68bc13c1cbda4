//! aarch64 integer micro-kernels over the layout of `int8.rs` (`B` packed `[k / 4][NR][4]`).
//!
//! - `tile_sdot` (dot-product extension): the 6x16 tile in 24 q-register accumulators; per group
//!   of 4 `k`, 4 loads of `B` (16 columns x 4 bytes) and, per row, one broadcast load of the
//!   row's 4 weight bytes (`LD1R`) and 4 `SDOT`s (64 multiply-adds). Written with `asm!` because
//!   the `vdotq_s32` intrinsic is still unstable (`stdarch_neon_dotprod`) on our stable toolchain
//!   (rustc 1.95).
//! - `tile_smlal` (plain NEON, for cores without the extension): one row at a time, 16
//!   accumulators (one per column, holding the 4 partial sums of `k mod 4`); `B` and the row's
//!   4 weights are widened to i16 (`SXTL`) and multiplied-accumulated long into i32 (`SMLAL`,
//!   `SMLAL2`), exact for every i8 pair; the 4 partial sums are added pairwise (`ADDP`) at the end.
//!
//! Integer sums are associative (modulo 2^32), so both equal the portable loop bit for bit.

use std::arch::aarch64::*;

use super::int8::{KGROUP, MR, NR};

/// A row's 4 weight codes of one group, as one 32-bit value (any alignment).
///
/// # Safety
/// `p` must be valid for reading 4 bytes.
#[inline(always)]
unsafe fn load4(p: *const i8) -> i32 {
    // SAFETY: the caller guarantees 4 readable bytes; `read_unaligned` needs no alignment.
    unsafe { p.cast::<i32>().read_unaligned() }
}

/// # Safety
/// The CPU must have the dot-product extension; `a` must hold `MR` rows of `k` codes `lda` apart,
/// `b` `k * NR` codes packed `[k / 4][NR][4]`, and `k` must be a multiple of 4.
#[target_feature(enable = "dotprod")]
pub unsafe fn tile_sdot(
    k: usize,
    a: *const i8,
    lda: usize,
    b: *const i8,
    out: &mut [i32; MR * NR],
) {
    // The whole loop is one `asm!` block with the 24 accumulators pinned to v8..v31: written
    // with one block per row, LLVM shuffled the accumulators between registers and the stack
    // on every iteration (~30 extra moves per 24 SDOTs, seen in the disassembly).
    let z = vdupq_n_s32(0);
    let mut c = [z; MR * 4];
    let groups = k / KGROUP;
    if groups > 0 {
        let [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, c20, c21, c22, c23] =
            &mut c;
        // SAFETY: the caller guarantees the CPU feature and the extents (see `# Safety`): the
        // loop runs `k / 4` times, each reading 64 bytes of `b` and 4 bytes of each row `r < MR`
        // at `a + r * lda + 4g`, all inside the panels; it writes only the registers it names.
        unsafe {
            std::arch::asm!(
                "2:",
                "ldp q0, q1, [{b}], #32",
                "ldp q2, q3, [{b}], #32",
                "ld1r {{v4.4s}}, [{a0}], #4",
                "ld1r {{v5.4s}}, [{a1}], #4",
                "ld1r {{v6.4s}}, [{a2}], #4",
                "ld1r {{v7.4s}}, [{a3}], #4",
                "sdot v8.4s, v0.16b, v4.16b",
                "sdot v9.4s, v1.16b, v4.16b",
                "sdot v10.4s, v2.16b, v4.16b",
                "sdot v11.4s, v3.16b, v4.16b",
                "sdot v12.4s, v0.16b, v5.16b",
                "sdot v13.4s, v1.16b, v5.16b",
                "sdot v14.4s, v2.16b, v5.16b",
                "sdot v15.4s, v3.16b, v5.16b",
                "ld1r {{v4.4s}}, [{a4}], #4",
                "ld1r {{v5.4s}}, [{a5}], #4",
                "sdot v16.4s, v0.16b, v6.16b",
                "sdot v17.4s, v1.16b, v6.16b",
                "sdot v18.4s, v2.16b, v6.16b",
                "sdot v19.4s, v3.16b, v6.16b",
                "sdot v20.4s, v0.16b, v7.16b",
                "sdot v21.4s, v1.16b, v7.16b",
                "sdot v22.4s, v2.16b, v7.16b",
                "sdot v23.4s, v3.16b, v7.16b",
                "sdot v24.4s, v0.16b, v4.16b",
                "sdot v25.4s, v1.16b, v4.16b",
                "sdot v26.4s, v2.16b, v4.16b",
                "sdot v27.4s, v3.16b, v4.16b",
                "sdot v28.4s, v0.16b, v5.16b",
                "sdot v29.4s, v1.16b, v5.16b",
                "sdot v30.4s, v2.16b, v5.16b",
                "sdot v31.4s, v3.16b, v5.16b",
                "subs {n}, {n}, #1",
                "b.ne 2b",
                b = inout(reg) b => _,
                a0 = inout(reg) a => _,
                a1 = inout(reg) a.add(lda) => _,
                a2 = inout(reg) a.add(2 * lda) => _,
                a3 = inout(reg) a.add(3 * lda) => _,
                a4 = inout(reg) a.add(4 * lda) => _,
                a5 = inout(reg) a.add(5 * lda) => _,
                n = inout(reg) groups => _,
                out("v0") _, out("v1") _, out("v2") _, out("v3") _,
                out("v4") _, out("v5") _, out("v6") _, out("v7") _,
                inout("v8") *c0, inout("v9") *c1, inout("v10") *c2, inout("v11") *c3,
                inout("v12") *c4, inout("v13") *c5, inout("v14") *c6, inout("v15") *c7,
                inout("v16") *c8, inout("v17") *c9, inout("v18") *c10, inout("v19") *c11,
                inout("v20") *c12, inout("v21") *c13, inout("v22") *c14, inout("v23") *c15,
                inout("v24") *c16, inout("v25") *c17, inout("v26") *c18, inout("v27") *c19,
                inout("v28") *c20, inout("v29") *c21, inout("v30") *c22, inout("v31") *c23,
                options(readonly, nostack),
            );
        }
    }
    let o = out.as_mut_ptr();
    for (j, v) in c.iter().enumerate() {
        // SAFETY: accumulator `j` is row `j / 4`, columns `4 (j % 4)..+4`: `out[4j..4j + 4]`,
        // inside the `MR * NR` tile.
        unsafe { vst1q_s32(o.add(4 * j), *v) };
    }
}

/// # Safety
/// `a` must hold `MR` rows of `k` codes `lda` apart, `b` `k * NR` codes packed `[k / 4][NR][4]`,
/// and `k` must be a multiple of 4 (NEON is baseline on aarch64).
pub unsafe fn tile_smlal(
    k: usize,
    a: *const i8,
    lda: usize,
    b: *const i8,
    out: &mut [i32; MR * NR],
) {
    // SAFETY: the caller guarantees the extents (see `# Safety`): for row `r < MR` and group
    // `g < k / 4` the loads read `a[r * lda + 4g..+4]` and `b[g * 64..g * 64 + 64]`, and the
    // stores write `out[r * NR + 4j..+4]` for `j < 4`.
    unsafe {
        let o = out.as_mut_ptr();
        for r in 0..MR {
            // acc[c] lane l: the sum over groups of a[4g + l] * B[4g + l][c].
            let mut acc = [vdupq_n_s32(0); NR];
            for g in 0..k / KGROUP {
                let w = vreinterpret_s8_s32(vdup_n_s32(load4(a.add(r * lda + g * KGROUP))));
                // The row's 4 codes twice, as i16: [w0 w1 w2 w3 w0 w1 w2 w3].
                let w16 = vmovl_s8(w);
                let w_lo = vget_low_s16(w16);
                let bp = b.add(g * NR * KGROUP);
                for (j, quad) in acc.chunks_exact_mut(4).enumerate() {
                    // Columns 4j..4j+4, 4 codes each.
                    let bq = vld1q_s8(bp.add(16 * j));
                    let lo = vmovl_s8(vget_low_s8(bq));
                    let hi = vmovl_high_s8(bq);
                    quad[0] = vmlal_s16(quad[0], vget_low_s16(lo), w_lo);
                    quad[1] = vmlal_high_s16(quad[1], lo, w16);
                    quad[2] = vmlal_s16(quad[2], vget_low_s16(hi), w_lo);
                    quad[3] = vmlal_high_s16(quad[3], hi, w16);
                }
            }
            for (j, quad) in acc.chunks_exact(4).enumerate() {
                let p01 = vpaddq_s32(quad[0], quad[1]);
                let p23 = vpaddq_s32(quad[2], quad[3]);
                vst1q_s32(o.add(r * NR + 4 * j), vpaddq_s32(p01, p23));
            }
        }
    }
}
