//! The Rust example environment plugin, plugins/examples/context-decision
//! (Mante et al. 2013's context-dependent decision, as NeuroGym's
//! ContextDecisionMaking poses it), end to end: built with cargo in the
//! `lineage` binary's profile, checked by `lineage plugins check`, its
//! scenario (scenarios/context-decision.toml) validated at full size and
//! run reduced. An RNN learns the task within its lifetime (held-out loss
//! far below birth, decision accuracy on both probe sets far above
//! chance), the run is the same whatever the thread count, and bad
//! configuration keys are refused with their line.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{csv, lineage, lineage_ok, read, s, write_scenario};

/// Builds the plugin once, with the binary's profile, and returns the
/// library's path.
fn plugin() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        common::build_workspace_packages(&["lineage-example-context"]);
        let lib = common::build_dir().join(common::dylib("lineage_example_context"));
        assert!(lib.is_file(), "{} was not built", lib.display());
        lib
    })
}

/// The shipped scenario, its library replaced by `library`, then `edit`ed.
fn scenario(library: &str, edit: impl FnOnce(&mut toml::Table)) -> String {
    let text = std::fs::read_to_string(common::scenario("context-decision.toml")).unwrap();
    let mut table: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(
        table["plugins"]["ctx"]["library"].as_str(),
        Some("lineage_example_context")
    );
    table["plugins"]["ctx"]["library"] = library.into();
    edit(&mut table);
    toml::to_string(&table).unwrap()
}

/// The shipped scenario's environment table, for edits.
fn environment(t: &mut toml::Table) -> &mut toml::Table {
    t["lifetime"]["environment"].as_table_mut().unwrap()
}

/// The shipped scenario at a size a test runs in seconds: 8 organisms, 3
/// generations, 300 learning steps, 300 held-out trials and probe sets of
/// 200. The task, model, genes and optimiser are the shipped ones.
fn reduced() -> String {
    scenario(s(plugin()), |t| {
        t.insert("population".into(), 8.into());
        t.insert("generations".into(), 3.into());
        t.insert("checkpoint_every".into(), 1.into());
        let life = t["lifetime"].as_table_mut().unwrap();
        life.insert("steps".into(), 300.into());
        life.insert("budget".into(), (300 * 32).into());
        let env = environment(t);
        env.insert("heldout".into(), 300.into());
        env.insert("probe_trials".into(), 200.into());
    })
}

#[test]
fn plugins_check_creates_and_draws_the_environment() {
    let out = lineage_ok(&["plugins", "check", s(plugin())]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("context 0.1.0 (ABI version 4)"), "{text}");
    assert!(text.contains("environment context_decision"), "{text}");
    assert!(
        text.contains(
            "context_decision: ok (sequences of 15 steps, 7 inputs, 3 classes; held-out set of 1000; 2 probe sets; a lifetime of 32 checked)"
        ),
        "{text}"
    );
}

/// The shipped scenario validates with its library found by name; a bad
/// value or an unknown key is refused (exit code 2) with the plugin's
/// message and the key's line.
#[test]
fn the_scenario_validates_and_bad_keys_point_at_their_line() {
    plugin();
    lineage_ok(&["validate", s(&common::scenario("context-decision.toml"))]);
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&str, toml::Value, &str); 4] = [
        (
            "coherences",
            toml::Value::Array(Vec::new()),
            "`coherences` must be non-empty",
        ),
        ("sigma", (-0.5).into(), "`sigma` is a standard deviation"),
        ("stimulus_steps", 0.into(), "`stimulus_steps` must be 1 to"),
        (
            "coherence",
            toml::Value::Array(vec![5.into()]),
            "unknown configuration key `coherence`",
        ),
    ];
    for (key, value, message) in cases {
        let text = scenario(s(plugin()), |t| {
            environment(t).insert(key.into(), value);
        });
        let path = write_scenario(tmp.path(), "bad.toml", &text);
        let out = lineage(&["validate", s(&path)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}: {err}");
        assert!(err.contains(message), "{key}: {err}");
        assert!(
            err.contains(&format!("field `lifetime.environment.{key}`")),
            "{key}: {err}"
        );
        // The key's own line in the environment's table (`toml` writes
        // it out as `[lifetime.environment]`).
        let lines: Vec<&str> = text.lines().collect();
        let table = lines
            .iter()
            .position(|l| *l == "[lifetime.environment]")
            .unwrap();
        let line = table
            + lines[table..]
                .iter()
                .position(|l| l.starts_with(&format!("{key} =")))
                .unwrap()
            + 1;
        assert!(err.contains(&format!("bad.toml:{line}:")), "{key}: {err}");
    }
}

/// One organism's probe measure at a step.
fn probe(rows: &[Vec<String>], id: &str, generation: &str, step: &str, set: &str) -> f64 {
    rows.iter()
        .find(|r| {
            r[0] == id && r[1] == generation && r[2] == step && r[3] == set && r[4] == "accuracy"
        })
        .unwrap_or_else(|| panic!("no {set} accuracy for organism {id} at step {step}"))[5]
        .parse()
        .unwrap()
}

