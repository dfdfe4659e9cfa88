//! The causal transformer on the batched path: every organism of a chunk
//! reads its own minibatch of sequences through its own weights, sliced
//! from its row of the `[P, N]` variable as `[P, out, in]` matrices.
//!
//! The model is [`crate::models::Transformer`]'s (and the fast path's):
//! `x = embed(input) + pos[0..T]`, pre-LayerNorm blocks `x = x +
//! attn(ln1(x))`, `x = x + proj(act(fc(ln2(x))))`, then `ln_f`, the ReLU
//! head layers and the readout at every position, with every option of
//! [`TransformerSpec`] that removes a piece. LayerNorm's epsilon is 1e-5
//! and GELU is the tanh approximation written as `x sigmoid(2u)`, as both
//! reference paths compute it.
//!
//! The residual stream is `[P, rows · T, d]` (row-major over sequence,
//! then position), so every projection is one batched matmul over the
//! chunk. Attention regroups queries, keys and values as `[P · rows ·
//! heads, T, hd]`: the scores are one batched matmul, the causal mask a
//! `[T, T]` of -inf above the diagonal added to them, the softmax written
//! out (its maximum a constant), the heads' outputs a second batched
//! matmul. Nothing mixes organisms: each batch entry of every matmul is
//! one organism's.

use candle_core::{D, Tensor};

use super::net::Input;
use super::unsupported;
use crate::LearnError;
use crate::family::Family;
use crate::spec::{Activation, ParamInfo, SequenceInput, TransformerSpec};

/// LayerNorm's epsilon, the reference paths' (PyTorch's default).
const LN_EPS: f64 = 1e-5;

/// Where a LayerNorm's gain and bias start in an organism's row.
#[derive(Clone, Copy, Debug)]
struct Norm {
    weight: usize,
    bias: usize,
}

/// Where one block's parameters start.
#[derive(Debug)]
struct Block {
    ln1: Option<Norm>,
    qkv: usize,
    out: Option<usize>,
    ln2: Option<Norm>,
    /// `mlp.fc`, `mlp.fc_bias`, `mlp.proj`, `mlp.proj_bias`.
    mlp: Option<[usize; 4]>,
}

/// A causal transformer whose parameters start at known offsets of an
/// organism's row.
#[derive(Debug)]
pub(super) struct Transformer {
    pub(super) input: SequenceInput,
    pub(super) outputs: usize,
    d: usize,
    heads: usize,
    d_ff: usize,
    context: usize,
    scaled: bool,
    activation: Activation,
    /// `tok` (`[vocab, d]`) or `w_in` (`[d, dim]`) with `b_in`; none
    /// without an embedding.
    embed: Option<(usize, Option<usize>)>,
    pos: Option<usize>,
    blocks: Vec<Block>,
    ln_f: Option<Norm>,
    /// Each ReLU layer's weight, bias, width out and width in.
    head_layers: Vec<(usize, usize, usize, usize)>,
    /// The readout `[outputs, width]` and its width in.
    head: (usize, usize),
}

