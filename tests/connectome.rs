//! The Model Connectomes finding at reduced scale: the shipped
//! `connectome-pruning.toml`, shortened (a smaller corpus, fewer steps, a
//! smaller lifetime budget), must still show a pruning lineage's connectome
//! learning better from little data than a random connectome of the same
//! density, over three independent lineages (each condition's seed k starts
//! from the lineage's seed k), by more than two between-lineage standard
//! errors; the evaluation-suite plugin must score every lifetime; and the
//! suite is built into the `lineage` binary, so this runs with the binary
//! alone.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{csv, s, write_scenario};

/// Mean over a condition's runs of a column of organisms.csv (its last
/// generation) and of a suite metric in metrics.csv.
fn condition_mean(root: &Path, condition: &str, seeds: &[u64], metric: &str) -> f64 {
    let values = condition_values(root, condition, seeds, metric);
    values.iter().sum::<f64>() / values.len() as f64
}

/// Mean and standard error (sample sd / sqrt n) of `values`.
fn mean_se(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// A condition's value of a metric, one per run (seed order).
fn condition_values(root: &Path, condition: &str, seeds: &[u64], metric: &str) -> Vec<f64> {
    let mut values = Vec::new();
    for seed in seeds {
        let run = root.join(format!("conditions/{condition}/seed-{seed}"));
        if metric.contains('/') {
            let name = metric.rsplit('/').next().unwrap();
            let (_, rows) = csv(&run.join("metrics.csv"));
            let v: Vec<f64> = rows
                .iter()
                .filter(|r| r[3] == name)
                .map(|r| r[4].parse().unwrap())
                .collect();
            assert!(!v.is_empty(), "{condition} seed {seed}: no {metric}");
            values.push(v.iter().sum::<f64>() / v.len() as f64);
        } else {
            let (header, rows) = csv(&run.join("organisms.csv"));
            let k = header.iter().position(|h| h == metric).unwrap();
            let v: f64 = rows.last().unwrap()[k].parse().unwrap();
            values.push(v);
        }
    }
    assert!(
        values.iter().all(|v| v.is_finite()),
        "{condition}: {values:?}"
    );
    values
}

/// The `lineage` binary copied alone into `dir`, run there with an empty
/// plugin path and an empty target folder: the only plugins it can find
/// are the ones linked into it.
fn lineage_alone(dir: &Path, args: &[&str]) -> Output {
    let bin = dir.join("bin");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&empty).unwrap();
    let exe = bin.join("lineage");
    if !exe.exists() {
        // A hard link opens no file for writing; a copy does, and a child
        // forked meanwhile by another test's thread holds that descriptor
        // until it execs, so running the copy can fail with "text file
        // busy" for a moment (rust-lang/rust#114554).
        let built = env!("CARGO_BIN_EXE_lineage");
        if std::fs::hard_link(built, &exe).is_err() {
            std::fs::copy(built, &exe).unwrap();
        }
    }
    let run = || {
        Command::new(&exe)
            .args(args)
            .env("LINEAGE_PLUGIN_PATH", &empty)
            .env("CARGO_TARGET_DIR", &empty)
            .env_remove("RUST_BACKTRACE")
            .output()
    };
    let mut out = run();
    for _ in 0..100 {
        match &out {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(20));
                out = run();
            }
            _ => break,
        }
    }
    let out = out.expect("the copied lineage binary runs");
    common::assert_success(&out, &format!("lineage {args:?}"));
    out
}

