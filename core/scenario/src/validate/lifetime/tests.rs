//! Tests of the `[lifetime]` checks: each check, fed a scenario whose
//! `[lifetime]` breaks it, names the field and says what is wrong; the base
//! scenario, which breaks none, validates.

use std::path::Path;

use crate::ScenarioError;

/// A small learning scenario that validates: an MLP learning Gaussian
/// clusters, with a learning-rate gene.
const BASE: &str = r#"
name = "lifetime-checks"
generations = 1
population = 4

[genome]
genes = [{ name = "lr", min = 1e-4, max = 1.0, log = true }]

[fitness]
function = "heldout_loss"

[lifetime]
budget = 64
steps = 4
batch = 16
environment = { kind = "gaussian_clusters", classes = 4, dim = 8, spread = 1.0, heldout = 40, seed = 7 }
model = { kind = "mlp", hidden = [8], activation = "relu" }
optimizer = { method = "sgd" }
"#;

/// `BASE` with `over` merged in (tables key by key, values replaced, a
/// table with a `kind` whole), then
/// loaded: the error's field and message, or `None` when it validates.
fn outcome(over: &str) -> Option<(String, String)> {
    let mut base: toml::Table = toml::from_str(BASE).unwrap();
    let over: toml::Table = toml::from_str(over).unwrap();
    merge(&mut base, over);
    let text = toml::to_string(&base).unwrap();
    match crate::from_str(&text, "test.toml", Path::new("."), &Default::default()) {
        Ok(_) => None,
        Err(ScenarioError::Invalid(d)) => Some((d.field.clone(), d.message.clone())),
        Err(e) => panic!("not a located error: {e}"),
    }
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            // A table of another `kind` replaces the old one whole, as a
            // condition's `set` does.
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) if !o.contains_key("kind") => {
                merge(b, o)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// `over` is refused at `field` with a message that contains `message`.
fn check(over: &str, field: &str, message: &str) {
    let got = outcome(over);
    let Some((got_field, got_message)) = &got else {
        panic!("{over:?} validated; expected an error at `{field}`");
    };
    assert!(
        got_field == field && got_message.contains(message),
        "{over:?}: expected `{field}`: …{message}…, got `{got_field}`: {got_message}"
    );
}

#[test]
fn the_base_scenario_validates() {
    assert_eq!(outcome(""), None);
}

#[test]
fn sizes_are_bounded() {
    check(
        "[lifetime]\nbatch = 0",
        "lifetime.batch",
        "at least 1 example, found 0",
    );
    check(
        "[lifetime]\nbudget = 0",
        "lifetime.budget",
        "data budget of at least 1 example",
    );
    check(
        "[lifetime]\nsteps = 2000000000",
        "lifetime.steps",
        "expected at most 1073741824, found 2000000000",
    );
    check(
        "[lifetime]\nmodel = { kind = \"mlp\", hidden = [0] }",
        "lifetime.model.hidden[0]",
        "layer width of at least 1, found 0",
    );
}

#[test]
fn the_device_is_one_of_the_known() {
    check(
        "[lifetime]\ndevice = \"tpu\"",
        "lifetime.device",
        "unknown device `tpu`",
    );
}

#[test]
fn the_environment_is_built_and_its_keys_checked() {
    check(
        "[lifetime.environment]\nclasses = 1",
        "lifetime.environment",
        "needs classes >= 2",
    );
    check(
        "[lifetime.environment]\nwidth = 3",
        "lifetime.environment.width",
        "unknown key `width` (valid keys here: classes, dim, spread, heldout, seed)",
    );
    check(
        "[lifetime]\nenvironment = { kind = \"text\", path = \"no-such-file.txt\", context = 8 }",
        "lifetime.environment.path",
        "cannot read the text `./no-such-file.txt`",
    );
}

#[test]
fn the_model_fits_the_task() {
    check(
        "[lifetime]\nmodel = { kind = \"rnn\", hidden = 8 }",
        "lifetime.model",
        "this model cannot read the environment's data",
    );
    check(
        "[lifetime]\nmodel = { kind = \"transformer\", d_model = 8, heads = 3, layers = 1, d_ff = 8 }",
        "lifetime.model.heads",
        "3 heads do not divide d_model = 8",
    );
}

#[test]
fn the_optimiser_takes_only_its_keys_and_sane_values() {
    check(
        "[lifetime]\noptimizer = { method = \"adam\", beta1 = 1.5 }",
        "lifetime.optimizer.beta1",
        "did you mean `beta2`?",
    );
    check(
        "[lifetime]\noptimizer = { method = \"sgd\", lr = -1.0 }",
        "lifetime.optimizer.lr",
        "`lr` = -1 is out of range",
    );
}

#[test]
fn development_rules_name_matrices_that_exist_with_ranks_they_can_have() {
    check(
        "[lifetime]\ndevelop = { matrix = [{ name = \"w_rec\", rank = 1 }] }",
        "lifetime.develop.matrix[0].name",
        "the model has no weight matrix `w_rec` (its matrices: layers.0.weight, layers.1.weight)",
    );
    check(
        "[lifetime]\ndevelop = { matrix = [{ name = \"layers.0.weight\", rank = 100 }] }",
        "lifetime.develop.matrix[0].rank",
        "rank 100 does not fit `layers.0.weight`, a 8x8 matrix (rank 1 to 8)",
    );
    check(
        "[lifetime]\ndevelop = { matrix = [{ name = \"layers.0.weight\", dale = 1.5 }] }",
        "lifetime.develop.matrix[0].dale",
        "fraction of excitatory units in (0, 1), found 1.5",
    );
    assert_eq!(
        outcome("[lifetime]\ndevelop = { matrix = [{ name = \"layers.0.weight\", rank = 2 }] }"),
        None
    );
}

#[test]
fn inheritance_is_known_and_pruning_a_fraction() {
    check(
        "[lifetime]\ninheritance = \"lamarck\"",
        "lifetime.inheritance",
        "expected one of: darwinian, lamarckian, prune",
    );
    check(
        "[lifetime]\ninheritance = \"prune\"\nprune = { fraction = 1.5 }",
        "lifetime.prune.fraction",
        "expected a fraction in [0, 1), found 1.5",
    );
}

#[test]
fn a_learning_rate_gene_stays_positive() {
    check(
        "[genome]\ngenes = [{ name = \"lr\", min = 0.0, max = 1.0 }]",
        "genome.genes",
        "the `lr` gene must stay positive (min > 0)",
    );
}

/// A cell-type table named by a relative path in a condition's `set`
/// resolves against the scenario's folder, and each run's resolved
/// scenario (the `scenario.toml` a run directory keeps) names it by its
/// absolute path, so that it validates from anywhere.
#[test]
fn a_relative_cell_type_table_in_a_condition_is_absolute_in_the_resolved_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("experiment");
    std::fs::create_dir(&folder).unwrap();
    let table = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/data/v1-billeh2020.toml"
    );
    std::fs::copy(table, folder.join("cells.toml")).unwrap();
    let text = r#"
name = "cells"
generations = 1
population = 2

[genome]
genes = [{ name = "unused", min = 0.0, max = 1.0 }]

[fitness]
function = "heldout_loss"

[lifetime]
budget = 16
steps = 1
batch = 8
environment = { kind = "decision", heldout = 8, seed = 1 }
model = { kind = "rnn", hidden = 32 }
optimizer = { method = "sgd" }

[[conditions]]
name = "table"
seeds = [1]
set = { lifetime = { develop = { matrix = [{ name = "w_rec", cell_types = "cells.toml" }] } } }
"#;
    let file = folder.join("cells-scenario.toml");
    std::fs::write(&file, text).unwrap();
    let scenario = crate::load(&file, &Default::default()).unwrap();
    let run = &scenario.conditions[0].runs[0];
    let expected = folder.join("cells.toml").canonicalize().unwrap();
    let written = format!("{:?}", expected.display().to_string());
    assert!(
        run.resolved_toml.contains(&written),
        "{}",
        run.resolved_toml
    );
    let elsewhere = tempfile::tempdir().unwrap();
    crate::from_str(
        &run.resolved_toml,
        "scenario.toml",
        elsewhere.path(),
        &Default::default(),
    )
    .unwrap();
}
