//! The fast CPU paths: MLPs (and MLP language models), leaky RNNs and causal
//! transformers trained with hand-written forward and backward passes on
//! the `gemm` crate and the AVX2 kernel, one organism per core, in buffers
//! allocated once per lifetime.
//!
//! Built on [`crate::kernels`] (matrix products, AVX2 dispatch) and the
//! lifetime loop ([`crate::lifetime`]); the models' arithmetic is that of
//! [`crate::models`] up to summation order, which the tests hold them to.
//!
//! - this file: [`FastModel`], what each fast path implements (load a
//!   minibatch into its buffers, forward, backward; held-out scoring, by
//!   default by scored steps as the sequence models need), the one
//!   lifetime around it ([`live`]) and the optimiser state they share;
//! - `activation`: nonlinearities and `exp`;
//! - `mlp`: the MLP path;
//! - `rnn`, `transformer`: the sequence models.

pub(crate) mod activation;
pub(crate) mod mlp;
pub(crate) mod rnn;
pub(crate) mod transformer;

pub(crate) use crate::kernels::{View, matmul, wide};
pub(crate) use activation::{activate, activate_backward};

use lineage_env::{Batch, IGNORE};

use crate::optim::{self, Hyper};
use crate::{Job, LifetimeSpec, ModelSpec, Outcome};

/// A model on a fast path: buffers for a minibatch allocated once per
/// lifetime ([`FastModel::Workspace`]), loaded, then run forward and
/// backward over.
pub(crate) trait FastModel {
    /// Buffers allocated once per lifetime.
    type Workspace;
    /// Loads examples `ids` of `batch` (an MLP language model looks up its
    /// embedding in `params`).
    fn load(&self, ws: &mut Self::Workspace, params: &[Vec<f32>], batch: &Batch, ids: &[u32]);
    /// Forward over the `b` loaded examples; the mean loss over what they
    /// score, and with `grad` the output gradient kept for
    /// [`FastModel::backward`].
    fn forward(&self, ws: &mut Self::Workspace, params: &[Vec<f32>], b: usize, grad: bool) -> f32;
    /// Every parameter's gradient (overwriting `grads`) after
    /// [`FastModel::forward`] with `grad`.
    fn backward(
        &self,
        ws: &mut Self::Workspace,
        params: &[Vec<f32>],
        grads: &mut [Vec<f32>],
        b: usize,
    );
    /// What the workspace holds: examples, steps per example (1 for an
    /// MLP), and the labels loaded (`steps` per example).
    fn loaded(ws: &Self::Workspace) -> (usize, usize, &[u32]);

    /// Mean loss over (up to `limit` examples of) `batch`, in chunks of the
    /// workspace; NaN where the batch holds nothing to score. This default
    /// is the sequence models': the mean over the scored steps (labels
    /// other than `IGNORE`) of the first `limit` sequences, NaN for a batch
    /// of another length.
    fn evaluate(
        &self,
        ws: &mut Self::Workspace,
        params: &[Vec<f32>],
        batch: &Batch,
        limit: usize,
    ) -> f32 {
        let (rows, steps, _) = Self::loaded(ws);
        let n = batch.len().min(limit);
        if n == 0 || steps_of(batch) != steps {
            return f32::NAN;
        }
        let ids: Vec<u32> = (0..n as u32).collect();
        let (mut total, mut count) = (0.0f64, 0usize);
        for chunk in ids.chunks(rows) {
            self.load(ws, params, batch, chunk);
            let scored = Self::loaded(ws).2[..steps * chunk.len()]
                .iter()
                .filter(|&&l| l != IGNORE)
                .count();
            total += f64::from(self.forward(ws, params, chunk.len(), false)) * scored as f64;
            count += scored;
        }
        (total / count.max(1) as f64) as f32
    }
}

/// Sequences per chunk when a sequence path scores held-out data.
pub(crate) const EVAL_SEQUENCES: usize = 128;

/// Steps per sequence of a batch the sequence paths train on.
pub(crate) fn steps_of(batch: &Batch) -> usize {
    match batch {
        Batch::Sequences { steps, .. } => *steps,
        Batch::Tokens { len, .. } => len.saturating_sub(1),
        _ => 0,
    }
}

/// One organism's lifetime around a [`FastModel`].
struct FastLearner<'a, M: FastModel> {
    model: M,
    life: &'a LifetimeSpec,
    ws: M::Workspace,
    params: Vec<Vec<f32>>,
    masks: Vec<Option<Vec<f32>>>,
    signs: Vec<Option<Vec<f32>>>,
    hyper: Hyper,
    train: &'a Batch,
    state: OptimizerState,
}

