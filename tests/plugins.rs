//! Plugins end to end: the shipped Rust and C examples, plugins scaffolded
//! by `lineage new-plugin` and built outside the workspace, and every kind of
//! bad plugin: each must fail with a message naming the plugin and the
//! problem, at load time with exit code 2 and before generation 0, at
//! evaluation time as the scenario's `on_error` says.
//!
//! The tests build what they load: the workspace's example plugins with
//! cargo, the C plugins with the system C compiler (`$CC`, else `cc`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{column, csv, dylib, lineage, lineage_ok, read, s, write_scenario};

/// The folder the `lineage` binary (and the workspace's plugins) are built
/// into.
/// Builds the workspace's Rust plugins once, with the binary's profile, and
/// returns the folder they are in.
fn workspace_plugins() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        common::build_workspace_packages(&[
            "lineage-example-accuracy",
            "lineage-test-panicky",
            "lineage-test-services",
        ]);
        common::build_dir()
    })
}

/// Compiles C `sources` into the shared library `out` against the SDK's
/// header.
fn compile_c(sources: &[&Path], defines: &[&str], out: &Path) {
    common::compile_c(sources, None, defines, out);
}

/// `tests/plugins/faulty.c` built with `defines` into `dir/name`.
fn faulty(dir: &Path, name: &str, defines: &[&str]) -> PathBuf {
    let out = dir.join(dylib(name));
    compile_c(
        &[&common::root().join("tests/plugins/faulty.c")],
        defines,
        &out,
    );
    out
}

/// A small real-gene scenario whose fitness is `function` of the plugin
/// `alias` in `library`.
fn genome_scenario(alias: &str, library: &str, function: &str, extra: &str) -> String {
    format!(
        r#"
name = "plugin-test"
seed = 5
generations = 5
population = 16
checkpoint_every = 1

[genome]
genes = [{{ name = "x", count = 2, min = 0.0, max = 1.0 }}]

[plugins.{alias}]
library = "{library}"
{extra}

[fitness]
function = "{function}"

[selection]
method = "tournament"
tournament_size = 2
elitism = 1

[mutation]
sigma = 0.1
gene_rate = 1.0
"#
    )
}

/// A classification lifetime: an MLP learns Gaussian clusters.
const LIFETIME: &str = r#"
[lifetime]
budget = 64
steps = 30
batch = 16
eval_every = 10
environment = { kind = "gaussian_clusters", classes = 4, dim = 8, spread = 1.0, heldout = 200, seed = 7 }
model = { kind = "mlp", hidden = [16], activation = "relu" }
optimizer = { method = "sgd", momentum = 0.9 }
"#;

