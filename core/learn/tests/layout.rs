//! The layout of `lineage-learn` as a rule that a test keeps: which module
//! of the crate may use which. The vocabulary (`spec`, `family`, `data`, `optim` and
//! the crate root's types) is open to every part; a part uses another part
//! only where the table below (and that part's module doc) says it is built
//! on it. A new module must be added to the table, and an import against it
//! fails here with the file and line.
//!
//! Only non-test code counts: tests may compare any two parts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every module directly under `src/`, and the parts it is built on beyond
/// the vocabulary. `lib` (the crate root, which dispatches to every path)
/// and `bench` (a service on top) may use anything.
const BUILT_ON: &[(&str, &[&str])] = &[
    // The vocabulary.
    ("spec", &[]),
    ("family", &[]),
    ("data", &[]),
    // `wide` (AVX2 dispatch) runs the optimiser's loops.
    ("optim", &["kernels"]),
    // The one lifetime loop; probe sets are scored through `measure`.
    ("lifetime", &["measure"]),
    // The parts.
    ("kernels", &[]),
    ("models", &[]),
    ("measure", &["models"]),
    ("jacobian", &["measure", "models", "fast", "kernels"]),
    ("autograd", &["models", "lifetime"]),
    ("fast", &["kernels", "lifetime"]),
    ("batched", &["lifetime"]),
];

const VOCABULARY: &[&str] = &["spec", "family", "data", "optim"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Source files below `dir` that hold non-test code (`tests.rs` files and
/// `tests/` folders are test code).
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "tests" {
                sources(&path, out);
            }
        } else if name.ends_with(".rs") && name != "tests.rs" {
            out.push(path);
        }
    }
}

/// The module of `src/` a file belongs to (`fast/rnn.rs` -> `fast`).
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// `(line number, module)` for every `crate::module` a file's non-test
/// code names outside comments.
fn uses(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let code = line.split("//").next().unwrap();
        for (at, _) in code.match_indices("crate::") {
            let name: String = code[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push((i + 1, name));
            }
        }
    }
    out
}

#[test]
fn parts_use_only_the_vocabulary_and_what_they_are_built_on() {
    let table: BTreeMap<_, _> = BUILT_ON.iter().copied().collect();
    let mut files = Vec::new();
    sources(&src(), &mut files);
    files.sort();
    assert!(files.len() > 20, "found only {} source files", files.len());
    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(file);
        if module == "lib" || module == "bench" {
            continue;
        }
        let Some(allowed) = table.get(module.as_str()) else {
            wrong.push(format!(
                "{}: module `{module}` is not in BUILT_ON (core/learn/tests/layout.rs): add it with the parts it is built on",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (line, used) in uses(&text) {
            let fine = used == module
                || VOCABULARY.contains(&used.as_str())
                || allowed.contains(&used.as_str())
                // Items of the crate root (`crate::Job`) are lowercase only
                // as functions the root defines for every part.
                || !table.contains_key(used.as_str()) && used != "bench";
            if !fine {
                wrong.push(format!(
                    "{}:{line}: `{module}` uses `crate::{used}`, which it is not built on",
                    file.display()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layout:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_rule_sees_a_forbidden_import() {
    let text = "use crate::spec::ModelSpec;\nuse crate::fast::View; // why\n#[cfg(test)]\nuse crate::batched::X;\n";
    assert_eq!(
        uses(text),
        vec![(1, "spec".to_owned()), (2, "fast".to_owned())]
    );
}
