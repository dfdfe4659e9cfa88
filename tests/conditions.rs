//! Conditions: one scenario, several variants run over several seeds into
//! their own run directories, founders taken from another condition's final
//! population (with the connectome kept, shuffled or given random signs),
//! and a conditions run that resumes by skipping what is done.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{lineage, lineage_ok, read, s, tensors, write_scenario};

/// A pruning lineage on Gaussian clusters, then three conditions that
/// start from its connectome (kept, shuffled with random signs) or dense.
const SCENARIO: &str = r#"
name = "conditions-test"
seed = 4
generations = 3
population = 1

[genome]
genes = [{ name = "unused", min = 0.0, max = 1.0 }]

[fitness]
function = "heldout_loss"

[selection]
method = "tournament"
tournament_size = 1

[lifetime]
budget = 64
steps = 20
batch = 16
inheritance = "prune"
prune = { fraction = 0.5 }
environment = { kind = "gaussian_clusters", classes = 3, dim = 6, spread = 1.0, heldout = 100, seed = 2 }
model = { kind = "mlp", hidden = [12], activation = "relu" }
optimizer = { method = "sgd", lr = 0.1 }

[[conditions]]
name = "outer"

[[conditions]]
name = "Connectome"
from = "outer"
seeds = [1, 2]
set = { generations = 1, lifetime = { budget = 32 } }

[[conditions]]
name = "RandomConnectome"
from = "outer"
connectome = { mask = "shuffle", signs = "random" }
seeds = [1, 2]
set = { generations = 1, lifetime = { budget = 32 } }

[[conditions]]
name = "NoConnectome"
seeds = [1, 2]
set = { generations = 1, lifetime = { budget = 32, inheritance = "darwinian" } }

[[conditions]]
name = "genes"
from = "outer"
set = { generations = 1, population = 2, genome = { bits = 216 }, mutation = { bit_rate = 0.0 }, lifetime = { budget = 32, inheritance = "darwinian", develop = { connectome = true } } }
"#;

/// The masks a run's last organism passed on: `weights.safetensors` of its
/// final checkpoint holds the pending newborn's inherited masks, by
/// parameter index.
fn passed_on_masks(run: &Path) -> BTreeMap<String, Vec<f32>> {
    let checkpoints = run.join("checkpoints");
    let last = std::fs::read_dir(&checkpoints)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .max()
        .unwrap();
    let file = last.join("weights.safetensors");
    if !file.exists() {
        // Nothing to pass on (a dense, Darwinian lineage).
        return BTreeMap::new();
    }
    let bytes = read(&file);
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    tensors
        .tensors()
        .into_iter()
        .filter(|(name, _)| name.contains("/inherited_mask/"))
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name.rsplit('/').next().unwrap().to_owned(), values)
        })
        .collect()
}

fn density(mask: &[f32]) -> f64 {
    mask.iter().filter(|&&m| m != 0.0).count() as f64 / mask.len() as f64
}

