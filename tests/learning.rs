//! Lifetime learning end to end from scenario files: determinism across
//! thread counts, exact resume under every inheritance mode, the pruning
//! lineage's density, divergence, and the bad-input rules of `[lifetime]`.

mod common;

use std::path::Path;

use common::{column, lineage, lineage_ok, read, s, tensors, write_scenario};

fn scenario(inheritance: &str, extra: &str) -> String {
    format!(
        r#"
name = "learn"
seed = 8
generations = 4
population = 6
checkpoint_every = 2
[genome]
genes = [
    {{ name = "lr", min = 0.01, max = 0.3, log = true }},
    {{ name = "gain", min = 0.5, max = 2.0 }},
]
[fitness]
function = "heldout_auc"
[selection]
method = "tournament"
tournament_size = 2
[mutation]
sigma = 0.1
gene_rate = 1.0
[lifetime]
budget = 48
steps = 24
batch = 8
eval_every = 8
inheritance = "{inheritance}"
lamarckian_noise = 0.01
environment = {{ kind = "gaussian_clusters", classes = 3, dim = 5, spread = 1.0, heldout = 60, seed = 1 }}
model = {{ kind = "mlp", hidden = [12], activation = "relu" }}
optimizer = {{ method = "sgd", momentum = 0.9 }}
{extra}
"#
    )
}

fn run(dir: &Path, name: &str, text: &str, extra: &[&str]) -> std::path::PathBuf {
    let file = write_scenario(dir, &format!("{name}.toml"), text);
    let out = dir.join(name);
    let mut args = vec!["run", s(&file), "--out", s(&out), "--quiet"];
    args.extend_from_slice(extra);
    lineage_ok(&args);
    out
}

#[test]
fn learning_runs_are_identical_across_thread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let text = scenario("darwinian", "");
    let one = run(dir.path(), "one", &text, &["--threads", "1"]);
    let two = run(dir.path(), "two", &text, &["--threads", "2"]);
    for table in ["generations.csv", "organisms.csv", "curves.csv"] {
        assert_eq!(
            read(&one.join(table)),
            read(&two.join(table)),
            "{table} differs"
        );
    }
    let rows = String::from_utf8(read(&one.join("organisms.csv"))).unwrap();
    assert!(
        rows.lines()
            .next()
            .unwrap()
            .contains("lifetime,birth_heldout,final_heldout")
    );
    assert!(
        rows.lines().skip(1).all(|l| l.contains(",completed,")),
        "{rows}"
    );
}

/// Rows of `organisms.csv` by generation (the third column).
fn rows_by_generation(run: &Path) -> std::collections::BTreeMap<String, Vec<Vec<String>>> {
    let (_, rows) = common::csv(&run.join("organisms.csv"));
    let mut by = std::collections::BTreeMap::<String, Vec<Vec<String>>>::new();
    for row in rows {
        by.entry(row[2].clone()).or_default().push(row);
    }
    by
}

#[test]
fn record_options_write_a_seeded_sample_or_the_elites_and_change_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let all = run(dir.path(), "all", &scenario("darwinian", ""), &[]);
    let sample_text = scenario(
        "darwinian",
        "[record]\norganisms = \"sample\"\nsample = 3\nweights = \"learned\"",
    );
    let sample = run(dir.path(), "sample", &sample_text, &[]);
    let elites = run(
        dir.path(),
        "elites",
        &scenario("darwinian", "[record]\norganisms = \"elites\"\nelites = 2"),
        &[],
    );
    // What is recorded and kept changes no result.
    for run in [&sample, &elites] {
        assert_eq!(
            read(&all.join("generations.csv")),
            read(&run.join("generations.csv"))
        );
    }
    let every = rows_by_generation(&all);
    let sampled = rows_by_generation(&sample);
    let best = rows_by_generation(&elites);
    assert_eq!(
        every.keys().collect::<Vec<_>>(),
        sampled.keys().collect::<Vec<_>>()
    );
    let mut differs = false;
    for (g, rows) in &every {
        let s = &sampled[g];
        assert_eq!(s.len(), rows.len().min(3), "generation {g}");
        assert!(s.iter().all(|r| rows.contains(r)), "generation {g}");
        differs |= s[..] != rows[..s.len()];
        // The elites: the two lowest `heldout_auc` values (it is
        // minimised), ties by id.
        let mut ranked = rows.clone();
        ranked.sort_by(|a, b| {
            let f = |r: &Vec<String>| r[5].parse::<f64>().unwrap();
            f(a).total_cmp(&f(b)).then(
                a[0].parse::<u64>()
                    .unwrap()
                    .cmp(&b[0].parse::<u64>().unwrap()),
            )
        });
        ranked.truncate(2);
        ranked.sort_by_key(|r| r[0].parse::<u64>().unwrap());
        assert_eq!(best[g], ranked, "generation {g}");
    }
    assert!(differs, "the sample is the first rows in every generation");
    // Curves follow the rows written.
    let (_, curves) = common::csv(&sample.join("curves.csv"));
    let ids: std::collections::BTreeSet<(String, String)> = sampled
        .values()
        .flatten()
        .map(|r| (r[0].clone(), r[2].clone()))
        .collect();
    assert!(
        curves
            .iter()
            .all(|c| ids.contains(&(c[0].clone(), c[1].clone())))
    );
    // The sample is drawn from the run's seed: a resumed run draws it again.
    let part = run(dir.path(), "part", &sample_text, &["--generations", "2"]);
    lineage_ok(&["resume", s(&part), "--generations", "4", "--quiet"]);
    assert_eq!(
        read(&sample.join("organisms.csv")),
        read(&part.join("organisms.csv"))
    );
}

