//! Every WGSL kernel parses and validates with naga, without a GPU.

use efficientnet_wgpu::gpu::Kernel;

#[test]
fn every_kernel_validates_with_naga() {
    for &k in Kernel::ALL {
        let module = naga::front::wgsl::parse_str(k.source())
            .unwrap_or_else(|e| panic!("{} ({}): {}", k.name(), k.file(), e.emit_to_string(k.source())));
        let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{} ({}): {}", k.name(), k.file(), e.emit_to_string(k.source())));
        assert!(
            module.entry_points.iter().any(|e| e.name == k.entry_point()),
            "{}: no entry point {}",
            k.name(),
            k.entry_point()
        );
        let _ = info;
    }
}

#[test]
fn every_shader_file_is_registered() {
    // A .wgsl file that no Kernel names would never be validated or tested.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files = Vec::new();
    for family in std::fs::read_dir(&dir).unwrap() {
        let family = family.unwrap().path();
        if family.is_dir() {
            for f in std::fs::read_dir(&family).unwrap() {
                let f = f.unwrap().path();
                files.push(f.strip_prefix(&dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    assert!(!files.is_empty());
    for f in files {
        assert!(Kernel::ALL.iter().any(|k| k.file() == f), "shaders/{f} is not registered in src/gpu/kernels.rs");
    }
}
