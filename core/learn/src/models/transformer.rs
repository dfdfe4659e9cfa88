//! The small causal transformer on candle.
//!
//! `x = embed(input) + pos[0..T]`; each block is pre-LayerNorm,
//! `x = x + attn(ln1(x))` then `x = x + proj(act(fc(ln2(x))))`; the
//! readout is `head(relu(... relu(head_layers.0(ln_f(x)))))` at every
//! position (no ReLU layers by default). Without LayerNorm
//! (`layer_norm = false`, Reddy's model) every `ln` is the identity. The
//! activation is GELU unless the spec says otherwise. Attention is causal and
//! multi-head with scale `1 / sqrt(head_dim)`; `attn.qkv` holds the query,
//! key and value projections in its rows, in that order. LayerNorm's eps
//! is 1e-5 and GELU is the tanh approximation.
//!
//! The options of Reddy's model each remove a piece: `embed = false` the
//! embedding (the real inputs are the stream), `positions = false` the
//! position table, `d_ff = 0` the MLP (and `ln2`), `attn_out = false` the
//! output projection (the heads' values are added to the stream),
//! `attn_scale = false` the scores' scale; `head = [..]` adds the ReLU
//! layers `head_layers.{i}`.
//!
//! The residual stream is kept as `[n * T, d]` rows so every projection is
//! one 2-D matmul; only the attention scores are batched 4-D matmuls.
//! LayerNorm, softmax and GELU are written out with differentiable tensor
//! operations: candle-nn's fused `LayerNorm` and `softmax_last_dim` have no
//! backward pass, and candle's `gelu` backward is slow on the CPU. Biases,
//! gains and positions are added through [`spread`] rather than
//! broadcast, and `attn.qkv` is split by rows into three projections once
//! at construction, for the reasons [`super::rnn`] gives.

use candle_core::{D, DType, Tensor};
use candle_nn::VarBuilder;

use super::Input;
use super::mlp::activate;
use super::rnn::{Dense, spread};
use crate::family::{Family, Layer, Module, Reads, describe_input};
use crate::spec::{Activation, ParamInfo, Role, SequenceInput, TransformerSpec};

impl Family for TransformerSpec {
    fn kind(&self) -> &str {
        "transformer"
    }

