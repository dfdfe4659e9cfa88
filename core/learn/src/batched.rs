//! The population-batched tensor path: the lifetimes of many MLPs (and MLP
//! language models) of one architecture run in lockstep on candle tensors,
//! on any device. It is the path MLPs take on CUDA ([`crate::path_for`]);
//! on the CPU the per-organism fast path is faster, and this one runs only
//! where it is asked for ([`crate::Path::Batched`]).
//!
//! # Layout
//!
//! A chunk of `P` organisms keeps its weights in one `[P, N]` variable:
//! row `p` is organism `p`'s parameters, flattened in
//! [`ModelSpec::params`] order (`N` values). The optimiser's moments, the
//! masks (1 where a parameter has none) and the sign constraints (0: free)
//! are `[P, N]` tensors beside it, and the per-organism hyper-parameters
//! (learning rate with its schedule, momentum, weight decay, Adam's bias
//! corrections) are `[P, 1]` columns. Layer `l` reads its weight as the
//! slice of the row it owns, reshaped to `[P, out, in]`, and multiplies the
//! `[P, rows, in]` activations by its transpose: one batched matmul per
//! layer per step. Parameters are converted to and from this layout only
//! at the edges (birth, curve points with probe sets, the end).
//!
//! Each step gathers every organism's own minibatch by its own indices:
//! the chunk's distinct train and held-out batches are uploaded once (a
//! batch the organisms share, once), and each step sends the `[P · batch]`
//! row indices (u32) to the device, which gathers the rows. For a language
//! model the host sends the context's token ids instead, offset by
//! `p · vocab` into the `[P · vocab, dim]` stack of embedding tables.
//!
//! The loss of each organism is the fast path's (the mean over its
//! minibatch); the backward pass runs on their sum, whose gradient with
//! respect to an organism's weights is that organism's own. Then, as
//! [`crate::optim::update`] does it, operation for operation: mask the
//! gradient, clip it to the organism's own global norm (summed in f64),
//! update, mask, project onto the signs. An organism whose lifetime has
//! ended, or whose loss was not finite (then or before), keeps its weights
//! (a per-organism `where`): nothing an organism computes depends on the
//! other organisms of its chunk. The host reads the per-step losses back
//! only at curve points, where it replays the bookkeeping of the lifetime
//! loop every other path runs (`lifetime::live`) for each organism.
//!
//! Held-out losses are computed on the device in the same layout, for the
//! organisms that record a curve point at that step, up to `EVAL_ROWS`
//! examples per organism per pass (organisms with different numbers of
//! examples left go in separate passes, so that no organism's score
//! depends on the others'), and summed on the host in f64. Probe sets are
//! scored on the host from the weights read back, by the code every path
//! uses.
//!
//! # Chunking
//!
//! [`train`] sorts the jobs by lifetime length (longest first, so a chunk's
//! organisms end together) and cuts them into chunks whose estimated
//! memory ([`organism_bytes`]) fits a budget ([`plan_chunks`]). The budget
//! is [`DEFAULT_BUDGET`] on every device ([`memory_budget`]), a constant
//! rather than the device's free memory: candle does not report it
//! (cudarc's `mem_get_info` does, in builds with the `cuda` feature only),
//! and a constant keeps a run's chunks, and so its records, independent
//! of what else the device holds.
//!
//! # Equivalence
//!
//! An organism's [`Outcome`] is the one the fast path computes for it
//! alone, up to floating-point summation order (matmuls, softmax sums):
//! same curve steps, same status and divergence step, and weights, curve
//! values and probe values within 1e-5 as `max |a - b| / max(|b|, 1)`
//! over all of them (the tests below, on the CPU, measure 1e-7 to 2e-7 for
//! SGD, Adam and AdamW alike). On the CPU it is also the same bit for bit
//! whatever the chunking and whoever shares its chunk; on CUDA that holds
//! as far as cuBLAS picks the same kernels for every batch count, which is
//! not checked here.

use candle_core::{D, DType, Device, Tensor, Var};
use lineage_env::Batch;
use rayon::prelude::*;

use crate::data::Examples;
use crate::lifetime::{Scoring, score_probe_sets};
use crate::optim::Method;
use crate::spec::{Activation, Loss, MlpSpec, ModelSpec};
use crate::{CurvePoint, Job, LearnError, LifetimeSpec, Outcome, ProbePoint, Status};

/// Memory a chunk may take when the device says nothing better: 1 GiB.
pub const DEFAULT_BUDGET: usize = 1 << 30;

/// Held-out examples per organism in one scoring pass.
const EVAL_ROWS: usize = 256;

/// Copies of the `N` parameters one organism holds at the peak of a step:
/// the weights, their gradient, two moments, mask, signs, the layers'
/// reshaped copies, the gradient's padded pieces, the gradient in f64 for
/// the norm (two), and the update's temporaries.
const PARAM_COPIES: usize = 14;

/// Copies of one example's activations (every layer's width) per training
/// row: pre-activations, activations, their gradients, and the loss's
/// temporaries.
const TRAIN_COPIES: usize = 6;

/// The same per held-out row (no gradients).
const EVAL_COPIES: usize = 3;

/// The memory budget for a chunk on `device`: [`DEFAULT_BUDGET`] on every
/// device (see the module docs).
pub fn memory_budget(_device: &Device) -> usize {
    DEFAULT_BUDGET
}

/// Estimated peak bytes one organism takes in a chunk: its parameters and
/// optimiser state (`PARAM_COPIES` copies), its minibatch's activations
/// (`TRAIN_COPIES` per unit per row) and a scoring pass's (`EVAL_COPIES`
/// per unit per row), and `data_values` values of data on the device, all
/// f32.
pub fn organism_bytes(spec: &MlpSpec, batch: usize, data_values: usize) -> usize {
    let params: usize = ModelSpec::Mlp(spec.clone())
        .params()
        .iter()
        .map(|p| p.len())
        .sum();
    let units: usize = spec.widths.iter().sum();
    let values = PARAM_COPIES * params
        + (TRAIN_COPIES * batch + EVAL_COPIES * EVAL_ROWS) * units
        + data_values;
    4 * values
}

/// Cuts organisms of the given sizes (bytes, in order) into consecutive
/// chunks whose sizes sum to at most `budget`; every chunk holds at least
/// one organism. Returns the chunks' lengths.
pub fn plan_chunks(sizes: &[usize], budget: usize) -> Vec<usize> {
    let mut chunks = Vec::new();
    let (mut len, mut bytes) = (0usize, 0usize);
    for &size in sizes {
        if len > 0 && bytes.saturating_add(size) > budget {
            chunks.push(len);
            (len, bytes) = (0, 0);
        }
        len += 1;
        bytes = bytes.saturating_add(size);
    }
    if len > 0 {
        chunks.push(len);
    }
    chunks
}

