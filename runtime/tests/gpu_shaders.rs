//! Every WGSL kernel, exactly as the runtime compiles it (shared files prepended), parsed and
//! validated with naga (the shader compiler wgpu uses). Needs no adapter.
#![cfg(feature = "wgpu")]

use fq_runtime::gpu::kernels::sources;

#[test]
fn every_kernel_parses_and_validates() {
    let kernels = sources();
    assert!(kernels.len() >= 11, "{} kernels", kernels.len());
    for k in &kernels {
        let module = naga::front::wgsl::parse_str(&k.source)
            .unwrap_or_else(|e| panic!("{}: {}", k.name, e.emit_to_string(&k.source)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {}", k.name, e.emit_to_string(&k.source)));
        assert!(
            module.entry_points.iter().any(|e| e.name == "main"),
            "{}: no `main` entry point",
            k.name
        );
    }
}

/// Every file in `shaders/` is compiled into some kernel, so none escapes validation.
#[test]
fn every_shader_file_is_compiled() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shaders");
    let kernels = sources();
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wgsl") {
            files += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                kernels.iter().any(|k| k.source.contains(&text)),
                "{} is in no kernel",
                path.display()
            );
        }
    }
    assert_eq!(files, 13, "shaders/*.wgsl");
}