    fn params(&self) -> Vec<ParamInfo> {
        let d = self.d_model;
        let mut p = Vec::new();
        match self.input {
            _ if !self.embed => {}
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
        if self.positions {
            p.push(ParamInfo {
                name: "pos".into(),
                shape: vec![self.context, d],
                role: Role::Embedding,
            });
        }
        let mlp = self.d_ff > 0;
        for l in 0..self.layers {
            let n = |s: &str| format!("layers.{l}.{s}");
            if self.layer_norm {
                p.push(ParamInfo::vector(n("ln1.weight"), d, Role::Gain));
                p.push(ParamInfo::vector(n("ln1.bias"), d, Role::Bias));
            }
            p.push(ParamInfo::matrix(n("attn.qkv"), 3 * d, d));
            if self.attn_out {
                p.push(ParamInfo::matrix(n("attn.out"), d, d));
            }
            if self.layer_norm && mlp {
                p.push(ParamInfo::vector(n("ln2.weight"), d, Role::Gain));
                p.push(ParamInfo::vector(n("ln2.bias"), d, Role::Bias));
            }
            if mlp {
                p.push(ParamInfo::matrix(n("mlp.fc"), self.d_ff, d));
                p.push(ParamInfo::vector(n("mlp.fc_bias"), self.d_ff, Role::Bias));
                p.push(ParamInfo::matrix(n("mlp.proj"), d, self.d_ff));
                p.push(ParamInfo::vector(n("mlp.proj_bias"), d, Role::Bias));
            }
        }
        if self.layer_norm {
            p.push(ParamInfo::vector("ln_f.weight", d, Role::Gain));
            p.push(ParamInfo::vector("ln_f.bias", d, Role::Bias));
        }
        let mut width = d;
        for (i, &w) in self.head.iter().enumerate() {
            p.push(ParamInfo::matrix(
                format!("head_layers.{i}.weight"),
                w,
                width,
            ));
            p.push(ParamInfo::vector(
                format!("head_layers.{i}.bias"),
                w,
                Role::Bias,
            ));
            width = w;
        }
        p.push(ParamInfo::matrix("head", self.outputs, width));
        p
    }

    fn reads(&self) -> Reads {
        Reads::Steps {
            input: self.input,
            longest: self.positions.then_some(self.context),
        }
    }

    fn outputs(&self) -> usize {
        self.outputs
    }

    fn layers(&self) -> Vec<Layer> {
        std::iter::once("embed".to_string())
            .chain((0..self.layers).map(|i| format!("blocks.{i}")))
            .map(|name| Layer::new(name, self.d_model))
            .chain(
                self.head
                    .iter()
                    .enumerate()
                    .map(|(i, &w)| Layer::new(format!("head_layers.{i}"), w)),
            )
            .collect()
    }

    fn kept_per_example(&self, _steps: u64) -> u64 {
        // Activations scale with the position table, whatever the steps.
        let c = self.context as u64;
        let product = |xs: &[u64]| xs.iter().fold(1u64, |a, &x| a.saturating_mul(x));
        let per_layer = product(&[c, (self.d_model as u64).saturating_mul(8)])
            .saturating_add(product(&[c, self.d_ff as u64, 2]))
            .saturating_add(product(&[self.heads as u64, c, c, 2]));
        let head = self
            .head
            .iter()
            .fold(0u64, |a, &w| a.saturating_add(product(&[c, w as u64, 2])));
        product(&[self.layers as u64, per_layer])
            .saturating_add(head)
            .saturating_add(product(&[c, self.outputs as u64]))
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "transformer",
            "input": describe_input(self.input),
            "context": self.context,
            "d_model": self.d_model,
            "heads": self.heads,
            "layers": self.layers,
            "d_ff": self.d_ff,
            "outputs": self.outputs,
            "layer_norm": self.layer_norm,
            "activation": format!("{:?}", self.activation).to_lowercase(),
            "embed": self.embed,
            "positions": self.positions,
            "attn_out": self.attn_out,
            "attn_scale": self.attn_scale,
            "head": self.head,
        })
    }

    fn build(&self, vb: VarBuilder) -> candle_core::Result<Box<dyn Module>> {
        Ok(Box::new(Transformer::new(self, vb)?))
    }

    fn check(&self) -> Result<(), String> {
        let d = self.d_model;
        if let Some(i) = self.head.iter().position(|&w| w == 0) {
            return Err(format!("the transformer's head layer {i} has width 0"));
        }
        if !self.embed {
            match self.input {
                SequenceInput::Tokens { .. } => {
                    return Err(
                        "a transformer without an input embedding (`embed = false`) reads real vectors, not tokens"
                            .into(),
                    );
                }
                SequenceInput::Dense { dim } if dim != d => {
                    return Err(format!(
                        "without an input embedding (`embed = false`) the inputs are the residual stream, so d_model ({d}) must equal the input width ({dim})"
                    ));
                }
                SequenceInput::Dense { .. } => {}
            }
        }
        Ok(())
    }
}

impl Module for Transformer {
    fn forward(&self, input: &Input) -> candle_core::Result<Tensor> {
        Transformer::forward(self, input)
    }

    fn hidden(&self, input: &Input, index: usize) -> candle_core::Result<Tensor> {
        let (n, steps, mut stream) = self.residuals(input)?;
        if index < stream.len() {
            return stream.swap_remove(index).reshape((n, steps, ()));
        }
        let Some(last) = stream.last() else {
            candle_core::bail!("the transformer's residual stream is empty");
        };
        let mut head = self.head_layers(&normed(self.ln_f.as_ref(), last)?)?;
        let i = index - stream.len();
        if i >= head.len() {
            candle_core::bail!("the transformer has no hidden layer {index}");
        }
        head.swap_remove(i).reshape((n, steps, ()))
    }
}

