//! Select set: survivors and parents of the next generation.

use bevy_ecs::prelude::*;
use lineage_evo::selection::{Plan, Preference};

use crate::components::{Fitness, Lineage};
use crate::resources::{Generation, Objectives, ScenarioRes, SelectionResult, Threads};

/// Orders the evaluated pool and plans the next generation with the
/// selection settings that apply to it.
pub fn select_parents(
    generation: Res<Generation>,
    scenario: Res<ScenarioRes>,
    objectives: Res<Objectives>,
    threads: Res<Threads>,
    mut result: ResMut<SelectionResult>,
    organisms: Query<(Entity, &Lineage, &Fitness)>,
) {
    let mut pool: Vec<_> = organisms.iter().collect();
    pool.sort_by_key(|(_, lineage, _)| lineage.id);
    let ids: Vec<u64> = pool.iter().map(|(_, l, _)| l.id).collect();
    let fitness: Vec<f64> = pool
        .iter()
        .flat_map(|(_, _, f)| f.values.iter().copied())
        .collect();
    let preference = threads
        .0
        .install(|| Preference::new(&fitness, &objectives.0, &ids));
    let next = scenario.0.pressures_at(generation.0 + 1);
    let plan = Plan::new(
        next.selection.method,
        next.selection.elitism,
        &preference,
        next.population,
    );
    *result = SelectionResult {
        pool: pool.into_iter().map(|(e, _, _)| e).collect(),
        plan,
    };
}
