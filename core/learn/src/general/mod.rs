//! The general path: every model on candle, trained with autograd, on the
//! CPU or a CUDA device.
//!
//! Each model is built the candle way, `new(spec, vb)` plus `forward`,
//! from a `VarBuilder` whose variables are the organism's birth weights
//! under the names of [`ModelSpec::params`]. The optimiser mirrors
//! [`crate::optim`] with tensor operations, so this path and the fast path
//! compute the same lifetime (a test holds them to 1e-5).

mod gru;
mod mlp;
mod rnn;
mod transformer;

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use lineage_env::Batch;

pub use gru::Gru;
pub use mlp::Mlp;
pub use rnn::Rnn;
pub use transformer::Transformer;

use crate::data::Examples;
use crate::optim::{Method, clip_scale};
use crate::spec::{Loss, ModelSpec};
use crate::{CurvePoint, Job, LearnError, LifetimeSpec, Outcome, Status};

/// What a model reads for a set of examples.
#[derive(Clone, Debug)]
pub enum Input {
    /// Real rows `[n, inputs]` (MLP).
    Dense(Tensor),
    /// Token contexts `[n, context]`, u32 (MLP language model).
    Context(Tensor),
    /// Token sequences `[n, steps]`, u32 (sequence models).
    Tokens(Tensor),
    /// Real sequences `[n, steps, dim]` (sequence models).
    Sequence(Tensor),
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
    /// Causal transformer.
    Transformer(Transformer),
}

impl Network {
    /// Builds `spec` from the variables in `vb` (named as in
    /// [`ModelSpec::params`]).
    pub fn new(spec: &ModelSpec, vb: VarBuilder) -> candle_core::Result<Network> {
        Ok(match spec {
            ModelSpec::Mlp(s) => Network::Mlp(Mlp::new(s, vb)?),
            ModelSpec::Rnn(s) => Network::Rnn(Rnn::new(s, vb)?),
            ModelSpec::Gru(s) => Network::Gru(Gru::new(s, vb)?),
            ModelSpec::Transformer(s) => Network::Transformer(Transformer::new(s, vb)?),
        })
    }

    /// Outputs: `[n, outputs]` for an MLP, `[n, steps, outputs]` for a
    /// sequence model.
    pub fn forward(&self, input: &Input) -> candle_core::Result<Tensor> {
        match self {
            Network::Mlp(m) => m.forward(input),
            Network::Rnn(m) => m.forward(input),
            Network::Gru(m) => m.forward(input),
            Network::Transformer(m) => m.forward(input),
        }
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
                Target::Classes(Tensor::from_vec(ls, n, device)?),
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
                Target::Classes(Tensor::from_vec(next, n, device)?),
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
                Target::Classes(Tensor::from_vec(ys, n * (len - 1), device)?),
            )
        }
    })
}

fn pick_rows(data: &[f32], width: usize, ids: &[u32]) -> Vec<f32> {
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
    /// Class indices, one per output row (sequence outputs are flattened).
    Classes(Tensor),
}

/// Mean loss of `outputs` against `target`.
pub fn loss(loss: Loss, outputs: &Tensor, target: &Target) -> candle_core::Result<Tensor> {
    match (loss, target) {
        (Loss::MeanSquared, Target::Values(t)) => (outputs - t)?.sqr()?.mean_all(),
        (Loss::CrossEntropy, Target::Classes(c)) => {
            let classes = outputs.dim(D::Minus1)?;
            let logits = outputs.reshape(((), classes))?;
            candle_nn::loss::cross_entropy(&logits, c)
        }
        _ => candle_core::bail!("the loss does not match the targets"),
    }
}

