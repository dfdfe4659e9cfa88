//! Environment plugins (ABI 4) through the `lineage` binary: a C
//! environment (`tests/plugins/faulty_env.c`, Gaussian clusters drawn from
//! each fill's seed, with faults on demand) drives lifetimes; runs are the
//! same whatever the thread count, after a resume and in or out of process;
//! every broken batch stops the run with exit 2 naming the plugin, the
//! offering and what was wrong, keeping the records before it, and the run
//! resumes once the fault is gone; bad configuration points at its line;
//! and a plugin built from the ABI-3 header still loads and scores.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{dylib, lineage, lineage_ok, read, s, write_scenario};

/// Compiles `source` against the header in `include` into `out`.
fn compile_c(source: &Path, include: &Path, out: &Path) {
    common::compile_c(&[source], Some(include), &[], out);
}

/// `tests/plugins/faulty_env.c` built into `dir`.
fn faulty_env(dir: &Path) -> PathBuf {
    let out = dir.join(dylib("faulty_env"));
    compile_c(
        &common::root().join("tests/plugins/faulty_env.c"),
        &common::root().join("plugins/sdk/include"),
        &out,
    );
    out
}

/// A scenario whose lifetimes learn the plugin's clusters; `extra` goes
/// into `[plugins.fe]`, `env` into the environment table.
fn scenario(extra: &str, env: &str) -> String {
    format!(
        r#"
name = "env-plugin"
seed = 3
generations = 4
population = 12
checkpoint_every = 1

[genome]
genes = [{{ name = "lr", min = 1e-3, max = 0.5, log = true }}]

[plugins.fe]
library = "{lib}"
{extra}

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
budget = 64
steps = 30
batch = 16
eval_every = 10
environment = {{ plugin = "fe:clusters", seed = 7, dim = 6, spread = 0.7{env} }}
model = {{ kind = "mlp", hidden = [16], activation = "relu" }}
optimizer = {{ method = "sgd", momentum = 0.9 }}
"#,
        lib = dylib("faulty_env")
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `lineage` with `vars` set in its environment.
fn lineage_with(vars: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lineage"));
    cmd.args(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().expect("lineage runs")
}

fn same_records(a: &Path, b: &Path, what: &str) {
    for table in ["organisms.csv", "curves.csv", "generations.csv"] {
        assert!(
            read(&a.join(table)) == read(&b.join(table)),
            "{table} differs: {what}"
        );
    }
}

#[test]
fn runs_are_the_same_whatever_the_threads_isolation_or_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = faulty_env(tmp.path());
    let path = write_scenario(tmp.path(), "s.toml", &scenario("", ""));
    let base = tmp.path().join("base");
    lineage_ok(&["run", s(&path), "--out", s(&base), "--quiet"]);

    // Lifetimes learned: the best held-out loss fell over the generations
    // and is far below chance (ln 3 = 1.10).
    let best = common::column(&base.join("generations.csv"), "heldout_loss_best");
    assert!(best[3] < 0.8, "best held-out loss {best:?}");

    // The manifest records the plugin like any other.
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&base.join("manifest.json"))).unwrap();
    let p = &manifest["plugins"][0];
    assert_eq!(
        (p["alias"].as_str(), p["name"].as_str()),
        (Some("fe"), Some("faulty_env"))
    );
    assert_eq!(p["abi_version"], 4);
    let bytes = read(&lib);
    assert_eq!(p["sha256"].as_str().unwrap().len(), 64);
    assert!(!bytes.is_empty());

    // `lineage plugins list` shows the environment on the search path.
    let list = Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args(["plugins", "list"])
        .env("LINEAGE_PLUGIN_PATH", tmp.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("faulty_env 1.0.0 (ABI version 4)") && text.contains("environment clusters"),
        "{text}"
    );

    let one = tmp.path().join("one-thread");
    lineage_ok(&[
        "run",
        s(&path),
        "--out",
        s(&one),
        "--quiet",
        "--threads",
        "1",
    ]);
    same_records(&base, &one, "one thread against all");

    let isolated = write_scenario(
        tmp.path(),
        "isolated.toml",
        &scenario("isolation = \"process\"", ""),
    );
    let iso = tmp.path().join("isolated");
    lineage_ok(&[
        "run",
        s(&isolated),
        "--out",
        s(&iso),
        "--quiet",
        "--threads",
        "2",
    ]);
    same_records(&base, &iso, "in a worker process against in process");

    let resumed = tmp.path().join("resumed");
    lineage_ok(&[
        "run",
        s(&path),
        "--out",
        s(&resumed),
        "--quiet",
        "--generations",
        "2",
    ]);
    lineage_ok(&["resume", s(&resumed), "--quiet", "--generations", "4"]);
    same_records(&base, &resumed, "resumed against uninterrupted");

    // The world is the scenario's: another environment seed, other data.
    let other = write_scenario(
        tmp.path(),
        "other.toml",
        &scenario("", "").replace("seed = 7,", "seed = 8,"),
    );
    let o = tmp.path().join("other");
    lineage_ok(&["run", s(&other), "--out", s(&o), "--quiet"]);
    assert_ne!(read(&o.join("curves.csv")), read(&base.join("curves.csv")));
}

