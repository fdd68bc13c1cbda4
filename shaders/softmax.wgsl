// Softmax of each image's logits, on the GPU so a forward pass reads back its probabilities with
// its logits in one copy. The maximum is subtracted first (stable); one thread per image, since a
// classifier has few classes.

struct Softmax {
    classes: u32,
}

struct Batch {
    n: u32,
}

@group(0) @binding(0) var<uniform> p: Softmax;
@group(0) @binding(1) var<uniform> batch: Batch;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read_write> probs: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let img = id.x;
    if (img >= batch.n) {
        return;
    }
    let base = img * p.classes;
    // -f32::MAX exactly, as a hex literal: Tint (WebGPU in Chromium) refuses the decimal
    // -3.40282347e38 as out of f32 range, naga rounds it.
    var m = -0x1.fffffep+127f;
    for (var c = 0u; c < p.classes; c++) {
        m = max(m, logits[base + c]);
    }
    var sum = 0.0;
    for (var c = 0u; c < p.classes; c++) {
        let e = exp(logits[base + c] - m);
        probs[base + c] = e;
        sum += e;
    }
    for (var c = 0u; c < p.classes; c++) {
        probs[base + c] = probs[base + c] / sum;
    }
}
