//! Crash campaign: `lineage run` killed with SIGKILL at moments spread over
//! the run (and aborted half-way through a checkpoint, and after it
//! finished), then resumed, writes every record file byte for byte as an
//! uninterrupted run does. One learning scenario checkpointing every
//! generation, and one experiment with conditions.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A small learning run: 8 generations of 8 MLP lifetimes, a checkpoint
/// after every generation, an environment change half-way.
const LEARNING: &str = r#"
name = "crash-learning"
seed = 17
generations = 8
population = 8
checkpoint_every = 1

[genome]
genes = [{ name = "lr", min = 0.01, max = 0.3 }]

[fitness]
function = "heldout_loss"

[selection]
method = "tournament"
tournament_size = 2
elitism = 1

[mutation]
sigma = 0.05

[lifetime]
budget = 1024
steps = 2000
batch = 32
inheritance = "lamarckian"
environment = { kind = "gaussian_clusters", classes = 3, dim = 8, spread = 1.0, heldout = 128, seed = 3 }
model = { kind = "mlp", hidden = [32], activation = "relu" }
optimizer = { method = "sgd", lr = 0.1 }

[[environment]]
at_generation = 3
set = { lifetime = { environment = { spread = 1.5 } } }
"#;

/// A pruning lineage, then conditions that take its connectome or none.
const CONDITIONS: &str = r#"
name = "crash-conditions"
seed = 5
generations = 3
population = 3
checkpoint_every = 1

[genome]
genes = [{ name = "unused", min = 0.0, max = 1.0 }]

[fitness]
function = "heldout_loss"

[selection]
method = "tournament"
tournament_size = 1

[lifetime]
budget = 512
steps = 1500
batch = 16
inheritance = "prune"
prune = { fraction = 0.3 }
environment = { kind = "gaussian_clusters", classes = 3, dim = 6, spread = 1.0, heldout = 100, seed = 2 }
model = { kind = "mlp", hidden = [12], activation = "relu" }
optimizer = { method = "sgd", lr = 0.1 }

[[conditions]]
name = "outer"

[[conditions]]
name = "Connectome"
from = "outer"
seeds = [1, 2]
set = { generations = 2 }

[[conditions]]
name = "NoConnectome"
seeds = [1, 2]
set = { generations = 2, lifetime = { inheritance = "darwinian" } }
"#;

/// Record files, relative to a run or experiment directory, that must be
/// byte-identical (`timings.csv` holds wall times and is left out).
fn records(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "checkpoints") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "csv")
                && path.file_name().is_some_and(|n| n != "timings.csv")
            {
                out.push(path.strip_prefix(dir).unwrap().to_owned());
            }
        }
    }
    out.sort();
    out
}

fn assert_same_records(whole: &Path, other: &Path, what: &str) {
    let expected = records(whole);
    assert!(!expected.is_empty(), "the uninterrupted run wrote records");
    assert_eq!(records(other), expected, "{what}: the same record files");
    for f in &expected {
        assert!(
            read(&whole.join(f)) == read(&other.join(f)),
            "{what}: {} differs from the uninterrupted run's",
            f.display()
        );
    }
}