#[test]
fn a_broken_batch_stops_the_run_keeping_its_records_and_it_resumes_once_fixed() {
    let tmp = tempfile::tempdir().unwrap();
    faulty_env(tmp.path());
    let path = write_scenario(tmp.path(), "s.toml", &scenario("", ""));
    let isolated = write_scenario(
        tmp.path(),
        "isolated.toml",
        &scenario("isolation = \"process\"", ""),
    );
    let straight = tmp.path().join("straight");
    lineage_ok(&["run", s(&path), "--out", s(&straight), "--quiet"]);
    // 24 lifetimes are generations 0 and 1 (12 organisms each): the fault
    // starts in generation 2.
    let cases: [(&str, &Path, &str); 6] = [
        ("nan", &path, "training data: x[0] (example 0) is NaN"),
        (
            "label",
            &path,
            "labels[63] (example 63) is 7; expected below 3",
        ),
        (
            "count",
            &path,
            "the plugin says it wrote 63 examples; 64 were asked for",
        ),
        ("unwritten", &path, "(example 63) is NaN (left unwritten"),
        (
            "error",
            &path,
            "its fill function failed: a deliberate failure",
        ),
        (
            "crash",
            &isolated,
            "its worker process was killed by SIGSEGV",
        ),
    ];
    for (mode, scenario, expected) in cases {
        let run = tmp.path().join(format!("broken-{mode}"));
        let out = lineage_with(
            &[("FAULTY_ENV_MODE", mode), ("FAULTY_ENV_AFTER", "24")],
            &["run", s(scenario), "--out", s(&run), "--quiet"],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{mode}: {err}");
        assert!(
            err.contains("generation 2: environment plugin `faulty_env`, offering `clusters`")
                && err.contains(expected),
            "{mode}: {err}"
        );
        // The generations before it are recorded and checkpointed.
        let generations = common::column(&run.join("generations.csv"), "generation");
        assert_eq!(generations, vec![0.0, 1.0], "{mode}");
        assert!(run.join("checkpoints/gen-000002").is_dir(), "{mode}");
        if mode == "nan" || mode == "crash" {
            // Without the fault the run continues as if nothing happened.
            lineage_ok(&["resume", s(&run), "--quiet"]);
            same_records(&straight, &run, &format!("resumed after `{mode}`"));
        }
    }
}

/// A plugin with a bug stops the run; once rebuilt without it, `resume`
/// refuses the changed library unless told to accept it, and then goes on
/// as a run with the fixed library from the start would (the bug struck
/// only the generation redone), the manifest recording the library
/// replaced and from which generation.
#[test]
fn a_fixed_plugin_takes_over_when_the_resume_accepts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = faulty_env(tmp.path());
    let fixed = read(&lib);
    let path = write_scenario(tmp.path(), "s.toml", &scenario("", ""));
    let straight = tmp.path().join("straight");
    lineage_ok(&["run", s(&path), "--out", s(&straight), "--quiet"]);

    common::compile_c(
        &[&common::root().join("tests/plugins/faulty_env.c")],
        None,
        &["-DFAULTY_ENV_BROKEN"],
        &lib,
    );
    let broken_sha = sha256_of(&read(&lib));
    let run = tmp.path().join("run");
    let out = lineage(&["run", s(&path), "--out", s(&run), "--quiet"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("x[0] (example 0) is NaN"),
        "{}",
        stderr(&out)
    );

    std::fs::write(&lib, &fixed).unwrap();
    let refused = lineage(&["resume", s(&run), "--quiet"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("changed since the run started")
            && stderr(&refused).contains("--accept-changed-plugins"),
        "{}",
        stderr(&refused)
    );
    let accepted = lineage(&["resume", s(&run), "--accept-changed-plugins"]);
    assert!(accepted.status.success(), "{}", stderr(&accepted));
    let said = format!(
        "{}{}",
        stderr(&accepted),
        String::from_utf8_lossy(&accepted.stdout)
    );
    assert!(
        said.contains("its library changed since the run started"),
        "{said}"
    );
    same_records(&straight, &run, "resumed with the fixed library");
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&run.join("manifest.json"))).unwrap();
    let p = &manifest["plugins"][0];
    assert_eq!(p["sha256"].as_str(), Some(sha256_of(&fixed).as_str()));
    assert_eq!(
        p["replaced"][0]["sha256"].as_str(),
        Some(broken_sha.as_str())
    );
    assert_eq!(p["replaced"][0]["until_generation"], 2);
    let inspect = lineage_ok(&["inspect", s(&run)]);
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        text.contains(&format!(
            "replacing sha256 {} from generation 2 on",
            &broken_sha[..12]
        )),
        "{text}"
    );
}

