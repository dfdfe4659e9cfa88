//! Tests of `batched`.

use lineage_env::{ProbeSet, Task};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::*;
use crate::Status;
use crate::data::Examples;
use crate::models::tests::birth_weights;
use crate::optim::{Hyper, Method, OptimizerSpec, Schedule};
use crate::spec::Activation;
use crate::spec::Embedding;
use crate::spec::MlpSpec;
use crate::{Path, train_population};

pub(super) fn rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

/// Labelled rows near one-hot class centres.
fn clusters(n: usize, inputs: usize, classes: u32, rng: &mut impl Rng) -> Batch {
    let labels: Vec<u32> = (0..n).map(|_| rng.random_range(0..classes)).collect();
    let x = labels
        .iter()
        .flat_map(|&l| (0..inputs).map(move |i| f32::from(u8::from(i as u32 % classes == l))))
        .collect::<Vec<f32>>()
        .into_iter()
        .map(|v| v + 0.3 * (rng.random::<f32>() - 0.5))
        .collect();
    Batch::Labeled { n, x, labels }
}

/// Rows of 4 inputs with targets `[x0 - x1, x2 x3]`.
fn regression(n: usize, rng: &mut impl Rng) -> Batch {
    let x: Vec<f32> = (0..n * 4).map(|_| rng.random::<f32>() - 0.5).collect();
    let y = x
        .chunks(4)
        .flat_map(|r| [r[0] - r[1], r[2] * r[3]])
        .collect();
    Batch::Dense { n, x, y }
}

/// One organism of a comparison.
#[derive(Clone, Copy)]
pub(super) struct Organism {
    pub(super) hyper: Hyper,
    /// Which of the train batches it learns from.
    pub(super) train: usize,
    pub(super) masked: bool,
    pub(super) signed: bool,
}

pub(super) fn hyper(lr: f32, momentum: f32, weight_decay: f32, steps: u32) -> Hyper {
    Hyper {
        lr,
        momentum,
        weight_decay,
        steps,
    }
}

/// Organism `k`'s job: birth weights, masks and signs from seed `k`
/// (masked weights born zero), its own minibatch indices.
pub(super) fn job<'a>(
    model: &ModelSpec,
    life: &LifetimeSpec,
    k: usize,
    o: Organism,
    train: &'a Batch,
    heldout: &'a Batch,
    probes: &'a [ProbeSet],
) -> Job<'a> {
    let mut r = rng(100 + k as u64);
    let layout = model.params();
    let mut pick = |on: bool, values: [f32; 3]| -> Vec<Option<Vec<f32>>> {
        layout
            .iter()
            .map(|p| {
                (on && p.role.maskable())
                    .then(|| (0..p.len()).map(|_| values[r.random_range(0..3)]).collect())
            })
            .collect()
    };
    let masks = pick(o.masked, [0.0, 1.0, 1.0]);
    let signs = pick(o.signed, [-1.0, 0.0, 1.0]);
    let params = birth_weights(model, k as u64)
        .into_iter()
        .zip(&masks)
        .map(|(w, m)| match m {
            Some(m) => w.iter().zip(m).map(|(a, b)| a * b).collect(),
            None => w,
        })
        .collect();
    let count = Examples::of(train, model).unwrap().count();
    let indices =
        crate::data::minibatch_indices(count, life.batch, o.hyper.steps, &mut rng(k as u64));
    Job {
        params,
        masks,
        signs,
        hyper: o.hyper,
        train,
        heldout,
        probes,
        indices,
    }
}

/// Largest `|a - b| / max(|b|, 1)` over the weights, curve values and
/// probe values of two outcomes (equal infinities, and NaN against
/// NaN, count as equal; any other non-finite pair as infinitely far),
/// after checking that their statuses, curve steps and probe points
/// agree.
pub(super) fn gap(a: &Outcome, b: &Outcome) -> f32 {
    assert_eq!(a.status, b.status);
    let steps = |o: &Outcome| o.curve.iter().map(|p| p.step).collect::<Vec<u32>>();
    assert_eq!(steps(a), steps(b));
    let keys = |o: &Outcome| {
        o.probes
            .iter()
            .map(|p| (p.step, p.probe, p.metric))
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(a), keys(b));
    let mut pairs: Vec<(f32, f32)> = a
        .params
        .iter()
        .flatten()
        .copied()
        .zip(b.params.iter().flatten().copied())
        .collect();
    assert_eq!(pairs.len(), b.params.iter().flatten().count());
    for (x, y) in a.curve.iter().zip(&b.curve) {
        pairs.extend([(x.train, y.train), (x.heldout, y.heldout)]);
    }
    pairs.extend(
        a.probes
            .iter()
            .zip(&b.probes)
            .map(|(x, y)| (x.value, y.value)),
    );
    pairs
        .into_iter()
        .map(|(x, y)| {
            if x == y || (x.is_nan() && y.is_nan()) {
                0.0
            } else if x.is_finite() && y.is_finite() {
                (x - y).abs() / y.abs().max(1.0)
            } else {
                f32::INFINITY
            }
        })
        .fold(0.0, f32::max)
}

