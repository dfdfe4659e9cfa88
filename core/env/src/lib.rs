//! Environments: the data an organism's lifetime learns from and the
//! held-out data it is scored on.
//!
//! An [`Environment`] describes its [`Task`] (what a model must map to
//! what) and hands out one [`Lifetime`] at a time: a training set whose
//! size is the lifetime's data budget, and a held-out set. Environments
//! whose held-out data is shared by the whole population (Gaussian
//! clusters, a teacher network, a text's validation split, a hidden-Markov
//! language's held-out windows) build it once and share it by reference;
//! cognitive tasks (a perceptual decision, delayed match-to-sample) draw
//! fresh trials for training and score on trials from their seed, as
//! does the linear teacher, which also exposes its task direction;
//! few-shot environments (sinusoids) draw a new task, with its own held-out
//! points, for every lifetime; in-context learning worlds (`icl`) draw
//! fresh sequences of (item, label) pairs from classes fixed by their seed;
//! a `dataset` reads the user's own examples from `.npy`, `.npz`,
//! `.safetensors` or CSV files.
//!
//! Data are plain `f32` and `u32` buffers, row-major, so that both the
//! population-batched training path and candle can read them without
//! conversion. Every draw comes from the random stream the caller passes
//! (in the engine: the organism's learning stream), and everything an
//! environment builds at construction comes from its own seed, so data are
//! reproducible whatever the thread count.
//!
//! ```
//! use lineage_env::{Environment, GaussianClusters, Batch};
//! use lineage_evo::rng::{stream, Purpose};
//!
//! let env = GaussianClusters::new(4, 8, 0.5, 200, 7).unwrap();
//! // In a run: the organism's learning stream.
//! let mut rng = stream(42, 0, 17, Purpose::Learn);
//! let life = env.lifetime(&mut rng, 32).unwrap();
//! let Batch::Labeled { n, x, labels } = &life.train else { unreachable!() };
//! assert_eq!((*n, x.len(), labels.len()), (32, 32 * 8, 32));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod cognitive;
pub mod dataset;
mod hmm;
mod icl;
mod linear;
mod sinusoid;
mod synthetic;
mod text;

use std::sync::Arc;

use rand::RngCore;

pub use cognitive::{CHOICES, Decision, DecisionTrial, DelayedMatch, MAX_TRIAL_STEPS, MatchTrial};
pub use dataset::{Dataset, DatasetSpec, DatasetTask};
pub use hmm::{EntropyRate, Filtered, HiddenMarkov, Hmm, HmmParams, MAX_STATES, MAX_TOKENS};
pub use icl::{Icl, IclParams, IclProbe, IclSequence, MAX_ICL_SIZE, Positions};
pub use linear::{Aligned, LinearTeacher, MAX_TEACHER_INPUTS};
pub use sinusoid::Sinusoids;
pub use synthetic::{GaussianClusters, TeacherNetwork};
pub use text::{Text, Vocabulary};

/// What a model must learn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Task {
    /// Real inputs to real outputs, scored by mean squared error.
    Regression {
        /// Input features.
        inputs: usize,
        /// Output values.
        outputs: usize,
    },
    /// Real inputs to one of `classes` labels, scored by cross-entropy.
    Classification {
        /// Input features.
        inputs: usize,
        /// Number of classes.
        classes: usize,
    },
    /// Real-valued sequences labelled at each step (positions labelled
    /// [`IGNORE`] are not scored), scored by cross-entropy.
    SequenceClassification {
        /// Features per step.
        inputs: usize,
        /// Number of classes.
        classes: usize,
        /// Steps per sequence.
        steps: usize,
    },
    /// Token sequences: predict each next token, scored by cross-entropy.
    NextToken {
        /// Vocabulary size.
        vocab: usize,
        /// Tokens of context a model sees.
        context: usize,
    },
}

/// The label of a sequence position that no loss scores.
pub const IGNORE: u32 = u32::MAX;

/// A set of examples, row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum Batch {
    /// Regression examples: `x` is `n x inputs`, `y` is `n x outputs`.
    Dense {
        /// Examples.
        n: usize,
        /// Inputs.
        x: Vec<f32>,
        /// Targets.
        y: Vec<f32>,
    },
    /// Classification examples: `x` is `n x inputs`.
    Labeled {
        /// Examples.
        n: usize,
        /// Inputs.
        x: Vec<f32>,
        /// Class of each example.
        labels: Vec<u32>,
    },
    /// Labelled sequences: `x` is `n x steps x inputs`, `labels` is
    /// `n x steps` ([`IGNORE`] where a step is not scored).
    Sequences {
        /// Sequences.
        n: usize,
        /// Steps per sequence.
        steps: usize,
        /// Inputs.
        x: Vec<f32>,
        /// Label of each step.
        labels: Vec<u32>,
    },
    /// Token windows: `tokens` is `n x (context + 1)`; a model reads the
    /// first `context` tokens of a window and predicts each next one.
    Tokens {
        /// Windows.
        n: usize,
        /// Tokens per window.
        len: usize,
        /// The windows.
        tokens: Vec<u32>,
    },
}

