//! Helpers shared by the whole-system tests: running the `lineage` binary
//! and reading what it wrote.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A shipped scenario.
pub fn scenario(name: &str) -> PathBuf {
    root().join("scenarios").join(name)
}

/// Runs `lineage` with `args`, with no terminal attached.
pub fn lineage(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the lineage binary runs")
}

/// Runs `lineage` and requires success.
pub fn lineage_ok(args: &[&str]) -> Output {
    let out = lineage(args);
    assert_success(&out, &format!("lineage {args:?}"));
    out
}

/// Requires that `what` (the command, for the message) succeeded, showing
/// its exit code and both outputs when it did not.
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A file's bytes, with its name in the panic message if missing.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Writes a scenario into `dir` and returns its path.
pub fn write_scenario(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("a temporary scenario can be written");
    path
}

/// Path as &str.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// Runs `lineage` in `dir`.
pub fn lineage_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the lineage binary runs")
}

/// A CSV file as a header and rows of fields.
pub fn csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = String::from_utf8(read(path)).expect("CSV is UTF-8");
    let mut lines = text.lines();
    let header = lines
        .next()
        .expect("a header")
        .split(',')
        .map(str::to_owned)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    (header, rows)
}

/// One column of a CSV file as numbers.
pub fn column(path: &Path, name: &str) -> Vec<f64> {
    let (header, rows) = csv(path);
    let k = header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {}", path.display()));
    rows.iter()
        .map(|r| {
            r[k].parse()
                .unwrap_or_else(|_| panic!("{name} = {:?} is not a number", r[k]))
        })
        .collect()
}

/// `lineage run SCENARIO --generations N --out OUT --quiet`, which must
/// succeed.
pub fn run_quiet(scenario: &Path, generations: u32, out: &Path) {
    let generations = generations.to_string();
    lineage_ok(&[
        "run",
        s(scenario),
        "--generations",
        &generations,
        "--out",
        s(out),
        "--quiet",
    ]);
}

/// Reads a safetensors file's f32 tensors.
pub fn tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = read(path);
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let body = &bytes[8 + n..];
    let mut out = Vec::new();
    for (name, info) in header.as_object().unwrap() {
        if name == "__metadata__" {
            continue;
        }
        let off = info["data_offsets"].as_array().unwrap();
        let (a, b) = (
            off[0].as_u64().unwrap() as usize,
            off[1].as_u64().unwrap() as usize,
        );
        let v = body[a..b]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        out.push((name.clone(), v));
    }
    out
}

/// Every island of the island run in `out` recorded `generations`
/// generations, each with `population` organisms.
pub fn assert_island_populations(
    out: &Path,
    islands: usize,
    generations: usize,
    population: usize,
) {
    for island in 0..islands {
        let dir = out.join(format!("islands/island-{island}"));
        let (header, gens) = csv(&dir.join("generations.csv"));
        let column = header.iter().position(|h| h == "population").unwrap();
        assert_eq!(gens.len(), generations, "island {island}");
        assert!(
            gens.iter().all(|g| g[column] == population.to_string()),
            "island {island}: {gens:?}"
        );
    }
}
