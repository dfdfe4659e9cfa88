//! `lineage bench learn`: how fast a population trains, so users can size
//! their runs, and the workloads the peer comparison in
//! `benches/learn_vs_peers.sh` runs.
//!
//! Model strings:
//! - `mlp:64-128-10` (ReLU, biases; add `:gelu`, `:tanh` or `:linear`, and
//!   `:nobias`);
//! - `rnn:3-64-3:t8` (ReLU RNN, 3 inputs, 64 units, 3 classes, 8 steps);
//! - `gru:3-64-3:t8`, `lstm:3-64-3:t8`;
//! - `transformer:49-48-32:l2:h4:ff96:t17` (dense 49-wide inputs, d_model
//!   48, 32 classes, 2 layers, 4 heads, MLP width 96, 17 positions;
//!   pre-LayerNorm and GELU, or `:noln` and `:relu` (any activation); `:last` scores
//!   the last position only, as the ICL world does). `:ff0` makes
//!   attention-only blocks, `:noembed` drops the input projection (the
//!   input width must be d_model), `:nopos` the position table, `:noout`
//!   the attention output projection, `:noscale` the scores' 1/sqrt(head
//!   width), and `:head128-128` puts ReLU layers of those widths before
//!   the readout. Reddy's model on 128-wide ICL tokens:
//!   `transformer:128-128-32:l2:h1:ff0:t17:noln:noembed:nopos:noout:noscale:head128-128-128:last`.
//!
//! Sequence models are scored at every step. Data are Gaussian inputs with
//! uniform random labels; weights start at std `1/sqrt(fan_in)`.
//!
//! FLOPs per organism-step count `2 m n k` for every matrix product of the
//! forward pass, times 3 for forward and backward (the convention the peer
//! scripts use too), whatever shortcuts an implementation takes.

use std::time::Instant;

use lineage_env::{Batch, Task};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use crate::spec::{
    Activation, GruSpec, LstmSpec, MlpSpec, ModelSpec, RnnSpec, Role, SequenceInput,
    TransformerSpec,
};
use crate::{Hyper, Job, LearnError, LifetimeSpec, Method, OptimizerSpec, Path, Schedule};

/// A benchmark workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// The model.
    pub model: ModelSpec,
    /// Its task.
    pub task: Task,
    /// Steps per sequence (1 for an MLP).
    pub seq: usize,
    /// Only each sequence's last position is scored (`:last`).
    pub last_only: bool,
}

