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

/// Relative tolerance of the hand-written gradients against the exact
/// ones: f32 rounding alone, 1.3e-5 measured on the default models, where
/// candle's own f32 gradients are 6e-6 from the exact ones.
const GRADIENT_TOLERANCE: f32 = 3e-5;

/// The same with the options of Reddy's model: unscaled attention scores
/// and ReLU layers before the readout round more; measured up to 3.3e-5
/// (`head_layers.2.bias` of Reddy's model), where candle's own f32
/// gradients are up to 2.7e-5 from the exact ones.
const OPTIONS_GRADIENT_TOLERANCE: f32 = 1e-4;

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
    compare_at(spec, task, train, heldout, method, tolerance, 0.02)
}

/// [`compare`] at learning rate `lr`.
fn compare_at(
    spec: TransformerSpec,
    task: Task,
    train: &Batch,
    heldout: &Batch,
    method: Method,
    tolerance: f32,
    lr: f32,
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
        lr,
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
/// pass against candle's autograd in f64 from the same weights, within
/// `tolerance` (relative, as [`largest_gap`] measures): checks the
/// backward pass directly, without an optimiser that amplifies rounding.
fn gradients_agree(spec: TransformerSpec, train: &Batch, tolerance: f32) {
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
    // f32 rounding alone (see GRADIENT_TOLERANCE); a wrong term would be 1.
    let (gap, name) = largest_gap(&model, &by_hand, &exact);
    assert!(
        gap < tolerance,
        "the gradients of `{name}` differ from the exact ones by {gap}"
    );
}

/// The hand-written gradient of one minibatch's loss against central
/// finite differences of the fast path's own (f32) loss, at three entries
/// of every parameter: checks the backward pass without another
/// implementation.
fn finite_differences_agree(spec: &TransformerSpec, train: &Batch) {
    let model = ModelSpec::Transformer(spec.clone());
    let (params, _) = birth(&model, 13);
    let ids: Vec<u32> = (0..8).collect();
    let b = ids.len();
    let fast = Transformer {
        spec,
        layout: Layout::of(spec),
    };
    let mut ws = Workspace::new(spec, b, steps_of(train));
    let mut grads: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
    fast.load(&mut ws, &params, train, &ids);
    fast.forward(&mut ws, &params, b, true);
    fast.backward(&mut ws, &params, &mut grads, b);
    let eps = 2e-3f32;
    let mut probe = params.clone();
    for (i, info) in model.params().iter().enumerate() {
        let last = info.len() - 1;
        let largest = grads[i].iter().fold(0.0f32, |m, &g| m.max(g.abs()));
        assert!(largest > 0.0, "`{}` has no gradient", info.name);
        for at in [0, last / 2, last] {
            let base = probe[i][at];
            probe[i][at] = base + eps;
            let up = f64::from(fast.forward(&mut ws, &probe, b, false));
            probe[i][at] = base - eps;
            let down = f64::from(fast.forward(&mut ws, &probe, b, false));
            probe[i][at] = base;
            let fd = (up - down) / (2.0 * f64::from(eps));
            let g = f64::from(grads[i][at]);
            // f32 rounding of the loss over 2 eps: up to 2.8e-5 measured,
            // on gradients up to 1e-2; a wrong term is off by the gradient
            // itself.
            assert!(
                (fd - g).abs() <= 1e-4 + 1e-2 * g.abs(),
                "`{}`[{at}]: backward {g} but finite differences {fd}",
                info.name
            );
        }
    }
}

/// Sequences of 6 dense 3-wide positions; the last position's label is
/// the sign of the first position's first input (the rest ignored), so
/// attention must reach back.
fn recall(n: usize, rng: &mut impl Rng) -> Batch {
    recall_of(n, 3, rng)
}

/// [`recall`] with `dim`-wide positions.
fn recall_of(n: usize, dim: usize, rng: &mut impl Rng) -> Batch {
    let steps = 6;
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
        embed: true,
        positions: true,
        attn_out: true,
        attn_scale: true,
        head: Vec::new(),
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
    gradients_agree(
        dense_spec(true, Activation::Gelu),
        &train,
        GRADIENT_TOLERANCE,
    );
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
    gradients_agree(
        dense_spec(false, Activation::Relu),
        &train,
        GRADIENT_TOLERANCE,
    );
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
        embed: true,
        positions: true,
        attn_out: true,
        attn_scale: true,
        head: Vec::new(),
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

/// The default model of these tests read from 8-wide positions, so that
/// `embed = false` fits it.
fn wide_spec() -> TransformerSpec {
    TransformerSpec {
        input: SequenceInput::Dense { dim: 8 },
        ..dense_spec(true, Activation::Gelu)
    }
}

/// Reddy's model at a small width (see `TransformerSpec`).
fn reddy_spec() -> TransformerSpec {
    TransformerSpec {
        heads: 1,
        d_ff: 0,
        layer_norm: false,
        activation: Activation::Relu,
        embed: false,
        positions: false,
        attn_out: false,
        attn_scale: false,
        head: vec![8, 8, 8],
        ..wide_spec()
    }
}

/// Each new option alone on [`wide_spec`] (LayerNorm, GELU, two heads),
/// then all of them together.
fn option_specs() -> Vec<(String, TransformerSpec)> {
    let mut all = wide_spec().each_option(vec![7, 5]);
    all.push(("Reddy's model".into(), reddy_spec()));
    all
}

#[test]
fn fast_transformer_gradients_match_finite_differences_with_each_option() {
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(12);
    let train = recall_of(16, 8, &mut rng);
    finite_differences_agree(&wide_spec(), &train);
    for (what, spec) in option_specs() {
        eprintln!("{what}");
        finite_differences_agree(&spec, &train);
    }
}

#[test]
fn fast_transformer_matches_candle_with_each_option() {
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(10);
    let (train, heldout) = (recall_of(24, 8, &mut rng), recall_of(10, 8, &mut rng));
    let task = Task::SequenceClassification {
        inputs: 8,
        classes: 2,
        steps: 6,
    };
    for (what, spec) in option_specs() {
        eprintln!("{what}");
        gradients_agree(spec.clone(), &train, OPTIONS_GRADIENT_TOLERANCE);
        // At 0.02 the weights of Reddy's model hardly move in 15 SGD
        // steps (0.003); at 0.1 the others drift apart by f32 rounding
        // (4e-5 relative).
        let sgd_lr = if what == "Reddy's model" { 0.1 } else { 0.02 };
        for (method, tolerance, lr) in [
            (Method::Sgd, TOLERANCE, sgd_lr),
            (Method::AdamW, ADAM_TOLERANCE, 0.02),
        ] {
            compare_at(
                spec.clone(),
                task.clone(),
                &train,
                &heldout,
                method,
                tolerance,
                lr,
            );
        }
    }
}

/// [`recall_of`] scored at every other position (0, 2, 4) and the last,
/// each on the sign of the first position's first input: the ReLU layers
/// before the readout run on scattered rows.
fn recall_scattered(n: usize, dim: usize, rng: &mut impl Rng) -> Batch {
    let Batch::Sequences {
        n,
        steps,
        x,
        mut labels,
    } = recall_of(n, dim, rng)
    else {
        unreachable!("recall makes sequences")
    };
    for (s, seq) in labels.chunks_exact_mut(steps).enumerate() {
        let label = u32::from(x[s * steps * dim] > 0.0);
        for (t, l) in seq.iter_mut().enumerate() {
            if t % 2 == 0 {
                *l = label;
            }
        }
    }
    Batch::Sequences {
        n,
        steps,
        x,
        labels,
    }
}

#[test]
fn fast_transformer_with_head_layers_scores_scattered_rows_and_none() {
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(14);
    let (train, heldout) = (
        recall_scattered(24, 8, &mut rng),
        recall_scattered(10, 8, &mut rng),
    );
    let spec = reddy_spec();
    gradients_agree(spec.clone(), &train, OPTIONS_GRADIENT_TOLERANCE);
    finite_differences_agree(&spec, &train);
    compare_at(
        spec.clone(),
        Task::SequenceClassification {
            inputs: 8,
            classes: 2,
            steps: 6,
        },
        &train,
        &heldout,
        Method::Sgd,
        TOLERANCE,
        0.1,
    );
    // Nothing scored: a loss of 0 and no gradient at all.
    let Batch::Sequences { n, steps, x, .. } = train else {
        unreachable!("recall makes sequences")
    };
    let silent = Batch::Sequences {
        n,
        steps,
        labels: vec![IGNORE; n * steps],
        x,
    };
    let model = ModelSpec::Transformer(spec.clone());
    let (params, _) = birth(&model, 3);
    let fast = Transformer {
        spec: &spec,
        layout: Layout::of(&spec),
    };
    let mut ws = Workspace::new(&spec, 4, steps);
    let mut grads: Vec<Vec<f32>> = params.iter().map(|p| vec![1.0; p.len()]).collect();
    fast.load(&mut ws, &params, &silent, &[0, 1, 2, 3]);
    assert_eq!(fast.forward(&mut ws, &params, 4, true), 0.0);
    fast.backward(&mut ws, &params, &mut grads, 4);
    assert!(grads.iter().flatten().all(|&g| g == 0.0));
}

/// Reddy's model, at the width of his tokens' position slots for 8 pairs
/// (17) plus 15 content dimensions, learns a small in-context learning
/// world on the fast path (and on candle): the held-out loss on the
/// query falls well below chance.
#[test]
fn reddys_transformer_learns_a_small_icl_world() {
    use lineage_env::{Environment, Icl, IclParams, Positions};
    let world = Icl::new(IclParams {
        classes: 16,
        dim: 15,
        labels: 4,
        pairs: 4,
        burstiness: 2,
        positions: Positions::RandomOffset { max_pairs: 8 },
        heldout: 128,
        probe_sequences: 0,
        seed: 4,
        ..IclParams::default()
    })
    .unwrap();
    let task = world.task();
    assert_eq!(
        task,
        Task::SequenceClassification {
            inputs: 32,
            classes: 4,
            steps: 9
        }
    );
    let spec = TransformerSpec {
        input: SequenceInput::Dense { dim: 32 },
        context: 9,
        d_model: 32,
        heads: 1,
        layers: 2,
        d_ff: 0,
        outputs: 4,
        layer_norm: false,
        activation: Activation::Relu,
        embed: false,
        positions: false,
        attn_out: false,
        attn_scale: false,
        head: vec![32, 32, 32],
    };
    let model = ModelSpec::Transformer(spec);
    model.check_task(&task).unwrap();
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(2);
    let life = world.lifetime(&mut rng, 2048).unwrap();
    let steps = 300;
    let batch = 32;
    let indices = crate::data::minibatch_indices(life.train.len(), batch, steps, &mut rng);
    let params = crate::models::tests::birth_weights(&model, 3);
    let n = params.len();
    let spec = LifetimeSpec {
        batch,
        eval_every: 100,
        curve_heldout: 128,
        optimizer: OptimizerSpec {
            method: Method::Adam,
            beta2: 0.999,
            eps: 1e-8,
            clip: None,
            schedule: Schedule::Constant,
        },
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for path in [Path::Fast, Path::General] {
        let job = Job {
            params: params.clone(),
            masks: vec![None; n],
            signs: vec![None; n],
            hyper: Hyper {
                lr: 2e-3,
                momentum: 0.9,
                weight_decay: 0.0,
                steps,
            },
            train: &life.train,
            heldout: &life.heldout,
            probes: &[],
            indices: indices.clone(),
        };
        let out = train_population(
            &model,
            &task,
            &spec,
            &candle_core::Device::Cpu,
            Some(path),
            vec![job],
            &pool,
        )
        .unwrap()
        .remove(0);
        assert_eq!(out.status, Status::Completed);
        let (birth, end) = (out.curve[0].heldout, out.final_heldout());
        eprintln!("{path:?}: {:?}", out.curve);
        assert!(
            end < 0.25 * birth && end < 0.25 * 4f32.ln(),
            "{path:?}: the held-out loss went from {birth} to {end}"
        );
    }
}
