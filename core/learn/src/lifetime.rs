//! The one lifetime loop every training path runs: birth score, steps,
//! divergence check, learning-curve points (with the environment's probe
//! sets scored at each), final score.
//!
//! Built on [`crate::measure`], through which the probe sets are scored
//! whatever path trains the model.

use lineage_env::{Batch, IGNORE, ProbeSet};

use crate::measure::ProbeInput;
use crate::spec::ModelSpec;
use crate::{CurvePoint, LearnError, LifetimeSpec, Outcome, ProbeMetric, ProbePoint, Status};

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
    /// A copy of the weights now (for the probe sets).
    fn weights(&self) -> Result<Vec<Vec<f32>>, LearnError>;
}

/// What a lifetime is scored on at its curve points.
pub(crate) struct Scoring<'a> {
    /// The held-out data (the curve's loss).
    pub heldout: &'a Batch,
    /// The environment's probe sets.
    pub probes: &'a [ProbeSet],
    /// The model, which the probe sets run through [`crate::measure`].
    pub model: &'a ModelSpec,
}

impl<'a> Scoring<'a> {
    /// What `job`'s lifetime of `model` is scored on.
    pub(crate) fn of(job: &crate::Job<'a>, model: &'a ModelSpec) -> Scoring<'a> {
        Scoring {
            heldout: job.heldout,
            probes: job.probes,
            model,
        }
    }
}

/// Scores the probe sets with the learner's weights now: per set, the mean
/// cross-entropy of its scored labels, the accuracy of the argmax over its
/// `choices` (every label without), and over every label where `choices`
/// restricts it. The model's outputs come from [`crate::measure::outputs`]
/// (candle, on the CPU), whatever path trains it.
fn score_probes(
    learner: &impl Learner,
    scoring: &Scoring,
    step: u32,
    out: &mut Vec<ProbePoint>,
) -> Result<(), LearnError> {
    if scoring.probes.is_empty() {
        return Ok(());
    }
    score_probe_sets(&learner.weights()?, scoring, step, out)
}

/// [`score_probes`] for `weights` (in parameter order): what a path that
/// does not run [`live`] scores its organisms' curve points with.
pub(crate) fn score_probe_sets(
    weights: &[Vec<f32>],
    scoring: &Scoring,
    step: u32,
    out: &mut Vec<ProbePoint>,
) -> Result<(), LearnError> {
    for (k, set) in scoring.probes.iter().enumerate() {
        // One label per output row: per example (rows), or per example and
        // step (sequences, `IGNORE` where a step is not scored).
        let (x, n, labels) = match &*set.data {
            Batch::Labeled { n, x, labels } | Batch::Sequences { n, x, labels, .. } => {
                (x, *n, labels)
            }
            _ => {
                return Err(LearnError::Probe(format!(
                    "probe set `{}`: probe sets are labelled rows or sequences",
                    set.name
                )));
            }
        };
        let input = ProbeInput::Real {
            x,
            n,
            len: x.len() / n.max(1),
        };
        let out_all = crate::measure::outputs(scoring.model, weights, &input)
            .map_err(|e| LearnError::Probe(format!("probe set `{}`: {e}", set.name)))?;
        let classes = *out_all.shape.last().unwrap_or(&1);
        let positions = labels.len().min(out_all.values.len() / classes.max(1));
        let (mut loss, mut right, mut right_all) = (0.0f64, 0usize, 0usize);
        let mut scored = 0usize;
        for at in (0..positions).filter(|&at| labels[at] != IGNORE) {
            let z = &out_all.values[at * classes..(at + 1) * classes];
            let label = labels[at] as usize;
            if label >= classes {
                continue;
            }
            let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f64 = z.iter().map(|&v| f64::from(v - max).exp()).sum();
            loss += f64::from(max) + sum.ln() - f64::from(z[label]);
            let argmax = |candidates: &mut dyn Iterator<Item = usize>| {
                candidates.fold(None::<usize>, |best, c| match best {
                    Some(b) if z[b] >= z[c] => Some(b),
                    _ => Some(c),
                })
            };
            let best_all = argmax(&mut (0..classes));
            right_all += usize::from(best_all == Some(label));
            let best = match &set.choices {
                Some(c) => argmax(&mut c.iter().map(|&l| l as usize).filter(|&l| l < classes)),
                None => best_all,
            };
            right += usize::from(best == Some(label));
            scored += 1;
        }
        if scored == 0 {
            continue;
        }
        let n = scored as f64;
        out.push(ProbePoint {
            step,
            probe: k,
            metric: ProbeMetric::Loss,
            value: (loss / n) as f32,
        });
        out.push(ProbePoint {
            step,
            probe: k,
            metric: ProbeMetric::Accuracy,
            value: (right as f64 / n) as f32,
        });
        if set.choices.is_some() {
            out.push(ProbePoint {
                step,
                probe: k,
                metric: ProbeMetric::AccuracyAll,
                value: (right_all as f64 / n) as f32,
            });
        }
    }
    Ok(())
}

/// Runs a lifetime of `steps` steps over `indices` (`steps x batch`).
pub(crate) fn live(
    mut learner: impl Learner,
    life: &LifetimeSpec,
    steps: u32,
    scoring: Scoring,
    indices: &[u32],
) -> Result<Outcome, LearnError> {
    let heldout = scoring.heldout;
    let mut probes = Vec::new();
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
            score_probes(&learner, &scoring, 0, &mut probes)?;
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
            score_probes(&learner, &scoring, done, &mut probes)?;
            since = (0.0, 0);
        }
    }
    if steps == 0 {
        curve.push(CurvePoint {
            step: 0,
            train: f32::NAN,
            heldout: learner.evaluate(heldout, usize::MAX)?,
        });
        score_probes(&learner, &scoring, 0, &mut probes)?;
    }
    if status == Status::Completed && !curve.last().is_some_and(|p| p.heldout.is_finite()) {
        status = Status::Diverged { step: steps };
    }
    Ok(Outcome {
        params: learner.params()?,
        curve,
        status,
        probes,
    })
}
