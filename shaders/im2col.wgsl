// Implicit im2col shared by the GEMM kernels (prepended to their source by the runtime): the
// right-hand matrix B[k][j] of a convolution is read straight from the NCHW input, never built.
//
// Row k of B is an input tap (c, ky, kx) of the group, column j an output pixel (image, oy, ox)
// of the batch. A Linear layer is the same with a 1x1 input, kernel 1 and c_in = K. A Linear on
// tokens (flag bit 2) has one column per (image, token), `ho` = tokens and `wo` = 1: column j reads
// the K features of token row j of the batch's `[N*L, K]` input and writes row j of the
// `[N*L, c_out]` output, token-major as the CPU does.

struct Gemm {
    // Output channels per group (rows of the product) and taps per output (K).
    m: u32,
    k: u32,
    // Input channels (all groups), height and width; input channels per group.
    c_in: u32,
    h: u32,
    w: u32,
    c_group: u32,
    // Output channels (all groups), height and width.
    c_out: u32,
    ho: u32,
    wo: u32,
    kernel: u32,
    stride: u32,
    padding: u32,
    // Bit 0: ReLU; bit 1: add the residual before it; bit 2: token-major input and output.
    flags: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Images in this forward pass.
struct Batch {
    n: u32,
}

@group(0) @binding(0) var<uniform> p: Gemm;
@group(0) @binding(1) var<uniform> batch: Batch;
@group(0) @binding(4) var<storage, read> input: array<f32>;
@group(0) @binding(5) var<storage, read> residual: array<f32>;
@group(0) @binding(6) var<storage, read_write> output: array<f32>;

// Where column j reads from: its image's first input of the group, and the top-left input
// coordinate of its window (may be negative: padding). `valid` is false past the last column.
struct Column {
    base: u32,
    y0: i32,
    x0: i32,
    valid: bool,
}

fn column(j: u32, group: u32) -> Column {
    var col: Column;
    let pixels = p.ho * p.wo;
    col.valid = j < batch.n * pixels;
    let img = select(0u, j / pixels, col.valid);
    let pix = j - img * pixels;
    let oy = pix / p.wo;
    let ox = pix - oy * p.wo;
    col.base = (img * p.c_in + group * p.c_group) * p.h * p.w;
    col.y0 = i32(oy * p.stride) - i32(p.padding);
    col.x0 = i32(ox * p.stride) - i32(p.padding);
    if ((p.flags & 4u) != 0u) {
        // Token rows are contiguous: column j starts at row j (h = w = kernel = 1).
        col.base = select(0u, j, col.valid) * p.c_in;
        col.y0 = 0;
        col.x0 = 0;
    }
    return col;
}

// Tap k of the group: its channel/row/column offset within an image, and its kernel position.
struct Tap {
    off: u32,
    ky: i32,
    kx: i32,
    valid: bool,
}

fn tap_of(k: u32) -> Tap {
    let kk = p.kernel * p.kernel;
    let c = k / kk;
    let r = k - c * kk;
    let ky = r / p.kernel;
    let kx = r - ky * p.kernel;
    var t: Tap;
    t.valid = k < p.k;
    t.off = (c * p.h + ky) * p.w + kx;
    t.ky = i32(ky);
    t.kx = i32(kx);
    return t;
}

// B[k][j] for the column `col` at tap `t`; zero in the padding and past the last tap or column.
fn gather(col: Column, t: Tap) -> f32 {
    let y = col.y0 + t.ky;
    let x = col.x0 + t.kx;
    if (!col.valid || !t.valid || y < 0 || x < 0 || y >= i32(p.h) || x >= i32(p.w)) {
        return 0.0;
    }
    return input[u32(i32(col.base + t.off) + col.y0 * i32(p.w) + col.x0)];
}

fn tap(col: Column, k: u32) -> f32 {
    return gather(col, tap_of(k));
}

// Writes one result through the fused epilogue: scale, bias, residual, ReLU. `o` is the row in
// the group, `j` the column.
fn store(o: u32, j: u32, group: u32, sum: f32) {
    let pixels = p.ho * p.wo;
    if (o >= p.m || j >= batch.n * pixels) {
        return;
    }
    let oc = group * p.m + o;
    let row = rows[oc];
    let img = j / pixels;
    var at = (img * p.c_out + oc) * pixels + (j - img * pixels);
    if ((p.flags & 4u) != 0u) {
        at = j * p.c_out + oc;
    }
    var v = sum * row.scale + row.bias;
    if ((p.flags & 2u) != 0u) {
        v += residual[at];
    }
    if ((p.flags & 1u) != 0u) {
        v = max(v, 0.0);
    }
    output[at] = v;
}
