//! Model specifications and their parameter layouts.
//!
//! A [`ModelSpec`] says what a network is: one of the five built-in
//! families, whose specifications are here because the fast paths read
//! them, or a family registered in `models::REGISTERED`. Either way it is
//! a [`Family`], and [`ModelSpec::params`] lists its
//! parameters in a fixed order with their names and shapes. Every training
//! path (candle, the fast paths on gemm, the batched path), development,
//! checkpoints and `lineage export` index parameters through this one list,
//! so a name means the same tensor everywhere.

use lineage_env::Task;

use crate::family::{Family, Reads, Registered};

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

/// A long short-term memory (PyTorch's gate order i, f, g, o; the forget
/// gate's bias starts at 1, a constant added to its pre-activation, see
/// `models/lstm.rs`) with a linear readout at every step.
#[derive(Clone, Debug, PartialEq)]
pub struct LstmSpec {
    /// Input at each step.
    pub input: SequenceInput,
    /// Hidden units (the width of both the state and the cell).
    pub hidden: usize,
    /// Readout width.
    pub outputs: usize,
}

/// A small causal transformer: token (or projected dense) and learned
/// position embeddings, `layers` blocks of multi-head attention and an MLP
/// (pre-LayerNorm, or without LayerNorm as in Reddy's model), a final
/// LayerNorm (with `layer_norm`), optional ReLU layers (`head`) and a
/// linear readout at every position.
///
/// Reddy's model (ICLR 2024) is the special case `embed = false`,
/// `positions = false` (the tokens, which carry a one-hot position, are the
/// residual stream), `layer_norm = false`, `d_ff = 0` (attention-only
/// blocks), `attn_out = false`, `attn_scale = false` (`x += softmax(q k^T)
/// v`, as his code computes it) and `head = [128, 128, 128]`.
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
    /// Hidden width of each block's MLP; 0: attention-only blocks, with
    /// no `mlp.*` parameters (and no `ln2`, which would feed nothing).
    pub d_ff: usize,
    /// Readout width.
    pub outputs: usize,
    /// Pre-LayerNorm blocks and a final LayerNorm (`true`, the default), or
    /// no LayerNorm anywhere (`false`: no `ln*` parameters).
    pub layer_norm: bool,
    /// The MLP blocks' nonlinearity (GELU by default).
    pub activation: Activation,
    /// An input embedding (`true`, the default: `tok`, or `w_in` and
    /// `b_in`), or none (`false`): the real inputs are the residual stream
    /// itself, so they must be `d_model` wide.
    pub embed: bool,
    /// A learned position table `pos` added to the stream (`true`, the
    /// default), or none (`false`: the inputs carry their positions, and
    /// sequences of any length are read).
    pub positions: bool,
    /// Each block's attention output projection `attn.out` (`true`, the
    /// default), or none (`false`: the heads' values, concatenated, are
    /// added to the stream as they are).
    pub attn_out: bool,
    /// Attention scores scaled by `1 / sqrt(d_model / heads)` (`true`, the
    /// default), or the plain `q . k` (`false`).
    pub attn_scale: bool,
    /// Widths of the ReLU layers (`head_layers.{i}.weight`, `.bias`)
    /// between the final residual stream (after `ln_f`) and the readout
    /// `head`, applied at every position; empty by default.
    pub head: Vec<usize>,
}

impl TransformerSpec {
    /// The width the readout `head` reads: the last of [`Self::head`], or
    /// `d_model`.
    pub fn readout_width(&self) -> usize {
        self.head.last().copied().unwrap_or(self.d_model)
    }

    /// `self` with each of Reddy's options alone (`head` the head layers'
    /// widths), named as a scenario writes it: the variants the two
    /// training paths' tests run.
    #[cfg(test)]
    pub(crate) fn each_option(&self, head: Vec<usize>) -> Vec<(String, TransformerSpec)> {
        let with = |what: &str, change: &dyn Fn(&mut TransformerSpec)| {
            let mut s = self.clone();
            change(&mut s);
            (what.to_owned(), s)
        };
        vec![
            with("d_ff = 0", &|s| s.d_ff = 0),
            with("embed = false", &|s| s.embed = false),
            with("positions = false", &|s| s.positions = false),
            with("attn_out = false", &|s| s.attn_out = false),
            with("attn_scale = false", &|s| s.attn_scale = false),
            with(&format!("head = {head:?}"), &|s| s.head = head.clone()),
        ]
    }
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
    /// Long short-term memory.
    Lstm(LstmSpec),
    /// Causal transformer.
    Transformer(TransformerSpec),
    /// A family registered in `models::REGISTERED` (trained by candle
    /// autograd, on the CPU or CUDA).
    Registered(Registered),
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
    /// A weight matrix `[rows, cols]` (fan-in `cols`).
    pub fn matrix(name: impl Into<String>, rows: usize, cols: usize) -> ParamInfo {
        ParamInfo {
            name: name.into(),
            shape: vec![rows, cols],
            role: Role::Matrix { fan_in: cols },
        }
    }