/// A population's lifetimes on the fast path (the path the model takes
/// on the CPU: the general path for the GRU and the LSTM) and on the
/// batched path (chunks within `budget`).
pub(super) struct Comparison {
    pub(super) model: ModelSpec,
    pub(super) task: Task,
    pub(super) life: LifetimeSpec,
    pub(super) trains: Vec<Batch>,
    pub(super) heldout: Batch,
    pub(super) probes: Vec<ProbeSet>,
}

impl Comparison {
    pub(super) fn jobs(&self, organisms: &[Organism]) -> Vec<Job<'_>> {
        organisms
            .iter()
            .enumerate()
            .map(|(k, &o)| {
                let train = &self.trains[o.train];
                job(
                    &self.model,
                    &self.life,
                    k,
                    o,
                    train,
                    &self.heldout,
                    &self.probes,
                )
            })
            .collect()
    }

    pub(super) fn fast(&self, organisms: &[Organism]) -> Vec<Outcome> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let jobs = self.jobs(organisms);
        let path = Some(crate::path_for(&self.model, &Device::Cpu));
        train_population(
            &self.model,
            &self.task,
            &self.life,
            &Device::Cpu,
            path,
            jobs,
            &pool,
        )
        .unwrap()
    }

    pub(super) fn batched(&self, organisms: &[Organism], budget: usize) -> Vec<Outcome> {
        let loss = Loss::of(&self.task);
        let jobs = self.jobs(organisms);
        train(&self.model, loss, &self.life, &Device::Cpu, jobs, budget).unwrap()
    }

    /// The largest [`gap`] between the two paths over the population.
    pub(super) fn gap(&self, organisms: &[Organism]) -> f32 {
        let fast = self.fast(organisms);
        let batched = self.batched(organisms, DEFAULT_BUDGET);
        fast.iter()
            .zip(&batched)
            .map(|(f, b)| gap(b, f))
            .fold(0.0, f32::max)
    }
}

pub(super) fn life(method: Method, schedule: Schedule, clip: Option<f32>) -> LifetimeSpec {
    LifetimeSpec {
        batch: 8,
        eval_every: 5,
        curve_heldout: 16,
        optimizer: OptimizerSpec {
            method,
            beta2: 0.99,
            eps: 1e-8,
            clip,
            schedule,
        },
    }
}

/// A mixed population: different learning rates, momenta, weight
/// decays and lifetimes (one of none, one ending between curve
/// points), masks and signs, two train sets.
fn mixed(lr: f32) -> Vec<Organism> {
    let o = |lr_factor: f32, momentum, weight_decay, steps, train, masked, signed| Organism {
        hyper: hyper(lr * lr_factor, momentum, weight_decay, steps),
        train,
        masked,
        signed,
    };
    vec![
        o(1.0, 0.9, 0.01, 20, 0, false, false),
        o(2.0, 0.5, 0.0, 13, 1, true, false),
        o(0.5, 0.0, 0.05, 20, 0, false, true),
        o(1.0, 0.8, 0.01, 0, 1, true, true),
        o(1.5, 0.9, 0.02, 7, 1, true, true),
    ]
}

/// Classification with an MLP 6-16-12-3 (tanh) and a probe set.
fn classification(method: Method, schedule: Schedule, lr: f32) -> f32 {
    let mut r = rng(1);
    let trains = [clusters(40, 6, 3, &mut r), clusters(24, 6, 3, &mut r)];
    let heldout = clusters(30, 6, 3, &mut r);
    let probes = [ProbeSet {
        name: "probe".into(),
        data: std::sync::Arc::new(clusters(10, 6, 3, &mut r)),
        choices: Some(vec![0, 2]),
    }];
    let work = crate::bench::parse_model("mlp:6-16-12-3:tanh").unwrap();
    let comparison = Comparison {
        model: work.model,
        task: work.task,
        life: life(method, schedule, Some(0.3)),
        trains: trains.into(),
        heldout,
        probes: probes.into(),
    };
    comparison.gap(&mixed(lr))
}

const WARMUP_COOLDOWN: Schedule = Schedule::WarmupHoldCooldown {
    warmup: 3,
    cooldown: 5,
};

#[test]
fn sgd_with_momentum_matches_the_fast_path() {
    let gap = classification(Method::Sgd, WARMUP_COOLDOWN, 0.1);
    assert!(gap < 1e-5, "gap {gap}");
}

