//! Plugins in a worker process (`isolation = "process"`), end to end: a C
//! plugin that segfaults, aborts or hangs during `evaluate` becomes a named
//! error that `on_error` handles (abort: checkpoint, exit 1, resumable to
//! the same records; invalidate: the batch is invalid, the worker restarts
//! and later generations are scored), load and create errors in the worker
//! are the same load-time errors as in process, and an isolated run with a
//! plugin that calls every host service gives the records of the same run
//! in process.
//!
//! Also here: the bytes a plugin is loaded from are the bytes hashed
//! (issue 10, bug 5).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{column, lineage, lineage_ok, read, s, write_scenario};

fn dylib(name: &str) -> String {
    format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Compiles `tests/plugins/faulty.c` with `defines` into `dir/name`.
fn faulty(dir: &Path, name: &str, defines: &[&str]) -> PathBuf {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = dir.join(dylib(name));
    let result = Command::new(&cc)
        .args([
            "-shared", "-fPIC", "-O1", "-std=c11", "-Wall", "-Wextra", "-Werror",
        ])
        .arg("-I")
        .arg(common::root().join("plugins/sdk/include"))
        .args(defines)
        .arg(common::root().join("tests/plugins/faulty.c"))
        .arg("-o")
        .arg(&out)
        .arg("-lm")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run the C compiler `{cc}` ({e}): install one or set $CC")
        });
    assert!(
        result.status.success(),
        "compiling faulty.c failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    out
}

/// A small real-gene scenario scored by faulty.c's `score` (the first
/// gene), with `table` added to `[plugins.bad]`.
fn faulty_scenario(lib: &Path, table: &str) -> String {
    format!(
        r#"
name = "isolation-test"
seed = 5
generations = 5
population = 16
checkpoint_every = 1

[genome]
genes = [{{ name = "x", count = 2, min = 0.0, max = 1.0 }}]

[plugins.bad]
library = "{}"
{table}

[fitness]
function = "bad:score"

[selection]
method = "tournament"
tournament_size = 2
elitism = 1

[mutation]
sigma = 0.1
gene_rate = 1.0
"#,
        s(lib)
    )
}

/// Runs `scenario` into `dir/NAME` with the environment `env`.
fn run_with(dir: &Path, name: &str, scenario: &str, env: &[(&str, &str)]) -> (PathBuf, Output) {
    let path = write_scenario(dir, &format!("{name}.toml"), scenario);
    let run = dir.join(name);
    let out = Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args(["run", s(&path), "--out", s(&run), "--quiet"])
        .envs(env.iter().copied())
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the lineage binary runs");
    (run, out)
}

/// What a crash of `kind` says.
fn named(kind: &str) -> &'static str {
    match kind {
        "segv" => "crashed: its worker process was killed by SIGSEGV",
        "abort" => "crashed: its worker process was killed by SIGABRT",
        _ => "timed out: no answer within timeout_ms = 300; its worker process was killed",
    }
}

/// An isolated plugin that crashes (`kind`) at generation 3 with
/// `on_error = "abort"`: exit 1 naming the plugin and the crash, a
/// checkpoint, and a resume without the fault gives the records of an
/// uninterrupted run (in process: the isolated run matches it too).
fn crash_aborts_then_resume_equals_an_uninterrupted_run(kind: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let lib = faulty(tmp.path(), "faulty", &[]);
    let (straight, out) = run_with(tmp.path(), "straight", &faulty_scenario(&lib, ""), &[]);
    assert!(out.status.success(), "{}", stderr(&out));

    let isolated = faulty_scenario(
        &lib,
        "isolation = \"process\"\ntimeout_ms = 300\non_error = \"abort\"",
    );
    let (broken, out) = run_with(
        tmp.path(),
        "broken",
        &isolated,
        &[("FAULTY_CRASH", kind), ("FAULTY_CRASH_AT", "3")],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("generation 3, `") && err.contains(": plugin `faulty` offering `score`"),
        "{err}"
    );
    assert!(err.contains(named(kind)), "{err}");
    assert!(broken.join("checkpoints/gen-000003").is_dir());

    lineage_ok(&["resume", s(&broken), "--quiet"]);
    for table in ["generations.csv", "organisms.csv"] {
        assert_eq!(
            read(&broken.join(table)),
            read(&straight.join(table)),
            "{table} differs after a {kind} crash and a resume"
        );
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&broken.join("manifest.json"))).unwrap();
    assert_eq!(manifest["plugins"][0]["isolation"], "process");
}

