//! The Rust–WGSL contract, checked with naga and without a GPU: every registered kernel parses and
//! validates; its registry row's bindings (number, read or read-write, buffer or texture) are the
//! ones its entry point declares; the override names the registry lets ops set are exactly the ones
//! its shader declares; and every shader file is registered.

use std::collections::BTreeSet;

use efficientnet_wgpu::gpu::{BindingKind, Kernel};
use naga::{AddressSpace, ImageClass, StorageAccess, TypeInner};

fn parse(k: Kernel) -> (naga::Module, naga::valid::ModuleInfo) {
    let module = naga::front::wgsl::parse_str(k.source())
        .unwrap_or_else(|e| panic!("{} ({}): {}", k.name(), k.file(), e.emit_to_string(k.source())));
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{} ({}): {}", k.name(), k.file(), e.emit_to_string(k.source())));
    (module, info)
}

/// How the WGSL declares a global, in the registry's terms.
fn kind_of(module: &naga::Module, var: &naga::GlobalVariable) -> Option<BindingKind> {
    match var.space {
        AddressSpace::Storage { access } if access.contains(StorageAccess::STORE) => Some(BindingKind::Write),
        AddressSpace::Storage { .. } => Some(BindingKind::Read),
        AddressSpace::Handle => match module.types[var.ty].inner {
            TypeInner::Image {
                class: ImageClass::Storage { format: naga::StorageFormat::Rgba32Float, access },
                dim: naga::ImageDimension::D2,
                ..
            } if !access.contains(StorageAccess::STORE) => Some(BindingKind::Texels),
            TypeInner::Image {
                class: ImageClass::Sampled { kind: naga::ScalarKind::Float, multi: false },
                dim: naga::ImageDimension::D2,
                arrayed: false,
            } => Some(BindingKind::Image),
            _ => None,
        },
        _ => None,
    }
}

/// The registry's view of one kernel against its shader: the errors found.
fn contract_errors(k: Kernel) -> Vec<String> {
    let (module, info) = parse(k);
    let mut errors = Vec::new();
    let Some(ep) = module.entry_points.iter().position(|e| e.name == k.entry_point()) else {
        return vec![format!("{}: no entry point {} in {}", k.name(), k.entry_point(), k.file())];
    };
    let uses = info.get_entry_point(ep);
    // The group-0 globals the entry point uses, by binding number (a file's entry points may
    // declare different globals at one number).
    let mut used = std::collections::BTreeMap::new();
    for (h, var) in module.global_variables.iter() {
        let Some(rb) = &var.binding else { continue };
        if !uses[h].is_empty() {
            if rb.group != 0 {
                errors.push(format!("{}: uses a binding in group {}", k.name(), rb.group));
            }
            if used.insert(rb.binding, var).is_some() {
                errors.push(format!("{}: two globals at binding {}", k.name(), rb.binding));
            }
        }
    }
    for (slot, want) in k.bindings().iter().enumerate() {
        // A binding the entry point does not touch must still be declared once with the kind.
        let var = used.get(&(slot as u32)).copied().or_else(|| {
            let declared: Vec<_> = module
                .global_variables
                .iter()
                .filter(|(_, v)| v.binding.as_ref().is_some_and(|b| b.group == 0 && b.binding == slot as u32))
                .map(|(_, v)| v)
                .collect();
            (declared.len() == 1).then(|| declared[0])
        });
        match var {
            None => errors.push(format!("{}: the registry has binding {slot} ({want:?}), the shader none", k.name())),
            Some(v) => {
                let got = kind_of(&module, v);
                if got != Some(*want) {
                    let name = v.name.as_deref().unwrap_or("?");
                    errors.push(format!(
                        "{}: binding {slot} ({name}) is {got:?} in WGSL, {want:?} in the registry",
                        k.name()
                    ));
                }
            }
        }
    }
    for (&b, v) in &used {
        if b as usize >= k.bindings().len() {
            let name = v.name.as_deref().unwrap_or("?");
            errors.push(format!(
                "{}: the shader uses binding {b} ({name}), the registry lists {}",
                k.name(),
                k.bindings().len()
            ));
        }
    }
    let wgsl: BTreeSet<&str> = module.overrides.iter().filter_map(|(_, o)| o.name.as_deref()).collect();
    let registry: BTreeSet<&str> = k.overrides().iter().copied().collect();
    for name in registry.difference(&wgsl) {
        errors.push(format!("{}: the registry lets ops set override {name}, {} declares none", k.name(), k.file()));
    }
    for name in wgsl.difference(&registry) {
        errors.push(format!("{}: {} declares override {name}, the registry does not list it", k.name(), k.file()));
    }
    errors
}

#[test]
fn every_kernel_matches_its_registry_row() {
    let errors: Vec<String> = Kernel::ALL.iter().flat_map(|&k| contract_errors(k)).collect();
    assert!(errors.is_empty(), "the registry (src/gpu/kernels.rs) and the WGSL disagree:\n{}", errors.join("\n"));
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
