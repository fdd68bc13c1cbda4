// Max pooling of a batch of [C,H,W] planes with PyTorch's semantics: padding never wins (windows
// are clipped to the input; validation guarantees every window overlaps it). One thread per output.

struct Pool {
    c: u32,
    h: u32,
    w: u32,
    ho: u32,
    wo: u32,
    kernel: u32,
    stride: u32,
    padding: u32,
}

struct Batch {
    n: u32,
}

@group(0) @binding(0) var<uniform> p: Pool;
@group(0) @binding(1) var<uniform> batch: Batch;
@group(0) @binding(2) var<storage, read> input: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = id.x + id.y * nw.x * 256u;
    if (i >= batch.n * p.c * p.ho * p.wo) {
        return;
    }
    let plane = i / (p.ho * p.wo);
    let r = i - plane * p.ho * p.wo;
    let oy = r / p.wo;
    let ox = r - oy * p.wo;
    let y0 = max(i32(oy * p.stride) - i32(p.padding), 0);
    let y1 = min(i32(oy * p.stride + p.kernel) - i32(p.padding), i32(p.h));
    let x0 = max(i32(ox * p.stride) - i32(p.padding), 0);
    let x1 = min(i32(ox * p.stride + p.kernel) - i32(p.padding), i32(p.w));
    let base = plane * p.h * p.w;
    // -f32::MAX exactly, as a hex literal: Tint (WebGPU in Chromium) refuses the decimal
    // -3.40282347e38 as out of f32 range, naga rounds it.
    var m = -0x1.fffffep+127f;
    var any = false;
    for (var y = y0; y < y1; y++) {
        for (var x = x0; x < x1; x++) {
            let v = input[base + u32(y) * p.w + u32(x)];
            if (!any || v > m) {
                m = v;
            }
            any = true;
        }
    }
    output[i] = m;
}
