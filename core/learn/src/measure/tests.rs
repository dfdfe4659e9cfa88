//! Tests of `measure`.

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::*;
use crate::jacobian::output_gradients;
use crate::models::Input;
use crate::spec::SequenceInput;
use crate::spec::{Activation, Embedding, GruSpec, LstmSpec, MlpSpec, RnnSpec, TransformerSpec};

/// Real rows of width 3, layers 3 -> 4 -> 5 -> 2.
pub(crate) fn mlp() -> ModelSpec {
    ModelSpec::Mlp(MlpSpec {
        embedding: None,
        widths: vec![3, 4, 5, 2],
        activation: Activation::Tanh,
        bias: true,
    })
}

/// Contexts of 3 tokens of a vocabulary of 5, embedded 2 wide.
pub(crate) fn mlp_lm() -> ModelSpec {
    ModelSpec::Mlp(MlpSpec {
        embedding: Some(Embedding {
            vocab: 5,
            dim: 2,
            context: 3,
        }),
        widths: vec![6, 4, 5],
        activation: Activation::Gelu,
        bias: true,
    })
}

pub(crate) fn rnn() -> ModelSpec {
    ModelSpec::Rnn(RnnSpec {
        input: SequenceInput::Tokens { vocab: 4 },
        hidden: 3,
        outputs: 2,
        alpha: 0.5,
        activation: Activation::Tanh,
        bias: true,
    })
}

pub(crate) fn gru() -> ModelSpec {
    ModelSpec::Gru(GruSpec {
        input: SequenceInput::Dense { dim: 2 },
        hidden: 3,
        outputs: 2,
    })
}

pub(crate) fn lstm() -> ModelSpec {
    ModelSpec::Lstm(LstmSpec {
        input: SequenceInput::Dense { dim: 2 },
        hidden: 3,
        outputs: 2,
    })
}

pub(crate) fn transformer() -> ModelSpec {
    ModelSpec::Transformer(TransformerSpec {
        input: SequenceInput::Tokens { vocab: 5 },
        context: 4,
        d_model: 4,
        heads: 2,
        layers: 2,
        d_ff: 6,
        outputs: 3,
        layer_norm: true,
        activation: Activation::Gelu,
        embed: true,
        positions: true,
        attn_out: true,
        attn_scale: true,
        head: Vec::new(),
    })
}

/// Deterministic weights (the general path's test weights).
pub(crate) fn weights(spec: &ModelSpec, seed: u64) -> Vec<Vec<f32>> {
    crate::models::tests::birth_weights(spec, seed)
}

pub(crate) fn uniform(count: usize, seed: u64) -> Vec<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..count)
        .map(|_| 2.0 * rng.random::<f32>() - 1.0)
        .collect()
}

/// A probe input that owns its data.
pub(crate) enum Owned {
    Real(Vec<f32>, usize, usize),
    Tokens(Vec<u32>, usize, usize),
}

impl Owned {
    pub(crate) fn view(&self) -> ProbeInput<'_> {
        match self {
            Owned::Real(x, n, len) => ProbeInput::Real {
                x,
                n: *n,
                len: *len,
            },
            Owned::Tokens(tokens, n, len) => ProbeInput::Tokens {
                tokens,
                n: *n,
                len: *len,
            },
        }
    }
}

/// Three examples for each test model (sequences of 3 steps).
pub(crate) fn examples(spec: &ModelSpec) -> Owned {
    let tokens = |vocab: u32, len: usize| {
        let ids = (0..3 * len as u32).map(|i| (7 * i + 2) % vocab).collect();
        Owned::Tokens(ids, 3, len)
    };
    match spec.family().reads() {
        Reads::Context { vocab, context } => tokens(vocab as u32, context),
        Reads::Dense { width } => Owned::Real(uniform(3 * width, 11), 3, width),
        Reads::Steps { input, .. } => match input {
            SequenceInput::Tokens { vocab } => tokens(vocab as u32, 3),
            SequenceInput::Dense { dim } => Owned::Real(uniform(9 * dim, 12), 3, 3 * dim),
        },
    }
}

/// The network and its variables, built directly (not through the probe).
pub(crate) fn direct(spec: &ModelSpec, params: &[Vec<f32>]) -> (Network, Vec<Var>) {
    let (varmap, vars) = variables(&spec.params(), params, &CPU).unwrap();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &CPU);
    (Network::new(spec, vb).unwrap(), vars)
}

