//! Tests of `transformer`.

use lineage_env::{IGNORE, Task};
use rand::{Rng, SeedableRng};

use super::*;
use crate::Hyper;
use crate::spec::{Activation, Role};
use crate::{Method, OptimizerSpec, Path, Schedule, Status, train_population};

/// Relative tolerance on SGD lifetimes (weights and held-out losses).
const TOLERANCE: f32 = 1e-5;

/// Relative tolerance on Adam and AdamW lifetimes: Adam divides by
/// sqrt(v), so where a gradient is near zero, f32 summation-order
/// differences (the gradients agree with the exact ones within 1.3e-5,
/// `gradients_agree`) become differences of a step's size; measured up
/// to 4e-5 after 15 steps, as on the RNN path.
const ADAM_TOLERANCE: f32 = 5e-5;

/// Random birth weights for `model` (gains near 1) and masks covering
/// 30% of its matrices, the masked weights zero.
fn birth(model: &ModelSpec, seed: u64) -> (Vec<Vec<f32>>, Vec<Option<Vec<f32>>>) {
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    let infos = model.params();
    let masks: Vec<Option<Vec<f32>>> = infos
        .iter()
        .map(|p| {
            p.role.maskable().then(|| {
                (0..p.len())
                    .map(|_| f32::from(u8::from(rng.random_bool(0.7))))
                    .collect()
            })
        })
        .collect();
    let params = infos
        .iter()
        .zip(&masks)
        .map(|(p, m)| {
            let base = if p.role == Role::Gain { 1.0 } else { 0.0 };
            let w: Vec<f32> = (0..p.len())
                .map(|_| base + (rng.random::<f32>() - 0.5) * 0.6)
                .collect();
            match m {
                Some(m) => w.iter().zip(m).map(|(a, b)| a * b).collect(),
                None => w,
            }
        })
        .collect();
    (params, masks)
}

