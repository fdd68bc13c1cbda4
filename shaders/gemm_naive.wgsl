// The naive bit-unpacking GEMM (after unpack.wgsl and im2col.wgsl): one thread per output, every
// code unpacked where it is used, no workgroup memory. The benchmark's baseline for the tiled
// kernel; same bindings and results.

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let o = id.y;
    let j = id.x;
    let group = id.z;
    if (o >= p.m) {
        return;
    }
    let row = rows[group * p.m + o];
    let col = column(j, group);
    var sum = 0.0;
    for (var k = 0u; k < p.k; k++) {
        sum += weight1(row, k) * tap(col, k);
    }
    store(o, j, group, sum);
}
