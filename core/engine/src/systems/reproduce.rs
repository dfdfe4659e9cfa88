//! Reproduce set: breed offspring, remove the dead, spawn the newborns.

use bevy_ecs::prelude::*;
use lineage_evo::operators::{crossover, mutate};
use lineage_evo::rng::{self, Purpose};
use rand::Rng;
use rayon::prelude::*;

use crate::components::{Fitness, Genome, Lineage};
use crate::resources::{
    Brood, Generation, NextOrganismId, Objectives, RandomStreams, ScenarioRes, SelectionResult,
    Threads,
};

/// Below this many offspring, breeding stays on the calling thread.
const PARALLEL_MIN: usize = 1024;

/// Breeds the planned offspring. Offspring `j` gets id `next + j` and draws
/// everything (parents, crossover, mutation) from its own stream, so the
/// brood is the same whatever the thread count.
pub fn breed_offspring(
    generation: Res<Generation>,
    scenario: Res<ScenarioRes>,
    streams: Res<RandomStreams>,
    next_id: Res<NextOrganismId>,
    selection: Res<SelectionResult>,
    threads: Res<Threads>,
    mut brood: ResMut<Brood>,
    organisms: Query<(&Lineage, &Genome)>,
) {
    let g = generation.0;
    let pressures = scenario.0.pressures_at(g + 1);
    let spec = &scenario.0.genome;
    let pool: Vec<(u64, &lineage_evo::Genome)> = selection
        .pool
        .iter()
        .map(|&e| organisms.get(e).map(|(l, genome)| (l.id, &genome.0)))
        .collect::<Result<_, _>>()
        .expect("the selection pool holds living organisms");
    let plan = &selection.plan;
    let breed = |j: usize| {
        let id = next_id.0 + j as u64;
        let mut rng = rng::stream(streams.seed, g, id, Purpose::Reproduce);
        let (id1, first) = pool[plan.pick_parent(&mut rng) as usize];
        let (mut genome, parents) = match pressures.crossover {
            Some(c) if rng.random_bool(c.rate) => {
                let (id2, second) = pool[plan.pick_parent(&mut rng) as usize];
                (
                    crossover(first, second, c.kind, &mut rng),
                    [Some(id1), Some(id2)],
                )
            }
            _ => (first.clone(), [Some(id1), None]),
        };
        mutate(&mut genome, spec, &pressures.mutation, &mut rng);
        (
            Genome(genome),
            Lineage {
                id,
                parents,
                birth: g + 1,
            },
        )
    };
    brood.0 = if plan.offspring < PARALLEL_MIN {
        (0..plan.offspring).map(breed).collect()
    } else {
        threads.0.install(|| {
            (0..plan.offspring)
                .into_par_iter()
                .with_min_len(256)
                .map(breed)
                .collect()
        })
    };
}

/// Despawns every organism of the pool that does not survive.
pub fn cull_nonsurvivors(mut commands: Commands, selection: Res<SelectionResult>) {
    let mut survives = vec![false; selection.pool.len()];
    for &i in &selection.plan.survivors {
        survives[i as usize] = true;
    }
    for (&entity, keep) in selection.pool.iter().zip(survives) {
        if !keep {
            commands.entity(entity).despawn();
        }
    }
}

/// Spawns the brood as new organisms with pending fitness.
pub fn spawn_offspring(
    mut commands: Commands,
    mut brood: ResMut<Brood>,
    objectives: Res<Objectives>,
) {
    let m = objectives.0.len();
    commands.spawn_batch(
        std::mem::take(&mut brood.0)
            .into_iter()
            .map(move |(genome, lineage)| (genome, lineage, Fitness::pending(m))),
    );
}

/// Moves the clock to the next generation.
pub fn advance_generation(
    mut generation: ResMut<Generation>,
    mut next_id: ResMut<NextOrganismId>,
    selection: Res<SelectionResult>,
) {
    generation.0 += 1;
    next_id.0 += selection.plan.offspring as u64;
}
