//! Island models over MPI (issue 14): the same records without MPI and
//! with 1, 2 and 4 processes; migration correctness across processes; a
//! killed process, and a resume with another number of processes.
//!
//! Built only with `--features mpi`, and run by `.ci/run` as
//! `cargo test --features mpi --test mpi`: it needs `mpirun` (Open MPI or
//! MPICH) on PATH. Every launch oversubscribes this machine's cores.
#![cfg(feature = "mpi")]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{csv, lineage_ok, read, s, write_scenario};
use lineage_engine::islands::island_dir;

/// `lineage ARGS` started by `mpirun` as `processes` processes.
fn mpirun(processes: usize, args: &[&str]) -> Output {
    mpirun_with(processes, args, &[])
}

/// [`mpirun`] with extra environment variables.
fn mpirun_with(processes: usize, args: &[&str], env: &[(&str, &str)]) -> Output {
    // Each launch its own session folder: two `mpirun`s started at once by
    // parallel tests race to create Open MPI's default one
    // (`/tmp/ompi.HOST.UID`), and the loser fails in orte_init ("File
    // exists"), as one CI run did.
    let session = tempfile::tempdir().expect("a temporary folder");
    // A hang fails the test instead of holding CI until its own limit.
    Command::new("mpirun")
        .args(["--oversubscribe", "--timeout", "300"])
        .args(["-np", &processes.to_string()])
        .arg(env!("CARGO_BIN_EXE_lineage"))
        .args(args)
        // Containers run tests as root, which Open MPI refuses unless told;
        // and they often forbid the cross-memory attach of shared-memory
        // transport (it falls back to copies).
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
        .env("OMPI_MCA_orte_tmpdir_base", session.path())
        .env_remove("RUST_BACKTRACE")
        .envs(env.iter().copied())
        .output()
        .expect("mpirun runs (install openmpi-bin, see README \"Island model\")")
}

fn mpirun_ok(processes: usize, args: &[&str]) -> Output {
    let out = mpirun(processes, args);
    common::assert_success(&out, &format!("mpirun -np {processes} lineage {args:?}"));
    out
}

/// Every CSV record of an island run, by path under its directory, but
/// `timings.csv` (wall-clock times).
fn records(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "csv")
                && path.file_name().is_some_and(|n| n != "timings.csv")
            {
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), read(&path));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn assert_same_records(a: &Path, b: &Path) {
    let (ra, rb) = (records(a), records(b));
    assert_eq!(
        ra.keys().collect::<Vec<_>>(),
        rb.keys().collect::<Vec<_>>(),
        "{} and {} hold different tables",
        a.display(),
        b.display()
    );
    for (path, bytes) in &ra {
        assert!(
            *bytes == rb[path],
            "{} differs between {} and {}",
            path.display(),
            a.display(),
            b.display()
        );
    }
}

/// Learning organisms that keep their learned weights (Lamarckian), so
/// migrants carry weights and curves across processes; a random topology,
/// random emigrants and random replacement, so every exchange stream is
/// used.
const LEARNING: &str = r#"
name = "mpi-learning"
seed = 21
generations = 7
population = 6
checkpoint_every = 2
[genome]
genes = [{ name = "lr", min = 0.01, max = 0.3, log = true }]
[fitness]
function = "heldout_loss"
[selection]
method = "tournament"
tournament_size = 2
elitism = 1
[mutation]
sigma = 0.1
[lifetime]
budget = 64
steps = 12
batch = 16
eval_every = 4
inheritance = "lamarckian"
environment = { kind = "gaussian_clusters", classes = 3, dim = 6, spread = 1.0, heldout = 64, seed = 5 }
model = { kind = "mlp", hidden = [8], activation = "relu" }
optimizer = { method = "sgd", momentum = 0.9 }
[islands]
count = 4
migration_interval = 2
migrants = 2
topology = "random"
degree = 2
emigrants = "random"
replace = "random"
[[islands.override]]
islands = [3]
set = { mutation = { sigma = 0.3 } }
"#;

