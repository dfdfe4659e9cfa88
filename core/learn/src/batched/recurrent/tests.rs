//! Tests of the batched path on the recurrent networks: each of the leaky
//! RNN, the GRU and the LSTM, on real sequences with unscored steps and
//! on token windows, against the path it takes on the CPU (the fast path
//! for the RNN, the general path, candle autograd one organism at a time,
//! for the GRU and the LSTM), on candle's CPU backend.
//!
//! Tolerance: [`TOLERANCE`], the largest `|a - b| / max(|b|, 1)` over the
//! final weights, every curve value and every probe value, with the same
//! curve steps, probe points and status (and divergence step), as the
//! MLP's tests hold it. The two paths compute the same operations in
//! another f32 summation order (a `[P, rows, in] x [P, in, G]` batched
//! matmul per step against the fast path's gemm over all steps or
//! candle's unbatched matmuls, the GRU's fused gate products, the
//! weights' gradients summed over the `T` steps of back-propagation
//! through time in reverse order, the loss's sums), and the recurrence
//! and Adam's normalisation of small gradients amplify those rounding
//! differences over a lifetime; the RNN's own fast and general paths are
//! held to 5e-5 (`fast/rnn/tests.rs`) for that reason. Here, with
//! sequences of 6 steps and up to 20 learning steps, the measured gaps
//! are 6e-8 to 3e-7 (each test prints its own), far within 1e-5.

use std::sync::Arc;

use candle_core::Device;
use lineage_env::{ProbeSet, Task};

use super::FORGET_BIAS;
use crate::batched::test_data::{
    diverges_alone, learns_alike_whoever_shares_its_chunk, organism, population, sequences, windows,
};
use crate::batched::tests::{Comparison, Organism, bits, life, rng};
use crate::batched::{
    DEFAULT_BUDGET, Rows, organism_bytes, plan_chunks, steps_of, values_on_device,
};
use crate::optim::{Method, Schedule};
use crate::spec::{Activation, GruSpec, LstmSpec, ModelSpec, RnnSpec, SequenceInput};

/// See the module docs.
const TOLERANCE: f32 = 1e-5;

const WARMUP_COOLDOWN: Schedule = Schedule::WarmupHoldCooldown {
    warmup: 3,
    cooldown: 5,
};

/// Real sequences of 6 steps of 3 values, 3 classes: two train sets, a
/// held-out set and (with `probe`) a probe set.
fn dense(model: ModelSpec, method: Method, probe: bool, seed: u64) -> Comparison {
    let mut r = rng(seed);
    let trains = vec![
        sequences(24, 6, 3, 3, &mut r),
        sequences(16, 6, 3, 3, &mut r),
    ];
    let heldout = sequences(20, 6, 3, 3, &mut r);
    let probes = if probe {
        vec![ProbeSet {
            name: "probe".into(),
            data: Arc::new(sequences(6, 6, 3, 3, &mut r)),
            choices: Some(vec![0, 2]),
        }]
    } else {
        Vec::new()
    };
    Comparison {
        model,
        task: Task::SequenceClassification {
            inputs: 3,
            classes: 3,
            steps: 6,
        },
        life: life(method, WARMUP_COOLDOWN, Some(1.0)),
        trains,
        heldout,
        probes,
    }
}

/// Token windows of 7 tokens of a vocabulary of 5 (6 steps).
fn tokens(model: ModelSpec, method: Method, seed: u64) -> Comparison {
    let mut r = rng(seed);
    Comparison {
        model,
        task: Task::NextToken {
            vocab: 5,
            context: 6,
        },
        life: life(method, WARMUP_COOLDOWN, Some(1.0)),
        trains: vec![windows(24, 7, 5, &mut r), windows(16, 7, 5, &mut r)],
        heldout: windows(20, 7, 5, &mut r),
        probes: Vec::new(),
    }
}

