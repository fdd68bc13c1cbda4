// Bit unpacking shared by the GEMM kernels (prepended to their source by the runtime).
//
// A packed row of width b (2..=8) is a little-endian bit stream with code k at bits [k*b, k*b+b)
// from the row's first bit (docs/FORMAT.md: chunks of 8 codes in b bytes, so the stream is
// contiguous); codes are offset binary, q + 2^(b-1). Rows are not aligned, so each row is addressed
// by its first *bit* in the layer's word array. A width of 32 marks an unquantized f32 row (an FP32
// export): one word per weight. Word arrays carry two spare words so windows never read past them.
//
// Every kernel that includes this file binds the layer's weights at group 0, bindings 2 and 3.

struct Row {
    // First bit of the row in `words`.
    bit: u32,
    // 2..=8, or 32 for f32 weights.
    bits: u32,
    scale: f32,
    bias: f32,
}

@group(0) @binding(2) var<storage, read> words: array<u32>;
@group(0) @binding(3) var<storage, read> rows: array<Row>;

// The 32 bits of `words` starting at bit address `a`.
fn window(a: u32) -> u32 {
    let i = a >> 5u;
    let sh = a & 31u;
    let lo = words[i] >> sh;
    let hi = select(0u, words[i + 1u] << (32u - sh), sh != 0u);
    return lo | hi;
}

// Code `k` of a packed row as a signed integer.
fn code(row: Row, k: u32) -> i32 {
    let v = extractBits(window(row.bit + k * row.bits), 0u, row.bits);
    return i32(v) - (1i << (row.bits - 1u));
}

// Weights `k .. k + 4` of a row as floats (codes for packed rows, values for f32 rows); those at
// or past `kmax` are zero. Four codes of at most 8 bits fit one 32-bit window.
fn weights4(row: Row, k: u32, kmax: u32) -> vec4<f32> {
    var r = vec4<f32>(0.0);
    if (row.bits == 32u) {
        let w = row.bit >> 5u;
        for (var i = 0u; i < 4u; i++) {
            if (k + i < kmax) {
                r[i] = bitcast<f32>(words[w + k + i]);
            }
        }
        return r;
    }
    let win = window(row.bit + k * row.bits);
    let off = 1i << (row.bits - 1u);
    for (var i = 0u; i < 4u; i++) {
        if (k + i < kmax) {
            r[i] = f32(i32(extractBits(win, i * row.bits, row.bits)) - off);
        }
    }
    return r;
}

// One weight as a float.
fn weight1(row: Row, k: u32) -> f32 {
    if (row.bits == 32u) {
        return bitcast<f32>(words[(row.bit >> 5u) + k]);
    }
    return f32(code(row, k));
}

// Bits [s, s + n) of the 64-bit value hi:lo (n <= 8, s + n <= 64).
fn field64(lo: u32, hi: u32, s: u32, n: u32) -> u32 {
    if (s >= 32u) {
        return extractBits(hi, s - 32u, n);
    }
    if (s == 0u) {
        return extractBits(lo, 0u, n);
    }
    // Straddles the two words when s + n > 32 (32 - s is in 1..=31 here).
    return extractBits((lo >> s) | (hi << (32u - s)), 0u, n);
}

// Weights `k .. k + 8` of a row as two vec4s of floats (codes for packed rows, values for f32
// rows); those at or past `kmax` are zero. Eight codes of at most 8 bits lie in one 64-bit window,
// read once from three consecutive words (the word array's two spare words keep the last row's
// window in bounds), so a tile step unpacks its codes with a third fewer loads than two
// `weights4` calls.
fn weights8(row: Row, k: u32, kmax: u32) -> array<vec4<f32>, 2> {
    var r = array<vec4<f32>, 2>(vec4<f32>(0.0), vec4<f32>(0.0));
    if (k >= kmax) {
        return r;
    }
    let live0 = vec4<bool>(k < kmax, k + 1u < kmax, k + 2u < kmax, k + 3u < kmax);
    let live1 = vec4<bool>(k + 4u < kmax, k + 5u < kmax, k + 6u < kmax, k + 7u < kmax);
    if (row.bits == 32u) {
        let w = (row.bit >> 5u) + k;
        for (var i = 0u; i < 8u; i++) {
            if (k + i < kmax) {
                r[i / 4u][i % 4u] = bitcast<f32>(words[w + i]);
            }
        }
        return r;
    }
    let a = row.bit + k * row.bits;
    let i = a >> 5u;
    let sh = a & 31u;
    let w0 = words[i];
    let w1 = words[i + 1u];
    let w2 = words[i + 2u];
    let lo = select(w0, (w0 >> sh) | (w1 << (32u - sh)), sh != 0u);
    let hi = select(w1, (w1 >> sh) | (w2 << (32u - sh)), sh != 0u);
    let n = row.bits;
    let off = vec4<i32>(1i << (n - 1u));
    let q0 = vec4<i32>(
        i32(field64(lo, hi, 0u, n)),
        i32(field64(lo, hi, n, n)),
        i32(field64(lo, hi, 2u * n, n)),
        i32(field64(lo, hi, 3u * n, n)),
    );
    let q1 = vec4<i32>(
        i32(field64(lo, hi, 4u * n, n)),
        i32(field64(lo, hi, 5u * n, n)),
        i32(field64(lo, hi, 6u * n, n)),
        i32(field64(lo, hi, 7u * n, n)),
    );
    r[0] = select(vec4<f32>(0.0), vec4<f32>(q0 - off), live0);
    r[1] = select(vec4<f32>(0.0), vec4<f32>(q1 - off), live1);
    return r;
}
