//! The trait every model family implements, and how a scenario names a
//! family that is not built in.
//!
//! A [`Family`] says what a network is: its parameters in storage order
//! ([`Family::params`]), what it reads and how wide its answer is
//! ([`Family::reads`], [`Family::outputs`]), the hidden layers a probe may
//! read ([`Family::layers`]), how many values its forward pass keeps per
//! example (the memory estimate), how an export writes it
//! ([`Family::describe`]), and how it runs as a candle [`Module`]
//! ([`Family::build`]). Everything else works from these: development of
//! birth weights (from each parameter's [`Role`](crate::spec::Role)), the
//! autograd path on the CPU or CUDA, the lifetime loop, probes, checkpoints,
//! exports and `lineage memory`.
//!
//! The built-in families (MLP, leaky RNN, GRU, LSTM, transformer) implement it
//! in `models/`, next to their candle modules; three of them also have
//! hand-written fast paths. A new family implements it in one file of
//! `models/` and adds one [`Registration`] to `models::REGISTERED`, from
//! where a scenario's `[lifetime.model]` names it by `kind`; its other
//! fields reach the family's constructor as [`Fields`]. ARCHITECTURE.md
//! ("Adding a model family") walks through the steps.

use std::fmt;
use std::sync::Arc;

use candle_core::Tensor;
use candle_nn::VarBuilder;
use lineage_env::Task;

use crate::spec::{ParamInfo, SequenceInput};

/// What a model reads for a set of examples.
#[derive(Clone, Debug)]
pub enum Input {
    /// Real rows `[n, inputs]` (MLP).
    Dense(Tensor),
    /// Token contexts `[n, context]`, u32 (MLP language model).
    Context(Tensor),
    /// Token sequences `[n, steps]`, u32 (sequence models).
    Tokens(Tensor),
    /// Real sequences `[n, steps, dim]` (sequence models).
    Sequence(Tensor),
}

/// What a family reads, and how often it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// Real rows of `width` values, one answer per row ([`Input::Dense`]).
    Dense {
        /// Values per row.
        width: usize,
    },
    /// `context` tokens, one answer (the next token) per context
    /// ([`Input::Context`]): a window of a token stream yields one
    /// example per position.
    Context {
        /// Vocabulary size.
        vocab: usize,
        /// Tokens read.
        context: usize,
    },
    /// A sequence, answered at every step ([`Input::Tokens`] or
    /// [`Input::Sequence`]).
    Steps {
        /// What one step is.
        input: SequenceInput,
        /// The most steps the model can read (a position table's rows);
        /// `None`: any number.
        longest: Option<usize>,
    },
}

impl Reads {
    /// A sequence of any length.
    pub fn sequence(input: SequenceInput) -> Reads {
        Reads::Steps {
            input,
            longest: None,
        }
    }
}

/// A hidden layer a probe can read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// Its name, as `measure::hidden` takes it.
    pub name: String,
    /// Its width: per example, or per step for a model that reads
    /// [`Reads::Steps`].
    pub width: usize,
}

impl Layer {
    /// Layer `name`, `width` wide.
    pub fn new(name: impl Into<String>, width: usize) -> Layer {
        Layer {
            name: name.into(),
            width,
        }
    }
}

/// Values kept over `steps` steps of `per_step` values each (saturating).
pub fn over_steps(steps: u64, per_step: &[(usize, u64)]) -> u64 {
    let per = per_step.iter().fold(0u64, |a, &(width, times)| {
        a.saturating_add((width as u64).saturating_mul(times))
    });
    steps.saturating_mul(per)
}

/// A model family as a candle module: what [`Family::build`] returns.
pub trait Module: fmt::Debug + Send + Sync {
    /// Outputs: `[n, outputs]`, or `[n, steps, outputs]` for a model that
    /// reads [`Reads::Steps`].
    fn forward(&self, input: &Input) -> candle_core::Result<Tensor>;

    /// The activations of hidden layer `index` of [`Family::layers`]:
    /// `[n, width]`, or `[n, steps, width]`.
    fn hidden(&self, input: &Input, index: usize) -> candle_core::Result<Tensor>;
}

/// What every model family implements.
pub trait Family: fmt::Debug + Send + Sync {
    /// Its name: the scenario's `kind` and the export's `"kind"`.
    fn kind(&self) -> &str;

    /// The parameters, in the order every part of Lineage stores them;
    /// names are unique, and a parameter's role decides its initialisation
    /// and whether a connectome may mask it.
    fn params(&self) -> Vec<ParamInfo>;

    /// What the model reads.
    fn reads(&self) -> Reads;

    /// Width of an answer (outputs, classes or vocabulary).
    fn outputs(&self) -> usize;

    /// The hidden layers a probe may read, from input to output.
    fn layers(&self) -> Vec<Layer>;

    /// Values a forward pass keeps per example for the backward pass,
    /// for sequences of `steps` steps (the memory estimate; a saturating
    /// count is fine).
    fn kept_per_example(&self, steps: u64) -> u64;

    /// The model as an export's `model` object: `"kind"` and every
    /// hyper-parameter.
    fn describe(&self) -> serde_json::Value;

    /// The candle module with the variables of `vb`, named as in
    /// [`Family::params`].
    fn build(&self, vb: VarBuilder) -> candle_core::Result<Box<dyn Module>>;

