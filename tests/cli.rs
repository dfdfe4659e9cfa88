//! The `lineage` command line: runs, run directories, reports and the
//! environment schedule, seen as a user sees them.

mod common;

use common::*;

#[test]
fn run_without_a_scenario_runs_the_embedded_quickstart_into_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = lineage_in(tmp.path(), &["run", "--generations", "4"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Vec<_> = std::fs::read_dir(tmp.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1);
    let dir = &runs[0];
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("quickstart-20") && name.ends_with('Z'),
        "run directory {name}"
    );
    for f in [
        "manifest.json",
        "scenario.toml",
        "generations.csv",
        "organisms.csv",
        "timings.csv",
    ] {
        assert!(dir.join(f).is_file(), "{f} is missing");
    }
    assert!(dir.join("checkpoints/gen-000004/state.json").is_file());
    assert!(
        dir.join("checkpoints/gen-000004/population.safetensors")
            .is_file()
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some())
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary checkpoint directories were left behind"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&dir.join("manifest.json"))).unwrap();
    assert_eq!(manifest["seed"], 42);
    assert!(manifest["threads"].as_u64().unwrap() >= 1);
    assert_eq!(manifest["generations_completed"], 4);
    assert_eq!(manifest["scenario"], "quickstart");
    assert!(manifest["scenario_sha256"].as_str().unwrap().len() == 64);
    assert!(manifest["finished"].is_string() && manifest["host"].is_string());
    // The summary names the run directory and the objective.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("trap_best") && stdout.contains("generations:  4"),
        "{stdout}"
    );
    // The resolved scenario validates and equals the run's scenario.
    lineage_ok(&["validate", s(&dir.join("scenario.toml"))]);
    let (header, rows) = csv(&dir.join("timings.csv"));
    assert_eq!(header.len(), 9);
    assert_eq!(rows.len(), 4);
}

#[test]
fn a_nonempty_out_directory_is_refused_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let keep = tmp.path().join("keep.txt");
    std::fs::write(&keep, "earlier results").unwrap();
    let out = lineage(&["run", "--out", s(tmp.path()), "--generations", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists and is not empty"));
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "earlier results");
    let out = lineage(&["run", "--out", s(&keep), "--generations", "2"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a file in the way is refused too"
    );
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "earlier results");
}

#[test]
fn inspect_and_report_describe_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("zdt1");
    run_quiet(&scenario("zdt1.toml"), 12, &dir);
    let inspect = lineage_ok(&["inspect", s(&dir)]);
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        text.contains("generations:  12") && text.contains("f1_best") && text.contains("f2_median"),
        "{text}"
    );
    let report = lineage_ok(&["report", s(&dir)]);
    assert!(String::from_utf8_lossy(&report.stdout).contains("report-f2.svg"));
    for objective in ["f1", "f2"] {
        let svg = String::from_utf8(read(&dir.join(format!("report-{objective}.svg")))).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("polyline"),
            "report-{objective}.svg has no plotted line"
        );
        assert!(
            svg.contains("median") && svg.contains("generation"),
            "the plot is labelled"
        );
    }
}

#[test]
fn the_environment_schedule_changes_pressure_at_its_generations() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("moving");
    lineage_ok(&[
        "run",
        s(&scenario("moving-optimum.toml")),
        "--out",
        s(&dir),
        "--quiet",
        "--generations",
        "90",
    ]);
    let generations = dir.join("generations.csv");
    let phase = column(&generations, "phase");
    let evaluated = column(&generations, "evaluated");
    let best = column(&generations, "sphere_best");
    let population = column(&generations, "population");
    for (g, p) in phase.iter().enumerate() {
        let expected = if g < 40 {
            0.0
        } else if g < 80 {
            1.0
        } else {
            2.0
        };
        assert_eq!(*p, expected, "phase at generation {g}");
    }
    // Without a change only newborns are evaluated (2 elites survive); at
    // the change every survivor is evaluated again.
    assert_eq!(evaluated[39], population[39] - 2.0);
    assert_eq!(evaluated[40], population[40]);
    // The optimum moved from 0 to 2 on 5 axes: the best value jumps up,
    // and evolution brings it back down.
    assert!(
        best[39] < 0.01 && best[40] > 1.0,
        "best {} -> {}",
        best[39],
        best[40]
    );
    assert!(
        best[79] < 0.01,
        "the population followed the optimum: best {}",
        best[79]
    );
}

