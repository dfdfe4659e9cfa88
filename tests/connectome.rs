//! The Model Connectomes finding at reduced scale: the shipped
//! `connectome-pruning.toml`, shortened (a smaller corpus, fewer steps, a
//! smaller lifetime budget), must still show a pruning lineage's connectome
//! learning better from little data than a random connectome of the same
//! density, over three seeds; and the evaluation-suite plugin must score
//! every lifetime.

mod common;

use std::path::Path;
use std::process::Command;

use common::{csv, lineage_ok, s, write_scenario};

/// Builds the suite plugin with the binary's profile and returns it.
fn suite_plugin() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_lineage"))
        .parent()
        .unwrap()
        .to_path_buf();
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(common::root())
        .args(["build", "-p", "lineage-connectome-suite"]);
    if dir.ends_with("release") {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "building the suite plugin failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join(format!(
        "{}lineage_connectome_suite{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

/// Mean over a condition's runs of a column of organisms.csv (its last
/// generation) and of a suite metric in metrics.csv.
fn condition_mean(root: &Path, condition: &str, seeds: &[u64], metric: &str) -> f64 {
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
    values.iter().sum::<f64>() / values.len() as f64
}

#[test]
fn a_pruned_connectome_learns_better_from_little_data_than_a_random_one() {
    let plugin = suite_plugin();
    let tmp = tempfile::tempdir().unwrap();
    let shipped = common::root().join("scenarios/connectome-pruning.toml");
    let set =
        "set = { generations = 1, lifetime = { budget = 10000, steps = 200, eval_every = 50 } }";
    let text = format!(
        r#"
extends = "{shipped}"
name = "connectome-reduced"
generations = 4

[lifetime]
budget = 100000
steps = 300
environment = {{ kind = "hmm", tokens = 64, states = 32, successors = [3, 4], concentration = 0.5, emissions = [8, 12], zipf = 1.0, context = 8, corpus = 100000, heldout = 300, seed = 1 }}

[plugins.mc]
library = "{plugin}"

[plugins.mc.config]
max_windows = 128

[[conditions]]
name = "lineage"

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
        plugin = s(&plugin),
    );
    let path = write_scenario(tmp.path(), "reduced.toml", &text);
    let root = tmp.path().join("run");
    lineage_ok(&["run", s(&path), "--out", s(&root), "--quiet"]);

    let seeds = [1, 2, 3];
    let connectome = condition_mean(&root, "Connectome", &seeds, "final_heldout");
    let random = condition_mean(&root, "RandomConnectome", &seeds, "final_heldout");
    eprintln!("held-out loss over 3 seeds: Connectome {connectome}, RandomConnectome {random}");
    assert!(
        connectome < random,
        "held-out loss: Connectome {connectome} should be below RandomConnectome {random}"
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
    lineage_ok(&["report", s(&root), "--baseline", "RandomConnectome"]);
    let report: serde_json::Value =
        serde_json::from_slice(&common::read(&root.join("report.json"))).unwrap();
    assert_eq!(report["conditions"][0]["name"], "RandomConnectome");
    assert!(root.join("report.csv").is_file() && root.join("report-curves.svg").is_file());
}