fn spawn_run(scenario: &Path, out: &Path, fault: Option<&str>) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lineage"));
    command
        .args([
            "run",
            s(scenario),
            "--out",
            s(out),
            "--quiet",
            "--threads",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env_remove("RUST_BACKTRACE");
    if let Some(fault) = fault {
        command.env("LINEAGE_FAULT", fault);
    }
    command.spawn().expect("the lineage binary starts")
}

/// Resumes `dir` (a run or an experiment) to its end.
fn resume(dir: &Path) {
    lineage_ok(&["resume", s(dir), "--quiet"]);
}

/// Kills a run at `moments` (fractions of an uninterrupted run's wall
/// time, which `whole` took), resumes each, and compares the records.
fn kill_and_resume(scenario: &Path, whole: &Path, took: Duration, moments: &[f64], tmp: &Path) {
    for (k, &moment) in moments.iter().enumerate() {
        let dir = tmp.join(format!("killed-{k}"));
        let mut child = spawn_run(scenario, &dir, None);
        let deadline = Instant::now() + took.mul_f64(moment);
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap(); // SIGKILL; harmless if it already exited
        child.wait().unwrap();
        assert!(
            dir.exists(),
            "kill {k} at {moment} landed before the run created its directory: lengthen the scenario"
        );
        resume(&dir);
        assert_same_records(whole, &dir, &format!("killed at {moment:.2} of the run"));
    }
}

fn uninterrupted(scenario: &Path, out: &Path) -> Duration {
    let started = Instant::now();
    let status = spawn_run(scenario, out, None).wait().unwrap();
    assert!(status.success(), "the uninterrupted run succeeds");
    started.elapsed()
}

/// Ten moments from 15% to 105% of the run's wall time.
fn moments() -> Vec<f64> {
    (0..10).map(|k| 0.15 + 0.1 * k as f64).collect()
}

#[test]
fn a_learning_run_killed_anywhere_resumes_to_the_same_records() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write_scenario(tmp.path(), "learning.toml", LEARNING);
    let whole = tmp.path().join("whole");
    let took = uninterrupted(&scenario, &whole);
    kill_and_resume(&scenario, &whole, took, &moments(), tmp.path());

    // Aborted half-way through writing the checkpoint that starts
    // generation 3: the half-written one is ignored, the run resumes from
    // the one before.
    let aborted = tmp.path().join("aborted");
    let out = spawn_run(&scenario, &aborted, Some("abort:checkpoint:3"))
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success(), "the injected abort stops the run");
    assert!(
        aborted.join("checkpoints/gen-000003.tmp").exists(),
        "the abort left a half-written checkpoint"
    );
    assert!(!aborted.join("checkpoints/gen-000003").exists());
    resume(&aborted);
    assert_same_records(&whole, &aborted, "aborted inside a checkpoint");

    // Killed after it finished: resuming changes nothing and says so.
    let before: Vec<_> = records(&whole)
        .iter()
        .map(|f| read(&whole.join(f)))
        .collect();
    let out = lineage_ok(&["resume", s(&whole)]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("has finished"), "{said}");
    let after: Vec<_> = records(&whole)
        .iter()
        .map(|f| read(&whole.join(f)))
        .collect();
    assert!(
        before == after,
        "resuming a finished run changed its records"
    );
}

#[test]
fn an_experiment_killed_anywhere_resumes_to_the_same_records() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write_scenario(tmp.path(), "conditions.toml", CONDITIONS);
    let whole = tmp.path().join("whole");
    let took = uninterrupted(&scenario, &whole);
    kill_and_resume(&scenario, &whole, took, &moments(), tmp.path());

    // Aborted inside the checkpoint of one of the later runs.
    let aborted = tmp.path().join("aborted");
    let out = spawn_run(&scenario, &aborted, Some("abort:checkpoint:2"))
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success(), "the injected abort stops the run");
    resume(&aborted);
    assert_same_records(&whole, &aborted, "aborted inside a checkpoint");
}

/// A panic (a bug) reaches the user as one line naming it an internal
/// error and where, exit code 1 and no backtrace; the rows already
/// computed are flushed to the records first.
#[test]
fn a_panic_is_one_line_exit_1_and_the_records_are_flushed() {
    let tmp = tempfile::tempdir().unwrap();
    // No checkpoint before the panic: the rows of generations 0 and 1 sit
    // in the recorder's buffers when it comes.
    let text = LEARNING.replace("checkpoint_every = 1", "checkpoint_every = 100");
    let scenario = write_scenario(tmp.path(), "learning.toml", &text);
    let run = tmp.path().join("run");
    let out = spawn_run(&scenario, &run, Some("panic:generation:2"))
        .wait_with_output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line, no backtrace: {err}");
    assert!(
        lines[0].starts_with("internal error: fault injected")
            && lines[0].contains("core/engine/src/fault.rs:"),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    let (_, rows) = csv(&run.join("generations.csv"));
    assert_eq!(rows.len(), 2, "generations 0 and 1 were flushed");

    // RUST_BACKTRACE asks for the backtrace.
    let out = Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args([
            "run",
            s(&scenario),
            "--out",
            s(&tmp.path().join("again")),
            "--quiet",
        ])
        .env("LINEAGE_FAULT", "panic:generation:0")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // A frame below the fault: its name (a path, or the bare name with
    // line-table debug information) is only in a backtrace.
    assert!(
        err.lines().count() > 1 && err.contains("evaluate_generation"),
        "{err}"
    );
}
