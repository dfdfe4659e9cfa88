//! Model specifications and their parameter layouts.
//!
//! A [`ModelSpec`] says what a network is; [`ModelSpec::params`] lists its
//! parameters in a fixed order with their names and shapes. Every training
//! path (candle, the fast paths on gemm, the batched path), development,
//! checkpoints and `lineage export` index parameters through this one list,
//! so a name means the same tensor everywhere.

use lineage_env::Task;

/// A hidden-unit nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// max(0, x).
    Relu,
    /// GELU, tanh approximation (as `jax.nn.gelu` and candle's `gelu`).
    Gelu,
    /// tanh.
    Tanh,
    /// The identity: a linear network.
    Linear,
}

impl Activation {
    /// Parses a scenario name.
    pub fn parse(name: &str) -> Option<Activation> {
        Some(match name {
            "relu" => Activation::Relu,
            "gelu" => Activation::Gelu,
            "tanh" => Activation::Tanh,
            "linear" => Activation::Linear,
            _ => return None,
        })
    }

    /// The names [`Activation::parse`] accepts.
    pub const NAMES: &[&str] = &["relu", "gelu", "tanh", "linear"];
}

/// What a loss compares the model's output with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Mean squared error over every output of every example.
    MeanSquared,
    /// Softmax cross-entropy, averaged over the examples (or tokens).
    CrossEntropy,
}

impl Loss {
    /// The loss a task is scored by.
    pub fn of(task: &Task) -> Loss {
        match task {
            Task::Regression { .. } => Loss::MeanSquared,
            Task::Classification { .. }
            | Task::SequenceClassification { .. }
            | Task::NextToken { .. } => Loss::CrossEntropy,
        }
    }
}

/// A token front end: each of `context` tokens looks up a `dim`-wide row
/// of an embedding table, and the rows are concatenated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Embedding {
    /// Vocabulary size (rows of the table).
    pub vocab: usize,
    /// Width of one token's embedding.
    pub dim: usize,
    /// Tokens read.
    pub context: usize,
}

/// A multi-layer perceptron, optionally over a token context (an MLP
/// language model).
#[derive(Clone, Debug, PartialEq)]
pub struct MlpSpec {
    /// Token front end; `None` for real-valued inputs.
    pub embedding: Option<Embedding>,
    /// Layer widths from input to output; with an embedding the input
    /// width is `context * dim`.
    pub widths: Vec<usize>,
    /// Nonlinearity after every layer but the last.
    pub activation: Activation,
    /// Whether layers have biases.
    pub bias: bool,
}

/// What a sequence model reads at each step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceInput {
    /// One token of a vocabulary (one-hot, i.e. a column of the input matrix).
    Tokens {
        /// Vocabulary size.
        vocab: usize,
    },
    /// A real vector.
    Dense {
        /// Its width.
        dim: usize,
    },
}

impl SequenceInput {
    /// Width of the (one-hot or real) input vector.
    pub fn width(self) -> usize {
        match self {
            SequenceInput::Tokens { vocab } => vocab,
            SequenceInput::Dense { dim } => dim,
        }
    }
}

/// A leaky recurrent network
/// `h[t+1] = act((1 - a) h[t] + a (W_in x[t] + W_rec h[t] + b))`, `h[0] = 0`,
/// with a linear readout `y[t] = W_out h[t+1] + b_out` at every step.
#[derive(Clone, Debug, PartialEq)]
pub struct RnnSpec {
    /// Input at each step.
    pub input: SequenceInput,
    /// Recurrent units.
    pub hidden: usize,
    /// Readout width.
    pub outputs: usize,
    /// Leak `a` in (0, 1]; 1 is the plain `h = act(W_in x + W_rec h)`.
    pub alpha: f32,
    /// Nonlinearity.
    pub activation: Activation,
    /// Whether the recurrent layer and readout have biases.
    pub bias: bool,
}

/// A gated recurrent unit (PyTorch's gate order r, z, n) with a linear
/// readout at every step.
#[derive(Clone, Debug, PartialEq)]
pub struct GruSpec {
    /// Input at each step.
    pub input: SequenceInput,
    /// Hidden units.
    pub hidden: usize,
    /// Readout width.
    pub outputs: usize,
}