fn rnn(input: SequenceInput, alpha: f32, activation: Activation, bias: bool) -> ModelSpec {
    ModelSpec::Rnn(RnnSpec {
        input,
        hidden: 8,
        outputs: input.width(),
        alpha,
        activation,
        bias,
    })
}

fn gru(input: SequenceInput) -> ModelSpec {
    ModelSpec::Gru(GruSpec {
        input,
        hidden: 8,
        outputs: input.width(),
    })
}

fn lstm(input: SequenceInput) -> ModelSpec {
    ModelSpec::Lstm(LstmSpec {
        input,
        hidden: 8,
        outputs: input.width(),
    })
}

const DENSE: SequenceInput = SequenceInput::Dense { dim: 3 };
const TOKENS: SequenceInput = SequenceInput::Tokens { vocab: 5 };

/// The largest gap between the two paths over `organisms`, printed.
fn measure(what: &str, comparison: &Comparison, organisms: &[Organism]) -> f32 {
    let gap = comparison.gap(organisms);
    eprintln!("{what}: gap {gap:.2e}");
    gap
}

#[test]
fn the_forget_bias_is_the_lstm_s() {
    assert_eq!(FORGET_BIAS, crate::models::FORGET_BIAS);
}

#[test]
fn leaky_rnn_matches_the_fast_path() {
    let model = rnn(DENSE, 0.5, Activation::Tanh, true);
    let comparison = dense(model, Method::Adam, true, 1);
    let gap = measure("rnn, dense, Adam", &comparison, &population(0.01));
    assert!(gap < TOLERANCE, "gap {gap}");
}

#[test]
fn relu_rnn_on_tokens_matches_the_fast_path() {
    let model = rnn(TOKENS, 1.0, Activation::Relu, false);
    let comparison = tokens(model, Method::Sgd, 2);
    let gap = measure("rnn, tokens, SGD", &comparison, &population(0.05));
    assert!(gap < TOLERANCE, "gap {gap}");
}

#[test]
fn gru_matches_the_general_path() {
    let comparison = dense(gru(DENSE), Method::Sgd, true, 3);
    let gap = measure("gru, dense, SGD", &comparison, &population(0.1));
    assert!(gap < TOLERANCE, "gap {gap}");
}

#[test]
fn lstm_matches_the_general_path() {
    let comparison = dense(lstm(DENSE), Method::AdamW, false, 4);
    let gap = measure("lstm, dense, AdamW", &comparison, &population(0.01));
    assert!(gap < TOLERANCE, "gap {gap}");
}

#[test]
fn gru_and_lstm_on_tokens_match_the_general_path() {
    for (what, model) in [("gru", gru(TOKENS)), ("lstm", lstm(TOKENS))] {
        let comparison = tokens(model, Method::Adam, 5);
        let gap = measure(
            &format!("{what}, tokens, Adam"),
            &comparison,
            &population(0.01),
        );
        assert!(gap < TOLERANCE, "{what}: gap {gap}");
    }
}

/// Train sets of 6 and of 4 steps run in separate chunks, and the
/// held-out set's 5 steps are scored in passes of their own (the general
/// path reads any length; the fast RNN path scores a held-out set of
/// another length than its train set's as NaN, so the GRU is used).
#[test]
fn sequences_of_different_lengths_run_in_their_own_chunks() {
    let mut r = rng(6);
    let mut comparison = dense(gru(DENSE), Method::Adam, false, 6);
    comparison.trains[1] = sequences(16, 4, 3, 3, &mut r);
    comparison.heldout = sequences(20, 5, 3, 3, &mut r);
    let mut organisms = population(0.01);
    // And a lifetime of no steps, scored at birth only.
    organisms.push(organism(0.01, 0.9, 0.0, 0, 1));
    let gap = measure("gru, lengths 6 and 4", &comparison, &organisms);
    assert!(gap < TOLERANCE, "gap {gap}");
}

