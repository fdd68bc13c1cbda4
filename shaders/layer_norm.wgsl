// Layer norm over the last axis: each of the batch's `rows` rows of `d` features becomes
// (x - mean) / sqrt(var + eps) * gamma + beta, with the biased variance. One 64-thread workgroup
// per row: strided partial sums reduced in workgroup memory, two passes (the mean, then the
// squared deviations from it) as on the CPU, which avoids the cancellation of E[x^2] - E[x]^2.

struct LayerNorm {
    // Rows per image and features per row.
    rows: u32,
    d: u32,
    eps: f32,
}

struct Batch {
    n: u32,
}

@group(0) @binding(0) var<uniform> p: LayerNorm;
@group(0) @binding(1) var<uniform> batch: Batch;
@group(0) @binding(2) var<storage, read> input: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> output: array<f32>;

const WG: u32 = 64u;

var<workgroup> partial: array<f32, 64>;

// The sum of every thread's `v` (all threads get it).
fn reduce(t: u32, v: f32) -> f32 {
    partial[t] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (t < s) {
            partial[t] += partial[t + s];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nw: vec3<u32>,
) {
    let row = wid.x + wid.y * nw.x;
    // Uniform across the workgroup, so every thread reaches the barriers or none does.
    if (row >= batch.n * p.rows) {
        return;
    }
    let base = row * p.d;
    var s = 0.0;
    for (var i = t; i < p.d; i += WG) {
        s += input[base + i];
    }
    let mean = reduce(t, s) / f32(p.d);
    var q = 0.0;
    for (var i = t; i < p.d; i += WG) {
        let x = input[base + i] - mean;
        q += x * x;
    }
    let inv = inverseSqrt(reduce(t, q) / f32(p.d) + p.eps);
    for (var i = t; i < p.d; i += WG) {
        output[base + i] = (input[base + i] - mean) * inv * gamma[i] + beta[i];
    }
}
