//! Every model family: its [`Family`](crate::family::Family) and its
//! candle module, one file each. The modules are the reference forward
//! pass that the autograd path trains ([`crate::autograd`]), the
//! measurements run ([`crate::measure`]) and the fast paths are tested
//! against.
//!
//! Each model is built the candle way, `new(spec, vb)` plus `forward`,
//! from a `VarBuilder` whose variables are the organism's birth weights
//! under the names of [`ModelSpec::params`]; [`gather`] turns a batch's
//! examples into an [`Input`] and a [`Target`], and [`loss`] scores them.
//!
//! The five built-in families are variants of [`ModelSpec`]; every other
//! family is listed in [`REGISTERED`], the one place a scenario's `kind`
//! is looked up.
//!
//! Built on the vocabulary only (`spec`, `family`, `data`).

mod bag;
mod gru;
mod lstm;
mod mlp;
mod rnn;
mod transformer;

use candle_core::{D, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use lineage_env::{Batch, IGNORE};

pub use crate::family::Input;
pub use bag::{Bag, BagSpec};
pub use gru::Gru;
pub use lstm::{FORGET_BIAS, Lstm};
pub use mlp::Mlp;
pub use rnn::Rnn;
pub use transformer::Transformer;

use crate::data::Examples;
use crate::family::{Module, Registration};
use crate::spec::{Loss, ModelSpec, ParamInfo};

/// The families a scenario names by `kind` beyond the built-in five (`mlp`,
/// `linear2`, `rnn`, `gru`, `lstm`, `transformer`). A new family adds its line
/// here; nothing else in Lineage lists families.
pub const REGISTERED: &[Registration] = &[bag::REGISTRATION];

/// The registered family of this `kind`.
pub fn registration(kind: &str) -> Option<&'static Registration> {
    REGISTERED.iter().find(|r| r.kind == kind)
}

/// A network of any kind.
#[derive(Debug)]
pub enum Network {
    /// Multi-layer perceptron.
    Mlp(Mlp),
    /// Leaky RNN.
    Rnn(Rnn),
    /// GRU.
    Gru(Gru),
    /// LSTM.
    Lstm(Lstm),
    /// Causal transformer.
    Transformer(Transformer),
    /// A registered family's module.
    Registered(Box<dyn Module>),
}

impl Network {
    /// Builds `spec` from the variables in `vb` (named as in
    /// [`ModelSpec::params`]).
    pub fn new(spec: &ModelSpec, vb: VarBuilder) -> candle_core::Result<Network> {
        Ok(match spec {
            ModelSpec::Mlp(s) => Network::Mlp(Mlp::new(s, vb)?),
            ModelSpec::Rnn(s) => Network::Rnn(Rnn::new(s, vb)?),
            ModelSpec::Gru(s) => Network::Gru(Gru::new(s, vb)?),
            ModelSpec::Lstm(s) => Network::Lstm(Lstm::new(s, vb)?),
            ModelSpec::Transformer(s) => Network::Transformer(Transformer::new(s, vb)?),
            ModelSpec::Registered(r) => Network::Registered(r.family().build(vb)?),
        })
    }

    /// The network as its family's module.
    pub fn module(&self) -> &dyn Module {
        match self {
            Network::Mlp(m) => m,
            Network::Rnn(m) => m,
            Network::Gru(m) => m,
            Network::Lstm(m) => m,
            Network::Transformer(m) => m,
            Network::Registered(m) => &**m,
        }
    }

    /// Outputs: `[n, outputs]` for an MLP, `[n, steps, outputs]` for a
    /// sequence model.
    pub fn forward(&self, input: &Input) -> candle_core::Result<Tensor> {
        self.module().forward(input)
    }

    /// The activations of hidden layer `index` of the family's layers.
    pub fn hidden(&self, input: &Input, index: usize) -> candle_core::Result<Tensor> {
        self.module().hidden(input, index)
    }
}

