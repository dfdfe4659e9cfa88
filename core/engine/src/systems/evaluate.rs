//! Evaluate set: fitness functions score every organism whose fitness is
//! pending, as one batch.

use bevy_ecs::prelude::*;

use crate::components::{Fitness, Genome, Lineage};
use crate::error::EngineError;
use crate::resources::{EnvironmentState, Evaluators, Failure, Generation, Threads};

/// Scores the pending organisms with the current phase's fitness function.
pub fn evaluate_fitness(
    generation: Res<Generation>,
    env: Res<EnvironmentState>,
    evaluators: Res<Evaluators>,
    threads: Res<Threads>,
    mut failure: ResMut<Failure>,
    mut organisms: Query<(&Lineage, &Genome, &mut Fitness)>,
) {
    let mut pending: Vec<_> = organisms
        .iter_mut()
        .filter(|(_, _, f)| f.is_pending())
        .collect();
    if pending.is_empty() {
        return;
    }
    pending.sort_by_key(|(lineage, _, _)| lineage.id);
    // Lifetime fitness functions are scored by `score_lifetimes`.
    let Some(function) = &evaluators.0[env.phase] else {
        return;
    };
    let m = function.objectives().len();
    let mut scores = vec![f64::NAN; pending.len() * m];
    let result = {
        let genomes: Vec<&lineage_evo::Genome> = pending.iter().map(|(_, g, _)| &g.0).collect();
        threads
            .0
            .install(|| function.evaluate(&genomes, &mut scores))
    };
    if let Err(source) = result {
        failure.0 = Some(EngineError::Fitness {
            generation: generation.0,
            source,
        });
        return;
    }
    for ((_, _, mut fitness), values) in pending.into_iter().zip(scores.chunks_exact(m)) {
        fitness.values.copy_from_slice(values);
        fitness.evaluated_at = Some(generation.0);
    }
}