/// Parses a model string (see the module docs).
pub fn parse_model(text: &str) -> Result<Workload, String> {
    let bad = |why: &str| format!("model `{text}`: {why}");
    let mut parts = text.split(':');
    let kind = parts.next().unwrap_or("");
    let widths: Vec<usize> = parts
        .next()
        .ok_or_else(|| bad("expected KIND:WIDTHS, e.g. mlp:64-128-10"))?
        .split('-')
        .map(|w| w.parse::<usize>().ok().filter(|&w| w > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| bad("widths must be positive integers separated by '-'"))?;
    let (mut activation, mut bias, mut no_ln, mut last_only) = (None, true, false, false);
    let (mut t, mut layers, mut heads, mut ff) = (None, 2, 4, None);
    let (mut embed, mut positions, mut attn_out, mut attn_scale) = (true, true, true, true);
    let mut head: Vec<usize> = Vec::new();
    let mut transformer_only = false;
    for opt in parts {
        let num = |prefix: &str| {
            opt.strip_prefix(prefix)
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n > 0)
        };
        if let Some(a) = Activation::parse(opt) {
            activation = Some(a);
        } else if opt == "noln" {
            no_ln = true;
        } else if opt == "last" {
            last_only = true;
        } else if opt == "nobias" {
            bias = false;
        } else if let Some(n) = num("t") {
            t = Some(n);
        } else if let Some(n) = num("l") {
            layers = n;
        } else if let Some(n) = num("h") {
            heads = n;
        } else if let Some(n) = opt.strip_prefix("ff").and_then(|n| n.parse::<usize>().ok()) {
            ff = Some(n);
        } else if let Some(widths) = opt.strip_prefix("head") {
            head = widths
                .split('-')
                .map(|w| w.parse::<usize>().ok().filter(|&w| w > 0))
                .collect::<Option<_>>()
                .ok_or_else(|| bad("`head` widths must be positive integers separated by '-'"))?;
            transformer_only = true;
        } else if let Some(flag) = match opt {
            "noembed" => Some(&mut embed),
            "nopos" => Some(&mut positions),
            "noout" => Some(&mut attn_out),
            "noscale" => Some(&mut attn_scale),
            _ => None,
        } {
            *flag = false;
            transformer_only = true;
        } else {
            return Err(bad(&format!("unknown option `{opt}`")));
        }
    }
    let three = |w: &[usize]| -> Result<(usize, usize, usize), String> {
        match *w {
            [a, b, c] => Ok((a, b, c)),
            _ => Err(bad("expected IN-HIDDEN-OUT")),
        }
    };
    let steps = t.unwrap_or(8);
    let transformer_activation = activation.unwrap_or(Activation::Gelu);
    let activation = activation.unwrap_or(Activation::Relu);
    if (no_ln || transformer_only) && kind != "transformer" {
        return Err(bad(
            "`noln`, `noembed`, `nopos`, `noout`, `noscale` and `head` apply to transformers only",
        ));
    }
    if last_only && kind == "mlp" {
        return Err(bad("`last` applies to sequence models only"));
    }
    Ok(match kind {
        "mlp" => {
            if widths.len() < 2 {
                return Err(bad("an MLP needs at least an input and an output width"));
            }
            Workload {
                task: Task::Classification {
                    inputs: widths[0],
                    classes: *widths.last().unwrap_or(&1),
                },
                model: ModelSpec::Mlp(MlpSpec {
                    embedding: None,
                    widths,
                    activation,
                    bias,
                }),
                seq: 1,
                last_only: false,
            }
        }
        "rnn" | "gru" | "lstm" => {
            let (i, h, o) = three(&widths)?;
            let input = SequenceInput::Dense { dim: i };
            Workload {
                model: match kind {
                    "rnn" => ModelSpec::Rnn(RnnSpec {
                        input,
                        hidden: h,
                        outputs: o,
                        alpha: 1.0,
                        activation,
                        bias,
                    }),
                    "gru" => ModelSpec::Gru(GruSpec {
                        input,
                        hidden: h,
                        outputs: o,
                    }),
                    _ => ModelSpec::Lstm(LstmSpec {
                        input,
                        hidden: h,
                        outputs: o,
                    }),
                },
                task: Task::SequenceClassification {
                    inputs: i,
                    classes: o,
                    steps,
                },
                seq: steps,
                last_only,
            }
        }
        "transformer" => {
            let (i, d, o) = three(&widths)?;
            if d % heads != 0 {
                return Err(bad(&format!("{heads} heads do not divide d_model {d}")));
            }
            if !embed && i != d {
                return Err(bad(&format!(
                    "without an input projection (`noembed`) the input width {i} must be d_model {d}"
                )));
            }
            Workload {
                model: ModelSpec::Transformer(TransformerSpec {
                    input: SequenceInput::Dense { dim: i },
                    context: steps,
                    d_model: d,
                    heads,
                    layers,
                    d_ff: ff.unwrap_or(2 * d),
                    outputs: o,
                    layer_norm: !no_ln,
                    activation: transformer_activation,
                    embed,
                    positions,
                    attn_out,
                    attn_scale,
                    head,
                }),
                task: Task::SequenceClassification {
                    inputs: i,
                    classes: o,
                    steps,
                },
                seq: steps,
                last_only,
            }
        }
        _ => return Err(bad("the kind must be mlp, rnn, gru, lstm or transformer")),
    })
}

impl Workload {
    /// Forward-and-backward FLOPs of one organism-step at `batch`.
    pub fn flops_per_step(&self, batch: usize) -> f64 {
        let b = batch as f64;
        let forward = match &self.model {
            ModelSpec::Mlp(m) => m
                .widths
                .windows(2)
                .map(|w| 2.0 * b * (w[0] * w[1]) as f64)
                .sum(),
            ModelSpec::Rnn(r) => {
                let (i, h, o) = (r.input.width() as f64, r.hidden as f64, r.outputs as f64);
                self.seq as f64 * 2.0 * b * (i * h + h * h + h * o)
            }
            ModelSpec::Gru(g) => {
                let (i, h, o) = (g.input.width() as f64, g.hidden as f64, g.outputs as f64);
                self.seq as f64 * 2.0 * b * (3.0 * i * h + 3.0 * h * h + h * o)
            }
            ModelSpec::Lstm(l) => {
                let (i, h, o) = (l.input.width() as f64, l.hidden as f64, l.outputs as f64);
                self.seq as f64 * 2.0 * b * (4.0 * i * h + 4.0 * h * h + h * o)
            }
            ModelSpec::Transformer(t) => {
                let (i, d, f, o, s) = (
                    t.input.width() as f64,
                    t.d_model as f64,
                    t.d_ff as f64,
                    t.outputs as f64,
                    self.seq as f64,
                );
                let out = if t.attn_out { d * d } else { 0.0 };
                let per_layer = 3.0 * d * d + out + 2.0 * d * f + 2.0 * s * d;
                let embed = if t.embed { i * d } else { 0.0 };
                let (head, _) = t.head.iter().fold((0.0, d), |(sum, from), &w| {
                    let w = w as f64;
                    (sum + from * w, w)
                });
                let last = t.readout_width() as f64;
                2.0 * b * s * (embed + t.layers as f64 * per_layer + head + last * o)
            }
            // Roughly one multiply-add per weight per step.
            ModelSpec::Registered(_) => {
                2.0 * b * self.seq as f64 * self.model.parameter_count() as f64
            }
        };
        3.0 * forward
    }

