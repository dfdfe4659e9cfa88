//! Probes: an organism's model run on inputs a plugin supplies, for its
//! outputs, its hidden activations and per-example gradients.
//!
//! Fitness functions and evaluation suites loaded at run time see an
//! organism as a [`ModelSpec`] and its weights in [`ModelSpec::params`]
//! order (with any connectivity mask already applied). The functions here
//! load the weights as the general path does and build the network it
//! trains ([`crate::general::Network`], on the CPU), so what they return is
//! what training and scoring compute:
//!
//! - [`outputs`]: the model's outputs (logits or predictions);
//! - [`hidden`]: the activations of one named layer ([`layers`] lists the
//!   names);
//! - [`output_gradients`]: per-example gradients of a weighted sum of the
//!   outputs with respect to one parameter.
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
//! | RNN, GRU, transformer reading tokens | [`ProbeInput::Tokens`] `[n, steps]` | `steps` |
//! | RNN, GRU, transformer reading real vectors | [`ProbeInput::Real`] `[n, steps, dim]` | `steps * dim` |
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
//! | transformer | `embed` | `[steps, d_model]` | token (or projected input) plus position embedding |
//! | transformer | `blocks.{i}` | `[steps, d_model]` | the residual stream after block `i` (before any LayerNorm) |
//!
//! An MLP language model's concatenated token embeddings are its input,
//! not a layer; a two-layer MLP has no hidden layers at all.
//!
//! # Gradients
//!
//! [`output_gradients`] returns, for every example `i`, the gradient of
//! `sum_k c[i, k] * out[i, k]` with respect to one parameter, shape
//! `[n, *param_shape]`, where `out[i]` is example `i`'s outputs
//! (flattened over steps for a sequence model) and `c` the cotangent
//! (all ones when not given). This is the vector-Jacobian product of each
//! example on its own: with a one-hot `c` it is one output's gradient,
//! with `c = dLoss/dout` it is the example's loss gradient. The gradient is
//! of the model as given: a masked-out weight has a gradient like any
//! other. It is computed by candle's autograd: for an MLP's
//! `layers.{i}.weight` and `layers.{i}.bias` in one batched pass (a zero
//! variable added to the layer's pre-activation receives every example's
//! `delta`, and the weight gradient is `delta_i` times the layer's input
//! `a_i`, an outer product). A leaky RNN's gradients come from the fast
//! path's back-propagation through time on plain buffers
//! (`fast_rnn::example_gradients`): one forward and one backward pass over
//! a chunk of examples with the cotangent as the output gradient, then each
//! example's sum over steps of outer products. Every other parameter gets
//! one candle backward pass per example with only that parameter tracked.
//! All give what a backward pass over one example alone gives (tests hold
//! the MLP's to 1e-6, the RNN's to 1e-5).

use std::collections::HashMap;
use std::ops::Range;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;

use crate::cpu::View;
use crate::fast_rnn::Sequences;
use crate::general::{Input, Network, variables};
use crate::spec::{ModelSpec, SequenceInput};

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
    /// [`output_gradients`] was asked for a parameter the model does not
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
        model: &'static str,
        /// What was given: "tokens" or "real inputs".
        given: &'static str,
        /// What the model reads.
        reads: &'static str,
    },
    /// The values per example do not fit the model.
    #[error("expected {expected} per example for {model}, got {got}")]
    InputLength {
        /// The model, e.g. "mlp".
        model: &'static str,
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
    match spec {
        ModelSpec::Mlp(m) => (0..m.widths.len().saturating_sub(2))
            .map(|i| format!("hidden.{i}"))
            .collect(),
        ModelSpec::Rnn(_) | ModelSpec::Gru(_) => vec!["hidden".into()],
        ModelSpec::Transformer(t) => std::iter::once("embed".to_string())
            .chain((0..t.layers).map(|i| format!("blocks.{i}")))
            .collect(),
    }
}

/// The model's outputs (logits or predictions): `[n, outputs]` for an MLP,
/// `[n, steps, outputs]` for a sequence model.
pub fn outputs(
    spec: &ModelSpec,
    params: &[Vec<f32>],
    input: &ProbeInput,
) -> Result<Probed, ProbeError> {
    let reads = Reads::of(spec)?;
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
    let reads = Reads::of(spec)?;
    let shape = reads.check(input)?;
    let (net, _) = network(spec, params, None)?;
    if shape.n == 0 {
        let mut dims = vec![0];
        dims.extend(layer_shape(spec, index, shape.steps));
        return Ok(Probed::empty(dims));
    }
    let x = reads.examples(input, 0..shape.n)?;
    let activations = match &net {
        Network::Mlp(m) => m.trace(&x, None)?.swap_remove(index + 1),
        Network::Rnn(m) => m.states(&x)?,
        Network::Gru(m) => m.states(&x)?,
        Network::Transformer(m) => {
            let (n, steps, mut stream) = m.residuals(&x)?;
            stream.swap_remove(index).reshape((n, steps, ()))?
        }
    };
    probed(&activations)
}

