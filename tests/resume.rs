//! Resume: a run continued from a checkpoint writes exactly what an
//! uninterrupted run writes.

mod common;

use common::*;

const FILES: [&str; 2] = ["generations.csv", "organisms.csv"];

#[test]
fn five_then_resume_to_ten_equals_ten_in_one_go() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = scenario("moving-optimum.toml");
    let whole = tmp.path().join("whole");
    let split = tmp.path().join("split");
    run_quiet(&scenario, 10, &whole);
    run_quiet(&scenario, 5, &split);
    lineage_ok(&["resume", s(&split), "--generations", "10", "--quiet"]);
    for f in FILES {
        assert!(
            read(&whole.join(f)) == read(&split.join(f)),
            "{f} differs after resume"
        );
    }
    let manifest = String::from_utf8(read(&split.join("manifest.json"))).unwrap();
    assert!(
        manifest.contains("\"resume\""),
        "the manifest records the resume session"
    );
}

/// A crash after a periodic checkpoint: later checkpoints and rows are
/// lost; resuming from the last checkpoint left (across an environment
/// change) gives the uninterrupted run's records.
#[test]
fn resume_from_an_earlier_checkpoint_after_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = scenario("moving-optimum.toml");
    let whole = tmp.path().join("whole");
    let crashed = tmp.path().join("crashed");
    run_quiet(&scenario, 50, &whole);
    run_quiet(&scenario, 50, &crashed);
    // checkpoint_every = 20: gen-000020, gen-000040, gen-000050 exist. Lose
    // the last two, as if the process died during generation 41.
    for lost in ["gen-000040", "gen-000050"] {
        std::fs::remove_dir_all(crashed.join("checkpoints").join(lost)).unwrap();
    }
    lineage_ok(&["resume", s(&crashed), "--generations", "50", "--quiet"]);
    for f in FILES {
        assert!(
            read(&whole.join(f)) == read(&crashed.join(f)),
            "{f} differs after resuming from gen-000020"
        );
    }
}

/// A run that did every generation asked for is finished: resuming it
/// changes nothing, says so and succeeds; asking for more runs on.
#[test]
fn resume_with_nothing_left_to_do_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    run_quiet(&scenario("moving-optimum.toml"), 3, &run);
    let before: Vec<_> = FILES.iter().map(|f| read(&run.join(f))).collect();
    for _ in 0..2 {
        let out = lineage_ok(&["resume", s(&run), "--generations", "3"]);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains("has finished: all 3 generations are done"),
            "{said}"
        );
        let after: Vec<_> = FILES.iter().map(|f| read(&run.join(f))).collect();
        assert!(before == after, "a finished run's records changed");
    }
    lineage_ok(&["resume", s(&run), "--generations", "4", "--quiet"]);
    assert_eq!(column(&run.join("generations.csv"), "generation").len(), 4);
}

/// Issue 10, bug 1: a run stopped by a criterion (target reached) stays
/// stopped, whatever `--generations` asks; it used to run one more
/// generation on every resume.
#[test]
fn resume_after_a_stop_criterion_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(scenario("onemax.toml"))
        .unwrap()
        .replace("bits = 1024", "bits = 64")
        .replace("target_fitness = 1024", "target_fitness = 64")
        .replace("population = 500", "population = 40");
    let path = write_scenario(tmp.path(), "small-onemax.toml", &text);
    let run = tmp.path().join("run");
    let out = lineage_ok(&["run", s(&path), "--out", s(&run)]);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("(stopped early: target reached)"),
        "{summary}"
    );
    let rows = column(&run.join("generations.csv"), "generation").len();
    assert!(rows < 300, "the target stopped the run early ({rows} rows)");
    let before: Vec<_> = FILES.iter().map(|f| read(&run.join(f))).collect();
    for generations in [None, Some("1000")] {
        let mut args = vec!["resume", s(&run)];
        args.extend(
            generations
                .map(|g| ["--generations", g])
                .into_iter()
                .flatten(),
        );
        let out = lineage_ok(&args);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains(&format!(
                "has finished: it stopped after {rows} generations (target reached), and the criterion still holds"
            )),
            "{said}"
        );
        let after: Vec<_> = FILES.iter().map(|f| read(&run.join(f))).collect();
        assert!(
            before == after,
            "resuming a stopped run changed its records"
        );
    }
}

#[test]
fn damaged_run_directories_are_bad_input_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    run_quiet(&scenario("zdt1.toml"), 3, &run);
    let state = run.join("checkpoints/gen-000003/state.json");
    let population = run.join("checkpoints/gen-000003/population.safetensors");
    let good_state = read(&state);
    let good_population = read(&population);
    let damages: [(&std::path::Path, &[u8], &str); 3] = [
        (&state, b"{\"format\": 1", "is not a checkpoint state"),
        (
            &population,
            b"not a safetensors file",
            "is not a safetensors file",
        ),
        (
            &run.join("generations.csv"),
            b"generation\n",
            "the file was truncated",
        ),
    ];
    for (path, bytes, says) in damages {
        let original = read(path);
        std::fs::write(path, bytes).unwrap();
        let out = lineage(&["resume", s(&run), "--generations", "5"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(says) && !err.contains("panicked"), "{err}");
        std::fs::write(path, original).unwrap();
    }
    assert_eq!(read(&state), good_state);
    assert_eq!(read(&population), good_population);
    lineage_ok(&["resume", s(&run), "--generations", "5", "--quiet"]);
}

/// The manifest records the CPU features that chose code paths; a resume
/// on a machine with others warns that the last bits may differ.
#[test]
fn resume_on_other_cpu_features_warns() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    run_quiet(&scenario("moving-optimum.toml"), 2, &run);
    let path = run.join("manifest.json");
    let manifest = String::from_utf8(read(&path)).unwrap();
    assert!(manifest.contains("\"cpu_features\""), "{manifest}");
    let out = lineage_ok(&["resume", s(&run), "--generations", "3", "--quiet"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("CPU features"),
        "same machine, no warning: {err}"
    );
    let start = manifest.find("\"cpu_features\"").unwrap();
    let end = start + manifest[start..].find(']').unwrap() + 1;
    let other = format!(
        "{}\"cpu_features\": [\"a-cpu-from-elsewhere\"]{}",
        &manifest[..start],
        &manifest[end..]
    );
    std::fs::write(&path, other).unwrap();
    let out = lineage_ok(&["resume", s(&run), "--generations", "4", "--quiet"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: this machine's CPU features")
            && err.contains("a-cpu-from-elsewhere")
            && err.contains("last bits"),
        "{err}"
    );
}
