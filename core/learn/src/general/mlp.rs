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
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x)?;
            if i < last {
                x = activate(self.activation, &x)?;
            }
        }
        Ok(x)
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