/// A small causal transformer: token (or projected dense) and learned
/// position embeddings, `layers` blocks of multi-head attention and an MLP
/// (pre-LayerNorm, or without LayerNorm as in Reddy's model), a final
/// LayerNorm (with `layer_norm`) and a linear readout at every position.
#[derive(Clone, Debug, PartialEq)]
pub struct TransformerSpec {
    /// Input at each position.
    pub input: SequenceInput,
    /// Longest sequence (rows of the position table).
    pub context: usize,
    /// Residual stream width.
    pub d_model: usize,
    /// Attention heads; must divide `d_model`.
    pub heads: usize,
    /// Blocks.
    pub layers: usize,
    /// Hidden width of each block's MLP.
    pub d_ff: usize,
    /// Readout width.
    pub outputs: usize,
    /// Pre-LayerNorm blocks and a final LayerNorm (`true`, the default), or
    /// no LayerNorm anywhere (`false`: no `ln*` parameters).
    pub layer_norm: bool,
    /// The MLP blocks' nonlinearity (GELU by default).
    pub activation: Activation,
}

/// Any network Lineage can train.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelSpec {
    /// Multi-layer perceptron (also the two-layer linear network, with
    /// linear activation and no biases).
    Mlp(MlpSpec),
    /// Leaky recurrent network.
    Rnn(RnnSpec),
    /// Gated recurrent unit.
    Gru(GruSpec),
    /// Causal transformer.
    Transformer(TransformerSpec),
}

/// What a parameter is, which decides its default initialisation and
/// whether it can carry a connectivity mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A weight matrix `[rows, cols]` with the given fan-in; maskable.
    Matrix {
        /// Inputs per output unit.
        fan_in: usize,
    },
    /// An embedding table `[vocab, dim]`; maskable.
    Embedding,
    /// A bias vector, initialised to zero.
    Bias,
    /// A LayerNorm gain, initialised to one.
    Gain,
}

impl Role {
    /// True for the 2-D weights a mask or connectome may cover.
    pub fn maskable(self) -> bool {
        matches!(self, Role::Matrix { .. } | Role::Embedding)
    }
}

/// One parameter of a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    /// Its name, as in checkpoints and exports.
    pub name: String,
    /// Its shape (one or two dimensions).
    pub shape: Vec<usize>,
    /// What it is.
    pub role: Role,
}

impl ParamInfo {
    fn matrix(name: impl Into<String>, rows: usize, cols: usize) -> ParamInfo {
        ParamInfo {
            name: name.into(),
            shape: vec![rows, cols],
            role: Role::Matrix { fan_in: cols },
        }
    }

