//! A chunk of organisms on the device: the batched step (gather, forward,
//! backward, per-organism clipping and update), held-out scoring, and
//! `run_chunk`, which runs the chunk's lifetimes in lockstep and keeps each
//! organism's record as the lifetime loop would.

use candle_core::{DType, Device, Tensor, Var};
use rayon::prelude::*;

use crate::lifetime::{Scoring, score_probe_sets};
use crate::optim::Method;
use crate::spec::{Loss, MlpSpec, ModelSpec};
use crate::{CurvePoint, Job, LearnError, LifetimeSpec, Outcome, ProbePoint, Status};

use super::net::{Input, Net};
use super::upload::{Source, Store, upload};
use super::{EVAL_ROWS, unsupported};

/// A chunk of organisms on the device.
pub(super) struct Chunk<'c, 'a> {
    pub(super) net: Net<'c>,
    pub(super) life: &'c LifetimeSpec,
    pub(super) device: &'c Device,
    pub(super) jobs: &'c [Job<'a>],
    /// Steps each organism runs (its `hyper.steps`, unless its indices
    /// run out first, as [`crate::lifetime::live`] reads them).
    pub(super) run: Vec<u32>,
    pub(super) store: Option<Store>,
    pub(super) train: Vec<Source<'a>>,
    pub(super) heldout: Vec<Source<'a>>,
    /// `[P, N]` weights.
    pub(super) theta: Var,
    /// The optimiser's moments, `[P, N]` (the second: Adam only).
    pub(super) m: Tensor,
    pub(super) v: Option<Tensor>,
    pub(super) mask: Option<Tensor>,
    pub(super) signs: Option<Tensor>,
    /// Per-organism weight decay, momentum and `1 - momentum`, `[P, 1]`.
    pub(super) wd: Tensor,
    pub(super) mu: Tensor,
    pub(super) one_minus_mu: Tensor,
    /// The clipping norm, `[P, 1]`.
    pub(super) clip: Option<Tensor>,
    /// u8 `[P]`: 1 while the organism learns.
    pub(super) alive: Tensor,
}

impl<'c, 'a> Chunk<'c, 'a> {
    pub(super) fn new(
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

    pub(super) fn size(&self) -> usize {
        self.jobs.len()
    }

    /// Input and target of `rows` examples for each organism of
    /// `members`, stacked in that order: organism `o`'s row `r` is example
    /// `pick(o, r)` of `sources[o]`, or padding.
    pub(super) fn gather(
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
    pub(super) fn step(&mut self, step: u32) -> Result<Tensor, LearnError> {
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
    pub(super) fn update(
        &mut self,
        step: u32,
        grad: Tensor,
        loss: &Tensor,
    ) -> Result<(), LearnError> {
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
    pub(super) fn evaluate(&self, who: &[(usize, usize)]) -> Result<Vec<f32>, LearnError> {
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
    pub(super) fn weights(&self, who: &[usize]) -> Result<Vec<Vec<Vec<f32>>>, LearnError> {
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

    pub(super) fn split(&self, row: &[f32]) -> Vec<Vec<f32>> {
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
pub(super) struct Record {
    pub(super) curve: Vec<CurvePoint>,
    pub(super) probes: Vec<ProbePoint>,
    pub(super) status: Status,
    /// Sum and count of the losses since the last curve point.
    pub(super) since: (f64, u32),
    /// Held-out loss at birth (recorded with the first step's loss).
    pub(super) birth: f32,
    /// Diverged, or every step run.
    pub(super) stopped: bool,
}

/// Runs one chunk's lifetimes in lockstep.
pub(super) fn run_chunk(
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
