//! Lifetime learning: the inner loop of a Lineage run.
//!
//! An organism is born with weights (developed from its genome by
//! `lineage-develop`, or inherited), learns during its lifetime from the
//! data an environment hands it, and is scored on held-out data. This crate
//! owns what happens in between:
//!
//! The crate is laid out by part. The vocabulary every part shares sits
//! at the top:
//!
//! - [`spec`]: the models (MLP and MLP language model, leaky RNN, GRU,
//!   LSTM, causal transformer; the two-layer linear network is an MLP; any
//!   registered family) and the one parameter layout every other part
//!   indexes by name;
//! - [`family`]: the trait every model family implements, and how a
//!   scenario names a registered one;
//! - [`optim`]: SGD with momentum, Adam, AdamW, schedules, clipping;
//! - [`data`]: examples and the lifetime's minibatch indices;
//! - `lifetime`: the one lifetime loop every path runs (birth score,
//!   steps, divergence, curve points, probe sets);
//! - this file: [`Job`] in, [`Outcome`] out, and [`train_population`],
//!   which picks a path ([`path_for`]) and runs a population's lifetimes
//!   on a thread pool.
//!
//! The parts, one folder each, depend on the vocabulary and on another part
//! only where their module doc says they are built on it (a test,
//! `tests/layout.rs`, keeps that rule):
//!
//! - `kernels`: the calls into `gemm`, the AVX2+FMA kernel, AVX2 dispatch
//!   (all of the crate's `unsafe`);
//! - `fast`: the hand-written CPU paths, one organism per core, for MLPs,
//!   leaky RNNs and transformers (built on `kernels`);
//! - [`models`]: every model family as a candle module;
//! - [`autograd`]: any model trained by candle autograd, CPU or CUDA
//!   (built on [`models`]);
//! - [`batched`]: the lifetimes of a whole population of MLPs, leaky
//!   RNNs, GRUs, LSTMs or transformers in lockstep on candle tensors
//!   stacked `[P, ...]`, on any device (the path they take on CUDA);
//! - [`measure`]: a model run on a plugin's inputs for its outputs and
//!   hidden layers (built on [`models`]);
//! - [`jacobian`]: per-example gradients and tangent kernels (built on
//!   [`measure`], [`models`] and the RNN fast path);
//! - [`mod@bench`]: `lineage bench learn`'s workloads.
//!
//! A lifetime is a pure function of its [`Job`]: birth weights, masks,
//! sign constraints, hyper-parameters, data and minibatch indices. Nothing in it draws random
//! numbers, so results do not depend on the thread count.
//!
//! `unsafe` lives in `kernels` only; the crate denies it everywhere else.
#![deny(unsafe_code)]

// The vocabulary every part shares.
pub mod data;
pub mod family;
mod lifetime;
pub mod optim;
pub mod spec;

// The parts: each depends on the vocabulary, and on another part only where
// its module doc says it is built on it (checked by `tests/layout.rs`).
pub mod autograd;
pub mod batched;
mod fast;
pub mod jacobian;
#[allow(unsafe_code)]
mod kernels;
pub mod measure;
pub mod models;

// Services on top of the whole crate.
pub mod bench;

use lineage_env::Batch;
use rayon::prelude::*;

pub use kernels::features as cpu_features;
pub use optim::{Hyper, Method, OptimizerSpec, Schedule};
pub use spec::{Activation, Loss, ModelSpec};

/// Where the general path runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The CPU (the default, and what CI tests).
    #[default]
    Cpu,
    /// The first CUDA device; an error in a build without the `cuda` feature.
    Cuda,
    /// CUDA when this build has it and a device is present, else the CPU.
    Auto,
}

impl DeviceChoice {
    /// Parses a scenario or command-line name.
    pub fn parse(name: &str) -> Option<DeviceChoice> {
        Some(match name {
            "cpu" => DeviceChoice::Cpu,
            "cuda" => DeviceChoice::Cuda,
            "auto" => DeviceChoice::Auto,
            _ => return None,
        })
    }

    /// The candle device this choice resolves to. All code that differs by
    /// device starts here.
    pub fn device(self) -> Result<candle_core::Device, LearnError> {
        match self {
            DeviceChoice::Cpu => Ok(candle_core::Device::Cpu),
            DeviceChoice::Cuda if !cfg!(feature = "cuda") => Err(LearnError::Device(
                "this build of Lineage has no CUDA support: rebuild with `--features cuda` \
                 (needs nvcc), or use device = \"cpu\""
                    .into(),
            )),
            DeviceChoice::Cuda => candle_core::Device::new_cuda(0)
                .map_err(|e| LearnError::Device(format!("cannot open CUDA device 0: {e}"))),
            DeviceChoice::Auto => {
                Ok(candle_core::Device::cuda_if_available(0).unwrap_or(candle_core::Device::Cpu))
            }
        }
    }
}

