//! Probes: an organism's model run on inputs a plugin supplies, for its
//! outputs and its hidden activations.
//!
//! Fitness functions and evaluation suites loaded at run time see an
//! organism as a [`ModelSpec`] and its weights in [`ModelSpec::params`]
//! order (with any connectivity mask already applied). The functions here
//! load the weights as the general path does and build the network it
//! trains ([`crate::models::Network`], on the CPU), so what they return is
//! what training and scoring compute:
//!
//! - [`outputs`]: the model's outputs (logits or predictions);
//! - [`hidden`]: the activations of one named layer ([`layers`] lists the
//!   names);
//!
//! Per-example gradients and tangent kernels are in [`crate::jacobian`],
//! which is built on this module.
//!
//! Everything a plugin passes in is checked: a wrong shape, an unknown
//! name or a token outside the vocabulary is a [`ProbeError`], never a
//! panic.
//!
//! # Inputs
//!
//! A [`ProbeInput`] holds `n` examples of `len` values each, row-major:
//!
//! | model | input | `len` |
//! |---|---|---|
//! | MLP | [`ProbeInput::Real`] `[n, inputs]` | `inputs` (the first width) |
//! | MLP language model | [`ProbeInput::Tokens`] `[n, context]` | `context` |
//! | RNN, GRU, LSTM, transformer reading tokens | [`ProbeInput::Tokens`] `[n, steps]` | `steps` |
//! | RNN, GRU, LSTM, transformer reading real vectors | [`ProbeInput::Real`] `[n, steps, dim]` | `steps * dim` |
//!
//! Sequences need at least one step, and a transformer reads at most
//! `context` (the rows of its position table). `n` may be zero: every
//! result then has no values and a leading dimension of 0.
//!
//! # Outputs and layers
//!
//! Results are [`Probed`] values, row-major with their shape; the first
//! dimension is always the example. Outputs are `[n, outputs]` for an MLP
//! and `[n, steps, outputs]` for a sequence model (a readout at every
//! step). The layers [`hidden`] accepts, with their shape per example:
//!
//! | model | layer | per example | what it is |
//! |---|---|---|---|
//! | MLP | `hidden.{i}` | `[widths[i + 1]]` | output of `layers.{i}` after the activation, for every layer but the last |
//! | leaky RNN | `hidden` | `[steps, hidden]` | the state `h[t + 1]` after every step `t` (what the readout reads) |
//! | GRU | `hidden` | `[steps, hidden]` | the state after every step, as for the RNN |
//! | LSTM | `hidden` | `[steps, hidden]` | the state `h` after every step, as for the RNN |
//! | LSTM | `cell` | `[steps, hidden]` | the cell `c` after every step |
//! | transformer | `embed` | `[steps, d_model]` | token (or projected input) plus position embedding: the stream entering block 0 (the input itself with `embed = false, positions = false`) |
//! | transformer | `blocks.{i}` | `[steps, d_model]` | the residual stream after block `i` (before any LayerNorm) |
//! | transformer | `head_layers.{i}` | `[steps, head[i]]` | output of the ReLU layer `head_layers.{i}` before the readout (with `head = [..]`) |
//! | bag | `mean` | `[steps, dim]` | the running mean of the embedded inputs |
//!
//! A registered family reads as its [`Family::reads`](crate::family::Family::reads)
//! says (the rows above by kind) and names its layers in
//! [`Family::layers`](crate::family::Family::layers).
//!
//! An MLP language model's concatenated token embeddings are its input,
//! not a layer; a two-layer MLP has no hidden layers at all.
//!
//! Built on [`crate::models`] (the candle modules).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;

use crate::family::Reads;
use crate::models::{Network, variables};
use crate::spec::ModelSpec;

mod reads;

pub(crate) use reads::Probe;
use reads::list;

/// What a probe feeds the model: `n` examples, each `len` values.
#[derive(Clone, Copy, Debug)]
pub enum ProbeInput<'a> {
    /// Real inputs, row-major: MLP `[n, inputs]` (`len = inputs`);
    /// sequence models reading real vectors `[n, steps, dim]`
    /// (`len = steps * dim`).
    Real {
        /// The values, `n * len` of them.
        x: &'a [f32],
        /// Examples.
        n: usize,
        /// Values per example.
        len: usize,
    },
    /// Token ids: MLP language model `[n, context]`; sequence models
    /// reading tokens `[n, steps]`.
    Tokens {
        /// The ids, `n * len` of them, each below the vocabulary size.
        tokens: &'a [u32],
        /// Examples.
        n: usize,
        /// Tokens per example.
        len: usize,
    },
}