/// One lifetime of `steps` steps at batch 4 on the fast and the
/// general path.
#[allow(clippy::too_many_arguments)]
fn both_paths(
    model: &ModelSpec,
    task: &Task,
    train: &Batch,
    heldout: &Batch,
    optimizer: OptimizerSpec,
    hyper: Hyper,
    params: &[Vec<f32>],
    masks: &[Option<Vec<f32>>],
) -> (Outcome, Outcome) {
    let life = LifetimeSpec {
        batch: 4,
        eval_every: 5,
        curve_heldout: 8,
        optimizer,
    };
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(9);
    let indices = crate::data::minibatch_indices(train.len(), 4, hyper.steps, &mut rng);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let run = |path| {
        let job = Job {
            params: params.to_vec(),
            masks: masks.to_vec(),
            signs: vec![None; params.len()],
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
    assert_eq!(
        (fast.status, general.status),
        (Status::Completed, Status::Completed)
    );
    (fast, general)
}

/// The largest difference between `a` and `b`, per parameter, relative
/// to max(|b|, 1% of the largest |b|), with the parameter's name.
fn largest_gap(model: &ModelSpec, a: &[Vec<f32>], b: &[Vec<f32>]) -> (f32, String) {
    let scale = b.iter().flatten().fold(0.0f32, |m, &x| m.max(x.abs()));
    let mut worst = (0.0f32, String::new());
    for ((a, b), info) in a.iter().zip(b).zip(model.params()) {
        let gap = a
            .iter()
            .zip(b)
            .map(|(&a, &b)| (a - b).abs() / b.abs().max(1e-2 * scale))
            .fold(0.0f32, f32::max);
        if gap > worst.0 {
            worst = (gap, info.name);
        }
    }
    worst
}

/// Trains one random organism on both paths for 15 steps and compares
/// every weight and every curve point within `tolerance`; checks that
/// masked weights stayed zero and that the weights moved.
fn compare(
    spec: TransformerSpec,
    task: Task,
    train: &Batch,
    heldout: &Batch,
    method: Method,
    tolerance: f32,
) -> Outcome {
    let model = ModelSpec::Transformer(spec);
    let (params, masks) = birth(&model, 5);
    let optimizer = OptimizerSpec {
        method,
        beta2: 0.99,
        eps: 1e-8,
        clip: Some(2.0),
        schedule: Schedule::InverseSqrt { warmup: 3 },
    };
    let hyper = Hyper {
        lr: 0.02,
        momentum: 0.9,
        weight_decay: 0.01,
        steps: 15,
    };
    let (fast, general) = both_paths(
        &model, &task, train, heldout, optimizer, hyper, &params, &masks,
    );
    let (gap, name) = largest_gap(&model, &fast.params, &general.params);
    assert!(
        gap < tolerance,
        "{method:?}: `{name}` differs by {gap} (relative)"
    );
    for (w, (m, info)) in fast.params.iter().zip(masks.iter().zip(model.params())) {
        if let Some(m) = m {
            assert!(
                w.iter().zip(m).all(|(&w, &m)| m != 0.0 || w == 0.0),
                "a masked weight of `{}` moved",
                info.name
            );
        }
    }
    for (f, g) in fast.curve.iter().zip(&general.curve) {
        assert!(
            (f.heldout - g.heldout).abs() < tolerance * g.heldout.abs().max(1.0),
            "{f:?} vs {g:?}"
        );
    }
    let moved = fast
        .params
        .iter()
        .flatten()
        .zip(params.iter().flatten())
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(moved > 1e-2, "the weights hardly moved ({moved})");
    fast
}

/// The gradient of one minibatch's loss by the hand-written backward
/// pass against candle's autograd in f64 from the same weights: checks
/// the backward pass directly, without an optimiser that amplifies
/// rounding.
fn gradients_agree(spec: TransformerSpec, train: &Batch) {
    let model = ModelSpec::Transformer(spec.clone());
    let (params, _) = birth(&model, 11);
    let ids: Vec<u32> = (0..8).collect();

    let fast = Transformer {
        spec: &spec,
        layout: Layout::of(&spec),
    };
    let mut ws = Workspace::new(&spec, ids.len(), steps_of(train));
    let mut by_hand: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
    fast.load(&mut ws, &params, train, &ids);
    let loss = fast.forward(&mut ws, &params, ids.len(), true);
    fast.backward(&mut ws, &params, &mut by_hand, ids.len());

    let autograd = |dtype| -> Vec<Vec<f32>> {
        let device = candle_core::Device::Cpu;
        let layout = model.params();
        let varmap = candle_nn::VarMap::new();
        let mut vars = Vec::new();
        for (info, values) in layout.iter().zip(&params) {
            let t = candle_core::Tensor::from_slice(values, info.shape.as_slice(), &device)
                .and_then(|t| t.to_dtype(dtype))
                .unwrap();
            let var = candle_core::Var::from_tensor(&t).unwrap();
            varmap
                .data()
                .lock()
                .unwrap()
                .insert(info.name.clone(), var.clone());
            vars.push(var);
        }
        let net = crate::models::Network::new(
            &model,
            candle_nn::VarBuilder::from_varmap(&varmap, dtype, &device),
        )
        .unwrap();
        let ex = crate::data::Examples::of(train, &model).unwrap();
        let (input, target) = crate::models::gather(train, ex, &ids, &device).unwrap();
        let out = net.forward(&input).unwrap();
        let l = crate::models::loss(crate::Loss::CrossEntropy, &out, &target).unwrap();
        let value = l
            .to_dtype(candle_core::DType::F32)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((value - loss).abs() < 1e-5 * loss.abs());
        let store = l.backward().unwrap();
        vars.iter()
            .map(|v| {
                store
                    .get(v.as_tensor())
                    .unwrap()
                    .flatten_all()
                    .and_then(|t| t.to_dtype(candle_core::DType::F32))
                    .and_then(|t| t.to_vec1())
                    .unwrap()
            })
            .collect()
    };
    let exact = autograd(candle_core::DType::F64);
    for (g, info) in exact.iter().zip(model.params()) {
        assert!(
            g.iter().any(|&v| v != 0.0),
            "`{}` has no gradient",
            info.name
        );
    }
    // f32 rounding alone: 1.3e-5 measured here, where candle's own f32
    // gradients are 6e-6 from the exact ones; a wrong term would be 1.
    let (gap, name) = largest_gap(&model, &by_hand, &exact);
    assert!(
        gap < 3e-5,
        "the gradients of `{name}` differ from the exact ones by {gap}"
    );
}

/// Sequences of 6 dense 3-wide positions; the last position's label is
/// the sign of the first position's first input (the rest ignored), so
/// attention must reach back.
fn recall(n: usize, rng: &mut impl Rng) -> Batch {
    let (steps, dim) = (6, 3);
    let x: Vec<f32> = (0..n * steps * dim)
        .map(|_| rng.random::<f32>() - 0.5)
        .collect();
    let labels = (0..n)
        .flat_map(|s| {
            let first = x[s * steps * dim];
            (0..steps).map(move |t| {
                if t + 1 < steps {
                    IGNORE
                } else {
                    u32::from(first > 0.0)
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
}

fn dense_spec(layer_norm: bool, activation: Activation) -> TransformerSpec {
    TransformerSpec {
        input: SequenceInput::Dense { dim: 3 },
        context: 6,
        d_model: 8,
        heads: 2,
        layers: 2,
        d_ff: 12,
        outputs: 2,
        layer_norm,
        activation,
    }
}

#[test]
fn fast_transformer_matches_candle_pre_layer_norm_gelu() {
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(6);
    let (train, heldout) = (recall(24, &mut rng), recall(10, &mut rng));
    let task = Task::SequenceClassification {
        inputs: 3,
        classes: 2,
        steps: 6,
    };
    gradients_agree(dense_spec(true, Activation::Gelu), &train);
    for (method, tolerance) in [
        (Method::Sgd, TOLERANCE),
        (Method::Adam, ADAM_TOLERANCE),
        (Method::AdamW, ADAM_TOLERANCE),
    ] {
        compare(
            dense_spec(true, Activation::Gelu),
            task.clone(),
            &train,
            &heldout,
            method,
            tolerance,
        );
    }
}

#[test]
fn fast_transformer_matches_candle_without_layer_norm_relu() {
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(8);
    let (train, heldout) = (recall(24, &mut rng), recall(10, &mut rng));
    let task = Task::SequenceClassification {
        inputs: 3,
        classes: 2,
        steps: 6,
    };
    gradients_agree(dense_spec(false, Activation::Relu), &train);
    compare(
        dense_spec(false, Activation::Relu),
        task.clone(),
        &train,
        &heldout,
        Method::Sgd,
        TOLERANCE,
    );
    compare(
        dense_spec(false, Activation::Relu),
        task,
        &train,
        &heldout,
        Method::AdamW,
        ADAM_TOLERANCE,
    );
}

#[test]
fn fast_transformer_matches_candle_on_tokens() {
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
    let spec = TransformerSpec {
        input: SequenceInput::Tokens { vocab: 6 },
        context: 5,
        d_model: 8,
        heads: 4,
        layers: 1,
        d_ff: 16,
        outputs: 6,
        layer_norm: true,
        activation: Activation::Gelu,
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
        ADAM_TOLERANCE,
    );
    assert!(
        fast.final_heldout() < 0.75 * fast.curve[0].heldout,
        "{:?}",
        fast.curve
    );
}