/// Per-example gradients of `sum_k c[i, k] * out[i, k]` with respect to
/// the parameter named `weight` (a name of [`ModelSpec::params`]), shape
/// `[n, *param_shape]`. `cotangent` is `c`, the shape of [`outputs`]
/// row-major; `None` means all ones (the gradient of the example's
/// summed outputs).
pub fn output_gradients(
    spec: &ModelSpec,
    params: &[Vec<f32>],
    input: &ProbeInput,
    cotangent: Option<&[f32]>,
    weight: &str,
) -> Result<Probed, ProbeError> {
    let layout = spec.params();
    let Some(target) = layout.iter().position(|p| p.name == weight) else {
        return Err(ProbeError::UnknownWeight {
            weight: weight.into(),
            valid: layout.into_iter().map(|p| p.name).collect(),
        });
    };
    let reads = Reads::of(spec)?;
    let shape = reads.check(input)?;
    let out_shape = output_shape(spec, shape.steps);
    let per: usize = out_shape[1..].iter().product();
    if let Some(c) = cotangent
        && Some(c.len()) != shape.n.checked_mul(per)
    {
        return Err(ProbeError::CotangentLength {
            expected: shape.n.saturating_mul(per),
            shape: out_shape,
            got: c.len(),
        });
    }
    let param = &layout[target];
    let mut dims = vec![shape.n];
    dims.extend(&param.shape);
    let values = if shape.n == 0 {
        load(spec, params)?;
        Vec::new()
    } else if let Some((layer, bias)) = mlp_layer(spec, weight) {
        let (net, _) = network(spec, params, None)?;
        let Network::Mlp(mlp) = &net else {
            return Err(ProbeError::Model(
                "an MLP spec built another network".into(),
            ));
        };
        let x = reads.examples(input, 0..shape.n)?;
        let g = mlp_gradients(mlp, &x, cotangent, layer, bias, param.shape[0])?;
        g.flatten_all()?.to_vec1::<f32>()?
    } else if let ModelSpec::Rnn(rnn) = spec {
        check(spec, params)?;
        let sequences = match *input {
            ProbeInput::Real { x, .. } => Sequences::Dense(x),
            ProbeInput::Tokens { tokens, .. } => Sequences::Tokens(tokens),
        };
        crate::fast_rnn::example_gradients(
            rnn,
            params,
            sequences,
            shape.n,
            shape.steps,
            cotangent,
            target,
        )
    } else {
        looped_gradients(spec, params, &reads, input, cotangent, target)?
    };
    Ok(Probed {
        values,
        shape: dims,
    })
}

/// The Gram matrix `[n, n]` of the per-example gradients
/// [`output_gradients`] gives (the empirical tangent kernel): entry
/// `(i, j)` is the dot product of example `i`'s and example `j`'s gradient
/// with respect to `weight`, or, for `weight = "*"`, with respect to every
/// parameter together (the sum of each parameter's kernel). Only one
/// parameter's gradients are held at a time.
pub fn gradient_kernel(
    spec: &ModelSpec,
    params: &[Vec<f32>],
    input: &ProbeInput,
    cotangent: Option<&[f32]>,
    weight: &str,
) -> Result<Probed, ProbeError> {
    let names: Vec<String> = if weight == "*" {
        spec.params().into_iter().map(|p| p.name).collect()
    } else {
        vec![weight.to_string()]
    };
    let n = input.n();
    let mut kernel = vec![0.0f32; n * n];
    for name in &names {
        let g = output_gradients(spec, params, input, cotangent, name)?;
        let len = g.values.len() / n.max(1);
        gram_add(&mut kernel, &g.values, n, len);
    }
    Ok(Probed {
        values: kernel,
        shape: vec![n, n],
    })
}

/// Rows per block of [`gram_add`].
const GRAM_BLOCK: usize = 128;

/// `k += G G^T` for `g` `[n, len]` row-major, `k` `[n, n]`: only the
/// blocks on and above the diagonal are multiplied (blocks of
/// [`GRAM_BLOCK`] rows), the others mirrored, so `k` stays exactly
/// symmetric at a little over half the work of the full product.
fn gram_add(k: &mut [f32], g: &[f32], n: usize, len: usize) {
    let mut block = vec![0.0f32; GRAM_BLOCK * GRAM_BLOCK];
    for i0 in (0..n).step_by(GRAM_BLOCK) {
        let rows = GRAM_BLOCK.min(n - i0);
        let a = View::rows(&g[i0 * len..(i0 + rows) * len], rows, len);
        for j0 in (i0..n).step_by(GRAM_BLOCK) {
            let cols = GRAM_BLOCK.min(n - j0);
            let b = View::transposed(&g[j0 * len..(j0 + cols) * len], cols, len);
            crate::cpu::matmul(&mut block[..rows * cols], a, b, false);
            for r in 0..rows {
                for c in 0..cols {
                    let v = block[r * cols + c];
                    k[(i0 + r) * n + j0 + c] += v;
                    if j0 != i0 {
                        k[(j0 + c) * n + i0 + r] += v;
                    }
                }
            }
        }
    }
}

/// `layers.{i}.weight` or `layers.{i}.bias` of an MLP as `(i, is_bias)`.
fn mlp_layer(spec: &ModelSpec, weight: &str) -> Option<(usize, bool)> {
    let ModelSpec::Mlp(_) = spec else {
        return None;
    };
    let (layer, kind) = weight.strip_prefix("layers.")?.split_once('.')?;
    let bias = match kind {
        "weight" => false,
        "bias" => true,
        _ => return None,
    };
    Some((layer.parse().ok()?, bias))
}

/// Per-example gradients of an MLP's `layers.{layer}` weight `[n, out, in]`
/// (or bias `[n, out]`, `out` wide) in one batched pass: a zero variable
/// added to the layer's pre-activation receives every example's `delta`,
/// and example `i`'s weight gradient is the outer product of its `delta`
/// with what the layer read.
fn mlp_gradients(
    mlp: &crate::general::Mlp,
    x: &Input,
    cotangent: Option<&[f32]>,
    layer: usize,
    bias: bool,
    out: usize,
) -> candle_core::Result<Tensor> {
    let rows = match x {
        Input::Dense(t) | Input::Context(t) => t.dim(0)?,
        _ => candle_core::bail!("an MLP reads rows or token contexts"),
    };
    let probe = Var::zeros((rows, out), DType::F32, &CPU)?;
    let trace = mlp.trace(x, Some((layer, probe.as_tensor())))?;
    let Some(y) = trace.last() else {
        candle_core::bail!("the MLP has no layers");
    };
    let delta = match weighted_sum(y, cotangent)?.backward()?.get(&probe) {
        Some(g) => g.contiguous()?,
        None => probe.zeros_like()?,
    };
    if bias {
        Ok(delta)
    } else {
        delta
            .unsqueeze(2)?
            .matmul(&trace[layer].contiguous()?.unsqueeze(1)?)
    }
}

