//! Self-check for the AVX-512 emulator (tools/avx512-emu/run.sh --selfcheck).
//!
//! WHY: the emulator is only useful if the emulated CPU really executes the
//! instructions our micro-kernels use. This program reports what the CPU
//! advertises (CPUID via `is_x86_feature_detected!`) and then executes
//! `_mm512_fmadd_ps` (AVX-512F) and `_mm512_dpbusd_epi32` (AVX-512 VNNI),
//! and `_mm256_dpbusd_avx_epi32` (AVX-VNNI) when advertised, comparing each
//! lane with an independent scalar computation. Exit code 0 only when every
//! kernel that the CPU claims to support gives the scalar result and the
//! AVX-512 ones were actually run.
//!
//! Built statically: `rustc -O -C target-feature=+crt-static selfcheck.rs`.

use std::arch::x86_64::*;
use std::process::ExitCode;

/// Deterministic inputs (no RNG crate: this file is compiled with bare rustc).
fn lcg(seed: &mut u32) -> u32 {
    *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
    *seed >> 8
}

#[target_feature(enable = "avx512f")]
unsafe fn fmadd_512(a: &[f32; 16], b: &[f32; 16], c: &[f32; 16]) -> [f32; 16] {
    let mut out = [0f32; 16];
    let r = _mm512_fmadd_ps(
        _mm512_loadu_ps(a.as_ptr()),
        _mm512_loadu_ps(b.as_ptr()),
        _mm512_loadu_ps(c.as_ptr()),
    );
    _mm512_storeu_ps(out.as_mut_ptr(), r);
    out
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn dpbusd_512(acc: &[i32; 16], u: &[u8; 64], s: &[i8; 64]) -> [i32; 16] {
    let mut out = [0i32; 16];
    let r = _mm512_dpbusd_epi32(
        _mm512_loadu_si512(acc.as_ptr() as *const _),
        _mm512_loadu_si512(u.as_ptr() as *const _),
        _mm512_loadu_si512(s.as_ptr() as *const _),
    );
    _mm512_storeu_si512(out.as_mut_ptr() as *mut _, r);
    out
}

#[target_feature(enable = "avx2,avxvnni")]
unsafe fn dpbusd_avx_256(acc: &[i32; 8], u: &[u8; 32], s: &[i8; 32]) -> [i32; 8] {
    let mut out = [0i32; 8];
    let r = _mm256_dpbusd_avx_epi32(
        _mm256_loadu_si256(acc.as_ptr() as *const _),
        _mm256_loadu_si256(u.as_ptr() as *const _),
        _mm256_loadu_si256(s.as_ptr() as *const _),
    );
    _mm256_storeu_si256(out.as_mut_ptr() as *mut _, r);
    out
}

/// Scalar VPDPBUSD: each i32 lane += sum of 4 (u8 * i8) products (no saturation).
fn dpbusd_scalar(acc: &[i32], u: &[u8], s: &[i8]) -> Vec<i32> {
    acc.iter()
        .enumerate()
        .map(|(l, &a)| {
            (0..4).fold(a, |t, k| {
                t.wrapping_add(u[4 * l + k] as i32 * s[4 * l + k] as i32)
            })
        })
        .collect()
}

fn main() -> ExitCode {
    let feats = [
        ("avx2", is_x86_feature_detected!("avx2")),
        ("fma", is_x86_feature_detected!("fma")),
        ("avx512f", is_x86_feature_detected!("avx512f")),
        ("avx512bw", is_x86_feature_detected!("avx512bw")),
        ("avx512vl", is_x86_feature_detected!("avx512vl")),
        ("avx512vnni", is_x86_feature_detected!("avx512vnni")),
        ("avxvnni", is_x86_feature_detected!("avxvnni")),
    ];
    for (name, on) in feats {
        println!("feature {name:<11} {}", if on { "yes" } else { "no" });
    }
    let has = |n: &str| feats.iter().any(|&(f, on)| f == n && on);
    let mut ok = true;
    let mut seed = 12345u32;

    // AVX-512F fused multiply-add. The scalar reference uses f32::mul_add,
    // which is also a single rounding, so the results must be bit-identical.
    if has("avx512f") {
        let mut v = || ((lcg(&mut seed) % 2001) as f32 - 1000.0) / 37.0;
        let a: [f32; 16] = std::array::from_fn(|_| v());
        let b: [f32; 16] = std::array::from_fn(|_| v());
        let c: [f32; 16] = std::array::from_fn(|_| v());
        let got = unsafe { fmadd_512(&a, &b, &c) };
        let want: Vec<f32> = (0..16).map(|i| a[i].mul_add(b[i], c[i])).collect();
        let pass = got.iter().zip(&want).all(|(g, w)| g.to_bits() == w.to_bits());
        println!("_mm512_fmadd_ps        {}", if pass { "PASS" } else { "FAIL" });
        if !pass {
            println!("  got  {got:?}\n  want {want:?}");
        }
        ok &= pass;
    } else {
        println!("_mm512_fmadd_ps        SKIP (no avx512f) -> FAIL");
        ok = false;
    }

    // AVX-512 VNNI u8 x i8 dot product, with extreme values included.
    if has("avx512f") && has("avx512bw") && has("avx512vnni") {
        let mut u: [u8; 64] = std::array::from_fn(|_| lcg(&mut seed) as u8);
        let mut s: [i8; 64] = std::array::from_fn(|_| lcg(&mut seed) as i8);
        u[0..4].copy_from_slice(&[255; 4]);
        s[0..4].copy_from_slice(&[-128; 4]);
        let acc: [i32; 16] = std::array::from_fn(|_| (lcg(&mut seed) as i32) - (1 << 23));
        let got = unsafe { dpbusd_512(&acc, &u, &s) };
        let want = dpbusd_scalar(&acc, &u, &s);
        let pass = got[..] == want[..];
        println!("_mm512_dpbusd_epi32    {}", if pass { "PASS" } else { "FAIL" });
        if !pass {
            println!("  got  {got:?}\n  want {want:?}");
        }
        ok &= pass;
    } else {
        println!("_mm512_dpbusd_epi32    SKIP (no avx512vnni) -> FAIL");
        ok = false;
    }

    // AVX-VNNI (VEX-encoded VPDPBUSD): optional, Alder Lake / Zen 5 and later.
    if has("avxvnni") {
        let u: [u8; 32] = std::array::from_fn(|_| lcg(&mut seed) as u8);
        let s: [i8; 32] = std::array::from_fn(|_| lcg(&mut seed) as i8);
        let acc: [i32; 8] = std::array::from_fn(|_| lcg(&mut seed) as i32);
        let got = unsafe { dpbusd_avx_256(&acc, &u, &s) };
        let want = dpbusd_scalar(&acc, &u, &s);
        let pass = got[..] == want[..];
        println!("_mm256_dpbusd_avx_epi32 {}", if pass { "PASS" } else { "FAIL" });
        ok &= pass;
    } else {
        println!("_mm256_dpbusd_avx_epi32 SKIP (CPU does not report avxvnni)");
    }

    println!("selfcheck {}", if ok { "PASS" } else { "FAIL" });
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