#[test]
fn conditions_run_apart_and_start_from_the_connectome() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_scenario(tmp.path(), "c.toml", SCENARIO);
    let root = tmp.path().join("run");
    lineage_ok(&["run", s(&path), "--out", s(&root), "--quiet"]);

    let index: serde_json::Value =
        serde_json::from_slice(&read(&root.join("conditions.json"))).unwrap();
    let names: Vec<&str> = index["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "outer",
            "Connectome",
            "RandomConnectome",
            "NoConnectome",
            "genes"
        ]
    );
    assert_eq!(index["conditions"][1]["from"], "outer");
    for c in index["conditions"].as_array().unwrap() {
        for run in c["runs"].as_array().unwrap() {
            let dir = root.join(run.as_str().unwrap());
            assert!(
                dir.join("generations.csv").is_file(),
                "{} has no records",
                dir.display()
            );
        }
    }

    // The lineage pruned half of each matrix per generation: after three
    // generations (two prunings), the connectome it passes on keeps 1/8 of
    // each matrix after the condition's own pruning.
    let connectome = passed_on_masks(&root.join("conditions/Connectome/seed-1"));
    let random = passed_on_masks(&root.join("conditions/RandomConnectome/seed-1"));
    assert!(!connectome.is_empty(), "the Connectome condition has masks");
    assert_eq!(
        connectome.keys().collect::<Vec<_>>(),
        random.keys().collect::<Vec<_>>()
    );
    for (k, mask) in &connectome {
        let d = density(mask);
        assert!((d - 0.125).abs() < 0.02, "matrix {k}: density {d}");
        // Same density per matrix, other positions.
        assert_eq!(density(&random[k]), d, "matrix {k}");
        assert_ne!(
            &random[k], mask,
            "matrix {k}: a shuffled mask moved nothing"
        );
    }
    // Both seeds of Connectome start from the same connectome (the
    // lineage's), so their masks agree; the dense control has none.
    assert_eq!(
        passed_on_masks(&root.join("conditions/Connectome/seed-2")),
        connectome
    );
    assert!(passed_on_masks(&root.join("conditions/NoConnectome/seed-1")).is_empty());

    // A population with connectome genes founded by the lineage: its
    // genomes carry the lineage's connectome (6x12 + 12x3 weights: mask
    // bits, then sign bits), a quarter of each matrix after two prunings.
    let population =
        read(&root.join("conditions/genes/seed-4/checkpoints/gen-000001/population.safetensors"));
    let tensors = safetensors::SafeTensors::deserialize(&population).unwrap();
    let words: Vec<u64> = tensors
        .tensor("bits")
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let per = words.len() / 2;
    for organism in words.chunks_exact(per) {
        let bit = |i: usize| organism[i / 64] >> (i % 64) & 1 == 1;
        let (m0, m1) = (72, 36);
        let kept0 = (0..m0).filter(|&i| bit(i)).count();
        let kept1 = (m0..m0 + m1).filter(|&i| bit(i)).count();
        assert_eq!((kept0, kept1), (18, 9), "mask bits per matrix");
    }

    // `inspect` points at `report` and at the runs.
    let out = lineage(&["inspect", s(&root)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lineage report"));

    // Resuming a finished experiment runs nothing again.
    let before = read(&root.join("conditions/Connectome/seed-1/generations.csv"));
    let out = lineage_ok(&["resume", s(&root)]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(text.matches("already done").count(), 8, "{text}");
    assert_eq!(
        read(&root.join("conditions/Connectome/seed-1/generations.csv")),
        before
    );
}

#[test]
fn bad_conditions_are_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            SCENARIO.replace("from = \"outer\"\nseeds = [1, 2]\nset", "from = \"later\"\nseeds = [1, 2]\nset"),
            "`later` is not an earlier condition",
        ),
        (
            SCENARIO.replace(
                "name = \"NoConnectome\"\n",
                "name = \"NoConnectome\"\nconnectome = { mask = \"shuffle\" }\n",
            ),
            "`connectome` transforms an inherited connectome and needs `from`",
        ),
        (
            SCENARIO.replace("mask = \"shuffle\"", "mask = \"scramble\""),
            "conditions[2].connectome.mask",
        ),
        (
            SCENARIO.replace("name = \"NoConnectome\"", "name = \"..\""),
            "a condition's name becomes a folder name: start with a letter or digit",
        ),
        (
            SCENARIO.replace("name = \"NoConnectome\"", "name = \"no/connectome\""),
            "a condition's name becomes a folder name",
        ),
        (
            SCENARIO.replace("name = \"NoConnectome\"", "name = \"Connectome\""),
            "two conditions are named `Connectome`",
        ),
        (
            SCENARIO.replace(
                "set = { generations = 1, lifetime = { budget = 32 } }\n\n[[conditions]]\nname = \"RandomConnectome\"",
                "set = { generations = 1, lifetime = { budget = 32, inheritance = \"darwinian\" } }\n\n[[conditions]]\nname = \"RandomConnectome\"",
            ),
            "neither its inheritance nor its genome passes anything on",
        ),
        (
            SCENARIO.replace("seeds = [1, 2]\nset = { generations = 1, lifetime = { budget = 32 } }", "seeds = [1, 1]\nset = { generations = 1, lifetime = { budget = 32 } }"),
            "seed 1 is listed twice",
        ),
        (
            SCENARIO.replace("set = { generations = 1, lifetime = { budget = 32, inheritance", "set = { name = \"x\", lifetime = { budget = 32, inheritance"),
            "`name` cannot be set by a condition",
        ),
        (
            SCENARIO.replace("lifetime = { budget = 32 } }\n\n[[conditions]]\nname = \"NoConnectome\"", "lifetime = { budget = 0 } }\n\n[[conditions]]\nname = \"NoConnectome\""),
            "conditions[2].set.lifetime.budget",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        assert_ne!(text, SCENARIO, "case {i} changed nothing");
        let path = write_scenario(tmp.path(), &format!("bad{i}.toml"), text);
        let out = lineage(&["validate", s(&path)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "case {i}: {err}");
        assert!(
            err.contains(expected),
            "case {i}: expected {expected:?} in:\n{err}"
        );
    }
}

/// Seeds pair by position: with an outer lineage over three seeds, the k-th
/// seed of a condition takes its founders from the k-th seed of the
/// lineage, so every replicate descends from its own lineage.
#[test]
fn each_seed_of_a_condition_starts_from_its_own_lineage() {
    let tmp = tempfile::tempdir().unwrap();
    let base = SCENARIO.split("[[conditions]]").next().unwrap();
    // `Kept` keeps the connectome it inherits (pruning nothing), so what
    // it passes on is what it was founded with.
    let text = format!(
        r#"{base}
[[conditions]]
name = "outer"
seeds = [4, 5, 6]

[[conditions]]
name = "Kept"
from = "outer"
seeds = [1, 2, 3]
set = {{ generations = 1, lifetime = {{ budget = 32, prune = {{ fraction = 0.0 }} }} }}
"#
    );
    let path = write_scenario(tmp.path(), "paired.toml", &text);
    let root = tmp.path().join("run");
    lineage_ok(&["run", s(&path), "--out", s(&root), "--quiet"]);

    let outer: Vec<_> = [4, 5, 6]
        .iter()
        .map(|seed| passed_on_masks(&root.join(format!("conditions/outer/seed-{seed}"))))
        .collect();
    assert!(
        outer.iter().all(|m| !m.is_empty()),
        "the lineages pass on masks"
    );
    // Independent lineages pruned different connections.
    assert_ne!(outer[0], outer[1]);
    assert_ne!(outer[1], outer[2]);
    assert_ne!(outer[0], outer[2]);
    for (k, seed) in [1, 2, 3].iter().enumerate() {
        let kept = passed_on_masks(&root.join(format!("conditions/Kept/seed-{seed}")));
        let from: Vec<usize> = (0..3).filter(|&j| outer[j] == kept).collect();
        assert_eq!(
            from,
            [k],
            "Kept seed {seed} should start from outer's seed {}",
            [4, 5, 6][k]
        );
    }

    // A source with several seeds but fewer than the condition is refused.
    let short = text.replace("seeds = [4, 5, 6]", "seeds = [4, 5]");
    let path = write_scenario(tmp.path(), "short.toml", &short);
    let out = lineage(&["validate", s(&path)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("conditions[1].seeds")
            && err.contains("condition `Kept` has 3 seeds but its source `outer` has 2"),
        "{err}"
    );
}

/// The rank sweep's base draw (issue 11): development draws from the
/// stream (seed, generation, organism, Develop), and rank truncation takes
/// no randomness, so conditions that differ only in a matrix's rank give
/// organism k of seed s the same base matrix G: the rank-1 `w_rec` is
/// exactly the truncation of the full-rank condition's, seed by seed, and
/// differs between seeds. Dale's law pairs the same way: the `dale`
/// condition's `w_rec` is `lineage_develop::dale` of the full draw.
#[test]
fn conditions_differing_in_rank_share_the_base_draw() {
    let tmp = tempfile::tempdir().unwrap();
    let text = r#"
name = "rank-base"
seed = 1
generations = 1
population = 1
[genome]
genes = [{ name = "unused", min = 0.0, max = 1.0 }]
[fitness]
function = "heldout_loss"
[selection]
method = "tournament"
tournament_size = 1
[lifetime]
budget = 32
steps = 1
batch = 32
environment = { kind = "decision", heldout = 20, seed = 3 }
model = { kind = "rnn", hidden = 12, alpha = 1.0, activation = "relu", bias = false }
optimizer = { method = "sgd", lr = 0.001 }
develop = { gain = 1.25 }

[[conditions]]
name = "rank-12"
seeds = [1, 2]

[[conditions]]
name = "rank-1"
seeds = [1, 2]
set = { lifetime = { develop = { matrix = [{ name = "w_rec", rank = 1 }] } } }

[[conditions]]
name = "dale"
seeds = [1, 2]
set = { lifetime = { develop = { matrix = [{ name = "w_rec", dale = 0.8 }] } } }
"#;
    let path = write_scenario(tmp.path(), "rank.toml", text);
    let root = tmp.path().join("exp");
    lineage_ok(&["run", s(&path), "--out", s(&root), "--quiet"]);
    let w_rec = |condition: &str, seed: u64| -> Vec<f32> {
        let run = root.join(format!("conditions/{condition}/seed-{seed}"));
        let out = tmp.path().join(format!("export-{condition}-{seed}"));
        lineage_ok(&["export", s(&run), "--organism", "0", "--out", s(&out)]);
        tensors(&out.join("birth.safetensors"))
            .into_iter()
            .find(|(name, _)| name == "w_rec")
            .expect("an RNN has w_rec")
            .1
    };
    let mut fulls = Vec::new();
    for seed in [1, 2] {
        let full = w_rec("rank-12", seed);
        let low = w_rec("rank-1", seed);
        assert_eq!(full.len(), 144);
        let m = lineage_develop::Matrix {
            rows: 12,
            cols: 12,
            data: full.clone(),
        };
        let truncated = lineage_develop::truncate_rank(&m, 1).unwrap();
        for (k, (a, b)) in truncated.data.iter().zip(&low).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + a.abs()),
                "seed {seed}, w_rec[{k}]: truncation of the full draw {a}, rank-1 condition {b}"
            );
        }
        // Dale's law takes no randomness either: the same G, signed.
        let (signed, _) = lineage_develop::dale(&m, 0.8).unwrap();
        for (k, (a, b)) in signed.data.iter().zip(&w_rec("dale", seed)).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + a.abs()),
                "seed {seed}, w_rec[{k}]: the full draw under Dale's law {a}, dale condition {b}"
            );
        }
        fulls.push(full);
    }
    assert_ne!(fulls[0], fulls[1], "each seed draws its own G");
}

