// The exact GELU, x * Phi(x) = x/2 * erfc(-x / sqrt(2)), elementwise over a batch of `len`-float
// values. WGSL has no erf: erfc is the Chebyshev fit of Numerical Recipes (`erfcc`, section 6.2),
// whose fractional error is below 1.2e-7 over the whole real line. Being relative to erfc (not to
// erf, as Abramowitz-Stegun 7.1.26's 1.5e-7 is), it keeps the small negative tail of GELU accurate
// too; f32 evaluation adds a few ulps.

struct Elementwise {
    len: u32,
}

struct Batch {
    n: u32,
}

@group(0) @binding(0) var<uniform> p: Elementwise;
@group(0) @binding(1) var<uniform> batch: Batch;
@group(0) @binding(2) var<storage, read> input: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;

// erfc(x), fractional error < 1.2e-7.
fn erfc(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
        + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
        + t * (-0.82215223 + t * 0.17087277))))))));
    let r = t * exp(-z * z + poly);
    return select(2.0 - r, r, x >= 0.0);
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let i = id.x + id.y * nw.x * 256u;
    if (i >= batch.n * p.len) {
        return;
    }
    let x = input[i];
    output[i] = 0.5 * x * erfc(-x * 0.70710678118654752);
}
