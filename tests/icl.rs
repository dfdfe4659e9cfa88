//! The in-context learning world (issue 12, first part): scenarios with
//! `environment = { kind = "icl", … }` run on the models that read
//! sequences, the environment schedule changes its pressures, and bad
//! parameters are located errors.

mod common;

use std::path::Path;

use common::{column, lineage, lineage_ok, s, write_scenario};

fn scenario(environment: &str, model: &str, extra: &str) -> String {
    format!(
        r#"
name = "icl"
seed = 1
generations = 2
population = 2
[genome]
genes = [{{ name = "unused", min = 0.0, max = 1.0 }}]
[fitness]
function = "heldout_loss"
[selection]
method = "tournament"
[lifetime]
budget = 256
steps = 8
batch = 32
eval_every = 4
environment = {environment}
model = {model}
optimizer = {{ method = "adam", lr = 1e-3 }}
{extra}
"#
    )
}

const SMALL: &str = "{ kind = \"icl\", classes = 64, dim = 8, labels = 8, pairs = 4, burstiness = 2, heldout = 50, seed = 3 }";

fn run(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = write_scenario(dir, &format!("{name}.toml"), text);
    let out = dir.join(name);
    lineage_ok(&["run", s(&path), "--out", s(&out), "--quiet"]);
    out
}

/// A transformer and a GRU read the world's tokens (9 steps of 9 + 8
/// values) and learn from the query's label alone: after 40 Adam steps
/// every organism's held-out loss is below its loss at birth.
#[test]
fn sequence_models_learn_in_an_icl_world() {
    let dir = tempfile::tempdir().unwrap();
    for (name, model) in [
        (
            "transformer",
            "{ kind = \"transformer\", d_model = 16, heads = 2, layers = 1 }",
        ),
        ("gru", "{ kind = \"gru\", hidden = 16 }"),
    ] {
        let text = scenario(SMALL, model, "")
            .replace("budget = 256\nsteps = 8", "budget = 1280\nsteps = 40");
        assert!(text.contains("steps = 40"));
        let out = run(dir.path(), name, &text);
        let birth = column(&out.join("organisms.csv"), "birth_heldout");
        let last = column(&out.join("organisms.csv"), "final_heldout");
        assert_eq!(birth.len(), 4, "{name}");
        for (b, f) in birth.iter().zip(&last) {
            assert!(
                f < b,
                "{name}: held-out loss {b} at birth, {f} after learning"
            );
        }
    }
}

/// The environment schedule changes the world's pressures (burstiness,
/// novel classes) from one generation to the next.
#[test]
fn the_schedule_changes_the_burstiness() {
    let dir = tempfile::tempdir().unwrap();
    let text = scenario(
        SMALL,
        "{ kind = \"gru\", hidden = 8 }",
        "[[environment]]\nat_generation = 1\nset = { lifetime = { environment = { p_bursty = 0.0, p_novel = 0.5 } } }",
    );
    let checked = lineage_scenario::from_str(
        &text,
        "schedule.toml",
        dir.path(),
        &lineage_scenario::Overrides::default(),
    )
    .unwrap();
    let world = |generation| {
        let lifetime = checked.pressures_at(generation).lifetime.clone().unwrap();
        lifetime.environment.description.clone()
    };
    assert!(
        world(0).contains("p_bursty: 0.9") && world(0).contains("p_novel: 0.0"),
        "{}",
        world(0)
    );
    assert!(
        world(1).contains("p_bursty: 0.0") && world(1).contains("p_novel: 0.5"),
        "{}",
        world(1)
    );
    let out = run(dir.path(), "schedule", &text);
    let generations = column(&out.join("generations.csv"), "generation");
    assert_eq!(generations, [0.0, 1.0]);
}

