//! A chunk of organisms on the device: the batched step (gather, forward,
//! backward, per-organism clipping and update), held-out scoring, and the
//! weights read back. `gather.rs` gathers each organism's examples,
//! `run.rs` runs the chunk's lifetimes.

use candle_core::{DType, Device, Tensor, Var};

use crate::optim::Method;
use crate::{Job, LearnError, LifetimeSpec};

use super::net::Net;
use super::upload::{Source, Store, upload};
use super::{EVAL_ROWS, unsupported};

/// A chunk of organisms on the device.
pub(super) struct Chunk<'c, 'a> {
    pub(super) net: &'c Net<'c>,
    pub(super) life: &'c LifetimeSpec,
    pub(super) device: &'c Device,
    pub(super) jobs: &'c [Job<'a>],
    /// Steps each organism runs (its `hyper.steps`, unless its indices
    /// run out first, as [`crate::lifetime::live`] reads them).
    pub(super) run: Vec<u32>,
    /// The chunk's rows and sequences on the device (none for token
    /// batches).
    pub(super) stores: Vec<Store>,
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
        net: &'c Net<'c>,
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
        let (stores, train, heldout) = upload(net, jobs, device)?;
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
            stores,
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
        // The organism's own path's mean: f32 terms summed in f64. The
        // backward pass runs on the sum of the organisms' means.
        let sums = per.detach().flatten_from(1)?.to_dtype(DType::F64)?.sum(1)?;
        let (loss, objective) = match &target.scored {
            None => {
                let count = per.dim(1)? * per.dim(2)?;
                let loss = (sums / count as f64)?.to_dtype(DType::F32)?;
                (loss, (per.sum_all()? / count as f64)?)
            }
            // Over each organism's scored positions (0 where none is, as
            // the fast path's cross-entropy).
            Some((_, counts)) => {
                let counts: Vec<f64> = counts.iter().map(|&c| c.max(1) as f64).collect();
                let counts = Tensor::from_vec(counts, self.size(), self.device)?;
                let loss = (sums / &counts)?.to_dtype(DType::F32)?;
                let means = (per.flatten_from(1)?.sum(1)? / counts.to_dtype(DType::F32)?)?;
                (loss, means.sum_all()?)
            }
        };
        let grads = objective.backward()?;
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
    /// many left (and, for sequences, of that length), so an organism's
    /// scores do not depend on which others it is scored with. Sequences
    /// are scored by the mean over their scored steps, as the fast RNN
    /// path scores them (0 where none is).
    pub(super) fn evaluate(&self, who: &[(usize, usize)]) -> Result<Vec<f32>, LearnError> {
        let p = self.size();
        let mut take = vec![0usize; p];
        for &(o, limit) in who {
            take[o] = self.heldout[o].count().min(limit);
        }
        let most = take.iter().copied().max().unwrap_or(0);
        let mut totals = vec![0.0f64; p];
        let mut per_example = 1;
        // Scored positions, for sequences.
        let mut scored: Option<Vec<usize>> = None;
        let theta = self.theta.as_tensor().detach();
        for start in (0..most).step_by(EVAL_ROWS) {
            let mut passes = std::collections::BTreeMap::<(usize, usize), Vec<usize>>::new();
            for (o, &take) in take.iter().enumerate().filter(|&(_, &t)| t > start) {
                passes
                    .entry((EVAL_ROWS.min(take - start), self.heldout[o].steps()))
                    .or_default()
                    .push(o);
            }
            for ((rows, _), members) in passes {
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
                if let Some((_, counts)) = &target.scored {
                    let scored = scored.get_or_insert_with(|| vec![0; p]);
                    for (&o, &count) in members.iter().zip(counts) {
                        scored[o] += count;
                    }
                }
                let values = per.flatten_from(1)?.to_vec2::<f32>()?;
                for (&o, values) in members.iter().zip(&values) {
                    totals[o] += values.iter().map(|&v| f64::from(v)).sum::<f64>();
                }
            }
        }
        Ok(who
            .iter()
            .map(|&(o, _)| {
                let count = match &scored {
                    Some(scored) if take[o] > 0 => scored[o].max(1),
                    _ => take[o] * per_example,
                };
                (totals[o] / count as f64) as f32
            })
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