    /// A vector of `len` values.
    pub fn vector(name: impl Into<String>, len: usize, role: Role) -> ParamInfo {
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
    /// The family this model belongs to: what every part of Lineage asks
    /// of a model that is not one of its own fast paths.
    pub fn family(&self) -> &dyn Family {
        match self {
            ModelSpec::Mlp(m) => m,
            ModelSpec::Rnn(r) => r,
            ModelSpec::Gru(g) => g,
            ModelSpec::Lstm(l) => l,
            ModelSpec::Transformer(t) => t,
            ModelSpec::Registered(r) => r.family(),
        }
    }

    /// The parameters, in the order every part of Lineage stores them.
    pub fn params(&self) -> Vec<ParamInfo> {
        self.family().params()
    }

    /// Total number of parameters.
    pub fn parameter_count(&self) -> usize {
        self.params().iter().map(ParamInfo::len).sum()
    }

    /// Checks that the model can read and answer `task`; the message says
    /// what does not fit.
    pub fn check_task(&self, task: &Task) -> Result<(), String> {
        let family = self.family();
        family.check()?;
        let answers = family.outputs();
        match (task, family.reads()) {
            (Task::Regression { inputs, outputs }, Reads::Dense { width }) => {
                fits("inputs", *inputs, width)?;
                fits("outputs", *outputs, answers)
            }
            (Task::Classification { inputs, classes }, Reads::Dense { width }) => {
                fits("inputs", *inputs, width)?;
                fits("classes", *classes, answers)
            }
            (
                Task::SequenceClassification {
                    inputs,
                    classes,
                    steps,
                },
                Reads::Steps {
                    input: SequenceInput::Dense { dim },
                    longest,
                },
            ) => {
                fits("inputs", *inputs, dim)?;
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
                Reads::Context {
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
            (
                Task::NextToken { vocab, context },
                Reads::Steps {
                    input: SequenceInput::Tokens { vocab: v },
                    longest,
                },
            ) => {
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
            embed: true,
            positions: true,
            attn_out: true,
            attn_scale: true,
            head: Vec::new(),
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

    /// Checkpoints and exports index weights by this order: the options
    /// Reddy's model needs must leave the default layout as it was.
    #[test]
    fn default_transformer_layout_is_the_one_checkpoints_hold() {
        let spec = ModelSpec::Transformer(TransformerSpec {
            input: SequenceInput::Dense { dim: 3 },
            context: 4,
            d_model: 8,
            heads: 2,
            layers: 2,
            d_ff: 12,
            outputs: 2,
            layer_norm: true,
            activation: Activation::Gelu,
            embed: true,
            positions: true,
            attn_out: true,
            attn_scale: true,
            head: Vec::new(),
        });
        let block = |l: usize| {
            [
                "ln1.weight",
                "ln1.bias",
                "attn.qkv",
                "attn.out",
                "ln2.weight",
                "ln2.bias",
                "mlp.fc",
                "mlp.fc_bias",
                "mlp.proj",
                "mlp.proj_bias",
            ]
            .map(|n| format!("layers.{l}.{n}"))
        };
        let mut expected = vec!["w_in".to_string(), "b_in".into(), "pos".into()];
        expected.extend(block(0));
        expected.extend(block(1));
        expected.extend(["ln_f.weight".into(), "ln_f.bias".into(), "head".into()]);
        let names: Vec<String> = spec.params().into_iter().map(|p| p.name).collect();
        assert_eq!(names, expected);
        assert_eq!(
            spec.parameter_count(),
            3 * 8 + 8 + 4 * 8 + 2 * (4 * 8 + 4 * 64 + 2 * 96 + 12 + 8) + 2 * 8 + 16
        );
    }
}
