//! Tests of `rnn`.

use super::*;
use crate::spec::{Activation, ModelSpec};
use crate::{Hyper, Status};
use crate::{Method, OptimizerSpec, Path, Schedule, train_population};
use lineage_env::Task;
use rand::{Rng, SeedableRng};

/// Relative tolerance on final weights: the recurrence and Adam's
/// normalisation of near-zero gradients amplify f32 summation-order
/// differences a little beyond the MLP's 1e-5.
const TOLERANCE: f32 = 5e-5;

/// Trains one random organism on both paths and compares them. With
/// `dale`, `w_rec` is born small and obeying column signs (the first
/// two thirds of units excitatory) and constrained to them.
fn compare(
    spec: RnnSpec,
    task: Task,
    train: &Batch,
    heldout: &Batch,
    method: Method,
    dale: bool,
) -> Outcome {
    let n = spec.hidden;
    let model = ModelSpec::Rnn(spec);
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(5);
    let params: Vec<Vec<f32>> = model
        .params()
        .iter()
        .map(|p| {
            (0..p.len())
                .map(|_| (rng.random::<f32>() - 0.5) * 0.6)
                .collect()
        })
        .collect();
    let masks: Vec<Option<Vec<f32>>> = model
        .params()
        .iter()
        .map(|p| {
            p.role.maskable().then(|| {
                (0..p.len())
                    .map(|_| f32::from(u8::from(rng.random_bool(0.7))))
                    .collect()
            })
        })
        .collect();
    let signs: Vec<Option<Vec<f32>>> = model
        .params()
        .iter()
        .map(|p| {
            (dale && p.name == "w_rec").then(|| {
                (0..p.len())
                    .map(|k| if 3 * (k % n) < 2 * n { 1.0 } else { -1.0 })
                    .collect()
            })
        })
        .collect();
    let params: Vec<Vec<f32>> = params
        .into_iter()
        .zip(&masks)
        .zip(&signs)
        .map(|((p, m), s)| {
            let p: Vec<f32> = match m {
                Some(m) => p.iter().zip(m).map(|(a, b)| a * b).collect(),
                None => p,
            };
            // Small, so that learning drives some weights to their bound.
            match s {
                Some(s) => p.iter().zip(s).map(|(a, b)| 0.05 * a.abs() * b).collect(),
                None => p,
            }
        })
        .collect();
    let life = LifetimeSpec {
        batch: 4,
        eval_every: 5,
        curve_heldout: 8,
        optimizer: OptimizerSpec {
            method,
            beta2: 0.99,
            eps: 1e-8,
            clip: Some(2.0),
            schedule: Schedule::InverseSqrt { warmup: 3 },
        },
    };
    let steps = 15;
    let indices = crate::data::minibatch_indices(train.len(), 4, steps, &mut rng);
    let hyper = Hyper {
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 0.01,
        steps,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let run = |path| {
        let job = Job {
            params: params.clone(),
            masks: masks.clone(),
            signs: signs.clone(),
            hyper,
            train,
            heldout,
            probes: &[],
            indices: indices.clone(),
        };
        train_population(
            &model,
            &task,
            &life,
            &candle_core::Device::Cpu,
            Some(path),
            vec![job],
            &pool,
        )
        .unwrap()
        .remove(0)
    };
    let (fast, general) = (run(Path::Fast), run(Path::General));
    assert_eq!(
        (fast.status, general.status),
        (Status::Completed, Status::Completed)
    );
    let scale = general
        .params
        .iter()
        .flatten()
        .fold(0.0f32, |m, &x| m.max(x.abs()));
    let gap = fast
        .params
        .iter()
        .flatten()
        .zip(general.params.iter().flatten())
        .map(|(&a, &b)| (a - b).abs() / b.abs().max(1e-2 * scale))
        .fold(0.0f32, f32::max);
    assert!(
        gap < TOLERANCE,
        "{method:?}: final weights differ by {gap} (relative)"
    );
    for (f, g) in fast.curve.iter().zip(&general.curve) {
        assert!(
            (f.heldout - g.heldout).abs() < 1e-5 * g.heldout.abs().max(1.0),
            "{f:?} vs {g:?}"
        );
    }
    for out in [&fast, &general] {
        for (w, s) in out.params.iter().zip(&signs) {
            let Some(s) = s else { continue };
            assert!(
                w.iter().zip(s).all(|(w, s)| w * s >= 0.0),
                "a learned weight against its sign"
            );
        }
    }
    if dale {
        // The constraint was active: some weight born off zero (and
        // not masked) was stopped at zero.
        let k = model
            .params()
            .iter()
            .position(|p| p.name == "w_rec")
            .unwrap();
        let stopped = (0..params[k].len())
            .filter(|&j| params[k][j] != 0.0 && fast.params[k][j] == 0.0)
            .count();
        assert!(stopped > 0, "no weight reached its sign's bound");
    }
    fast
}

#[test]
fn fast_rnn_matches_candle_on_dense_sequences_with_unscored_steps() {
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(6);
    let sequences = |n: usize, rng: &mut rand_xoshiro::Xoshiro256PlusPlus| {
        let steps = 5;
        let x: Vec<f32> = (0..n * steps * 3)
            .map(|_| rng.random::<f32>() - 0.5)
            .collect();
        // Fixation (ignored) until the last step, whose label is the sign of the summed input.
        let labels = (0..n)
            .flat_map(|s| {
                let total: f32 = x[s * steps * 3..(s + 1) * steps * 3].iter().sum();
                (0..steps).map(move |t| {
                    if t + 1 < steps {
                        IGNORE
                    } else {
                        u32::from(total > 0.0)
                    }
                })
            })
            .collect();
        Batch::Sequences {
            n,
            steps,
            x,
            labels,
        }
    };
    let (train, heldout) = (sequences(24, &mut rng), sequences(10, &mut rng));
    let spec = RnnSpec {
        input: SequenceInput::Dense { dim: 3 },
        hidden: 7,
        outputs: 2,
        alpha: 0.5,
        activation: Activation::Tanh,
        bias: true,
    };
    let task = Task::SequenceClassification {
        inputs: 3,
        classes: 2,
        steps: 5,
    };
    for method in [Method::Sgd, Method::AdamW] {
        for dale in [false, true] {
            compare(spec.clone(), task.clone(), &train, &heldout, method, dale);
        }
    }
}

#[test]
fn fast_rnn_matches_candle_on_tokens() {
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
    let windows = |n: usize, rng: &mut rand_xoshiro::Xoshiro256PlusPlus| {
        let mut tokens = Vec::new();
        for _ in 0..n {
            let s = rng.random_range(0..6u32);
            tokens.extend((0..6).map(|i| (s + i) % 6));
        }
        Batch::Tokens { n, len: 6, tokens }
    };
    let (train, heldout) = (windows(20, &mut rng), windows(8, &mut rng));
    let spec = RnnSpec {
        input: SequenceInput::Tokens { vocab: 6 },
        hidden: 9,
        outputs: 6,
        alpha: 1.0,
        activation: Activation::Relu,
        bias: false,
    };
    let fast = compare(
        spec,
        Task::NextToken {
            vocab: 6,
            context: 5,
        },
        &train,
        &heldout,
        Method::Adam,
        false,
    );
    assert!(
        fast.final_heldout() < 0.75 * fast.curve[0].heldout,
        "{:?}",
        fast.curve
    );
}