fn learning_scenario(plugins: &str, function: &str, extra: &str) -> String {
    format!(
        r#"
name = "plugin-learning"
seed = 3
generations = 6
population = 16

[genome]
genes = [
    {{ name = "lr", min = 1e-3, max = 1.0, log = true }},
    {{ name = "gain", min = 0.1, max = 3.0 }},
]

{plugins}

[fitness]
function = "{function}"

{extra}

[selection]
method = "tournament"
tournament_size = 3
elitism = 1

[mutation]
sigma = 0.2
gene_rate = 1.0
{LIFETIME}
"#
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `scenario` into `dir/run`; on failure, checks the exit code and
/// that stderr holds every one of `expected`.
fn run_fails(dir: &Path, scenario: &str, code: i32, expected: &[&str]) -> Output {
    let path = write_scenario(dir, "scenario.toml", scenario);
    let run = dir.join("run");
    let out = lineage(&["run", s(&path), "--out", s(&run), "--quiet"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "stderr:\n{err}");
    for e in expected {
        assert!(err.contains(e), "expected {e:?} in:\n{err}");
    }
    assert!(
        !err.contains("RUST_BACKTRACE"),
        "a panic reached the user:\n{err}"
    );
    out
}

/// A load-time failure: exit 2, the message, and no run directory left.
fn load_fails(dir: &Path, scenario: &str, expected: &[&str]) {
    run_fails(dir, scenario, 2, expected);
    assert!(
        !dir.join("run").exists(),
        "a failed load must not create the run directory"
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    lineage_engine::sha256_hex(bytes)
}

#[test]
fn rust_example_drives_selection_and_records_its_suite() {
    let plugins = workspace_plugins();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = learning_scenario(
        "[plugins.acc]\nlibrary = \"lineage_example_accuracy\"",
        "acc:heldout_accuracy",
        "[evaluate]\nsuites = [\"acc:accuracy_gain\"]",
    );
    let path = write_scenario(tmp.path(), "acc.toml", &scenario);
    let run = tmp.path().join("run");
    lineage_ok(&["run", s(&path), "--out", s(&run), "--quiet"]);

    // Selection on accuracy raises it.
    let mean = column(&run.join("generations.csv"), "accuracy_mean");
    assert!(
        mean.last().unwrap() > &(mean[0] + 0.05),
        "mean accuracy should rise under selection: {mean:?}"
    );
    // The suite agrees with the fitness: learned accuracy is the fitness,
    // and the gain is learned minus birth accuracy.
    let (header, rows) = csv(&run.join("organisms.csv"));
    let acc = header.iter().position(|h| h == "accuracy").unwrap();
    let (mh, metrics) = csv(&run.join("metrics.csv"));
    assert_eq!(mh, ["id", "generation", "suite", "metric", "value"]);
    let metric = |id: &str, generation: &str, name: &str| -> f64 {
        metrics
            .iter()
            .find(|r| r[0] == id && r[1] == generation && r[3] == name)
            .unwrap_or_else(|| panic!("no {name} for organism {id} in generation {generation}"))[4]
            .parse()
            .unwrap()
    };
    assert_eq!(
        metrics.len(),
        3 * rows.len(),
        "three metrics per evaluated organism"
    );
    for r in &rows {
        let (id, generation) = (&r[0], &r[2]);
        let fitness: f64 = r[acc].parse().unwrap();
        assert!((0.0..=1.0).contains(&fitness));
        assert_eq!(
            metric(id, generation, "learned_accuracy"),
            fitness,
            "organism {id}"
        );
        let gain = metric(id, generation, "gain");
        let birth = metric(id, generation, "birth_accuracy");
        assert!((gain - (fitness - birth)).abs() < 1e-12);
    }
    // The manifest records the library and its SHA-256.
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&run.join("manifest.json"))).unwrap();
    let record = &manifest["plugins"][0];
    assert_eq!(record["alias"], "acc");
    assert_eq!(record["name"], "accuracy");
    let lib = plugins.join(dylib("lineage_example_accuracy"));
    assert_eq!(
        record["path"].as_str().unwrap(),
        lib.canonicalize().unwrap().to_str().unwrap()
    );
    assert_eq!(record["sha256"].as_str().unwrap(), sha256_hex(&read(&lib)));

    // Resuming reloads the same library and continues the same way.
    lineage_ok(&["resume", s(&run), "--generations", "8", "--quiet"]);
    assert_eq!(
        column(&run.join("generations.csv"), "accuracy_mean").len(),
        8
    );
}

/// Runs the learning scenario for 2 generations into `dir/name` with the
/// `services` test plugin as `svc` and `extra` tables.
fn run_services(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let lib = workspace_plugins().join(dylib("lineage_test_services"));
    let scenario = learning_scenario(
        &format!("[plugins.svc]\nlibrary = \"{}\"", s(&lib)),
        "heldout_loss",
        extra,
    );
    let path = write_scenario(dir, &format!("{name}.toml"), &scenario);
    let run = dir.join(name);
    lineage_ok(&[
        "run",
        s(&path),
        "--out",
        s(&run),
        "--quiet",
        "--generations",
        "2",
    ]);
    run
}

/// The tensor names in the `weights.safetensors` of a run's last
/// checkpoint.
fn last_checkpoint_weights(run: &Path) -> Vec<String> {
    let last = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    common::tensors(&last.join("weights.safetensors"))
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

#[test]
fn host_services_agree_with_each_other_through_the_abi() {
    let tmp = tempfile::tempdir().unwrap();
    let run = run_services(
        tmp.path(),
        "run",
        "[evaluate]\nsuites = [\"svc:consistency\"]",
    );
    let (_, metrics) = csv(&run.join("metrics.csv"));
    let values = |name: &str| -> Vec<(String, String, f64)> {
        metrics
            .iter()
            .filter(|r| r[3] == name)
            .map(|r| (r[0].clone(), r[1].clone(), r[4].parse().unwrap()))
            .collect()
    };
    let (header, rows) = csv(&run.join("organisms.csv"));
    assert_eq!(values("readout_error").len(), rows.len());
    for (id, _, e) in values("readout_error") {
        assert!(
            e < 1e-4,
            "organism {id}: outputs and hidden layer disagree by {e}"
        );
    }
    for (id, _, e) in values("gradient_error") {
        assert!(e < 1e-4, "organism {id}: gradient off by {e}");
    }
    assert_eq!(values("kernel_error").len(), rows.len());
    for (id, _, e) in values("kernel_error") {
        assert!(
            e < 1e-5,
            "organism {id}: kernel off the gradients' Gram matrix by {e}"
        );
    }
    for (id, _, change) in values("learned_change") {
        assert!(change > 0.0, "organism {id} did not learn");
    }
    for (_, _, lr) in values("lr") {
        assert!((1e-3..=1.0).contains(&lr));
    }
    let birth = header.iter().position(|h| h == "birth_heldout").unwrap();
    for ((id, generation, loss), row) in values("birth_loss").into_iter().zip(&rows) {
        assert_eq!((&id, &generation), (&row[0], &row[2]));
        let expected: f64 = row[birth].parse().unwrap();
        assert!(
            (loss - expected).abs() <= 1e-6 * expected,
            "{loss} vs {expected}"
        );
    }
}

/// Birth weights that a run does not keep are developed again when a
/// plugin asks for them: the same values as those a run keeps with
/// `record.weights = "all"`, so every metric is the same to the bit.
#[test]
fn birth_weights_developed_again_are_the_weights_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let mut metrics = Vec::new();
    for weights in ["needed", "all"] {
        let run = run_services(
            tmp.path(),
            weights,
            &format!(
                "[evaluate]\nsuites = [\"svc:consistency\"]\n\n[record]\nweights = \"{weights}\""
            ),
        );
        metrics.push(common::read(&run.join("metrics.csv")));
        // Checkpoints hold birth weights only when they are kept.
        let names = last_checkpoint_weights(&run);
        assert!(names.iter().any(|n| n.ends_with("/learned")));
        assert_eq!(
            names.iter().any(|n| n.ends_with("/birth")),
            weights == "all",
            "{weights}: {names:?}"
        );
    }
    assert!(metrics[0].len() > 100);
    assert_eq!(metrics[0], metrics[1]);
}

/// An offering that reads weights without declaring it gets an error that
/// says so, and a run whose offerings read no weights keeps none.
#[test]
fn undeclared_weight_reads_are_refused_and_unread_weights_not_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let run = run_services(
        tmp.path(),
        "run",
        "[evaluate]\nsuites = [\"svc:undeclared\"]",
    );
    let refused = column(&run.join("metrics.csv"), "value");
    assert!(!refused.is_empty());
    assert!(refused.iter().all(|&v| v == 1.0), "{refused:?}");
    let names = last_checkpoint_weights(&run);
    assert!(names.iter().any(|n| n.ends_with("/curve")), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with("/learned") || n.ends_with("/birth")),
        "{names:?}"
    );
}