/// Runs of population 1 on 4 threads go several at once (each on its share
/// of the threads), conditions that start `from` another wait for it, and
/// every record is the same bytes as when they run one by one on 1 thread.
#[test]
fn runs_side_by_side_give_the_records_of_runs_one_by_one() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_scenario(tmp.path(), "c.toml", SCENARIO);
    let mut trees = Vec::new();
    for threads in ["1", "4"] {
        let root = tmp.path().join(format!("t{threads}"));
        lineage_ok(&[
            "run",
            s(&path),
            "--out",
            s(&root),
            "--quiet",
            "--threads",
            threads,
        ]);
        trees.push(records(&root));
    }
    assert_eq!(
        trees[0].keys().collect::<Vec<_>>(),
        trees[1].keys().collect::<Vec<_>>()
    );
    assert!(trees[0].len() >= 7 * 2, "{:?}", trees[0].keys());
    for (name, bytes) in &trees[0] {
        assert!(&trees[1][name] == bytes, "{name} differs");
    }
}

/// The CSV records of a conditions run, but timings (wall time), by
/// `condition/seed/file`.
fn records(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for condition in std::fs::read_dir(root.join("conditions"))
        .unwrap()
        .flatten()
    {
        for seed in std::fs::read_dir(condition.path()).unwrap().flatten() {
            for file in std::fs::read_dir(seed.path()).unwrap().flatten() {
                let name = file.file_name().to_string_lossy().into_owned();
                if name.ends_with(".csv") && name != "timings.csv" {
                    let key = format!(
                        "{}/{}/{name}",
                        condition.file_name().to_string_lossy(),
                        seed.file_name().to_string_lossy()
                    );
                    files.insert(key, read(&file.path()));
                }
            }
        }
    }
    files
}

