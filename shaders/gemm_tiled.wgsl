// The tiled bit-unpacking GEMM of convolutions and Linear layers (after unpack.wgsl and
// im2col.wgsl): out[o][j] = epilogue(sum_k W[o][k] * B[k][j]).
//
// The structure of the fast WebGPU GEMMs, adapted to packed weights and an implicit im2col:
// - a workgroup owns a 64x64 output tile, each of its 256 threads a 4x4 register block;
// - K is walked in steps of 32 (two barriers per 32 taps, not per 16: half the synchronisation
//   of the first version), the largest step whose two tiles fit WebGPU's default 16 KiB of
//   workgroup memory, so the kernel runs on every adapter;
// - each step's codes are unpacked exactly once per workgroup (eight per thread, from one 64-bit
//   window of three words), into workgroup memory as exact small floats;
// - the next step's weights and im2col values are fetched into registers while the current step
//   is being multiplied (register prefetch), so global-memory latency hides behind the FMAs;
// - the inner loop reads both tiles as vec4s: two 16-byte workgroup loads per 16 FMAs.
// Each row's scale is applied once in the epilogue, as on the CPU.
// Grid: (columns / 64, rows / 64, groups).

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 32u;

// [k][row] and [k][column], in vec4s of four rows / columns: 2 x 32 x 64 floats = 16 KiB.
var<workgroup> a_tile: array<vec4<f32>, 512>;
var<workgroup> b_tile: array<vec4<f32>, 512>;

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(local_invocation_index) t: u32,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let group = wid.z;
    let row0 = wid.y * TM;
    let col0 = wid.x * TN;

    // This thread's share of the loads: eight consecutive taps of one weight row, and two taps
    // (b_k, b_k + 16) of four consecutive columns.
    let a_row = t / 4u;
    let a_k = (t % 4u) * 8u;
    let has_row = row0 + a_row < p.m;
    let row = rows[group * p.m + min(row0 + a_row, p.m - 1u)];
    let b_k = t / 16u;
    let b_col = (t % 16u) * 4u;
    let c0 = column(col0 + b_col, group);
    let c1 = column(col0 + b_col + 1u, group);
    let c2 = column(col0 + b_col + 2u, group);
    let c3 = column(col0 + b_col + 3u, group);
    // Where this thread's weights go in the transposed [k][row] tile.
    let ai = a_row / 4u;
    let ae = a_row % 4u;

    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }

    // The first step's values, fetched before the loop.
    var a_lo = vec4<f32>(0.0);
    var a_hi = vec4<f32>(0.0);
    if (has_row) {
        let w = weights8(row, a_k, p.k);
        a_lo = w[0];
        a_hi = w[1];
    }
    var tp = tap_of(b_k);
    var b_lo = vec4<f32>(gather(c0, tp), gather(c1, tp), gather(c2, tp), gather(c3, tp));
    tp = tap_of(b_k + 16u);
    var b_hi = vec4<f32>(gather(c0, tp), gather(c1, tp), gather(c2, tp), gather(c3, tp));

    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        // Everyone is done reading the previous step's tiles.
        workgroupBarrier();
        let a0 = (a_k * 16u) + ai;
        a_tile[a0][ae] = a_lo.x;
        a_tile[a0 + 16u][ae] = a_lo.y;
        a_tile[a0 + 32u][ae] = a_lo.z;
        a_tile[a0 + 48u][ae] = a_lo.w;
        a_tile[a0 + 64u][ae] = a_hi.x;
        a_tile[a0 + 80u][ae] = a_hi.y;
        a_tile[a0 + 96u][ae] = a_hi.z;
        a_tile[a0 + 112u][ae] = a_hi.w;
        b_tile[b_k * 16u + b_col / 4u] = b_lo;
        b_tile[(b_k + 16u) * 16u + b_col / 4u] = b_hi;
        workgroupBarrier();

        // Prefetch the next step (zeros past K) while this one is multiplied.
        let k1 = k0 + TK;
        if (k1 < p.k) {
            if (has_row) {
                let w = weights8(row, k1 + a_k, p.k);
                a_lo = w[0];
                a_hi = w[1];
            }
            tp = tap_of(k1 + b_k);
            b_lo = vec4<f32>(gather(c0, tp), gather(c1, tp), gather(c2, tp), gather(c3, tp));
            tp = tap_of(k1 + b_k + 16u);
            b_hi = vec4<f32>(gather(c0, tp), gather(c1, tp), gather(c2, tp), gather(c3, tp));
        }

        for (var kk = 0u; kk < TK; kk++) {
            let av = a_tile[kk * 16u + lid.y];
            let bv = b_tile[kk * 16u + lid.x];
            acc[0] += av.x * bv;
            acc[1] += av.y * bv;
            acc[2] += av.z * bv;
            acc[3] += av.w * bv;
        }
    }
    for (var i = 0u; i < 4u; i++) {
        let o = row0 + lid.y * 4u + i;
        let j = col0 + lid.x * 4u;
        store(o, j, group, acc[i].x);
        store(o, j + 1u, group, acc[i].y);
        store(o, j + 2u, group, acc[i].z);
        store(o, j + 3u, group, acc[i].w);
    }
}