#[test]
fn an_environment_change_of_population_size_takes_effect() {
    let tmp = tempfile::tempdir().unwrap();
    let text = r#"
name = "grow"
generations = 6
population = 30
genome = { bits = 32 }
fitness = { function = "onemax" }
[[environment]]
at_generation = 3
set = { population = 50, selection = { tournament_size = 5 } }
"#;
    let path = write_scenario(tmp.path(), "grow.toml", text);
    let dir = tmp.path().join("run");
    lineage_ok(&["run", s(&path), "--out", s(&dir), "--quiet"]);
    assert_eq!(
        column(&dir.join("generations.csv"), "population"),
        [30.0, 30.0, 30.0, 50.0, 50.0, 50.0]
    );
}

#[test]
fn stopping_criteria_end_the_run_early() {
    let tmp = tempfile::tempdir().unwrap();
    // The quickstart stops when it reaches the trap's optimum.
    let dir = tmp.path().join("quick");
    lineage_ok(&[
        "run",
        s(&scenario("quickstart.toml")),
        "--out",
        s(&dir),
        "--quiet",
    ]);
    let best = column(&dir.join("generations.csv"), "trap_best");
    assert!(
        best.len() < 150,
        "target reached before the last generation"
    );
    assert_eq!(*best.last().unwrap(), 200.0);
    assert!(
        best[..best.len() - 1].iter().all(|&b| b < 200.0),
        "it stops at the first generation that reaches it"
    );
    let manifest = String::from_utf8(read(&dir.join("manifest.json"))).unwrap();
    assert!(
        manifest.contains("\"stop_reason\": \"target_reached\""),
        "{manifest}"
    );

    // No mutation, no crossover: the population converges and stagnates.
    let text = r#"
name = "stagnant"
generations = 500
population = 20
genome = { bits = 16 }
fitness = { function = "onemax" }
mutation = { bit_rate = 0.0 }
stop = { stagnation = 5 }
"#;
    let path = write_scenario(tmp.path(), "stagnant.toml", text);
    let dir = tmp.path().join("stagnant");
    lineage_ok(&["run", s(&path), "--out", s(&dir), "--quiet"]);
    let best = column(&dir.join("generations.csv"), "onemax_best");
    assert!(best.len() < 500);
    let n = best.len();
    assert!(
        best[n - 6..].iter().all(|&b| b == best[n - 6]),
        "five generations without improvement before the stop"
    );
    assert!(
        String::from_utf8(read(&dir.join("manifest.json")))
            .unwrap()
            .contains("\"stagnation\"")
    );
}

#[test]
fn lineage_records_parents_and_births() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    run_quiet(&scenario("zdt1.toml"), 3, &dir);
    let (header, rows) = csv(&dir.join("organisms.csv"));
    assert_eq!(
        header,
        [
            "id",
            "birth",
            "generation",
            "parent1",
            "parent2",
            "f1",
            "f2",
            "genome"
        ]
    );
    let ids: Vec<u64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "ids are unique");
    for r in &rows {
        let birth: u64 = r[1].parse().unwrap();
        if birth == 0 {
            assert!(
                r[3].is_empty() && r[4].is_empty(),
                "founders have no parents"
            );
        } else {
            let parent: u64 = r[3].parse().unwrap();
            assert!(
                parent < r[0].parse().unwrap(),
                "parents are born before their children"
            );
        }
    }
}

/// A reader that stops early (`lineage validate X | head -1`) is not an
/// error: the printing stops quietly, exit 0, no "internal error".
#[test]
fn a_closed_stdout_ends_the_output_quietly() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let scenario = root().join("scenarios/icl-recurrent.toml");
    for _ in 0..3 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lineage"))
            .args(["validate", s(&scenario)])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("RUST_BACKTRACE")
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(status.success() && err.is_empty(), "{status}: {err}");
    }
}