#[test]
fn an_rnn_learns_the_task_and_the_run_is_the_same_whatever_the_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write_scenario(tmp.path(), "ctx.toml", &reduced());
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for (out, threads) in [(&a, "2"), (&b, "1")] {
        lineage_ok(&[
            "run",
            s(&path),
            "--out",
            s(out),
            "--threads",
            threads,
            "--quiet",
        ]);
    }
    for file in [
        "organisms.csv",
        "curves.csv",
        "probes.csv",
        "generations.csv",
    ] {
        assert!(
            read(&a.join(file)) == read(&b.join(file)),
            "{file} differs between 2 threads and 1"
        );
    }

    let (header, organisms) = csv(&a.join("organisms.csv"));
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (id, generation) = (col("id"), col("generation"));
    let (life, birth, last) = (col("lifetime"), col("birth_heldout"), col("final_heldout"));
    // Generation 0's 8, then the 6 newborns of each generation (the 2
    // elites are not scored again).
    assert_eq!(organisms.len(), 8 + 6 + 6);
    let (_, probes) = csv(&a.join("probes.csv"));
    // Each organism: 2 probe sets x 3 measures at birth and steps 100, 200, 300.
    assert_eq!(probes.len(), organisms.len() * 4 * 2 * 3);

    // Every lifetime completes and lowers the held-out loss; at birth,
    // decisions are at chance (0.5 with two choices).
    let mut at_birth = Vec::new();
    for o in &organisms {
        assert_eq!(o[life], "completed", "organism {}", o[id]);
        let (b, f): (f64, f64) = (o[birth].parse().unwrap(), o[last].parse().unwrap());
        assert!(f < 0.75 * b, "organism {}: held-out loss {b} -> {f}", o[id]);
        at_birth.push(probe(&probes, &o[id], &o[generation], "0", "decision"));
    }
    let mean = at_birth.iter().sum::<f64>() / at_birth.len() as f64;
    assert!(
        (0.4..0.6).contains(&mean),
        "decision accuracy at birth {mean}"
    );

    // The best learner of the last generation has learned the task: its
    // held-out loss a small fraction of birth's, and its decisions right
    // well above chance, on incongruent trials too, where only the
    // context cue tells which stream to follow.
    let best = organisms
        .iter()
        .filter(|o| o[generation] == "2")
        .min_by(|x, y| {
            let l = |o: &Vec<String>| o[last].parse::<f64>().unwrap();
            l(x).total_cmp(&l(y))
        })
        .unwrap();
    let (b, f): (f64, f64) = (best[birth].parse().unwrap(), best[last].parse().unwrap());
    assert!(f < 0.1 * b, "best organism: held-out loss {b} -> {f}");
    let decision = probe(&probes, &best[id], "2", "300", "decision");
    let incongruent = probe(&probes, &best[id], "2", "300", "incongruent");
    assert!(decision > 0.8, "decision accuracy {decision}");
    assert!(incongruent > 0.75, "incongruent accuracy {incongruent}");
}

/// The rank sweep on this task (scenarios/richlazy-context.toml): the
/// `richlazy` suite's `task = "heldout"` measures each organism on its own
/// held-out trials of the plugin's task, and the shipped scenario runs
/// reduced with every measure in range.
#[test]
fn the_rich_lazy_suite_measures_the_plugins_task_on_held_out_trials() {
    let text = std::fs::read_to_string(common::scenario("richlazy-context.toml")).unwrap();
    let mut table: toml::Table = toml::from_str(&text).unwrap();
    table["plugins"]["ctx"]["library"] = s(plugin()).into();
    let life = table["lifetime"].as_table_mut().unwrap();
    life.insert("steps".into(), 20.into());
    life.insert("budget".into(), 640.into());
    life.insert("eval_every".into(), 10.into());
    let conditions = table["conditions"].as_array_mut().unwrap();
    conditions.truncate(2);
    for c in conditions.iter_mut() {
        c.as_table_mut()
            .unwrap()
            .insert("seeds".into(), toml::Value::Array(vec![1.into()]));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(dir.path(), "rl.toml", &toml::to_string(&table).unwrap());
    let out = dir.path().join("rl");
    lineage_ok(&["run", s(&file), "--out", s(&out), "--quiet"]);
    for condition in ["rank-64", "rank-1"] {
        let (_, rows) = csv(&out.join(format!("conditions/{condition}/seed-1/metrics.csv")));
        let value = |name: &str| -> f64 {
            rows.iter()
                .find(|r| r[3] == format!("rl:recurrent/{name}") || r[3] == name)
                .unwrap_or_else(|| panic!("{condition}: no {name} in {rows:?}"))[4]
                .parse()
                .unwrap()
        };
        let ka = value("kernel_alignment");
        assert!(ka > 0.0 && ka <= 1.0 + 1e-9, "{condition}: {ka}");
        let acc = value("decision_accuracy");
        assert!((0.0..=1.0).contains(&acc), "{condition}: {acc}");
        let rank = value("rank_entropy");
        if condition == "rank-1" {
            assert!(rank < 1.5, "{rank}");
        } else {
            assert!(rank > 20.0, "{rank}");
        }
    }
}