#[test]
fn c_example_scores_learning_speed_from_the_curve() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join(dylib("learning_speed"));
    compile_c(
        &[&common::root().join("plugins/examples/learning-speed-c/learning_speed.c")],
        &[],
        &lib,
    );
    let check = lineage_ok(&["plugins", "check", s(&lib)]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(
        text.contains("learning_speed 1.0.0 (ABI version 4)"),
        "{text}"
    );
    assert!(text.contains("fitness learning_speed: auc (minimize), steps_to_half (minimize)"));

    let scenario = learning_scenario(
        "[plugins.speed]\nlibrary = \"liblearning_speed.so\"",
        "speed:learning_speed",
        "",
    )
    .replace("liblearning_speed.so", &dylib("learning_speed"));
    let path = write_scenario(tmp.path(), "speed.toml", &scenario);
    let run = tmp.path().join("run");
    // Found by name in the scenario's folder.
    lineage_ok(&["run", s(&path), "--out", s(&run), "--quiet"]);
    // `auc` is the mean held-out loss over the curve: recompute it from
    // curves.csv.
    let (header, rows) = csv(&run.join("organisms.csv"));
    let auc = header.iter().position(|h| h == "auc").unwrap();
    let (_, points) = csv(&run.join("curves.csv"));
    for r in rows.iter().take(20) {
        let curve: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p[0] == r[0] && p[1] == r[2])
            .map(|p| (p[2].parse().unwrap(), p[4].parse().unwrap()))
            .collect();
        let area: f64 = curve
            .windows(2)
            .map(|w| 0.5 * (w[0].1 + w[1].1) * (w[1].0 - w[0].0))
            .sum();
        let expected = area / (curve.last().unwrap().0 - curve[0].0);
        let got: f64 = r[auc].parse().unwrap();
        assert!(
            (got - expected).abs() <= 1e-5 * expected.abs(),
            "organism {}: auc {got}, recomputed {expected}",
            r[0]
        );
    }
}

