//! Imports point one way: error → fsio → gpu → ops → graph → model → data → infer / train. Reads
//! every file under src/ and fails on any `crate::<module>` path that names a module of the same or
//! a higher layer than the file's own (a module may use itself). Needs no GPU.

use std::path::Path;

/// Layers from the bottom. Modules of one layer may not import each other either.
const LAYERS: &[&[&str]] =
    &[&["error"], &["fsio"], &["gpu"], &["ops"], &["cpu_ref", "graph"], &["model"], &["data"], &["infer", "train"]];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Every module a file names through `crate::x` or `crate::{x, y::z}`.
fn crate_imports(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                out.push(name);
            }
        } else {
            out.push(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_imports_from_its_own_or_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut checked = 0;
    let mut violations = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        // lib.rs re-exports everything; the binary sits above every layer.
        if top == "lib" || top == "bin" {
            continue;
        }
        let own = layer_of(&top).unwrap_or_else(|| panic!("src/{} is in no layer: add it to LAYERS", rel.display()));
        let text = std::fs::read_to_string(file).unwrap();
        for m in crate_imports(&text) {
            let Some(theirs) = layer_of(&m) else { continue };
            checked += 1;
            if m != top && theirs >= own {
                violations.push(format!("src/{} imports crate::{m}", rel.display()));
            }
        }
    }
    assert!(checked > 50, "found only {checked} crate imports: is the parser still right?");
    assert!(violations.is_empty(), "imports that point up or sideways:\n{}", violations.join("\n"));
}

#[test]
fn the_import_parser_sees_grouped_and_nested_paths() {
    let src = "use crate::{gpu::Gpu, ops};\nuse crate::model::Config;\nlet x = crate::train::graph::f();";
    assert_eq!(crate_imports(src), ["gpu", "ops", "model", "train"]);
}
