//! End-to-end lifetimes of the sequence models on the autograd path, and
//! the optimiser state's freedom from autograd graphs.

use candle_core::{Device, Tensor, Var};
use lineage_env::{Batch, Task};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::*;
use crate::Status;
use crate::data::minibatch_indices;
use crate::models::tests::birth_weights;
use crate::optim::{Hyper, Method, OptimizerSpec};
use crate::spec::{Activation, GruSpec, LstmSpec, RnnSpec, SequenceInput, TransformerSpec};

/// Windows of the token map `t -> 3t + 1 (mod 8)`, the i-th starting at
/// token `i mod 8`.
fn cycle_windows(n: usize, len: usize) -> Batch {
    let mut tokens = Vec::with_capacity(n * len);
    for i in 0..n {
        let mut t = (i % 8) as u32;
        for _ in 0..len {
            tokens.push(t);
            t = (3 * t + 1) % 8;
        }
    }
    Batch::Tokens { n, len, tokens }
}

/// Trains `model` for 30 Adam steps on next-token prediction of
/// [`cycle_windows`] and checks the held-out loss fell.
fn check_learns(model: ModelSpec) {
    let (vocab, len, steps, batch) = (8, 9, 30, 8);
    let task = Task::NextToken {
        vocab,
        context: len - 1,
    };
    model.check_task(&task).unwrap();
    let (train_set, heldout) = (cycle_windows(16, len), cycle_windows(8, len));
    let life = LifetimeSpec {
        batch,
        eval_every: 0,
        curve_heldout: 8,
        optimizer: OptimizerSpec {
            method: Method::Adam,
            ..OptimizerSpec::default()
        },
    };
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let job = Job {
        params: birth_weights(&model, 7),
        masks: vec![None; model.params().len()],
        signs: vec![None; model.params().len()],
        hyper: Hyper {
            lr: 0.03,
            momentum: 0.9,
            weight_decay: 0.0,
            steps,
        },
        train: &train_set,
        heldout: &heldout,
        probes: &[],
        indices: minibatch_indices(16, batch, steps, &mut rng),
    };
    let out = train(&model, Loss::of(&task), &life, &Device::Cpu, job).unwrap();
    assert_eq!(out.status, Status::Completed, "{model:?}");
    let (birth, end) = (out.curve[0].heldout, out.final_heldout());
    assert!(
        end < 0.5 * birth,
        "{model:?}: held-out loss {birth} -> {end}"
    );
}

#[test]
fn rnn_lifetime_lowers_heldout_loss() {
    check_learns(ModelSpec::Rnn(RnnSpec {
        input: SequenceInput::Tokens { vocab: 8 },
        hidden: 16,
        outputs: 8,
        alpha: 0.5,
        activation: Activation::Tanh,
        bias: true,
    }));
}

#[test]
fn gru_lifetime_lowers_heldout_loss() {
    check_learns(ModelSpec::Gru(GruSpec {
        input: SequenceInput::Tokens { vocab: 8 },
        hidden: 16,
        outputs: 8,
    }));
}

#[test]
fn lstm_lifetime_lowers_heldout_loss() {
    check_learns(ModelSpec::Lstm(LstmSpec {
        input: SequenceInput::Tokens { vocab: 8 },
        hidden: 16,
        outputs: 8,
    }));
}

/// The optimiser's state and the updated weights carry no autograd
/// graph: a moment built from a gradient that records its ops would
/// keep every earlier step's graph alive, so memory would grow with
/// the steps (it did: 1.8 MB a step for a GRU of 96 units).
#[test]
fn optimiser_state_keeps_no_graph() {
    let dev = Device::Cpu;
    for method in [Method::Sgd, Method::Adam, Method::AdamW] {
        let var = Var::from_tensor(&Tensor::new(&[1.0f32, -2.0, 3.0], &dev).unwrap()).unwrap();
        let mut state = Vars {
            vars: vec![var.clone()],
            masks: vec![None],
            signs: vec![None],
            m: vec![var.as_tensor().zeros_like().unwrap()],
            v: vec![var.as_tensor().zeros_like().unwrap()],
        };
        let life = LifetimeSpec {
            batch: 1,
            eval_every: 0,
            curve_heldout: 1,
            optimizer: crate::OptimizerSpec {
                method,
                beta2: 0.999,
                eps: 1e-8,
                clip: Some(1.0),
                schedule: crate::Schedule::Constant,
            },
        };
        let hyper = crate::Hyper {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.01,
            steps: 2,
        };
        for step in 0..2 {
            // The loss as a model's: ops on the variable, then a product
            // with it, so that the gradient itself records ops.
            let w = var.as_tensor();
            let loss = (w.sqr().unwrap() * w).unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            update(&life, &hyper, step, &mut state, &grads).unwrap();
            assert!(
                !state.m[0].track_op() && !state.v[0].track_op(),
                "{method:?}: optimiser state records ops"
            );
        }
    }
}

#[test]
fn transformer_lifetime_lowers_heldout_loss() {
    check_learns(ModelSpec::Transformer(TransformerSpec {
        input: SequenceInput::Tokens { vocab: 8 },
        context: 8,
        d_model: 16,
        heads: 2,
        layers: 1,
        d_ff: 32,
        outputs: 8,
        layer_norm: true,
        activation: Activation::Gelu,
        embed: true,
        positions: true,
        attn_out: true,
        attn_scale: true,
        head: Vec::new(),
    }));
}