/// Runs every job's lifetime on the batched path, chunk by chunk within
/// `budget` bytes, and returns the outcomes in job order.
pub fn train(
    spec: &MlpSpec,
    loss: Loss,
    life: &LifetimeSpec,
    device: &Device,
    jobs: Vec<Job<'_>>,
    budget: usize,
) -> Result<Vec<Outcome>, LearnError> {
    if life.batch == 0 {
        return Err(unsupported("a minibatch of 0 examples"));
    }
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(jobs[i].hyper.steps));
    let sizes: Vec<usize> = order
        .iter()
        .map(|&i| {
            let data = values_on_device(jobs[i].train) + values_on_device(jobs[i].heldout);
            organism_bytes(spec, life.batch, data)
        })
        .collect();
    let mut slots: Vec<Option<Job>> = jobs.into_iter().map(Some).collect();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; slots.len()];
    let mut at = 0;
    for len in plan_chunks(&sizes, budget) {
        let ids = &order[at..at + len];
        let chunk: Vec<Job> = ids
            .iter()
            .map(|&i| slots[i].take().expect("each job is in one chunk"))
            .collect();
        for (&i, outcome) in ids.iter().zip(run_chunk(spec, loss, life, device, &chunk)?) {
            outcomes[i] = Some(outcome);
        }
        at += len;
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.expect("every job is in a chunk"))
        .collect())
}

fn unsupported(what: &str) -> LearnError {
    LearnError::Unsupported(format!("the batched path cannot train {what}"))
}

/// Values of `batch` the device holds (token batches stay on the host).
fn values_on_device(batch: &Batch) -> usize {
    match batch {
        Batch::Dense { x, y, .. } => x.len() + y.len(),
        Batch::Labeled { x, labels, .. } => x.len() + labels.len(),
        Batch::Tokens { .. } | Batch::Sequences { .. } => 0,
    }
}

/// Where each parameter sits in an organism's row, and the forward pass.
struct Net<'s> {
    spec: &'s MlpSpec,
    loss: Loss,
    /// Values per parameter, in [`ModelSpec::params`] order.
    lens: Vec<usize>,
    /// Values per organism.
    width: usize,
    embed: Option<usize>,
    weights: Vec<usize>,
    biases: Vec<Option<usize>>,
}

/// What the first layer reads.
enum Input {
    /// `[P, rows, inputs]`.
    Rows(Tensor),
    /// Context token ids `[P · rows · context]`, each offset by its
    /// organism's `p · vocab`.
    Tokens(Tensor),
}

impl<'s> Net<'s> {
    fn new(spec: &'s MlpSpec, loss: Loss) -> Net<'s> {
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
    fn forward(&self, theta: &Tensor, input: &Input, rows: usize) -> candle_core::Result<Tensor> {
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
    fn losses(&self, outputs: &Tensor, target: &Tensor) -> candle_core::Result<Tensor> {
        match self.loss {
            Loss::CrossEntropy => candle_nn::ops::log_softmax(outputs, D::Minus1)?
                .gather(target, D::Minus1)?
                .neg(),
            Loss::MeanSquared => (outputs - target)?.sqr(),
        }
    }
}

fn activate(act: Activation, x: &Tensor) -> candle_core::Result<Tensor> {
    match act {
        Activation::Relu => x.relu(),
        // The tanh approximation, as the fast path's.
        Activation::Gelu => x.gelu(),
        Activation::Tanh => x.tanh(),
        Activation::Linear => Ok(x.clone()),
    }
}

/// Where an organism's examples are.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// Rows `offset..offset + count` of the chunk's [`Store`].
    Rows { offset: u32, count: usize },
    /// Window positions of a token batch ([`Examples::Positions`]).
    Tokens {
        tokens: &'a [u32],
        per: usize,
        context: usize,
        len: usize,
        count: usize,
    },
}

impl Source<'_> {
    fn count(self) -> usize {
        match self {
            Source::Rows { count, .. } | Source::Tokens { count, .. } => count,
        }
    }
}

/// The rows of a chunk's distinct row batches on the device, then one
/// row of zeros that padding reads.
struct Store {
    /// `[rows + 1, inputs]`.
    x: Tensor,
    /// Labels `[rows + 1]` (u32) or target values `[rows + 1, outputs]`.
    target: Tensor,
    /// The zero row.
    pad: u32,
}

/// Uploads the distinct batches `jobs` learn from and are scored on, and
/// says where each job's train and held-out examples are.
#[allow(clippy::type_complexity)]
fn upload<'a>(
    net: &Net,
    jobs: &[Job<'a>],
    device: &Device,
) -> Result<(Option<Store>, Vec<Source<'a>>, Vec<Source<'a>>), LearnError> {
    let model = ModelSpec::Mlp(net.spec.clone());
    let (inputs, outputs) = (net.spec.widths[0], *net.spec.widths.last().unwrap_or(&0));
    let mut seen: Vec<(&'a Batch, Source<'a>)> = Vec::new();
    let (mut x, mut labels, mut values) = (Vec::new(), Vec::new(), Vec::new());
    let mut rows = 0u32;
    let mut source = |batch: &'a Batch| -> Result<Source<'a>, LearnError> {
        if let Some(&(_, s)) = seen.iter().find(|(b, _)| std::ptr::eq(*b, batch)) {
            return Ok(s);
        }
        let count = batch.len();
        let s = match (batch, net.loss, net.spec.embedding) {
            (
                Batch::Labeled {
                    x: bx,
                    labels: bl,
                    n,
                },
                Loss::CrossEntropy,
                None,
            ) if bx.len() == n * inputs
                && bl.len() == *n
                && bl.iter().all(|&l| (l as usize) < outputs) =>
            {
                x.extend_from_slice(bx);
                labels.extend_from_slice(bl);
                Source::Rows {
                    offset: rows,
                    count,
                }
            }
            (Batch::Dense { x: bx, y, n }, Loss::MeanSquared, None)
                if bx.len() == n * inputs && y.len() == n * outputs =>
            {
                x.extend_from_slice(bx);
                values.extend_from_slice(y);
                Source::Rows {
                    offset: rows,
                    count,
                }
            }
            (Batch::Tokens { tokens, .. }, Loss::CrossEntropy, Some(e)) => {
                if tokens.iter().any(|&t| t as usize >= e.vocab) {
                    return Err(unsupported("tokens beyond the vocabulary"));
                }
                match Examples::of(batch, &model) {
                    Some(Examples::Positions {
                        count,
                        per,
                        context,
                        len,
                    }) => Source::Tokens {
                        tokens,
                        per,
                        context,
                        len,
                        count,
                    },
                    _ => Source::Tokens {
                        tokens,
                        per: 1,
                        context: e.context,
                        len: 0,
                        count: 0,
                    },
                }
            }
            _ => return Err(unsupported("this model on this data")),
        };
        if let Source::Rows { count, .. } = s {
            rows += count as u32;
        }
        seen.push((batch, s));
        Ok(s)
    };
    let mut train = Vec::with_capacity(jobs.len());
    let mut heldout = Vec::with_capacity(jobs.len());
    for job in jobs {
        train.push(source(job.train)?);
        heldout.push(source(job.heldout)?);
    }
    if net.spec.embedding.is_some() {
        return Ok((None, train, heldout));
    }
    let pad = rows;
    let rows = rows as usize + 1;
    x.resize(rows * inputs, 0.0);
    let target = match net.loss {
        Loss::CrossEntropy => {
            labels.resize(rows, 0);
            Tensor::from_vec(labels, rows, device)?
        }
        Loss::MeanSquared => {
            values.resize(rows * outputs, 0.0);
            Tensor::from_vec(values, (rows, outputs), device)?
        }
    };
    let store = Store {
        x: Tensor::from_vec(x, (rows, inputs), device)?,
        target,
        pad,
    };
    Ok((Some(store), train, heldout))
}

/// A chunk of organisms on the device.
struct Chunk<'c, 'a> {
    net: Net<'c>,
    life: &'c LifetimeSpec,
    device: &'c Device,
    jobs: &'c [Job<'a>],
    /// Steps each organism runs (its `hyper.steps`, unless its indices
    /// run out first, as [`crate::lifetime::live`] reads them).
    run: Vec<u32>,
    store: Option<Store>,
    train: Vec<Source<'a>>,
    heldout: Vec<Source<'a>>,
    /// `[P, N]` weights.
    theta: Var,
    /// The optimiser's moments, `[P, N]` (the second: Adam only).
    m: Tensor,
    v: Option<Tensor>,
    mask: Option<Tensor>,
    signs: Option<Tensor>,
    /// Per-organism weight decay, momentum and `1 - momentum`, `[P, 1]`.
    wd: Tensor,
    mu: Tensor,
    one_minus_mu: Tensor,
    /// The clipping norm, `[P, 1]`.
    clip: Option<Tensor>,
    /// u8 `[P]`: 1 while the organism learns.
    alive: Tensor,
}