/// Stopping an experiment (what Ctrl-C does from Python): the run under
/// way checkpoints at the end of its generation and no further run starts;
/// running it again finishes with the bytes of an uninterrupted run.
#[test]
fn a_stopped_experiment_continues_to_the_uninterrupted_records() {
    use lineage_engine::conditions::{Event, create_root, run_all};
    use std::sync::atomic::{AtomicBool, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let path = write_scenario(tmp.path(), "c.toml", SCENARIO);
    let whole = tmp.path().join("whole");
    lineage_ok(&["run", s(&path), "--out", s(&whole), "--quiet"]);
    let scenario = lineage_scenario::load(&path, &Default::default()).unwrap();
    let root = create_root(&scenario, Some(&tmp.path().join("stopped"))).unwrap();
    let stop = AtomicBool::new(false);
    let e = run_all(&scenario, &root, 2, &stop, |event| {
        if matches!(event, Event::Started { .. }) {
            stop.store(true, Ordering::SeqCst);
        }
    })
    .unwrap_err();
    assert!(matches!(e, lineage_engine::EngineError::Stopped), "{e}");
    // `outer` (3 generations) stopped after its first, with a checkpoint;
    // nothing else started.
    let partial = records(&root);
    let outer = String::from_utf8(partial["outer/seed-4/generations.csv"].clone()).unwrap();
    assert_eq!(outer.lines().count(), 2, "{outer}");
    assert!(
        partial.keys().all(|k| k.starts_with("outer/")),
        "{partial:?}"
    );
    run_all(&scenario, &root, 2, &AtomicBool::new(false), |_| {}).unwrap();
    let (done, expected) = (records(&root), records(&whole));
    assert_eq!(
        done.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &expected {
        assert!(&done[name] == bytes, "{name} differs");
    }
}