#[test]
fn adam_matches_the_fast_path() {
    let gap = classification(Method::Adam, WARMUP_COOLDOWN, 0.01);
    assert!(gap < 1e-5, "gap {gap}");
}

#[test]
fn adamw_matches_the_fast_path() {
    let gap = classification(Method::AdamW, Schedule::InverseSqrt { warmup: 4 }, 0.01);
    assert!(gap < 1e-5, "gap {gap}");
}

#[test]
fn mean_squared_regression_matches_the_fast_path() {
    let mut r = rng(2);
    let trains = [regression(40, &mut r), regression(30, &mut r)];
    let heldout = regression(20, &mut r);
    let work = crate::bench::parse_model("mlp:4-8-2:gelu").unwrap();
    let comparison = Comparison {
        model: work.model,
        task: Task::Regression {
            inputs: 4,
            outputs: 2,
        },
        life: life(Method::Sgd, WARMUP_COOLDOWN, Some(0.3)),
        trains: trains.into(),
        heldout,
        probes: Vec::new(),
    };
    let gap = comparison.gap(&mixed(0.1));
    assert!(gap < 1e-5, "gap {gap}");
}

#[test]
fn language_model_matches_the_fast_path() {
    let mut r = rng(3);
    let mut windows = |n: usize| {
        let mut tokens = Vec::new();
        for _ in 0..n {
            let s = r.random_range(0..7u32);
            tokens.extend((0..5).map(|i| (s + i * 2) % 7));
        }
        Batch::Tokens { n, len: 5, tokens }
    };
    let (trains, heldout) = ([windows(20), windows(12)], windows(10));
    let model = ModelSpec::Mlp(MlpSpec {
        embedding: Some(Embedding {
            vocab: 7,
            dim: 3,
            context: 2,
        }),
        widths: vec![6, 10, 7],
        activation: Activation::Relu,
        bias: true,
    });
    let comparison = Comparison {
        model,
        task: Task::NextToken {
            vocab: 7,
            context: 4,
        },
        life: life(Method::AdamW, WARMUP_COOLDOWN, Some(0.3)),
        trains: trains.into(),
        heldout,
        probes: Vec::new(),
    };
    let gap = comparison.gap(&mixed(0.01));
    assert!(gap < 1e-5, "gap {gap}");
}

/// Classification with an MLP 6-16-12-3 (ReLU), no probe sets.
fn plain(method: Method, trains: [Batch; 2], heldout: Batch) -> Comparison {
    let work = crate::bench::parse_model("mlp:6-16-12-3:relu").unwrap();
    Comparison {
        model: work.model,
        task: work.task,
        life: life(method, WARMUP_COOLDOWN, Some(0.3)),
        trains: trains.into(),
        heldout,
        probes: Vec::new(),
    }
}

/// Outcomes bit for bit (NaN equal to NaN): their `Debug` text.
pub(super) fn bits(outcomes: &[Outcome]) -> Vec<String> {
    outcomes.iter().map(|o| format!("{o:?}")).collect()
}

#[test]
fn a_population_split_into_chunks_learns_as_one() {
    let mut r = rng(4);
    let trains = [clusters(40, 6, 3, &mut r), clusters(24, 6, 3, &mut r)];
    let heldout = clusters(30, 6, 3, &mut r);
    let comparison = plain(Method::Adam, trains, heldout);
    let organisms = [mixed(0.01), mixed(0.02)].concat();
    let rows = Rows {
        batch: comparison.life.batch,
        steps: 1,
    };
    let bytes: Vec<usize> = comparison
        .jobs(&organisms)
        .iter()
        .map(|j| {
            let data = values_on_device(j.train) + values_on_device(j.heldout);
            organism_bytes(&comparison.model, rows, data)
        })
        .collect();
    let budget = 2 * bytes.iter().max().unwrap();
    assert!(
        plan_chunks(&bytes, budget).len() >= 4,
        "the population is split"
    );
    let split = comparison.batched(&organisms, budget);
    let whole = comparison.batched(&organisms, usize::MAX);
    assert_eq!(bits(&split), bits(&whole), "chunks change nothing");
    let fast = comparison.fast(&organisms);
    let gap = split
        .iter()
        .zip(&fast)
        .map(|(b, f)| gap(b, f))
        .fold(0.0, f32::max);
    assert!(gap < 1e-5, "gap {gap}");
}

