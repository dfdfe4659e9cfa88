//! House rules checked as a test: every Rust file opens with a `//!`
//! comment saying what it is for, and every shipped scenario validates.

mod common;

use std::path::{Path, PathBuf};

#[test]
fn every_rust_file_opens_with_module_docs() {
    let mut files = Vec::new();
    for dir in ["core", "plugins", "tests", "benches"] {
        collect_paths(&common::root().join(dir), &mut files);
    }
    files.retain(|f| f.extension().is_some_and(|e| e == "rs"));
    assert!(files.len() > 20, "found only {} files", files.len());
    let missing: Vec<_> = files
        .iter()
        .filter(|f| {
            !std::fs::read_to_string(f)
                .unwrap()
                .trim_start()
                .starts_with("//!")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(missing.is_empty(), "missing `//!` docs: {missing:#?}");
}

/// Every shipped scenario validates, but those whose environment an
/// example plugin supplies, and those with a plugin written in Python:
/// their own tests build the plugin (or the Python package) and run them.
#[test]
fn every_shipped_scenario_validates() {
    let mut count = 0;
    for entry in std::fs::read_dir(common::root().join("scenarios"))
        .unwrap()
        .flatten()
    {
        let path = entry.path();
        let needs_a_plugin_built =
            || common::needs_a_plugin_built(&std::fs::read_to_string(&path).unwrap());
        if path.extension().is_some_and(|e| e == "toml") && !needs_a_plugin_built() {
            if let Err(e) = lineage_scenario::load(&path, &Default::default()) {
                panic!("{} does not validate:\n{e}", path.display());
            }
            count += 1;
        }
    }
    assert!(count >= 5);
}

/// Every file or folder that ARCHITECTURE.md's code map names (a backticked
/// `name.rs` or `folder/`) exists: from the repository's root, or as the
/// tail of a path in the repository (`isolate/wire.rs`; prose in one
/// crate's section may name another crate's file). Run-directory names with
/// placeholders (`gen-NNNNNN.tmp/`, `islands/island-K/`) are not source
/// paths.
#[test]
fn architecture_code_map_names_only_what_exists() {
    let root = common::root();
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let map = text
        .split("\n## Code map")
        .nth(1)
        .expect("ARCHITECTURE.md has a `## Code map` section");
    let map = map.split("\n## ").next().unwrap();
    let mut checked = 0;
    let mut missing = Vec::new();
    let mut section = "";
    let mut paths = Vec::new();
    collect_paths(&root, &mut paths);
    for line in map.lines() {
        if let Some(header) = line.strip_prefix("### ") {
            section = header;
            continue;
        }
        for name in line.split('`').skip(1).step_by(2) {
            let is_path = (name.ends_with(".rs") || name.ends_with('/')) && name.len() > 2;
            let placeholder = name.contains("NNN") || name.contains("-K") || name.contains('<');
            if !is_path || placeholder || name.contains(' ') {
                continue;
            }
            checked += 1;
            let rel = Path::new(name.trim_end_matches('/'));
            let found = root.join(rel).exists() || paths.iter().any(|p| p.ends_with(rel));
            if !found {
                missing.push(format!("`{name}` (in `### {section}`)"));
            }
        }
    }
    assert!(checked > 50, "the code map names only {checked} paths");
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map names paths that do not exist: {missing:#?}"
    );
}

/// Every file and folder below `dir` (no `target`, no hidden ones; nothing
/// where `dir` is missing).
fn collect_paths(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_paths(&path, out);
        }
        out.push(path);
    }
}
