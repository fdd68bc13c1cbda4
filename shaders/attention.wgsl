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

// Column of q, k or v (part 0, 1, 2) feature `i` of `head` in a fused qkv row.
fn col(part: u32, head: u32, i: u32) -> u32 {
    if (p.qkv_order == 0u) {
        return part * p.heads * p.kd + head * p.kd + i;
    }
    return head * (2u * p.kd + p.vd) + part * p.kd + i;
}

fn absdiff(a: u32, b: u32) -> u32 {
    return max(a, b) - min(a, b);
}

// Score of query row `q` (position `qi` in its group) against key row `k` (position `kj`).
fn score(q: u32, k: u32, head: u32, qi: u32, kj: u32) -> f32 {
    var dot = 0.0;
    for (var i = 0u; i < p.kd; i++) {
        dot += qkv[q + col(0u, head, i)] * qkv[k + col(1u, head, i)];
    }
    var s = dot * p.scale;
    if (p.ws > 0u) {
        let ws = p.ws;
        let b = absdiff(qi / ws, kj / ws) * ws + absdiff(qi % ws, kj % ws);
        s += biases[head * ws * ws + b];
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
    // First row of the image, and of the query's group.
    let row0 = img * p.l;
    let grp0 = row0 + qt - qi;
    let q = (row0 + qt) * p.f;
    var m = -3.40282347e38;
    for (var kj = 0u; kj < p.g; kj++) {
        m = max(m, score(q, (grp0 + kj) * p.f, head, qi, kj));
    }
    let width = p.heads * p.vd;
    let out = (row0 + qt) * width + head * p.vd;
    for (var v0 = 0u; v0 < p.vd; v0 += CHUNK) {
        let nv = min(CHUNK, p.vd - v0);
        var acc: array<f32, 64>;
        for (var i = 0u; i < CHUNK; i++) {
            acc[i] = 0.0;
        }
        var sum = 0.0;
        for (var kj = 0u; kj < p.g; kj++) {
            let k = (grp0 + kj) * p.f;
            let e = exp(score(q, k, head, qi, kj) - m);
            sum += e;
            for (var i = 0u; i < nv; i++) {
                acc[i] += e * qkv[k + col(2u, head, v0 + i)];
            }
        }
        for (var i = 0u; i < nv; i++) {
            output[out + v0 + i] = acc[i] / sum;
        }
    }
}