/// LayerNorm's epsilon, as PyTorch's default.
const LN_EPS: f64 = 1e-5;

/// A causal pre-LayerNorm transformer with a readout at every position.
#[derive(Debug)]
pub struct Transformer {
    input: SequenceInput,
    embed: Embed,
    pos: Option<Tensor>,
    blocks: Vec<Block>,
    ln_f: Option<LayerNorm>,
    /// The ReLU layers before the readout.
    head_layers: Vec<Dense>,
    head: Dense,
    heads: usize,
    /// Whether attention scores are scaled by `1 / sqrt(head_dim)`.
    scaled: bool,
    context: usize,
    activation: Activation,
    dtype: DType,
}

#[derive(Debug)]
enum Embed {
    /// `tok [vocab, d]`.
    Table(Tensor),
    /// `w_in [d, dim]` and `b_in [d]`.
    Projection(Dense),
    /// None: the real inputs are the residual stream.
    Identity,
}

#[derive(Debug)]
struct Block {
    ln1: Option<LayerNorm>,
    q: Dense,
    k: Dense,
    v: Dense,
    out: Option<Dense>,
    ln2: Option<LayerNorm>,
    /// `mlp.fc` and `mlp.proj`; none in an attention-only block.
    mlp: Option<(Dense, Dense)>,
}