impl<'c, 'a> Chunk<'c, 'a> {
    fn new(
        net: Net<'c>,
        life: &'c LifetimeSpec,
        device: &'c Device,
        jobs: &'c [Job<'a>],
    ) -> Result<Chunk<'c, 'a>, LearnError> {
        let p = jobs.len();
        let n = net.width;
        for job in jobs {
            let lens_match = job.params.len() == net.lens.len()
                && job.params.iter().zip(&net.lens).all(|(x, &l)| x.len() == l);
            let extras_match = [&job.masks, &job.signs].iter().all(|extra| {
                extra.len() == net.lens.len()
                    && extra
                        .iter()
                        .zip(&net.lens)
                        .all(|(x, &l)| x.as_ref().is_none_or(|x| x.len() == l))
            });
            if !lens_match || !extras_match {
                return Err(unsupported(
                    "a job whose weights, masks or signs do not match the model's parameters",
                ));
            }
        }
        let rows = |pick: &dyn Fn(&Job) -> Vec<f32>| -> candle_core::Result<Tensor> {
            let data: Vec<f32> = jobs.iter().flat_map(pick).collect();
            Tensor::from_vec(data, (p, n), device)
        };
        let flat = |extra: &[Option<Vec<f32>>], missing: f32| -> Vec<f32> {
            extra
                .iter()
                .zip(&net.lens)
                .flat_map(|(x, &len)| match x {
                    Some(x) => x.clone(),
                    None => vec![missing; len],
                })
                .collect()
        };
        let theta = Var::from_tensor(&rows(&|j| j.params.concat())?)?;
        let mask = if jobs.iter().any(|j| j.masks.iter().any(Option::is_some)) {
            Some(rows(&|j| flat(&j.masks, 1.0))?)
        } else {
            None
        };
        let signs = if jobs.iter().any(|j| j.signs.iter().any(Option::is_some)) {
            Some(rows(&|j| flat(&j.signs, 0.0))?)
        } else {
            None
        };
        let column = |f: &dyn Fn(&Job) -> f32| -> candle_core::Result<Tensor> {
            Tensor::from_vec(jobs.iter().map(f).collect::<Vec<f32>>(), (p, 1), device)
        };
        let (store, train, heldout) = upload(&net, jobs, device)?;
        let run: Vec<u32> = jobs
            .iter()
            .map(|j| j.hyper.steps.min((j.indices.len() / life.batch) as u32))
            .collect();
        // The device does not check indices (CUDA reads past the end).
        for ((job, &run), source) in jobs.iter().zip(&run).zip(&train) {
            let used = &job.indices[..run as usize * life.batch];
            if used.iter().any(|&e| e as usize >= source.count()) {
                return Err(unsupported(
                    "a job whose minibatch indices pass its train set",
                ));
            }
        }
        let zeros = Tensor::zeros((p, n), DType::F32, device)?;
        Ok(Chunk {
            run,
            store,
            train,
            heldout,
            v: match life.optimizer.method {
                Method::Sgd => None,
                Method::Adam | Method::AdamW => Some(zeros.clone()),
            },
            m: zeros,
            mask,
            signs,
            wd: column(&|j| j.hyper.weight_decay)?,
            mu: column(&|j| j.hyper.momentum)?,
            one_minus_mu: column(&|j| 1.0 - j.hyper.momentum)?,
            clip: match life.optimizer.clip {
                Some(max) => Some(Tensor::full(max, (p, 1), device)?),
                None => None,
            },
            alive: Tensor::ones(p, DType::U8, device)?,
            theta,
            net,
            life,
            device,
            jobs,
        })
    }

    fn size(&self) -> usize {
        self.jobs.len()
    }

    /// Input and target of `rows` examples for each organism of
    /// `members`, stacked in that order: organism `o`'s row `r` is example
    /// `pick(o, r)` of `sources[o]`, or padding.
    fn gather(
        &self,
        sources: &[Source],
        members: &[usize],
        rows: usize,
        pick: impl Fn(usize, usize) -> Option<u32>,
    ) -> Result<(Input, Tensor), LearnError> {
        let p = members.len();
        let outputs = *self.net.spec.widths.last().unwrap_or(&0);
        if let Some(store) = &self.store {
            let mut ids = Vec::with_capacity(p * rows);
            for &o in members {
                for r in 0..rows {
                    ids.push(match (sources[o], pick(o, r)) {
                        (Source::Rows { offset, .. }, Some(e)) => offset + e,
                        _ => store.pad,
                    });
                }
            }
            let ids = Tensor::from_vec(ids, p * rows, self.device)?;
            let x = store
                .x
                .index_select(&ids, 0)?
                .reshape((p, rows, self.net.spec.widths[0]))?;
            let target = store.target.index_select(&ids, 0)?;
            let target = match self.net.loss {
                Loss::CrossEntropy => target.reshape((p, rows, 1))?,
                Loss::MeanSquared => target.reshape((p, rows, outputs))?,
            };
            return Ok((Input::Rows(x), target));
        }
        let embed = self
            .net
            .spec
            .embedding
            .ok_or_else(|| unsupported("an MLP without data"))?;
        let mut ctx = Vec::with_capacity(p * rows * embed.context);
        let mut labels = Vec::with_capacity(p * rows);
        for (at, &o) in members.iter().enumerate() {
            // The row of `o`'s table in the `[p · vocab, dim]` stack.
            let base = (at * embed.vocab) as u32;
            for r in 0..rows {
                match (sources[o], pick(o, r)) {
                    (
                        Source::Tokens {
                            tokens,
                            per,
                            context,
                            len,
                            ..
                        },
                        Some(e),
                    ) => {
                        let e = e as usize;
                        let start = (e / per) * len + e % per;
                        ctx.extend(tokens[start..start + context].iter().map(|&t| base + t));
                        labels.push(tokens[start + context]);
                    }
                    _ => {
                        ctx.extend(std::iter::repeat_n(base, embed.context));
                        labels.push(0);
                    }
                }
            }
        }
        let ctx = Tensor::from_vec(ctx, p * rows * embed.context, self.device)?;
        let labels = Tensor::from_vec(labels, (p, rows, 1), self.device)?;
        Ok((Input::Tokens(ctx), labels))
    }

    /// Step `step` of every organism: forward, backward, update. Returns
    /// the minibatch losses `[P]` (on the device).
    fn step(&mut self, step: u32) -> Result<Tensor, LearnError> {
        let batch = self.life.batch;
        let s = step as usize;
        let everyone: Vec<usize> = (0..self.size()).collect();
        let (input, target) = self.gather(&self.train, &everyone, batch, |p, r| {
            (step < self.run[p]).then(|| self.jobs[p].indices[s * batch + r])
        })?;
        let outputs = self.net.forward(self.theta.as_tensor(), &input, batch)?;
        let per = self.net.losses(&outputs, &target)?;
        let count = per.dim(1)? * per.dim(2)?;
        // The fast path's mean: f32 terms summed in f64.
        let loss = (per.detach().flatten_from(1)?.to_dtype(DType::F64)?.sum(1)? / count as f64)?
            .to_dtype(DType::F32)?;
        let grads = (per.sum_all()? / count as f64)?.backward()?;
        let grad = match grads.get(self.theta.as_tensor()) {
            Some(g) => g.detach(),
            None => self.theta.as_tensor().zeros_like()?,
        };
        self.update(step, grad, &loss)?;
        Ok(loss)
    }

    /// [`crate::optim::update`] on every organism, operation for operation.
    fn update(&mut self, step: u32, grad: Tensor, loss: &Tensor) -> Result<(), LearnError> {
        let (p, n) = (self.size(), self.net.width);
        let spec = &self.life.optimizer;
        let t = step as i32 + 1;
        // Per organism: learning rate, lr x weight decay, 1 - beta1^t,
        // 1 - beta2^t, and whether it steps at all.
        let mut table = vec![0.0f32; 5 * p];
        for (o, job) in self.jobs.iter().enumerate() {
            let h = &job.hyper;
            let go = step < self.run[o];
            let lr = if go {
                h.lr * spec.schedule.factor(step, h.steps)
            } else {
                0.0
            };
            table[o] = lr;
            table[p + o] = lr * h.weight_decay;
            table[2 * p + o] = 1.0 - h.momentum.powi(t);
            table[3 * p + o] = 1.0 - spec.beta2.powi(t);
            table[4 * p + o] = f32::from(u8::from(go));
        }
        let table = Tensor::from_vec(table, (5, p, 1), self.device)?;
        let column = |k: usize| table.get(k);
        let (lr, lr_wd, bc1, bc2) = (column(0)?, column(1)?, column(2)?, column(3)?);
        let go = column(4)?.ne(0.0)?.reshape(p)?;

        let mut g = grad;
        if let Some(mask) = &self.mask {
            g = (g * mask)?;
        }
        if let Some(max) = &self.clip {
            let norm = g
                .to_dtype(DType::F64)?
                .sqr()?
                .sum_keepdim(1)?
                .sqrt()?
                .to_dtype(DType::F32)?;
            // optim::clip_scale.
            let scale = max.div(&(norm + 1e-6)?)?.minimum(1.0f32)?;
            g = g.broadcast_mul(&scale)?;
        }
        let w = self.theta.as_tensor().detach();
        let new = match spec.method {
            Method::Sgd => {
                // With momentum 0 this is `w - lr d`: `0 m + d` is `d`.
                let d = (&g + w.broadcast_mul(&self.wd)?)?;
                self.m = (self.m.broadcast_mul(&self.mu)? + d)?;
                (&w - self.m.broadcast_mul(&lr)?)?
            }
            Method::Adam | Method::AdamW => {
                let (w, d) = if spec.method == Method::AdamW {
                    ((&w - w.broadcast_mul(&lr_wd)?)?, g)
                } else {
                    (w.clone(), (&g + w.broadcast_mul(&self.wd)?)?)
                };
                let b2 = f64::from(spec.beta2);
                let one_minus_b2 = f64::from(1.0 - spec.beta2);
                self.m =
                    (self.m.broadcast_mul(&self.mu)? + d.broadcast_mul(&self.one_minus_mu)?)?;
                let v = match &self.v {
                    Some(v) => (v.affine(b2, 0.0)? + (d.affine(one_minus_b2, 0.0)? * &d)?)?,
                    None => unreachable!("Adam's chunks hold a second moment"),
                };
                let m_hat = self.m.broadcast_div(&bc1)?;
                let denominator = (v.broadcast_div(&bc2)?.sqrt()? + f64::from(spec.eps))?;
                self.v = Some(v);
                (&w - m_hat.broadcast_mul(&lr)?.div(&denominator)?)?
            }
        };
        let new = match &self.mask {
            Some(mask) => (new * mask)?,
            None => new,
        };
        // optim::project_signs: 0 where `s w < 0` (a `where`, not a product
        // with 0/1: an infinite weight that is free stays infinite).
        let new = match &self.signs {
            Some(signs) => {
                let zero = Tensor::zeros((1, 1), DType::F32, self.device)?.broadcast_as((p, n))?;
                (&new * signs)?.lt(0.0)?.where_cond(&zero, &new)?
            }
            None => new,
        };
        // |loss| < inf: false for infinities and NaN.
        let finite = loss.abs()?.lt(f32::INFINITY)?;
        self.alive = ((&self.alive * finite)? * go)?;
        let keep = self.alive.reshape((p, 1))?.broadcast_as((p, n))?;
        self.theta.set(&keep.where_cond(&new, &w)?)?;
        Ok(())
    }

    /// Mean held-out loss of the organisms `who` over their first `limit`
    /// examples, `(organism, limit)`; the others are not scored. Each
    /// pass scores up to `EVAL_ROWS` examples of every organism with that
    /// many left, so an organism's scores do not depend on which others it
    /// is scored with.
    fn evaluate(&self, who: &[(usize, usize)]) -> Result<Vec<f32>, LearnError> {
        let p = self.size();
        let mut take = vec![0usize; p];
        for &(o, limit) in who {
            take[o] = self.heldout[o].count().min(limit);
        }
        let most = take.iter().copied().max().unwrap_or(0);
        let mut totals = vec![0.0f64; p];
        let mut per_example = 1;
        let theta = self.theta.as_tensor().detach();
        for start in (0..most).step_by(EVAL_ROWS) {
            let mut passes = std::collections::BTreeMap::<usize, Vec<usize>>::new();
            for (o, &take) in take.iter().enumerate().filter(|&(_, &t)| t > start) {
                passes
                    .entry(EVAL_ROWS.min(take - start))
                    .or_default()
                    .push(o);
            }
            for (rows, members) in passes {
                let theta = if members.len() == p {
                    theta.clone()
                } else {
                    let ids: Vec<u32> = members.iter().map(|&o| o as u32).collect();
                    let ids = Tensor::from_vec(ids, members.len(), self.device)?;
                    theta.index_select(&ids, 0)?
                };
                let (input, target) = self.gather(&self.heldout, &members, rows, |_, r| {
                    Some((start + r) as u32)
                })?;
                let per = self
                    .net
                    .losses(&self.net.forward(&theta, &input, rows)?, &target)?;
                per_example = per.dim(2)?;
                let values = per.flatten_from(1)?.to_vec2::<f32>()?;
                for (&o, values) in members.iter().zip(&values) {
                    totals[o] += values.iter().map(|&v| f64::from(v)).sum::<f64>();
                }
            }
        }
        Ok(who
            .iter()
            .map(|&(o, _)| (totals[o] / (take[o] * per_example) as f64) as f32)
            .collect())
    }

    /// The weights of organisms `who`, in parameter order.
    fn weights(&self, who: &[usize]) -> Result<Vec<Vec<Vec<f32>>>, LearnError> {
        if who.is_empty() {
            return Ok(Vec::new());
        }
        let ids = Tensor::from_vec(
            who.iter().map(|&o| o as u32).collect::<Vec<u32>>(),
            who.len(),
            self.device,
        )?;
        let rows = self
            .theta
            .as_tensor()
            .index_select(&ids, 0)?
            .to_vec2::<f32>()?;
        Ok(rows.into_iter().map(|row| self.split(&row)).collect())
    }

    fn split(&self, row: &[f32]) -> Vec<Vec<f32>> {
        let mut at = 0;
        self.net
            .lens
            .iter()
            .map(|&len| {
                at += len;
                row[at - len..at].to_vec()
            })
            .collect()
    }
}

