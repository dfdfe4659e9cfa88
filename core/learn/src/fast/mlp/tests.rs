//! Tests of `mlp`.

use super::*;
use crate::Status;
use crate::bench::parse_model;
use crate::fast::activation::exp;
use crate::spec::Activation;
use crate::spec::{Embedding, ModelSpec};
use crate::{Hyper, OptimizerSpec, Path, Schedule, train_population};
use lineage_env::Task;
use rand::{Rng, SeedableRng};

#[test]
fn exp_is_within_two_ulps_and_saturates() {
    let mut worst = 0.0f64;
    for k in -870_000..=883_000 {
        let x = k as f32 * 1e-4;
        let exact = f64::from(x).exp();
        worst = worst.max((f64::from(exp(x)) - exact).abs() / exact);
    }
    assert!(worst < 2.5e-7, "relative error {worst}");
    assert!(exp(-1e4) >= 0.0 && exp(-1e4) < 1e-37);
    assert!(exp(1e4).is_finite() && exp(1e4) > 1e38);
    assert_eq!(exp(0.0), 1.0);
}

/// Largest |a - b| / max(|b|, 1e-3 * scale) over all weights.
fn relative_gap(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    let scale = b.iter().flatten().fold(0.0f32, |m, &x| m.max(x.abs()));
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(&x, &y)| (x - y).abs() / y.abs().max(1e-2 * scale))
        .fold(0.0, f32::max)
}

fn both_paths(
    model: &ModelSpec,
    task: &Task,
    train: &Batch,
    heldout: &Batch,
    method: crate::Method,
    masked: bool,
) {
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(9);
    let work = crate::bench::Workload {
        model: model.clone(),
        task: task.clone(),
        seq: 1,
        last_only: false,
    };
    let params = work.init(&mut rng);
    let masks: Vec<Option<Vec<f32>>> = model
        .params()
        .iter()
        .map(|p| {
            (masked && p.role.maskable()).then(|| {
                (0..p.len())
                    .map(|_| f32::from(u8::from(rng.random_bool(0.5))))
                    .collect()
            })
        })
        .collect();
    let params: Vec<Vec<f32>> = params
        .into_iter()
        .zip(&masks)
        .map(|(p, m)| match m {
            Some(m) => p.iter().zip(m).map(|(a, b)| a * b).collect(),
            None => p,
        })
        .collect();
    let life = LifetimeSpec {
        batch: 8,
        eval_every: 5,
        curve_heldout: 16,
        optimizer: OptimizerSpec {
            method,
            beta2: 0.99,
            eps: 1e-8,
            clip: Some(5.0),
            schedule: Schedule::WarmupHoldCooldown {
                warmup: 3,
                cooldown: 5,
            },
        },
    };
    let ex = Examples::of(train, model).unwrap();
    let steps = 20;
    let indices = crate::data::minibatch_indices(ex.count(), 8, steps, &mut rng);
    let hyper = Hyper {
        lr: if method == crate::Method::Sgd {
            0.05
        } else {
            0.01
        },
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
            signs: vec![None; masks.len()],
            hyper,
            train,
            heldout,
            probes: &[],
            indices: indices.clone(),
        };
        train_population(
            model,
            task,
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
    assert_eq!(fast.status, Status::Completed);
    assert_eq!(general.status, Status::Completed);
    let gap = relative_gap(&fast.params, &general.params);
    assert!(
        gap < 1e-5,
        "{method:?}: final weights differ by {gap} (relative)"
    );
    for (f, g) in fast.curve.iter().zip(&general.curve) {
        assert_eq!(f.step, g.step);
        assert!(
            (f.heldout - g.heldout).abs() < 1e-4 * g.heldout.abs().max(1.0),
            "{f:?} vs {g:?}"
        );
    }
    assert!(
        fast.final_heldout() < fast.curve[0].heldout,
        "learning lowers held-out loss: {:?}",
        fast.curve
    );
    for (p, m) in fast.params.iter().zip(&masks) {
        if let Some(m) = m {
            assert!(
                p.iter().zip(m).all(|(&w, &k)| k == 1.0 || w == 0.0),
                "pruned weights stay zero"
            );
        }
    }
}

fn clusters(n: usize, inputs: usize, classes: u32, rng: &mut impl Rng) -> Batch {
    let labels: Vec<u32> = (0..n).map(|_| rng.random_range(0..classes)).collect();
    let x = labels
        .iter()
        .flat_map(|&l| (0..inputs).map(move |i| if i as u32 % classes == l { 1.0 } else { 0.0 }))
        .zip(std::iter::repeat_with(|| rng.random::<f32>() - 0.5))
        .map(|(a, b)| a + 0.3 * b)
        .collect::<Vec<f32>>();
    Batch::Labeled { n, x, labels }
}

#[test]
fn fast_path_matches_candle_for_classification() {
    let work = parse_model("mlp:6-16-12-3:tanh").unwrap();
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(1);
    let (train, heldout) = (clusters(40, 6, 3, &mut rng), clusters(30, 6, 3, &mut rng));
    for method in [
        crate::Method::Sgd,
        crate::Method::Adam,
        crate::Method::AdamW,
    ] {
        for masked in [false, true] {
            both_paths(&work.model, &work.task, &train, &heldout, method, masked);
        }
    }
}

#[test]
fn fast_path_matches_candle_for_regression_and_language_models() {
    let work = parse_model("mlp:4-8-2:gelu").unwrap();
    let task = Task::Regression {
        inputs: 4,
        outputs: 2,
    };
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(2);
    let dense = |n: usize, rng: &mut rand_xoshiro::Xoshiro256PlusPlus| {
        let x: Vec<f32> = (0..n * 4).map(|_| rng.random::<f32>() - 0.5).collect();
        let y = x
            .chunks(4)
            .flat_map(|r| [r[0] - r[1], r[2] * r[3]])
            .collect();
        Batch::Dense { n, x, y }
    };
    let (train, heldout) = (dense(40, &mut rng), dense(20, &mut rng));
    both_paths(
        &work.model,
        &task,
        &train,
        &heldout,
        crate::Method::Sgd,
        false,
    );

    let lm = ModelSpec::Mlp(MlpSpec {
        embedding: Some(Embedding {
            vocab: 7,
            dim: 3,
            context: 2,
        }),
        widths: vec![6, 10, 7],
        activation: Activation::Relu,
        bias: false,
    });
    let task = Task::NextToken {
        vocab: 7,
        context: 4,
    };
    let tokens = |n: usize, rng: &mut rand_xoshiro::Xoshiro256PlusPlus| {
        let mut t = Vec::new();
        for _ in 0..n {
            let s = rng.random_range(0..7u32);
            t.extend((0..5).map(|i| (s + i * 2) % 7));
        }
        Batch::Tokens {
            n,
            len: 5,
            tokens: t,
        }
    };
    let (train, heldout) = (tokens(20, &mut rng), tokens(10, &mut rng));
    for masked in [false, true] {
        both_paths(&lm, &task, &train, &heldout, crate::Method::AdamW, masked);
    }
}
