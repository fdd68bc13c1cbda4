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