#[test]
fn a_segfault_in_an_isolated_plugin_aborts_resumably() {
    crash_aborts_then_resume_equals_an_uninterrupted_run("segv");
}

#[test]
fn an_abort_in_an_isolated_plugin_aborts_resumably() {
    crash_aborts_then_resume_equals_an_uninterrupted_run("abort");
}

#[test]
fn a_hang_in_an_isolated_plugin_times_out_resumably() {
    crash_aborts_then_resume_equals_an_uninterrupted_run("hang");
}

#[test]
fn with_invalidate_a_crash_invalidates_one_batch_and_the_worker_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = faulty(tmp.path(), "faulty", &[]);
    let scenario = faulty_scenario(
        &lib,
        "isolation = \"process\"\ntimeout_ms = 300\non_error = \"invalidate\"",
    );
    for kind in ["segv", "abort", "hang"] {
        let (run, out) = run_with(
            tmp.path(),
            kind,
            &scenario,
            &[("FAULTY_CRASH", kind), ("FAULTY_CRASH_AT", "2")],
        );
        let err = stderr(&out);
        assert!(out.status.success(), "{kind}: {err}");
        assert!(
            err.contains("warning: generation 2: plugin `faulty` offering `score`"),
            "{kind}: {err}"
        );
        assert!(err.contains(named(kind)), "{kind}: {err}");
        let generations = run.join("generations.csv");
        assert_eq!(
            column(&generations, "eval_errors"),
            vec![0.0, 0.0, 1.0, 0.0, 0.0],
            "{kind}"
        );
        let invalid = column(&generations, "invalid");
        assert!(invalid[2] >= 15.0, "{kind}: the whole batch: {invalid:?}");
        // A new worker scored the generations after the crash.
        assert_eq!(invalid[3..], [0.0, 0.0], "{kind}");
        let best = column(&generations, "value_best");
        assert!(best[3..].iter().all(|v| v.is_finite()), "{kind}: {best:?}");
    }
}

#[test]
fn load_and_create_errors_in_the_worker_are_load_time_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(PathBuf, &str, &str); 3] = [
        (
            faulty(tmp.path(), "abi999", &["-DFAULTY_ABI=999"]),
            "",
            "ABI version 999, but this Lineage speaks ABI versions 1 to 4",
        ),
        (
            faulty(tmp.path(), "noentry", &["-DFAULTY_NO_ENTRY"]),
            "",
            "no `lineage_plugin_entry` symbol",
        ),
        (
            faulty(tmp.path(), "faulty", &[]),
            "\n[plugins.bad.config]\nmode = \"bad_config\"",
            "plugin `faulty` cannot create `score`: faulty rejects mode = \"bad_config\" on purpose",
        ),
    ];
    for (i, (lib, config, expected)) in cases.iter().enumerate() {
        let scenario = faulty_scenario(lib, &format!("isolation = \"process\"{config}"));
        let (run, out) = run_with(tmp.path(), &format!("run{i}"), &scenario, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(expected), "expected {expected:?} in:\n{err}");
        assert!(!run.exists(), "a failed load must not create the run");
    }
}

#[test]
fn isolation_and_timeout_are_checked_with_the_scenario() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join(dylib("faulty"));
    for (table, expected) in [
        ("isolation = \"proces\"", "did you mean `process`?"),
        ("timeout_ms = 0", "plugins.bad.timeout_ms"),
    ] {
        let path = write_scenario(tmp.path(), "s.toml", &faulty_scenario(&lib, table));
        let out = lineage(&["validate", s(&path)]);
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains(expected), "{}", stderr(&out));
    }
}

