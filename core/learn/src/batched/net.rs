//! The network of a chunk: where each parameter sits in an organism's
//! row of the `[P, N]` weights, and the batched forward pass.

use candle_core::{D, Tensor};

use crate::spec::{Activation, Loss, MlpSpec, ModelSpec};

/// Where each parameter sits in an organism's row, and the forward pass.
pub(super) struct Net<'s> {
    pub(super) spec: &'s MlpSpec,
    pub(super) loss: Loss,
    /// Values per parameter, in [`ModelSpec::params`] order.
    pub(super) lens: Vec<usize>,
    /// Values per organism.
    pub(super) width: usize,
    pub(super) embed: Option<usize>,
    pub(super) weights: Vec<usize>,
    pub(super) biases: Vec<Option<usize>>,
}

/// What the first layer reads.
pub(super) enum Input {
    /// `[P, rows, inputs]`.
    Rows(Tensor),
    /// Context token ids `[P · rows · context]`, each offset by its
    /// organism's `p · vocab`.
    Tokens(Tensor),
}

impl<'s> Net<'s> {
    pub(super) fn new(spec: &'s MlpSpec, loss: Loss) -> Net<'s> {
        let lens: Vec<usize> = ModelSpec::Mlp(spec.clone())
            .params()
            .iter()
            .map(|p| p.len())
            .collect();
        let offsets: Vec<usize> = lens
            .iter()
            .scan(0, |at, &len| {
                let start = *at;
                *at += len;
                Some(start)
            })
            .collect();
        let first = usize::from(spec.embedding.is_some());
        let per_layer = 1 + usize::from(spec.bias);
        let layers = spec.widths.len().saturating_sub(1);
        Net {
            spec,
            loss,
            width: lens.iter().sum(),
            embed: spec.embedding.map(|_| offsets[0]),
            weights: (0..layers)
                .map(|l| offsets[first + l * per_layer])
                .collect(),
            biases: (0..layers)
                .map(|l| spec.bias.then(|| offsets[first + l * per_layer + 1]))
                .collect(),
            lens,
        }
    }

    /// Outputs `[P, rows, outputs]` of the `[P, N]` weights `theta`.
    pub(super) fn forward(
        &self,
        theta: &Tensor,
        input: &Input,
        rows: usize,
    ) -> candle_core::Result<Tensor> {
        let p = theta.dim(0)?;
        let w = &self.spec.widths;
        let mut h = match (input, self.spec.embedding, self.embed) {
            (Input::Rows(x), None, _) => x.clone(),
            (Input::Tokens(ids), Some(e), Some(at)) => theta
                .narrow(1, at, e.vocab * e.dim)?
                .reshape((p * e.vocab, e.dim))?
                .index_select(ids, 0)?
                .reshape((p, rows, e.context * e.dim))?,
            _ => candle_core::bail!("the MLP cannot read this input"),
        };
        let layers = self.weights.len();
        for l in 0..layers {
            let weight = theta
                .narrow(1, self.weights[l], w[l + 1] * w[l])?
                .reshape((p, w[l + 1], w[l]))?;
            let mut z = h.matmul(&weight.t()?)?;
            if let Some(at) = self.biases[l] {
                let bias = theta.narrow(1, at, w[l + 1])?.reshape((p, 1, w[l + 1]))?;
                z = z.broadcast_add(&bias)?;
            }
            h = if l + 1 < layers {
                activate(self.spec.activation, &z)?
            } else {
                z
            };
        }
        Ok(h)
    }

    /// Per-example losses `[P, rows, k]`: minus the log-softmax at the
    /// label (`k = 1`; `target` holds u32 labels `[P, rows, 1]`), or the
    /// squared errors (`k` = outputs; `target` the values). The loss of a
    /// minibatch is their mean, as on the fast path.
    pub(super) fn losses(&self, outputs: &Tensor, target: &Tensor) -> candle_core::Result<Tensor> {
        match self.loss {
            Loss::CrossEntropy => candle_nn::ops::log_softmax(outputs, D::Minus1)?
                .gather(target, D::Minus1)?
                .neg(),
            Loss::MeanSquared => (outputs - target)?.sqr(),
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