/// What goes wrong in lifetime learning as a whole (a single organism's
/// divergence is a [`Status`], not an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LearnError {
    /// The requested device is unavailable.
    #[error("device: {0}")]
    Device(String),
    /// candle failed.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// A probe set could not be scored.
    #[error("{0}")]
    Probe(String),
    /// The chosen path cannot train these jobs (this model, or this data).
    #[error("{0}")]
    Unsupported(String),
}

/// How every lifetime of a population is run.
#[derive(Clone, Debug, PartialEq)]
pub struct LifetimeSpec {
    /// Examples per minibatch.
    pub batch: usize,
    /// Record a learning-curve point every this many steps (0: only at
    /// birth and at the end).
    pub eval_every: u32,
    /// Held-out examples scored at intermediate curve points (the last
    /// point always scores all of them).
    pub curve_heldout: usize,
    /// The optimiser.
    pub optimizer: OptimizerSpec,
}

/// One organism's lifetime, ready to run.
#[derive(Debug)]
pub struct Job<'a> {
    /// Birth weights, in [`ModelSpec::params`] order.
    pub params: Vec<Vec<f32>>,
    /// 0/1 masks, one per parameter (`None`: dense).
    pub masks: Vec<Option<Vec<f32>>>,
    /// Sign constraints, one per parameter (`None`: unconstrained): per
    /// weight `+1` (kept >= 0), `-1` (kept <= 0) or `0` (free). After every
    /// step a weight against its sign is set to zero
    /// ([`optim::project_signs`]), as masked weights are.
    pub signs: Vec<Option<Vec<f32>>>,
    /// Learning hyper-parameters.
    pub hyper: Hyper,
    /// What it learns from.
    pub train: &'a Batch,
    /// What it is scored on.
    pub heldout: &'a Batch,
    /// The environment's probe sets, scored at every curve point
    /// ([`Outcome::probes`]).
    pub probes: &'a [lineage_env::ProbeSet],
    /// `hyper.steps x batch` example indices into `train`
    /// ([`data::minibatch_indices`]).
    pub indices: Vec<u32>,
}

/// One point of a learning curve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurvePoint {
    /// Optimiser steps taken.
    pub step: u32,
    /// Mean minibatch loss over the steps since the previous point (at step
    /// 0: the loss on the first minibatch, before any update).
    pub train: f32,
    /// Held-out loss after `step` steps.
    pub heldout: f32,
}

/// How a lifetime ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Every step ran and the final held-out loss is finite.
    Completed,
    /// The loss became NaN or infinite at this step; learning stopped there.
    Diverged {
        /// 0-based step.
        step: u32,
    },
}

/// What a lifetime produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Weights at the end of the lifetime (where it diverged: at the step
    /// it stopped).
    pub params: Vec<Vec<f32>>,
    /// Learning curve: birth, every `eval_every` steps, and the end.
    pub curve: Vec<CurvePoint>,
    /// How it ended.
    pub status: Status,
    /// The probe sets' measures at every curve point, in step order, then
    /// probe set, then metric.
    pub probes: Vec<ProbePoint>,
}

/// What a probe set measures ([`ProbePoint`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeMetric {
    /// Mean cross-entropy of the scored labels.
    Loss,
    /// Accuracy of the argmax over the set's choices (every label without).
    Accuracy,
    /// Accuracy of the argmax over every label (sets with choices only).
    AccuracyAll,
}

impl ProbeMetric {
    /// Its name in records.
    pub fn name(self) -> &'static str {
        match self {
            ProbeMetric::Loss => "loss",
            ProbeMetric::Accuracy => "accuracy",
            ProbeMetric::AccuracyAll => "accuracy_all",
        }
    }
}

/// One probe set's measure at one point of a lifetime.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProbePoint {
    /// Optimiser steps taken.
    pub step: u32,
    /// The probe set (index into [`Job::probes`]).
    pub probe: usize,
    /// What was measured.
    pub metric: ProbeMetric,
    /// Its value.
    pub value: f32,
}

impl Outcome {
    /// Held-out loss at the end of the lifetime (NaN where it diverged).
    pub fn final_heldout(&self) -> f32 {
        match self.status {
            Status::Completed => self.curve.last().map_or(f32::NAN, |p| p.heldout),
            Status::Diverged { .. } => f32::NAN,
        }
    }
}

/// Which implementation trains a population.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Hand-written training on `gemm` for MLPs, leaky RNNs and
    /// transformers (CPU only).
    Fast,
    /// candle autograd, any model, CPU or CUDA.
    General,
    /// Every built-in family: the whole population in lockstep on candle
    /// tensors ([`batched`]), any device.
    Batched,
}