/// Examples `ids` of `batch` as the model's input and the loss's target.
pub fn gather(
    batch: &Batch,
    ex: Examples,
    ids: &[u32],
    device: &Device,
) -> candle_core::Result<(Input, Target)> {
    let n = ids.len();
    Ok(match (batch, ex) {
        (Batch::Dense { x, y, n: rows }, _) => {
            let (w, o) = (x.len() / rows, y.len() / rows);
            let xs = pick_rows(x, w, ids);
            let ys = pick_rows(y, o, ids);
            (
                Input::Dense(Tensor::from_vec(xs, (n, w), device)?),
                Target::Values(Tensor::from_vec(ys, (n, o), device)?),
            )
        }
        (Batch::Labeled { x, labels, n: rows }, _) => {
            let w = x.len() / rows;
            let xs = pick_rows(x, w, ids);
            let ls: Vec<u32> = ids.iter().map(|&i| labels[i as usize]).collect();
            (
                Input::Dense(Tensor::from_vec(xs, (n, w), device)?),
                Target::Classes {
                    labels: Tensor::from_vec(ls, n, device)?,
                    rows: None,
                },
            )
        }
        (
            Batch::Tokens { tokens, .. },
            Examples::Positions {
                per, context, len, ..
            },
        ) => {
            let mut ctx = Vec::with_capacity(n * context);
            let mut next = Vec::with_capacity(n);
            for &id in ids {
                let id = id as usize;
                let start = (id / per) * len + id % per;
                ctx.extend_from_slice(&tokens[start..start + context]);
                next.push(tokens[start + context]);
            }
            (
                Input::Context(Tensor::from_vec(ctx, (n, context), device)?),
                Target::Classes {
                    labels: Tensor::from_vec(next, n, device)?,
                    rows: None,
                },
            )
        }
        (
            Batch::Sequences {
                x,
                labels,
                steps,
                n: rows,
            },
            _,
        ) => {
            let dim = x.len() / (rows * steps).max(1);
            let xs = pick_rows(x, steps * dim, ids);
            let ls = pick_rows(labels, *steps, ids);
            let scored = ls.contains(&IGNORE).then(|| {
                ls.iter()
                    .enumerate()
                    .filter(|&(_, &l)| l != IGNORE)
                    .map(|(i, _)| i as u32)
                    .collect::<Vec<u32>>()
            });
            let (ls, rows) = match scored {
                Some(rows) => {
                    let kept: Vec<u32> = rows.iter().map(|&i| ls[i as usize]).collect();
                    let count = rows.len();
                    (kept, Some(Tensor::from_vec(rows, count, device)?))
                }
                None => (ls, None),
            };
            let count = ls.len();
            (
                Input::Sequence(Tensor::from_vec(xs, (n, *steps, dim), device)?),
                Target::Classes {
                    labels: Tensor::from_vec(ls, count, device)?,
                    rows,
                },
            )
        }
        (Batch::Tokens { tokens, len, .. }, _) => {
            let mut xs = Vec::with_capacity(n * (len - 1));
            let mut ys = Vec::with_capacity(n * (len - 1));
            for &id in ids {
                let w = &tokens[id as usize * len..(id as usize + 1) * len];
                xs.extend_from_slice(&w[..len - 1]);
                ys.extend_from_slice(&w[1..]);
            }
            (
                Input::Tokens(Tensor::from_vec(xs, (n, len - 1), device)?),
                Target::Classes {
                    labels: Tensor::from_vec(ys, n * (len - 1), device)?,
                    rows: None,
                },
            )
        }
    })
}

fn pick_rows<T: Copy>(data: &[T], width: usize, ids: &[u32]) -> Vec<T> {
    let mut out = Vec::with_capacity(ids.len() * width);
    for &i in ids {
        let i = i as usize;
        out.extend_from_slice(&data[i * width..(i + 1) * width]);
    }
    out
}

/// What the loss compares outputs with.
#[derive(Clone, Debug)]
pub enum Target {
    /// Real targets, the outputs' shape.
    Values(Tensor),
    /// Class indices, one per output row (sequence outputs are
    /// flattened), or one per row of `rows` where only those are scored.
    Classes {
        /// The labels.
        labels: Tensor,
        /// Indices of the scored output rows; `None`: all.
        rows: Option<Tensor>,
    },
}

/// Mean loss of `outputs` against `target`.
pub fn loss(loss: Loss, outputs: &Tensor, target: &Target) -> candle_core::Result<Tensor> {
    match (loss, target) {
        (Loss::MeanSquared, Target::Values(t)) => (outputs - t)?.sqr()?.mean_all(),
        (Loss::CrossEntropy, Target::Classes { labels, rows }) => {
            let classes = outputs.dim(D::Minus1)?;
            let mut logits = outputs.reshape(((), classes))?;
            if let Some(rows) = rows {
                logits = logits.index_select(rows, 0)?;
            }
            candle_nn::loss::cross_entropy(&logits, labels)
        }
        _ => candle_core::bail!("the loss does not match the targets"),
    }
}

/// An organism's weights `params` (in `layout` order) as candle variables
/// on `device`, in a `VarMap` under the layout's names (what
/// [`Network::new`] reads through `VarBuilder::from_varmap`) and in layout
/// order. Stops at the shorter of `layout` and `params`; a parameter whose
/// length does not match its shape is an error.
pub(crate) fn variables(
    layout: &[ParamInfo],
    params: &[Vec<f32>],
    device: &Device,
) -> candle_core::Result<(VarMap, Vec<Var>)> {
    let varmap = VarMap::new();
    let mut vars = Vec::with_capacity(layout.len());
    {
        let mut data = varmap
            .data()
            .lock()
            .expect("a fresh VarMap is not poisoned");
        for (info, values) in layout.iter().zip(params) {
            let t = Tensor::from_slice(values, info.shape.as_slice(), device)?;
            let var = Var::from_tensor(&t)?;
            data.insert(info.name.clone(), var.clone());
            vars.push(var);
        }
    }
    Ok((varmap, vars))
}

#[cfg(test)]
pub(crate) mod tests;