    fn vector(name: impl Into<String>, len: usize, role: Role) -> ParamInfo {
        ParamInfo {
            name: name.into(),
            shape: vec![len],
            role,
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True for a parameter with no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ModelSpec {
    /// The parameters, in the order every part of Lineage stores them.
    pub fn params(&self) -> Vec<ParamInfo> {
        let mut p = Vec::new();
        match self {
            ModelSpec::Mlp(m) => {
                if let Some(e) = m.embedding {
                    p.push(ParamInfo {
                        name: "embed".into(),
                        shape: vec![e.vocab, e.dim],
                        role: Role::Embedding,
                    });
                }
                for (i, w) in m.widths.windows(2).enumerate() {
                    p.push(ParamInfo::matrix(format!("layers.{i}.weight"), w[1], w[0]));
                    if m.bias {
                        p.push(ParamInfo::vector(
                            format!("layers.{i}.bias"),
                            w[1],
                            Role::Bias,
                        ));
                    }
                }
            }
            ModelSpec::Rnn(r) => {
                p.push(ParamInfo::matrix("w_in", r.hidden, r.input.width()));
                p.push(ParamInfo::matrix("w_rec", r.hidden, r.hidden));
                if r.bias {
                    p.push(ParamInfo::vector("b", r.hidden, Role::Bias));
                }
                p.push(ParamInfo::matrix("w_out", r.outputs, r.hidden));
                if r.bias {
                    p.push(ParamInfo::vector("b_out", r.outputs, Role::Bias));
                }
            }
            ModelSpec::Gru(g) => {
                p.push(ParamInfo::matrix("w_ih", 3 * g.hidden, g.input.width()));
                p.push(ParamInfo::matrix("w_hh", 3 * g.hidden, g.hidden));
                p.push(ParamInfo::vector("b_ih", 3 * g.hidden, Role::Bias));
                p.push(ParamInfo::vector("b_hh", 3 * g.hidden, Role::Bias));
                p.push(ParamInfo::matrix("w_out", g.outputs, g.hidden));
                p.push(ParamInfo::vector("b_out", g.outputs, Role::Bias));
            }
            ModelSpec::Transformer(t) => {
                let d = t.d_model;
                match t.input {
                    SequenceInput::Tokens { vocab } => p.push(ParamInfo {
                        name: "tok".into(),
                        shape: vec![vocab, d],
                        role: Role::Embedding,
                    }),
                    SequenceInput::Dense { dim } => {
                        p.push(ParamInfo::matrix("w_in", d, dim));
                        p.push(ParamInfo::vector("b_in", d, Role::Bias));
                    }
                }
                p.push(ParamInfo {
                    name: "pos".into(),
                    shape: vec![t.context, d],
                    role: Role::Embedding,
                });
                for l in 0..t.layers {
                    let n = |s: &str| format!("layers.{l}.{s}");
                    if t.layer_norm {
                        p.push(ParamInfo::vector(n("ln1.weight"), d, Role::Gain));
                        p.push(ParamInfo::vector(n("ln1.bias"), d, Role::Bias));
                    }
                    p.push(ParamInfo::matrix(n("attn.qkv"), 3 * d, d));
                    p.push(ParamInfo::matrix(n("attn.out"), d, d));
                    if t.layer_norm {
                        p.push(ParamInfo::vector(n("ln2.weight"), d, Role::Gain));
                        p.push(ParamInfo::vector(n("ln2.bias"), d, Role::Bias));
                    }
                    p.push(ParamInfo::matrix(n("mlp.fc"), t.d_ff, d));
                    p.push(ParamInfo::vector(n("mlp.fc_bias"), t.d_ff, Role::Bias));
                    p.push(ParamInfo::matrix(n("mlp.proj"), d, t.d_ff));
                    p.push(ParamInfo::vector(n("mlp.proj_bias"), d, Role::Bias));
                }
                if t.layer_norm {
                    p.push(ParamInfo::vector("ln_f.weight", d, Role::Gain));
                    p.push(ParamInfo::vector("ln_f.bias", d, Role::Bias));
                }
                p.push(ParamInfo::matrix("head", t.outputs, d));
            }
        }
        p
    }

    /// Total number of parameters.
    pub fn parameter_count(&self) -> usize {
        self.params().iter().map(ParamInfo::len).sum()
    }

    /// Checks that the model can read and answer `task`; the message says
    /// what does not fit.
    pub fn check_task(&self, task: &Task) -> Result<(), String> {
        let (reads, answers) = match self {
            ModelSpec::Mlp(m) => {
                let first = m.widths.first().copied().unwrap_or(0);
                let last = m.widths.last().copied().unwrap_or(0);
                if let Some(e) = m.embedding
                    && first != e.context * e.dim
                {
                    return Err(format!(
                        "the first layer reads {first} values but the embedding gives {} tokens x {} = {}",
                        e.context,
                        e.dim,
                        e.context * e.dim
                    ));
                }
                let reads = match m.embedding {
                    Some(e) => Reads::Tokens {
                        vocab: e.vocab,
                        context: e.context,
                    },
                    None => Reads::Dense(first),
                };
                (reads, last)
            }
            ModelSpec::Rnn(RnnSpec { input, outputs, .. })
            | ModelSpec::Gru(GruSpec { input, outputs, .. }) => {
                (Reads::sequence(*input, None), *outputs)
            }
            ModelSpec::Transformer(t) => (Reads::sequence(t.input, Some(t.context)), t.outputs),
        };
        match (task, reads) {
            (Task::Regression { inputs, outputs }, Reads::Dense(width)) => {
                fits("inputs", *inputs, width)?;
                fits("outputs", *outputs, answers)
            }
            (Task::Classification { inputs, classes }, Reads::Dense(width)) => {
                fits("inputs", *inputs, width)?;
                fits("classes", *classes, answers)
            }
            (
                Task::SequenceClassification {
                    inputs,
                    classes,
                    steps,
                },
                Reads::DenseSequence { width, longest },
            ) => {
                fits("inputs", *inputs, width)?;
                if let Some(longest) = longest
                    && longest < *steps
                {
                    return Err(format!(
                        "the model's position table holds {longest} positions but the environment's sequences have {steps} steps"
                    ));
                }
                fits("classes", *classes, answers)
            }
            (
                Task::NextToken { vocab, context },
                Reads::Tokens {
                    vocab: v,
                    context: c,
                },
            ) => {
                fits("vocabulary", *vocab, v)?;
                if c > *context {
                    return Err(format!(
                        "the model reads a context of {c} tokens but the environment's windows hold {context}"
                    ));
                }
                fits("vocabulary (outputs)", *vocab, answers)
            }
            (Task::NextToken { vocab, context }, Reads::TokenSequence { vocab: v, longest }) => {
                fits("vocabulary", *vocab, v)?;
                if let Some(longest) = longest
                    && longest < *context
                {
                    return Err(format!(
                        "the model's position table holds {longest} positions but the environment's windows hold {context} tokens"
                    ));
                }
                fits("vocabulary (outputs)", *vocab, answers)
            }
            (task, _) => Err(format!(
                "this model cannot read the environment's data ({task:?})"
            )),
        }
    }
}

#[derive(Clone, Copy)]
enum Reads {
    Dense(usize),
    Tokens {
        vocab: usize,
        context: usize,
    },
    TokenSequence {
        vocab: usize,
        longest: Option<usize>,
    },
    DenseSequence {
        width: usize,
        longest: Option<usize>,
    },
}

impl Reads {
    fn sequence(input: SequenceInput, longest: Option<usize>) -> Reads {
        match input {
            SequenceInput::Tokens { vocab } => Reads::TokenSequence { vocab, longest },
            SequenceInput::Dense { dim } => Reads::DenseSequence {
                width: dim,
                longest,
            },
        }
    }
}

fn fits(what: &str, environment: usize, model: usize) -> Result<(), String> {
    if environment == model {
        Ok(())
    } else {
        Err(format!(
            "the environment has {environment} {what} but the model has {model}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlp_language_model_of_the_connectome_recipe_has_28k_weights() {
        let spec = ModelSpec::Mlp(MlpSpec {
            embedding: Some(Embedding {
                vocab: 64,
                dim: 16,
                context: 8,
            }),
            widths: vec![128, 128, 64],
            activation: Activation::Gelu,
            bias: false,
        });
        // 64*16 + 128*128 + 128*64 (science.md: "about 28k weights").
        assert_eq!(spec.parameter_count(), 1024 + 16384 + 8192);
        assert!(spec.params().iter().all(|p| p.role.maskable()));
        assert!(
            spec.check_task(&Task::NextToken {
                vocab: 64,
                context: 8
            })
            .is_ok()
        );
        let err = spec
            .check_task(&Task::NextToken {
                vocab: 65,
                context: 8,
            })
            .unwrap_err();
        assert!(err.contains("65 vocabulary"), "{err}");
    }

    #[test]
    fn transformer_layout_names_every_block() {
        let spec = ModelSpec::Transformer(TransformerSpec {
            input: SequenceInput::Tokens { vocab: 32 },
            context: 16,
            d_model: 32,
            heads: 4,
            layers: 2,
            d_ff: 64,
            outputs: 32,
            layer_norm: true,
            activation: Activation::Gelu,
        });
        let names: Vec<String> = spec.params().into_iter().map(|p| p.name).collect();
        assert!(names.contains(&"layers.1.attn.qkv".to_string()));
        assert_eq!(names.first().map(String::as_str), Some("tok"));
        assert_eq!(names.last().map(String::as_str), Some("head"));
        let err = spec
            .check_task(&Task::NextToken {
                vocab: 32,
                context: 17,
            })
            .unwrap_err();
        assert!(err.contains("16 positions"), "{err}");
    }
}
