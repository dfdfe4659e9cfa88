//! What a model reads: the checks that turn a plugin's [`ProbeInput`]
//! into the model's input, or a [`ProbeError`] naming what is wrong.

use std::ops::Range;

use candle_core::Tensor;

use crate::family::Reads;
use crate::models::Input;
use crate::spec::{ModelSpec, SequenceInput};

use super::*;

/// What a model reads, for checking and laying out a [`ProbeInput`].
#[derive(Clone)]
pub(crate) struct Probe {
    /// The model's name in messages.
    pub(crate) model: String,
    pub(crate) kind: Kind,
    /// Most steps (a transformer's position table).
    pub(crate) longest: Option<usize>,
}

#[derive(Clone, Copy)]
pub(crate) enum Kind {
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
pub(crate) struct InputShape {
    pub(crate) n: usize,
    pub(crate) steps: usize,
}

impl Probe {
    pub(crate) fn of(spec: &ModelSpec) -> Result<Probe, ProbeError> {
        if let Some(empty) = spec.params().into_iter().find(|p| p.is_empty()) {
            return Err(ProbeError::Model(format!(
                "its parameter {} has shape {:?}, no values",
                empty.name, empty.shape
            )));
        }
        let family = spec.family();
        family.check().map_err(ProbeError::Model)?;
        let kind = family.kind();
        Ok(match family.reads() {
            Reads::Dense { width } => Probe {
                model: kind.to_owned(),
                kind: Kind::Real { width },
                longest: None,
            },
            Reads::Context { vocab, context } => Probe {
                model: format!("{kind} language model"),
                kind: Kind::Context { vocab, context },
                longest: None,
            },
            Reads::Steps { input, longest } => Probe {
                model: kind.to_owned(),
                kind: match input {
                    SequenceInput::Tokens { vocab } => Kind::TokenSteps { vocab },
                    SequenceInput::Dense { dim } => Kind::RealSteps { dim },
                },
                longest,
            },
        })
    }

    /// Checks that `input` is what the model reads; its examples and steps.
    pub(crate) fn check(&self, input: &ProbeInput) -> Result<InputShape, ProbeError> {
        let (n, len, data) = match *input {
            ProbeInput::Real { x, n, len } => (n, len, x.len()),
            ProbeInput::Tokens { tokens, n, len } => (n, len, tokens.len()),
        };
        let reads_tokens = matches!(self.kind, Kind::Context { .. } | Kind::TokenSteps { .. });
        let given_tokens = matches!(input, ProbeInput::Tokens { .. });
        if reads_tokens != given_tokens {
            let name = |tokens| if tokens { "tokens" } else { "real inputs" };
            return Err(ProbeError::InputKind {
                model: self.model.clone(),
                given: name(given_tokens),
                reads: name(reads_tokens),
            });
        }
        let wrong = |expected: String| ProbeError::InputLength {
            model: self.model.clone(),
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
            // dim > 0: `Probe::of` refuses an empty input matrix.
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
    pub(crate) fn examples(
        &self,
        input: &ProbeInput,
        range: Range<usize>,
    ) -> candle_core::Result<Input> {
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
pub(crate) fn list(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".into()
    } else {
        names.join(", ")
    }
}
