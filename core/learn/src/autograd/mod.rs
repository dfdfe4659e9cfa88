//! The autograd path: any model family on candle, trained by autograd one
//! organism at a time, on the CPU or a CUDA device.
//!
//! The optimiser mirrors [`crate::optim`] with tensor operations, so this
//! path and the fast path compute the same lifetime (a test holds them to
//! 1e-5). Built on [`crate::models`] (the candle modules) and the lifetime
//! loop (`lifetime`).

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use lineage_env::Batch;

use crate::data::Examples;
use crate::models::{Network, gather, loss, variables};
use crate::optim::{Method, clip_scale};
use crate::spec::{Loss, ModelSpec, ParamInfo};
use crate::{Job, LearnError, LifetimeSpec, Outcome};

/// An organism's weights as candle variables.
struct Vars {
    vars: Vec<Var>,
    masks: Vec<Option<Tensor>>,
    signs: Vec<Option<Tensor>>,
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
    let scoring = crate::lifetime::Scoring::of(&job, model);
    let layout = model.params();
    let (varmap, vars) = variables(&layout, &job.params, device)?;
    let mut state = Vars {
        vars: Vec::new(),
        masks: Vec::new(),
        signs: Vec::new(),
        m: Vec::new(),
        v: Vec::new(),
    };
    let tensor = |values: &Option<Vec<f32>>, info: &ParamInfo| match values {
        Some(x) => Tensor::from_slice(x, info.shape.as_slice(), device).map(Some),
        None => Ok(None),
    };
    for (((info, var), mask), signs) in layout.iter().zip(vars).zip(&job.masks).zip(&job.signs) {
        state.m.push(var.zeros_like()?);
        state.v.push(var.zeros_like()?);
        state.masks.push(tensor(mask, info)?);
        state.signs.push(tensor(signs, info)?);
        state.vars.push(var);
    }
    let net = Network::new(model, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
    let ex = Examples::of(job.train, model).expect("the lifetime was checked to hold examples");
    let learner = CandleLearner {
        net,
        model,
        loss_kind,
        life,
        device,
        hyper: job.hyper,
        train: job.train,
        ex,
        state,
        grads: None,
    };
    crate::lifetime::live(learner, life, job.hyper.steps, scoring, &job.indices)
}

/// One organism's lifetime on candle.
struct CandleLearner<'a> {
    net: Network,
    model: &'a ModelSpec,
    loss_kind: Loss,
    life: &'a LifetimeSpec,
    device: &'a Device,
    hyper: crate::Hyper,
    train: &'a Batch,
    ex: Examples,
    state: Vars,
    grads: Option<candle_core::backprop::GradStore>,
}

impl crate::lifetime::Learner for CandleLearner<'_> {
    fn evaluate(&mut self, batch: &Batch, limit: usize) -> Result<f32, LearnError> {
        Ok(evaluate(
            &self.net,
            self.model,
            self.loss_kind,
            batch,
            limit,
            self.device,
        )?)
    }

    fn loss_and_grads(&mut self, ids: &[u32]) -> Result<f32, LearnError> {
        let (input, target) = gather(self.train, self.ex, ids, self.device)?;
        let l = loss(self.loss_kind, &self.net.forward(&input)?, &target)?;
        let value = l.to_scalar::<f32>()?;
        self.grads = if value.is_finite() {
            Some(l.backward()?)
        } else {
            None
        };
        Ok(value)
    }

    fn update(&mut self, step: u32) -> Result<(), LearnError> {
        if let Some(grads) = self.grads.take() {
            update(self.life, &self.hyper, step, &mut self.state, &grads)?;
        }
        Ok(())
    }

    fn params(self) -> Result<Vec<Vec<f32>>, LearnError> {
        self.weights()
    }

    fn weights(&self) -> Result<Vec<Vec<f32>>, LearnError> {
        Ok(self
            .state
            .vars
            .iter()
            .map(|v| v.as_tensor().flatten_all()?.to_vec1::<f32>())
            .collect::<candle_core::Result<_>>()?)
    }
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
        // Detached: a gradient computed from the variables records the
        // ops that made it, and optimiser state built from it would keep
        // every earlier step's graph alive (memory growing with steps).
        let g = match grads.get(var.as_tensor()) {
            Some(g) => g.detach(),
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
        let p = state.vars[i].as_tensor().detach();
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
        // Sign constraints: `w * (s w >= 0)`, as `optim::project_signs`.
        let new = match &state.signs[i] {
            Some(signs) => {
                let keep = (&new * signs)?.ge(0.0)?.to_dtype(DType::F32)?;
                (new * keep)?
            }
            None => new,
        };
        state.vars[i].set(&new)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