/// An organism's weights as candle variables.
struct Vars {
    vars: Vec<Var>,
    masks: Vec<Option<Tensor>>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

/// Runs one organism's lifetime on the general path.
pub(crate) fn train(
    model: &ModelSpec,
    loss_kind: Loss,
    life: &LifetimeSpec,
    device: &Device,
    job: Job,
) -> Result<Outcome, LearnError> {
    let layout = model.params();
    let varmap = VarMap::new();
    let mut state = Vars {
        vars: Vec::new(),
        masks: Vec::new(),
        m: Vec::new(),
        v: Vec::new(),
    };
    {
        let mut data = varmap.data().lock().expect("a fresh VarMap is not poisoned");
        for ((info, values), mask) in layout.iter().zip(&job.params).zip(&job.masks) {
            let t = Tensor::from_slice(values, info.shape.as_slice(), device)?;
            let var = Var::from_tensor(&t)?;
            data.insert(info.name.clone(), var.clone());
            state.m.push(t.zeros_like()?);
            state.v.push(t.zeros_like()?);
            state.masks.push(match mask {
                Some(m) => Some(Tensor::from_slice(m, info.shape.as_slice(), device)?),
                None => None,
            });
            state.vars.push(var);
        }
    }
    let net = Network::new(model, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
    let ex = Examples::of(job.train, model).expect("the lifetime was checked to hold examples");
    let steps = job.hyper.steps;
    let mut curve = Vec::new();
    let mut status = Status::Completed;
    let mut since = (0.0f64, 0u32);
    for (step, ids) in job.indices.chunks_exact(life.batch).take(steps as usize).enumerate() {
        let step = step as u32;
        let (input, target) = gather(job.train, ex, ids, device)?;
        let l = loss(loss_kind, &net.forward(&input)?, &target)?;
        let value = l.to_scalar::<f32>()?;
        if !value.is_finite() {
            status = Status::Diverged { step };
            break;
        }
        if step == 0 {
            let heldout = evaluate(&net, model, loss_kind, job.heldout, life.curve_heldout, device)?;
            curve.push(CurvePoint {
                step: 0,
                train: value,
                heldout,
            });
        }
        since = (since.0 + f64::from(value), since.1 + 1);
        let grads = l.backward()?;
        update(life, &job.hyper, step, &mut state, &grads)?;
        let done = step + 1;
        if done == steps || (life.eval_every > 0 && done % life.eval_every == 0) {
            let limit = if done == steps { usize::MAX } else { life.curve_heldout };
            curve.push(CurvePoint {
                step: done,
                train: (since.0 / f64::from(since.1)) as f32,
                heldout: evaluate(&net, model, loss_kind, job.heldout, limit, device)?,
            });
            since = (0.0, 0);
        }
    }
    if steps == 0 {
        curve.push(CurvePoint {
            step: 0,
            train: f32::NAN,
            heldout: evaluate(&net, model, loss_kind, job.heldout, usize::MAX, device)?,
        });
    }
    if status == Status::Completed && !curve.last().is_some_and(|p| p.heldout.is_finite()) {
        status = Status::Diverged { step: steps };
    }
    let params = state
        .vars
        .iter()
        .map(|v| v.as_tensor().flatten_all()?.to_vec1::<f32>())
        .collect::<candle_core::Result<_>>()?;
    Ok(Outcome {
        params,
        curve,
        status,
    })
}

/// Mean loss over (up to `limit` examples of) `batch`, in chunks.
fn evaluate(
    net: &Network,
    model: &ModelSpec,
    loss_kind: Loss,
    batch: &Batch,
    limit: usize,
    device: &Device,
) -> candle_core::Result<f32> {
    let Some(ex) = Examples::of(batch, model) else {
        return Ok(f32::NAN);
    };
    let n = ex.count().min(limit);
    let ids: Vec<u32> = (0..n as u32).collect();
    let mut total = 0.0f64;
    for chunk in ids.chunks(256) {
        let (input, target) = gather(batch, ex, chunk, device)?;
        let l = loss(loss_kind, &net.forward(&input)?, &target)?.to_scalar::<f32>()?;
        total += f64::from(l) * chunk.len() as f64;
    }
    Ok((total / n as f64) as f32)
}

/// One optimiser step with tensor operations, mirroring
/// [`crate::optim::update`].
fn update(
    life: &LifetimeSpec,
    hyper: &crate::Hyper,
    step: u32,
    state: &mut Vars,
    grads: &candle_core::backprop::GradStore,
) -> candle_core::Result<()> {
    let spec = &life.optimizer;
    let mut gs = Vec::with_capacity(state.vars.len());
    for (var, mask) in state.vars.iter().zip(&state.masks) {
        let g = match grads.get(var.as_tensor()) {
            Some(g) => g.clone(),
            None => var.as_tensor().zeros_like()?,
        };
        gs.push(match mask {
            Some(m) => (g * m)?,
            None => g,
        });
    }
    if let Some(max) = spec.clip {
        let mut sq = 0.0f64;
        for g in &gs {
            sq += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
        let scale = clip_scale(sq.sqrt() as f32, max);
        if scale < 1.0 {
            for g in &mut gs {
                *g = g.affine(f64::from(scale), 0.0)?;
            }
        }
    }
    let lr = f64::from(hyper.lr * spec.schedule.factor(step, hyper.steps));
    let (wd, mu) = (f64::from(hyper.weight_decay), f64::from(hyper.momentum));
    let t = step as i32 + 1;
    for (i, g) in gs.into_iter().enumerate() {
        let p = state.vars[i].as_tensor().clone();
        let new = match spec.method {
            Method::Sgd => {
                let d = (g + p.affine(wd, 0.0)?)?;
                if mu == 0.0 {
                    (p - d.affine(lr, 0.0)?)?
                } else {
                    let m = (state.m[i].affine(mu, 0.0)? + d)?;
                    let new = (p - m.affine(lr, 0.0)?)?;
                    state.m[i] = m;
                    new
                }
            }
            Method::Adam | Method::AdamW => {
                let (p, d) = if spec.method == Method::AdamW {
                    ((&p - p.affine(lr * wd, 0.0)?)?, g)
                } else {
                    (p.clone(), (g + p.affine(wd, 0.0)?)?)
                };
                let (b1, b2) = (mu, f64::from(spec.beta2));
                let m = (state.m[i].affine(b1, 0.0)? + d.affine(1.0 - b1, 0.0)?)?;
                let v = (state.v[i].affine(b2, 0.0)? + d.sqr()?.affine(1.0 - b2, 0.0)?)?;
                let m_hat = m.affine(1.0 / (1.0 - b1.powi(t)), 0.0)?;
                let v_hat = v.affine(1.0 / (1.0 - b2.powi(t)), 0.0)?;
                let step = (m_hat / (v_hat.sqrt()? + f64::from(spec.eps))?)?;
                state.m[i] = m;
                state.v[i] = v;
                (p - step.affine(lr, 0.0)?)?
            }
        };
        let new = match &state.masks[i] {
            Some(mask) => (new * mask)?,
            None => new,
        };
        state.vars[i].set(&new)?;
    }
    Ok(())
}
