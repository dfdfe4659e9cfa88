//! The LSTM: its layout, a tiny case computed by hand, PyTorch's
//! equations (plus the forget bias) written out with `Vec`s, gradients
//! against finite differences, and a lifetime through `train_population`
//! that needs its memory.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use lineage_env::{Batch, IGNORE, Task};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::*;
use crate::data::minibatch_indices;
use crate::measure::{self, ProbeInput};
use crate::models::tests::{assert_gradients_match, birth_weights, random_varmap, values};
use crate::models::variables;
use crate::optim::{Hyper, Method, OptimizerSpec};
use crate::spec::ModelSpec;
use crate::{Job, LifetimeSpec, Status, train_population};

fn spec(input: SequenceInput) -> LstmSpec {
    LstmSpec {
        input,
        hidden: 3,
        outputs: 2,
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn close(got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((f64::from(*g) - w).abs() < tol, "{got:?} vs {want:?}");
    }
}

#[test]
fn layout_is_pytorch_s_with_four_gates() {
    let model = ModelSpec::Lstm(spec(SequenceInput::Dense { dim: 5 }));
    let layout: Vec<(String, Vec<usize>)> = model
        .params()
        .into_iter()
        .map(|p| (p.name, p.shape))
        .collect();
    let want = [
        ("w_ih", vec![12, 5]),
        ("w_hh", vec![12, 3]),
        ("b_ih", vec![12]),
        ("b_hh", vec![12]),
        ("w_out", vec![2, 3]),
        ("b_out", vec![2]),
    ];
    assert_eq!(
        layout,
        want.map(|(n, s)| (n.to_string(), s)).to_vec(),
        "{layout:?}"
    );
    assert_eq!(
        model.family().describe(),
        serde_json::json!({
            "kind": "lstm",
            "input": {"dense": 5},
            "hidden": 3,
            "outputs": 2,
            "forget_bias": 1.0,
        })
    );
    assert_eq!(measure::layers(&model), ["hidden", "cell"]);
    model
        .check_task(&Task::SequenceClassification {
            inputs: 5,
            classes: 2,
            steps: 7,
        })
        .unwrap();
    let err = model
        .check_task(&Task::Regression {
            inputs: 5,
            outputs: 2,
        })
        .unwrap_err();
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn outputs_a_readout_at_every_step() {
    let dev = Device::Cpu;
    for input in [
        SequenceInput::Tokens { vocab: 5 },
        SequenceInput::Dense { dim: 4 },
    ] {
        let s = spec(input);
        let vm = random_varmap(&ModelSpec::Lstm(s.clone()), 1, DType::F32);
        let lstm = Lstm::new(&s, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
        let x = match input {
            SequenceInput::Tokens { .. } => {
                Input::Tokens(Tensor::new(&[[0u32, 1, 4, 2], [3, 3, 0, 1]], &dev).unwrap())
            }
            SequenceInput::Dense { dim } => {
                Input::Sequence(Tensor::ones((2, 4, dim), DType::F32, &dev).unwrap())
            }
        };
        assert_eq!(lstm.forward(&x).unwrap().dims(), &[2, 4, 2]);
        let wrong = Input::Context(Tensor::new(&[[0u32, 1]], &dev).unwrap());
        let err = lstm.forward(&wrong).unwrap_err().to_string();
        assert!(err.contains("the LSTM reads"), "{err}");
    }
}

/// Hidden 2, input 1, one output, two steps (x = 1, then -0.5), weights
/// chosen so that every gate, the forget gate's constant bias of 1 and
/// one stored recurrent bias each change the result; `h` and `c` are
/// written out unit by unit, and the first step's values are also given
/// as numbers (computed separately in Python).
#[test]
fn a_tiny_lstm_matches_a_hand_computation() {
    let s = LstmSpec {
        input: SequenceInput::Dense { dim: 1 },
        hidden: 2,
        outputs: 1,
    };
    let model = ModelSpec::Lstm(s.clone());
    // Rows i0, i1, f0, f1, g0, g1, o0, o1.
    let w_ih = vec![1.0, -1.0, 0.5, 0.0, 2.0, 1.0, 0.0, 1.5];
    #[rustfmt::skip]
    let w_hh = vec![
        0.5, 0.0, // i0
        0.0, 0.0, // i1
        0.0, 0.0, // f0
        0.0, 1.0, // f1
        1.0, -1.0, // g0
        0.0, 0.5, // g1
        0.0, 0.0, // o0
        0.5, 0.0, // o1
    ];
    let b_ih = vec![0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    let b_hh = vec![0.0, 0.0, 0.0, -0.5, 0.0, 0.0, 0.0, 0.0];
    let (w_out, b_out) = (vec![1.0, -1.0], vec![0.25]);
    let params = vec![w_ih, w_hh, b_ih, b_hh, w_out, b_out];

    let (s1, t) = (sigmoid, f64::tanh);
    // Step 1, x = 1, from h = c = 0: c = i g (the forget gate multiplies 0).
    let c1 = [s1(1.0 + 0.1) * t(2.0), s1(-1.0) * t(1.0)];
    let h1 = [s1(0.0) * t(c1[0]), s1(1.5) * t(c1[1])];
    close(
        &[c1[0] as f32, c1[1] as f32, h1[0] as f32, h1[1] as f32],
        &[0.723_271_434, 0.204_824_215, 0.309_465_808, 0.165_155_891],
        1e-7,
    );
    // Step 2, x = -0.5.
    let x = -0.5;
    // W_ii = (1, -1), b_ii0 = 0.1, W_hi0 = (0.5, 0).
    let i = [s1(x + 0.1 + 0.5 * h1[0]), s1(-x)];
    // The forget gate: W_if x + b_if + W_hf h + b_hf, plus 1.
    let f = [s1(0.5 * x + 1.0), s1(h1[1] - 0.5 + 1.0)];
    let g = [t(2.0 * x + h1[0] - h1[1]), t(x + 0.5 * h1[1])];
    let o = [s1(0.0), s1(1.5 * x + 0.5 * h1[0])];
    let c2 = [f[0] * c1[0] + i[0] * g[0], f[1] * c1[1] + i[1] * g[1]];
    let h2 = [o[0] * t(c2[0]), o[1] * t(c2[1])];
    let y = [h1[0] - h1[1] + 0.25, h2[0] - h2[1] + 0.25];

    let input = ProbeInput::Real {
        x: &[1.0, -0.5],
        n: 1,
        len: 2,
    };
    let hidden = measure::hidden(&model, &params, &input, "hidden").unwrap();
    let cell = measure::hidden(&model, &params, &input, "cell").unwrap();
    let outputs = measure::outputs(&model, &params, &input).unwrap();
    assert_eq!(hidden.shape, [1, 2, 2]);
    assert_eq!(cell.shape, [1, 2, 2]);
    assert_eq!(outputs.shape, [1, 2, 1]);
    close(&hidden.values, &[h1[0], h1[1], h2[0], h2[1]], 1e-6);
    close(&cell.values, &[c1[0], c1[1], c2[0], c2[1]], 1e-6);
    close(&outputs.values, &y, 1e-6);
    close(
        &outputs.values,
        &[0.394_309_916_459_68, 0.381_310_363_242_885],
        1e-6,
    );

    // The same through the module built directly.
    let (vm, _) = variables(&model.params(), &params, &Device::Cpu).unwrap();
    let lstm = Lstm::new(&s, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    let x = Input::Sequence(Tensor::new(&[[[1.0f32], [-0.5]]], &Device::Cpu).unwrap());
    let got: Vec<f32> = lstm
        .forward(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    close(&got, &y, 1e-6);
}

/// Two steps of tokens (and of the same tokens one-hot as dense vectors)
/// with random weights against PyTorch's LSTM equations written out with
/// `Vec`s, the forget gate's pre-activation plus 1.
#[test]
fn steps_match_pytorch_equations_by_hand() {
    let dev = Device::Cpu;
    let (vocab, hid, outs) = (3usize, 3usize, 2usize);
    let s = spec(SequenceInput::Tokens { vocab });
    let vm = random_varmap(&ModelSpec::Lstm(s.clone()), 2, DType::F32);
    let (w_ih, w_hh) = (values(&vm, "w_ih"), values(&vm, "w_hh"));
    let (b_ih, b_hh) = (values(&vm, "b_ih"), values(&vm, "b_hh"));
    let (w_out, b_out) = (values(&vm, "w_out"), values(&vm, "b_out"));
    let tokens = [1usize, 2, 0];
    let (mut h, mut c) = (vec![0.0f64; hid], vec![0.0f64; hid]);
    let mut want = Vec::new();
    for &tok in &tokens {
        // Row `g * hid + j` is unit j of gate g (i, f, g, o).
        let pre = |g: usize, j: usize| {
            let row = g * hid + j;
            w_ih[row * vocab + tok]
                + b_ih[row]
                + b_hh[row]
                + (0..hid).map(|k| w_hh[row * hid + k] * h[k]).sum::<f64>()
        };
        let mut next_h = vec![0.0; hid];
        for j in 0..hid {
            let i = sigmoid(pre(0, j));
            let f = sigmoid(pre(1, j) + 1.0);
            let g = pre(2, j).tanh();
            let o = sigmoid(pre(3, j));
            c[j] = f * c[j] + i * g;
            next_h[j] = o * c[j].tanh();
        }
        h = next_h;
        want.extend(
            (0..outs).map(|o| b_out[o] + (0..hid).map(|j| w_out[o * hid + j] * h[j]).sum::<f64>()),
        );
    }

    let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
    let by_tokens = Lstm::new(&s, vb.clone()).unwrap();
    let by_dense = Lstm::new(&spec(SequenceInput::Dense { dim: vocab }), vb).unwrap();
    let ids = Tensor::new(&[[1u32, 2, 0]], &dev).unwrap();
    let one_hot = Tensor::new(&[[[0f32, 1., 0.], [0., 0., 1.], [1., 0., 0.]]], &dev).unwrap();
    for got in [
        by_tokens.forward(&Input::Tokens(ids)).unwrap(),
        by_dense.forward(&Input::Sequence(one_hot)).unwrap(),
    ] {
        let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
        close(&got, &want, 1e-5);
    }
}

#[test]
fn gradients_match_finite_differences() {
    let dev = Device::Cpu;
    for input in [
        SequenceInput::Tokens { vocab: 4 },
        SequenceInput::Dense { dim: 2 },
    ] {
        let s = spec(input);
        let vm = random_varmap(&ModelSpec::Lstm(s.clone()), 3, DType::F64);
        let lstm = Lstm::new(&s, VarBuilder::from_varmap(&vm, DType::F64, &dev)).unwrap();
        let x = match input {
            SequenceInput::Tokens { .. } => {
                Input::Tokens(Tensor::new(&[[1u32, 3, 0], [2, 2, 1]], &dev).unwrap())
            }
            SequenceInput::Dense { .. } => Input::Sequence(
                Tensor::new(&[[[0.5f64, -1.], [1., 0.2], [-0.3, 0.8]]], &dev).unwrap(),
            ),
        };
        assert_gradients_match(
            &vm,
            || lstm.forward(&x),
            &["w_ih", "w_hh", "b_ih", "b_hh", "w_out", "b_out"],
        );
    }
}

/// Sequences of `steps` real values whose label, scored at the last step
/// only, is the sign of the first value; the steps between are noise.
fn remember_the_first(n: usize, steps: usize, seed: u64) -> Batch {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut x = Vec::with_capacity(n * steps);
    let mut labels = Vec::with_capacity(n * steps);
    for _ in 0..n {
        let first = rng.random::<bool>();
        x.push(if first { 1.0 } else { -1.0 });
        x.extend((1..steps).map(|_| rng.random::<f32>() - 0.5));
        labels.extend((1..steps).map(|_| IGNORE));
        labels.push(u32::from(first));
    }
    Batch::Sequences {
        n,
        steps,
        x,
        labels,
    }
}

/// A lifetime through `train_population` (the autograd path on the CPU)
/// learns to carry the first step's sign to the last of 8 steps: the
/// held-out loss falls to well under half its birth value.
#[test]
fn a_lifetime_learns_to_remember_across_steps() {
    let steps = 8;
    let task = Task::SequenceClassification {
        inputs: 1,
        classes: 2,
        steps,
    };
    let model = ModelSpec::Lstm(LstmSpec {
        input: SequenceInput::Dense { dim: 1 },
        hidden: 8,
        outputs: 2,
    });
    model.check_task(&task).unwrap();
    assert_eq!(crate::path_for(&model, &Device::Cpu), crate::Path::General);
    let (train_set, heldout) = (
        remember_the_first(64, steps, 1),
        remember_the_first(32, steps, 2),
    );
    let (batch, lifetime_steps) = (16, 60);
    let life = LifetimeSpec {
        batch,
        eval_every: 0,
        curve_heldout: 32,
        optimizer: OptimizerSpec {
            method: Method::Adam,
            ..OptimizerSpec::default()
        },
    };
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let job = Job {
        params: birth_weights(&model, 4),
        masks: vec![None; model.params().len()],
        signs: vec![None; model.params().len()],
        hyper: Hyper {
            lr: 0.03,
            momentum: 0.9,
            weight_decay: 0.0,
            steps: lifetime_steps,
        },
        train: &train_set,
        heldout: &heldout,
        probes: &[],
        indices: minibatch_indices(64, batch, lifetime_steps, &mut rng),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let out = train_population(&model, &task, &life, &Device::Cpu, None, vec![job], &pool)
        .unwrap()
        .remove(0);
    assert_eq!(out.status, Status::Completed);
    let (birth, end) = (out.curve[0].heldout, out.final_heldout());
    assert!(end < 0.3 * birth, "held-out loss {birth} -> {end}");
}