/// Bad parameters: each names its field and the file, exit 2.
#[test]
fn bad_icl_parameters_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let model = "{ kind = \"gru\", hidden = 8 }";
    for (environment, field, needle) in [
        (
            "{ kind = \"icl\", classes = 100, labels = 32 }",
            "lifetime.environment.classes",
            "must be a multiple of `labels`",
        ),
        (
            "{ kind = \"icl\", p_bursty = 1.5 }",
            "lifetime.environment.p_bursty",
            "probability in [0, 1]",
        ),
        (
            "{ kind = \"icl\", p_novel = -0.2 }",
            "lifetime.environment.p_novel",
            "probability in [0, 1]",
        ),
        (
            "{ kind = \"icl\", pairs = 8, burstiness = 3 }",
            "lifetime.environment.burstiness",
            "must divide `pairs`",
        ),
        (
            "{ kind = \"icl\", pairs = 40, burstiness = 4, positions = \"random_offset\" }",
            "lifetime.environment.max_pairs",
            "room for the sequence",
        ),
        (
            "{ kind = \"icl\", positions = \"sinusoidal\" }",
            "lifetime.environment.positions",
            "random_offset",
        ),
        (
            "{ kind = \"icl\", burstyness = 4 }",
            "lifetime.environment",
            "burstiness",
        ),
    ] {
        let path = write_scenario(dir.path(), "bad.toml", &scenario(environment, model, ""));
        let out = lineage(&["validate", s(&path)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{environment}: {err}");
        assert!(
            err.contains("bad.toml:") && err.contains(field) && err.contains(needle),
            "{environment}: {err}"
        );
    }
}

/// The `icl` suite scores every organism's learned weights on its probe
/// sets (six accuracies in [0, 1]); a suite whose world is not the
/// scenario's (another seed) is an unfit set-up, exit 2.
#[test]
fn the_icl_suite_scores_learned_weights_and_refuses_another_world() {
    let dir = tempfile::tempdir().unwrap();
    let suite = |seed: u64| {
        format!(
            "[plugins.icl]\nlibrary = \"lineage_icl_suite\"\n[plugins.icl.config]\nclasses = 64\ndim = 8\nlabels = 8\npairs = 4\nburstiness = 2\nheldout = 50\nseed = {seed}\nsequences = 40\n[evaluate]\nsuites = [\"icl:icl\"]\n"
        )
    };
    let model = "{ kind = \"transformer\", d_model = 16, heads = 2, layers = 1 }";
    let out = run(dir.path(), "suite", &scenario(SMALL, model, &suite(3)));
    let (_, rows) = common::csv(&out.join("metrics.csv"));
    let names: Vec<&str> = rows.iter().take(6).map(|r| r[3].as_str()).collect();
    assert_eq!(
        names,
        [
            "icl_novel_acc",
            "icl_novel_acc_all",
            "icl_flip_acc",
            "iwl_acc",
            "iwl_common_acc",
            "iwl_rare_acc"
        ]
    );
    assert_eq!(rows.len(), 4 * 6, "2 generations of 2 organisms");
    for r in &rows {
        let v: f64 = r[4].parse().unwrap();
        assert!((0.0..=1.0).contains(&v), "{r:?}");
    }

    let path = write_scenario(dir.path(), "other.toml", &scenario(SMALL, model, &suite(4)));
    let out = lineage(&[
        "run",
        s(&path),
        "--out",
        s(&dir.path().join("other")),
        "--quiet",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("[plugins.icl]") && err.contains("not those of the suite's world"),
        "{err}"
    );
}

/// The world's probe sets are scored at every curve point of every
/// lifetime (`probes.csv`: birth, every `eval_every` steps, the end), the
/// same bytes whatever the thread count.
#[test]
fn probe_sets_are_recorded_at_every_curve_point_on_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let world = SMALL.replace("seed = 3 }", "probe_sequences = 20, seed = 3 }");
    let text = scenario(&world, "{ kind = \"gru\", hidden = 8 }", "");
    let path = write_scenario(dir.path(), "probes.toml", &text);
    let mut tables = Vec::new();
    for threads in ["1", "2"] {
        let out = dir.path().join(format!("t{threads}"));
        lineage_ok(&[
            "run",
            s(&path),
            "--out",
            s(&out),
            "--quiet",
            "--threads",
            threads,
        ]);
        tables.push(std::fs::read(out.join("probes.csv")).unwrap());
    }
    assert_eq!(
        tables[0], tables[1],
        "probes.csv differs across thread counts"
    );
    let (header, rows) = common::csv(&dir.path().join("t1/probes.csv"));
    assert_eq!(
        header,
        ["id", "generation", "step", "probe", "metric", "value"]
    );
    // 4 organisms x 3 points (steps 0, 4, 8) x (icl_novel: loss, accuracy,
    // accuracy_all; icl_flip and iwl: loss, accuracy); no common/rare
    // split without a Zipf law.
    assert_eq!(rows.len(), 4 * 3 * 7);
    for id in 0..4 {
        for step in ["0", "4", "8"] {
            let at: Vec<_> = rows
                .iter()
                .filter(|r| r[0] == id.to_string() && r[2] == step)
                .map(|r| format!("{}/{}", r[3], r[4]))
                .collect();
            assert_eq!(
                at,
                [
                    "icl_novel/loss",
                    "icl_novel/accuracy",
                    "icl_novel/accuracy_all",
                    "icl_flip/loss",
                    "icl_flip/accuracy",
                    "iwl/loss",
                    "iwl/accuracy"
                ],
                "organism {id}, step {step}"
            );
        }
    }
    for r in &rows {
        let v: f64 = r[5].parse().unwrap();
        if r[4] == "loss" {
            assert!(v > 0.0 && v.is_finite(), "{r:?}");
        } else {
            assert!((0.0..=1.0).contains(&v), "{r:?}");
        }
    }
    // `lineage report` plots them along the lifetime.
    lineage_ok(&["report", s(&dir.path().join("t1"))]);
    let svg = std::fs::read_to_string(dir.path().join("t1/report-probes.svg")).unwrap();
    for probe in ["icl_novel", "icl_flip", "iwl"] {
        assert!(svg.contains(&format!("probe `{probe}`")), "{probe}");
    }
    // A world without probe sets writes no probes.csv.
    let none = SMALL.replace("seed = 3 }", "probe_sequences = 0, seed = 3 }");
    let out = run(
        dir.path(),
        "none",
        &scenario(&none, "{ kind = \"gru\", hidden = 8 }", ""),
    );
    assert!(!out.join("probes.csv").exists());
}

/// A run resumed from a checkpoint writes the same `probes.csv`, byte for
/// byte, as one that ran straight through.
#[test]
fn probes_resume_to_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let world = SMALL.replace("seed = 3 }", "probe_sequences = 10, seed = 3 }");
    let text = scenario(&world, "{ kind = \"gru\", hidden = 8 }", "")
        .replace("generations = 2", "generations = 3\ncheckpoint_every = 1");
    let path = write_scenario(dir.path(), "resume.toml", &text);
    let straight = dir.path().join("straight");
    lineage_ok(&["run", s(&path), "--out", s(&straight), "--quiet"]);
    let split = dir.path().join("split");
    lineage_ok(&[
        "run",
        s(&path),
        "--out",
        s(&split),
        "--quiet",
        "--generations",
        "1",
    ]);
    lineage_ok(&["resume", s(&split), "--quiet", "--generations", "3"]);
    for table in ["probes.csv", "organisms.csv", "curves.csv"] {
        assert_eq!(
            std::fs::read(straight.join(table)).unwrap(),
            std::fs::read(split.join(table)).unwrap(),
            "{table}"
        );
    }
}

