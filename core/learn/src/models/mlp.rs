//! The MLP (and MLP language model) on candle.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use super::Input;
use crate::spec::{Activation, MlpSpec};

/// A multi-layer perceptron, optionally over concatenated token embeddings.
#[derive(Debug)]
pub struct Mlp {
    embed: Option<Tensor>,
    layers: Vec<candle_nn::Linear>,
    activation: Activation,
}

impl Mlp {
    /// Builds the MLP from `embed`, `layers.{i}.weight` and `layers.{i}.bias`.
    pub fn new(spec: &MlpSpec, vb: VarBuilder) -> candle_core::Result<Mlp> {
        let embed = match spec.embedding {
            Some(e) => Some(vb.get((e.vocab, e.dim), "embed")?),
            None => None,
        };
        let mut layers = Vec::new();
        for (i, w) in spec.widths.windows(2).enumerate() {
            let vb = vb.pp(format!("layers.{i}"));
            let weight = vb.get((w[1], w[0]), "weight")?;
            let bias = if spec.bias {
                Some(vb.get(w[1], "bias")?)
            } else {
                None
            };
            layers.push(candle_nn::Linear::new(weight, bias));
        }
        Ok(Mlp {
            embed,
            layers,
            activation: spec.activation,
        })
    }

    /// Outputs `[n, outputs]`.
    pub fn forward(&self, input: &Input) -> candle_core::Result<Tensor> {
        match self.trace(input, None)?.pop() {
            Some(y) => Ok(y),
            None => candle_core::bail!("the MLP has no layers"),
        }
    }

    /// What every layer reads, then the outputs, `[n, width]` each:
    /// `trace[i]` is the input of `layers.{i}` (the input rows, or the
    /// concatenated token embeddings, then each layer's output after the
    /// activation) and the last is what [`Mlp::forward`] returns.
    ///
    /// With `probe = Some((i, p))`, `p` `[n, widths[i + 1]]` is added to the
    /// output of `layers.{i}` before its activation: with `p` a zero
    /// variable, the gradient with respect to `p` is the gradient with
    /// respect to that pre-activation, every example's in one backward
    /// pass.
    pub(crate) fn trace(
        &self,
        input: &Input,
        probe: Option<(usize, &Tensor)>,
    ) -> candle_core::Result<Vec<Tensor>> {
        if self.layers.is_empty() {
            candle_core::bail!("the MLP has no layers");
        }
        let mut x = match (input, &self.embed) {
            (Input::Dense(x), None) => x.clone(),
            (Input::Context(tokens), Some(table)) => {
                let (n, context) = tokens.dims2()?;
                table
                    .embedding(&tokens.flatten_all()?)?
                    .reshape((n, context * table.dim(1)?))?
            }
            _ => candle_core::bail!("the MLP cannot read this input"),
        };
        let last = self.layers.len() - 1;
        let mut trace = Vec::with_capacity(self.layers.len() + 1);
        for (i, layer) in self.layers.iter().enumerate() {
            trace.push(x.clone());
            x = layer.forward(&x)?;
            if let Some((_, p)) = probe.filter(|&(at, _)| at == i) {
                x = (x + p)?;
            }
            if i < last {
                x = activate(self.activation, &x)?;
            }
        }
        trace.push(x);
        Ok(trace)
    }
}

/// Applies a nonlinearity.
pub(crate) fn activate(act: Activation, x: &Tensor) -> candle_core::Result<Tensor> {
    match act {
        Activation::Relu => x.relu(),
        Activation::Gelu => x.gelu(),
        Activation::Tanh => x.tanh(),
        Activation::Linear => Ok(x.clone()),
    }
}