#[derive(Debug)]
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl Transformer {
    /// Builds the transformer from `tok` (or `w_in` and `b_in`), `pos`,
    /// `layers.{l}.*`, `ln_f.*` (with LayerNorm), `head_layers.{i}.*` and
    /// `head`, those of them its spec has.
    pub fn new(spec: &TransformerSpec, vb: VarBuilder) -> candle_core::Result<Transformer> {
        let d = spec.d_model;
        if spec.heads == 0 || !d.is_multiple_of(spec.heads) {
            candle_core::bail!(
                "the transformer's {} heads do not divide its width {d}",
                spec.heads
            );
        }
        if let Err(message) = spec.check() {
            candle_core::bail!("{message}");
        }
        let embed = match spec.input {
            _ if !spec.embed => Embed::Identity,
            SequenceInput::Tokens { vocab } => Embed::Table(vb.get((vocab, d), "tok")?),
            SequenceInput::Dense { dim } => Embed::Projection(Dense::new(
                vb.get((d, dim), "w_in")?,
                Some(vb.get(d, "b_in")?),
            )),
        };
        let pos = spec
            .positions
            .then(|| vb.get((spec.context, d), "pos"))
            .transpose()?;
        let norm = |on: bool, vb: VarBuilder| -> candle_core::Result<Option<LayerNorm>> {
            on.then(|| LayerNorm::new(d, vb)).transpose()
        };
        let mlp = spec.d_ff > 0;
        let mut blocks = Vec::with_capacity(spec.layers);
        for l in 0..spec.layers {
            let vb = vb.pp(format!("layers.{l}"));
            let qkv = vb.get((3 * d, d), "attn.qkv")?;
            let rows = |i: usize| qkv.narrow(0, i * d, d).map(|w| Dense::new(w, None));
            let out = spec
                .attn_out
                .then(|| vb.get((d, d), "attn.out").map(|w| Dense::new(w, None)))
                .transpose()?;
            let mlp = mlp
                .then(|| -> candle_core::Result<(Dense, Dense)> {
                    Ok((
                        Dense::new(
                            vb.get((spec.d_ff, d), "mlp.fc")?,
                            Some(vb.get(spec.d_ff, "mlp.fc_bias")?),
                        ),
                        Dense::new(
                            vb.get((d, spec.d_ff), "mlp.proj")?,
                            Some(vb.get(d, "mlp.proj_bias")?),
                        ),
                    ))
                })
                .transpose()?;
            blocks.push(Block {
                ln1: norm(spec.layer_norm, vb.pp("ln1"))?,
                q: rows(0)?,
                k: rows(1)?,
                v: rows(2)?,
                out,
                ln2: norm(spec.layer_norm && mlp.is_some(), vb.pp("ln2"))?,
                mlp,
            });
        }
        let mut width = d;
        let mut head_layers = Vec::with_capacity(spec.head.len());
        for (i, &w) in spec.head.iter().enumerate() {
            let vb = vb.pp(format!("head_layers.{i}"));
            head_layers.push(Dense::new(
                vb.get((w, width), "weight")?,
                Some(vb.get(w, "bias")?),
            ));
            width = w;
        }
        let head = vb.get((spec.outputs, width), "head")?;
        Ok(Transformer {
            input: spec.input,
            embed,
            pos,
            blocks,
            ln_f: norm(spec.layer_norm, vb.pp("ln_f"))?,
            head_layers,
            dtype: head.dtype(),
            head: Dense::new(head, None),
            heads: spec.heads,
            scaled: spec.attn_scale,
            context: spec.context,
            activation: spec.activation,
        })
    }

    /// Outputs `[n, steps, outputs]`: the readout at every position, each
    /// seeing only the positions up to it.
    pub fn forward(&self, input: &Input) -> candle_core::Result<Tensor> {
        let (n, steps, stream) = self.residuals(input)?;
        let Some(x) = stream.last() else {
            candle_core::bail!("the transformer's residual stream is empty");
        };
        let x = normed(self.ln_f.as_ref(), x)?;
        let x = match self.head_layers(&x)?.pop() {
            Some(h) => h,
            None => x,
        };
        self.head.forward(&x)?.reshape((n, steps, ()))
    }

    /// The activations of every ReLU layer before the readout, from the
    /// final stream `x` (after `ln_f`), rows `[n * steps, width]`.
    fn head_layers(&self, x: &Tensor) -> candle_core::Result<Vec<Tensor>> {
        let mut out: Vec<Tensor> = Vec::with_capacity(self.head_layers.len());
        for layer in &self.head_layers {
            let h = layer.forward(out.last().unwrap_or(x))?.relu()?;
            out.push(h);
        }
        Ok(out)
    }

    /// The residual stream as rows `[n * steps, d]` for `n` sequences of
    /// `steps` positions: the token (or projected, or plain) input plus
    /// position embedding, then the stream after each block; the last is
    /// what [`Transformer::forward`] reads out.
    pub(crate) fn residuals(
        &self,
        input: &Input,
    ) -> candle_core::Result<(usize, usize, Vec<Tensor>)> {
        let dense = |x: &Tensor| -> candle_core::Result<(usize, usize, Tensor)> {
            let (n, steps, width) = x.dims3()?;
            let dim = self.input.width();
            if width != dim {
                candle_core::bail!(
                    "the transformer reads {dim} values per position but the input sequence has {width}"
                );
            }
            Ok((n, steps, x.to_dtype(self.dtype)?.reshape((n * steps, dim))?))
        };
        let (n, steps, x) = match (&self.embed, input) {
            (Embed::Table(table), Input::Tokens(tokens)) => {
                let (n, steps) = tokens.dims2()?;
                (n, steps, table.embedding(&tokens.flatten_all()?)?)
            }
            (Embed::Projection(w_in), Input::Sequence(x)) => {
                let (n, steps, x) = dense(x)?;
                (n, steps, w_in.forward(&x)?)
            }
            (Embed::Identity, Input::Sequence(x)) => dense(x)?,
            (Embed::Table(_), _) => candle_core::bail!(
                "the transformer reads token sequences [n, steps] (u32, vocabulary {}), not this input",
                self.input.width()
            ),
            (Embed::Projection(_) | Embed::Identity, _) => candle_core::bail!(
                "the transformer reads real sequences [n, steps, {}], not this input",
                self.input.width()
            ),
        };
        if steps == 0 || (self.pos.is_some() && steps > self.context) {
            candle_core::bail!(
                "the transformer reads 1 to {} positions (its position table) but the input has {steps}",
                self.context
            );
        }
        let mut x = match &self.pos {
            Some(pos) => {
                let d = pos.dim(1)?;
                let pos = pos.narrow(0, 0, steps)?.reshape(steps * d)?;
                (x.reshape((n, steps * d))? + spread(&pos, n)?)?.reshape((n * steps, d))?
            }
            None => x,
        };
        let mask = causal_mask(steps, &x)?;
        let mut stream = Vec::with_capacity(self.blocks.len() + 1);
        for block in &self.blocks {
            stream.push(x.clone());
            let a = normed(block.ln1.as_ref(), &x)?;
            x = (&x + block.attend(&a, n, steps, self.heads, self.scaled, &mask)?)?;
            if let Some((fc, proj)) = &block.mlp {
                let z = fc.forward(&normed(block.ln2.as_ref(), &x)?)?;
                let hidden = match self.activation {
                    Activation::Gelu => gelu(&z)?,
                    other => activate(other, &z)?,
                };
                x = (&x + proj.forward(&hidden)?)?;
            }
        }
        stream.push(x);
        Ok((n, steps, stream))
    }
}