impl Transformer {
    /// The net of `spec`, whose parameters, listed in `layout`, start at
    /// `offsets`; or why the batched path cannot train it.
    pub(super) fn new(
        spec: &TransformerSpec,
        layout: &[ParamInfo],
        offsets: &[usize],
    ) -> Result<Transformer, LearnError> {
        spec.check().map_err(LearnError::Unsupported)?;
        let d = spec.d_model;
        if spec.heads == 0 || !d.is_multiple_of(spec.heads) {
            return Err(unsupported(&format!(
                "a transformer whose {} heads do not divide its width {d}",
                spec.heads
            )));
        }
        let at = |name: &str| {
            layout
                .iter()
                .position(|p| p.name == name)
                .map(|i| offsets[i])
        };
        let need = |name: &str| {
            at(name).ok_or_else(|| {
                unsupported(&format!("a transformer without its parameter `{name}`"))
            })
        };
        let norm = |on: bool, prefix: &str| -> Result<Option<Norm>, LearnError> {
            if !on {
                return Ok(None);
            }
            Ok(Some(Norm {
                weight: need(&format!("{prefix}.weight"))?,
                bias: need(&format!("{prefix}.bias"))?,
            }))
        };
        let embed = match spec.input {
            _ if !spec.embed => None,
            SequenceInput::Tokens { .. } => Some((need("tok")?, None)),
            SequenceInput::Dense { .. } => Some((need("w_in")?, Some(need("b_in")?))),
        };
        let pos = spec.positions.then(|| need("pos")).transpose()?;
        let mlp = spec.d_ff > 0;
        let mut blocks = Vec::with_capacity(spec.layers);
        for l in 0..spec.layers {
            let n = |s: &str| format!("layers.{l}.{s}");
            blocks.push(Block {
                ln1: norm(spec.layer_norm, &n("ln1"))?,
                qkv: need(&n("attn.qkv"))?,
                out: spec.attn_out.then(|| need(&n("attn.out"))).transpose()?,
                ln2: norm(spec.layer_norm && mlp, &n("ln2"))?,
                mlp: mlp
                    .then(|| -> Result<[usize; 4], LearnError> {
                        Ok([
                            need(&n("mlp.fc"))?,
                            need(&n("mlp.fc_bias"))?,
                            need(&n("mlp.proj"))?,
                            need(&n("mlp.proj_bias"))?,
                        ])
                    })
                    .transpose()?,
            });
        }
        let mut width = d;
        let mut head_layers = Vec::with_capacity(spec.head.len());
        for (i, &w) in spec.head.iter().enumerate() {
            head_layers.push((
                need(&format!("head_layers.{i}.weight"))?,
                need(&format!("head_layers.{i}.bias"))?,
                w,
                width,
            ));
            width = w;
        }
        Ok(Transformer {
            input: spec.input,
            outputs: spec.outputs,
            d,
            heads: spec.heads,
            d_ff: spec.d_ff,
            context: spec.context,
            scaled: spec.attn_scale,
            activation: spec.activation,
            embed,
            pos,
            blocks,
            ln_f: norm(spec.layer_norm, "ln_f")?,
            head_layers,
            head: (need("head")?, width),
        })
    }

    /// Outputs `[P, rows · T, outputs]` of the `[P, N]` weights `theta`:
    /// the readout at every position, row-major over (row, position),
    /// each position seeing only those up to it.
    pub(super) fn forward(
        &self,
        theta: &Tensor,
        input: &Input,
        rows: usize,
    ) -> candle_core::Result<Tensor> {
        let p = theta.dim(0)?;
        let d = self.d;
        let vector = |at: usize, len: usize| theta.narrow(1, at, len)?.reshape((p, 1, len));
        let matrix = |at: usize, r: usize, c: usize| theta.narrow(1, at, r * c)?.reshape((p, r, c));
        // The input as the stream's first value, `[P, rows · T, d]`.
        let (steps, mut x) = match (self.input, input) {
            (SequenceInput::Dense { dim }, Input::Sequences(x)) => {
                let (steps, xp, xr, width) = x.dims4()?;
                if (xp, xr, width) != (p, rows, dim) {
                    candle_core::bail!(
                        "the batched transformer reads [T, {p}, {rows}, {dim}] inputs, not {:?}",
                        x.dims()
                    );
                }
                // Time-major as gathered for the recurrent nets: back to
                // sequence-major.
                let x = x
                    .permute((1, 2, 0, 3))?
                    .contiguous()?
                    .reshape((p, rows * steps, dim))?;
                let x = match self.embed {
                    Some((w_in, b_in)) => {
                        let y = x.matmul(&matrix(w_in, d, dim)?.t()?)?;
                        match b_in {
                            Some(b) => y.broadcast_add(&vector(b, d)?)?,
                            None => y,
                        }
                    }
                    None => x,
                };
                (steps, x)
            }
            (SequenceInput::Tokens { vocab }, Input::Windows(ids)) => {
                let (steps, n) = ids.dims2()?;
                if n != p * rows {
                    candle_core::bail!("the batched transformer reads [T, {}] token ids", p * rows);
                }
                let Some((tok, _)) = self.embed else {
                    candle_core::bail!("a transformer reading tokens needs its embedding");
                };
                // Ids offset by `p · vocab` into the stack of the tables.
                let table = theta.narrow(1, tok, vocab * d)?.reshape((p * vocab, d))?;
                let ids = ids.t()?.contiguous()?.flatten_all()?;
                (
                    steps,
                    table.index_select(&ids, 0)?.reshape((p, rows * steps, d))?,
                )
            }
            _ => candle_core::bail!("the batched transformer cannot read this input"),
        };
        if steps == 0 || (self.pos.is_some() && steps > self.context) {
            candle_core::bail!(
                "the transformer reads 1 to {} positions (its position table) but the input has {steps}",
                self.context
            );
        }
        if let Some(at) = self.pos {
            let pos = theta.narrow(1, at, steps * d)?.reshape((p, 1, steps, d))?;
            x = x
                .reshape((p, rows, steps, d))?
                .broadcast_add(&pos)?
                .reshape((p, rows * steps, d))?;
        }
        let mask = causal_mask(steps, &x)?;
        let (h, hd) = (self.heads, d / self.heads);
        for block in &self.blocks {
            let a = self.normed(theta, block.ln1, &x)?;
            let qkv = a.matmul(&matrix(block.qkv, 3 * d, d)?.t()?)?;
            // `[P, rows · T, d]` -> `[P · rows · heads, T, hd]`.
            let split = |i: usize| {
                qkv.narrow(2, i * d, d)?
                    .reshape((p, rows, steps, h, hd))?
                    .permute((0, 1, 3, 2, 4))?
                    .contiguous()?
                    .reshape((p * rows * h, steps, hd))
            };
            let q = split(0)?;
            let q = if self.scaled {
                (q * (1.0 / (hd as f64).sqrt()))?
            } else {
                q
            };
            let (k, v) = (split(1)?, split(2)?);
            let scores = q.matmul(&k.t()?)?.broadcast_add(&mask)?;
            let y = softmax_last(&scores)?
                .matmul(&v)?
                .reshape((p, rows, h, steps, hd))?
                .permute((0, 1, 3, 2, 4))?
                .contiguous()?
                .reshape((p, rows * steps, d))?;
            let y = match block.out {
                Some(out) => y.matmul(&matrix(out, d, d)?.t()?)?,
                None => y,
            };
            x = (&x + y)?;
            if let Some([fc, fc_bias, proj, proj_bias]) = block.mlp {
                let f = self.d_ff;
                let z = self
                    .normed(theta, block.ln2, &x)?
                    .matmul(&matrix(fc, f, d)?.t()?)?
                    .broadcast_add(&vector(fc_bias, f)?)?;
                let hidden = activate(self.activation, &z)?;
                let y = hidden
                    .matmul(&matrix(proj, d, f)?.t()?)?
                    .broadcast_add(&vector(proj_bias, d)?)?;
                x = (&x + y)?;
            }
        }
        let mut x = self.normed(theta, self.ln_f, &x)?;
        for &(w, b, out, width) in &self.head_layers {
            let z = x
                .matmul(&matrix(w, out, width)?.t()?)?
                .broadcast_add(&vector(b, out)?)?;
            x = relu(&z)?;
        }
        let (head, width) = self.head;
        x.matmul(&matrix(head, self.outputs, width)?.t()?)
    }

