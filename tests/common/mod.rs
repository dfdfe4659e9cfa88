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

/// True when a scenario's text names an environment a plugin supplies
/// (an `environment` table with a `plugin` key, anywhere: `[lifetime]`, a
/// condition's or island's `set`, an `[[environment]]` change): it loads
/// that plugin's library to validate, so it needs the plugin built. So
/// does a plugin written in Python (`library = "python:..."`): its worker
/// needs the Python package installed, and pytest runs those scenarios.
pub fn needs_a_plugin_built(text: &str) -> bool {
    fn walk(v: &toml::Value) -> bool {
        match v {
            toml::Value::Table(t) => t.iter().any(|(k, v)| {
                (k == "environment" && v.as_table().is_some_and(|e| e.contains_key("plugin")))
                    || (k == "library" && v.as_str().is_some_and(|l| l.starts_with("python:")))
                    || walk(v)
            }),
            toml::Value::Array(a) => a.iter().any(walk),
            _ => false,
        }
    }
    text.parse::<toml::Table>()
        .map(|t| walk(&toml::Value::Table(t)))
        .unwrap_or(false)
}

/// A shared library's file name on this platform (`libNAME.so`).
pub fn dylib(name: &str) -> String {
    format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// The system C compiler: `$CC`, else `cc`.
pub fn c_compiler() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

/// Compiles C `sources` into the shared library `out` against the header
/// in `include` (the SDK's when `None`), warnings as errors.
pub fn compile_c(sources: &[&Path], include: Option<&Path>, defines: &[&str], out: &Path) {
    let include = include.map_or_else(|| root().join("plugins/sdk/include"), Path::to_path_buf);
    let result = Command::new(c_compiler())
        .args(["-shared", "-fPIC", "-O1", "-std=c11", "-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(&include)
        .args(defines)
        .args(sources)
        .arg("-o")
        .arg(out)
        .arg("-lm")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run the C compiler `{}` ({e}): install one (apt-get install build-essential) or set $CC",
                c_compiler()
            )
        });
    assert!(
        result.status.success(),
        "compiling {sources:?} failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
}

/// The folder the `lineage` binary is built into (which the plugin search
/// path holds).
pub fn build_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_lineage"))
        .parent()
        .expect("the binary has a folder")
        .to_path_buf()
}

/// Builds the workspace's `packages` with the binary's profile, into
/// [`build_dir`].
pub fn build_workspace_packages(packages: &[&str]) {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root()).arg("build");
    for p in packages {
        cmd.args(["-p", p]);
    }
    if build_dir().ends_with("release") {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "building {packages:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds a project `lineage new-plugin` made in `dir`, where a user would:
/// `cargo build --release` (Rust) or `make` (C).
pub fn build_scaffold(dir: &Path, lang: &str) {
    let build = match lang {
        "rust" => Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--offline"])
            .env_remove("CARGO_TARGET_DIR")
            .current_dir(dir)
            .output(),
        _ => Command::new("make")
            .env("CC", c_compiler())
            .current_dir(dir)
            .output(),
    }
    .expect("the build tool runs");
    assert!(
        build.status.success(),
        "building the new plugin failed:\n{}{}",
        String::from_utf8_lossy(&build.stdout),
        String::from_utf8_lossy(&build.stderr)
    );
}