impl Block {
    /// Causal multi-head self-attention over rows `[n * steps, d]`.
    fn attend(
        &self,
        x: &Tensor,
        n: usize,
        steps: usize,
        heads: usize,
        scaled: bool,
        mask: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let d = x.dim(1)?;
        let hd = d / heads;
        // [n * T, d] -> [n, heads, T, hd].
        let split = |proj: &Dense| {
            proj.forward(x)?
                .reshape((n, steps, heads, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(&self.q)?;
        let q = if scaled {
            (q * (1.0 / (hd as f64).sqrt()))?
        } else {
            q
        };
        let (k, v) = (split(&self.k)?, split(&self.v)?);
        let scores = q.matmul(&k.t()?)?.broadcast_add(mask)?;
        let attn = softmax_last(&scores)?;
        let y = attn.matmul(&v)?.transpose(1, 2)?.reshape((n * steps, d))?;
        match &self.out {
            Some(out) => out.forward(&y),
            None => Ok(y),
        }
    }
}

impl LayerNorm {
    fn new(d: usize, vb: VarBuilder) -> candle_core::Result<LayerNorm> {
        Ok(LayerNorm {
            weight: vb.get(d, "weight")?,
            bias: vb.get(d, "bias")?,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let rows = x.dim(0)?;
        let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + LN_EPS)?.sqrt()?)?;
        (normed * spread(&self.weight, rows)?)? + spread(&self.bias, rows)?
    }
}

/// `x` through `ln`, or `x` itself without LayerNorm.
fn normed(ln: Option<&LayerNorm>, x: &Tensor) -> candle_core::Result<Tensor> {
    match ln {
        Some(ln) => ln.forward(x),
        None => Ok(x.clone()),
    }
}

/// `[steps, steps]` of 0 on and below the diagonal and -inf above it, in
/// `like`'s dtype and device.
fn causal_mask(steps: usize, like: &Tensor) -> candle_core::Result<Tensor> {
    let values: Vec<f32> = (0..steps)
        .flat_map(|i| (0..steps).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(values, (steps, steps), like.device())?.to_dtype(like.dtype())
}

/// GELU, tanh approximation: `0.5 x (1 + tanh(u)) = x sigmoid(2u)` with
/// `u = sqrt(2 / pi) (x + 0.044715 x^3)`, the values of candle's `gelu`.
/// Written with `sigmoid` (an `exp`) because candle's own `gelu` spends
/// most of a training step in `tanh` and `powf` (its backward recomputes
/// both); the sigmoid's backward reuses its output.
fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    let c = 2.0 * (2.0 / std::f64::consts::PI).sqrt();
    x * candle_nn::ops::sigmoid(&(x * x.sqr()?.affine(0.044715 * c, c)?)?)?
}

/// Softmax over the last dimension, differentiable (the subtracted maximum
/// is a constant for the gradient).
fn softmax_last(x: &Tensor) -> candle_core::Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor};
    use candle_nn::VarBuilder;

    use super::*;
    use crate::models::tests::{assert_gradients_match, random_varmap};
    use crate::spec::ModelSpec;

    fn spec(input: SequenceInput) -> TransformerSpec {
        TransformerSpec {
            input,
            context: 6,
            d_model: 8,
            heads: 2,
            layers: 2,
            d_ff: 12,
            outputs: 5,
            layer_norm: true,
            activation: Activation::Gelu,
            embed: true,
            positions: true,
            attn_out: true,
            attn_scale: true,
            head: Vec::new(),
        }
    }

    fn build(s: &TransformerSpec, seed: u64, dtype: DType) -> (candle_nn::VarMap, Transformer) {
        let vm = random_varmap(&ModelSpec::Transformer(s.clone()), seed, dtype);
        let t = Transformer::new(s, VarBuilder::from_varmap(&vm, dtype, &Device::Cpu)).unwrap();
        (vm, t)
    }

    #[test]
    fn outputs_a_readout_at_every_position() {
        let dev = Device::Cpu;
        let (_, by_tokens) = build(&spec(SequenceInput::Tokens { vocab: 7 }), 1, DType::F32);
        let tokens = Tensor::new(&[[0u32, 6, 2, 2], [5, 1, 3, 0], [4, 4, 4, 4]], &dev).unwrap();
        let y = by_tokens.forward(&Input::Tokens(tokens)).unwrap();
        assert_eq!(y.dims(), &[3, 4, 5]);

        let (_, by_dense) = build(&spec(SequenceInput::Dense { dim: 3 }), 1, DType::F32);
        let x = Tensor::ones((2, 6, 3), DType::F32, &dev).unwrap();
        assert_eq!(
            by_dense.forward(&Input::Sequence(x)).unwrap().dims(),
            &[2, 6, 5]
        );

        let long = Tensor::zeros((1, 7), DType::U32, &dev).unwrap();
        let err = by_tokens
            .forward(&Input::Tokens(long))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("1 to 6 positions") && err.contains("has 7"),
            "{err}"
        );
        let wrong = Input::Sequence(Tensor::ones((1, 2, 7), DType::F32, &dev).unwrap());
        let err = by_tokens.forward(&wrong).unwrap_err().to_string();
        assert!(err.contains("reads token sequences"), "{err}");
    }