/// `lineage new-plugin`, built where a user would build it, checked, and
/// run: the plugin's fitness must improve under selection.
fn scaffolded_plugin_drives_selection(lang: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("my-fit");
    lineage_ok(&["new-plugin", "my-fit", "--lang", lang, "--out", s(&dir)]);
    common::build_scaffold(&dir, lang);
    let lib = match lang {
        "rust" => dir.join("target/release").join(dylib("my_fit")),
        _ => dir.join(dylib("my_fit")),
    };
    let check = lineage_ok(&["plugins", "check", s(&lib)]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(text.contains("my_fit 0.1.0 (ABI version 4)"), "{text}");
    assert!(text.contains("distance: ok"), "{text}");

    let run = tmp.path().join("run");
    lineage_ok(&[
        "run",
        s(&dir.join("scenario.toml")),
        "--out",
        s(&run),
        "--quiet",
    ]);
    let best = column(&run.join("generations.csv"), "distance_best");
    let mean = column(&run.join("generations.csv"), "distance_mean");
    assert!(
        best.last().unwrap() < &(best[0] * 0.5) && mean.last().unwrap() < &(mean[0] * 0.5),
        "selection on the plugin's distance should shrink it: best {best:?}"
    );
}

#[test]
fn a_rust_plugin_built_outside_the_workspace_drives_selection() {
    scaffolded_plugin_drives_selection("rust");
}

#[test]
fn a_c_plugin_built_outside_the_workspace_drives_selection() {
    scaffolded_plugin_drives_selection("c");
}

#[test]
fn a_missing_file_is_bad_input_before_generation_0() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = genome_scenario("bad", "./nowhere/libnope.so", "bad:score", "");
    load_fails(
        tmp.path(),
        &scenario,
        &["plugin", "nowhere/libnope.so", "no such file"],
    );
    // `validate` loads plugins as a run would.
    let out = lineage(&["validate", s(&tmp.path().join("scenario.toml"))]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no such file"), "{}", stderr(&out));
}

#[test]
fn a_file_that_is_not_a_library_is_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = tmp.path().join(dylib("fake"));
    std::fs::write(&fake, "not a shared library\n").unwrap();
    let scenario = genome_scenario("bad", s(&fake), "bad:score", "");
    load_fails(
        tmp.path(),
        &scenario,
        &[s(&fake), "not a loadable shared library"],
    );
    let check = lineage(&["plugins", "check", s(&fake)]);
    assert_eq!(check.status.code(), Some(2));
    assert!(stderr(&check).contains("not a loadable shared library"));
}

#[test]
fn a_library_without_the_entry_symbol_is_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = faulty(tmp.path(), "noentry", &["-DFAULTY_NO_ENTRY"]);
    let scenario = genome_scenario("bad", s(&lib), "bad:score", "");
    load_fails(
        tmp.path(),
        &scenario,
        &[s(&lib), "no `lineage_plugin_entry` symbol"],
    );
}

#[test]
fn an_abi_mismatch_is_refused_with_both_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = faulty(tmp.path(), "abi999", &["-DFAULTY_ABI=999"]);
    let scenario = genome_scenario("bad", s(&lib), "bad:score", "");
    load_fails(
        tmp.path(),
        &scenario,
        &[s(&lib), "ABI version 999", "ABI versions 1 to 4"],
    );
    let check = lineage(&["plugins", "check", s(&lib)]);
    assert_eq!(check.status.code(), Some(2));
    assert!(
        stderr(&check).contains("ABI version 999"),
        "{}",
        stderr(&check)
    );
}

#[test]
fn a_name_not_on_the_search_path_lists_where_it_looked() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = genome_scenario("bad", "no_such_plugin", "bad:score", "");
    let real = tmp.path().canonicalize().unwrap();
    load_fails(
        tmp.path(),
        &scenario,
        &[
            "plugin `no_such_plugin` is not on the search path",
            &dylib("no_such_plugin"),
            s(&real),
        ],
    );
}