/// `train_population` takes a recurrent network to the batched path
/// when asked to (the path it takes on CUDA, `path_for`).
#[test]
fn train_population_runs_recurrent_networks_batched() {
    let comparison = tokens(lstm(TOKENS), Method::Adam, 10);
    let organisms = population(0.01);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let out = crate::train_population(
        &comparison.model,
        &comparison.task,
        &comparison.life,
        &Device::Cpu,
        Some(crate::Path::Batched),
        comparison.jobs(&organisms),
        &pool,
    )
    .unwrap();
    let direct = comparison.batched(&organisms, DEFAULT_BUDGET);
    assert_eq!(bits(&out), bits(&direct));
}

/// For each family: an organism's outcome is the same bit for bit
/// whoever shares its chunk: alone, with its population, with other
/// companions (other genes and lifetimes), and in chunks cut small.
#[test]
fn an_organism_learns_alike_whoever_shares_its_chunk() {
    for (what, model) in [
        ("rnn", rnn(DENSE, 0.5, Activation::Tanh, true)),
        ("gru", gru(DENSE)),
        ("lstm", lstm(DENSE)),
    ] {
        learns_alike_whoever_shares_its_chunk(what, &dense(model, Method::Adam, false, 7), 6);
    }
}

/// For each family: an organism that diverges does so at the step the
/// reference path says, with the same curve; its weights stay those of
/// that step, and the others learn as they do without it.
#[test]
fn a_diverging_organism_stops_alone_in_every_family() {
    for (what, model) in [
        ("rnn", rnn(DENSE, 1.0, Activation::Relu, true)),
        ("gru", gru(DENSE)),
        ("lstm", lstm(DENSE)),
    ] {
        diverges_alone(what, dense(model, Method::Sgd, false, 8), TOLERANCE);
    }
}

/// The estimate grows with the sequences' length, the gate count and the
/// batch, as `organism_bytes` documents it.
#[test]
fn the_estimate_counts_steps_and_gates() {
    let rows = |batch, steps| Rows { batch, steps };
    let input = SequenceInput::Dense { dim: 3 };
    // 16 hidden units, 3 inputs, 4 outputs; the LSTM's 16 × 4 gates.
    let model = ModelSpec::Lstm(LstmSpec {
        input,
        hidden: 16,
        outputs: 4,
    });
    let params = 64 * 3 + 64 * 16 + 2 * 64 + 4 * 16 + 4;
    let train = 10 * ((27 + 5) * 16 + 6 * 4 + 2 * 3);
    let eval = 10 * (2 * 16 + 3 * 4 + 2 * 3) + 27 * 16;
    let expected = 4 * (14 * params + 32 * train + 256 * eval + 100);
    assert_eq!(organism_bytes(&model, rows(32, 10), 100), expected);
    let longer = organism_bytes(&model, rows(32, 20), 100);
    assert!(
        longer > expected && longer < 2 * expected,
        "{longer} vs {expected}"
    );
    let gru = ModelSpec::Gru(GruSpec {
        input,
        hidden: 16,
        outputs: 4,
    });
    assert!(organism_bytes(&gru, rows(32, 10), 100) < expected);
    let sizes = vec![expected; 1_000];
    assert_eq!(
        plan_chunks(&sizes, DEFAULT_BUDGET)[0],
        DEFAULT_BUDGET / expected
    );
    let task = Task::SequenceClassification {
        inputs: 3,
        classes: 2,
        steps: 7,
    };
    assert_eq!(steps_of(&task), 7);
    let task = Task::NextToken {
        vocab: 5,
        context: 9,
    };
    assert_eq!(steps_of(&task), 9, "windows of context + 1 tokens");
    let mut r = rng(9);
    let seqs = sequences(4, 5, 3, 3, &mut r);
    assert_eq!(values_on_device(&seqs), 4 * 5 * 3 + 20 + 5);
}
