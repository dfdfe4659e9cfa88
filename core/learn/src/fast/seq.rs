//! What the fast paths for sequence models share: one organism's lifetime
//! around a model that loads a minibatch of sequences into its buffers and
//! runs forward and backward over them ([`SequenceModel`]), with held-out
//! scoring in chunks and the optimiser of [`crate::fast`].

use lineage_env::{Batch, IGNORE};

use crate::fast::OptimizerState;
use crate::optim::Hyper;
use crate::{Job, LifetimeSpec, ModelSpec, Outcome};

/// Sequences per chunk when scoring held-out data.
pub(crate) const EVAL_ROWS: usize = 128;

/// A sequence model on the fast path: its buffers for `rows` sequences of
/// a fixed number of steps, loaded by [`SequenceModel::load`].
pub(crate) trait SequenceModel {
    /// Buffers allocated once per lifetime.
    type Workspace;

    /// Sequences the workspace holds.
    fn rows(ws: &Self::Workspace) -> usize;
    /// Steps per sequence the workspace holds.
    fn steps(ws: &Self::Workspace) -> usize;
    /// The labels loaded, `steps` per sequence.
    fn labels(ws: &Self::Workspace) -> &[u32];
    /// Loads sequences `ids` of `batch`.
    fn load(&self, ws: &mut Self::Workspace, batch: &Batch, ids: &[u32]);
    /// Forward over the `b` loaded sequences; the mean loss over the
    /// scored steps, and with `grad` the output gradient kept for
    /// [`SequenceModel::backward`].
    fn forward(&self, ws: &mut Self::Workspace, params: &[Vec<f32>], b: usize, grad: bool) -> f32;
    /// Every parameter's gradient (overwriting `grads`) after
    /// [`SequenceModel::forward`] with `grad`.
    fn backward(
        &self,
        ws: &mut Self::Workspace,
        params: &[Vec<f32>],
        grads: &mut [Vec<f32>],
        b: usize,
    );

    /// Mean loss over the scored steps of the first `limit` sequences of
    /// `batch`, in chunks of the workspace's rows; NaN for an empty batch
    /// or one of another length.
    fn evaluate(
        &self,
        ws: &mut Self::Workspace,
        params: &[Vec<f32>],
        batch: &Batch,
        limit: usize,
    ) -> f32 {
        let n = batch.len().min(limit);
        if n == 0 || steps_of(batch) != Self::steps(ws) {
            return f32::NAN;
        }
        let ids: Vec<u32> = (0..n as u32).collect();
        let (mut total, mut count) = (0.0f64, 0usize);
        for chunk in ids.chunks(Self::rows(ws)) {
            self.load(ws, batch, chunk);
            let scored = Self::labels(ws)[..Self::steps(ws) * chunk.len()]
                .iter()
                .filter(|&&l| l != IGNORE)
                .count();
            total += f64::from(self.forward(ws, params, chunk.len(), false)) * scored as f64;
            count += scored;
        }
        (total / count.max(1) as f64) as f32
    }
}

/// Steps per sequence of a batch the sequence paths train on.
pub(crate) fn steps_of(batch: &Batch) -> usize {
    match batch {
        Batch::Sequences { steps, .. } => *steps,
        Batch::Tokens { len, .. } => len.saturating_sub(1),
        _ => 0,
    }
}

/// One organism's lifetime around a [`SequenceModel`].
struct SequenceLearner<'a, M: SequenceModel> {
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

impl<M: SequenceModel> crate::lifetime::Learner for SequenceLearner<'_, M> {
    fn evaluate(&mut self, batch: &Batch, limit: usize) -> Result<f32, crate::LearnError> {
        Ok(self
            .model
            .evaluate(&mut self.ws, &self.params, batch, limit))
    }

    fn loss_and_grads(&mut self, ids: &[u32]) -> Result<f32, crate::LearnError> {
        self.model.load(&mut self.ws, self.train, ids);
        let loss = self
            .model
            .forward(&mut self.ws, &self.params, ids.len(), true);
        if loss.is_finite() {
            self.model
                .backward(&mut self.ws, &self.params, &mut self.state.grads, ids.len());
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
pub(crate) fn live<M: SequenceModel>(
    model: M,
    spec: &ModelSpec,
    ws: M::Workspace,
    life: &LifetimeSpec,
    job: Job,
) -> Outcome {
    let learner = SequenceLearner {
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
    crate::lifetime::live(
        learner,
        life,
        job.hyper.steps,
        crate::lifetime::Scoring {
            heldout: job.heldout,
            probes: job.probes,
            model: spec,
        },
        &job.indices,
    )
    .expect("the fast path does not fail")
}