/// Per-example gradients of parameter `target` by one forward and backward
/// pass per example, with only that parameter tracked; row-major
/// `[n, *param_shape]`.
fn looped_gradients(
    spec: &ModelSpec,
    params: &[Vec<f32>],
    reads: &Reads,
    input: &ProbeInput,
    cotangent: Option<&[f32]>,
    target: usize,
) -> Result<Vec<f32>, ProbeError> {
    let (net, tracked) = network(spec, params, Some(target))?;
    let Some(tracked) = tracked else {
        return Err(ProbeError::Model("the probed weight is not tracked".into()));
    };
    let n = input.n();
    let per = cotangent.map_or(0, |c| c.len() / n.max(1));
    let mut values = Vec::with_capacity(n * tracked.elem_count());
    for i in 0..n {
        let y = net.forward(&reads.examples(input, i..i + 1)?)?;
        let c = cotangent.map(|c| &c[i * per..(i + 1) * per]);
        match weighted_sum(&y, c)?.backward()?.get(&tracked) {
            Some(g) => values.extend(g.flatten_all()?.to_vec1::<f32>()?),
            // The outputs do not depend on this parameter.
            None => values.resize(values.len() + tracked.elem_count(), 0.0),
        }
    }
    Ok(values)
}

/// `sum(c * y)` for `c` of `y`'s shape row-major, or `sum(y)`.
fn weighted_sum(y: &Tensor, c: Option<&[f32]>) -> candle_core::Result<Tensor> {
    match c {
        Some(c) => (y * Tensor::from_slice(c, y.shape(), &CPU)?)?.sum_all(),
        None => y.sum_all(),
    }
}

