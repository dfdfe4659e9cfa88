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

#[test]
fn resume_with_nothing_left_to_do_is_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    run_quiet(&scenario("moving-optimum.toml"), 3, &run);
    let out = lineage(&["resume", s(&run), "--generations", "3"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already has 3 generations"), "{err}");
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
