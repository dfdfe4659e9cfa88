//! The batched forward pass of an MLP (and an MLP language model): layer
//! `l` reads its weight as the slice of the row it owns, reshaped to
//! `[P, out, in]`, and multiplies the `[P, rows, in]` activations by its
//! transpose, one batched matmul per layer.

use candle_core::Tensor;

use super::net::{Input, activate};
use crate::spec::MlpSpec;

/// Where each of an MLP's parameters sits in an organism's row.
pub(super) struct Mlp<'s> {
    pub(super) spec: &'s MlpSpec,
    embed: Option<usize>,
    weights: Vec<usize>,
    biases: Vec<Option<usize>>,
}

impl<'s> Mlp<'s> {
    /// The MLP whose parameters start at `offsets` (in
    /// [`crate::spec::ModelSpec::params`] order).
    pub(super) fn new(spec: &'s MlpSpec, offsets: &[usize]) -> Mlp<'s> {
        let first = usize::from(spec.embedding.is_some());
        let per_layer = 1 + usize::from(spec.bias);
        let layers = spec.widths.len().saturating_sub(1);
        Mlp {
            spec,
            embed: spec.embedding.map(|_| offsets[0]),
            weights: (0..layers)
                .map(|l| offsets[first + l * per_layer])
                .collect(),
            biases: (0..layers)
                .map(|l| spec.bias.then(|| offsets[first + l * per_layer + 1]))
                .collect(),
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
}