impl Batch {
    /// Number of examples (or windows).
    pub fn len(&self) -> usize {
        match self {
            Batch::Dense { n, .. }
            | Batch::Labeled { n, .. }
            | Batch::Sequences { n, .. }
            | Batch::Tokens { n, .. } => *n,
        }
    }

    /// True when the batch holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The data of one lifetime.
#[derive(Clone, Debug)]
pub struct Lifetime {
    /// What the organism may learn from: exactly its data budget.
    pub train: Batch,
    /// What it is scored on afterwards.
    pub heldout: Arc<Batch>,
}

/// A source of lifetimes.
pub trait Environment: Send + Sync {
    /// The environment's name, as in scenarios.
    fn name(&self) -> &str;
    /// What a model must learn.
    fn task(&self) -> Task;
    /// One lifetime's data: a training set of `budget` examples (token
    /// environments: `budget` tokens, in whole windows: see [`windows`])
    /// drawn from `rng`, and the held-out set. Built-in environments never
    /// fail; one a plugin supplies fails when the plugin does, or returns
    /// examples that break its task ([`EnvError::Plugin`]).
    fn lifetime(&self, rng: &mut dyn RngCore, budget: usize) -> Result<Lifetime, EnvError>;
    /// The input direction the task depends on, where it has one (the
    /// linear teacher's `F^T w`): what a low-rank initial matrix can be
    /// aligned with (`align = "task"`).
    fn task_direction(&self) -> Option<Vec<f32>> {
        None
    }
    /// Named data sets to score every lifetime on at each learning-curve
    /// point, beside the held-out loss (the `icl` world's in-context and
    /// in-weights probes); none by default. Each is classification data
    /// (`Labeled` or `Sequences`), built from the environment's seed.
    fn probe_sets(&self) -> Vec<ProbeSet> {
        Vec::new()
    }
    /// A held-out set drawn afresh from `rng`: as many examples as the
    /// held-out set, of the same distribution, none of them in it (what
    /// re-scores the best organism of a generation without the winner's
    /// curse). `None` where the environment has no more data than its
    /// fixed held-out part (files, corpora) or no held-out distribution of
    /// its own (a task drawn per lifetime).
    fn fresh_heldout(&self, rng: &mut dyn RngCore) -> Option<Batch> {
        let _ = rng;
        None
    }
    /// The most examples one lifetime's budget can draw (a finite data
    /// set's training part, drawn without replacement); `None`: no limit.
    fn draw_limit(&self) -> Option<usize> {
        None
    }
    /// The plugin that supplies the environment, if one does: its name and
    /// the SHA-256 of its library, which the run's manifest must record.
    fn plugin_library(&self) -> Option<(String, String)> {
        None
    }
    /// The files the environment read its data from, with their sizes and
    /// SHA-256 (recorded in a run's manifest; a resume refuses changed
    /// ones); none by default.
    fn data_files(&self) -> Vec<DataFile> {
        Vec::new()
    }
}

/// The token windows of `context + 1` tokens a budget of `budget` tokens
/// draws (at least one).
pub fn windows(budget: usize, context: usize) -> usize {
    budget.div_ceil(context.max(1)).max(1)
}

/// A data file an environment read, as a run's manifest records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataFile {
    /// Its path, as the scenario resolved it.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// The SHA-256 of its bytes, hex.
    pub sha256: String,
}

/// A named set of examples an environment asks every lifetime to be
/// scored on along the way ([`Environment::probe_sets`]): the mean
/// cross-entropy of its scored labels, and the accuracy of the argmax over
/// `choices` (every label when `None`) and, where `choices` restricts it,
/// over every label too.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeSet {
    /// Its name in records (`[a-z0-9_]+`).
    pub name: String,
    /// The examples and their labels.
    pub data: Arc<Batch>,
    /// The labels a prediction is restricted to, if any.
    pub choices: Option<Vec<u32>>,
}

/// Why an environment cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    /// A parameter is out of range.
    #[error("environment `{environment}`: {message}")]
    Invalid {
        /// The environment.
        environment: &'static str,
        /// What is wrong.
        message: String,
    },
    /// An environment a plugin supplies failed, or broke its contract.
    #[error("environment plugin `{plugin}`, offering `{offering}`: {message}")]
    Plugin {
        /// The plugin's name.
        plugin: String,
        /// The offering.
        offering: String,
        /// What went wrong.
        message: String,
    },
    /// A data file could not be read.
    #[error("environment `{environment}`: cannot read {path}: {source}")]
    Io {
        /// The environment.
        environment: &'static str,
        /// The file.
        path: String,
        /// The reason.
        source: std::io::Error,
    },
}

pub(crate) fn invalid(environment: &'static str, message: impl Into<String>) -> EnvError {
    EnvError::Invalid {
        environment,
        message: message.into(),
    }
}
