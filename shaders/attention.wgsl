// Multi-head attention from the fused qkv `[L, heads*(2kd+vd)]` to `[L, heads*vd]`, batched over
// images: one thread per (image, query token, head). Tokens attend within consecutive groups of
// `g` (TinyViT's windows; g = L for DeiT). The thread computes its scores q.k * kd^-0.5 (+ the
// learned bias of the key's offset), finds their maximum, then sums exp(s - max) and the weighted
// values in key order and divides once, as the CPU kernel does. Scores are recomputed rather than
// stored, so no group size is too large; values are accumulated 64 features at a time.

struct Attention {
    // Tokens per image, heads, key and value features per head, fused qkv features per token.
    l: u32,
    heads: u32,
    kd: u32,
    vd: u32,
    f: u32,
    // Tokens per group.
    g: u32,
    // 0: q|k|v each over all heads (DeiT); 1: per head q|k|v (TinyViT).
    qkv_order: u32,
    // Window side of the bias table (0: no biases).
    ws: u32,
    scale: f32,
}

struct Batch {
    n: u32,
}

@group(0) @binding(0) var<uniform> p: Attention;
@group(0) @binding(1) var<uniform> batch: Batch;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<storage, read> biases: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

const CHUNK: u32 = 64u;

// Offset of q, k or v (part 0, 1, 2) of `head` in a fused qkv row; a head's features follow.
fn col(part: u32, head: u32) -> u32 {
    if (p.qkv_order == 0u) {
        return part * p.heads * p.kd + head * p.kd;
    }
    return head * (2u * p.kd + p.vd) + part * p.kd;
}

fn absdiff(a: u32, b: u32) -> u32 {
    return max(a, b) - min(a, b);
}

// Score of the query at `q` (its q features) against the key at `k` (its k features); `b` is the
// key's bias-table column.
fn score(q: u32, k: u32, b: u32) -> f32 {
    var dot = 0.0;
    for (var i = 0u; i < p.kd; i++) {
        dot += qkv[q + i] * qkv[k + i];
    }
    var s = dot * p.scale;
    if (p.ws > 0u) {
        s += biases[b];
    }
    return s;
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let t = id.x + id.y * nw.x * 64u;
    if (t >= batch.n * p.l * p.heads) {
        return;
    }
    let head = t % p.heads;
    let tok = t / p.heads;
    let img = tok / p.l;
    let qt = tok - img * p.l;
    let qi = qt % p.g;
    // First row of the query's group; the query's position in its window.
    let grp0 = img * p.l + qt - qi;
    let ws = max(p.ws, 1u);
    let qy = qi / ws;
    let qx = qi - qy * ws;
    let table = head * p.ws * p.ws;
    let q = (img * p.l + qt) * p.f + col(0u, head);
    let koff = col(1u, head);
    let voff = col(2u, head);
    // Pass 1: the largest score. The key's window position (ky, kx) is stepped, not divided.
    // -f32::MAX exactly, as a hex literal: Tint (WebGPU in Chromium) refuses the decimal
    // -3.40282347e38 as out of f32 range, naga rounds it.
    var m = -0x1.fffffep+127f;
    var ky = 0u;
    var kx = 0u;
    for (var kj = 0u; kj < p.g; kj++) {
        let b = table + absdiff(qy, ky) * ws + absdiff(qx, kx);
        m = max(m, score(q, (grp0 + kj) * p.f + koff, b));
        kx += 1u;
        if (kx == ws) {
            kx = 0u;
            ky += 1u;
        }
    }
    let out = (img * p.l + qt) * p.heads * p.vd + head * p.vd;
    // Pass 2, per 64 value features: exp(s - max), their sum and the weighted values in key
    // order, divided once at the end.
    for (var v0 = 0u; v0 < p.vd; v0 += CHUNK) {
        let nv = min(CHUNK, p.vd - v0);
        var acc: array<f32, 64>;
        var sum = 0.0;
        ky = 0u;
        kx = 0u;
        for (var kj = 0u; kj < p.g; kj++) {
            let row = (grp0 + kj) * p.f;
            let b = table + absdiff(qy, ky) * ws + absdiff(qx, kx);
            let e = exp(score(q, row + koff, b) - m);
            sum += e;
            let v = row + voff + v0;
            for (var i = 0u; i < nv; i++) {
                acc[i] += e * qkv[v + i];
            }
            kx += 1u;
            if (kx == ws) {
                kx = 0u;
                ky += 1u;
            }
        }
        for (var i = 0u; i < nv; i++) {
            output[out + v0 + i] = acc[i] / sum;
        }
    }
}