/// What `Network::forward` reads for `input`, built by hand.
pub(crate) fn direct_input(spec: &ModelSpec, input: &Owned) -> Input {
    match (spec, input) {
        (ModelSpec::Mlp(m), Owned::Real(x, n, len)) if m.embedding.is_none() => {
            Input::Dense(Tensor::from_slice(x, (*n, *len), &CPU).unwrap())
        }
        (ModelSpec::Mlp(_), Owned::Tokens(t, n, len)) => {
            Input::Context(Tensor::from_slice(t, (*n, *len), &CPU).unwrap())
        }
        (_, Owned::Tokens(t, n, len)) => {
            Input::Tokens(Tensor::from_slice(t, (*n, *len), &CPU).unwrap())
        }
        (
            ModelSpec::Rnn(RnnSpec { input, .. })
            | ModelSpec::Gru(GruSpec { input, .. })
            | ModelSpec::Lstm(LstmSpec { input, .. })
            | ModelSpec::Transformer(TransformerSpec { input, .. }),
            Owned::Real(x, n, len),
        ) => {
            let dim = input.width();
            Input::Sequence(Tensor::from_slice(x, (*n, len / dim, dim), &CPU).unwrap())
        }
        _ => unreachable!("the test models read what the examples hold"),
    }
}

pub(crate) fn all_models() -> [ModelSpec; 6] {
    [mlp(), mlp_lm(), rnn(), gru(), lstm(), transformer()]
}

#[test]
fn outputs_equal_network_forward() {
    for spec in all_models() {
        let params = weights(&spec, 1);
        let input = examples(&spec);
        let got = outputs(&spec, &params, &input.view()).unwrap();
        let (net, _) = direct(&spec, &params);
        let want = net.forward(&direct_input(&spec, &input)).unwrap();
        assert_eq!(got.shape, want.dims(), "{spec:?}");
        let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(got.values, want, "{spec:?}");
    }
}

#[test]
fn mlp_hidden_layers_match_a_hand_computation() {
    let spec = mlp();
    assert_eq!(layers(&spec), ["hidden.0", "hidden.1"]);
    let p = weights(&spec, 2);
    let input = examples(&spec);
    let Owned::Real(x, n, _) = &input else {
        unreachable!()
    };
    // layers.i: weight p[2i] [out, in], bias p[2i + 1].
    let layer = |i: usize, a: &[f64], out: usize| -> Vec<f64> {
        let (w, b) = (&p[2 * i], &p[2 * i + 1]);
        (0..out)
            .map(|o| {
                let z: f64 = a
                    .iter()
                    .enumerate()
                    .map(|(k, &v)| f64::from(w[o * a.len() + k]) * v)
                    .sum();
                (z + f64::from(b[o])).tanh()
            })
            .collect()
    };
    let h0 = hidden(&spec, &p, &input.view(), "hidden.0").unwrap();
    let h1 = hidden(&spec, &p, &input.view(), "hidden.1").unwrap();
    assert_eq!(
        (h0.shape.as_slice(), h1.shape.as_slice()),
        (&[3, 4][..], &[3, 5][..])
    );
    for i in 0..*n {
        let row: Vec<f64> = x[3 * i..3 * i + 3].iter().map(|&v| f64::from(v)).collect();
        let a0 = layer(0, &row, 4);
        let a1 = layer(1, &a0, 5);
        for (got, want) in [
            (&h0.values[4 * i..4 * i + 4], &a0),
            (&h1.values[5 * i..5 * i + 5], &a1),
        ] {
            for (g, w) in got.iter().zip(want.iter()) {
                assert!((f64::from(*g) - w).abs() < 1e-5, "{got:?} vs {want:?}");
            }
        }
    }
}

/// The readout `w_out h + b_out` of every step's state reproduces the
/// outputs, for the RNN, the GRU and the LSTM.
#[test]
fn readout_of_recurrent_hidden_reproduces_outputs() {
    for spec in [rnn(), gru(), lstm()] {
        let want = if matches!(spec, ModelSpec::Lstm(_)) {
            &["hidden", "cell"][..]
        } else {
            &["hidden"][..]
        };
        assert_eq!(layers(&spec), want);
        let p = weights(&spec, 3);
        let input = examples(&spec);
        let h = hidden(&spec, &p, &input.view(), "hidden").unwrap();
        let y = outputs(&spec, &p, &input.view()).unwrap();
        assert_eq!(h.shape, [3, 3, 3]);
        assert_eq!(y.shape, [3, 3, 2]);
        let names: Vec<String> = spec.params().into_iter().map(|i| i.name).collect();
        let get = |name: &str| &p[names.iter().position(|n| n == name).unwrap()];
        let (w_out, b_out) = (get("w_out"), get("b_out"));
        for (state, out) in h.values.chunks(3).zip(y.values.chunks(2)) {
            for o in 0..2 {
                let want = b_out[o] + (0..3).map(|j| w_out[o * 3 + j] * state[j]).sum::<f32>();
                assert!(
                    (want - out[o]).abs() < 1e-5,
                    "{spec:?}: {want} vs {}",
                    out[o]
                );
            }
        }
    }
}

