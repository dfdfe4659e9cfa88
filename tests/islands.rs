//! The island model in one process (issue 14): migration correctness on a
//! deterministic fitness, determinism across thread counts and runs.

mod common;

use std::path::Path;

use common::{csv, lineage_ok, read, s, write_scenario};
use lineage_engine::islands::{emigrants, immigrate, island_dir};
use lineage_engine::{Run, RunOptions};
use lineage_scenario::{Choice, Overrides};
use rand::SeedableRng;

fn scenario(islands: &str) -> String {
    format!(
        r#"
name = "archipelago"
seed = 11
generations = 9
population = 12
checkpoint_every = 3
[genome]
bits = 48
[fitness]
function = "onemax"
[selection]
method = "tournament"
tournament_size = 2
elitism = 1
[mutation]
bit_rate = 0.02
{islands}
"#
    )
}

const RING: &str = r#"[islands]
count = 3
migration_interval = 3
migrants = 2
[[islands.override]]
islands = [2]
set = { mutation = { bit_rate = 0.08 } }
"#;

fn run(dir: &Path, name: &str, text: &str, threads: &str) -> std::path::PathBuf {
    let file = write_scenario(dir, &format!("{name}.toml"), text);
    let out = dir.join(name);
    lineage_ok(&[
        "run",
        s(&file),
        "--out",
        s(&out),
        "--quiet",
        "--threads",
        threads,
    ]);
    out
}

#[test]
fn migrants_move_along_the_ring_at_the_interval_and_populations_keep_their_size() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), "ring", &scenario(RING), "2");
    let (header, rows) = csv(&out.join("migrations.csv"));
    assert_eq!(
        header,
        ["generation", "from_island", "from_id", "to_island", "to_id"]
    );
    // Generations 2, 5 and 8 end with an exchange: 3 islands x 2 migrants.
    assert_eq!(rows.len(), 3 * 3 * 2);
    for row in &rows {
        let g: u32 = row[0].parse().unwrap();
        let (from, to): (usize, usize) = (row[1].parse().unwrap(), row[3].parse().unwrap());
        assert_eq!((g + 1) % 3, 0, "{row:?}");
        assert_eq!(to, (from + 1) % 3, "{row:?}");
    }
    common::assert_island_populations(&out, 3, 9, 12);
    for island in 0..3 {
        // A migrant's new id is fresh in its new island.
        let (_, organisms) = csv(&out.join(island_dir(island)).join("organisms.csv"));
        for row in rows.iter().filter(|r| r[3] == island.to_string()) {
            assert!(!organisms.iter().any(|o| o[0] == row[4] && o[2] <= row[0]));
        }
    }
}

#[test]
fn island_runs_are_identical_across_thread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let text = scenario(&RING.replace("count = 3", "count = 4\ntopology = \"random\"\ndegree = 2\nemigrants = \"random\"\nreplace = \"random\""));
    let one = run(dir.path(), "one", &text, "1");
    let two = run(dir.path(), "two", &text, "2");
    assert_eq!(
        read(&one.join("migrations.csv")),
        read(&two.join("migrations.csv"))
    );
    for island in 0..4 {
        for table in ["generations.csv", "organisms.csv"] {
            assert_eq!(
                read(&one.join(island_dir(island)).join(table)),
                read(&two.join(island_dir(island)).join(table)),
                "island {island}: {table}"
            );
        }
    }
}

/// An emigrant arrives with its genome and fitness intact, under a new id,
/// in place of the target's worst organisms.
#[test]
fn an_arrival_keeps_its_genome_and_fitness_and_replaces_the_worst() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(dir.path(), "a.toml", &scenario(RING));
    let scenario = lineage_scenario::load(&file, &Overrides::default()).unwrap();
    let islands = scenario.islands.unwrap();
    let mut runs: Vec<Run> = islands
        .scenarios
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let options = RunOptions {
                out: Some(dir.path().join(format!("island-{i}"))),
                threads: 1,
            };
            Run::start(s.clone(), &options).unwrap()
        })
        .collect();
    for run in &mut runs {
        run.evaluate_generation().unwrap();
    }
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(0);
    let sent = emigrants(&mut runs[0], 0, Choice::Best, 2, &mut rng);
    let source = runs[0].population();
    let best = source
        .iter()
        .map(|(_, _, f)| f.values[0])
        .fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].fitness.values[0], best);
    let before = runs[1].population();
    let mut worst: Vec<_> = before.iter().map(|(l, _, f)| (f.values[0], l.id)).collect();
    worst.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let placed = immigrate(&mut runs[1], sent.clone(), Choice::Worst, &mut rng);
    let after = runs[1].population();
    assert_eq!(after.len(), before.len());
    // The two worst are gone, the arrivals are there under new ids.
    for (_, id) in &worst[..2] {
        assert!(!after.iter().any(|(l, _, _)| l.id == *id));
    }
    for (m, id) in &placed {
        let (lineage, genome, fitness) = after.iter().find(|(l, _, _)| l.id == *id).unwrap();
        assert_eq!(genome, &m.genome);
        assert_eq!(fitness, &m.fitness);
        assert_eq!(lineage.parents, [None, None]);
        let original = source.iter().find(|(l, _, _)| l.id == m.from_id).unwrap();
        assert_eq!(&original.1, genome);
    }
    for run in &mut runs {
        run.breed_generation().unwrap();
    }
}

