// The elementwise ops left after fusion: `a + b` (a residual add not fused into a convolution)
// and ReLU, over a batch of `len`-float values. Flags: bit 0 ReLU, bit 1 add `b`, bit 2 `b` is
// one `len`-float parameter shared by every image (a position embedding).

struct Elementwise {
    len: u32,
    flags: u32,
}

struct Batch {
    n: u32,
}

@group(0) @binding(0) var<uniform> p: Elementwise;
@group(0) @binding(1) var<uniform> batch: Batch;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = id.x + id.y * nw.x * 256u;
    if (i >= batch.n * p.len) {
        return;
    }
    var v = a[i];
    if ((p.flags & 2u) != 0u) {
        v += b[select(i, i % p.len, (p.flags & 4u) != 0u)];
    }
    if ((p.flags & 1u) != 0u) {
        v = max(v, 0.0);
    }
    output[i] = v;
}