impl Path {
    /// The names a scenario (`lifetime.path`) and the command line
    /// (`--path`) give the paths.
    pub const NAMES: &'static str = "auto, fast, candle or batched";

    /// Parses a scenario or command-line name: `auto` (the path the device
    /// takes, [`path_for`]) is `Some(None)`; `general` is accepted for
    /// `candle`; an unknown name is `None`.
    pub fn parse(name: &str) -> Option<Option<Path>> {
        Some(match name {
            "auto" => None,
            "fast" => Some(Path::Fast),
            "candle" | "general" => Some(Path::General),
            "batched" => Some(Path::Batched),
            _ => return None,
        })
    }

    /// Its name in scenarios, records and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Path::Fast => "fast",
            Path::General => "candle",
            Path::Batched => "batched",
        }
    }

    /// Whether this path can train `model` on `device`: `Err` says why not.
    pub fn supports(self, model: &ModelSpec, device: &candle_core::Device) -> Result<(), String> {
        let kind = model.family().kind().to_owned();
        match self {
            Path::Fast if !device.is_cpu() => Err("the fast path runs on the CPU only".into()),
            Path::Fast => match model {
                ModelSpec::Mlp(_) | ModelSpec::Rnn(_) | ModelSpec::Transformer(_) => Ok(()),
                _ => Err(format!(
                    "the fast path trains mlp, rnn and transformer models, not {kind}"
                )),
            },
            Path::General => Ok(()),
            Path::Batched => match model {
                ModelSpec::Registered(_) => Err(format!(
                    "the batched path trains the built-in families (mlp, rnn, gru, lstm, transformer), not {kind}"
                )),
                _ => Ok(()),
            },
        }
    }
}

/// The path a model takes on a device, the fastest measured there
/// (BENCHMARKS.md): MLPs, leaky RNNs and transformers on the CPU take the
/// fast path, the other models on the CPU run on candle one organism at a
/// time; elsewhere (CUDA) every built-in family takes the batched path,
/// a registered family runs on candle one organism at a time.
pub fn path_for(model: &ModelSpec, device: &candle_core::Device) -> Path {
    match (model, device) {
        (
            ModelSpec::Mlp(_) | ModelSpec::Rnn(_) | ModelSpec::Transformer(_),
            candle_core::Device::Cpu,
        ) => Path::Fast,
        (_, candle_core::Device::Cpu) => Path::General,
        (
            ModelSpec::Mlp(_)
            | ModelSpec::Rnn(_)
            | ModelSpec::Gru(_)
            | ModelSpec::Lstm(_)
            | ModelSpec::Transformer(_),
            _,
        ) => Path::Batched,
        _ => Path::General,
    }
}

/// Runs every job's lifetime on `pool`, one organism per task, and returns
/// the outcomes in job order. `path` forces an implementation (tests compare
/// the two); `None` picks with [`path_for`].
pub fn train_population(
    model: &ModelSpec,
    task: &lineage_env::Task,
    life: &LifetimeSpec,
    device: &candle_core::Device,
    path: Option<Path>,
    jobs: Vec<Job<'_>>,
    pool: &rayon::ThreadPool,
) -> Result<Vec<Outcome>, LearnError> {
    let loss = Loss::of(task);
    let path = path.unwrap_or_else(|| path_for(model, device));
    pool.install(|| match (path, model) {
        (Path::Fast, ModelSpec::Mlp(spec)) => Ok(jobs
            .into_par_iter()
            .with_max_len(1)
            .map(|job| fast::mlp::train(spec, loss, life, job))
            .collect()),
        (Path::Fast, ModelSpec::Rnn(spec)) => Ok(jobs
            .into_par_iter()
            .with_max_len(1)
            .map(|job| fast::rnn::train(spec, life, job))
            .collect()),
        (Path::Fast, ModelSpec::Transformer(spec)) => {
            model.family().check().map_err(LearnError::Unsupported)?;
            Ok(jobs
                .into_par_iter()
                .with_max_len(1)
                .map(|job| fast::transformer::train(spec, life, job))
                .collect())
        }
        // Any other model is refused there.
        (Path::Batched, _) => {
            let budget = batched::memory_budget(device);
            batched::train(model, loss, life, device, jobs, budget)
        }
        _ => {
            if device.is_cpu() {
                jobs.into_par_iter()
                    .with_max_len(1)
                    .map(|job| autograd::train(model, loss, life, device, job))
                    .collect()
            } else {
                // One device: organisms queue on it in order.
                jobs.into_iter()
                    .map(|job| autograd::train(model, loss, life, device, job))
                    .collect()
            }
        }
    })
}