    /// `n` random examples for this workload.
    pub fn data(&self, n: usize, rng: &mut impl Rng) -> Batch {
        let normal = |rng: &mut dyn rand::RngCore, k: usize| -> Vec<f32> {
            (0..k).map(|_| StandardNormal.sample(rng)).collect()
        };
        match self.task {
            Task::Classification { inputs, classes } => Batch::Labeled {
                n,
                x: normal(rng, n * inputs),
                labels: (0..n)
                    .map(|_| rng.random_range(0..classes as u32))
                    .collect(),
            },
            Task::SequenceClassification {
                inputs,
                classes,
                steps,
            } => Batch::Sequences {
                n,
                steps,
                x: normal(rng, n * steps * inputs),
                labels: (0..n * steps)
                    .map(|k| {
                        let label = rng.random_range(0..classes as u32);
                        if self.last_only && (k + 1) % steps != 0 {
                            lineage_env::IGNORE
                        } else {
                            label
                        }
                    })
                    .collect(),
            },
            _ => unreachable!("bench workloads are classification tasks"),
        }
    }

    /// Birth weights: std `1/sqrt(fan_in)` for matrices, N(0, 1) for
    /// embeddings, zero biases, unit gains.
    pub fn init(&self, rng: &mut impl Rng) -> Vec<Vec<f32>> {
        self.model
            .params()
            .iter()
            .map(|p| {
                let scale = match p.role {
                    Role::Matrix { fan_in } => 1.0 / (fan_in as f32).sqrt(),
                    Role::Embedding => 1.0,
                    Role::Bias => return vec![0.0; p.len()],
                    Role::Gain => return vec![1.0; p.len()],
                };
                (0..p.len())
                    .map(|_| {
                        let x: f32 = StandardNormal.sample(rng);
                        scale * x
                    })
                    .collect()
            })
            .collect()
    }
}

/// What a benchmark measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    /// Which path trained the population.
    pub path: Path,
    /// Wall-clock seconds of the timed lifetimes.
    pub seconds: f64,
    /// Population x steps / seconds.
    pub organism_steps_per_s: f64,
    /// Arithmetic rate by the FLOP convention of the module docs.
    pub gflops: f64,
    /// Mean final training loss (a sanity check that learning happened).
    pub final_train_loss: f64,
}

