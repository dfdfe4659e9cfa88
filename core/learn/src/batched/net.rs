//! The network of a chunk: where each parameter sits in an organism's
//! row of the `[P, N]` weights, what the forward pass reads, and the
//! per-example losses. The families' forward passes are in `mlp.rs` (MLPs
//! and MLP language models), `recurrent.rs` (leaky RNN, GRU, LSTM) and
//! `transformer.rs` (the causal transformer).

use candle_core::{D, Tensor};
use lineage_env::Batch;

use super::mlp::Mlp;
use super::recurrent::Recurrent;
use super::transformer::Transformer;
use super::unsupported;
use crate::LearnError;
use crate::spec::{Activation, Loss, ModelSpec, SequenceInput};

/// A model the batched path trains: its layout in an organism's row, and
/// its forward pass.
pub(super) struct Net<'s> {
    pub(super) model: &'s ModelSpec,
    pub(super) loss: Loss,
    /// Values per parameter, in [`ModelSpec::params`] order.
    pub(super) lens: Vec<usize>,
    /// Values per organism.
    pub(super) width: usize,
    pub(super) body: Body<'s>,
}

/// The family's own part of a [`Net`].
pub(super) enum Body<'s> {
    Mlp(Mlp<'s>),
    Recurrent(Recurrent),
    Transformer(Transformer),
}

impl Body<'_> {
    /// What a sequence model reads, and its outputs; `None` for an MLP.
    pub(super) fn sequences(&self) -> Option<(SequenceInput, usize)> {
        match self {
            Body::Mlp(_) => None,
            Body::Recurrent(net) => Some((net.input, net.outputs)),
            Body::Transformer(net) => Some((net.input, net.outputs)),
        }
    }
}

/// What the first layer reads.
pub(super) enum Input {
    /// `[P, rows, inputs]` (MLP).
    Rows(Tensor),
    /// Context token ids `[P · rows · context]`, each offset by its
    /// organism's `p · vocab` (MLP language model).
    Tokens(Tensor),
    /// Real sequences, time-major `[T, P, rows, dim]` (recurrent,
    /// transformer).
    Sequences(Tensor),
    /// Token sequences, time-major ids `[T, P · rows]`, each offset by
    /// its organism's `p · vocab` (recurrent, transformer).
    Windows(Tensor),
}

/// What the losses compare the outputs with.
pub(super) struct Target {
    /// u32 labels `[P, m, 1]`, or target values `[P, rows, outputs]`.
    pub(super) values: Tensor,
    /// Sequence models: u8 `[P, m, 1]`, 1 where a position is scored
    /// (its label is not `IGNORE`), and the scored positions of each
    /// organism; `None` where every position is.
    pub(super) scored: Option<(Tensor, Vec<usize>)>,
}

impl<'s> Net<'s> {
    /// The layout of `model`, or why the batched path cannot train it.
    pub(super) fn new(model: &'s ModelSpec, loss: Loss) -> Result<Net<'s>, LearnError> {
        let layout = model.params();
        let lens: Vec<usize> = layout.iter().map(|p| p.len()).collect();
        let offsets: Vec<usize> = lens
            .iter()
            .scan(0, |at, &len| {
                let start = *at;
                *at += len;
                Some(start)
            })
            .collect();
        let body = match model {
            ModelSpec::Mlp(spec) => Body::Mlp(Mlp::new(spec, &offsets)),
            ModelSpec::Rnn(_) | ModelSpec::Gru(_) | ModelSpec::Lstm(_) => {
                if loss != Loss::CrossEntropy {
                    return Err(unsupported("a recurrent network with a squared-error loss"));
                }
                Body::Recurrent(Recurrent::new(model, &layout, &offsets)?)
            }
            ModelSpec::Transformer(spec) => {
                if loss != Loss::CrossEntropy {
                    return Err(unsupported("a transformer with a squared-error loss"));
                }
                Body::Transformer(Transformer::new(spec, &layout, &offsets)?)
            }
            ModelSpec::Registered(r) => {
                return Err(unsupported(&format!(
                    "the registered family `{}`",
                    r.family().kind()
                )));
            }
        };
        Ok(Net {
            model,
            loss,
            width: lens.iter().sum(),
            lens,
            body,
        })
    }

    /// Steps per example of `batch` as this net reads it: a sequence's
    /// length (the windows' minus one) for a recurrent net, 1 for an MLP.
    /// Organisms run in lockstep only with others of the same.
    pub(super) fn steps(&self, batch: &Batch) -> usize {
        match (&self.body, batch) {
            (Body::Recurrent(_) | Body::Transformer(_), Batch::Sequences { steps, .. }) => *steps,
            (Body::Recurrent(_) | Body::Transformer(_), Batch::Tokens { len, .. }) => {
                len.saturating_sub(1)
            }
            _ => 1,
        }
    }

    /// Outputs of the `[P, N]` weights `theta`: `[P, rows, outputs]` for
    /// an MLP, `[P, rows · T, outputs]` (row-major over rows, then steps)
    /// for a recurrent net.
    pub(super) fn forward(
        &self,
        theta: &Tensor,
        input: &Input,
        rows: usize,
    ) -> candle_core::Result<Tensor> {
        match &self.body {
            Body::Mlp(mlp) => mlp.forward(theta, input, rows),
            Body::Recurrent(net) => net.forward(theta, input, rows),
            Body::Transformer(net) => net.forward(theta, input, rows),
        }
    }

    /// Per-example losses `[P, m, k]`: minus the log-softmax at the label
    /// (`k = 1`; `target` holds u32 labels `[P, m, 1]`), or the squared
    /// errors (`k` = outputs; `target` the values), and 0 at a position
    /// that is not scored. The loss of a minibatch is their mean over the
    /// scored positions, as on the organism's own path.
    pub(super) fn losses(&self, outputs: &Tensor, target: &Target) -> candle_core::Result<Tensor> {
        let per = match self.loss {
            Loss::CrossEntropy => candle_nn::ops::log_softmax(outputs, D::Minus1)?
                .gather(&target.values, D::Minus1)?
                .neg()?,
            Loss::MeanSquared => (outputs - &target.values)?.sqr()?,
        };
        match &target.scored {
            // A `where`, so that nothing of an unscored position (even a
            // NaN) reaches the loss or its gradient.
            Some((mask, _)) => mask.where_cond(&per, &per.zeros_like()?),
            None => Ok(per),
        }
    }
}

pub(super) fn activate(act: Activation, x: &Tensor) -> candle_core::Result<Tensor> {
    match act {
        Activation::Relu => x.relu(),
        // The tanh approximation, as the fast path's.
        Activation::Gelu => x.gelu(),
        Activation::Tanh => x.tanh(),
        Activation::Linear => Ok(x.clone()),
    }
}