#[test]
fn records_are_identical_without_mpi_and_with_1_2_and_4_processes() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(dir.path(), "learning.toml", LEARNING);
    let alone = dir.path().join("alone");
    lineage_ok(&["run", s(&file), "--out", s(&alone), "--quiet"]);
    let (_, rows) = csv(&alone.join("migrations.csv"));
    // Generations 1, 3 and 5 end with an exchange: 4 islands x 2 targets
    // x 2 migrants.
    assert_eq!(rows.len(), 3 * 4 * 2 * 2);
    for processes in [1, 2, 4] {
        let out = dir.path().join(format!("np{processes}"));
        mpirun_ok(
            processes,
            &[
                "run",
                s(&file),
                "--out",
                s(&out),
                "--quiet",
                "--threads",
                "1",
            ],
        );
        assert_same_records(&alone, &out);
    }
}

/// OneMax on a ring of 3 islands, one per process: every migration goes
/// from island i to island i + 1 exactly at the end of generations 2, 5
/// and 8, populations keep their size, and arrivals' genomes are intact.
///
/// Arrivals are not rows of their new island's `organisms.csv` (they were
/// evaluated at home), so a genome is checked through their children:
/// without mutation or crossover a child's genome is its parent's.
#[test]
fn migrants_arrive_at_the_next_island_at_the_interval_with_their_genomes() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(
        dir.path(),
        "ring.toml",
        r#"
name = "ring"
seed = 5
generations = 9
population = 12
[genome]
bits = 64
[fitness]
function = "onemax"
[selection]
method = "tournament"
tournament_size = 2
elitism = 1
[mutation]
bit_rate = 0.0
[islands]
count = 3
migration_interval = 3
migrants = 2
"#,
    );
    let out = dir.path().join("ring");
    mpirun_ok(3, &["run", s(&file), "--out", s(&out), "--quiet"]);
    let (_, rows) = csv(&out.join("migrations.csv"));
    assert_eq!(rows.len(), 3 * 3 * 2);
    let organisms: Vec<Vec<Vec<String>>> = (0..3)
        .map(|i| csv(&out.join(island_dir(i)).join("organisms.csv")).1)
        .collect();
    // (island, id) -> genome fingerprint, from the records and then from
    // the migrations in order (an arrival may emigrate again).
    let mut genome: BTreeMap<(usize, String), String> = BTreeMap::new();
    for (island, rows) in organisms.iter().enumerate() {
        for o in rows {
            genome.insert((island, o[0].clone()), o[6].clone());
        }
    }
    let mut checked = 0;
    for row in &rows {
        let g: u32 = row[0].parse().unwrap();
        let (from, to): (usize, usize) = (row[1].parse().unwrap(), row[3].parse().unwrap());
        assert_eq!((g + 1) % 3, 0, "{row:?}");
        assert_eq!(to, (from + 1) % 3, "{row:?}");
        let sent = genome[&(from, row[2].clone())].clone();
        for child in organisms[to]
            .iter()
            .filter(|o| o[3] == row[4] || o[4] == row[4])
        {
            assert_eq!(child[6], sent, "a child of arrival {row:?}");
            checked += 1;
        }
        genome.insert((to, row[4].clone()), sent);
    }
    assert!(checked > 0, "no arrival had a child");
    common::assert_island_populations(&out, 3, 9, 12);
}

