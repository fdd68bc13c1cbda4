// Every token reshape as one gather through an index map made on the host at load time:
// ToTokens and ToChw (transposes), WindowPartition (with zero padding), WindowReverse, TakeToken
// and ClassToken. Output element `i` of each image reads `map[i]`: an offset into the same image's
// input, the sentinel 0xffffffff for a zero (window padding), or, with bit 31 set, an offset into
// `extra` shared by every image (the learned class token).

struct Gather {
    // Floats per image of the input and of the output.
    in_len: u32,
    out_len: u32,
}

struct Batch {
    n: u32,
}

@group(0) @binding(0) var<uniform> p: Gather;
@group(0) @binding(1) var<uniform> batch: Batch;
@group(0) @binding(2) var<storage, read> input: array<f32>;
@group(0) @binding(3) var<storage, read> map: array<u32>;
@group(0) @binding(4) var<storage, read> extra: array<f32>;
@group(0) @binding(5) var<storage, read_write> output: array<f32>;

const ZERO: u32 = 0xffffffffu;
const EXTRA: u32 = 0x80000000u;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = id.x + id.y * nw.x * 256u;
    if (i >= batch.n * p.out_len) {
        return;
    }
    let img = i / p.out_len;
    let m = map[i - img * p.out_len];
    var v = 0.0;
    if (m == ZERO) {
        v = 0.0;
    } else if ((m & EXTRA) != 0u) {
        v = extra[m & ~EXTRA];
    } else {
        v = input[img * p.in_len + m];
    }
    output[i] = v;
}