    /// Anything about the specification itself that cannot run; the
    /// message says what.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// A family outside the built-in five, as a [`ModelSpec`](crate::ModelSpec)
/// holds it. Two are equal when they describe the same model.
#[derive(Clone, Debug)]
pub struct Registered(Arc<dyn Family>);

impl Registered {
    /// Wraps a family.
    pub fn new(family: impl Family + 'static) -> Registered {
        Registered(Arc::new(family))
    }

    /// The family.
    pub fn family(&self) -> &dyn Family {
        &*self.0
    }
}

impl PartialEq for Registered {
    fn eq(&self, other: &Registered) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.describe() == other.0.describe()
    }
}

/// A family a scenario can name: its `kind` and how it is made from the
/// other fields of `[lifetime.model]` and the environment's task.
#[derive(Clone, Copy)]
pub struct Registration {
    /// The scenario's `kind`.
    pub kind: &'static str,
    /// One line on what it is (for error messages and the guide).
    pub summary: &'static str,
    /// Makes the family. It takes every field it knows from `fields`;
    /// fields left over are an error the caller reports.
    pub new: fn(&mut Fields, &Task) -> Result<Registered, FieldError>,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// A field of `[lifetime.model]` that a family's constructor rejects.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field's name (`model` itself for what concerns the whole
    /// table).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The fields of a scenario's `[lifetime.model]` other than `kind`, as a
/// registered family's constructor reads them. Each accessor takes the
/// field, so [`Fields::finish`] can name the ones nobody read.
#[derive(Clone, Debug)]
pub struct Fields {
    values: serde_json::Map<String, serde_json::Value>,
}

impl Fields {
    /// The fields of a table.
    pub fn new(values: serde_json::Map<String, serde_json::Value>) -> Fields {
        Fields { values }
    }

    /// A whole number of at least 1, required.
    pub fn positive(&mut self, name: &str) -> Result<usize, FieldError> {
        match self.values.remove(name) {
            None => Err(FieldError::new(name, format!("missing field `{name}`"))),
            Some(v) => positive(name, &v),
        }
    }

    /// A whole number of at least 1, `default` when absent.
    pub fn positive_or(&mut self, name: &str, default: usize) -> Result<usize, FieldError> {
        match self.values.remove(name) {
            None => Ok(default),
            Some(v) => positive(name, &v),
        }
    }

    /// A number, `default` when absent.
    pub fn number_or(&mut self, name: &str, default: f64) -> Result<f64, FieldError> {
        match self.values.remove(name) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| FieldError::new(name, format!("expected a number, found {v}"))),
        }
    }

    /// A boolean, `default` when absent.
    pub fn bool_or(&mut self, name: &str, default: bool) -> Result<bool, FieldError> {
        match self.values.remove(name) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| FieldError::new(name, format!("expected true or false, found {v}"))),
        }
    }

    /// A string, `default` when absent.
    pub fn string_or(&mut self, name: &str, default: &str) -> Result<String, FieldError> {
        match self.values.remove(name) {
            None => Ok(default.to_owned()),
            Some(serde_json::Value::String(s)) => Ok(s),
            Some(v) => Err(FieldError::new(
                name,
                format!("expected a string, found {v}"),
            )),
        }
    }

    /// Ok when every field was read; otherwise an error naming the first
    /// one left.
    pub fn finish(self, kind: &str) -> Result<(), FieldError> {
        match self.values.keys().next() {
            None => Ok(()),
            Some(name) => Err(FieldError::new(
                name.as_str(),
                format!("unknown field `{name}` for a model of kind `{kind}`"),
            )),
        }
    }
}

fn positive(name: &str, v: &serde_json::Value) -> Result<usize, FieldError> {
    match v.as_u64() {
        Some(n) if n >= 1 => {
            usize::try_from(n).map_err(|_| FieldError::new(name, format!("{n} is too large")))
        }
        _ => Err(FieldError::new(
            name,
            format!("expected a whole number of at least 1, found {v}"),
        )),
    }
}

/// How an export writes what a sequence model reads.
pub fn describe_input(input: SequenceInput) -> serde_json::Value {
    match input {
        SequenceInput::Tokens { vocab } => serde_json::json!({"tokens": vocab}),
        SequenceInput::Dense { dim } => serde_json::json!({"dense": dim}),
    }
}

/// What a sequence family reads at each step for `task`: tokens of its
/// vocabulary, or its real inputs. Anything else is a [`FieldError`] on
/// the table: the family reads sequences only.
pub fn sequence_input(kind: &str, task: &Task) -> Result<SequenceInput, FieldError> {
    match *task {
        Task::NextToken { vocab, .. } => Ok(SequenceInput::Tokens { vocab }),
        Task::SequenceClassification { inputs, .. } => Ok(SequenceInput::Dense { dim: inputs }),
        Task::Regression { .. } | Task::Classification { .. } => Err(FieldError::new(
            "kind",
            format!(
                "a `{kind}` reads sequences, but the environment gives single examples \
                 (a regression or classification task)"
            ),
        )),
    }
}

/// Width of an answer to `task`: outputs, classes or the vocabulary.
pub fn answer_width(task: &Task) -> usize {
    match *task {
        Task::Regression { outputs, .. } => outputs,
        Task::Classification { classes, .. } | Task::SequenceClassification { classes, .. } => {
            classes
        }
        Task::NextToken { vocab, .. } => vocab,
    }
}