/// ABI 2 only appended a host service: a library built for version 1 (its
/// descriptor says 1) still loads and drives selection.
#[test]
fn a_version_1_plugin_still_loads_and_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = faulty(tmp.path(), "abi1", &["-DFAULTY_ABI=1"]);
    let check = lineage(&["plugins", "check", s(&lib)]);
    assert!(check.status.success(), "{}", stderr(&check));
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("(ABI version 1)"),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let scenario = genome_scenario("old", s(&lib), "old:score", "");
    let path = write_scenario(tmp.path(), "old.toml", &scenario);
    lineage_ok(&[
        "run",
        s(&path),
        "--out",
        s(&tmp.path().join("run")),
        "--quiet",
    ]);
}

#[test]
fn unknown_offerings_and_refused_configurations_are_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = faulty(tmp.path(), "faulty", &[]);
    let scenario = genome_scenario("bad", s(&lib), "bad:nope", "");
    load_fails(
        tmp.path(),
        &scenario,
        &["plugin `faulty` has no offering `nope`", "score"],
    );
    let scenario = genome_scenario(
        "bad",
        s(&lib),
        "bad:score",
        "[plugins.bad.config]\nmode = \"bad_config\"",
    );
    load_fails(
        tmp.path(),
        &scenario,
        &["plugin `faulty` cannot create `score`"],
    );
}

#[test]
fn a_panic_while_creating_is_bad_input_with_its_message() {
    let lib = workspace_plugins().join(dylib("lineage_test_panicky"));
    let tmp = tempfile::tempdir().unwrap();
    let scenario = genome_scenario("p", s(&lib), "p:broken", "");
    load_fails(
        tmp.path(),
        &scenario,
        &[
            "plugin `panicky` cannot create `broken`: panicked at",
            "panicky cannot create `broken`",
        ],
    );
}

#[test]
fn a_panic_while_evaluating_aborts_with_its_message() {
    let lib = workspace_plugins().join(dylib("lineage_test_panicky"));
    let tmp = tempfile::tempdir().unwrap();
    let scenario = genome_scenario("p", s(&lib), "p:score", "");
    run_fails(
        tmp.path(),
        &scenario,
        1,
        &[
            "generation 0",
            "plugin `panicky` offering `score` failed",
            "panicked at",
            "src/lib.rs",
            "panicky panicked on purpose with 16 organisms",
        ],
    );
}

fn faulty_mode(dir: &Path, mode: &str, on_error: &str) -> String {
    let lib = faulty(dir, "faulty", &[]);
    genome_scenario(
        "bad",
        s(&lib),
        "bad:score",
        &format!("on_error = \"{on_error}\"\n\n[plugins.bad.config]\nmode = \"{mode}\""),
    )
}

#[test]
fn nan_and_infinite_scores_abort_naming_the_organism() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = faulty_mode(tmp.path(), "nan", "abort");
    run_fails(
        tmp.path(),
        &scenario,
        1,
        &["plugin `faulty` offering `score` returned NaN for organism 0 (metric `value`)"],
    );
    let tmp = tempfile::tempdir().unwrap();
    let scenario = faulty_mode(tmp.path(), "inf", "abort");
    run_fails(tmp.path(), &scenario, 1, &["returned inf for organism 0"]);
}

#[test]
fn too_few_scores_abort() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = faulty_mode(tmp.path(), "few", "abort");
    run_fails(
        tmp.path(),
        &scenario,
        1,
        &["plugin `faulty` offering `score` wrote 15 scores, but 16 organisms x 1 metrics need 16"],
    );
}

#[test]
fn an_error_status_aborts_with_the_plugins_message() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = faulty_mode(tmp.path(), "error", "abort");
    run_fails(
        tmp.path(),
        &scenario,
        1,
        &["plugin `faulty` offering `score` failed: faulty failed on purpose"],
    );
    // Nothing computed is lost: the checkpoint of generation 0 is there.
    assert!(tmp.path().join("run/checkpoints/gen-000000").is_dir());
}