fn sha256_of(bytes: &[u8]) -> String {
    lineage_engine::sha256_hex(bytes)
}

#[test]
fn bad_environment_tables_point_at_their_line() {
    let tmp = tempfile::tempdir().unwrap();
    faulty_env(tmp.path());
    let cases = [
        (
            scenario("", ", dimm = 3"),
            "unknown configuration key `dimm`",
            "lifetime.environment.dimm",
        ),
        (
            scenario("", ", classes = 1"),
            "`classes` is out of range: 1",
            "lifetime.environment.classes",
        ),
        (
            scenario("", "").replace("fe:clusters", "fe:clustrs"),
            "no such offering; it offers: clusters",
            "lifetime.environment.plugin",
        ),
        (
            scenario("", "").replace("fe:clusters", "nope:clusters"),
            "no plugin `nope`: declare it as a `[plugins.nope]` table (declared: fe)",
            "lifetime.environment.plugin",
        ),
        (
            scenario("", ", kind = \"teacher\""),
            "either a built-in `kind` or a `plugin`, not both",
            "lifetime.environment",
        ),
        (
            // The plugin's name alone picks its one environment.
            scenario("", "")
                .replace("fe:clusters", "fe")
                .replace("function = \"heldout_loss\"", "function = \"fe:clusters\""),
            "`fe:clusters` is an environment, not a fitness function or suite",
            "",
        ),
    ];
    for (i, (text, message, field)) in cases.iter().enumerate() {
        let path = write_scenario(tmp.path(), &format!("bad-{i}.toml"), text);
        let out = lineage(&["validate", s(&path)]);
        let out = if out.status.success() {
            // Loaded fine: the misuse shows when the run starts.
            lineage(&[
                "run",
                s(&path),
                "--out",
                s(&tmp.path().join(format!("r{i}"))),
                "--quiet",
            ])
        } else {
            out
        };
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "case {i}: {err}");
        assert!(err.contains(message), "case {i}: {err}");
        assert!(err.contains(field), "case {i}: {err}");
        if !field.is_empty() {
            assert!(
                err.contains("bad-") && err.contains(".toml:"),
                "case {i}: no line in {err}"
            );
        }
    }
}

