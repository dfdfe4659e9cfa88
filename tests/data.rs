//! The `dataset` environment end to end: the shipped digits learn, records
//! do not depend on the thread count and survive a resume, the manifest
//! records the data file and a resume refuses a changed one, and bad
//! tables are named with file, line and field.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// A small copy of `digits-baldwin.toml` (one condition, 8 organisms, 40
/// steps) whose data file is a copy in `dir`, so a test may change it.
fn digits(dir: &Path, extra: &str) -> PathBuf {
    std::fs::copy(
        root().join("scenarios/data/digits/digits.npz"),
        dir.join("digits.npz"),
    )
    .unwrap();
    let text = format!(
        r#"
name = "digits-small"
seed = 4
generations = 4
population = 8
checkpoint_every = 2
[genome]
genes = [{{ name = "lr", min = 1e-3, max = 0.3, log = true }}]
[fitness]
function = "heldout_loss"
[selection]
method = "tournament"
tournament_size = 2
elitism = 1
[mutation]
sigma = 0.1
gene_rate = 1.0
[lifetime]
budget = 100
steps = 40
batch = 20
eval_every = 20
environment = {{ kind = "dataset", path = "digits.npz", task = "classification", standardize = true, seed = 3 }}
model = {{ kind = "mlp", hidden = [16], activation = "relu" }}
optimizer = {{ method = "sgd", momentum = 0.9 }}
{extra}
"#
    );
    write_scenario(dir, "digits.toml", &text)
}

#[test]
fn digits_learn_identically_on_any_thread_count_and_after_a_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = digits(tmp.path(), "");
    let (one, two, split) = (
        tmp.path().join("one"),
        tmp.path().join("two"),
        tmp.path().join("split"),
    );
    let run = |out: &Path, threads: &str, generations: &str| {
        lineage_ok(&[
            "run",
            s(&scenario),
            "--out",
            s(out),
            "--threads",
            threads,
            "--generations",
            generations,
            "--quiet",
        ]);
    };
    run(&one, "1", "4");
    run(&two, "2", "4");
    run(&split, "2", "2");
    lineage_ok(&["resume", s(&split), "--generations", "4", "--quiet"]);
    for f in [
        "generations.csv",
        "organisms.csv",
        "curves.csv",
        "probes.csv",
    ] {
        assert!(
            read(&one.join(f)) == read(&two.join(f)),
            "{f}: 1 vs 2 threads"
        );
        assert!(
            read(&one.join(f)) == read(&split.join(f)),
            "{f}: after a resume"
        );
    }
    // Learning from 100 examples: well above chance (0.1) on held-out digits.
    let accuracy: Vec<f64> = {
        let (header, rows) = csv(&one.join("probes.csv"));
        let at = |name: &str| header.iter().position(|h| h == name).unwrap();
        let (metric, value, step) = (at("metric"), at("value"), at("step"));
        rows.iter()
            .filter(|r| r[metric] == "accuracy" && r[step] == "40")
            .map(|r| r[value].parse().unwrap())
            .collect()
    };
    // One per lifetime: 8 founders, then 7 newborns a generation (the
    // elite keeps its lifetime).
    assert_eq!(
        accuracy.len(),
        8 + 3 * 7,
        "one accuracy per lifetime at step 40"
    );
    let mean = accuracy.iter().sum::<f64>() / accuracy.len() as f64;
    assert!(mean > 0.5, "mean held-out accuracy {mean}");
    // The manifest records the file; a changed file stops a resume.
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&one.join("manifest.json"))).unwrap();
    let files = manifest["data_files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{manifest}");
    assert!(files[0]["path"].as_str().unwrap().ends_with("digits.npz"));
    assert_eq!(files[0]["sha256"].as_str().unwrap().len(), 64);
    let recorded = files[0]["sha256"].as_str().unwrap().to_owned();
    let data = tmp.path().join("digits.npz");
    std::fs::write(&data, zip_with_extra(&std::fs::read(&data).unwrap())).unwrap();
    let out = lineage(&["resume", s(&one), "--generations", "6", "--quiet"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("digits.npz changed since the run started") && err.contains(&recorded),
        "{err}"
    );
}

/// `archive` with a comment: the same data set, other bytes.
fn zip_with_extra(archive: &[u8]) -> Vec<u8> {
    let mut bytes = archive.to_vec();
    // A trailing comment in the end-of-central-directory record changes the
    // bytes without changing a member: set its length and append it.
    let eocd = bytes
        .windows(4)
        .rposition(|w| w == [0x50, 0x4b, 0x05, 0x06])
        .expect("an end-of-central-directory record");
    let comment = b"changed";
    bytes.truncate(eocd + 20);
    bytes.extend_from_slice(&(comment.len() as u16).to_le_bytes());
    bytes.extend_from_slice(comment);
    bytes
}

#[test]
fn bad_dataset_tables_are_named_with_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(digits(tmp.path(), "")).unwrap();
    let env = r#"environment = { kind = "dataset", path = "digits.npz", task = "classification", standardize = true, seed = 3 }"#;
    for (replacement, needles) in [
        (
            r#"environment = { kind = "dataset", path = "nowhere.npz", task = "classification" }"#,
            &["lifetime.environment", "nowhere.npz", "no such file"][..],
        ),
        (
            r#"environment = { kind = "dataset", path = "digits.npz", task = "classify" }"#,
            &[
                "lifetime.environment.task",
                "`task` is `classify`",
                "classification",
            ],
        ),
        (
            r#"environment = { kind = "dataset", path = "digits.npz", task = "classification", labels = "label" }"#,
            &["digits.npz, array `label`: no such array", "`x`, `y`"],
        ),
        (
            r#"environment = { kind = "dataset", path = "digits.npz", task = "regression", labels = "y" }"#,
            &["lifetime.environment.labels", "does not apply"],
        ),
        (
            r#"environment = { kind = "dataset", path = "digits.npz", task = "classification", heldout_fraction = 0.95 }"#,
            &["lifetime.budget", "cannot draw 100 examples", "holds 90"],
        ),
    ] {
        let text = good.replace(env, replacement);
        assert_ne!(text, good);
        let file = write_scenario(tmp.path(), "bad.toml", &text);
        let out = lineage(&["validate", s(&file)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{replacement}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(err.contains("bad.toml:"), "{replacement}: {err}");
        for n in needles {
            assert!(err.contains(n), "{replacement}: `{n}` missing from {err}");
        }
    }
}
