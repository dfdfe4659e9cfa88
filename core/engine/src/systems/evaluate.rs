//! Evaluate set: the phase's fitness function scores every organism whose
//! fitness is pending, as one batch; then the evaluation suites score the
//! same organisms for the records.
//!
//! Built-in functions and plugins are called alike, through
//! [`lineage_plugin_host::Instance`]. An organism whose lifetime diverged is
//! invalid and is scored by nobody.

use bevy_ecs::prelude::*;
use lineage_plugin_host::EvalError;
use lineage_scenario::OnError;

use crate::components::{Fitness, Genome, LearningCurve, Lineage, Weights};
use crate::error::EngineError;
use crate::plugins::{BatchServices, Call, Evaluation};
use crate::resources::{
    EnvironmentState, EvaluationErrors, Failure, FitnessScores, Generation, RandomStreams,
    ScenarioRes, SuiteScores, Threads,
};

/// What a fitness call or suite reads of one organism.
pub(super) type Member<'a> = (
    &'a Lineage,
    &'a Genome,
    Option<&'a Weights>,
    Option<&'a LearningCurve>,
);

fn diverged(curve: Option<&LearningCurve>) -> bool {
    matches!(
        curve.and_then(|c| c.status),
        Some(lineage_learn::Status::Diverged { .. })
    )
}

/// Scores the pending organisms with the current phase's fitness function.
pub fn evaluate_fitness(
    scenario: Res<ScenarioRes>,
    generation: Res<Generation>,
    env: Res<EnvironmentState>,
    evaluation: Res<Evaluation>,
    threads: Res<Threads>,
    streams: Res<RandomStreams>,
    mut failure: ResMut<Failure>,
    mut errors: ResMut<EvaluationErrors>,
    mut full: ResMut<FitnessScores>,
    mut organisms: Query<(
        &Lineage,
        &Genome,
        &mut Fitness,
        Option<&Weights>,
        Option<&LearningCurve>,
    )>,
) {
    errors.0.clear();
    full.0 = None;
    let g = generation.0;
    let mut batch: Vec<(Member<'_>, Mut<'_, Fitness>)> = Vec::new();
    for (lineage, genome, mut fitness, weights, curve) in &mut organisms {
        if !fitness.is_pending() {
            continue;
        }
        if diverged(curve) {
            fitness.values.fill(f64::NAN);
            fitness.evaluated_at = Some(g);
            continue;
        }
        batch.push(((lineage, genome, weights, curve), fitness));
    }
    if batch.is_empty() {
        return;
    }
    batch.sort_by_key(|((lineage, ..), _)| lineage.id);
    let members: Vec<Member<'_>> = batch.iter().map(|(m, _)| *m).collect();
    let call = &evaluation.fitness[env.phase];
    let phase = &scenario.0.phases[env.phase];
    let (scores, error) = score(call, g, &members, &scenario, phase, &threads, streams.seed);
    if !tolerate(call, g, error, &mut failure, &mut errors) {
        return;
    }
    let metrics = call.instance.offering().metrics.len();
    for (row, (_, fitness)) in batch.iter_mut().enumerate() {
        for (value, &column) in fitness.values.iter_mut().zip(&call.columns) {
            *value = scores[row * metrics + column];
        }
        fitness.evaluated_at = Some(g);
    }
    let ids = batch.iter().map(|((lineage, ..), _)| lineage.id).collect();
    full.0 = Some((call.source.clone(), ids, scores));
}

/// Scores the organisms evaluated this generation with every evaluation
/// suite, for `metrics.csv`.
pub fn evaluate_suites(
    scenario: Res<ScenarioRes>,
    generation: Res<Generation>,
    env: Res<EnvironmentState>,
    evaluation: Res<Evaluation>,
    threads: Res<Threads>,
    streams: Res<RandomStreams>,
    mut failure: ResMut<Failure>,
    mut errors: ResMut<EvaluationErrors>,
    fitness: Res<FitnessScores>,
    mut out: ResMut<SuiteScores>,
    organisms: Query<(
        &Lineage,
        &Genome,
        &Fitness,
        Option<&Weights>,
        Option<&LearningCurve>,
    )>,
) {
    out.0.clear();
    if evaluation.suites.is_empty() || failure.0.is_some() {
        return;
    }
    let g = generation.0;
    let mut batch: Vec<Member<'_>> = organisms
        .iter()
        .filter(|(_, _, f, _, curve)| f.evaluated_at == Some(g) && !diverged(*curve))
        .map(|(l, genome, _, w, c)| (l, genome, w, c))
        .collect();
    if batch.is_empty() {
        return;
    }
    batch.sort_by_key(|(lineage, ..)| lineage.id);
    let phase = &scenario.0.phases[env.phase];
    let mut rows: Vec<(u64, Vec<Vec<f64>>)> =
        batch.iter().map(|(l, ..)| (l.id, Vec::new())).collect();
    let ids: Vec<_> = batch.iter().map(|(l, ..)| l.id).collect();
    for call in &evaluation.suites {
        // The fitness function's scores of the same organisms, when it is
        // this suite (same plugin, offering and configuration).
        let (scores, error) = match &fitness.0 {
            Some((source, scored, scores)) if *source == call.source && *scored == ids => {
                (scores.clone(), None)
            }
            _ => score(call, g, &batch, &scenario, phase, &threads, streams.seed),
        };
        if !tolerate(call, g, error, &mut failure, &mut errors) {
            return;
        }
        let metrics = call.instance.offering().metrics.len();
        for (row, (_, values)) in rows.iter_mut().enumerate() {
            values.push(scores[row * metrics..(row + 1) * metrics].to_vec());
        }
    }
    out.0 = rows;
}

/// Applies `call`'s `on_error` to an evaluation error: false when the run
/// must abort (the failure is set), true when it goes on (the error is
/// counted).
fn tolerate(
    call: &Call,
    generation: u32,
    error: Option<EvalError>,
    failure: &mut Failure,
    errors: &mut EvaluationErrors,
) -> bool {
    let Some(e) = error else {
        return true;
    };
    // A plugin that cannot measure this scenario would fail every
    // generation: bad input, whatever `on_error` says.
    match if e.is_unfit() {
        OnError::Abort
    } else {
        call.on_error
    } {
        OnError::Abort => {
            failure.0 = Some(EngineError::PluginEval {
                generation,
                call: call.label.clone(),
                source: Box::new(e),
            });
            false
        }
        OnError::Invalidate => {
            errors.0.push(e.to_string());
            true
        }
    }
}

/// Calls `call` on `batch`: the scores (organisms x the offering's
/// metrics), NaN for organisms an error affected, and the error.
pub(super) fn score(
    call: &Call,
    generation: u32,
    batch: &[Member<'_>],
    scenario: &ScenarioRes,
    phase: &lineage_scenario::Phase,
    threads: &Threads,
    seed: u64,
) -> (Vec<f64>, Option<EvalError>) {
    let services = BatchServices::new(
        batch,
        call,
        &scenario.0.genome,
        phase.pressures.lifetime.as_deref(),
        seed,
    );
    let ids: Vec<u64> = batch.iter().map(|(l, ..)| l.id).collect();
    let metrics = call.instance.offering().metrics.len();
    let mut scores = vec![f64::NAN; ids.len() * metrics];
    let result = threads.0.install(|| {
        call.instance
            .evaluate(generation, &ids, &services, &mut scores)
    });
    match result {
        Ok(()) => (scores, None),
        Err(e) => {
            for i in e.affected(ids.len()) {
                scores[i * metrics..(i + 1) * metrics].fill(f64::NAN);
            }
            (scores, Some(e))
        }
    }
}
