// Mean of each channel plane, [N,C,H*W] -> [N,C]; one thread per plane, summed in order as on the
// CPU so that both give the same float.

struct Avg {
    c: u32,
    hw: u32,
}

struct Batch {
    n: u32,
}

@group(0) @binding(0) var<uniform> p: Avg;
@group(0) @binding(1) var<uniform> batch: Batch;
@group(0) @binding(2) var<storage, read> input: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = id.x + id.y * nw.x * 64u;
    if (i >= batch.n * p.c) {
        return;
    }
    var sum = 0.0;
    let base = i * p.hw;
    for (var k = 0u; k < p.hw; k++) {
        sum += input[base + k];
    }
    output[i] = select(0.0, sum / f32(p.hw), p.hw > 0u);
}