    #[test]
    fn heads_must_divide_the_width() {
        let mut s = spec(SequenceInput::Tokens { vocab: 7 });
        let vm = random_varmap(&ModelSpec::Transformer(s.clone()), 1, DType::F32);
        s.heads = 3;
        let err = Transformer::new(&s, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu))
            .unwrap_err()
            .to_string();
        assert!(err.contains("3 heads do not divide its width 8"), "{err}");
    }

    #[test]
    fn a_later_token_does_not_change_earlier_outputs() {
        let dev = Device::Cpu;
        let (_, model) = build(&spec(SequenceInput::Tokens { vocab: 7 }), 2, DType::F32);
        let run = |tokens: &[[u32; 5]; 2]| -> Vec<Vec<Vec<f32>>> {
            let t = Tensor::new(tokens, &dev).unwrap();
            model.forward(&Input::Tokens(t)).unwrap().to_vec3().unwrap()
        };
        let before = run(&[[1, 2, 3, 4, 5], [6, 0, 1, 2, 3]]);
        let after = run(&[[1, 2, 3, 0, 5], [6, 0, 1, 5, 3]]);
        for (b, a) in before.iter().zip(&after) {
            for pos in 0..3 {
                for (x, y) in b[pos].iter().zip(&a[pos]) {
                    assert!((x - y).abs() < 1e-6, "position {pos} changed: {x} vs {y}");
                }
            }
            assert_ne!(b[3], a[3], "the changed position's output must change");
        }
        // Attention does reach back: changing the first token moves the last output.
        let first = run(&[[0, 2, 3, 4, 5], [6, 0, 1, 2, 3]]);
        assert_ne!(before[0][4], first[0][4]);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let dev = Device::Cpu;
        let (vm, model) = build(&spec(SequenceInput::Tokens { vocab: 7 }), 3, DType::F64);
        let tokens = Tensor::new(&[[1u32, 4, 4, 0], [6, 2, 5, 3]], &dev).unwrap();
        let x = Input::Tokens(tokens);
        assert_gradients_match(
            &vm,
            || model.forward(&x),
            &[
                "tok",
                "pos",
                "layers.0.ln1.weight",
                "layers.0.attn.qkv",
                "layers.0.attn.out",
                "layers.1.ln2.bias",
                "layers.1.mlp.fc",
                "layers.1.mlp.proj_bias",
                "ln_f.weight",
                "head",
            ],
        );

        let (vm, model) = build(&spec(SequenceInput::Dense { dim: 2 }), 4, DType::F64);
        let x = Tensor::new(&[[[0.5f64, -1.], [1., 0.2], [-0.3, 0.8]]], &dev).unwrap();
        let x = Input::Sequence(x);
        assert_gradients_match(
            &vm,
            || model.forward(&x),
            &["w_in", "b_in", "layers.1.attn.qkv"],
        );
    }

    /// Reddy's model at a small width: 8-wide real tokens are the residual
    /// stream, two attention-only layers of one head, no LayerNorm, no
    /// output projection or score scale, three ReLU layers, a readout.
    fn reddy() -> TransformerSpec {
        TransformerSpec {
            heads: 1,
            d_ff: 0,
            layer_norm: false,
            activation: Activation::Relu,
            embed: false,
            positions: false,
            attn_out: false,
            attn_scale: false,
            head: vec![7, 6, 5],
            ..spec(SequenceInput::Dense { dim: 8 })
        }
    }

    /// Each new option alone on the default model (LayerNorm, GELU, two
    /// heads), then all of them together.
    fn variants() -> Vec<(String, TransformerSpec)> {
        let mut all = spec(SequenceInput::Dense { dim: 8 }).each_option(vec![7, 6]);
        all.push(("Reddy's model".into(), reddy()));
        all
    }

    fn names(s: &TransformerSpec) -> Vec<String> {
        s.params().into_iter().map(|p| p.name).collect()
    }

    #[test]
    fn options_drop_or_add_their_parameters() {
        assert_eq!(
            names(&reddy()),
            [
                "layers.0.attn.qkv",
                "layers.1.attn.qkv",
                "head_layers.0.weight",
                "head_layers.0.bias",
                "head_layers.1.weight",
                "head_layers.1.bias",
                "head_layers.2.weight",
                "head_layers.2.bias",
                "head",
            ]
        );
        let shapes: Vec<Vec<usize>> = reddy().params().into_iter().map(|p| p.shape).collect();
        assert_eq!(shapes[2], [7, 8]);
        assert_eq!(shapes[4], [6, 7]);
        assert_eq!(shapes[8], [5, 5]);
        let base = names(&spec(SequenceInput::Dense { dim: 8 }));
        for (what, s) in variants() {
            let got = names(&s);
            let gone: Vec<&String> = base.iter().filter(|n| !got.contains(n)).collect();
            let added: Vec<&String> = got.iter().filter(|n| !base.contains(n)).collect();
            let expected_gone = |n: &str| match what.as_str() {
                "d_ff = 0" => n.contains(".mlp.") || n.contains(".ln2."),
                "embed = false" => n == "w_in" || n == "b_in",
                "positions = false" => n == "pos",
                "attn_out = false" => n.ends_with("attn.out"),
                _ => false,
            };
            if what == "Reddy's model" {
                continue;
            }
            assert!(
                gone.iter().all(|n| expected_gone(n))
                    && base.iter().all(|n| !expected_gone(n) || gone.contains(&n)),
                "{what}: dropped {gone:?}"
            );
            let head = what.starts_with("head");
            assert_eq!(added.is_empty(), !head, "{what}: added {added:?}");
            // Whatever is kept stays in the default's order.
            let kept: Vec<&String> = got.iter().filter(|n| base.contains(n)).collect();
            let order: Vec<&String> = base.iter().filter(|n| got.contains(n)).collect();
            assert_eq!(kept, order, "{what}");
        }
    }

    #[test]
    fn gradients_match_finite_differences_with_each_option() {
        let dev = Device::Cpu;
        let mut rng = 0.3f64;
        let x: Vec<f64> = (0..2 * 5 * 8)
            .map(|_| {
                rng = (rng * 997.0 + 0.123).fract();
                rng - 0.5
            })
            .collect();
        let x = Input::Sequence(Tensor::from_vec(x, (2, 5, 8), &dev).unwrap());
        for (seed, (what, s)) in variants().into_iter().enumerate() {
            let (vm, model) = build(&s, 10 + seed as u64, DType::F64);
            let all = names(&s);
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            eprintln!("{what}");
            assert_gradients_match(&vm, || model.forward(&x), &all);
        }
    }

    #[test]
    fn head_layers_are_hidden_layers_and_feed_the_readout() {
        let dev = Device::Cpu;
        let s = reddy();
        let layers: Vec<String> = s.layers().into_iter().map(|l| l.name).collect();
        assert_eq!(
            layers,
            [
                "embed",
                "blocks.0",
                "blocks.1",
                "head_layers.0",
                "head_layers.1",
                "head_layers.2"
            ]
        );
        assert_eq!(s.layers()[4].width, 6);
        let (vm, model) = build(&s, 5, DType::F32);
        let x = Tensor::rand(-1f32, 1., (3, 4, 8), &dev).unwrap();
        let input = Input::Sequence(x.clone());
        // Without an embedding or positions the stream starts as the input.
        let embed = Module::hidden(&model, &input, 0).unwrap();
        assert_eq!(
            embed.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        let top = Module::hidden(&model, &input, 5).unwrap();
        assert_eq!(top.dims(), &[3, 4, 5]);
        assert!(
            top.flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .all(|&v| v >= 0.0)
        );
        let head = vm.data().lock().unwrap()["head"].as_tensor().clone();
        let by_hand = top
            .reshape((12, 5))
            .unwrap()
            .matmul(&head.t().unwrap())
            .unwrap();
        let out = model.forward(&input).unwrap().reshape((12, 5)).unwrap();
        let gap = (by_hand - out)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(gap < 1e-6, "{gap}");
        assert!(Module::hidden(&model, &input, 6).is_err());
    }

    #[test]
    fn without_positions_any_length_is_read_and_without_embedding_the_width_is_d_model() {
        let dev = Device::Cpu;
        let s = reddy();
        assert_eq!(
            s.reads(),
            Reads::Steps {
                input: SequenceInput::Dense { dim: 8 },
                longest: None
            }
        );
        let (_, model) = build(&s, 6, DType::F32);
        let long = Tensor::ones((1, 9, 8), DType::F32, &dev).unwrap();
        assert_eq!(
            model.forward(&Input::Sequence(long)).unwrap().dims(),
            &[1, 9, 5]
        );
        assert_eq!(s.check(), Ok(()));
        let wide = TransformerSpec {
            input: SequenceInput::Dense { dim: 9 },
            ..reddy()
        };
        let err = wide.check().unwrap_err();
        assert!(
            err.contains("d_model (8) must equal the input width (9)"),
            "{err}"
        );
        let vm = random_varmap(&ModelSpec::Transformer(wide.clone()), 1, DType::F32);
        let err = Transformer::new(
            &wide,
            VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("must equal the input width"), "{err}");
        let tokens = TransformerSpec {
            input: SequenceInput::Tokens { vocab: 8 },
            ..reddy()
        };
        assert!(tokens.check().unwrap_err().contains("not tokens"));
        let zero = TransformerSpec {
            head: vec![4, 0],
            ..reddy()
        };
        assert!(
            zero.check()
                .unwrap_err()
                .contains("head layer 1 has width 0")
        );
        let err = ModelSpec::Transformer(zero)
            .check_task(&lineage_env::Task::SequenceClassification {
                inputs: 8,
                classes: 5,
                steps: 4,
            })
            .unwrap_err();
        assert!(err.contains("width 0"), "{err}");
    }
}