/// Process 1 of 2 dies in generation 5 (as under SIGKILL): the run stops,
/// process 0 says why and how to resume; the run resumes with 4
/// processes and ends with the records of a run never killed; resuming
/// it again with one process changes nothing.
#[test]
fn a_killed_process_stops_the_run_and_it_resumes_with_another_process_count() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(dir.path(), "learning.toml", LEARNING);
    let whole = dir.path().join("whole");
    lineage_ok(&["run", s(&file), "--out", s(&whole), "--quiet"]);
    let killed = dir.path().join("killed");
    let out = mpirun_with(
        2,
        &[
            "run",
            s(&file),
            "--out",
            s(&killed),
            "--quiet",
            "--threads",
            "1",
        ],
        &[("LINEAGE_FAULT", "abort:generation:5@1")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("process 0 of 2 was stopped by the MPI launcher")
            && err.contains(&format!("lineage resume {}", killed.display())),
        "{err}"
    );
    assert_ne!(records(&whole), records(&killed));
    mpirun_ok(4, &["resume", s(&killed), "--quiet", "--threads", "1"]);
    assert_same_records(&whole, &killed);
    // The root manifest (process 0's) names both sessions' processes and
    // hosts.
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&killed.join("manifest.json"))).unwrap();
    let sessions = manifest["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{manifest}");
    assert_eq!(sessions[0]["processes"], 2);
    assert_eq!(sessions[0]["hosts"].as_array().unwrap().len(), 2);
    assert!(sessions[0]["finished"].is_null());
    assert_eq!(sessions[1]["command"], "resume");
    assert_eq!(sessions[1]["processes"], 4);
    assert_eq!(sessions[1]["hosts"].as_array().unwrap().len(), 4);
    assert!(sessions[1]["from_generation"].as_u64().unwrap() < 5);
    assert!(manifest["finished"].is_string());
    let before = records(&killed);
    let again = mpirun_ok(1, &["resume", s(&killed)]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to do"));
    assert!(before == records(&killed));
}

/// Process 1 of 2 fails with an error in generation 5 (as a full disk
/// would make it): it says why, process 0 stops at the same agreement
/// naming it, both finalise MPI and exit 1 without the launcher killing
/// anyone; the run resumes with 2 processes to the records of a run never
/// stopped.
#[test]
fn a_process_that_fails_stops_every_process_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(dir.path(), "learning.toml", LEARNING);
    let whole = dir.path().join("whole");
    lineage_ok(&["run", s(&file), "--out", s(&whole), "--quiet"]);
    let failed = dir.path().join("failed");
    let out = mpirun_with(
        2,
        &[
            "run",
            s(&file),
            "--out",
            s(&failed),
            "--quiet",
            "--threads",
            "1",
        ],
        &[("LINEAGE_FAULT", "error:generation:5@1")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("error: fault injected by LINEAGE_FAULT at Generation 5"),
        "{err}"
    );
    assert!(
        err.contains("error: process 1 of 2 failed in generation 5 (its own error says why), so process 0 of 2 stopped too")
            && err.contains(&format!("`lineage resume {}`", failed.display())),
        "{err}"
    );
    // Both stopped on their own: the launcher killed no one.
    assert!(!err.contains("was stopped by the MPI launcher"), "{err}");
    mpirun_ok(2, &["resume", s(&failed), "--quiet", "--threads", "1"]);
    assert_same_records(&whole, &failed);

    // Batches that reach process 1 damaged at the exchange of generation
    // 3: it still takes part in gathering the migration rows (process 0
    // waits for it there), then every process stops at the next agreement.
    let damaged = dir.path().join("damaged");
    let out = mpirun_with(
        2,
        &[
            "run",
            s(&file),
            "--out",
            s(&damaged),
            "--quiet",
            "--threads",
            "1",
        ],
        &[("LINEAGE_FAULT", "error:arrival:3@1")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("fault injected by LINEAGE_FAULT at Arrival 3")
            && err.contains("process 1 of 2 failed in generation 4"),
        "{err}"
    );
    assert!(!err.contains("was stopped by the MPI launcher"), "{err}");
    mpirun_ok(3, &["resume", s(&damaged), "--quiet", "--threads", "1"]);
    assert_same_records(&whole, &damaged);
}

/// More processes than islands, and a scenario without islands under
/// several processes: clear errors, nothing run.
#[test]
fn processes_that_cannot_share_the_work_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(dir.path(), "learning.toml", LEARNING);
    let out = mpirun(5, &["run", s(&file), "--out", s(&dir.path().join("five"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("5 processes for 4 islands") && err.contains("at most 4 processes"),
        "{err}"
    );
    let quickstart = common::scenario("quickstart.toml");
    let out = mpirun(
        2,
        &["run", s(&quickstart), "--out", s(&dir.path().join("qs"))],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("not an island model"), "{err}");
    assert!(!dir.path().join("qs").exists());
}
