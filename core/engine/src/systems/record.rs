//! Record set: per-generation statistics, per-organism rows and the
//! stopping criteria.

use std::fmt::Write as _;

use bevy_ecs::prelude::*;
use lineage_evo::rng::{POPULATION, Purpose, stream};
use lineage_evo::stats::{self, Summary};
use lineage_scenario::RecordOrganisms;

use crate::components::{Fitness, Genome, LearningCurve, Lineage};
use crate::plugins::Evaluation;
use crate::recorder::Recorder;
use crate::resources::{
    EnvironmentState, EvaluationErrors, Failure, Generation, GenerationStats, Objectives, Progress,
    RandomStreams, Rescored, ScenarioRes, StopReason, SuiteScores, Threads,
};

/// Summarises the evaluated population: each objective's best, mean,
/// median and worst, and the genetic diversity.
pub fn summarize_population(
    generation: Res<Generation>,
    objectives: Res<Objectives>,
    scenario: Res<ScenarioRes>,
    threads: Res<Threads>,
    errors: Res<EvaluationErrors>,
    mut out: ResMut<GenerationStats>,
    organisms: Query<(&Lineage, &Genome, &Fitness)>,
) {
    let mut all: Vec<_> = organisms.iter().collect();
    all.sort_by_key(|(lineage, _, _)| lineage.id);
    let m = objectives.0.len();
    let mut column = Vec::with_capacity(all.len());
    let summaries: Vec<Summary> = (0..m)
        .map(|k| {
            column.clear();
            column.extend(all.iter().map(|(_, _, f)| f.values[k]));
            stats::summarize(&column, objectives.0[k].direction)
        })
        .collect();
    let genomes: Vec<&lineage_evo::Genome> = all.iter().map(|(_, g, _)| &g.0).collect();
    let diversity = threads
        .0
        .install(|| stats::diversity(&genomes, &scenario.0.genome));
    let evaluated = all
        .iter()
        .filter(|(_, _, f)| f.evaluated_at == Some(generation.0))
        .count();
    let invalid = all
        .iter()
        .filter(|(_, _, f)| f.values.iter().any(|v| v.is_nan()))
        .count();
    *out = GenerationStats {
        population: all.len(),
        evaluated,
        invalid,
        summaries,
        diversity,
        errors: errors.0.clone(),
    };
}

/// Appends the generation's row to `generations.csv`.
pub fn write_generation_row(
    generation: Res<Generation>,
    env: Res<EnvironmentState>,
    summary: Res<GenerationStats>,
    rescored: Res<Rescored>,
    mut recorder: ResMut<Recorder>,
    mut failure: ResMut<Failure>,
) {
    let s = &*summary;
    let mut row = format!(
        "{},{},{},{}",
        generation.0, s.population, s.evaluated, s.invalid
    );
    for o in &s.summaries {
        let _ = write!(row, ",{},{},{},{}", o.best, o.mean, o.median, o.worst);
    }
    let _ = write!(row, ",{},{},{}", s.diversity, env.phase, s.errors.len());
    for v in &rescored.0 {
        let _ = write!(row, ",{v}");
    }
    if let Err(e) = recorder.generation_row(&row) {
        failure.0 = Some(e);
    }
}