/// The final accuracy of probe set `probe` (over its choices) in a run's
/// `probes.csv`: the mean over the last generation's organisms at the last
/// step.
fn final_accuracy(run: &Path, probe: &str) -> f64 {
    let (header, rows) = common::csv(&run.join("probes.csv"));
    let at = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (step, p, metric, value) = (at("step"), at("probe"), at("metric"), at("value"));
    let last = rows
        .iter()
        .map(|r| r[step].parse::<u64>().unwrap())
        .max()
        .unwrap();
    let values: Vec<f64> = rows
        .iter()
        .filter(|r| r[step] == last.to_string() && r[p] == probe && r[metric] == "accuracy")
        .map(|r| r[value].parse().unwrap())
        .collect();
    assert!(!values.is_empty(), "no {probe} accuracy at step {last}");
    values.iter().sum::<f64>() / values.len() as f64
}

/// science.md section 3 at reduced scale: a small transformer of Reddy's
/// kind (2 layers, one head each, no LayerNorm, ReLU) trained on bursty
/// sequences of freshly drawn classes learns in context within 3,000
/// steps (2-way accuracy on novel classes well above chance, 0.5), in two
/// independent seeds; trained on i.i.d. sequences (the query's class
/// rarely in the context) it does not, and neither does a tanh RNN of
/// about its size trained on the bursty sequences. 200 probe sequences:
/// chance is 0.5 with a standard deviation of 0.035.
#[test]
fn in_context_learning_emerges_from_bursty_data_in_a_transformer_only() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
name = "icl-reduced"
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
budget = 96000
steps = 3000
batch = 32
eval_every = 1000
environment = { kind = "icl", classes = 64, dim = 16, labels = 16, pairs = 4, burstiness = 2, p_bursty = 1.0, p_novel = 1.0, probe_sequences = 200, heldout = 100, seed = "run" }
model = { kind = "transformer", d_model = 32, heads = 1, layers = 2, d_ff = 64, layer_norm = false, activation = "relu" }
optimizer = { method = "adam", lr = 1e-3 }

[[conditions]]
name = "bursty-1"
seeds = [1, 2]

