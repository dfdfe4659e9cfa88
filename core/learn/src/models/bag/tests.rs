//! The causal bag as a registered family: made from a scenario's fields,
//! read back by probes exactly as a hand computation gives, differentiated
//! correctly, and trained by `train_population` like the built-in
//! families.

use candle_core::DType;
use candle_nn::VarBuilder;
use lineage_env::{Batch, Task};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::*;
use crate::data::minibatch_indices;
use crate::family::Fields;
use crate::measure::{self, ProbeInput};
use crate::models::tests::{assert_gradients_match, birth_weights, random_varmap};
use crate::models::{Network, registration};
use crate::optim::{Hyper, Method, OptimizerSpec};
use crate::{Job, LifetimeSpec, ModelSpec, Status, train_population};

/// The bag a scenario's `kind = "bag"` with `fields` makes for `task`.
fn made(fields: serde_json::Value, task: &Task) -> Result<ModelSpec, FieldError> {
    let serde_json::Value::Object(values) = fields else {
        panic!("fields are a table");
    };
    let registration = registration("bag").expect("the bag is registered");
    let mut fields = Fields::new(values);
    let family = (registration.new)(&mut fields, task)?;
    fields.finish("bag")?;
    Ok(ModelSpec::Registered(family))
}

const TOKENS: Task = Task::NextToken {
    vocab: 5,
    context: 4,
};

#[test]
fn a_scenario_table_makes_the_bag_or_names_the_wrong_field() {
    let model = made(serde_json::json!({"dim": 3}), &TOKENS).unwrap();
    let names: Vec<String> = model.params().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["embed", "w_out", "b_out"]);
    assert_eq!(model.parameter_count(), 5 * 3 + 5 * 3 + 5);
    model.check_task(&TOKENS).unwrap();
    assert_eq!(
        model.family().describe(),
        serde_json::json!({"kind": "bag", "input": {"tokens": 5}, "dim": 3, "outputs": 5})
    );
    assert_eq!(measure::layers(&model), ["mean"]);
    // Equal when they describe the same model.
    assert_eq!(model, made(serde_json::json!({"dim": 3}), &TOKENS).unwrap());

    let err = made(serde_json::json!({}), &TOKENS).unwrap_err();
    assert_eq!(
        (err.field.as_str(), err.message.as_str()),
        ("dim", "missing field `dim`")
    );
    let err = made(serde_json::json!({"dim": 0}), &TOKENS).unwrap_err();
    assert_eq!(err.field, "dim");
    assert!(err.message.contains("at least 1, found 0"), "{err}");
    let err = made(serde_json::json!({"dim": 3, "depth": 2}), &TOKENS).unwrap_err();
    assert_eq!(err.field, "depth");
    assert!(err.message.contains("unknown field `depth`"), "{err}");
    let err = made(
        serde_json::json!({"dim": 3}),
        &Task::Regression {
            inputs: 2,
            outputs: 1,
        },
    )
    .unwrap_err();
    assert_eq!(err.field, "kind");
    assert!(err.message.contains("reads sequences"), "{err}");
}

/// `W_out mean(E x[0..=t]) + b_out` at every step, by hand.
fn by_hand(spec: &BagSpec, params: &[Vec<f32>], steps: &[Vec<f32>]) -> (Vec<f32>, Vec<f32>) {
    let (d, o) = (spec.dim, spec.outputs);
    let (mut sum, mut means, mut outputs) = (vec![0.0f32; d], Vec::new(), Vec::new());
    for (t, e) in steps.iter().enumerate() {
        for (s, v) in sum.iter_mut().zip(e) {
            *s += v;
        }
        let mean: Vec<f32> = sum.iter().map(|s| s / (t + 1) as f32).collect();
        for k in 0..o {
            let row = &params[1][k * d..(k + 1) * d];
            let dot: f32 = row.iter().zip(&mean).map(|(w, m)| w * m).sum();
            outputs.push(dot + params[2][k]);
        }
        means.extend(mean);
    }
    (means, outputs)
}

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "[{i}]: {x} vs {y}");
    }
}

#[test]
fn probes_read_back_the_running_mean_and_its_readout() {
    let model = made(serde_json::json!({"dim": 3}), &TOKENS).unwrap();
    let ModelSpec::Registered(_) = &model else {
        unreachable!()
    };
    let spec = BagSpec {
        input: SequenceInput::Tokens { vocab: 5 },
        dim: 3,
        outputs: 5,
    };
    let params = birth_weights(&model, 3);
    let tokens = [4u32, 0, 4, 2, 1, 3, 3, 0];
    let input = ProbeInput::Tokens {
        tokens: &tokens,
        n: 2,
        len: 4,
    };
    let outputs = measure::outputs(&model, &params, &input).unwrap();
    let hidden = measure::hidden(&model, &params, &input, "mean").unwrap();
    assert_eq!(outputs.shape, [2, 4, 5]);
    assert_eq!(hidden.shape, [2, 4, 3]);
    for (i, window) in tokens.chunks(4).enumerate() {
        let steps: Vec<Vec<f32>> = window
            .iter()
            .map(|&t| params[0][t as usize * 3..(t as usize + 1) * 3].to_vec())
            .collect();
        let (means, outs) = by_hand(&spec, &params, &steps);
        close(&hidden.values[i * 12..(i + 1) * 12], &means);
        close(&outputs.values[i * 20..(i + 1) * 20], &outs);
    }
    // Real inputs go through `w_in`, stored `[dim, inputs]`.
    let task = Task::SequenceClassification {
        inputs: 2,
        classes: 3,
        steps: 3,
    };
    let model = made(serde_json::json!({"dim": 4}), &task).unwrap();
    let spec = BagSpec {
        input: SequenceInput::Dense { dim: 2 },
        dim: 4,
        outputs: 3,
    };
    let params = birth_weights(&model, 4);
    let x = [0.5f32, -1.0, 2.0, 0.25, -0.75, 1.5];
    let input = ProbeInput::Real {
        x: &x,
        n: 1,
        len: 6,
    };
    let steps: Vec<Vec<f32>> = x
        .chunks(2)
        .map(|v| {
            (0..4)
                .map(|j| params[0][j * 2] * v[0] + params[0][j * 2 + 1] * v[1])
                .collect()
        })
        .collect();
    let (means, outs) = by_hand(&spec, &params, &steps);
    close(
        &measure::hidden(&model, &params, &input, "mean")
            .unwrap()
            .values,
        &means,
    );
    close(
        &measure::outputs(&model, &params, &input).unwrap().values,
        &outs,
    );
    // A layer it does not have is an error naming the one it has.
    let err = measure::hidden(&model, &params, &input, "hidden").unwrap_err();
    assert!(err.to_string().contains("mean"), "{err}");
}

