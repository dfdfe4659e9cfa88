//! The one lifetime loop every training path runs: birth score, steps,
//! divergence check, learning-curve points, final score.

use lineage_env::Batch;

use crate::{CurvePoint, LearnError, LifetimeSpec, Outcome, Status};

/// What a training path provides to [`live`].
pub(crate) trait Learner {
    /// Mean loss over (up to `limit` examples of) `batch`.
    fn evaluate(&mut self, batch: &Batch, limit: usize) -> Result<f32, LearnError>;
    /// Forward and backward on minibatch `ids`; returns the minibatch loss
    /// and keeps the gradients for [`Learner::update`].
    fn loss_and_grads(&mut self, ids: &[u32]) -> Result<f32, LearnError>;
    /// Applies optimiser step `step` (0-based) with the kept gradients.
    fn update(&mut self, step: u32) -> Result<(), LearnError>;
    /// The weights now, in parameter order.
    fn params(self) -> Result<Vec<Vec<f32>>, LearnError>;
}

/// Runs a lifetime of `steps` steps over `indices` (`steps x batch`).
pub(crate) fn live(
    mut learner: impl Learner,
    life: &LifetimeSpec,
    steps: u32,
    heldout: &Batch,
    indices: &[u32],
) -> Result<Outcome, LearnError> {
    let mut curve = Vec::new();
    let mut status = Status::Completed;
    let mut since = (0.0f64, 0u32);
    for (step, ids) in indices
        .chunks_exact(life.batch)
        .take(steps as usize)
        .enumerate()
    {
        let step = step as u32;
        // Scored before the minibatch is loaded: a path may reuse buffers.
        let birth = if step == 0 {
            Some(learner.evaluate(heldout, life.curve_heldout)?)
        } else {
            None
        };
        let loss = learner.loss_and_grads(ids)?;
        if !loss.is_finite() {
            status = Status::Diverged { step };
            break;
        }
        if let Some(heldout) = birth {
            curve.push(CurvePoint {
                step: 0,
                train: loss,
                heldout,
            });
        }
        since = (since.0 + f64::from(loss), since.1 + 1);
        learner.update(step)?;
        let done = step + 1;
        if done == steps || (life.eval_every > 0 && done.is_multiple_of(life.eval_every)) {
            let limit = if done == steps {
                usize::MAX
            } else {
                life.curve_heldout
            };
            curve.push(CurvePoint {
                step: done,
                train: (since.0 / f64::from(since.1)) as f32,
                heldout: learner.evaluate(heldout, limit)?,
            });
            since = (0.0, 0);
        }
    }
    if steps == 0 {
        curve.push(CurvePoint {
            step: 0,
            train: f32::NAN,
            heldout: learner.evaluate(heldout, usize::MAX)?,
        });
    }
    if status == Status::Completed && !curve.last().is_some_and(|p| p.heldout.is_finite()) {
        status = Status::Diverged { step: steps };
    }
    Ok(Outcome {
        params: learner.params()?,
        curve,
        status,
    })
}
