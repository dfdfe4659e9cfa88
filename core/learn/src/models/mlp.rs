//! The MLP (and MLP language model): its [`Family`] and its candle module.

use candle_core::{Module as _, Tensor};
use candle_nn::VarBuilder;

use super::Input;
use crate::family::{Family, Layer, Module, Reads};
use crate::spec::{Activation, MlpSpec, ParamInfo, Role};

impl Family for MlpSpec {
    fn kind(&self) -> &str {
        "mlp"
    }

    fn params(&self) -> Vec<ParamInfo> {
        let mut p = Vec::new();
        if let Some(e) = self.embedding {
            p.push(ParamInfo {
                name: "embed".into(),
                shape: vec![e.vocab, e.dim],
                role: Role::Embedding,
            });
        }
        for (i, w) in self.widths.windows(2).enumerate() {
            p.push(ParamInfo::matrix(format!("layers.{i}.weight"), w[1], w[0]));
            if self.bias {
                p.push(ParamInfo::vector(
                    format!("layers.{i}.bias"),
                    w[1],
                    Role::Bias,
                ));
            }
        }
        p
    }

    fn reads(&self) -> Reads {
        match self.embedding {
            Some(e) => Reads::Context {
                vocab: e.vocab,
                context: e.context,
            },
            None => Reads::Dense {
                width: self.widths.first().copied().unwrap_or(0),
            },
        }
    }

    fn outputs(&self) -> usize {
        self.widths.last().copied().unwrap_or(0)
    }

    fn layers(&self) -> Vec<Layer> {
        let hidden = self.widths.len().saturating_sub(2);
        (0..hidden)
            .map(|i| Layer::new(format!("hidden.{i}"), self.widths[i + 1]))
            .collect()
    }

    fn kept_per_example(&self, _steps: u64) -> u64 {
        let widths = self
            .widths
            .iter()
            .fold(0u64, |a, &w| a.saturating_add(w as u64));
        let embed = self
            .embedding
            .map_or(0, |e| (e.dim as u64).saturating_mul(e.context as u64));
        widths.saturating_add(embed)
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "mlp",
            "widths": self.widths,
            "activation": format!("{:?}", self.activation).to_lowercase(),
            "bias": self.bias,
            "embedding": self.embedding.map(|e| serde_json::json!({"vocab": e.vocab, "dim": e.dim, "context": e.context})),
        })
    }

    fn build(&self, vb: VarBuilder) -> candle_core::Result<Box<dyn Module>> {
        Ok(Box::new(Mlp::new(self, vb)?))
    }

    fn check(&self) -> Result<(), String> {
        if self.widths.len() < 2 {
            return Err(format!(
                "an MLP needs at least two widths (input and output), this one has {}",
                self.widths.len()
            ));
        }
        if let Some(e) = self.embedding
            && self.widths[0] != e.context * e.dim
        {
            return Err(format!(
                "the first layer reads {} values but the embedding gives {} tokens x {} = {}",
                self.widths[0],
                e.context,
                e.dim,
                e.context * e.dim
            ));
        }
        Ok(())
    }
}

impl Module for Mlp {
    fn forward(&self, input: &Input) -> candle_core::Result<Tensor> {
        Mlp::forward(self, input)
    }

    fn hidden(&self, input: &Input, index: usize) -> candle_core::Result<Tensor> {
        let mut trace = self.trace(input, None)?;
        if index + 2 >= trace.len() {
            candle_core::bail!("the MLP has no hidden layer {index}");
        }
        Ok(trace.swap_remove(index + 1))
    }
}

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
