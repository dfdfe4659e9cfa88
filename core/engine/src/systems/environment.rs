//! Environment set: the environment schedule's changes take effect.

use bevy_ecs::prelude::*;

use crate::components::Fitness;
use crate::resources::{EnvironmentState, Generation, ScenarioRes};

/// Moves to the phase of the environment schedule that applies to this
/// generation, noting whether it changed.
pub fn apply_environment_changes(
    generation: Res<Generation>,
    scenario: Res<ScenarioRes>,
    mut env: ResMut<EnvironmentState>,
) {
    let phase = scenario.0.phase_index(generation.0);
    let changed = phase != env.phase;
    if changed || env.changed {
        *env = EnvironmentState { phase, changed };
    }
}

/// After a change of environment, survivors' fitness was measured under the
/// old one: mark it pending so that they are evaluated again.
pub fn invalidate_stale_fitness(env: Res<EnvironmentState>, mut fitness: Query<&mut Fitness>) {
    if !env.changed {
        return;
    }
    for mut f in &mut fitness {
        f.evaluated_at = None;
    }
}