/// The LSTM's state is `o * tanh(c)` with `o` in (0, 1): every entry of
/// `hidden` has its cell's sign and a smaller size than `tanh` of it; and
/// zero examples give an empty cell of the state's shape.
#[test]
fn lstm_state_is_a_gated_tanh_of_its_cell() {
    let spec = lstm();
    let p = weights(&spec, 5);
    let input = examples(&spec);
    let h = hidden(&spec, &p, &input.view(), "hidden").unwrap();
    let c = hidden(&spec, &p, &input.view(), "cell").unwrap();
    assert_eq!(
        (h.shape.as_slice(), c.shape.as_slice()),
        (&[3, 3, 3][..], &[3, 3, 3][..])
    );
    assert_ne!(h.values, c.values);
    for (state, cell) in h.values.iter().zip(&c.values) {
        assert!(
            state * cell > 0.0 && state.abs() < cell.tanh().abs(),
            "h {state}, c {cell}"
        );
    }
    let none = ProbeInput::Real {
        x: &[],
        n: 0,
        len: 8,
    };
    assert_eq!(
        hidden(&spec, &p, &none, "cell").unwrap(),
        Probed {
            values: Vec::new(),
            shape: vec![0, 4, 3],
        }
    );
}

#[test]
fn transformer_embed_is_token_plus_position() {
    let spec = transformer();
    assert_eq!(layers(&spec), ["embed", "blocks.0", "blocks.1"]);
    let p = weights(&spec, 4);
    let input = examples(&spec);
    let Owned::Tokens(tokens, ..) = &input else {
        unreachable!()
    };
    let (tok, pos) = (&p[0], &p[1]);
    let embed = hidden(&spec, &p, &input.view(), "embed").unwrap();
    assert_eq!(embed.shape, [3, 3, 4]);
    for (k, &t) in tokens.iter().enumerate() {
        let step = k % 3;
        for j in 0..4 {
            let want = tok[t as usize * 4 + j] + pos[step * 4 + j];
            assert!((embed.values[k * 4 + j] - want).abs() < 1e-6);
        }
    }
    let last = hidden(&spec, &p, &input.view(), "blocks.1").unwrap();
    assert_eq!(last.shape, [3, 3, 4]);
    assert_ne!(last.values, embed.values);
}

#[test]
fn zero_examples_give_empty_results() {
    let spec = rnn();
    let p = weights(&spec, 8);
    let none = ProbeInput::Tokens {
        tokens: &[],
        n: 0,
        len: 5,
    };
    let empty = |shape: &[usize]| Probed {
        values: Vec::new(),
        shape: shape.to_vec(),
    };
    assert_eq!(outputs(&spec, &p, &none).unwrap(), empty(&[0, 5, 2]));
    assert_eq!(
        hidden(&spec, &p, &none, "hidden").unwrap(),
        empty(&[0, 5, 3])
    );
    let g = output_gradients(&spec, &p, &none, Some(&[]), "w_rec").unwrap();
    assert_eq!(g, empty(&[0, 3, 3]));
}