#[test]
fn bad_record_options_are_named() {
    let text = scenario("darwinian", "[record]\norganisms = \"sample\"");
    let err = validate_with(&text);
    assert!(
        err.contains("record.organisms") && err.contains("record.sample = N"),
        "{err}"
    );
    let text = scenario("darwinian", "[record]\norganisms = \"best\"");
    let err = validate_with(&text);
    assert!(
        err.contains("record.organisms") && err.contains("elites"),
        "{err}"
    );
    let text = scenario("darwinian", "[record]\nelites = 3");
    let err = validate_with(&text);
    assert!(
        err.contains("record.elites") && err.contains("\"elites\""),
        "{err}"
    );
    let text = scenario("darwinian", "[record]\nweights = \"some\"");
    let err = validate_with(&text);
    assert!(
        err.contains("record.weights") && err.contains("needed"),
        "{err}"
    );
}

#[test]
fn resume_is_exact_under_every_inheritance_mode() {
    for mode in ["darwinian", "lamarckian", "prune"] {
        let dir = tempfile::tempdir().unwrap();
        let text = scenario(mode, "");
        let whole = run(dir.path(), "whole", &text, &[]);
        let part = run(dir.path(), "part", &text, &["--generations", "2"]);
        lineage_ok(&["resume", s(&part), "--generations", "4", "--quiet"]);
        for table in ["generations.csv", "organisms.csv", "curves.csv"] {
            assert_eq!(
                read(&whole.join(table)),
                read(&part.join(table)),
                "{mode}: {table} differs after resume"
            );
        }
    }
}

#[test]
fn a_pruning_lineage_loses_a_fifth_of_each_matrix_per_generation_and_keeps_signs() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
name = "prune"
seed = 3
generations = 3
population = 1
checkpoint_every = 1
[genome]
genes = [{ name = "unused", min = 0.0, max = 1.0 }]
[fitness]
function = "heldout_loss"
[selection]
method = "tournament"
tournament_size = 1
[lifetime]
budget = 400
steps = 30
batch = 16
inheritance = "prune"
prune = { fraction = 0.2, reset = 0.05 }
environment = { kind = "gaussian_clusters", classes = 3, dim = 6, spread = 1.0, heldout = 30, seed = 1 }
model = { kind = "mlp", hidden = [20], activation = "relu", bias = false }
optimizer = { method = "adam", lr = 0.01 }
"#;
    let out = run(dir.path(), "prune", text, &[]);
    // Organism g is born in generation g with density 0.8^g.
    for g in 1..=3u32 {
        let export = dir.path().join(format!("export-{g}"));
        lineage_ok(&[
            "export",
            s(&out),
            "--organism",
            &g.to_string(),
            "--out",
            s(&export),
        ]);
        let birth = tensors(&export.join("birth.safetensors"));
        let finals = tensors(&export.join("final.safetensors"));
        let masks = tensors(&export.join("masks.safetensors"));
        assert_eq!(masks.len(), 2, "both matrices are masked");
        for (name, mask) in &masks {
            let alive = mask.iter().filter(|&&m| m == 1.0).count() as f64;
            let expected = 0.8f64.powi(g as i32) * mask.len() as f64;
            // Each round removes round(20% of survivors): within a weight per round.
            assert!(
                (alive - expected).abs() <= f64::from(g),
                "{name}: {alive} alive, expected about {expected}"
            );
            let (_, w) = birth.iter().find(|(n, _)| n == name).unwrap();
            let (_, f) = finals.iter().find(|(n, _)| n == name).unwrap();
            for ((&m, &b), &x) in mask.iter().zip(w).zip(f) {
                if m == 0.0 {
                    assert_eq!((b, x), (0.0, 0.0), "pruned weights stay exactly zero");
                } else {
                    assert_eq!(b.abs(), 0.05, "survivors reset to sign x 0.05");
                }
            }
        }
    }
}

#[test]
fn a_diverging_lifetime_is_invalid_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let text = scenario("darwinian", "").replace(
        "min = 0.01, max = 0.3, log = true",
        "min = 1e30, max = 1e31, log = true",
    );
    let out = run(dir.path(), "nan", &text, &[]);
    let generations = String::from_utf8(read(&out.join("generations.csv"))).unwrap();
    let invalid: Vec<&str> = generations
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(3).unwrap())
        .collect();
    assert!(
        invalid.iter().all(|&n| n != "0"),
        "every generation counts invalid organisms: {generations}"
    );
    let organisms = String::from_utf8(read(&out.join("organisms.csv"))).unwrap();
    assert!(organisms.contains("diverged at step"), "{organisms}");
}

