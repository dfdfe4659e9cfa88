//! An organism's lifetime replayed in an independent framework (JAX): the
//! exported birth weights, masks, data and minibatch order, trained there
//! with the same optimiser, must end at the same weights.
//!
//! Needs Python with JAX and numpy: `LINEAGE_PYTHON` names the
//! interpreter; `bash tests/run.sh` (the README's test command) makes a
//! pinned one under `target/test-venv` and sets it.

mod common;

use std::process::Command;

use common::{lineage_ok, s, write_scenario};

/// Largest relative difference the replay may show, per weight, with the
/// difference measured against max(|w|, 1% of the largest |w|): f32
/// rounding in two frameworks that sum in different orders drifts by
/// about 1e-4 over a few hundred steps.
const TOLERANCE: f64 = 1e-3;

/// `LINEAGE_PYTHON`, else the virtual environment `tests/run.sh` makes,
/// else `python3`.
fn python() -> String {
    if let Ok(p) = std::env::var("LINEAGE_PYTHON") {
        return p;
    }
    let venv = common::root().join("target/test-venv/bin/python");
    if venv.exists() {
        return venv.display().to_string();
    }
    "python3".into()
}

fn replay(dir: &std::path::Path, scenario: &str, organism: &str) -> f64 {
    let file = write_scenario(dir, "replay.toml", scenario);
    let run = dir.join("run");
    lineage_ok(&["run", s(&file), "--out", s(&run), "--quiet"]);
    let out = dir.join("export");
    lineage_ok(&["export", s(&run), "--organism", organism, "--out", s(&out)]);
    let script = common::root().join("tests/replay/replay_jax.py");
    let py = python();
    let result = Command::new(&py).arg(&script).arg(&out).output().unwrap_or_else(|e| {
        panic!("cannot run `{py}` ({e}): this test needs Python 3 with JAX and numpy: run the tests with `bash tests/run.sh`, which makes that environment, or set LINEAGE_PYTHON to an interpreter with `pip install -r tests/requirements.txt`")
    });
    assert!(
        result.status.success(),
        "the JAX replay failed with `{py}` (it needs JAX and numpy: run the tests with `bash tests/run.sh`, which makes that environment, or `pip install -r tests/requirements.txt` into the Python that LINEAGE_PYTHON names):\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let line = String::from_utf8_lossy(&result.stdout);
    let json: serde_json::Value =
        serde_json::from_str(line.trim()).expect("the replay prints JSON");
    json["max_rel_diff"].as_f64().expect("max_rel_diff")
}

const BASE: &str = r#"
name = "replay"
seed = 21
generations = 1
population = 2
[genome]
genes = [{ name = "lr", min = 0.02, max = 0.05, log = true }]
[fitness]
function = "heldout_loss"
[selection]
method = "tournament"
tournament_size = 2
"#;

#[test]
fn sgd_momentum_lifetime_replays_in_jax() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = format!(
        "{BASE}
[lifetime]
budget = 96
steps = 120
batch = 16
eval_every = 40
environment = {{ kind = \"gaussian_clusters\", classes = 3, dim = 6, spread = 1.0, heldout = 60, seed = 2 }}
model = {{ kind = \"mlp\", hidden = [16, 12], activation = \"tanh\" }}
optimizer = {{ method = \"sgd\", momentum = 0.9, weight_decay = 0.001 }}
"
    );
    // The run's last checkpoint holds the second generation's newborns,
    // ids 2 and 3: export lives organism 2's lifetime as the run would.
    let rel = replay(dir.path(), &scenario, "2");
    assert!(
        rel < TOLERANCE,
        "JAX ends {rel} (relative) away from Lineage's weights"
    );
}

#[test]
fn adamw_lifetime_with_masks_schedule_and_clipping_replays_in_jax() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = format!(
        "{BASE}
[lifetime]
budget = 128
steps = 150
batch = 32
environment = {{ kind = \"teacher\", inputs = 5, hidden = 8, outputs = 2, noise = 0.05, heldout = 50, seed = 4 }}
model = {{ kind = \"mlp\", hidden = [24], activation = \"gelu\" }}
optimizer = {{ method = \"adamw\", lr = 0.01, weight_decay = 0.05, clip = 1.0, schedule = \"warmup-hold-cooldown\", warmup = 10, cooldown = 50 }}
develop = {{ density = 0.5, init = \"kaiming\" }}
"
    );
    let rel = replay(dir.path(), &scenario, "3");
    assert!(
        rel < TOLERANCE,
        "JAX ends {rel} (relative) away from Lineage's weights"
    );
}

/// A causal transformer (the fast CPU path) reading in-context-learning
/// sequences, scored on the query's label alone (every other label is
/// IGNORE): twice trained by AdamW with clipping and a schedule, once with
/// pre-LayerNorm GELU blocks (two of them), once without LayerNorm and with
/// ReLU; and once as Reddy (ICLR 2024) built and trained it: attention-only
/// blocks on the raw tokens (no embedding, no position table, no output
/// projection, unscaled scores), ReLU layers on the stream before the
/// readout, tokens with their position one-hot at a random offset, plain
/// SGD with weight decay. The replay reads the model's options from
/// `lifetime.json` and checks them against the birth weights' names and
/// shapes.
#[test]
fn transformer_lifetime_replays_in_jax() {
    // Learning rates a tenth of the MLPs': AdamW steps of 0.02 or more
    // are too coarse for this small transformer.
    let base = BASE.replace("min = 0.02, max = 0.05", "min = 0.002, max = 0.005");
    assert_ne!(base, BASE, "the learning-rate gene's range is in BASE");
    let adamw = "{ method = \"adamw\", weight_decay = 0.05, clip = 1.0, schedule = \"warmup-hold-cooldown\", warmup = 10, cooldown = 50 }";
    let icl = "{ kind = \"icl\", classes = 32, dim = 8, labels = 4, pairs = 4, burstiness = 2, heldout = 50, probe_sequences = 0, seed = 3 }";
    // 13 position slots (max_pairs 6) and 11 content dimensions: 24-wide
    // tokens, Reddy's model's stream.
    let reddy_icl = "{ kind = \"icl\", classes = 32, dim = 11, labels = 4, pairs = 4, burstiness = 2, p_bursty = 0.5, p_novel = 0.5, novel_classes = 16, positions = \"random_offset\", max_pairs = 6, heldout = 50, probe_sequences = 0, seed = 3 }";
    for (base, model, environment, optimizer) in [
        (
            base.as_str(),
            "{ kind = \"transformer\", d_model = 16, heads = 2, layers = 2, d_ff = 32 }",
            icl,
            adamw,
        ),
        (
            base.as_str(),
            "{ kind = \"transformer\", d_model = 16, heads = 2, layers = 1, d_ff = 32, layer_norm = false, activation = \"relu\" }",
            icl,
            adamw,
        ),
        (
            // Plain SGD at the MLPs' learning rates (0.02 to 0.05).
            BASE,
            "{ kind = \"transformer\", d_model = 24, heads = 1, layers = 2, d_ff = 0, layer_norm = false, embed = false, positions = false, attn_out = false, attn_scale = false, head = [16, 16] }",
            reddy_icl,
            "{ method = \"sgd\", weight_decay = 1e-4 }",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let scenario = format!(
            "{base}
[lifetime]
budget = 1600
steps = 150
batch = 16
eval_every = 50
environment = {environment}
model = {model}
optimizer = {optimizer}
"
        );
        let rel = replay(dir.path(), &scenario, "3");
        assert!(
            rel < TOLERANCE,
            "{model}: JAX ends {rel} (relative) away from Lineage's weights"
        );
    }
}