impl<M: FastModel> crate::lifetime::Learner for FastLearner<'_, M> {
    fn evaluate(&mut self, batch: &Batch, limit: usize) -> Result<f32, crate::LearnError> {
        Ok(self
            .model
            .evaluate(&mut self.ws, &self.params, batch, limit))
    }

    fn loss_and_grads(&mut self, ids: &[u32]) -> Result<f32, crate::LearnError> {
        let (model, ws) = (&self.model, &mut self.ws);
        model.load(ws, &self.params, self.train, ids);
        let loss = model.forward(ws, &self.params, ids.len(), true);
        if loss.is_finite() {
            model.backward(ws, &self.params, &mut self.state.grads, ids.len());
        }
        Ok(loss)
    }

    fn update(&mut self, step: u32) -> Result<(), crate::LearnError> {
        self.state.step(
            self.life,
            &self.hyper,
            step,
            &mut self.params,
            &self.masks,
            &self.signs,
        );
        Ok(())
    }

    fn params(self) -> Result<Vec<Vec<f32>>, crate::LearnError> {
        Ok(self.params)
    }

    fn weights(&self) -> Result<Vec<Vec<f32>>, crate::LearnError> {
        Ok(self.params.clone())
    }
}

/// Runs one organism's lifetime with `model` (`spec` is the same model,
/// for scoring the probe sets) in workspace `ws`.
pub(crate) fn live<M: FastModel>(
    model: M,
    spec: &ModelSpec,
    ws: M::Workspace,
    life: &LifetimeSpec,
    job: Job,
) -> Outcome {
    let scoring = crate::lifetime::Scoring::of(&job, spec);
    let learner = FastLearner {
        model,
        life,
        ws,
        state: OptimizerState::new(&job.params),
        params: job.params,
        masks: job.masks,
        signs: job.signs,
        hyper: job.hyper,
        train: job.train,
    };
    crate::lifetime::live(learner, life, job.hyper.steps, scoring, &job.indices)
        .expect("the fast paths do not fail")
}

/// Gradients and optimiser moments, shaped like the parameters.
pub(crate) struct OptimizerState {
    pub(crate) grads: Vec<Vec<f32>>,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl OptimizerState {
    pub(crate) fn new(params: &[Vec<f32>]) -> OptimizerState {
        let zeros: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
        OptimizerState {
            grads: zeros.clone(),
            m: zeros.clone(),
            v: zeros,
        }
    }

    /// Masks, clips and applies optimiser step `step`, then projects onto
    /// the sign constraints.
    pub(crate) fn step(
        &mut self,
        life: &LifetimeSpec,
        hyper: &Hyper,
        step: u32,
        params: &mut [Vec<f32>],
        masks: &[Option<Vec<f32>>],
        signs: &[Option<Vec<f32>>],
    ) {
        step_all(
            life,
            hyper,
            step,
            params,
            &mut self.grads,
            &mut self.m,
            &mut self.v,
            masks,
            signs,
        );
    }
}

/// Masks, clips and applies one optimiser step to every parameter, then
/// projects onto the sign constraints.
fn step_all(
    life: &LifetimeSpec,
    hyper: &Hyper,
    step: u32,
    params: &mut [Vec<f32>],
    grads: &mut [Vec<f32>],
    m: &mut [Vec<f32>],
    v: &mut [Vec<f32>],
    masks: &[Option<Vec<f32>>],
    signs: &[Option<Vec<f32>>],
) {
    for (g, mask) in grads.iter_mut().zip(masks) {
        if let Some(mask) = mask {
            g.iter_mut().zip(mask).for_each(|(g, &k)| *g *= k);
        }
    }
    if let Some(max) = life.optimizer.clip {
        let norm = grads
            .iter()
            .flat_map(|g| g.iter())
            .map(|&g| f64::from(g) * f64::from(g))
            .sum::<f64>()
            .sqrt() as f32;
        let scale = optim::clip_scale(norm, max);
        if scale < 1.0 {
            grads
                .iter_mut()
                .flat_map(|g| g.iter_mut())
                .for_each(|g| *g *= scale);
        }
    }
    let lr = hyper.lr * life.optimizer.schedule.factor(step, hyper.steps);
    for i in 0..params.len() {
        optim::update(
            &life.optimizer,
            hyper,
            lr,
            step + 1,
            &mut params[i],
            &grads[i],
            &mut m[i],
            &mut v[i],
            masks[i].as_deref(),
            signs[i].as_deref(),
        );
    }
}
