//! Evaluate set, last: the best of N re-scored on fresh data
//! (`[evaluate] rescore_best`).
//!
//! The best of a population's fitness values is biased upward: it is the
//! largest of N noisy estimates (the winner's curse). [`rescore_best`] takes
//! each objective's best organism of the generation, lives its lifetime
//! again (the same birth, data and minibatch order, so the same learned
//! weights, bit for bit) with the environment's held-out set replaced by
//! one drawn afresh from the organism's rescoring stream, and scores it with
//! the same fitness function. `generations.csv` records the value beside the
//! generation's best (`*_best_rescored`). Nothing else changes: selection
//! reads the fitness the organism was evaluated with.

use std::sync::Arc;

use bevy_ecs::prelude::*;
use lineage_evo::rng::{Purpose, stream};

use super::evaluate::{Member, score};
use super::learn::{GroupContext, Learner, config, learn_group};
use crate::components::{Fitness, Genome, Inherited, LearningCurve, Lineage, Weights};
use crate::develop;
use crate::error::EngineError;
use crate::plugins::Evaluation;
use crate::resources::{
    EnvironmentState, Failure, Generation, KeptWeights, Objectives, RandomStreams, Rescored,
    ScenarioRes, Threads,
};

/// Re-scores each objective's best organism on a fresh held-out set; see
/// the module docs.
#[allow(clippy::too_many_arguments)]
pub fn rescore_best(
    scenario: Res<ScenarioRes>,
    generation: Res<Generation>,
    env: Res<EnvironmentState>,
    evaluation: Res<Evaluation>,
    objectives: Res<Objectives>,
    threads: Res<Threads>,
    streams: Res<RandomStreams>,
    kept: Res<KeptWeights>,
    mut failure: ResMut<Failure>,
    mut out: ResMut<Rescored>,
    organisms: Query<(
        Entity,
        &Lineage,
        &Genome,
        &Fitness,
        Option<&Inherited>,
        Option<&Weights>,
        Option<&LearningCurve>,
    )>,
) {
    out.0.clear();
    if !scenario.0.rescore_best {
        return;
    }
    let objectives = &objectives.0;
    out.0.resize(objectives.len(), f64::NAN);
    let Some(cfg) = config(&scenario, &env) else {
        return;
    };
    let g = generation.0;
    let fail = |message: String| EngineError::Learning {
        generation: g,
        message,
    };
    let mut all: Vec<_> = organisms.iter().filter(|o| o.6.is_some()).collect();
    all.sort_by_key(|o| o.1.id);
    let device = match cfg.device.device() {
        Ok(d) => d,
        Err(e) => {
            failure.0 = Some(fail(e.to_string()));
            return;
        }
    };
    let signs = develop::signs(cfg);
    let call = &evaluation.fitness[env.phase];
    let phase = &scenario.0.phases[env.phase];
    for (k, objective) in objectives.iter().enumerate() {
        // The best valid value, the first by id among equals.
        let mut best: Option<(f64, usize)> = None;
        for (i, o) in all.iter().enumerate() {
            let v = o.3.values[k];
            if !v.is_nan() && best.is_none_or(|(b, _)| objective.direction.better(v, b)) {
                best = Some((v, i));
            }
        }
        let Some((_, i)) = best else {
            continue;
        };
        let (entity, lineage, genome, fitness, inherited, weights, _) = all[i];
        let Some(fresh) = cfg.environment.env.fresh_heldout(&mut stream(
            streams.seed,
            g,
            lineage.id,
            Purpose::Rescore,
        )) else {
            failure.0 = Some(fail(format!(
                "`evaluate.rescore_best`: the environment `{}` cannot draw a fresh held-out set",
                cfg.environment.env.name()
            )));
            return;
        };
        let context = GroupContext {
            cfg,
            seed: streams.seed,
            // The data it learned from: those of the generation it was
            // evaluated in (a survivor's is an earlier one).
            generation: fitness.evaluated_at.unwrap_or(g),
            device: &device,
            signs: &signs,
            probes: &[],
            threads: &threads,
            kept: *kept,
            heldout: Some(Arc::new(fresh)),
        };
        let learner = Learner {
            entity,
            lineage,
            genome,
            inherited,
            weights,
        };
        let (weights, curve) = match learn_group(&context, std::slice::from_ref(&learner)) {
            Ok(mut results) => results.remove(0),
            Err(e) => {
                failure.0 = Some(e);
                return;
            }
        };
        if matches!(curve.status, Some(lineage_learn::Status::Diverged { .. })) {
            continue;
        }
        // Plugins that read weights read the relived ones, equal to the
        // organism's; birth weights it kept stay its own.
        let weights = weights.or_else(|| learner.weights.cloned());
        let members: [Member<'_>; 1] = [(lineage, genome, weights.as_ref(), Some(&curve))];
        let (scores, error) = score(call, g, &members, &scenario, phase, &threads, streams.seed);
        if error.is_some() {
            // The organism's own evaluation succeeded; a failure on fresh
            // data leaves its re-scored value unknown.
            continue;
        }
        out.0[k] = scores[call.columns[k]];
    }
}