fn rejected(extra_or_replace: (&str, &str), needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let (from, to) = extra_or_replace;
    let text = scenario("darwinian", "").replace(from, to);
    let file = write_scenario(dir.path(), "bad.toml", &text);
    let out = lineage(&["validate", s(&file)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` missing from: {err}");
    }
}

#[test]
fn bad_lifetimes_are_rejected_with_the_field_named() {
    // A mask for a matrix that does not exist.
    rejected(
        (
            "[lifetime]",
            "[lifetime]\ndevelop = { matrix = [{ name = \"layers.7.weight\", density = 0.5 }] }",
        ),
        &[
            "bad.toml:",
            "lifetime.develop.matrix[0].name",
            "no weight matrix `layers.7.weight`",
            "layers.0.weight",
        ],
    );
    // A rank above the matrix's dimension.
    rejected(
        (
            "[lifetime]",
            "[lifetime]\ndevelop = { matrix = [{ name = \"layers.0.weight\", rank = 9 }] }",
        ),
        &[
            "lifetime.develop.matrix[0].rank",
            "rank 9 does not fit `layers.0.weight`, a 12x5 matrix",
        ],
    );
    // An alignment direction of the wrong length, and one without a rank.
    rejected(
        (
            "[lifetime]",
            "[lifetime]\ndevelop = { matrix = [{ name = \"layers.0.weight\", rank = 1, align = [1.0, 0.0] }] }",
        ),
        &[
            "lifetime.develop.matrix[0].align",
            "reads 5 inputs",
            "needs 5 finite values",
        ],
    );
    rejected(
        (
            "[lifetime]",
            "[lifetime]\ndevelop = { matrix = [{ name = \"layers.0.weight\", align = [1.0, 0.0, 0.0, 0.0, 1.0] }] }",
        ),
        &["lifetime.develop.matrix[0].align", "give `rank` too"],
    );
    // A model context longer than the environment's windows.
    let corpus = common::root().join("scenarios/data/shakespeare.txt");
    let text = scenario("darwinian", "")
        .replace(
            "kind = \"gaussian_clusters\", classes = 3, dim = 5, spread = 1.0, heldout = 60, seed = 1",
            &format!("kind = \"text\", path = \"{}\", context = 4", corpus.display()),
        )
        .replace(
            "kind = \"mlp\", hidden = [12], activation = \"relu\"",
            "kind = \"mlp\", embedding = 4, context = 9, hidden = [8]",
        );
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(dir.path(), "context.toml", &text);
    let out = lineage(&["validate", s(&file)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for n in [
        "context.toml:",
        "lifetime.model",
        "context of 9 tokens",
        "windows hold 4",
    ] {
        assert!(err.contains(n), "`{n}` missing from: {err}");
    }
    // A missing data file.
    rejected(
        (
            "kind = \"gaussian_clusters\", classes = 3, dim = 5, spread = 1.0, heldout = 60, seed = 1",
            "kind = \"text\", path = \"nowhere.txt\", context = 4",
        ),
        &["lifetime.environment.path", "nowhere.txt", "no such file"],
    );
    // Unknown optimiser, with a suggestion of the valid ones.
    rejected(
        ("method = \"sgd\"", "method = \"sgdm\""),
        &[
            "lifetime.optimizer.method",
            "unknown optimiser `sgdm`",
            "adamw",
        ],
    );
    // Lifetime fitness without a lifetime.
    let dir = tempfile::tempdir().unwrap();
    let text = scenario("darwinian", "");
    let cut = &text[..text.find("[lifetime]").unwrap()];
    let file = write_scenario(dir.path(), "nolife.toml", cut);
    let out = lineage(&["validate", s(&file)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no `[lifetime]` table"));
}

#[test]
fn asking_for_cuda_from_a_cpu_build_is_a_clear_error() {
    if cfg!(feature = "cuda") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(dir.path(), "cuda.toml", &scenario("darwinian", ""));
    let out = lineage(&[
        "run",
        s(&file),
        "--device",
        "cuda",
        "--out",
        s(&dir.path().join("r")),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--device") && err.contains("no CUDA support"),
        "{err}"
    );
}

#[test]
fn connectome_genomes_develop_into_masked_signed_weights_and_rewiring_keeps_density() {
    let dir = tempfile::tempdir().unwrap();
    // Matrices 12x5 and 3x12: 96 weights, so 192 bits (mask, then signs).
    let text = scenario(
        "darwinian",
        "develop = { connectome = true, scale = 0.1 }\nrewire = { edges = 3, flips = 2 }",
    )
    .replace("[genome]\n", "[genome]\nbits = 192\nbit_density = 0.5\n")
    .replace("gene_rate = 1.0", "gene_rate = 1.0\nbit_rate = 0.0");
    let out = run(dir.path(), "connectome", &text, &[]);
    // The last checkpoint holds generation 4's newborns: children of
    // rewiring, ids 24..30.
    for id in ["24", "29"] {
        let export = dir.path().join(format!("export-{id}"));
        lineage_ok(&["export", s(&out), "--organism", id, "--out", s(&export)]);
        let birth = tensors(&export.join("birth.safetensors"));
        let masks = tensors(&export.join("masks.safetensors"));
        for (name, mask) in &masks {
            let (_, w) = birth.iter().find(|(n, _)| n == name).unwrap();
            for (&m, &x) in mask.iter().zip(w) {
                assert!(
                    if m == 1.0 { x.abs() == 0.1 } else { x == 0.0 },
                    "{name}: mask {m}, weight {x}"
                );
            }
        }
    }
    let bad = validate_with(&text.replace("bits = 192", "bits = 190"));
    assert!(bad.contains("the connectome needs 192 bits"), "{bad}");
}

fn validate_with(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(dir.path(), "v.toml", text);
    let out = lineage(&["validate", s(&file)]);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn weights_genes_are_the_birth_weights() {
    let dir = tempfile::tempdir().unwrap();
    // MLP 5 -> 4 -> 3 with biases: 20 + 4 + 12 + 3 = 39 parameters.
    let text = scenario("darwinian", "")
        .replace(
            "{ name = \"gain\", min = 0.5, max = 2.0 },",
            "{ name = \"weights\", count = 39, min = -0.5, max = 0.5 },",
        )
        .replace("hidden = [12]", "hidden = [4]");
    let out = run(dir.path(), "genes", &text, &[]);
    let export = dir.path().join("export");
    lineage_ok(&["export", s(&out), "--organism", "24", "--out", s(&export)]);
    let birth = tensors(&export.join("birth.safetensors"));
    let (_, w0) = birth.iter().find(|(n, _)| n == "layers.0.weight").unwrap();
    // The checkpoint's genes: column 0 is `lr`, then the 39 weights in
    // parameter order.
    let state = read(&out.join("checkpoints/gen-000004/population.safetensors"));
    let n = u64::from_le_bytes(state[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&state[8..8 + n]).unwrap();
    let reals = &header["reals"];
    let ids = &header["ids"];
    let body = &state[8 + n..];
    let off = |t: &serde_json::Value| {
        let o = t["data_offsets"].as_array().unwrap();
        (
            o[0].as_u64().unwrap() as usize,
            o[1].as_u64().unwrap() as usize,
        )
    };
    let (ia, ib) = off(ids);
    let row = body[ia..ib]
        .chunks_exact(8)
        .position(|c| u64::from_le_bytes(c.try_into().unwrap()) == 24)
        .expect("organism 24 is in the last checkpoint");
    let (ra, _) = off(reals);
    let genes: Vec<f64> = body[ra + row * 40 * 8..ra + (row + 1) * 40 * 8]
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    for (k, &w) in w0.iter().enumerate() {
        assert_eq!(w, genes[1 + k] as f32, "weight {k}");
    }
}

#[test]
fn every_model_learns_text_end_to_end_from_a_scenario() {
    let corpus = common::root().join("scenarios/data/shakespeare.txt");
    for model in [
        "kind = \"mlp\", embedding = 8, context = 8, hidden = [32], activation = \"gelu\", bias = false",
        "kind = \"rnn\", hidden = 16, alpha = 0.5, activation = \"tanh\", bias = true",
        "kind = \"gru\", hidden = 16",
        "kind = \"transformer\", d_model = 16, heads = 2, layers = 1",
        // The registered family (`lineage_learn::models::REGISTERED`).
        "kind = \"bag\", dim = 16",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            r#"
name = "text"
seed = 2
generations = 1
population = 2
[genome]
genes = [{{ name = "lr", min = 0.005, max = 0.01, log = true }}]
[fitness]
function = "improvement"
[lifetime]
budget = 800
steps = 30
batch = 8
eval_every = 10
curve_heldout = 40
optimizer = {{ method = "adam" }}
environment = {{ kind = "text", path = "{}", context = 16, heldout = 60 }}
model = {{ {model} }}
"#,
            corpus.display()
        );
        let out = run(dir.path(), "text", &text, &[]);
        let rows = String::from_utf8(read(&out.join("organisms.csv"))).unwrap();
        for row in rows.lines().skip(1) {
            let cols: Vec<&str> = row.split(',').collect();
            let improvement: f64 = cols[5].parse().unwrap();
            assert_eq!(cols[6], "completed", "{model}: {row}");
            assert!(
                improvement > 0.2,
                "{model}: learning lowers held-out loss: {row}"
            );
        }
        let curves = String::from_utf8(read(&out.join("curves.csv"))).unwrap();
        // Birth, steps 10, 20 and 30, for each of 2 organisms.
        assert_eq!(curves.lines().count(), 1 + 2 * 4, "{model}: {curves}");
    }
}

#[test]
fn a_registered_family_is_named_by_kind_exported_and_its_fields_checked() {
    let corpus = common::root().join("scenarios/data/shakespeare.txt");
    let text = |model: &str| {
        scenario("darwinian", "")
            .replace(
                "kind = \"gaussian_clusters\", classes = 3, dim = 5, spread = 1.0, heldout = 60, seed = 1",
                &format!("kind = \"text\", path = \"{}\", context = 8", corpus.display()),
            )
            .replace("kind = \"mlp\", hidden = [12], activation = \"relu\"", model)
    };
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), "bag", &text("kind = \"bag\", dim = 6"), &[]);
    let export = dir.path().join("export");
    lineage_ok(&["export", s(&out), "--organism", "0", "--out", s(&export)]);
    let meta: serde_json::Value =
        serde_json::from_slice(&read(&export.join("lifetime.json"))).unwrap();
    assert_eq!(meta["model"]["kind"], "bag", "{meta}");
    assert_eq!(meta["model"]["dim"], 6, "{meta}");
    let names: Vec<String> = tensors(&export.join("final.safetensors"))
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    for name in ["embed", "w_out", "b_out"] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    // What is wrong is named with its field and line.
    for (model, needles) in [
        (
            "kind = \"bags\", dim = 6",
            &[
                "lifetime.model.kind",
                "unknown model kind `bags`",
                "gru, lstm, transformer, bag",
            ][..],
        ),
        ("kind = \"bag\"", &["lifetime.model", "missing field `dim`"]),
        (
            "kind = \"bag\", dim = 6, depth = 2",
            &["lifetime.model.depth", "unknown field `depth`"],
        ),
        (
            "kind = \"bag\", dim = 0",
            &["lifetime.model.dim", "at least 1, found 0"],
        ),
        (
            "kind = \"bag\", dim = \"six\"",
            &["lifetime.model.dim", "found \"six\""],
        ),
    ] {
        let file = write_scenario(dir.path(), "bad.toml", &text(model));
        let out = lineage(&["validate", s(&file)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{model}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            err.contains("bad.toml:"),
            "{model}: the file and line in {err}"
        );
        for n in needles {
            assert!(err.contains(n), "{model}: `{n}` missing from: {err}");
        }
    }
}

#[test]
fn an_aligned_rank_one_matrix_reads_its_input_along_the_direction() {
    let dir = tempfile::tempdir().unwrap();
    let text = scenario(
        "darwinian",
        "develop = { matrix = [{ name = \"layers.0.weight\", rank = 1, align = [1.0, 2.0, 0.0, -1.0, 0.5] }] }",
    );
    let out = run(dir.path(), "aligned", &text, &[]);
    let export = dir.path().join("export");
    lineage_ok(&["export", s(&out), "--organism", "24", "--out", s(&export)]);
    let birth = tensors(&export.join("birth.safetensors"));
    let (_, w) = birth.iter().find(|(n, _)| n == "layers.0.weight").unwrap();
    let d = [1.0f32, 2.0, 0.0, -1.0, 0.5];
    let nd = d.iter().map(|x| x * x).sum::<f32>().sqrt();
    for row in w.chunks(5) {
        let nr = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        let cos = row.iter().zip(&d).map(|(x, y)| x * y).sum::<f32>() / (nr * nd);
        assert!(
            cos.abs() > 0.9999,
            "row {row:?} is not along the direction ({cos})"
        );
    }
}

/// The cognitive tasks of the rich/lazy study (issue 11): a leaky RNN
/// learns the perceptual decision and delayed match-to-sample from fresh
/// trials, its held-out loss falling well below birth.
#[test]
fn an_rnn_learns_the_decision_and_match_tasks() {
    for environment in [
        "{ kind = \"decision\", heldout = 300, seed = 7 }",
        "{ kind = \"delayed_match\", stimuli = 2, heldout = 300, seed = 7 }",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            r#"
name = "cognitive"
seed = 1
generations = 1
population = 2
[genome]
genes = [{{ name = "unused", min = 0.0, max = 1.0 }}]
[fitness]
function = "heldout_loss"
[selection]
method = "tournament"
tournament_size = 1
[lifetime]
budget = 6400
steps = 200
batch = 32
environment = {environment}
model = {{ kind = "rnn", hidden = 32, alpha = 1.0, activation = "relu", bias = false }}
optimizer = {{ method = "sgd", lr = 0.05, momentum = 0.9 }}
"#
        );
        let out = run(dir.path(), "cognitive", &text, &[]);
        let birth = column(&out.join("organisms.csv"), "birth_heldout");
        let last = column(&out.join("organisms.csv"), "final_heldout");
        for (b, f) in birth.iter().zip(&last) {
            assert!(
                *f < 0.25 * b,
                "{environment}: held-out loss {b} at birth, {f} after learning"
            );
        }
    }
}

/// `align = "task"` (issue 11): a rank-one first layer on the linear
/// teacher reads its input along the teacher's task direction `F^T w`;
/// on an environment without a task direction it is a located error.
#[test]
fn align_task_follows_the_linear_teachers_direction() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
name = "aligned-task"
seed = 3
generations = 1
population = 2
[genome]
genes = [{ name = "unused", min = 0.0, max = 1.0 }]
[fitness]
function = "heldout_loss"
[selection]
method = "tournament"
tournament_size = 1
[lifetime]
budget = 64
steps = 4
batch = 16
environment = { kind = "linear_teacher", inputs = 6, kappa = 4.0, heldout = 50, seed = 5 }
model = { kind = "mlp", hidden = [10], activation = "linear", bias = false }
optimizer = { method = "sgd", lr = 0.01 }
develop = { matrix = [{ name = "layers.0.weight", rank = 1, align = "task" }] }
"#;
    let out = run(dir.path(), "aligned", text, &[]);
    let export = dir.path().join("export");
    lineage_ok(&["export", s(&out), "--organism", "1", "--out", s(&export)]);
    let birth = tensors(&export.join("birth.safetensors"));
    let (_, w) = birth.iter().find(|(n, _)| n == "layers.0.weight").unwrap();
    let teacher = lineage_env::LinearTeacher::new(6, 4.0, 50, 5).unwrap();
    let d = lineage_env::Environment::task_direction(&teacher).unwrap();
    let nd = d.iter().map(|x| x * x).sum::<f32>().sqrt();
    for row in w.chunks(6) {
        let nr = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        let cos = row.iter().zip(&d).map(|(x, y)| x * y).sum::<f32>() / (nr * nd);
        assert!(cos.abs() > 0.9999, "row {row:?} is not along F^T w ({cos})");
    }

    let bad = text.replace(
        "kind = \"linear_teacher\", inputs = 6, kappa = 4.0,",
        "kind = \"teacher\", inputs = 6, hidden = 4, outputs = 1,",
    );
    let path = write_scenario(dir.path(), "bad.toml", &bad);
    let out = lineage(&["validate", s(&path)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad.toml:")
            && err.contains("lifetime.develop.matrix[0].align")
            && err.contains("`teacher` has none"),
        "{err}"
    );
}

/// A leaky RNN on the decision task, with the develop table `develop` and
/// the genes `genes`.
fn dale_scenario(develop: &str, genes: &str) -> String {
    format!(
        r#"
name = "dale"
seed = 4
generations = 1
population = 2
[genome]
genes = [{genes}]
[fitness]
function = "heldout_loss"
[selection]
method = "tournament"
tournament_size = 1
[lifetime]
budget = 320
steps = 40
batch = 16
environment = {{ kind = "decision", heldout = 64, seed = 2 }}
model = {{ kind = "rnn", hidden = 16, alpha = 1.0, activation = "relu", bias = false }}
optimizer = {{ method = "sgd", lr = 0.05, momentum = 0.9 }}
develop = {develop}
"#
    )
}

/// Dale's law on a recurrent matrix: at birth and after learning, column
/// `j` of `w_rec` (unit `j`'s outgoing weights) has unit `j`'s sign, the
/// first `round(0.8 x 16) = 13` units excitatory; learning moves the
/// weights within those signs.
#[test]
fn a_dale_recurrent_matrix_keeps_its_column_signs_through_learning() {
    let dir = tempfile::tempdir().unwrap();
    let text = dale_scenario(
        "{ gain = 1.25, matrix = [{ name = \"w_rec\", dale = 0.8 }] }",
        "{ name = \"unused\", min = 0.0, max = 1.0 }",
    );
    let out = run(dir.path(), "dale", &text, &[]);
    let n = 16;
    let expected: Vec<f32> = (0..n).map(|j| if j < 13 { 1.0 } else { -1.0 }).collect();
    for id in ["0", "1"] {
        let export = dir.path().join(format!("export-{id}"));
        lineage_ok(&["export", s(&out), "--organism", id, "--out", s(&export)]);
        let find = |file: &str| {
            let t = tensors(&export.join(file));
            t.into_iter().find(|(name, _)| name == "w_rec").unwrap().1
        };
        let (birth, learned, signs) = (
            find("birth.safetensors"),
            find("final.safetensors"),
            find("signs.safetensors"),
        );
        for (k, &s) in signs.iter().enumerate() {
            assert_eq!(s, expected[k % n], "sign of weight {k}");
        }
        for (k, (&b, &w)) in birth.iter().zip(&learned).enumerate() {
            let sign = expected[k % n];
            assert!(b * sign > 0.0, "organism {id}: birth weight {k} = {b}");
            assert!(w * sign >= 0.0, "organism {id}: learned weight {k} = {w}");
        }
        let moved = birth
            .iter()
            .zip(&learned)
            .map(|(b, w)| (b - w).abs())
            .fold(0.0f32, f32::max);
        assert!(moved > 1e-3, "organism {id}: w_rec did not learn ({moved})");
        // Balance: inhibitory weights are 13 / 3 times the excitatory ones
        // on average.
        let mean = |inhibitory: bool| {
            let xs: Vec<f32> = (0..n * n)
                .filter(|k| (k % n >= 13) == inhibitory)
                .map(|k| birth[k].abs())
                .collect();
            xs.iter().sum::<f32>() / xs.len() as f32
        };
        let ratio = mean(true) / mean(false);
        assert!(
            (ratio / (13.0 / 3.0) - 1.0).abs() < 0.5,
            "inhibitory / excitatory magnitude {ratio}"
        );
    }
}

#[test]
fn dale_is_refused_with_rank_on_a_non_square_matrix_and_outside_0_1() {
    let cases = [
        (
            "{ matrix = [{ name = \"w_rec\", dale = 0.8, rank = 2 }] }",
            "lifetime.develop.matrix[0].dale",
            "cannot be combined with `rank`",
        ),
        (
            "{ density = 0.5, matrix = [{ name = \"w_rec\", dale = 0.8 }] }",
            "lifetime.develop.matrix[0].dale",
            "cannot be combined with `density`",
        ),
        (
            "{ matrix = [{ name = \"w_in\", dale = 0.8 }] }",
            "lifetime.develop.matrix[0].dale",
            "needs a square (recurrent) matrix, but `w_in` is 16x3",
        ),
        (
            "{ matrix = [{ name = \"w_rec\", dale = 1.0 }] }",
            "lifetime.develop.matrix[0].dale",
            "in (0, 1), found 1",
        ),
        (
            "{ matrix = [{ name = \"w_rec\", dale = 0.01 }] }",
            "lifetime.develop.matrix[0].dale",
            "without excitatory or without inhibitory units",
        ),
        (
            "{ matrix = [{ name = \"w_rec\", rank = 1, alignment = 0.5 }] }",
            "lifetime.develop.matrix[0].alignment",
            "give `align` too",
        ),
    ];
    for (develop, field, message) in cases {
        let dir = tempfile::tempdir().unwrap();
        let text = dale_scenario(develop, "{ name = \"unused\", min = 0.0, max = 1.0 }");
        let file = write_scenario(dir.path(), "bad.toml", &text);
        let out = lineage(&["validate", s(&file)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{develop}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            err.contains("bad.toml:") && err.contains(field) && err.contains(message),
            "{develop}: expected `{field}` and `{message}` in: {err}"
        );
    }
}

/// Partial alignment: with `alignment = 0.5`, every row of a rank-one
/// first layer has cosine 0.5 (in absolute value) with the task direction
/// `F^T w`; an `alignment` gene overrides the rule, clamped to [0, 1].
#[test]
fn partial_alignment_sets_the_rows_cosine_with_the_task_direction() {
    let text = |genes: &str| {
        format!(
            r#"
name = "partial"
seed = 3
generations = 1
population = 2
[genome]
genes = [{genes}]
[fitness]
function = "heldout_loss"
[selection]
method = "tournament"
tournament_size = 1
[lifetime]
budget = 64
steps = 4
batch = 16
environment = {{ kind = "linear_teacher", inputs = 6, kappa = 4.0, heldout = 50, seed = 5 }}
model = {{ kind = "mlp", hidden = [10], activation = "linear", bias = false }}
optimizer = {{ method = "sgd", lr = 0.01 }}
develop = {{ matrix = [{{ name = "layers.0.weight", rank = 1, align = "task", alignment = 0.5 }}] }}
"#
        )
    };
    let teacher = lineage_env::LinearTeacher::new(6, 4.0, 50, 5).unwrap();
    let d = lineage_env::Environment::task_direction(&teacher).unwrap();
    let nd = d.iter().map(|x| x * x).sum::<f32>().sqrt();
    for (genes, cosine) in [
        ("{ name = \"unused\", min = 0.0, max = 1.0 }", 0.5f32),
        // The gene lies below 0 for every organism: clamped to 0.
        ("{ name = \"alignment\", min = -2.0, max = -1.0 }", 0.0),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = run(dir.path(), "partial", &text(genes), &[]);
        for id in ["0", "1"] {
            let export = dir.path().join(format!("export-{id}"));
            lineage_ok(&["export", s(&out), "--organism", id, "--out", s(&export)]);
            let birth = tensors(&export.join("birth.safetensors"));
            let (_, w) = birth.iter().find(|(n, _)| n == "layers.0.weight").unwrap();
            for row in w.chunks(6) {
                let nr = row.iter().map(|x| x * x).sum::<f32>().sqrt();
                let cos = row.iter().zip(&d).map(|(x, y)| x * y).sum::<f32>() / (nr * nd);
                assert!(
                    (cos.abs() - cosine).abs() < 1e-4,
                    "{genes}: row {row:?} has cosine {cos} with F^T w, expected {cosine}"
                );
            }
        }
    }
}

/// Inherited weights keep Dale's signs: Lamarckian noise is projected onto
/// them at birth, and pruning resets survivors along their column's sign
/// (a learned weight may sit at zero, its bound). Organism g is born in
/// generation g from its parent's learned weights.
#[test]
fn inherited_dale_matrices_keep_their_column_signs() {
    let n = 16;
    let sign = |k: usize| if k % n < 13 { 1.0f32 } else { -1.0 };
    for inheritance in [
        "inheritance = \"lamarckian\"\nlamarckian_noise = 0.05",
        "inheritance = \"prune\"\nprune = { fraction = 0.2, reset = 0.05 }",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let text = dale_scenario(
            "{ matrix = [{ name = \"w_rec\", dale = 0.8 }] }",
            "{ name = \"unused\", min = 0.0, max = 1.0 }",
        )
        .replace(
            "generations = 1\npopulation = 2",
            "generations = 3\npopulation = 1\ncheckpoint_every = 1",
        )
        .replace("[lifetime]", &format!("[lifetime]\n{inheritance}"));
        let out = run(dir.path(), "inherit", &text, &[]);
        for id in ["1", "2"] {
            let export = dir.path().join(format!("export-{id}"));
            lineage_ok(&["export", s(&out), "--organism", id, "--out", s(&export)]);
            let find = |file: &str| {
                let t = tensors(&export.join(file));
                t.into_iter().find(|(name, _)| name == "w_rec").unwrap().1
            };
            let (birth, learned) = (find("birth.safetensors"), find("final.safetensors"));
            for (k, (&b, &w)) in birth.iter().zip(&learned).enumerate() {
                assert!(
                    b * sign(k) >= 0.0,
                    "{inheritance}: organism {id}, birth weight {k} = {b}"
                );
                assert!(
                    w * sign(k) >= 0.0,
                    "{inheritance}: organism {id}, learned weight {k} = {w}"
                );
                if inheritance.contains("prune") {
                    assert!(
                        b == 0.0 || b == 0.05 * sign(k),
                        "{inheritance}: birth weight {k} = {b}"
                    );
                }
            }
        }
    }
}

/// `[evaluate] rescore_best`: each generation's best organism is scored
/// again on a fresh held-out set. The value sits beside the best and
/// changes nothing else; it is as deterministic as the rest of the run;
/// an environment without fresh held-out data is refused where it is set.
#[test]
fn the_best_of_a_generation_is_rescored_on_fresh_heldout_data() {
    let dir = tempfile::tempdir().unwrap();
    let plain = run(dir.path(), "plain", &scenario("darwinian", ""), &[]);
    let text = scenario("darwinian", "[evaluate]\nrescore_best = true\n");
    let one = run(dir.path(), "one", &text, &["--threads", "1"]);
    let two = run(dir.path(), "two", &text, &["--threads", "2"]);
    assert_eq!(
        read(&one.join("generations.csv")),
        read(&two.join("generations.csv"))
    );
    for table in ["organisms.csv", "curves.csv"] {
        assert_eq!(read(&plain.join(table)), read(&one.join(table)), "{table}");
    }
    let (plain_header, plain_rows) = common::csv(&plain.join("generations.csv"));
    let (header, rows) = common::csv(&one.join("generations.csv"));
    assert_eq!(header.last().unwrap(), "heldout_auc_best_rescored");
    assert_eq!(&header[..header.len() - 1], &plain_header[..]);
    // Every other column is the plain run's.
    for (row, plain) in rows.iter().zip(&plain_rows) {
        assert_eq!(&row[..row.len() - 1], &plain[..]);
    }
    let best = column(&one.join("generations.csv"), "heldout_auc_best");
    let again = column(&one.join("generations.csv"), "heldout_auc_best_rescored");
    assert_eq!(again.len(), 4);
    for (b, a) in best.iter().zip(&again) {
        // The area under the held-out loss curve on 60 fresh examples of
        // the same task: close to the selected value.
        assert!(a.is_finite() && *a > 0.0, "re-scored {a}");
        assert!((a - b).abs() < 0.25, "best {b}, re-scored {a}");
    }
    assert!(best.iter().zip(&again).any(|(b, a)| a != b), "{again:?}");
    // `lineage report` prints the re-scored value beside the best.
    let out = lineage_ok(&["report", s(&one)]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("heldout_auc_best_rescored"), "{printed}");
    let line = printed
        .lines()
        .find(|l| l.starts_with("best heldout_auc:"))
        .unwrap();
    assert!(line.ends_with(" on fresh held-out data)"), "{line}");

    // A sinusoid is drawn per lifetime: no held-out distribution of its own.
    let refused = text
        .replace(
            r#"environment = { kind = "gaussian_clusters", classes = 3, dim = 5, spread = 1.0, heldout = 60, seed = 1 }"#,
            r#"environment = { kind = "sinusoids", heldout = 20 }"#,
        )
        .replace("heldout_auc", "heldout_loss");
    let file = write_scenario(dir.path(), "refused.toml", &refused);
    let out = lineage(&["validate", s(&file)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("evaluate.rescore_best") && err.contains("sinusoids"),
        "{err}"
    );
}

/// `lifetime.path` and `--path` choose how lifetimes are trained: a GRU
/// and a leaky RNN on the decision task, trained population-batched
/// (`--path batched`), end where the default paths (candle for the GRU,
/// the fast path for the RNN) end, up to f32 summation order; the run
/// keeps the choice in its resolved scenario; a path that cannot train
/// the model, or an unknown one, is a located error.
#[test]
fn the_training_path_is_chosen_by_the_scenario_or_the_command_line() {
    for model in [
        "{ kind = \"gru\", hidden = 8 }",
        "{ kind = \"rnn\", hidden = 8, alpha = 0.5, activation = \"tanh\" }",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            r#"
name = "paths"
seed = 2
generations = 2
population = 3
[genome]
genes = [{{ name = "lr", min = 0.01, max = 0.1, log = true }}]
[fitness]
function = "heldout_loss"
[selection]
method = "tournament"
tournament_size = 2
[lifetime]
budget = 160
steps = 20
batch = 16
eval_every = 10
environment = {{ kind = "decision", heldout = 40, seed = 3 }}
model = {model}
optimizer = {{ method = "adam" }}
"#
        );
        let default = run(dir.path(), "default", &text, &[]);
        let batched = run(dir.path(), "batched", &text, &["--path", "batched"]);
        let resolved = std::fs::read_to_string(batched.join("scenario.toml")).unwrap();
        assert!(resolved.contains("path = \"batched\""), "{resolved}");
        for field in ["birth_heldout", "final_heldout"] {
            let a = column(&default.join("organisms.csv"), field);
            let b = column(&batched.join("organisms.csv"), field);
            assert_eq!(a.len(), 6, "{model}");
            for (x, y) in a.iter().zip(&b) {
                assert!(
                    (x - y).abs() <= 1e-4 * x.abs().max(1.0),
                    "{model} {field}: {x} on the default path, {y} batched"
                );
            }
        }
    }
    rejected(
        ("[lifetime]", "[lifetime]\npath = \"gpu\""),
        &[
            "bad.toml:",
            "lifetime.path",
            "unknown training path `gpu`",
            "auto, fast, candle or batched",
        ],
    );
    // The fast path has no GRU.
    let dir = tempfile::tempdir().unwrap();
    let text = scenario("darwinian", "").replace(
        "[lifetime]",
        "[lifetime]\npath = \"fast\"",
    ).replace(
        "environment = { kind = \"gaussian_clusters\", classes = 3, dim = 5, spread = 1.0, heldout = 60, seed = 1 }\nmodel = { kind = \"mlp\", hidden = [12], activation = \"relu\" }",
        "environment = { kind = \"decision\", heldout = 40, seed = 3 }\nmodel = { kind = \"gru\", hidden = 4 }",
    );
    assert!(text.contains("kind = \"gru\""), "{text}");
    let file = write_scenario(dir.path(), "fast-gru.toml", &text);
    let out = lineage(&["validate", s(&file)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for needle in [
        "lifetime.path",
        "the fast path trains mlp, rnn and transformer models, not gru",
    ] {
        assert!(err.contains(needle), "`{needle}` missing from: {err}");
    }
}