#[test]
fn a_pruned_connectome_learns_better_from_little_data_than_a_random_one() {
    let tmp = tempfile::tempdir().unwrap();
    let shipped = common::root().join("scenarios/connectome-pruning.toml");
    let set =
        "set = { generations = 1, lifetime = { budget = 10000, steps = 200, eval_every = 50 } }";
    // The plugin by name, as the shipped scenario has it: only the copy
    // linked into the binary can answer.
    let text = format!(
        r#"
extends = "{shipped}"
name = "connectome-reduced"
generations = 4

[lifetime]
budget = 100000
steps = 300
environment = {{ kind = "hmm", tokens = 64, states = 32, successors = [3, 4], concentration = 0.5, emissions = [8, 12], zipf = 1.0, context = 8, corpus = 100000, heldout = 300, seed = 1 }}

[plugins.mc.config]
max_windows = 128

[[conditions]]
name = "lineage"
seeds = [11, 12, 13]

[[conditions]]
name = "Connectome"
from = "lineage"
seeds = [1, 2, 3]
{set}

[[conditions]]
name = "RandomConnectome"
from = "lineage"
connectome = {{ mask = "shuffle", signs = "random" }}
seeds = [1, 2, 3]
{set}
"#,
        shipped = s(&shipped),
    );
    let path = write_scenario(tmp.path(), "reduced.toml", &text);
    let root = tmp.path().join("run");
    lineage_alone(tmp.path(), &["run", s(&path), "--out", s(&root), "--quiet"]);

    // The suite came from the binary, not from a library file.
    let manifest: serde_json::Value = serde_json::from_slice(&common::read(
        &root.join("conditions/Connectome/seed-1/manifest.json"),
    ))
    .unwrap();
    let plugin = &manifest["plugins"][0];
    assert_eq!(plugin["alias"], "mc");
    assert_eq!(plugin["name"], "connectome");
    assert_eq!(plugin["path"], "built-in", "{plugin}");

    // Each seed is its own lineage and its own lifetimes: the spread is
    // between lineages.
    let seeds = [1, 2, 3];
    let connectome = condition_values(&root, "Connectome", &seeds, "final_heldout");
    let random = condition_values(&root, "RandomConnectome", &seeds, "final_heldout");
    let ((c, se_c), (r, se_r)) = (mean_se(&connectome), mean_se(&random));
    let se = (se_c * se_c + se_r * se_r).sqrt();
    eprintln!(
        "held-out loss over 3 lineages: Connectome {c} ± {se_c} {connectome:?}, RandomConnectome {r} ± {se_r} {random:?}"
    );
    assert!(
        r - c > 2.0 * se,
        "held-out loss: Connectome {c} should be below RandomConnectome {r} by more than two standard errors of the difference ({se})"
    );
    // The suite scored every lifetime against the chain's ground truth.
    for condition in ["Connectome", "RandomConnectome"] {
        let gap = condition_mean(&root, condition, &seeds, "mc:language/xent_gap");
        assert!(
            gap > 0.0,
            "{condition}: a model cannot beat the entropy rate ({gap})"
        );
        let choice = condition_mean(&root, condition, &seeds, "mc:language/choice_accuracy");
        assert!((0.0..=1.0).contains(&choice));
    }
    let choice = condition_mean(&root, "Connectome", &seeds, "mc:language/choice_accuracy");
    assert!(
        choice > 0.3,
        "the Connectome learned above chance: {choice}"
    );

    // The report compares them and writes its files.
    lineage_alone(
        tmp.path(),
        &["report", s(&root), "--baseline", "RandomConnectome"],
    );
    let report: serde_json::Value =
        serde_json::from_slice(&common::read(&root.join("report.json"))).unwrap();
    assert_eq!(report["conditions"][0]["name"], "RandomConnectome");
    assert!(root.join("report.csv").is_file() && root.join("report-curves.svg").is_file());
}

/// Every shipped scenario validates with the binary alone (its plugins
/// included), with nothing else built; but those whose environment an
/// example plugin supplies, which need that plugin built (their own tests,
/// `tests/context_decision.rs` and `tests/sequence_recall.rs`, build it and
/// run them).
#[test]
fn every_shipped_scenario_validates_with_the_binary_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let mut names: Vec<_> = std::fs::read_dir(common::root().join("scenarios"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter(|p| !common::needs_a_plugin_built(&std::fs::read_to_string(p).unwrap()))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "{names:?}");
    for path in &names {
        let out = lineage_alone(tmp.path(), &["validate", s(path)]);
        assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));
    }
}
