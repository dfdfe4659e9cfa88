//! Determinism: the same scenario and seed give byte-identical records
//! whatever the thread count.

mod common;

use common::*;

/// Large enough that breeding and evaluation take their parallel paths,
/// with crossover, real genes and an environment change.
const MIXED: &str = r#"
name = "determinism"
seed = 5
generations = 8
population = 3000
checkpoint_every = 3
[genome]
bits = 128
genes = [{ name = "lr", count = 3, min = 1e-4, max = 1e-1, log = true }]
[fitness]
function = "onemax"
[selection]
method = "tournament"
tournament_size = 3
elitism = 5
[mutation]
bit_rate = 0.01
sigma = 0.2
gene_rate = 0.5
[crossover]
method = "uniform"
rate = 0.7
[[environment]]
at_generation = 4
set = { population = 2500, mutation = { bit_rate = 0.05 } }
"#;

fn records_with_threads(
    scenario: &str,
    threads: &str,
    dir: &std::path::Path,
) -> (Vec<u8>, Vec<u8>) {
    let out = dir.join(format!("run-{threads}"));
    lineage_ok(&[
        "run",
        scenario,
        "--threads",
        threads,
        "--out",
        s(&out),
        "--quiet",
    ]);
    (
        read(&out.join("generations.csv")),
        read(&out.join("organisms.csv")),
    )
}

#[test]
fn thread_count_does_not_change_records() {
    let tmp = tempfile::tempdir().unwrap();
    let mixed = write_scenario(tmp.path(), "mixed.toml", MIXED);
    for scenario in [mixed, scenario("zdt1.toml")] {
        let scenario = s(&scenario);
        let one = records_with_threads(scenario, "1", tmp.path());
        let two = records_with_threads(scenario, "2", tmp.path());
        assert!(
            one.0.len() > 100 && one.1.len() > 1000,
            "records were written for {scenario}"
        );
        assert!(
            one.0 == two.0,
            "generations.csv differs between 1 and 2 threads for {scenario}"
        );
        assert!(
            one.1 == two.1,
            "organisms.csv differs between 1 and 2 threads for {scenario}"
        );
        std::fs::remove_dir_all(tmp.path().join("run-1")).unwrap();
        std::fs::remove_dir_all(tmp.path().join("run-2")).unwrap();
    }
}

#[test]
fn a_different_seed_gives_a_different_run() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_scenario(tmp.path(), "mixed.toml", MIXED);
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    lineage_ok(&[
        "run",
        s(&path),
        "--generations",
        "2",
        "--out",
        s(&a),
        "--quiet",
    ]);
    lineage_ok(&[
        "run",
        s(&path),
        "--generations",
        "2",
        "--seed",
        "6",
        "--out",
        s(&b),
        "--quiet",
    ]);
    assert_ne!(
        read(&a.join("organisms.csv")),
        read(&b.join("organisms.csv"))
    );
}

/// The candle models (GRU, transformer) learn with the same records
/// whatever the thread count, like the GA and the fast MLP path.
#[test]
fn thread_count_does_not_change_candle_lifetimes() {
    let corpus = root().join("scenarios/data/shakespeare.txt");
    for model in [
        "kind = \"gru\", hidden = 12",
        "kind = \"transformer\", d_model = 16, heads = 2, layers = 1",
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let text = format!(
            r#"
name = "candle-determinism"
seed = 3
generations = 2
population = 4
[genome]
genes = [{{ name = "lr", min = 0.002, max = 0.02, log = true }}]
[fitness]
function = "heldout_loss"
[selection]
method = "tournament"
tournament_size = 2
[mutation]
sigma = 0.1
[lifetime]
budget = 400
steps = 12
batch = 8
eval_every = 4
curve_heldout = 24
inheritance = "lamarckian"
optimizer = {{ method = "adam" }}
environment = {{ kind = "text", path = "{}", context = 12, heldout = 32 }}
model = {{ {model} }}
"#,
            corpus.display()
        );
        let path = write_scenario(tmp.path(), "candle.toml", &text);
        let mut records = Vec::new();
        for threads in ["1", "2"] {
            let out = tmp.path().join(format!("run-{threads}"));
            lineage_ok(&[
                "run",
                s(&path),
                "--threads",
                threads,
                "--out",
                s(&out),
                "--quiet",
            ]);
            records.push(
                ["generations.csv", "organisms.csv", "curves.csv"].map(|f| read(&out.join(f))),
            );
        }
        assert!(records[0][2].len() > 200, "{model}: curves were recorded");
        for (k, f) in ["generations.csv", "organisms.csv", "curves.csv"]
            .iter()
            .enumerate()
        {
            assert!(
                records[0][k] == records[1][k],
                "{model}: {f} differs between 1 and 2 threads"
            );
        }
    }
}

/// Lifetimes stream in groups of a few per worker thread (their data drawn,
/// learned from and dropped group by group): 21 learning organisms make 6
/// groups on 1 thread and 2 on 3 threads, and the records are the same.
#[test]
fn lifetimes_in_groups_give_the_same_records_on_any_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let text = r#"
name = "groups"
seed = 8
generations = 2
population = 21
[genome]
genes = [{ name = "lr", min = 0.01, max = 0.1, log = true }]
[fitness]
function = "heldout_loss"
[selection]
method = "tournament"
[lifetime]
budget = 96
steps = 20
batch = 16
eval_every = 10
environment = { kind = "gaussian_clusters", classes = 3, dim = 6, spread = 1.0, heldout = 50, seed = 2 }
model = { kind = "mlp", hidden = [12], activation = "relu" }
optimizer = { method = "sgd", lr = 0.05, momentum = 0.9 }
"#;
    let path = write_scenario(tmp.path(), "groups.toml", text);
    let mut records = Vec::new();
    for threads in ["1", "3"] {
        let out = tmp.path().join(format!("run-{threads}"));
        lineage_ok(&[
            "run",
            s(&path),
            "--threads",
            threads,
            "--out",
            s(&out),
            "--quiet",
        ]);
        records
            .push(["generations.csv", "organisms.csv", "curves.csv"].map(|f| read(&out.join(f))));
    }
    assert!(records[0][2].len() > 500, "curves were recorded");
    for (k, f) in ["generations.csv", "organisms.csv", "curves.csv"]
        .iter()
        .enumerate()
    {
        assert!(
            records[0][k] == records[1][k],
            "{f} differs between 1 and 3 threads"
        );
    }
}