    /// `x` (`[P, m, d]`) through the LayerNorm at `norm`, or `x` itself.
    fn normed(
        &self,
        theta: &Tensor,
        norm: Option<Norm>,
        x: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let Some(norm) = norm else {
            return Ok(x.clone());
        };
        let (p, d) = (theta.dim(0)?, self.d);
        let weight = theta.narrow(1, norm.weight, d)?.reshape((p, 1, d))?;
        let bias = theta.narrow(1, norm.bias, d)?.reshape((p, 1, d))?;
        let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + LN_EPS)?.sqrt()?)?;
        normed.broadcast_mul(&weight)?.broadcast_add(&bias)
    }
}

/// The block MLP's activation: GELU (tanh approximation) written as the
/// reference paths compute it, or the family's own.
fn activate(activation: Activation, z: &Tensor) -> candle_core::Result<Tensor> {
    match activation {
        Activation::Gelu => gelu(z),
        Activation::Relu => relu(z),
        Activation::Tanh => z.tanh(),
        Activation::Linear => Ok(z.clone()),
    }
}

/// The fast path's ReLU, whose derivative at 0 is 0 (see `recurrent.rs`).
fn relu(z: &Tensor) -> candle_core::Result<Tensor> {
    z.detach().gt(0.0)?.where_cond(z, &z.zeros_like()?)
}

/// GELU, tanh approximation: `x sigmoid(2u)` with `u = sqrt(2 / pi) (x +
/// 0.044715 x^3)`, the values of candle's `gelu`.
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

/// `[T, T]` of 0 on and below the diagonal and -inf above it, in `like`'s
/// dtype and device.
fn causal_mask(steps: usize, like: &Tensor) -> candle_core::Result<Tensor> {
    let values: Vec<f32> = (0..steps)
        .flat_map(|i| (0..steps).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(values, (steps, steps), like.device())?.to_dtype(like.dtype())
}

#[cfg(test)]
mod tests;
