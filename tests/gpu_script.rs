//! `benches/gpu.sh`, the script that measures Lineage on a lent GPU, run
//! here in its CPU fallback (`--cpu`) so that it cannot rot between the
//! days a GPU is lent: with this build of `lineage` and the test
//! environment's JAX, its check must pass and every model family must have
//! a Lineage speed row on the batched path and on the default path, and a
//! JAX `jit(vmap)` row, each of them finished.
//!
//! Needs bash, Python with JAX and numpy: `LINEAGE_PYTHON` names the
//! interpreter; `bash tests/run.sh` (the README's test command) makes a
//! pinned one under `target/test-venv` and sets it.

mod common;

use std::process::Command;

/// `LINEAGE_PYTHON`, else the virtual environment `tests/run.sh` makes,
/// else `python3`.
fn python() -> String {
    if let Ok(p) = std::env::var("LINEAGE_PYTHON") {
        return p;
    }
    let venv = common::root().join("target/test-venv/bin/python");
    if venv.exists() {
        return venv.display().to_string();
    }
    "python3".into()
}

#[test]
fn the_gpu_script_runs_every_family_in_its_cpu_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gpu.json");
    let py = python();
    let run = Command::new("bash")
        .arg(common::root().join("benches/gpu.sh"))
        .arg("--cpu")
        .env("LINEAGE", env!("CARGO_BIN_EXE_lineage"))
        .env("JAX_PYTHON", &py)
        .env("POPULATIONS", "2")
        .env("STEPS", "2")
        .env("CHECK_POPULATION", "2")
        .env("CHECK_STEPS", "2")
        .env("RUN_TIMEOUT", "300")
        .env("OUT", &out)
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash ({e}): this test needs bash"));
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "benches/gpu.sh --cpu failed (it needs Python with JAX: run the tests with `bash tests/run.sh`, or set LINEAGE_PYTHON to an interpreter with `pip install -r tests/requirements.txt`; this one is `{py}`):\n{stdout}\n{stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(report["check"]["passed"], true, "{report}");
    assert_eq!(report["jax"]["available"], true, "{report}");
    let speed = report["speed"].as_array().unwrap();
    for family in ["mlp", "rnn", "gru", "lstm", "transformer"] {
        for (framework, path) in [
            ("lineage", "batched"),
            ("lineage", "auto"),
            ("jax", "jit-vmap"),
        ] {
            let row = speed
                .iter()
                .find(|r| {
                    r["model"]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("{family}:"))
                        && r["framework"] == framework
                        && r["path"] == path
                })
                .unwrap_or_else(|| panic!("no {framework} {path} row for {family}: {report}"));
            assert_eq!(row["status"], "ok", "{row}");
            let rate = row["result"]["organism_steps_per_s"].as_f64().unwrap();
            assert!(rate > 0.0, "{row}");
        }
    }
}
