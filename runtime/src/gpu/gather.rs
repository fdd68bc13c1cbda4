//! The index maps of `shaders/gather.wgsl`, made once at load: for each output element of one
//! image, where it comes from. One kernel then runs every token reshape of DeiT and TinyViT
//! (the CPU's loops in [`crate::exec::tokens`]), and batched images share the map.

use fq_models::windows;

/// Output element is zero (window padding).
pub const ZERO: u32 = u32::MAX;
/// Bit set: the offset is into the step's shared parameter (the class token), not the input.
pub const EXTRA: u32 = 1 << 31;

/// Why a map cannot be made: offsets must stay below [`EXTRA`].
fn offset(i: usize) -> Result<u32, String> {
    u32::try_from(i)
        .ok()
        .filter(|&v| v < EXTRA)
        .ok_or_else(|| format!("a token value of {i} floats is too large for the GPU gather"))
}

/// `[C, HW] -> [HW, C]` (and, with the arguments swapped, ToChw's `[L, C] -> [C, L]`).
pub fn transpose(rows: usize, cols: usize) -> Result<Vec<u32>, String> {
    offset(rows * cols)?;
    let mut map = vec![0u32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            map[c * rows + r] = (r * cols + c) as u32;
        }
    }
    Ok(map)
}

/// Row `index` of `[L, d]`.
pub fn take_token(index: usize, d: usize) -> Result<Vec<u32>, String> {
    offset((index + 1) * d)?;
    Ok((0..d).map(|i| (index * d + i) as u32).collect())
}

/// `[L, d]` with the shared `[d]` class token in front.
pub fn class_token(l: usize, d: usize) -> Result<Vec<u32>, String> {
    offset((l + 1) * d)?;
    Ok((0..d)
        .map(|i| EXTRA | i as u32)
        .chain((0..l * d).map(|j| j as u32))
        .collect())
}

/// Grid position `(row, column)` of token `t` of the window-ordered sequence (as
/// `exec::tokens::window_partition` orders them).
fn window_pixel(t: usize, nw: usize, ws: usize) -> (usize, usize) {
    let (win, pos) = (t / (ws * ws), t % (ws * ws));
    let (wy, wx) = (win / nw, win % nw);
    (wy * ws + pos / ws, wx * ws + pos % ws)
}

/// `[H*W, C]` to zero-padded `ws x ws` windows, window by window.
pub fn window_partition(h: usize, w: usize, c: usize, ws: usize) -> Result<Vec<u32>, String> {
    let (nh, nw) = (windows(h, ws), windows(w, ws));
    let tokens = nh * nw * ws * ws;
    offset(tokens.max(h * w) * c)?;
    let mut map = vec![ZERO; tokens * c];
    for (t, dst) in map.chunks_exact_mut(c.max(1)).enumerate() {
        let (y, x) = window_pixel(t, nw, ws);
        if y < h && x < w {
            for (i, m) in dst.iter_mut().enumerate() {
                *m = ((y * w + x) * c + i) as u32;
            }
        }
    }
    Ok(map)
}

/// The inverse of [`window_partition`], dropping the padding.
pub fn window_reverse(h: usize, w: usize, c: usize, ws: usize) -> Result<Vec<u32>, String> {
    let (nh, nw) = (windows(h, ws), windows(w, ws));
    let tokens = nh * nw * ws * ws;
    offset(tokens.max(h * w) * c)?;
    let mut map = vec![0u32; h * w * c];
    for t in 0..tokens {
        let (y, x) = window_pixel(t, nw, ws);
        if y < h && x < w {
            for i in 0..c {
                map[(y * w + x) * c + i] = (t * c + i) as u32;
            }
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::tokens;

    /// Applies a map on the host, as the shader does.
    fn apply(map: &[u32], input: &[f32], extra: &[f32]) -> Vec<f32> {
        map.iter()
            .map(|&m| match m {
                ZERO => 0.0,
                m if m & EXTRA != 0 => extra[(m & !EXTRA) as usize],
                m => input[m as usize],
            })
            .collect()
    }

    #[test]
    fn maps_reproduce_the_cpu_reshapes() {
        let x: Vec<f32> = (0..5 * 7 * 3).map(|i| i as f32 + 1.0).collect();
        let (h, w, c) = (5, 7, 3);
        assert_eq!(
            apply(&transpose(c, h * w).unwrap(), &x, &[]),
            tokens::transpose(&x, c, h * w)
        );
        for ws in [1, 2, 3, 5, 8] {
            let part = tokens::window_partition(&x, h, w, c, ws);
            assert_eq!(
                apply(&window_partition(h, w, c, ws).unwrap(), &x, &[]),
                part
            );
            assert_eq!(
                apply(&window_reverse(h, w, c, ws).unwrap(), &part, &[]),
                tokens::window_reverse(&part, h, w, c, ws)
            );
        }
        let tok = [-1.0, -2.0, -3.0];
        assert_eq!(
            apply(&class_token(h * w, c).unwrap(), &x, &tok),
            tokens::class_token(&x, &tok)
        );
        assert_eq!(apply(&take_token(4, c).unwrap(), &x, &[]), x[12..15]);
    }
}