/// The held-out set a plugin declares joins the memory estimate before
/// it is allocated: 10^6 examples of 1,000 inputs (4 GB) are refused
/// under a 1 GiB limit, naming the environment, with nothing allocated.
#[test]
fn a_declared_held_out_set_too_large_for_memory_is_refused_before_allocation() {
    let tmp = tempfile::tempdir().unwrap();
    faulty_env(tmp.path());
    let text = scenario("", ", heldout = 1000000").replace("dim = 6", "dim = 1000");
    let path = write_scenario(tmp.path(), "big.toml", &text);
    let out = lineage(&["validate", s(&path), "--memory-limit", "1GiB"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("lifetime.environment")
            && err.contains("environment data the plugin declared"),
        "{err}"
    );
}

#[test]
fn a_plugin_built_from_the_abi_3_header_still_loads_and_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join(dylib("learning_speed"));
    // The header as ABI 3 shipped it, byte for byte.
    compile_c(
        &common::root().join("plugins/examples/learning-speed-c/learning_speed.c"),
        &common::root().join("tests/fixtures/abi3"),
        &lib,
    );
    let check = lineage_ok(&["plugins", "check", s(&lib)]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(
        text.contains("learning_speed 1.0.0 (ABI version 3)"),
        "{text}"
    );
    let scenario = scenario("", "")
        .replace("[plugins.fe]", "[plugins.speed]")
        .replace(&format!("\"{}\"", dylib("faulty_env")), &format!("\"{}\"", dylib("learning_speed")))
        .replace("function = \"heldout_loss\"", "function = \"speed:learning_speed\"")
        .replace(
            "environment = { plugin = \"fe:clusters\", seed = 7, dim = 6, spread = 0.7 }",
            "environment = { kind = \"gaussian_clusters\", classes = 3, dim = 6, spread = 0.7, seed = 7 }",
        );
    let path = write_scenario(tmp.path(), "old.toml", &scenario);
    let run = tmp.path().join("run");
    lineage_ok(&["run", s(&path), "--out", s(&run), "--quiet"]);
    let (header, _) = common::csv(&run.join("organisms.csv"));
    assert!(header.iter().any(|h| h == "auc"), "{header:?}");
}

/// `lineage new-plugin --kind environment`, built where a user would build
/// it: it passes `lineage plugins check`, and lifetimes learn in it.
fn scaffolded_environment_teaches_lifetimes(lang: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("my-world");
    lineage_ok(&[
        "new-plugin",
        "my-world",
        "--kind",
        "environment",
        "--lang",
        lang,
        "--out",
        s(&dir),
    ]);
    common::build_scaffold(&dir, lang);
    let lib = match lang {
        "rust" => dir.join("target/release").join(dylib("my_world")),
        _ => dir.join(dylib("my_world")),
    };
    let check = lineage_ok(&["plugins", "check", s(&lib)]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(text.contains("my_world 0.1.0 (ABI version 4)"), "{text}");
    assert!(
        text.contains("environment halfspace")
            && text.contains("halfspace: ok (classification, 8 inputs, 2 classes"),
        "{text}"
    );
    let run = tmp.path().join("run");
    lineage_ok(&[
        "run",
        s(&dir.join("scenario.toml")),
        "--out",
        s(&run),
        "--quiet",
        "--generations",
        "3",
    ]);
    // Every lifetime learned: far below chance (ln 2 = 0.69) at the end.
    let best = common::column(&run.join("generations.csv"), "heldout_loss_best");
    assert!(best.iter().all(|&b| b < 0.45), "held-out loss {best:?}");
}

#[test]
fn a_rust_environment_from_the_scaffold_teaches_lifetimes() {
    scaffolded_environment_teaches_lifetimes("rust");
}

#[test]
fn a_c_environment_from_the_scaffold_teaches_lifetimes() {
    scaffolded_environment_teaches_lifetimes("c");
}

/// A plugin's environment works with what built-in ones work with:
/// conditions (each its own configuration), islands (one island in the
/// plugin's world, the other in a built-in one), reports and exports.
#[test]
fn conditions_islands_reports_and_exports_take_plugin_environments() {
    let tmp = tempfile::tempdir().unwrap();
    faulty_env(tmp.path());
    let base = scenario("", "");
    let conditions = format!(
        "{base}\n[[conditions]]\nname = \"tight\"\nseeds = [1, 2]\nset = {{ lifetime = {{ environment = {{ plugin = \"fe:clusters\", seed = 7, dim = 6, spread = 0.3 }} }} }}\n\n[[conditions]]\nname = \"loose\"\nseeds = [1, 2]\nset = {{ lifetime = {{ environment = {{ plugin = \"fe:clusters\", seed = 7, dim = 6, spread = 1.5 }} }} }}\n"
    );
    let path = write_scenario(tmp.path(), "conditions.toml", &conditions);
    let run = tmp.path().join("conditions");
    lineage_ok(&[
        "run",
        s(&path),
        "--out",
        s(&run),
        "--quiet",
        "--generations",
        "2",
    ]);
    let report = lineage_ok(&["report", s(&run)]);
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(text.contains("tight") && text.contains("loose"), "{text}");
    // Tighter clusters are easier: a lower held-out loss in every seed.
    let loss = |c: &str, seed: u32| {
        let g = run.join(format!("conditions/{c}/seed-{seed}/generations.csv"));
        *common::column(&g, "heldout_loss_best").last().unwrap()
    };
    for seed in [1, 2] {
        assert!(loss("tight", seed) < loss("loose", seed), "seed {seed}");
    }

    let islands = format!(
        "{base}\n[islands]\ncount = 2\nmigration_interval = 2\nmigrants = 1\n\n[[islands.override]]\nislands = [1]\nset = {{ lifetime = {{ environment = {{ kind = \"gaussian_clusters\", classes = 3, dim = 6, spread = 0.7, heldout = 200, seed = 7 }} }} }}\n"
    );
    let path = write_scenario(tmp.path(), "islands.toml", &islands);
    let run = tmp.path().join("islands");
    lineage_ok(&["run", s(&path), "--out", s(&run), "--quiet"]);
    for island in 0..2 {
        let dir = run.join(format!("islands/island-{island}"));
        let best = common::column(&dir.join("generations.csv"), "heldout_loss_best");
        assert!(best.last().unwrap() < &0.9, "island {island}: {best:?}");
    }

    // The environment schedule: from generation 2 the clusters spread out,
    // a harder world, from a new instance of the plugin's environment.
    let changing = format!(
        "{base}\n[[environment]]\nat_generation = 2\nset = {{ lifetime = {{ environment = {{ plugin = \"fe:clusters\", seed = 7, dim = 6, spread = 2.0 }} }} }}\n"
    );
    let path = write_scenario(tmp.path(), "changing.toml", &changing);
    let run = tmp.path().join("changing");
    lineage_ok(&["run", s(&path), "--out", s(&run), "--quiet"]);
    let generations = run.join("generations.csv");
    assert_eq!(
        common::column(&generations, "phase"),
        vec![0.0, 0.0, 1.0, 1.0]
    );
    let median = common::column(&generations, "heldout_loss_median");
    assert!(
        median[2] > median[1],
        "a harder world from generation 2: {median:?}"
    );

    // `lineage export` draws an organism's lifetime again, through the
    // plugin, and writes what it learned from.
    let plain = write_scenario(tmp.path(), "plain.toml", &base);
    let run = tmp.path().join("plain");
    lineage_ok(&[
        "run",
        s(&plain),
        "--out",
        s(&run),
        "--quiet",
        "--generations",
        "2",
    ]);
    let exported = tmp.path().join("exported");
    lineage_ok(&["export", s(&run), "--organism", "3", "--out", s(&exported)]);
    assert!(std::fs::read_dir(&exported).unwrap().count() > 0);
}

/// Descriptors that break the environment ABI are refused when loaded,
/// naming what is wrong; a probe set without a name, when the environment
/// is created.
#[test]
fn broken_environment_descriptors_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "NO_API",
            "offers an environment but its descriptor has no environment functions",
        ),
        (
            "METRICS",
            "environment `clusters` declares 1 metrics; an environment has none",
        ),
        ("NULL_PROBE", "probe set 0 has a null name"),
    ];
    for (define, expected) in cases {
        let lib = tmp
            .path()
            .join(dylib(&format!("fe_{}", define.to_lowercase())));
        common::compile_c(
            &[&common::root().join("tests/plugins/faulty_env.c")],
            None,
            &[&format!("-DFAULTY_ENV_{define}")],
            &lib,
        );
        let out = lineage(&["plugins", "check", s(&lib)]);
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert_eq!(out.status.code(), Some(2), "{define}: {said}");
        assert!(said.contains(expected), "{define}: {said}");
    }
}

/// A task direction the plugin declares is what `align = "task"` aligns a
/// low-rank initial matrix with; without one, the rule is refused on its
/// line.
#[test]
fn a_declared_task_direction_aligns_low_rank_matrices() {
    let tmp = tempfile::tempdir().unwrap();
    faulty_env(tmp.path());
    let rule =
        "\ndevelop = { matrix = [{ name = \"layers.0.weight\", rank = 1, align = \"task\" }] }\n";
    let with = format!("{}{rule}", scenario("", ", direction = 1"));
    let path = write_scenario(tmp.path(), "with.toml", &with);
    lineage_ok(&["validate", s(&path)]);
    let run = tmp.path().join("run");
    lineage_ok(&[
        "run",
        s(&path),
        "--out",
        s(&run),
        "--quiet",
        "--generations",
        "1",
    ]);
    let without = format!("{}{rule}", scenario("", ""));
    let path = write_scenario(tmp.path(), "without.toml", &without);
    let out = lineage(&["validate", s(&path)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("lifetime.develop.matrix[0].align")
            && err.contains("needs an environment with a task direction"),
        "{err}"
    );
}