#[test]
fn a_diverging_organism_stops_alone() {
    let mut r = rng(5);
    let trains = [clusters(40, 6, 3, &mut r), clusters(24, 6, 3, &mut r)];
    let heldout = clusters(30, 6, 3, &mut r);
    let mut comparison = plain(Method::Sgd, trains, heldout);
    comparison.life.optimizer.clip = None;
    comparison.life.optimizer.schedule = Schedule::Constant;
    let healthy = mixed(0.1);
    let diverging = |steps| Organism {
        hyper: hyper(1e12, 0.9, 0.0, steps),
        train: 0,
        masked: false,
        signed: false,
    };
    let mut organisms = healthy.clone();
    organisms[1] = diverging(20);
    let fast = comparison.fast(&organisms);
    let batched = comparison.batched(&organisms, DEFAULT_BUDGET);
    let Status::Diverged { step } = fast[1].status else {
        panic!("the organism diverges on the fast path: {:?}", fast[1])
    };
    assert!(step > 0, "it diverges after learning a little");
    assert_eq!(batched[1].status, fast[1].status);
    // Its weights have blown up to 1e12 and beyond (some to infinity),
    // where rounding differences grow with the weights (1.2e-5 was
    // measured): the curve is compared with the fast path's, and the
    // weights with its own lifetime cut at `step` steps below.
    let curve = |o: &Outcome| Outcome {
        params: Vec::new(),
        ..o.clone()
    };
    let gap_diverged = gap(&curve(&batched[1]), &curve(&fast[1]));
    let gap_others = (0..organisms.len())
        .filter(|&o| o != 1)
        .map(|o| gap(&batched[o], &fast[o]))
        .fold(0.0, f32::max);
    assert!(
        gap_diverged < 1e-5 && gap_others < 1e-5,
        "gaps {gap_diverged} {gap_others}"
    );

    let cut = comparison.batched(&[healthy[0], diverging(step)], DEFAULT_BUDGET);
    assert_eq!(
        format!("{:?}", cut[1].params),
        format!("{:?}", batched[1].params),
        "its weights stay as they were when it diverged"
    );
    let without = comparison.batched(&healthy, DEFAULT_BUDGET);
    for o in (0..organisms.len()).filter(|&o| o != 1) {
        assert_eq!(bits(&without[o..=o]), bits(&batched[o..=o]), "organism {o}");
    }
}

#[test]
fn chunks_fit_the_budget() {
    assert_eq!(plan_chunks(&[3, 3, 3, 3, 3], 7), vec![2, 2, 1]);
    assert_eq!(plan_chunks(&[10, 1, 1], 5), vec![1, 2], "at least one each");
    assert_eq!(plan_chunks(&[], 5), Vec::<usize>::new());
    let model = crate::bench::parse_model("mlp:64-128-10").unwrap().model;
    let rows = Rows {
        batch: 64,
        steps: 1,
    };
    // 9,610 parameters, 202 units a row, 1,000 values of data.
    let expected =
        4 * (PARAM_COPIES * 9_610 + (TRAIN_COPIES * 64 + EVAL_COPIES * 256) * 202 + 1_000);
    assert_eq!(organism_bytes(&model, rows, 1_000), expected);
    let per = organism_bytes(&model, rows, 0);
    assert_eq!(
        plan_chunks(&vec![per; 1_000], DEFAULT_BUDGET)[0],
        DEFAULT_BUDGET / per
    );
}

#[test]
fn the_batched_path_refuses_a_registered_family() {
    let task = Task::NextToken {
        vocab: 4,
        context: 3,
    };
    let registration = crate::models::registration("bag").expect("the bag is registered");
    let serde_json::Value::Object(values) = serde_json::json!({"dim": 3}) else {
        panic!("fields are a table");
    };
    let mut fields = crate::family::Fields::new(values);
    let model = ModelSpec::Registered((registration.new)(&mut fields, &task).unwrap());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let life = life(Method::Sgd, Schedule::Constant, None);
    let out = train_population(
        &model,
        &task,
        &life,
        &Device::Cpu,
        Some(Path::Batched),
        Vec::new(),
        &pool,
    );
    assert!(matches!(out, Err(LearnError::Unsupported(_))), "{out:?}");
    let mlp = crate::bench::parse_model("mlp:4-4-2").unwrap().model;
    assert_eq!(crate::path_for(&mlp, &Device::Cpu), Path::Fast);
}

/// A chunk larger than the device's free memory is refused before
/// anything runs, saying what it needs and what is free; without a figure
/// (the CPU, a build without CUDA) nothing is refused, and the chunks
/// never depend on the figure.
#[test]
fn a_chunk_larger_than_the_free_device_memory_is_refused() {
    let mib = 1usize << 20;
    assert!(super::fits(&[3 * mib, 5 * mib], None).is_ok());
    assert!(super::fits(&[3 * mib, 5 * mib], Some(5 * mib)).is_ok());
    assert!(super::fits(&[], Some(0)).is_ok());
    let err = super::fits(&[3 * mib, 5 * mib], Some(4 * mib))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("5.0 MiB") && err.contains("4.0 MiB free"),
        "{err}"
    );
    assert_eq!(super::free_memory(&Device::Cpu), None);
}