/// Trains `population` organisms for `steps` steps at `batch` on `threads`
/// threads, after an untimed warm-up, and measures the rate; `path`
/// forces a training path (`None`: the one the device takes, `path_for`).
#[allow(clippy::too_many_arguments)]
pub fn run(
    work: &Workload,
    method: Method,
    batch: usize,
    population: usize,
    steps: u32,
    threads: usize,
    device: &candle_core::Device,
    path: Option<Path>,
) -> Result<Measurement, LearnError> {
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(0x6c69_6e65);
    let data: Vec<Batch> = (0..population)
        .map(|_| work.data(batch * 4, &mut rng))
        .collect();
    let heldout = work.data(batch, &mut rng);
    let births: Vec<Vec<Vec<f32>>> = (0..population).map(|_| work.init(&mut rng)).collect();
    let (lr, momentum, weight_decay) = match method {
        Method::Sgd => (0.01, 0.9, 0.0),
        Method::Adam | Method::AdamW => (1e-3, 0.9, 0.01),
    };
    let life = LifetimeSpec {
        batch,
        eval_every: 0,
        curve_heldout: batch,
        optimizer: OptimizerSpec {
            method,
            beta2: 0.999,
            eps: 1e-8,
            clip: None,
            schedule: Schedule::Constant,
        },
    };
    let masks = vec![None; work.model.params().len()];
    let jobs = |steps: u32| -> Vec<Job<'_>> {
        births
            .iter()
            .zip(&data)
            .map(|(birth, train)| Job {
                params: birth.clone(),
                masks: masks.clone(),
                signs: vec![None; masks.len()],
                hyper: Hyper {
                    lr,
                    momentum,
                    weight_decay,
                    steps,
                },
                train,
                heldout: &heldout,
                probes: &[],
                indices: (0..steps as usize * batch)
                    .map(|i| (i % (batch * 4)) as u32)
                    .collect(),
            })
            .collect()
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| LearnError::Device(format!("cannot start {threads} threads: {e}")))?;
    let path = path.unwrap_or_else(|| crate::path_for(&work.model, device));
    crate::train_population(
        &work.model,
        &work.task,
        &life,
        device,
        Some(path),
        jobs(steps.min(5)),
        &pool,
    )?;
    let start = Instant::now();
    let outcomes = crate::train_population(
        &work.model,
        &work.task,
        &life,
        device,
        Some(path),
        jobs(steps),
        &pool,
    )?;
    let seconds = start.elapsed().as_secs_f64();
    let organism_steps = population as f64 * f64::from(steps);
    let final_train_loss = outcomes
        .iter()
        .map(|o| f64::from(o.curve.last().map_or(f32::NAN, |p| p.train)))
        .sum::<f64>()
        / population as f64;
    Ok(Measurement {
        path,
        seconds,
        organism_steps_per_s: organism_steps / seconds,
        gflops: organism_steps * work.flops_per_step(batch) / seconds / 1e9,
        final_train_loss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_strings_parse_and_count_flops() {
        let w = parse_model("mlp:64-128-10").unwrap();
        // 3 x 2 x 64 x (64 x 128 + 128 x 10): the 3.6 MFLOP of peers.md.
        assert_eq!(w.flops_per_step(64), 3.0 * 2.0 * 64.0 * 9472.0);
        let t = parse_model("transformer:49-48-32:l2:h4:ff96:t17").unwrap();
        let params = t.model.parameter_count();
        assert!((38_000..46_000).contains(&params), "{params}");
        assert!(parse_model("rnn:3-64-3:t8").is_ok());
        let l = parse_model("lstm:3-64-3:t8").unwrap();
        assert!(matches!(l.model, ModelSpec::Lstm(_)), "{l:?}");
        // Four gates: 8 steps x 3 x 2 x (4 x 3 x 64 + 4 x 64 x 64 + 64 x 3).
        assert_eq!(l.flops_per_step(1), 8.0 * 3.0 * 2.0 * 17344.0);
        assert_eq!(l.model.parameter_count(), 768 + 16384 + 2 * 256 + 192 + 3);
        // Reddy's model: 2 x Q/K/V 128 x 128, 3 ReLU layers 128 x 128 with
        // biases, a readout 32 x 128.
        let reddy = parse_model(
            "transformer:128-128-32:l2:h1:ff0:t17:noln:noembed:nopos:noout:noscale:head128-128-128:last",
        )
        .unwrap();
        let ModelSpec::Transformer(spec) = &reddy.model else {
            panic!("not a transformer: {reddy:?}");
        };
        assert_eq!(
            (
                spec.d_ff,
                spec.embed,
                spec.positions,
                spec.attn_out,
                spec.attn_scale
            ),
            (0, false, false, false, false)
        );
        assert_eq!(spec.head, [128, 128, 128]);
        assert_eq!(
            reddy.model.parameter_count(),
            2 * 3 * 128 * 128 + 3 * (128 * 128 + 128) + 32 * 128
        );
        // Per position: 2 layers of Q/K/V and 2 x 17 x 128 for the scores
        // and the weighted values, the 3 layers, the readout.
        let per_position = 2 * (3 * 128 * 128 + 2 * 17 * 128) + 3 * 128 * 128 + 128 * 32;
        assert_eq!(
            reddy.flops_per_step(1),
            3.0 * 2.0 * 17.0 * per_position as f64
        );
        // The default transformer still counts its projections and MLPs.
        let per_position = 49 * 48 + 2 * (4 * 48 * 48 + 2 * 48 * 96 + 2 * 17 * 48) + 48 * 32;
        assert_eq!(t.flops_per_step(1), 3.0 * 2.0 * 17.0 * per_position as f64);
        for bad in [
            "mlp",
            "mlp:64-x",
            "rnn:3-64",
            "transformer:49-50-32:h4",
            "transformer:49-48-32:noembed",
            "transformer:48-48-32:head8-0",
            "rnn:3-64-3:head8",
            "cnn:3-3",
            "mlp:3-3:wat",
        ] {
            assert!(parse_model(bad).is_err(), "{bad}");
        }
    }
}
