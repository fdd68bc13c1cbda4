// Every code of a packed layer as a signed integer (after unpack.wgsl): out[r * cols + k]. Not part
// of a forward pass; it lets the tests check the GPU's bit unpacking exactly against the CPU's.

struct Dims {
    rows: u32,
    cols: u32,
}

@group(0) @binding(0) var<uniform> d: Dims;
@group(0) @binding(1) var<storage, read_write> codes: array<i32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let k = id.x;
    let r = id.y;
    if (k >= d.cols || r >= d.rows) {
        return;
    }
    codes[r * d.cols + k] = code(rows[r], k);
}