impl ProbeInput<'_> {
    /// Examples.
    pub fn n(&self) -> usize {
        match *self {
            ProbeInput::Real { n, .. } | ProbeInput::Tokens { n, .. } => n,
        }
    }
}

/// A probe's result: values row-major with their shape (the first
/// dimension is the example).
#[derive(Clone, Debug, PartialEq)]
pub struct Probed {
    /// The values, as many as the shape's product.
    pub values: Vec<f32>,
    /// The shape.
    pub shape: Vec<usize>,
}

/// Why a probe could not run. Every check on what a plugin passes in ends
/// here rather than in a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// [`hidden`] was asked for a layer the model does not have.
    #[error("unknown layer {layer:?}; this model's layers are: {}", list(.valid))]
    UnknownLayer {
        /// The name asked for.
        layer: String,
        /// The names [`layers`] gives for this model.
        valid: Vec<String>,
    },
    /// [`crate::jacobian::output_gradients`] was asked for a parameter the model does not
    /// have.
    #[error("unknown weight {weight:?}; this model's weights are: {}", list(.valid))]
    UnknownWeight {
        /// The name asked for.
        weight: String,
        /// The names of [`ModelSpec::params`].
        valid: Vec<String>,
    },
    /// Real values given to a model reading tokens, or the reverse.
    #[error("{given} given to a model reading {reads} ({model})")]
    InputKind {
        /// The model, e.g. "rnn".
        model: String,
        /// What was given: "tokens" or "real inputs".
        given: &'static str,
        /// What the model reads.
        reads: &'static str,
    },
    /// The values per example do not fit the model.
    #[error("expected {expected} per example for {model}, got {got}")]
    InputLength {
        /// The model, e.g. "mlp".
        model: String,
        /// What fits, e.g. "8 inputs".
        expected: String,
        /// The `len` given.
        got: usize,
    },
    /// The input slice does not hold `n * len` values.
    #[error("expected n * len = {n} x {len} input values, got {got}")]
    InputData {
        /// Examples given.
        n: usize,
        /// Values per example given.
        len: usize,
        /// Length of the slice.
        got: usize,
    },
    /// A token id is not below the vocabulary size.
    #[error(
        "token {token} (example {example}, position {position}) is outside the vocabulary of {vocab}"
    )]
    TokenOutOfVocabulary {
        /// The id.
        token: u32,
        /// Its example.
        example: usize,
        /// Its position within the example.
        position: usize,
        /// The model's vocabulary size.
        vocab: usize,
    },
    /// The cotangent does not have the outputs' shape.
    #[error("expected a cotangent of {expected} values (outputs {shape:?}), got {got}")]
    CotangentLength {
        /// Values the outputs have.
        expected: usize,
        /// The outputs' shape.
        shape: Vec<usize>,
        /// Values given.
        got: usize,
    },
    /// The weights are not one per parameter of the model.
    #[error("expected {expected} parameters for this model, got {got}")]
    ParamCount {
        /// Parameters of the model.
        expected: usize,
        /// Parameters given.
        got: usize,
    },
    /// A parameter's values do not fill its shape.
    #[error("parameter {name} has shape {shape:?} ({expected} values), got {got}")]
    ParamLength {
        /// The parameter.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
        /// Values its shape holds.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// The model specification itself cannot be run.
    #[error("the model cannot be probed: {0}")]
    Model(String),
    /// candle failed.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Names of the hidden layers [`hidden`] accepts for this model, in order
/// from input to output (the module docs give each one's shape).
pub fn layers(spec: &ModelSpec) -> Vec<String> {
    spec.family()
        .layers()
        .into_iter()
        .map(|layer| layer.name)
        .collect()
}

/// The model's outputs (logits or predictions): `[n, outputs]` for an MLP,
/// `[n, steps, outputs]` for a sequence model.
pub fn outputs(
    spec: &ModelSpec,
    params: &[Vec<f32>],
    input: &ProbeInput,
) -> Result<Probed, ProbeError> {
    let reads = Probe::of(spec)?;
    let shape = reads.check(input)?;
    let (net, _) = network(spec, params, None)?;
    if shape.n == 0 {
        return Ok(Probed::empty(output_shape(spec, shape.steps)));
    }
    let x = reads.examples(input, 0..shape.n)?;
    probed(&net.forward(&x)?)
}

/// The activations of the hidden layer named `layer` (one of [`layers`]):
/// `[n, width]` for an MLP, `[n, steps, width]` for a sequence model.
pub fn hidden(
    spec: &ModelSpec,
    params: &[Vec<f32>],
    input: &ProbeInput,
    layer: &str,
) -> Result<Probed, ProbeError> {
    let valid = layers(spec);
    let Some(index) = valid.iter().position(|l| l == layer) else {
        return Err(ProbeError::UnknownLayer {
            layer: layer.into(),
            valid,
        });
    };
    let reads = Probe::of(spec)?;
    let shape = reads.check(input)?;
    let (net, _) = network(spec, params, None)?;
    if shape.n == 0 {
        let mut dims = vec![0];
        dims.extend(layer_shape(spec, index, shape.steps));
        return Ok(Probed::empty(dims));
    }
    let x = reads.examples(input, 0..shape.n)?;
    probed(&net.hidden(&x, index)?)
}

/// Probes run on the CPU.
pub(crate) const CPU: Device = Device::Cpu;

impl Probed {
    fn empty(shape: Vec<usize>) -> Probed {
        Probed {
            values: Vec::new(),
            shape,
        }
    }
}

/// The network `spec` with weights `params`, loaded as the general path
/// loads them. Only parameter `track` (an index into the layout), when
/// given, is a variable of the autograd graph, so that a backward pass
/// computes its gradient alone; that variable is returned with it.
pub(crate) fn network(
    spec: &ModelSpec,
    params: &[Vec<f32>],
    track: Option<usize>,
) -> Result<(Network, Option<Tensor>), ProbeError> {
    let vars = load(spec, params)?;
    let mut tracked = None;
    let tensors: HashMap<String, Tensor> = spec
        .params()
        .into_iter()
        .zip(&vars)
        .enumerate()
        .map(|(i, (info, var))| {
            let t = if Some(i) == track {
                tracked.insert(var.as_tensor().clone()).clone()
            } else {
                var.as_tensor().detach()
            };
            (info.name, t)
        })
        .collect();
    let net = Network::new(spec, VarBuilder::from_tensors(tensors, DType::F32, &CPU))?;
    Ok((net, tracked))
}

/// Checks `params` against the layout of `spec` and loads them as the
/// general path does.
pub(crate) fn load(spec: &ModelSpec, params: &[Vec<f32>]) -> Result<Vec<Var>, ProbeError> {
    check(spec, params)?;
    Ok(variables(&spec.params(), params, &CPU)?.1)
}

/// Checks `params` against the layout of `spec`: one per parameter, each
/// filling its shape.
pub(crate) fn check(spec: &ModelSpec, params: &[Vec<f32>]) -> Result<(), ProbeError> {
    let layout = spec.params();
    if params.len() != layout.len() {
        return Err(ProbeError::ParamCount {
            expected: layout.len(),
            got: params.len(),
        });
    }
    for (info, values) in layout.iter().zip(params) {
        if values.len() != info.len() {
            return Err(ProbeError::ParamLength {
                name: info.name.clone(),
                shape: info.shape.clone(),
                expected: info.len(),
                got: values.len(),
            });
        }
    }
    Ok(())
}

/// A tensor's values and shape.
pub(crate) fn probed(t: &Tensor) -> Result<Probed, ProbeError> {
    Ok(Probed {
        values: t.flatten_all()?.to_vec1::<f32>()?,
        shape: t.dims().to_vec(),
    })
}

/// The outputs' shape for zero examples (`steps` for sequence models).
pub(crate) fn output_shape(spec: &ModelSpec, steps: usize) -> Vec<usize> {
    per_example(spec, steps, spec.family().outputs())
}

/// Layer `index` of [`layers`]'s shape per example.
fn layer_shape(spec: &ModelSpec, index: usize, steps: usize) -> Vec<usize> {
    let width = spec.family().layers()[index].width;
    per_example(spec, steps, width)[1..].to_vec()
}

/// `[0, width]`, or `[0, steps, width]` for a sequence model.
fn per_example(spec: &ModelSpec, steps: usize, width: usize) -> Vec<usize> {
    match spec.family().reads() {
        Reads::Steps { .. } => vec![0, steps, width],
        Reads::Dense { .. } | Reads::Context { .. } => vec![0, width],
    }
}

#[cfg(test)]
pub(crate) mod tests;