/// One organism's record, as [`crate::lifetime::live`] keeps it.
struct Record {
    curve: Vec<CurvePoint>,
    probes: Vec<ProbePoint>,
    status: Status,
    /// Sum and count of the losses since the last curve point.
    since: (f64, u32),
    /// Held-out loss at birth (recorded with the first step's loss).
    birth: f32,
    /// Diverged, or every step run.
    stopped: bool,
}

/// Runs one chunk's lifetimes in lockstep.
fn run_chunk(
    spec: &MlpSpec,
    loss: Loss,
    life: &LifetimeSpec,
    device: &Device,
    jobs: &[Job],
) -> Result<Vec<Outcome>, LearnError> {
    let model = ModelSpec::Mlp(spec.clone());
    let mut chunk = Chunk::new(Net::new(spec, loss), life, device, jobs)?;
    let p = jobs.len();
    let mut records: Vec<Record> = (0..p)
        .map(|_| Record {
            curve: Vec::new(),
            probes: Vec::new(),
            status: Status::Completed,
            since: (0.0, 0),
            birth: f32::NAN,
            stopped: false,
        })
        .collect();
    let probes = |records: &mut [Record], who: &[usize], step: u32, weights: &[Vec<Vec<f32>>]| {
        let scored: Vec<Result<Vec<ProbePoint>, LearnError>> = who
            .par_iter()
            .zip(weights)
            .map(|(&o, w)| {
                let mut out = Vec::new();
                let scoring = Scoring {
                    heldout: jobs[o].heldout,
                    probes: jobs[o].probes,
                    model: &model,
                };
                score_probe_sets(w, &scoring, step, &mut out).map(|()| out)
            })
            .collect();
        for (&o, points) in who.iter().zip(scored) {
            records[o].probes.extend(points?);
        }
        Ok::<(), LearnError>(())
    };
    let with_probes = |who: &[usize]| -> Vec<usize> {
        who.iter()
            .copied()
            .filter(|&o| !jobs[o].probes.is_empty())
            .collect()
    };

    // Birth: probes, and the held-out loss (all of it for a lifetime of no
    // steps, which records its only point now).
    // (A lifetime whose indices hold no step records nothing, as in `live`.)
    let born: Vec<usize> = (0..p)
        .filter(|&o| chunk.run[o] > 0 || jobs[o].hyper.steps == 0)
        .collect();
    let probed = with_probes(&born);
    let births: Vec<Vec<Vec<f32>>> = probed.iter().map(|&o| jobs[o].params.clone()).collect();
    probes(&mut records, &probed, 0, &births)?;
    let who: Vec<(usize, usize)> = born
        .iter()
        .map(|&o| {
            let all = jobs[o].hyper.steps == 0;
            (o, if all { usize::MAX } else { life.curve_heldout })
        })
        .collect();
    for (&(o, _), heldout) in who.iter().zip(chunk.evaluate(&who)?) {
        if jobs[o].hyper.steps == 0 {
            records[o].curve.push(CurvePoint {
                step: 0,
                train: f32::NAN,
                heldout,
            });
        } else {
            records[o].birth = heldout;
        }
    }

    let longest = chunk.run.iter().copied().max().unwrap_or(0);
    let mut pending: Vec<Tensor> = Vec::new();
    for step in 0..longest {
        pending.push(chunk.step(step)?);
        let done = step + 1;
        let point = |o: usize| {
            let steps = jobs[o].hyper.steps;
            step < chunk.run[o]
                && (done == steps || (life.eval_every > 0 && done.is_multiple_of(life.eval_every)))
        };
        if done < longest && !(0..p).any(point) {
            continue;
        }
        // Read the losses since the last read back, as `live` saw them.
        let losses = Tensor::stack(&pending, 0)?.to_vec2::<f32>()?;
        let first = done - losses.len() as u32;
        pending.clear();
        for (k, losses) in losses.iter().enumerate() {
            let at = first + k as u32;
            for (o, (record, &loss)) in records.iter_mut().zip(losses).enumerate() {
                if record.stopped || at >= chunk.run[o] {
                    continue;
                }
                if !loss.is_finite() {
                    record.status = Status::Diverged { step: at };
                    record.stopped = true;
                    continue;
                }
                if at == 0 {
                    record.curve.push(CurvePoint {
                        step: 0,
                        train: loss,
                        heldout: record.birth,
                    });
                }
                record.since = (record.since.0 + f64::from(loss), record.since.1 + 1);
            }
        }
        let scored: Vec<usize> = (0..p)
            .filter(|&o| point(o) && !records[o].stopped)
            .collect();
        let who: Vec<(usize, usize)> = scored
            .iter()
            .map(|&o| {
                let last = done == jobs[o].hyper.steps;
                (o, if last { usize::MAX } else { life.curve_heldout })
            })
            .collect();
        for (&o, heldout) in scored.iter().zip(chunk.evaluate(&who)?) {
            let record = &mut records[o];
            record.curve.push(CurvePoint {
                step: done,
                train: (record.since.0 / f64::from(record.since.1)) as f32,
                heldout,
            });
            record.since = (0.0, 0);
            record.stopped = done == jobs[o].hyper.steps;
        }
        let probed = with_probes(&scored);
        let weights = chunk.weights(&probed)?;
        probes(&mut records, &probed, done, &weights)?;
    }

    let finals = chunk.weights(&(0..p).collect::<Vec<usize>>())?;
    Ok(records
        .into_iter()
        .zip(finals)
        .zip(jobs)
        .map(|((record, params), job)| {
            let mut status = record.status;
            if status == Status::Completed
                && !record.curve.last().is_some_and(|p| p.heldout.is_finite())
            {
                status = Status::Diverged {
                    step: job.hyper.steps,
                };
            }
            Outcome {
                params,
                curve: record.curve,
                status,
                probes: record.probes,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use lineage_env::{ProbeSet, Task};
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    use super::*;
    use crate::general::tests::birth_weights;
    use crate::optim::{Hyper, OptimizerSpec, Schedule};
    use crate::spec::Embedding;
    use crate::{Path, train_population};

    fn rng(seed: u64) -> Xoshiro256PlusPlus {
        Xoshiro256PlusPlus::seed_from_u64(seed)
    }

    /// Labelled rows near one-hot class centres.
    fn clusters(n: usize, inputs: usize, classes: u32, rng: &mut impl Rng) -> Batch {
        let labels: Vec<u32> = (0..n).map(|_| rng.random_range(0..classes)).collect();
        let x = labels
            .iter()
            .flat_map(|&l| (0..inputs).map(move |i| f32::from(u8::from(i as u32 % classes == l))))
            .collect::<Vec<f32>>()
            .into_iter()
            .map(|v| v + 0.3 * (rng.random::<f32>() - 0.5))
            .collect();
        Batch::Labeled { n, x, labels }
    }

    /// Rows of 4 inputs with targets `[x0 - x1, x2 x3]`.
    fn regression(n: usize, rng: &mut impl Rng) -> Batch {
        let x: Vec<f32> = (0..n * 4).map(|_| rng.random::<f32>() - 0.5).collect();
        let y = x
            .chunks(4)
            .flat_map(|r| [r[0] - r[1], r[2] * r[3]])
            .collect();
        Batch::Dense { n, x, y }
    }

    /// One organism of a comparison.
    #[derive(Clone, Copy)]
    struct Organism {
        hyper: Hyper,
        /// Which of the train batches it learns from.
        train: usize,
        masked: bool,
        signed: bool,
    }

    fn hyper(lr: f32, momentum: f32, weight_decay: f32, steps: u32) -> Hyper {
        Hyper {
            lr,
            momentum,
            weight_decay,
            steps,
        }
    }

    /// Organism `k`'s job: birth weights, masks and signs from seed `k`
    /// (masked weights born zero), its own minibatch indices.
    fn job<'a>(
        model: &ModelSpec,
        life: &LifetimeSpec,
        k: usize,
        o: Organism,
        train: &'a Batch,
        heldout: &'a Batch,
        probes: &'a [ProbeSet],
    ) -> Job<'a> {
        let mut r = rng(100 + k as u64);
        let layout = model.params();
        let mut pick = |on: bool, values: [f32; 3]| -> Vec<Option<Vec<f32>>> {
            layout
                .iter()
                .map(|p| {
                    (on && p.role.maskable())
                        .then(|| (0..p.len()).map(|_| values[r.random_range(0..3)]).collect())
                })
                .collect()
        };
        let masks = pick(o.masked, [0.0, 1.0, 1.0]);
        let signs = pick(o.signed, [-1.0, 0.0, 1.0]);
        let params = birth_weights(model, k as u64)
            .into_iter()
            .zip(&masks)
            .map(|(w, m)| match m {
                Some(m) => w.iter().zip(m).map(|(a, b)| a * b).collect(),
                None => w,
            })
            .collect();
        let count = Examples::of(train, model).unwrap().count();
        let indices =
            crate::data::minibatch_indices(count, life.batch, o.hyper.steps, &mut rng(k as u64));
        Job {
            params,
            masks,
            signs,
            hyper: o.hyper,
            train,
            heldout,
            probes,
            indices,
        }
    }

    /// Largest `|a - b| / max(|b|, 1)` over the weights, curve values and
    /// probe values of two outcomes (equal infinities, and NaN against
    /// NaN, count as equal; any other non-finite pair as infinitely far),
    /// after checking that their statuses, curve steps and probe points
    /// agree.
    fn gap(a: &Outcome, b: &Outcome) -> f32 {
        assert_eq!(a.status, b.status);
        let steps = |o: &Outcome| o.curve.iter().map(|p| p.step).collect::<Vec<u32>>();
        assert_eq!(steps(a), steps(b));
        let keys = |o: &Outcome| {
            o.probes
                .iter()
                .map(|p| (p.step, p.probe, p.metric))
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(a), keys(b));
        let mut pairs: Vec<(f32, f32)> = a
            .params
            .iter()
            .flatten()
            .copied()
            .zip(b.params.iter().flatten().copied())
            .collect();
        assert_eq!(pairs.len(), b.params.iter().flatten().count());
        for (x, y) in a.curve.iter().zip(&b.curve) {
            pairs.extend([(x.train, y.train), (x.heldout, y.heldout)]);
        }
        pairs.extend(
            a.probes
                .iter()
                .zip(&b.probes)
                .map(|(x, y)| (x.value, y.value)),
        );
        pairs
            .into_iter()
            .map(|(x, y)| {
                if x == y || (x.is_nan() && y.is_nan()) {
                    0.0
                } else if x.is_finite() && y.is_finite() {
                    (x - y).abs() / y.abs().max(1.0)
                } else {
                    f32::INFINITY
                }
            })
            .fold(0.0, f32::max)
    }

    /// A population's lifetimes on the fast path and on the batched path
    /// (chunks within `budget`).
    struct Comparison {
        model: ModelSpec,
        task: Task,
        life: LifetimeSpec,
        trains: Vec<Batch>,
        heldout: Batch,
        probes: Vec<ProbeSet>,
    }

    impl Comparison {
        fn jobs(&self, organisms: &[Organism]) -> Vec<Job<'_>> {
            organisms
                .iter()
                .enumerate()
                .map(|(k, &o)| {
                    let train = &self.trains[o.train];
                    job(
                        &self.model,
                        &self.life,
                        k,
                        o,
                        train,
                        &self.heldout,
                        &self.probes,
                    )
                })
                .collect()
        }

        fn fast(&self, organisms: &[Organism]) -> Vec<Outcome> {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap();
            let jobs = self.jobs(organisms);
            let path = Some(Path::Fast);
            train_population(
                &self.model,
                &self.task,
                &self.life,
                &Device::Cpu,
                path,
                jobs,
                &pool,
            )
            .unwrap()
        }

        fn batched(&self, organisms: &[Organism], budget: usize) -> Vec<Outcome> {
            let ModelSpec::Mlp(spec) = &self.model else {
                panic!("an MLP")
            };
            let loss = Loss::of(&self.task);
            let jobs = self.jobs(organisms);
            train(spec, loss, &self.life, &Device::Cpu, jobs, budget).unwrap()
        }

        /// The largest [`gap`] between the two paths over the population.
        fn gap(&self, organisms: &[Organism]) -> f32 {
            let fast = self.fast(organisms);
            let batched = self.batched(organisms, DEFAULT_BUDGET);
            fast.iter()
                .zip(&batched)
                .map(|(f, b)| gap(b, f))
                .fold(0.0, f32::max)
        }
    }

    fn life(method: Method, schedule: Schedule, clip: Option<f32>) -> LifetimeSpec {
        LifetimeSpec {
            batch: 8,
            eval_every: 5,
            curve_heldout: 16,
            optimizer: OptimizerSpec {
                method,
                beta2: 0.99,
                eps: 1e-8,
                clip,
                schedule,
            },
        }
    }

    /// A mixed population: different learning rates, momenta, weight
    /// decays and lifetimes (one of none, one ending between curve
    /// points), masks and signs, two train sets.
    fn mixed(lr: f32) -> Vec<Organism> {
        let o = |lr_factor: f32, momentum, weight_decay, steps, train, masked, signed| Organism {
            hyper: hyper(lr * lr_factor, momentum, weight_decay, steps),
            train,
            masked,
            signed,
        };
        vec![
            o(1.0, 0.9, 0.01, 20, 0, false, false),
            o(2.0, 0.5, 0.0, 13, 1, true, false),
            o(0.5, 0.0, 0.05, 20, 0, false, true),
            o(1.0, 0.8, 0.01, 0, 1, true, true),
            o(1.5, 0.9, 0.02, 7, 1, true, true),
        ]
    }

    /// Classification with an MLP 6-16-12-3 (tanh) and a probe set.
    fn classification(method: Method, schedule: Schedule, lr: f32) -> f32 {
        let mut r = rng(1);
        let trains = [clusters(40, 6, 3, &mut r), clusters(24, 6, 3, &mut r)];
        let heldout = clusters(30, 6, 3, &mut r);
        let probes = [ProbeSet {
            name: "probe".into(),
            data: std::sync::Arc::new(clusters(10, 6, 3, &mut r)),
            choices: Some(vec![0, 2]),
        }];
        let work = crate::bench::parse_model("mlp:6-16-12-3:tanh").unwrap();
        let comparison = Comparison {
            model: work.model,
            task: work.task,
            life: life(method, schedule, Some(0.3)),
            trains: trains.into(),
            heldout,
            probes: probes.into(),
        };
        comparison.gap(&mixed(lr))
    }

    const WARMUP_COOLDOWN: Schedule = Schedule::WarmupHoldCooldown {
        warmup: 3,
        cooldown: 5,
    };

    #[test]
    fn sgd_with_momentum_matches_the_fast_path() {
        let gap = classification(Method::Sgd, WARMUP_COOLDOWN, 0.1);
        assert!(gap < 1e-5, "gap {gap}");
    }

    #[test]
    fn adam_matches_the_fast_path() {
        let gap = classification(Method::Adam, WARMUP_COOLDOWN, 0.01);
        assert!(gap < 1e-5, "gap {gap}");
    }

    #[test]
    fn adamw_matches_the_fast_path() {
        let gap = classification(Method::AdamW, Schedule::InverseSqrt { warmup: 4 }, 0.01);
        assert!(gap < 1e-5, "gap {gap}");
    }

    #[test]
    fn mean_squared_regression_matches_the_fast_path() {
        let mut r = rng(2);
        let trains = [regression(40, &mut r), regression(30, &mut r)];
        let heldout = regression(20, &mut r);
        let work = crate::bench::parse_model("mlp:4-8-2:gelu").unwrap();
        let comparison = Comparison {
            model: work.model,
            task: Task::Regression {
                inputs: 4,
                outputs: 2,
            },
            life: life(Method::Sgd, WARMUP_COOLDOWN, Some(0.3)),
            trains: trains.into(),
            heldout,
            probes: Vec::new(),
        };
        let gap = comparison.gap(&mixed(0.1));
        assert!(gap < 1e-5, "gap {gap}");
    }

    #[test]
    fn language_model_matches_the_fast_path() {
        let mut r = rng(3);
        let mut windows = |n: usize| {
            let mut tokens = Vec::new();
            for _ in 0..n {
                let s = r.random_range(0..7u32);
                tokens.extend((0..5).map(|i| (s + i * 2) % 7));
            }
            Batch::Tokens { n, len: 5, tokens }
        };
        let (trains, heldout) = ([windows(20), windows(12)], windows(10));
        let model = ModelSpec::Mlp(MlpSpec {
            embedding: Some(Embedding {
                vocab: 7,
                dim: 3,
                context: 2,
            }),
            widths: vec![6, 10, 7],
            activation: Activation::Relu,
            bias: true,
        });
        let comparison = Comparison {
            model,
            task: Task::NextToken {
                vocab: 7,
                context: 4,
            },
            life: life(Method::AdamW, WARMUP_COOLDOWN, Some(0.3)),
            trains: trains.into(),
            heldout,
            probes: Vec::new(),
        };
        let gap = comparison.gap(&mixed(0.01));
        assert!(gap < 1e-5, "gap {gap}");
    }

    /// Classification with an MLP 6-16-12-3 (ReLU), no probe sets.
    fn plain(method: Method, trains: [Batch; 2], heldout: Batch) -> Comparison {
        let work = crate::bench::parse_model("mlp:6-16-12-3:relu").unwrap();
        Comparison {
            model: work.model,
            task: work.task,
            life: life(method, WARMUP_COOLDOWN, Some(0.3)),
            trains: trains.into(),
            heldout,
            probes: Vec::new(),
        }
    }

    /// Outcomes bit for bit (NaN equal to NaN): their `Debug` text.
    fn bits(outcomes: &[Outcome]) -> Vec<String> {
        outcomes.iter().map(|o| format!("{o:?}")).collect()
    }

    #[test]
    fn a_population_split_into_chunks_learns_as_one() {
        let mut r = rng(4);
        let trains = [clusters(40, 6, 3, &mut r), clusters(24, 6, 3, &mut r)];
        let heldout = clusters(30, 6, 3, &mut r);
        let comparison = plain(Method::Adam, trains, heldout);
        let organisms = [mixed(0.01), mixed(0.02)].concat();
        let ModelSpec::Mlp(spec) = &comparison.model else {
            unreachable!()
        };
        let bytes: Vec<usize> = comparison
            .jobs(&organisms)
            .iter()
            .map(|j| {
                let data = values_on_device(j.train) + values_on_device(j.heldout);
                organism_bytes(spec, comparison.life.batch, data)
            })
            .collect();
        let budget = 2 * bytes.iter().max().unwrap();
        assert!(
            plan_chunks(&bytes, budget).len() >= 4,
            "the population is split"
        );
        let split = comparison.batched(&organisms, budget);
        let whole = comparison.batched(&organisms, usize::MAX);
        assert_eq!(bits(&split), bits(&whole), "chunks change nothing");
        let fast = comparison.fast(&organisms);
        let gap = split
            .iter()
            .zip(&fast)
            .map(|(b, f)| gap(b, f))
            .fold(0.0, f32::max);
        assert!(gap < 1e-5, "gap {gap}");
    }

    #[test]
    fn a_diverging_organism_stops_alone() {
        let mut r = rng(5);
        let trains = [clusters(40, 6, 3, &mut r), clusters(24, 6, 3, &mut r)];
        let heldout = clusters(30, 6, 3, &mut r);
        let mut comparison = plain(Method::Sgd, trains, heldout);
        comparison.life.optimizer.clip = None;
        comparison.life.optimizer.schedule = Schedule::Constant;
        let healthy = mixed(0.1);
        let diverging = |steps| Organism {
            hyper: hyper(1e12, 0.9, 0.0, steps),
            train: 0,
            masked: false,
            signed: false,
        };
        let mut organisms = healthy.clone();
        organisms[1] = diverging(20);
        let fast = comparison.fast(&organisms);
        let batched = comparison.batched(&organisms, DEFAULT_BUDGET);
        let Status::Diverged { step } = fast[1].status else {
            panic!("the organism diverges on the fast path: {:?}", fast[1])
        };
        assert!(step > 0, "it diverges after learning a little");
        assert_eq!(batched[1].status, fast[1].status);
        // Its weights have blown up to 1e12 and beyond (some to infinity),
        // where rounding differences grow with the weights (1.2e-5 was
        // measured): the curve is compared with the fast path's, and the
        // weights with its own lifetime cut at `step` steps below.
        let curve = |o: &Outcome| Outcome {
            params: Vec::new(),
            ..o.clone()
        };
        let gap_diverged = gap(&curve(&batched[1]), &curve(&fast[1]));
        let gap_others = (0..organisms.len())
            .filter(|&o| o != 1)
            .map(|o| gap(&batched[o], &fast[o]))
            .fold(0.0, f32::max);
        assert!(
            gap_diverged < 1e-5 && gap_others < 1e-5,
            "gaps {gap_diverged} {gap_others}"
        );

        let cut = comparison.batched(&[healthy[0], diverging(step)], DEFAULT_BUDGET);
        assert_eq!(
            format!("{:?}", cut[1].params),
            format!("{:?}", batched[1].params),
            "its weights stay as they were when it diverged"
        );
        let without = comparison.batched(&healthy, DEFAULT_BUDGET);
        for o in (0..organisms.len()).filter(|&o| o != 1) {
            assert_eq!(bits(&without[o..=o]), bits(&batched[o..=o]), "organism {o}");
        }
    }

    #[test]
    fn chunks_fit_the_budget() {
        assert_eq!(plan_chunks(&[3, 3, 3, 3, 3], 7), vec![2, 2, 1]);
        assert_eq!(plan_chunks(&[10, 1, 1], 5), vec![1, 2], "at least one each");
        assert_eq!(plan_chunks(&[], 5), Vec::<usize>::new());
        let work = crate::bench::parse_model("mlp:64-128-10").unwrap();
        let ModelSpec::Mlp(spec) = work.model else {
            unreachable!()
        };
        // 9,610 parameters, 202 units a row, 1,000 values of data.
        let expected =
            4 * (PARAM_COPIES * 9_610 + (TRAIN_COPIES * 64 + EVAL_COPIES * 256) * 202 + 1_000);
        assert_eq!(organism_bytes(&spec, 64, 1_000), expected);
        let per = organism_bytes(&spec, 64, 0);
        assert_eq!(
            plan_chunks(&vec![per; 1_000], DEFAULT_BUDGET)[0],
            DEFAULT_BUDGET / per
        );
    }

    #[test]
    fn the_batched_path_trains_mlps_only() {
        let model = ModelSpec::Rnn(crate::spec::RnnSpec {
            input: crate::spec::SequenceInput::Tokens { vocab: 4 },
            hidden: 4,
            outputs: 4,
            alpha: 1.0,
            activation: Activation::Tanh,
            bias: true,
        });
        let task = Task::NextToken {
            vocab: 4,
            context: 3,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let life = life(Method::Sgd, Schedule::Constant, None);
        let out = train_population(
            &model,
            &task,
            &life,
            &Device::Cpu,
            Some(Path::Batched),
            Vec::new(),
            &pool,
        );
        assert!(matches!(out, Err(LearnError::Unsupported(_))), "{out:?}");
        let mlp = crate::bench::parse_model("mlp:4-4-2").unwrap().model;
        assert_eq!(crate::path_for(&mlp, &Device::Cpu), Path::Fast);
    }
}
