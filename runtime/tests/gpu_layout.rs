//! Every `#[repr(C)]` struct the host writes into a shader's buffer has the layout of the WGSL
//! struct it mirrors: the same size and, member by member (matched by name), the same offsets.
//! The WGSL side comes from naga (the compiler wgpu uses): each kernel exactly as the runtime
//! compiles it is parsed and laid out with `naga::proc::Layouter`; the Rust side from `size_of`
//! and `offset_of!`. A field added, dropped, reordered or retyped on either side fails here
//! instead of silently shifting every parameter the kernel reads. Needs no adapter.
#![cfg(feature = "wgpu")]

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};

use fq_runtime::gpu::buffers::RowInfo;
use fq_runtime::gpu::dispatch::{AttentionParams, GemmParams, PoolParams};
use fq_runtime::gpu::kernels::sources;

/// A struct's size and its members' byte offsets by name.
#[derive(Debug, PartialEq)]
struct Layout {
    size: usize,
    members: BTreeMap<String, usize>,
}

/// The Rust layout of `$t`, listing every field (the compiler checks that each exists).
macro_rules! rust_layout {
    ($t:ty { $($f:ident),* $(,)? }) => {
        Layout {
            size: size_of::<$t>(),
            members: [$((stringify!($f).to_string(), offset_of!($t, $f))),*]
                .into_iter()
                .collect(),
        }
    };
}

/// Layouts of the WGSL struct `name` in every kernel that declares it, with the kernel's name.
fn wgsl_layouts(name: &str) -> Vec<(&'static str, Layout)> {
    let mut found = Vec::new();
    for k in sources() {
        let module = naga::front::wgsl::parse_str(&k.source)
            .unwrap_or_else(|e| panic!("{}: {}", k.name, e.emit_to_string(&k.source)));
        let mut layouter = naga::proc::Layouter::default();
        layouter
            .update(module.to_ctx())
            .unwrap_or_else(|e| panic!("{}: {e}", k.name));
        for (handle, ty) in module.types.iter() {
            let naga::TypeInner::Struct { members, .. } = &ty.inner else {
                continue;
            };
            if ty.name.as_deref() != Some(name) {
                continue;
            }
            let members = members
                .iter()
                .map(|m| (m.name.clone().unwrap_or_default(), m.offset as usize))
                .collect();
            let size = layouter[handle].size as usize;
            found.push((k.name, Layout { size, members }));
        }
    }
    found
}

/// `rust` matches the WGSL struct `wgsl` in every kernel declaring it (at least one).
fn check(rust_name: &str, rust: Layout, wgsl: &str) {
    let found = wgsl_layouts(wgsl);
    assert!(!found.is_empty(), "no kernel declares `struct {wgsl}`");
    for (kernel, layout) in found {
        assert_eq!(
            rust, layout,
            "Rust `{rust_name}` (left) and WGSL `{wgsl}` in kernel {kernel} (right) differ"
        );
    }
}

#[test]
fn host_structs_match_their_wgsl_structs() {
    check(
        "GemmParams",
        rust_layout!(GemmParams {
            m,
            k,
            c_in,
            h,
            w,
            c_group,
            c_out,
            ho,
            wo,
            kernel,
            stride,
            padding,
            flags,
            _pad0,
            _pad1,
            _pad2
        }),
        "Gemm",
    );
    check(
        "PoolParams",
        rust_layout!(PoolParams {
            c,
            h,
            w,
            ho,
            wo,
            kernel,
            stride,
            padding
        }),
        "Pool",
    );
    check(
        "AttentionParams",
        rust_layout!(AttentionParams {
            l,
            heads,
            kd,
            vd,
            f,
            g,
            qkv_order,
            ws,
            scale
        }),
        "Attention",
    );
    check(
        "RowInfo",
        rust_layout!(RowInfo {
            bit,
            bits,
            scale,
            bias
        }),
        "Row",
    );
}

/// The check itself can fail: a struct with two members swapped is caught.
#[test]
fn a_swapped_member_is_caught() {
    #[repr(C)]
    struct Swapped {
        bits: u32,
        bit: u32,
        scale: f32,
        bias: f32,
    }
    let rust = rust_layout!(Swapped {
        bits,
        bit,
        scale,
        bias
    });
    let (_, wgsl) = wgsl_layouts("Row").remove(0);
    assert_ne!(rust, wgsl);
    assert_eq!(rust.size, wgsl.size);
}