#[test]
fn autograd_matches_finite_differences() {
    for task in [
        TOKENS,
        Task::SequenceClassification {
            inputs: 3,
            classes: 2,
            steps: 4,
        },
    ] {
        let model = made(serde_json::json!({"dim": 3}), &task).unwrap();
        let varmap = random_varmap(&model, 8, DType::F64);
        let net = Network::new(&model, VarBuilder::from_varmap(&varmap, DType::F64, &CPU)).unwrap();
        let input = match task {
            Task::NextToken { .. } => {
                Input::Tokens(Tensor::from_vec(vec![1u32, 4, 4, 0, 2, 3], (2, 3), &CPU).unwrap())
            }
            _ => {
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
                let x: Vec<f64> = (0..2 * 4 * 3).map(|_| rng.random::<f64>() - 0.5).collect();
                Input::Sequence(Tensor::from_vec(x, (2, 4, 3), &CPU).unwrap())
            }
        };
        let first = if matches!(task, Task::NextToken { .. }) {
            "embed"
        } else {
            "w_in"
        };
        assert_gradients_match(&varmap, || net.forward(&input), &[first, "w_out", "b_out"]);
    }
}

const CPU: candle_core::Device = candle_core::Device::Cpu;

/// `n` sequences of `steps` two-wide inputs, each step labelled 1 where
/// the running mean of the first input is positive: exactly what a bag
/// can read out.
fn sign_of_running_mean(n: usize, steps: usize, seed: u64) -> Batch {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let (mut x, mut labels) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let mut sum = 0.0;
        for _ in 0..steps {
            let v: f32 = 2.0 * rng.random::<f32>() - 1.0;
            sum += v;
            x.extend([v, 2.0 * rng.random::<f32>() - 1.0]);
            labels.push(u32::from(sum > 0.0));
        }
    }
    Batch::Sequences {
        x,
        labels,
        steps,
        n,
    }
}

#[test]
fn train_population_trains_a_registered_family_on_the_autograd_path() {
    let steps = 6;
    let task = Task::SequenceClassification {
        inputs: 2,
        classes: 2,
        steps,
    };
    let model = made(serde_json::json!({"dim": 4}), &task).unwrap();
    assert_eq!(crate::path_for(&model, &CPU), crate::Path::General);
    let (train_set, heldout) = (
        sign_of_running_mean(64, steps, 1),
        sign_of_running_mean(32, steps, 2),
    );
    let life = LifetimeSpec {
        batch: 16,
        eval_every: 0,
        curve_heldout: 32,
        optimizer: OptimizerSpec {
            method: Method::Adam,
            ..OptimizerSpec::default()
        },
    };
    let hyper = Hyper {
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 0.0,
        steps: 60,
    };
    let jobs: Vec<Job> = (0..2)
        .map(|seed| {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            Job {
                params: birth_weights(&model, 10 + seed),
                masks: vec![None; 3],
                signs: vec![None; 3],
                hyper,
                train: &train_set,
                heldout: &heldout,
                probes: &[],
                indices: minibatch_indices(64, 16, hyper.steps, &mut rng),
            }
        })
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let outcomes = train_population(&model, &task, &life, &CPU, None, jobs, &pool).unwrap();
    for out in &outcomes {
        assert_eq!(out.status, Status::Completed);
        let (birth, end) = (out.curve[0].heldout, out.final_heldout());
        assert!(end < 0.5 * birth, "held-out loss {birth} -> {end}");
        // The learned weights read back through a probe score what the
        // lifetime's last curve point says.
        let x = match &heldout {
            Batch::Sequences { x, .. } => x,
            _ => unreachable!(),
        };
        let probed = measure::outputs(
            &model,
            &out.params,
            &ProbeInput::Real {
                x,
                n: 32,
                len: steps * 2,
            },
        )
        .unwrap();
        let Batch::Sequences { labels, .. } = &heldout else {
            unreachable!()
        };
        let loss: f32 = probed
            .values
            .chunks(2)
            .zip(labels)
            .map(|(logits, &l)| {
                let top = logits[0].max(logits[1]);
                let z: f32 = logits.iter().map(|v| (v - top).exp()).sum();
                top + z.ln() - logits[l as usize]
            })
            .sum::<f32>()
            / labels.len() as f32;
        assert!((loss - end).abs() < 1e-4, "probe {loss} vs lifetime {end}");
    }
}