#[test]
fn invalidate_marks_the_affected_organisms_and_counts_the_errors() {
    // NaN for organism 0 of each batch: one invalid organism and one error
    // per generation, and the run goes on.
    let tmp = tempfile::tempdir().unwrap();
    let scenario = faulty_mode(tmp.path(), "nan", "invalidate");
    let path = write_scenario(tmp.path(), "scenario.toml", &scenario);
    let run = tmp.path().join("run");
    let out = lineage_ok(&["run", s(&path), "--out", s(&run), "--quiet"]);
    assert!(stderr(&out).contains("warning: generation 0: plugin `faulty`"));
    let generations = run.join("generations.csv");
    assert_eq!(column(&generations, "eval_errors"), vec![1.0; 5]);
    assert!(column(&generations, "invalid").iter().all(|&k| k >= 1.0));
    // The others were scored: their first gene.
    assert!(
        column(&generations, "value_best")
            .iter()
            .all(|v| v.is_finite())
    );

    // An error status invalidates the whole batch.
    let tmp = tempfile::tempdir().unwrap();
    let scenario = faulty_mode(tmp.path(), "error", "invalidate");
    let path = write_scenario(tmp.path(), "scenario.toml", &scenario);
    let run = tmp.path().join("run");
    lineage_ok(&["run", s(&path), "--out", s(&run), "--quiet"]);
    let generations = run.join("generations.csv");
    assert_eq!(column(&generations, "invalid"), vec![16.0; 5]);
    assert_eq!(column(&generations, "eval_errors"), vec![1.0; 5]);
}

#[test]
fn abort_then_resume_equals_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = faulty_mode(tmp.path(), "ok", "abort");
    let path = write_scenario(tmp.path(), "scenario.toml", &scenario);
    let straight = tmp.path().join("straight");
    lineage_ok(&["run", s(&path), "--out", s(&straight), "--quiet"]);

    let broken = tmp.path().join("broken");
    let out = Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args(["run", s(&path), "--out", s(&broken), "--quiet"])
        .env("FAULTY_FAIL_FROM", "3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("generation 3, `") && err.contains(": plugin `faulty`"),
        "{err}"
    );
    assert!(broken.join("checkpoints/gen-000003").is_dir());
    lineage_ok(&["resume", s(&broken), "--quiet"]);
    for table in ["generations.csv", "organisms.csv"] {
        assert_eq!(
            read(&broken.join(table)),
            read(&straight.join(table)),
            "{table} differs after abort and resume"
        );
    }
}

#[test]
fn plugins_list_shows_what_the_search_path_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let libs = tmp.path().join("libs");
    std::fs::create_dir(&libs).unwrap();
    faulty(&libs, "faulty", &[]);
    faulty(&libs, "abi999", &["-DFAULTY_ABI=999"]);
    let out = Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args(["plugins", "list"])
        .env("LINEAGE_PLUGIN_PATH", &libs)
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("faulty 0.0.1 (ABI version 4)"), "{text}");
    assert!(text.contains("fitness score: value (maximize)"), "{text}");
    assert!(text.contains("ABI version 999"), "{text}");
    // And a run finds a plugin by name there.
    let scenario = genome_scenario("f", "faulty", "f:score", "");
    let path = write_scenario(tmp.path(), "scenario.toml", &scenario);
    let run = tmp.path().join("run");
    let out = Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args(["run", s(&path), "--out", s(&run), "--quiet"])
        .env("LINEAGE_PLUGIN_PATH", &libs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn builtins_report_the_same_objectives_as_the_scenario() {
    // The built-in plugin's offerings and the scenario's view of them must
    // agree, since scenarios are validated without loading anything.
    let plugin = lineage_plugin_host::builtin::plugin().unwrap();
    for name in lineage_evo::fitness::BUILTIN_NAMES {
        let scenario = format!(
            "name = \"b\"\ngenerations = 1\npopulation = 4\n[genome]\nbits = 8\ngenes = [{{ name = \"x\", count = 2, min = 0.0, max = 1.0 }}]\n[fitness]\nfunction = \"{name}\"\n{}",
            if name == "trap" { "k = 4" } else { "" }
        );
        let s = lineage_scenario::from_str(&scenario, "t", Path::new("."), &Default::default())
            .unwrap();
        let (_, offering) = plugin.offering(name).unwrap();
        assert_eq!(s.objectives, offering.metrics, "{name}");
    }
    for name in lineage_plugin_host::builtin::LIFETIME_NAMES {
        let (_, offering) = plugin.offering(name).unwrap();
        let m = lineage_scenario::LifetimeMetric::parse(name).unwrap();
        assert_eq!(offering.metrics[0].name, m.name());
        assert_eq!(offering.metrics[0].direction, m.direction());
    }
}