/// A run killed in its sixth generation resumes from the latest generation
/// every island has a checkpoint of and ends with the records of a run
/// never killed, byte for byte; resuming it again changes nothing.
#[test]
fn a_killed_island_run_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let text = scenario(RING);
    let whole = run(dir.path(), "whole", &text, "2");
    let file = write_scenario(dir.path(), "killed.toml", &text);
    let killed = dir.path().join("killed");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args([
            "run",
            s(&file),
            "--out",
            s(&killed),
            "--quiet",
            "--threads",
            "2",
        ])
        .env("LINEAGE_FAULT", "abort:generation:5")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_ne!(
        read(&whole.join("migrations.csv")),
        read(&killed.join("migrations.csv"))
    );
    lineage_ok(&["resume", s(&killed), "--quiet", "--threads", "1"]);
    assert_eq!(
        read(&whole.join("migrations.csv")),
        read(&killed.join("migrations.csv"))
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&killed.join("manifest.json"))).unwrap();
    let sessions = manifest["sessions"].as_array().unwrap();
    let commands: Vec<_> = sessions.iter().map(|s| s["command"].clone()).collect();
    assert_eq!(commands, ["run", "resume"], "{manifest}");
    assert!(
        sessions
            .iter()
            .all(|s| s["processes"] == 1 && s["hosts"].as_array().unwrap().len() == 1)
    );
    assert_eq!(manifest["islands"], 3);
    assert!(manifest["finished"].is_string());
    for island in 0..3 {
        for table in ["generations.csv", "organisms.csv"] {
            assert_eq!(
                read(&whole.join(island_dir(island)).join(table)),
                read(&killed.join(island_dir(island)).join(table)),
                "island {island}: {table}"
            );
        }
    }
    let before = read(&killed.join("migrations.csv"));
    let again = lineage_ok(&["resume", s(&killed)]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to do"));
    assert_eq!(before, read(&killed.join("migrations.csv")));
}

/// The shipped scenario runs: 5 exchanges of 2 migrants round a ring of 4.
#[test]
fn the_shipped_island_scenario_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    lineage_ok(&[
        "run",
        s(&common::scenario("islands.toml")),
        "--out",
        s(&out),
        "--quiet",
    ]);
    let (_, rows) = csv(&out.join("migrations.csv"));
    assert_eq!(rows.len(), 5 * 4 * 2);
    for island in 0..4 {
        let (_, gens) = csv(&out.join(island_dir(island)).join("generations.csv"));
        assert_eq!(gens.len(), 15);
    }
}

/// `inspect` and `report` on an island run's root point at its islands.
#[test]
fn inspecting_an_island_run_points_at_its_islands() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), "ring", &scenario(RING), "1");
    for verb in ["inspect", "report"] {
        let o = common::lineage(&[verb, s(&out)]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(
            err.contains("island run") && err.contains("islands/island-<k>"),
            "{err}"
        );
    }
    lineage_ok(&["inspect", s(&out.join(island_dir(1)))]);
}

/// `--log-format json`: one JSON object per line, each generation's event
/// carrying the process, its islands, the island and the generation.
#[test]
fn island_progress_is_json_lines_with_process_and_islands() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(dir.path(), "ring.toml", &scenario(RING));
    let out = lineage_ok(&[
        "run",
        s(&file),
        "--out",
        s(&dir.path().join("run")),
        "--log-format",
        "json",
    ]);
    let mut generations = 0;
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(event["process"], 0, "{line}");
        if event["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("gen "))
        {
            assert_eq!(event["islands"], "0..3", "{line}");
            assert!(event["island"].as_u64().unwrap() < 3, "{line}");
            assert!(event["generation"].as_u64().unwrap() < 9, "{line}");
            assert_eq!(event["level"], "INFO");
            generations += 1;
        }
    }
    assert_eq!(generations, 3 * 9);
}

/// A binary built without MPI that an MPI launcher started as one of
/// several processes refuses to run (each process would write the same
/// records), and so does any binary for a scenario without islands.
#[cfg(not(feature = "mpi"))]
#[test]
fn several_processes_without_mpi_or_without_islands_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(dir.path(), "ring.toml", &scenario(RING));
    let under_launcher = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_lineage"))
            .args(args)
            .env("OMPI_COMM_WORLD_SIZE", "2")
            .output()
            .unwrap()
    };
    let out = under_launcher(&["run", s(&file), "--out", s(&dir.path().join("a"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("built without MPI") && err.contains("--features mpi"),
        "{err}"
    );
    let quickstart = common::scenario("quickstart.toml");
    let out = under_launcher(&["run", s(&quickstart), "--out", s(&dir.path().join("b"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not an island model"), "{err}");
    assert!(!dir.path().join("a").exists() && !dir.path().join("b").exists());
}
