//! The vocabulary of a call into a plugin, shared by the in-process path
//! ([`crate::instance`]), the worker process and the engine side of
//! isolation ([`crate::isolate`]): what a caller serves ([`Services`]) and
//! what a plugin's `evaluate` returned ([`Outcome`]).

use std::borrow::Cow;

use lineage_env::Batch;
use lineage_evo::Genome;
use lineage_plugin::abi::*;

/// Weights at birth or after learning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// After development, before learning.
    Birth,
    /// At the end of the lifetime.
    Learned,
}

/// A tensor a service hands out: borrowed from the host's state, or
/// computed for the call.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor<'a> {
    /// Row-major values.
    pub data: Cow<'a, [f32]>,
    /// Extents (at most [`LN_MAX_RANK`]).
    pub shape: Vec<usize>,
}

/// What a plugin asks the host to run an organism's model on.
#[derive(Clone, Copy, Debug)]
pub struct RunRequest<'a> {
    /// Birth or learned weights.
    pub stage: Stage,
    /// Outputs, a hidden layer, or gradients.
    pub what: RunWhat<'a>,
    /// Examples.
    pub n: usize,
    /// Values per example.
    pub len: usize,
    /// Real inputs `[n, len]`, or tokens.
    pub input: RunInput<'a>,
    /// Gradient only: output weights (the outputs' shape); `None` is all
    /// ones.
    pub cotangent: Option<&'a [f32]>,
}

/// What to return from a model run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunWhat<'a> {
    /// The outputs.
    Outputs,
    /// Activations of a named layer.
    Hidden(&'a str),
    /// Per-example gradients with respect to a named weight.
    Gradient(&'a str),
    /// The Gram matrix of those gradients (`*`: every parameter).
    Kernel(&'a str),
}

/// A model run's inputs.
#[derive(Clone, Copy, Debug)]
pub enum RunInput<'a> {
    /// Real values.
    Real(&'a [f32]),
    /// Token ids.
    Tokens(&'a [u32]),
}

/// An organism's learning curve as a service hands it out.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve<'a> {
    /// The points.
    pub points: Cow<'a, [LnCurvePoint]>,
    /// [`LN_LIFE_NONE`], [`LN_LIFE_COMPLETED`] or [`LN_LIFE_DIVERGED`].
    pub status: u32,
    /// The step where it diverged.
    pub diverged_at: u32,
}

/// What the host offers plugins about one batch of organisms (indices
/// `0..n` in batch order). Errors are messages for the plugin; every
/// default says the service is not available in this run.
pub trait Services: Sync {
    /// Organism `organism`'s genome.
    fn genome(&self, organism: usize) -> Result<&Genome, String>;
    /// Offset and count of the real genes named `name`.
    fn gene(&self, name: &str) -> Result<(usize, usize), String> {
        Err(format!("no gene `{name}`"))
    }
    /// A weight at a stage.
    fn weights(&self, organism: usize, name: &str, stage: Stage) -> Result<Tensor<'_>, String> {
        let _ = (organism, stage);
        Err(format!(
            "no weight `{name}`: organisms in this run have no model (the scenario has no [lifetime])"
        ))
    }
    /// The learning curve.
    fn curve(&self, organism: usize) -> Result<Curve<'_>, String> {
        let _ = organism;
        Ok(Curve {
            points: Cow::Borrowed(&[]),
            status: LN_LIFE_NONE,
            diverged_at: 0,
        })
    }
    /// The held-out data the organism's lifetime was scored on.
    fn heldout(&self, organism: usize) -> Result<&Batch, String> {
        let _ = organism;
        Err("no held-out data: the scenario has no [lifetime]".into())
    }
    /// Runs the organism's model.
    fn run(&self, organism: usize, request: &RunRequest<'_>) -> Result<Tensor<'static>, String> {
        let _ = (organism, request);
        Err("no model to run: the scenario has no [lifetime]".into())
    }
    /// The organism's record of probe set `set` measured by `metric`:
    /// `[n, 2]` rows of (step, value), by step.
    fn probes(&self, organism: usize, set: &str, metric: &str) -> Result<Tensor<'static>, String> {
        let _ = (organism, metric);
        Err(format!(
            "no probe set `{set}`: the scenario has no [lifetime] whose environment declares probe sets"
        ))
    }
}

/// Why a plugin's `evaluate` did not score, with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `LN_ERROR` (or any status but `LN_OK` and `LN_UNFIT`).
    Failed(String),
    /// `LN_UNFIT`: the run's set-up does not fit what the plugin measures.
    Unfit(String),
}

/// What a plugin's `evaluate` returned, before the host's checks.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Its status, with its message on failure.
    pub status: Result<(), Refusal>,
    /// How many scores it says it wrote.
    pub written: usize,
}
