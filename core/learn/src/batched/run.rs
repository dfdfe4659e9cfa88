//! A chunk's lifetimes in lockstep (`run_chunk`): birth scores, the
//! steps, and each organism's record (curve, probe sets, status,
//! divergence) kept as the lifetime loop every other path runs keeps it.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use crate::lifetime::{Scoring, score_probe_sets};
use crate::{CurvePoint, Job, LearnError, LifetimeSpec, Outcome, ProbePoint, Status};

use super::chunk::Chunk;
use super::net::Net;

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
    net: &Net,
    life: &LifetimeSpec,
    device: &Device,
    jobs: &[Job],
) -> Result<Vec<Outcome>, LearnError> {
    let model = net.model;
    let mut chunk = Chunk::new(net, life, device, jobs)?;
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
                    model,
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