/// Builds the workspace's services checker once, with the binary's profile.
fn services_plugin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_BIN_EXE_lineage"))
                .parent()
                .unwrap()
                .to_path_buf();
            let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            cmd.current_dir(common::root())
                .args(["build", "-p", "lineage-test-services"]);
            if dir.ends_with("release") {
                cmd.arg("--release");
            }
            let out = cmd.output().expect("cargo runs");
            assert!(
                out.status.success(),
                "building the services checker failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            dir.join(dylib("lineage_test_services"))
        })
        .clone()
}

#[test]
fn an_isolated_plugin_using_every_service_gives_the_in_process_records() {
    let lib = services_plugin();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = |table: &str| {
        format!(
            r#"
name = "isolation-services"
seed = 3
generations = 2
population = 8

[genome]
genes = [
    {{ name = "lr", min = 1e-3, max = 1.0, log = true }},
    {{ name = "gain", min = 0.1, max = 3.0 }},
]

[plugins.svc]
library = "{}"
{table}

[fitness]
function = "heldout_loss"

[evaluate]
suites = ["svc:consistency"]

[selection]
method = "tournament"
tournament_size = 3
elitism = 1

[mutation]
sigma = 0.2
gene_rate = 1.0

[lifetime]
budget = 32
steps = 20
batch = 16
eval_every = 10
environment = {{ kind = "gaussian_clusters", classes = 4, dim = 8, spread = 1.0, heldout = 100, seed = 7 }}
model = {{ kind = "mlp", hidden = [16], activation = "relu" }}
optimizer = {{ method = "sgd", momentum = 0.9 }}
"#,
            s(&lib)
        )
    };
    let (inproc, out) = run_with(tmp.path(), "inproc", &scenario(""), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (isolated, out) = run_with(
        tmp.path(),
        "isolated",
        &scenario("isolation = \"process\""),
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The checker's metrics (readouts, gradients, held-out losses, curves,
    // learned weights) came through the channel: they must be the same.
    let metrics = read(&isolated.join("metrics.csv"));
    assert!(
        String::from_utf8_lossy(&metrics).contains("gradient_error"),
        "the services checker ran"
    );
    for table in ["generations.csv", "organisms.csv", "metrics.csv"] {
        assert_eq!(
            read(&isolated.join(table)),
            read(&inproc.join(table)),
            "{table} differs between isolated and in-process runs"
        );
    }
}

#[test]
fn isolation_without_a_worker_executable_is_a_clear_error() {
    // A test binary is not `lineage`, and nothing named a worker.
    if std::env::var_os(lineage_plugin_host::WORKER_EXE_VAR).is_some() {
        return;
    }
    let err = lineage_plugin_host::Isolation::new("bad", std::time::Duration::from_secs(1))
        .expect_err("no worker executable is known");
    let text = err.to_string();
    assert!(text.contains("plugin `bad`"), "{text}");
    assert!(text.contains("LINEAGE_WORKER_EXE"), "{text}");
}

/// Issue 10, bug 5: the library is loaded from the bytes that were hashed,
/// not opened by its path a second time (the file could change in
/// between): nothing is mapped from the path, and the sealed in-memory
/// copy it is mapped from holds bytes whose SHA-256 is the one recorded.
#[test]
fn a_plugin_is_loaded_from_exactly_the_bytes_hashed() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = faulty(tmp.path(), "hashed", &[]).canonicalize().unwrap();
    let plugin = lineage_plugin_host::Plugin::load(&lib).expect("faulty.c loads");
    assert_eq!(plugin.name, "faulty");
    let recorded = plugin.sha256.clone().expect("a loaded library has a hash");
    assert_eq!(recorded, lineage_engine::sha256_hex(&read(&lib)));

    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(
        !maps.contains(s(&lib)),
        "the library was mapped from its path:\n{maps}"
    );
    // The copies of every library loaded so far stay open: one of them
    // holds exactly the hashed bytes.
    let copies: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| s(&target).starts_with("/memfd:lineage-plugin"))
        })
        .filter_map(|fd| std::fs::read(fd.path()).ok())
        .map(|bytes| lineage_engine::sha256_hex(&bytes))
        .collect();
    assert!(
        copies.contains(&recorded),
        "no in-memory copy holds the hashed bytes ({} copies)",
        copies.len()
    );
}