/// Probes run on the CPU.
const CPU: Device = Device::Cpu;

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
fn network(
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
fn load(spec: &ModelSpec, params: &[Vec<f32>]) -> Result<Vec<Var>, ProbeError> {
    check(spec, params)?;
    Ok(variables(&spec.params(), params, &CPU)?.1)
}

/// Checks `params` against the layout of `spec`: one per parameter, each
/// filling its shape.
fn check(spec: &ModelSpec, params: &[Vec<f32>]) -> Result<(), ProbeError> {
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
fn probed(t: &Tensor) -> Result<Probed, ProbeError> {
    Ok(Probed {
        values: t.flatten_all()?.to_vec1::<f32>()?,
        shape: t.dims().to_vec(),
    })
}

/// The outputs' shape for zero examples (`steps` for sequence models).
fn output_shape(spec: &ModelSpec, steps: usize) -> Vec<usize> {
    match spec {
        ModelSpec::Mlp(m) => vec![0, m.widths.last().copied().unwrap_or(0)],
        ModelSpec::Rnn(r) => vec![0, steps, r.outputs],
        ModelSpec::Gru(g) => vec![0, steps, g.outputs],
        ModelSpec::Transformer(t) => vec![0, steps, t.outputs],
    }
}

/// Layer `index` of [`layers`]'s shape per example.
fn layer_shape(spec: &ModelSpec, index: usize, steps: usize) -> Vec<usize> {
    match spec {
        ModelSpec::Mlp(m) => vec![m.widths[index + 1]],
        ModelSpec::Rnn(r) => vec![steps, r.hidden],
        ModelSpec::Gru(g) => vec![steps, g.hidden],
        ModelSpec::Transformer(t) => vec![steps, t.d_model],
    }
}

/// What a model reads, for checking and laying out a [`ProbeInput`].
#[derive(Clone, Copy)]
struct Reads {
    /// The model's name in messages.
    model: &'static str,
    kind: Kind,
    /// Most steps (a transformer's position table).
    longest: Option<usize>,
}

#[derive(Clone, Copy)]
enum Kind {
    /// Real rows of this width (MLP).
    Real { width: usize },
    /// Token contexts of this length (MLP language model).
    Context { vocab: usize, context: usize },
    /// Token sequences.
    TokenSteps { vocab: usize },
    /// Real sequences of vectors this wide.
    RealSteps { dim: usize },
}

/// How many examples an input holds, and of how many steps (1 for an MLP).
#[derive(Clone, Copy)]
struct InputShape {
    n: usize,
    steps: usize,
}

impl Reads {
    fn of(spec: &ModelSpec) -> Result<Reads, ProbeError> {
        if let Some(empty) = spec.params().into_iter().find(|p| p.is_empty()) {
            return Err(ProbeError::Model(format!(
                "its parameter {} has shape {:?}, no values",
                empty.name, empty.shape
            )));
        }
        let sequence = |model, input, longest| Reads {
            model,
            kind: match input {
                SequenceInput::Tokens { vocab } => Kind::TokenSteps { vocab },
                SequenceInput::Dense { dim } => Kind::RealSteps { dim },
            },
            longest,
        };
        let reads = match spec {
            ModelSpec::Mlp(m) => {
                if m.widths.len() < 2 {
                    return Err(ProbeError::Model(format!(
                        "an MLP needs at least two widths (input and output), this one has {}",
                        m.widths.len()
                    )));
                }
                match m.embedding {
                    Some(e) => Reads {
                        model: "mlp language model",
                        kind: Kind::Context {
                            vocab: e.vocab,
                            context: e.context,
                        },
                        longest: None,
                    },
                    None => Reads {
                        model: "mlp",
                        kind: Kind::Real { width: m.widths[0] },
                        longest: None,
                    },
                }
            }
            ModelSpec::Rnn(r) => sequence("rnn", r.input, None),
            ModelSpec::Gru(g) => sequence("gru", g.input, None),
            ModelSpec::Transformer(t) => sequence("transformer", t.input, Some(t.context)),
        };
        Ok(reads)
    }

    /// Checks that `input` is what the model reads; its examples and steps.
    fn check(&self, input: &ProbeInput) -> Result<InputShape, ProbeError> {
        let (n, len, data) = match *input {
            ProbeInput::Real { x, n, len } => (n, len, x.len()),
            ProbeInput::Tokens { tokens, n, len } => (n, len, tokens.len()),
        };
        let reads_tokens = matches!(self.kind, Kind::Context { .. } | Kind::TokenSteps { .. });
        let given_tokens = matches!(input, ProbeInput::Tokens { .. });
        if reads_tokens != given_tokens {
            let name = |tokens| if tokens { "tokens" } else { "real inputs" };
            return Err(ProbeError::InputKind {
                model: self.model,
                given: name(given_tokens),
                reads: name(reads_tokens),
            });
        }
        let wrong = |expected: String| ProbeError::InputLength {
            model: self.model,
            expected,
            got: len,
        };
        let steps = match self.kind {
            Kind::Real { width } if len != width => return Err(wrong(format!("{width} inputs"))),
            Kind::Context { context, .. } if len != context => {
                return Err(wrong(format!("{context} tokens")));
            }
            Kind::Real { .. } | Kind::Context { .. } => 1,
            Kind::TokenSteps { .. } => len,
            // dim > 0: `Reads::of` refuses an empty input matrix.
            Kind::RealSteps { dim } => {
                if !len.is_multiple_of(dim) {
                    return Err(wrong(format!("a multiple of {dim} values (steps x {dim})")));
                }
                len / dim
            }
        };
        let (lo, hi) = (1, self.longest.unwrap_or(usize::MAX));
        if steps < lo || steps > hi {
            let unit = match self.kind {
                Kind::RealSteps { dim } => format!(" of {dim} values"),
                _ => String::new(),
            };
            let what = match self.kind {
                Kind::RealSteps { .. } => "steps",
                _ => "tokens",
            };
            return Err(wrong(match self.longest {
                Some(longest) => format!("1 to {longest} {what}{unit}"),
                None => format!("at least 1 {}{unit}", what.trim_end_matches('s')),
            }));
        }
        if Some(data) != n.checked_mul(len) {
            return Err(ProbeError::InputData { n, len, got: data });
        }
        if let (
            ProbeInput::Tokens { tokens, .. },
            Kind::Context { vocab, .. } | Kind::TokenSteps { vocab },
        ) = (input, self.kind)
            && let Some(at) = tokens.iter().position(|&t| t as usize >= vocab)
        {
            return Err(ProbeError::TokenOutOfVocabulary {
                token: tokens[at],
                example: at / len,
                position: at % len,
                vocab,
            });
        }
        Ok(InputShape { n, steps })
    }

    /// Examples `range` of a checked `input` as the model's input.
    fn examples(&self, input: &ProbeInput, range: Range<usize>) -> candle_core::Result<Input> {
        let m = range.len();
        Ok(match (*input, self.kind) {
            (ProbeInput::Real { x, len, .. }, Kind::RealSteps { dim }) => {
                let rows = &x[range.start * len..range.end * len];
                Input::Sequence(Tensor::from_slice(rows, (m, len / dim, dim), &CPU)?)
            }
            (ProbeInput::Real { x, len, .. }, _) => {
                let rows = &x[range.start * len..range.end * len];
                Input::Dense(Tensor::from_slice(rows, (m, len), &CPU)?)
            }
            (ProbeInput::Tokens { tokens, len, .. }, kind) => {
                let rows = Tensor::from_slice(
                    &tokens[range.start * len..range.end * len],
                    (m, len),
                    &CPU,
                )?;
                match kind {
                    Kind::Context { .. } => Input::Context(rows),
                    _ => Input::Tokens(rows),
                }
            }
        })
    }
}

/// A list of names for a message.
fn list(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Tensor};
    use candle_nn::VarBuilder;
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    use super::*;
    use crate::spec::{Activation, Embedding, GruSpec, MlpSpec, RnnSpec, TransformerSpec};

    /// Real rows of width 3, layers 3 -> 4 -> 5 -> 2.
    fn mlp() -> ModelSpec {
        ModelSpec::Mlp(MlpSpec {
            embedding: None,
            widths: vec![3, 4, 5, 2],
            activation: Activation::Tanh,
            bias: true,
        })
    }

    /// Contexts of 3 tokens of a vocabulary of 5, embedded 2 wide.
    fn mlp_lm() -> ModelSpec {
        ModelSpec::Mlp(MlpSpec {
            embedding: Some(Embedding {
                vocab: 5,
                dim: 2,
                context: 3,
            }),
            widths: vec![6, 4, 5],
            activation: Activation::Gelu,
            bias: true,
        })
    }

    fn rnn() -> ModelSpec {
        ModelSpec::Rnn(RnnSpec {
            input: SequenceInput::Tokens { vocab: 4 },
            hidden: 3,
            outputs: 2,
            alpha: 0.5,
            activation: Activation::Tanh,
            bias: true,
        })
    }

    fn gru() -> ModelSpec {
        ModelSpec::Gru(GruSpec {
            input: SequenceInput::Dense { dim: 2 },
            hidden: 3,
            outputs: 2,
        })
    }

    fn transformer() -> ModelSpec {
        ModelSpec::Transformer(TransformerSpec {
            input: SequenceInput::Tokens { vocab: 5 },
            context: 4,
            d_model: 4,
            heads: 2,
            layers: 2,
            d_ff: 6,
            outputs: 3,
            layer_norm: true,
            activation: Activation::Gelu,
        })
    }

    /// Deterministic weights (the general path's test weights).
    fn weights(spec: &ModelSpec, seed: u64) -> Vec<Vec<f32>> {
        crate::general::tests::birth_weights(spec, seed)
    }

    fn uniform(count: usize, seed: u64) -> Vec<f32> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        (0..count)
            .map(|_| 2.0 * rng.random::<f32>() - 1.0)
            .collect()
    }

    /// A probe input that owns its data.
    enum Owned {
        Real(Vec<f32>, usize, usize),
        Tokens(Vec<u32>, usize, usize),
    }

    impl Owned {
        fn view(&self) -> ProbeInput<'_> {
            match self {
                Owned::Real(x, n, len) => ProbeInput::Real {
                    x,
                    n: *n,
                    len: *len,
                },
                Owned::Tokens(tokens, n, len) => ProbeInput::Tokens {
                    tokens,
                    n: *n,
                    len: *len,
                },
            }
        }
    }

    /// Three examples for each test model (sequences of 3 steps).
    fn examples(spec: &ModelSpec) -> Owned {
        let tokens = |vocab: u32, len: usize| {
            let ids = (0..3 * len as u32).map(|i| (7 * i + 2) % vocab).collect();
            Owned::Tokens(ids, 3, len)
        };
        match spec {
            ModelSpec::Mlp(MlpSpec {
                embedding: Some(e), ..
            }) => tokens(e.vocab as u32, e.context),
            ModelSpec::Mlp(m) => Owned::Real(uniform(3 * m.widths[0], 11), 3, m.widths[0]),
            ModelSpec::Rnn(RnnSpec { input, .. })
            | ModelSpec::Gru(GruSpec { input, .. })
            | ModelSpec::Transformer(TransformerSpec { input, .. }) => match *input {
                SequenceInput::Tokens { vocab } => tokens(vocab as u32, 3),
                SequenceInput::Dense { dim } => Owned::Real(uniform(9 * dim, 12), 3, 3 * dim),
            },
        }
    }

    /// The network and its variables, built directly (not through the probe).
    fn direct(spec: &ModelSpec, params: &[Vec<f32>]) -> (Network, Vec<Var>) {
        let (varmap, vars) = variables(&spec.params(), params, &CPU).unwrap();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &CPU);
        (Network::new(spec, vb).unwrap(), vars)
    }

    /// What `Network::forward` reads for `input`, built by hand.
    fn direct_input(spec: &ModelSpec, input: &Owned) -> Input {
        match (spec, input) {
            (ModelSpec::Mlp(m), Owned::Real(x, n, len)) if m.embedding.is_none() => {
                Input::Dense(Tensor::from_slice(x, (*n, *len), &CPU).unwrap())
            }
            (ModelSpec::Mlp(_), Owned::Tokens(t, n, len)) => {
                Input::Context(Tensor::from_slice(t, (*n, *len), &CPU).unwrap())
            }
            (_, Owned::Tokens(t, n, len)) => {
                Input::Tokens(Tensor::from_slice(t, (*n, *len), &CPU).unwrap())
            }
            (
                ModelSpec::Rnn(RnnSpec { input, .. })
                | ModelSpec::Gru(GruSpec { input, .. })
                | ModelSpec::Transformer(TransformerSpec { input, .. }),
                Owned::Real(x, n, len),
            ) => {
                let dim = input.width();
                Input::Sequence(Tensor::from_slice(x, (*n, len / dim, dim), &CPU).unwrap())
            }
            _ => unreachable!("the test models read what the examples hold"),
        }
    }

    fn all_models() -> [ModelSpec; 5] {
        [mlp(), mlp_lm(), rnn(), gru(), transformer()]
    }

    #[test]
    fn outputs_equal_network_forward() {
        for spec in all_models() {
            let params = weights(&spec, 1);
            let input = examples(&spec);
            let got = outputs(&spec, &params, &input.view()).unwrap();
            let (net, _) = direct(&spec, &params);
            let want = net.forward(&direct_input(&spec, &input)).unwrap();
            assert_eq!(got.shape, want.dims(), "{spec:?}");
            let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(got.values, want, "{spec:?}");
        }
    }

    #[test]
    fn mlp_hidden_layers_match_a_hand_computation() {
        let spec = mlp();
        assert_eq!(layers(&spec), ["hidden.0", "hidden.1"]);
        let p = weights(&spec, 2);
        let input = examples(&spec);
        let Owned::Real(x, n, _) = &input else {
            unreachable!()
        };
        // layers.i: weight p[2i] [out, in], bias p[2i + 1].
        let layer = |i: usize, a: &[f64], out: usize| -> Vec<f64> {
            let (w, b) = (&p[2 * i], &p[2 * i + 1]);
            (0..out)
                .map(|o| {
                    let z: f64 = a
                        .iter()
                        .enumerate()
                        .map(|(k, &v)| f64::from(w[o * a.len() + k]) * v)
                        .sum();
                    (z + f64::from(b[o])).tanh()
                })
                .collect()
        };
        let h0 = hidden(&spec, &p, &input.view(), "hidden.0").unwrap();
        let h1 = hidden(&spec, &p, &input.view(), "hidden.1").unwrap();
        assert_eq!(
            (h0.shape.as_slice(), h1.shape.as_slice()),
            (&[3, 4][..], &[3, 5][..])
        );
        for i in 0..*n {
            let row: Vec<f64> = x[3 * i..3 * i + 3].iter().map(|&v| f64::from(v)).collect();
            let a0 = layer(0, &row, 4);
            let a1 = layer(1, &a0, 5);
            for (got, want) in [
                (&h0.values[4 * i..4 * i + 4], &a0),
                (&h1.values[5 * i..5 * i + 5], &a1),
            ] {
                for (g, w) in got.iter().zip(want.iter()) {
                    assert!((f64::from(*g) - w).abs() < 1e-5, "{got:?} vs {want:?}");
                }
            }
        }
    }

    /// The readout `w_out h + b_out` of every step's state reproduces the
    /// outputs, for the RNN and the GRU.
    #[test]
    fn readout_of_recurrent_hidden_reproduces_outputs() {
        for spec in [rnn(), gru()] {
            assert_eq!(layers(&spec), ["hidden"]);
            let p = weights(&spec, 3);
            let input = examples(&spec);
            let h = hidden(&spec, &p, &input.view(), "hidden").unwrap();
            let y = outputs(&spec, &p, &input.view()).unwrap();
            assert_eq!(h.shape, [3, 3, 3]);
            assert_eq!(y.shape, [3, 3, 2]);
            let names: Vec<String> = spec.params().into_iter().map(|i| i.name).collect();
            let get = |name: &str| &p[names.iter().position(|n| n == name).unwrap()];
            let (w_out, b_out) = (get("w_out"), get("b_out"));
            for (state, out) in h.values.chunks(3).zip(y.values.chunks(2)) {
                for o in 0..2 {
                    let want = b_out[o] + (0..3).map(|j| w_out[o * 3 + j] * state[j]).sum::<f32>();
                    assert!(
                        (want - out[o]).abs() < 1e-5,
                        "{spec:?}: {want} vs {}",
                        out[o]
                    );
                }
            }
        }
    }

    #[test]
    fn transformer_embed_is_token_plus_position() {
        let spec = transformer();
        assert_eq!(layers(&spec), ["embed", "blocks.0", "blocks.1"]);
        let p = weights(&spec, 4);
        let input = examples(&spec);
        let Owned::Tokens(tokens, ..) = &input else {
            unreachable!()
        };
        let (tok, pos) = (&p[0], &p[1]);
        let embed = hidden(&spec, &p, &input.view(), "embed").unwrap();
        assert_eq!(embed.shape, [3, 3, 4]);
        for (k, &t) in tokens.iter().enumerate() {
            let step = k % 3;
            for j in 0..4 {
                let want = tok[t as usize * 4 + j] + pos[step * 4 + j];
                assert!((embed.values[k * 4 + j] - want).abs() < 1e-6);
            }
        }
        let last = hidden(&spec, &p, &input.view(), "blocks.1").unwrap();
        assert_eq!(last.shape, [3, 3, 4]);
        assert_ne!(last.values, embed.values);
    }

    /// Per-example gradients of `sum_k c[i, k] out[i, k]` for `weight`
    /// against central differences of [`outputs`], at every `stride`-th
    /// entry.
    fn check_against_differences(spec: &ModelSpec, weight: &str, stride: usize) {
        let params = weights(spec, 5);
        let input = examples(spec);
        let y = outputs(spec, &params, &input.view()).unwrap();
        let c = uniform(y.values.len(), 6);
        let g = output_gradients(spec, &params, &input.view(), Some(&c), weight).unwrap();
        let which = spec.params().iter().position(|p| p.name == weight).unwrap();
        let len = params[which].len();
        let mut shape = vec![3];
        shape.extend(&spec.params()[which].shape);
        assert_eq!(g.shape, shape);
        assert!(
            g.values.iter().any(|&v| v.abs() > 1e-3),
            "{weight}: {:?}",
            g.values
        );
        let per = y.values.len() / 3;
        let eps = 1e-2f32;
        for j in (0..len).step_by(stride) {
            let at = |value: f32| {
                let mut p = params.clone();
                p[which][j] = value;
                outputs(spec, &p, &input.view()).unwrap().values
            };
            let (hi, lo) = (params[which][j] + eps, params[which][j] - eps);
            let (up, down) = (at(hi), at(lo));
            for i in 0..3 {
                let delta: f64 = (i * per..(i + 1) * per)
                    .map(|k| f64::from(c[k]) * f64::from(up[k] - down[k]))
                    .sum();
                let fd = delta / f64::from(hi - lo);
                let got = f64::from(g.values[i * len + j]);
                assert!(
                    (fd - got).abs() <= 2e-3 + 1e-2 * got.abs(),
                    "{weight}[{j}], example {i}: autograd {got}, differences {fd}"
                );
            }
        }
    }

    #[test]
    fn mlp_gradients_match_finite_differences() {
        check_against_differences(&mlp(), "layers.0.weight", 1);
    }

    #[test]
    fn rnn_gradients_match_finite_differences() {
        check_against_differences(&rnn(), "w_rec", 1);
    }

    #[test]
    fn transformer_gradients_match_finite_differences() {
        check_against_differences(&transformer(), "layers.0.attn.qkv", 5);
    }

    /// The batched MLP path gives what the per-example loop gives, for every
    /// layer's weight and bias, with and without a cotangent.
    #[test]
    fn batched_mlp_gradients_equal_the_loop() {
        for spec in [mlp(), mlp_lm()] {
            let params = weights(&spec, 10);
            let input = examples(&spec);
            let reads = Reads::of(&spec).unwrap();
            let y = outputs(&spec, &params, &input.view()).unwrap();
            let c = uniform(y.values.len(), 13);
            for (target, info) in spec.params().iter().enumerate() {
                if info.name == "embed" {
                    continue;
                }
                for cot in [None, Some(c.as_slice())] {
                    let batched =
                        output_gradients(&spec, &params, &input.view(), cot, &info.name).unwrap();
                    let looped =
                        looped_gradients(&spec, &params, &reads, &input.view(), cot, target)
                            .unwrap();
                    assert_eq!(batched.values.len(), looped.len(), "{}", info.name);
                    for (b, l) in batched.values.iter().zip(&looped) {
                        assert!(
                            (b - l).abs() <= 1e-6 * (1.0 + l.abs()),
                            "{}: {b} vs {l}",
                            info.name
                        );
                    }
                }
            }
        }
    }

    /// The RNN's batched back-propagation through time gives what one
    /// candle backward pass per example gives, for every parameter, with
    /// and without a cotangent, for token and real inputs, with and without
    /// biases and leak, and over more examples than one chunk holds.
    #[test]
    fn batched_rnn_gradients_equal_the_loop() {
        let relu_dense = ModelSpec::Rnn(RnnSpec {
            input: SequenceInput::Dense { dim: 3 },
            hidden: 5,
            outputs: 3,
            alpha: 1.0,
            activation: Activation::Relu,
            bias: false,
        });
        let n = crate::fast_rnn::GRADIENT_ROWS + 7;
        let long = Owned::Real(uniform(n * 4 * 3, 21), n, 4 * 3);
        for (spec, input) in [
            (rnn(), examples(&rnn())),
            (relu_dense.clone(), examples(&relu_dense)),
            (relu_dense.clone(), long),
        ] {
            let params = weights(&spec, 17);
            let reads = Reads::of(&spec).unwrap();
            let y = outputs(&spec, &params, &input.view()).unwrap();
            let c = uniform(y.values.len(), 19);
            for (target, info) in spec.params().iter().enumerate() {
                for cot in [None, Some(c.as_slice())] {
                    let batched =
                        output_gradients(&spec, &params, &input.view(), cot, &info.name).unwrap();
                    let looped =
                        looped_gradients(&spec, &params, &reads, &input.view(), cot, target)
                            .unwrap();
                    let mut shape = vec![input.view().n()];
                    shape.extend(&info.shape);
                    assert_eq!(batched.shape, shape, "{}", info.name);
                    assert_eq!(batched.values.len(), looped.len(), "{}", info.name);
                    for (b, l) in batched.values.iter().zip(&looped) {
                        assert!(
                            (b - l).abs() <= 1e-5 * (1.0 + l.abs()),
                            "{}: {b} vs {l}",
                            info.name
                        );
                    }
                }
            }
        }
    }

    /// The blocked Gram product equals the plain one, across block edges,
    /// and is exactly symmetric.
    #[test]
    fn blocked_gram_equals_the_full_product() {
        for n in [1, GRAM_BLOCK - 1, GRAM_BLOCK, 2 * GRAM_BLOCK + 5] {
            let len = 9;
            let g = uniform(n * len, n as u64);
            let mut k = vec![1.0f32; n * n];
            gram_add(&mut k, &g, n, len);
            for i in 0..n {
                for j in 0..n {
                    let dot: f64 = (0..len)
                        .map(|p| f64::from(g[i * len + p]) * f64::from(g[j * len + p]))
                        .sum();
                    let got = f64::from(k[i * n + j]) - 1.0;
                    assert!(
                        (got - dot).abs() < 1e-5,
                        "n {n}, ({i}, {j}): {got} vs {dot}"
                    );
                    assert_eq!(k[i * n + j], k[j * n + i]);
                }
            }
        }
    }

    /// The kernel is the Gram matrix of the per-example gradients, for one
    /// weight and for every parameter together.
    #[test]
    fn kernel_is_the_gram_matrix_of_the_gradients() {
        for spec in [mlp(), rnn(), gru()] {
            let params = weights(&spec, 23);
            let input = examples(&spec);
            let n = input.view().n();
            let y = outputs(&spec, &params, &input.view()).unwrap();
            let c = uniform(y.values.len(), 29);
            let mut all = vec![0.0f64; n * n];
            for info in spec.params() {
                let g = output_gradients(&spec, &params, &input.view(), Some(&c), &info.name)
                    .unwrap()
                    .values;
                let len = g.len() / n;
                let gram: Vec<f64> = (0..n * n)
                    .map(|ij| {
                        let (i, j) = (ij / n, ij % n);
                        (0..len)
                            .map(|p| f64::from(g[i * len + p]) * f64::from(g[j * len + p]))
                            .sum()
                    })
                    .collect();
                let k =
                    gradient_kernel(&spec, &params, &input.view(), Some(&c), &info.name).unwrap();
                assert_eq!(k.shape, [n, n]);
                for (a, b) in k.values.iter().zip(&gram) {
                    assert!(
                        (f64::from(*a) - b).abs() <= 1e-5 * (1.0 + b.abs()),
                        "{a} vs {b}"
                    );
                }
                all.iter_mut().zip(&gram).for_each(|(a, g)| *a += g);
            }
            let k = gradient_kernel(&spec, &params, &input.view(), Some(&c), "*").unwrap();
            for (a, b) in k.values.iter().zip(&all) {
                assert!(
                    (f64::from(*a) - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{a} vs {b}"
                );
            }
        }
        let err = gradient_kernel(
            &rnn(),
            &weights(&rnn(), 1),
            &examples(&rnn()).view(),
            None,
            "w",
        )
        .unwrap_err();
        assert!(matches!(err, ProbeError::UnknownWeight { .. }), "{err}");
    }

    /// With all-ones cotangents, the per-example gradients add up to the
    /// gradient of the summed outputs of the whole batch.
    #[test]
    fn per_example_gradients_sum_to_the_batch_gradient() {
        for (spec, weight) in [
            (mlp_lm(), "embed"),
            (gru(), "w_hh"),
            (transformer(), "pos"),
            (rnn(), "b_out"),
        ] {
            let params = weights(&spec, 7);
            let input = examples(&spec);
            let g = output_gradients(&spec, &params, &input.view(), None, weight).unwrap();
            let (net, vars) = direct(&spec, &params);
            let which = spec.params().iter().position(|p| p.name == weight).unwrap();
            let y = net.forward(&direct_input(&spec, &input)).unwrap();
            let grads = y.sum_all().unwrap().backward().unwrap();
            let want: Vec<f32> = grads
                .get(&vars[which])
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let len = want.len();
            for (j, w) in want.iter().enumerate() {
                let sum: f32 = (0..3).map(|i| g.values[i * len + j]).sum();
                assert!(
                    (sum - w).abs() <= 1e-5 * (1.0 + w.abs()),
                    "{weight}[{j}]: {sum} vs {w}"
                );
            }
        }
    }

    #[test]
    fn zero_examples_give_empty_results() {
        let spec = rnn();
        let p = weights(&spec, 8);
        let none = ProbeInput::Tokens {
            tokens: &[],
            n: 0,
            len: 5,
        };
        let empty = |shape: &[usize]| Probed {
            values: Vec::new(),
            shape: shape.to_vec(),
        };
        assert_eq!(outputs(&spec, &p, &none).unwrap(), empty(&[0, 5, 2]));
        assert_eq!(
            hidden(&spec, &p, &none, "hidden").unwrap(),
            empty(&[0, 5, 3])
        );
        let g = output_gradients(&spec, &p, &none, Some(&[]), "w_rec").unwrap();
        assert_eq!(g, empty(&[0, 3, 3]));
    }

    /// Every wrong thing a plugin can pass is an error with a message that
    /// says what was expected.
    #[test]
    fn bad_inputs_are_errors() {
        let (spec, p) = (mlp(), weights(&mlp(), 9));
        let x = [0.5f32; 6];
        let good = ProbeInput::Real {
            x: &x,
            n: 2,
            len: 3,
        };
        let message = |r: Result<Probed, ProbeError>| r.unwrap_err().to_string();

        let err = hidden(&spec, &p, &good, "hidden.2").unwrap_err();
        assert!(matches!(err, ProbeError::UnknownLayer { .. }), "{err}");
        assert!(err.to_string().contains("hidden.0, hidden.1"), "{err}");
        let two_layer = ModelSpec::Mlp(MlpSpec {
            widths: vec![3, 2],
            ..match mlp() {
                ModelSpec::Mlp(m) => m,
                _ => unreachable!(),
            }
        });
        let err = message(hidden(
            &two_layer,
            &weights(&two_layer, 1),
            &good,
            "hidden.0",
        ));
        assert!(err.contains("(none)"), "{err}");

        let err = output_gradients(&spec, &p, &good, None, "layers.9.weight").unwrap_err();
        assert!(matches!(err, ProbeError::UnknownWeight { .. }), "{err}");
        assert!(
            err.to_string().contains("layers.0.weight, layers.0.bias"),
            "{err}"
        );

        let short = ProbeInput::Real {
            x: &x[..4],
            n: 2,
            len: 2,
        };
        let err = message(outputs(&spec, &p, &short));
        assert_eq!(err, "expected 3 inputs per example for mlp, got 2");
        let err = outputs(
            &spec,
            &p,
            &ProbeInput::Real {
                x: &x[..5],
                n: 2,
                len: 3,
            },
        )
        .unwrap_err();
        assert!(matches!(err, ProbeError::InputData { got: 5, .. }), "{err}");
        let huge = ProbeInput::Real {
            x: &x,
            n: usize::MAX,
            len: 3,
        };
        assert!(matches!(
            outputs(&spec, &p, &huge),
            Err(ProbeError::InputData { .. })
        ));

        let tokens = ProbeInput::Tokens {
            tokens: &[0, 1, 2],
            n: 1,
            len: 3,
        };
        let err = message(outputs(&spec, &p, &tokens));
        assert_eq!(err, "tokens given to a model reading real inputs (mlp)");
        let err = message(outputs(&rnn(), &weights(&rnn(), 1), &good));
        assert_eq!(err, "real inputs given to a model reading tokens (rnn)");

        let lm = mlp_lm();
        let out_of_vocab = ProbeInput::Tokens {
            tokens: &[0, 1, 2, 4, 5, 1],
            n: 2,
            len: 3,
        };
        let err = outputs(&lm, &weights(&lm, 1), &out_of_vocab).unwrap_err();
        assert!(
            matches!(
                err,
                ProbeError::TokenOutOfVocabulary {
                    token: 5,
                    example: 1,
                    position: 1,
                    vocab: 5
                }
            ),
            "{err}"
        );

        let t = transformer();
        let long = ProbeInput::Tokens {
            tokens: &[0; 5],
            n: 1,
            len: 5,
        };
        let err = message(outputs(&t, &weights(&t, 1), &long));
        assert_eq!(
            err,
            "expected 1 to 4 tokens per example for transformer, got 5"
        );
        let g = gru();
        let ragged = ProbeInput::Real {
            x: &x[..5],
            n: 1,
            len: 5,
        };
        let err = message(hidden(&g, &weights(&g, 1), &ragged, "hidden"));
        assert!(err.contains("a multiple of 2 values"), "{err}");
        let no_steps = ProbeInput::Real {
            x: &[],
            n: 1,
            len: 0,
        };
        let err = message(outputs(&g, &weights(&g, 1), &no_steps));
        assert!(err.contains("at least 1 step of 2 values"), "{err}");

        let err = output_gradients(&spec, &p, &good, Some(&[1.0; 3]), "layers.0.bias").unwrap_err();
        assert!(
            matches!(
                err,
                ProbeError::CotangentLength {
                    expected: 4,
                    got: 3,
                    ..
                }
            ),
            "{err}"
        );

        let err = outputs(&spec, &p[..3], &good).unwrap_err();
        assert!(
            matches!(
                err,
                ProbeError::ParamCount {
                    expected: 6,
                    got: 3
                }
            ),
            "{err}"
        );
        let mut wrong = p.clone();
        wrong[2].pop();
        let err = message(output_gradients(
            &spec,
            &wrong,
            &good,
            None,
            "layers.0.bias",
        ));
        assert_eq!(
            err,
            "parameter layers.1.weight has shape [5, 4] (20 values), got 19"
        );

        let no_layers = ModelSpec::Mlp(MlpSpec {
            widths: vec![3],
            ..match mlp() {
                ModelSpec::Mlp(m) => m,
                _ => unreachable!(),
            }
        });
        let err = outputs(&no_layers, &[], &good).unwrap_err();
        assert!(matches!(err, ProbeError::Model(_)), "{err}");
        let ModelSpec::Gru(mut flat) = gru() else {
            unreachable!()
        };
        flat.input = SequenceInput::Dense { dim: 0 };
        let flat = ModelSpec::Gru(flat);
        let err = message(outputs(&flat, &weights(&flat, 1), &no_steps));
        assert!(err.contains("w_ih has shape [9, 0], no values"), "{err}");
        let ModelSpec::Transformer(mut odd) = transformer() else {
            unreachable!()
        };
        odd.heads = 3;
        let odd = ModelSpec::Transformer(odd);
        let err = outputs(
            &odd,
            &weights(&odd, 1),
            &ProbeInput::Tokens {
                tokens: &[1, 2],
                n: 1,
                len: 2,
            },
        )
        .unwrap_err();
        assert!(matches!(err, ProbeError::Candle(_)), "{err}");
    }
}