/// Every wrong thing a plugin can pass is an error with a message that
/// says what was expected.
#[test]
fn bad_inputs_are_errors() {
    let (spec, p) = (mlp(), weights(&mlp(), 9));
    let x = [0.5f32; 6];
    let good = ProbeInput::Real {
        x: &x,
        n: 2,
        len: 3,
    };
    let message = |r: Result<Probed, ProbeError>| r.unwrap_err().to_string();

    let err = hidden(&spec, &p, &good, "hidden.2").unwrap_err();
    assert!(matches!(err, ProbeError::UnknownLayer { .. }), "{err}");
    assert!(err.to_string().contains("hidden.0, hidden.1"), "{err}");
    let two_layer = ModelSpec::Mlp(MlpSpec {
        widths: vec![3, 2],
        ..match mlp() {
            ModelSpec::Mlp(m) => m,
            _ => unreachable!(),
        }
    });
    let err = message(hidden(
        &two_layer,
        &weights(&two_layer, 1),
        &good,
        "hidden.0",
    ));
    assert!(err.contains("(none)"), "{err}");

    let err = output_gradients(&spec, &p, &good, None, "layers.9.weight").unwrap_err();
    assert!(matches!(err, ProbeError::UnknownWeight { .. }), "{err}");
    assert!(
        err.to_string().contains("layers.0.weight, layers.0.bias"),
        "{err}"
    );

    let short = ProbeInput::Real {
        x: &x[..4],
        n: 2,
        len: 2,
    };
    let err = message(outputs(&spec, &p, &short));
    assert_eq!(err, "expected 3 inputs per example for mlp, got 2");
    let err = outputs(
        &spec,
        &p,
        &ProbeInput::Real {
            x: &x[..5],
            n: 2,
            len: 3,
        },
    )
    .unwrap_err();
    assert!(matches!(err, ProbeError::InputData { got: 5, .. }), "{err}");
    let huge = ProbeInput::Real {
        x: &x,
        n: usize::MAX,
        len: 3,
    };
    assert!(matches!(
        outputs(&spec, &p, &huge),
        Err(ProbeError::InputData { .. })
    ));

    let tokens = ProbeInput::Tokens {
        tokens: &[0, 1, 2],
        n: 1,
        len: 3,
    };
    let err = message(outputs(&spec, &p, &tokens));
    assert_eq!(err, "tokens given to a model reading real inputs (mlp)");
    let err = message(outputs(&rnn(), &weights(&rnn(), 1), &good));
    assert_eq!(err, "real inputs given to a model reading tokens (rnn)");

    let lm = mlp_lm();
    let out_of_vocab = ProbeInput::Tokens {
        tokens: &[0, 1, 2, 4, 5, 1],
        n: 2,
        len: 3,
    };
    let err = outputs(&lm, &weights(&lm, 1), &out_of_vocab).unwrap_err();
    assert!(
        matches!(
            err,
            ProbeError::TokenOutOfVocabulary {
                token: 5,
                example: 1,
                position: 1,
                vocab: 5
            }
        ),
        "{err}"
    );

    let t = transformer();
    let long = ProbeInput::Tokens {
        tokens: &[0; 5],
        n: 1,
        len: 5,
    };
    let err = message(outputs(&t, &weights(&t, 1), &long));
    assert_eq!(
        err,
        "expected 1 to 4 tokens per example for transformer, got 5"
    );
    let g = gru();
    let ragged = ProbeInput::Real {
        x: &x[..5],
        n: 1,
        len: 5,
    };
    let err = message(hidden(&g, &weights(&g, 1), &ragged, "hidden"));
    assert!(err.contains("a multiple of 2 values"), "{err}");
    let no_steps = ProbeInput::Real {
        x: &[],
        n: 1,
        len: 0,
    };
    let err = message(outputs(&g, &weights(&g, 1), &no_steps));
    assert!(err.contains("at least 1 step of 2 values"), "{err}");

    let err = output_gradients(&spec, &p, &good, Some(&[1.0; 3]), "layers.0.bias").unwrap_err();
    assert!(
        matches!(
            err,
            ProbeError::CotangentLength {
                expected: 4,
                got: 3,
                ..
            }
        ),
        "{err}"
    );

    let err = outputs(&spec, &p[..3], &good).unwrap_err();
    assert!(
        matches!(
            err,
            ProbeError::ParamCount {
                expected: 6,
                got: 3
            }
        ),
        "{err}"
    );
    let mut wrong = p.clone();
    wrong[2].pop();
    let err = message(output_gradients(
        &spec,
        &wrong,
        &good,
        None,
        "layers.0.bias",
    ));
    assert_eq!(
        err,
        "parameter layers.1.weight has shape [5, 4] (20 values), got 19"
    );

    let no_layers = ModelSpec::Mlp(MlpSpec {
        widths: vec![3],
        ..match mlp() {
            ModelSpec::Mlp(m) => m,
            _ => unreachable!(),
        }
    });
    let err = outputs(&no_layers, &[], &good).unwrap_err();
    assert!(matches!(err, ProbeError::Model(_)), "{err}");
    let ModelSpec::Gru(mut flat) = gru() else {
        unreachable!()
    };
    flat.input = SequenceInput::Dense { dim: 0 };
    let flat = ModelSpec::Gru(flat);
    let err = message(outputs(&flat, &weights(&flat, 1), &no_steps));
    assert!(err.contains("w_ih has shape [9, 0], no values"), "{err}");
    let ModelSpec::Transformer(mut odd) = transformer() else {
        unreachable!()
    };
    odd.heads = 3;
    let odd = ModelSpec::Transformer(odd);
    let err = outputs(
        &odd,
        &weights(&odd, 1),
        &ProbeInput::Tokens {
            tokens: &[1, 2],
            n: 1,
            len: 2,
        },
    )
    .unwrap_err();
    assert!(matches!(err, ProbeError::Candle(_)), "{err}");
}