[[conditions]]
name = "bursty-0"
seeds = [1]
set = { lifetime = { environment = { p_bursty = 0.0 } } }

[[conditions]]
name = "rnn"
seeds = [1]
set = { lifetime = { model = { kind = "rnn", hidden = 64, activation = "tanh", bias = true } } }
"#;
    let root = run(dir.path(), "reduced", text);
    let novel = |condition: &str, seed: u64| {
        final_accuracy(
            &root.join(format!("conditions/{condition}/seed-{seed}")),
            "icl_novel",
        )
    };
    for seed in [1, 2] {
        let acc = novel("bursty-1", seed);
        assert!(acc > 0.85, "bursty seed {seed}: in-context accuracy {acc}");
    }
    let iid = novel("bursty-0", 1);
    assert!((0.38..0.62).contains(&iid), "i.i.d.: {iid}");
    let rnn = novel("rnn", 1);
    assert!((0.38..0.62).contains(&rnn), "RNN: {rnn}");
    // The report summarises the same records as metrics.
    let out = lineage_ok(&["report", s(&root)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("icl_novel.final") && text.contains("icl_novel.peak"),
        "{text}"
    );
}

/// Builds the `icl` suite's shared library (`lineage-icl-suite-cdylib`)
/// beside the `lineage` binary, with its profile, where the plugin search
/// path finds it.
fn build_icl_suite_library() {
    let dir = Path::new(env!("CARGO_BIN_EXE_lineage")).parent().unwrap();
    let mut cmd =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(common::root())
        .args(["build", "-p", "lineage-icl-suite-cdylib"]);
    if dir.ends_with("release") {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "building the icl suite's library failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `icl:lifetime` offering reads each organism's own probe records
/// through the host (ABI 2): its `icl_final` and `icl_peak` are the last
/// and the best `icl_novel` accuracy of `probes.csv`, the same in the run's
/// process and in a worker process; an environment that records no probe
/// sets is an unfit set-up, exit 2.
#[test]
fn the_lifetime_offering_reads_the_probe_records() {
    // A worker process loads the suite from its library file.
    build_icl_suite_library();
    let dir = tempfile::tempdir().unwrap();
    let world = SMALL.replace("seed = 3 }", "probe_sequences = 20, seed = 3 }");
    let model = "{ kind = \"transformer\", d_model = 16, heads = 2, layers = 1 }";
    let suite = |isolation: &str| {
        format!(
            "[plugins.icl]\nlibrary = \"lineage_icl_suite\"\nisolation = \"{isolation}\"\n[evaluate]\nsuites = [\"icl:lifetime\"]\n"
        )
    };
    let mut tables = Vec::new();
    for isolation in ["in-process", "process"] {
        let out = run(
            dir.path(),
            &format!("lifetime-{isolation}"),
            &scenario(&world, model, &suite(isolation)),
        );
        let (_, metrics) = common::csv(&out.join("metrics.csv"));
        let (_, probes) = common::csv(&out.join("probes.csv"));
        // Columns: id, generation, step, probe, metric, value.
        for m in &metrics {
            let (id, name, value) = (&m[0], m[3].as_str(), m[4].parse::<f64>().unwrap());
            let track: Vec<f64> = probes
                .iter()
                .filter(|p| &p[0] == id && p[3] == "icl_novel" && p[4] == "accuracy")
                .map(|p| p[5].parse().unwrap())
                .collect();
            assert_eq!(track.len(), 3, "organism {id}: {track:?}");
            let last = track[2];
            let peak = track.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let want = match name {
                "icl_final" => last,
                "icl_peak" => peak,
                "icl_transience" => peak - last,
                other => panic!("unexpected metric {other}"),
            };
            assert!(
                (value - want).abs() < 1e-6,
                "{id} {name}: {value} vs {want}"
            );
        }
        assert_eq!(
            metrics.len(),
            4 * 3,
            "2 generations of 2 organisms, 3 metrics"
        );
        tables.push(std::fs::read(out.join("metrics.csv")).unwrap());
    }
    assert_eq!(tables[0], tables[1], "in-process and isolated differ");

    let silent = SMALL.replace("seed = 3 }", "probe_sequences = 0, seed = 3 }");
    let path = write_scenario(
        dir.path(),
        "none.toml",
        &scenario(&silent, model, &suite("in-process")),
    );
    let out = lineage(&[
        "run",
        s(&path),
        "--out",
        s(&dir.path().join("none")),
        "--quiet",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("[plugins.icl]") && err.contains("probe_sequences"),
        "{err}"
    );
}
