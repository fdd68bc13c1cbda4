// The tiled bit-unpacking GEMM of convolutions and Linear layers (after unpack.wgsl and
// im2col.wgsl): out[o][j] = epilogue(sum_k W[o][k] * B[k][j]).
//
// A workgroup owns a 64x64 output tile and walks K in steps of 16. Per step its 256 threads unpack
// the 64 weight rows' codes once into workgroup memory (four codes per thread, one 32-bit window)
// and gather the 16x64 im2col block, then each thread accumulates a 4x4 register tile from
// vec4 reads of both. Integer codes are multiplied as exact small floats; each row's scale is
// applied once in the epilogue, as on the CPU. Grid: (columns / 64, rows / 64, groups).

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

// [k][row] and [k][column], in vec4s of four rows / columns.
var<workgroup> a_tile: array<vec4<f32>, 256>;
var<workgroup> b_tile: array<vec4<f32>, 256>;

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(local_invocation_index) t: u32,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let group = wid.z;
    let row0 = wid.y * TM;
    let col0 = wid.x * TN;

    // This thread's share of the loads: four consecutive taps of one weight row, and one tap of
    // four consecutive columns.
    let a_row = t / 4u;
    let a_k = (t % 4u) * 4u;
    let has_row = row0 + a_row < p.m;
    let row = rows[group * p.m + min(row0 + a_row, p.m - 1u)];
    let b_k = t / 16u;
    let b_col = (t % 16u) * 4u;
    let c0 = column(col0 + b_col, group);
    let c1 = column(col0 + b_col + 1u, group);
    let c2 = column(col0 + b_col + 2u, group);
    let c3 = column(col0 + b_col + 3u, group);

    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        var a = vec4<f32>(0.0);
        if (has_row) {
            a = weights4(row, k0 + a_k, p.k);
        }
        // Transposed into [k][row]: element (a_row) of the vec4 holding rows a_row/4*4 ...
        let ai = a_row / 4u;
        let ae = a_row % 4u;
        // One tap decoded for the four columns.
        let tp = tap_of(k0 + b_k);
        let b = vec4<f32>(gather(c0, tp), gather(c1, tp), gather(c2, tp), gather(c3, tp));
        workgroupBarrier();
        a_tile[(a_k + 0u) * 16u + ai][ae] = a.x;
        a_tile[(a_k + 1u) * 16u + ai][ae] = a.y;
        a_tile[(a_k + 2u) * 16u + ai][ae] = a.z;
        a_tile[(a_k + 3u) * 16u + ai][ae] = a.w;
        b_tile[b_k * 16u + b_col / 4u] = b;
        workgroupBarrier();
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