/// Appends one row per organism evaluated this generation to
/// `organisms.csv` (with its curve and probe rows), in id order: every one,
/// a seeded sample or the elites, as `record.organisms` says.
pub fn write_organism_rows(
    generation: Res<Generation>,
    mut recorder: ResMut<Recorder>,
    mut failure: ResMut<Failure>,
    scenario: Res<ScenarioRes>,
    objectives: Res<Objectives>,
    streams: Res<RandomStreams>,
    organisms: Query<(&Lineage, &Genome, &Fitness, Option<&LearningCurve>)>,
) {
    if !recorder.records_organisms() {
        return;
    }
    let lifetimes = scenario
        .0
        .phases
        .iter()
        .any(|p| p.pressures.lifetime.is_some());
    let mut fresh: Vec<_> = organisms
        .iter()
        .filter(|(_, _, f, _)| f.evaluated_at == Some(generation.0))
        .collect();
    fresh.sort_by_key(|(lineage, _, _, _)| lineage.id);
    match scenario.0.record.organisms {
        RecordOrganisms::All | RecordOrganisms::None => {}
        RecordOrganisms::Sample(n) => {
            let mut rng = stream(streams.seed, generation.0, POPULATION, Purpose::Record);
            let mut keep =
                rand::seq::index::sample(&mut rng, fresh.len(), n.min(fresh.len())).into_vec();
            keep.sort_unstable();
            fresh = keep.into_iter().map(|i| fresh[i]).collect();
        }
        RecordOrganisms::Elites(n) => {
            let direction = objectives.0.first().map(|o| o.direction);
            let utility = |f: &Fitness| match direction {
                Some(d) => d.utility(f.values[0]),
                None => f64::NEG_INFINITY,
            };
            // Best first (invalid last), ties by id; then back to id order.
            fresh.sort_by(|a, b| {
                utility(b.2)
                    .total_cmp(&utility(a.2))
                    .then(a.0.id.cmp(&b.0.id))
            });
            fresh.truncate(n);
            fresh.sort_by_key(|(lineage, _, _, _)| lineage.id);
        }
    }
    let mut rows = String::with_capacity(fresh.len() * 64);
    let mut curves = String::new();
    let mut probes = String::new();
    let parent = |p: Option<u64>| p.map_or(String::new(), |id| id.to_string());
    for (lineage, genome, fitness, curve) in fresh {
        let _ = write!(
            rows,
            "{},{},{},{},{}",
            lineage.id,
            lineage.birth,
            generation.0,
            parent(lineage.parents[0]),
            parent(lineage.parents[1])
        );
        for v in fitness.values.iter() {
            let _ = write!(rows, ",{v}");
        }
        if lifetimes {
            // How the lifetime ended, and held-out loss at birth and at the end.
            let (status, birth, last) = match curve {
                Some(c) => (
                    match c.status {
                        Some(lineage_learn::Status::Completed) => "completed".to_owned(),
                        Some(lineage_learn::Status::Diverged { step }) => {
                            format!("diverged at step {step}")
                        }
                        None => String::new(),
                    },
                    c.points.first().map_or(f32::NAN, |p| p.heldout),
                    c.points.last().map_or(f32::NAN, |p| p.heldout),
                ),
                None => (String::new(), f32::NAN, f32::NAN),
            };
            let _ = write!(rows, ",{status},{birth},{last}");
            for p in curve.map_or(&[][..], |c| c.points.as_slice()) {
                let _ = writeln!(
                    curves,
                    "{},{},{},{},{}",
                    lineage.id, generation.0, p.step, p.train, p.heldout
                );
            }
            for p in curve.map_or(&[][..], |c| c.probes.as_slice()) {
                let _ = writeln!(
                    probes,
                    "{},{},{},{},{},{}",
                    lineage.id, generation.0, p.step, p.probe, p.metric, p.value
                );
            }
        }
        let _ = writeln!(rows, ",{}", genome.0.summary());
    }
    if let Err(e) = recorder
        .organism_rows(&rows)
        .and_then(|()| recorder.curve_rows(&curves))
        .and_then(|()| recorder.probe_rows(&probes))
    {
        failure.0 = Some(e);
    }
}

/// Appends the evaluation suites' scores to `metrics.csv`: one row per
/// organism, suite and metric.
pub fn write_metric_rows(
    generation: Res<Generation>,
    evaluation: Res<Evaluation>,
    scores: Res<SuiteScores>,
    mut recorder: ResMut<Recorder>,
    mut failure: ResMut<Failure>,
) {
    if scores.0.is_empty() {
        return;
    }
    let mut rows = String::with_capacity(scores.0.len() * 48);
    for (id, suites) in &scores.0 {
        for (call, values) in evaluation.suites.iter().zip(suites) {
            for (metric, v) in call.instance.offering().metrics.iter().zip(values) {
                let _ = writeln!(
                    rows,
                    "{id},{},{},{},{v}",
                    generation.0, call.label, metric.name
                );
            }
        }
    }
    if let Err(e) = recorder.metric_rows(&rows) {
        failure.0 = Some(e);
    }
}

/// Updates the best values so far and checks the stopping criteria.
pub fn track_progress(
    generation: Res<Generation>,
    objectives: Res<Objectives>,
    scenario: Res<ScenarioRes>,
    summary: Res<GenerationStats>,
    mut progress: ResMut<Progress>,
) {
    let g = generation.0;
    if progress.best.len() != objectives.0.len() {
        progress.best = vec![f64::NAN; objectives.0.len()];
    }
    for (k, (objective, s)) in objectives.0.iter().zip(&summary.summaries).enumerate() {
        let improved = !s.best.is_nan()
            && (progress.best[k].is_nan() || objective.direction.better(s.best, progress.best[k]));
        if improved {
            progress.best[k] = s.best;
            if k == 0 {
                progress.last_improvement = g;
            }
        }
    }
    let stop = &scenario.0.stop;
    if let (Some(target), Some(best)) = (stop.target_fitness, progress.best.first())
        && !best.is_nan()
        && !objectives.0[0].direction.better(target, *best)
    {
        progress.stop = Some(StopReason::TargetReached);
        return;
    }
    if let Some(window) = stop.stagnation
        && g - progress.last_improvement >= window
    {
        progress.stop = Some(StopReason::Stagnation);
    }
}
