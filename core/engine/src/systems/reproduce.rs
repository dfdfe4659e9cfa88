//! Reproduce set: breed offspring, put them in the place of the dead, and
//! move to the next generation.

use bevy_ecs::prelude::*;
use lineage_evo::operators::{GenomeMut, GenomeRef, copy_into, crossover_into, mutate_in};
use lineage_evo::rng::{self, Purpose};
use rand::Rng;
use rayon::prelude::*;

use crate::components::{Fitness, Genome, LearningCurve, Lineage, Weights};
use crate::resources::{
    Brood, Generation, NextOrganismId, Objectives, RandomStreams, ScenarioRes, SelectionResult,
    Threads,
};

/// Offspring bred per parallel task.
const BLOCK: usize = 512;

/// Breeds the planned offspring into the [`Brood`]'s flat buffers.
///
/// Offspring `j` gets id `next + j` and draws everything (parents,
/// crossover, mutation) from its own stream, so the brood is the same
/// whatever the thread count. Nothing is allocated per child.
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
    let plan = &selection.plan;
    let (wp, gp, n) = (spec.bits.div_ceil(64), spec.genes.len(), plan.offspring);
    let brood = &mut *brood;

    // The pool's genomes, gathered in id order (close to storage order, so
    // a sequential read) into one flat buffer. Children then read parents
    // at random from it with one memory access each instead of two
    // dependent ones (entity row, then heap block), which made breeding
    // several times slower for populations larger than the cache.
    let pool = selection.pool.len();
    brood.pool_words.resize(pool * wp, 0);
    brood.pool_reals.resize(pool * gp, 0.0);
    brood.pool_ids.resize(pool, 0);
    let gather =
        |((entities, words), (reals, ids)): ((&[Entity], &mut [u64]), (&mut [f64], &mut [u64]))| {
            for (k, &entity) in entities.iter().enumerate() {
                let (lineage, genome) = organisms
                    .get(entity)
                    .expect("selection pools hold living organisms");
                words[k * wp..(k + 1) * wp].copy_from_slice(genome.0.bits().words());
                reals[k * gp..(k + 1) * gp].copy_from_slice(genome.0.reals());
                ids[k] = lineage.id;
            }
        };
    let chunks = pool.div_ceil(BLOCK);
    let tasks: Vec<_> = selection
        .pool
        .chunks(BLOCK)
        .zip(blocks_of(&mut brood.pool_words, BLOCK * wp, chunks))
        .zip(
            blocks_of(&mut brood.pool_reals, BLOCK * gp, chunks)
                .into_iter()
                .zip(brood.pool_ids.chunks_mut(BLOCK)),
        )
        .collect();
    threads.0.install(|| tasks.into_par_iter().for_each(gather));
    // Every row is overwritten below, so stale contents need no clearing.
    brood.words.resize(n * wp, 0);
    brood.reals.resize(n * gp, 0.0);
    brood.lineages.resize(
        n,
        Lineage {
            id: 0,
            parents: [None, None],
            birth: 0,
        },
    );
    let (pool_words, pool_reals, pool_ids) =
        (&brood.pool_words, &brood.pool_reals, &brood.pool_ids);
    let parent = |position: usize| {
        let i = plan.parents[position] as usize;
        GenomeRef {
            words: &pool_words[i * wp..(i + 1) * wp],
            bits: spec.bits,
            reals: &pool_reals[i * gp..(i + 1) * gp],
        }
    };
    let bits = spec.bits;
    let first_id = next_id.0;
    // Three passes per block: draw every child's parents, then copy (or
    // cross over) their genomes, then mutate. The copies are independent
    // loads from all over the pool, which the processor overlaps when
    // nothing else sits between them.
    let breed_block =
        |(b, ((words, reals), lineages)): (usize, ((&mut [u64], &mut [f64]), &mut [Lineage]))| {
            let mut draws: Vec<(rng::Stream, usize, Option<usize>)> = (0..lineages.len())
                .map(|i| {
                    let mut rng = rng::stream(
                        streams.seed,
                        g,
                        first_id + (b * BLOCK + i) as u64,
                        Purpose::Reproduce,
                    );
                    let p1 = plan.pick(&mut rng);
                    let p2 = match pressures.crossover {
                        Some(c) if rng.random_bool(c.rate) => Some(plan.pick(&mut rng)),
                        _ => None,
                    };
                    (rng, p1, p2)
                })
                .collect();
            for (i, (rng, p1, p2)) in draws.iter_mut().enumerate() {
                let out = row(words, reals, i, wp, gp, bits);
                match (*p2, pressures.crossover) {
                    (Some(p2), Some(c)) => {
                        crossover_into(parent(*p1), parent(p2), c.kind, rng, out)
                    }
                    _ => copy_into(parent(*p1), out),
                }
            }
            let id_of = |p: usize| pool_ids[plan.parents[p] as usize];
            for (i, ((mut rng, p1, p2), lineage)) in
                draws.into_iter().zip(lineages.iter_mut()).enumerate()
            {
                mutate_in(
                    row(words, reals, i, wp, gp, bits),
                    spec,
                    &pressures.mutation,
                    &mut rng,
                );
                let id = first_id + (b * BLOCK + i) as u64;
                *lineage = Lineage {
                    id,
                    parents: [Some(id_of(p1)), p2.map(id_of)],
                    birth: g + 1,
                };
            }
        };
    let blocks = n.div_ceil(BLOCK);
    let tasks: Vec<_> = blocks_of(&mut brood.words, BLOCK * wp, blocks)
        .into_iter()
        .zip(blocks_of(&mut brood.reals, BLOCK * gp, blocks))
        .zip(brood.lineages.chunks_mut(BLOCK))
        .enumerate()
        .collect();
    if blocks <= 1 {
        tasks.into_iter().for_each(breed_block);
    } else {
        threads
            .0
            .install(|| tasks.into_par_iter().for_each(breed_block));
    }
}

/// Row `i` of a block's buffers.
fn row<'a>(
    words: &'a mut [u64],
    reals: &'a mut [f64],
    i: usize,
    wp: usize,
    gp: usize,
    bits: usize,
) -> GenomeMut<'a> {
    GenomeMut {
        words: &mut words[i * wp..(i + 1) * wp],
        bits,
        reals: &mut reals[i * gp..(i + 1) * gp],
    }
}

/// `count` consecutive blocks of `size` elements (the last may be shorter;
/// all are empty when `size` is 0).
fn blocks_of<T>(mut rest: &mut [T], size: usize, count: usize) -> Vec<&mut [T]> {
    let mut blocks = Vec::with_capacity(count);
    for _ in 0..count {
        let (block, tail) = rest.split_at_mut(size.min(rest.len()));
        blocks.push(block);
        rest = tail;
    }
    blocks
}

/// Puts the brood in the place of the organisms that did not survive.
///
/// Entities are recycled: the dead's entities receive the newborns'
/// genomes, lineage records and pending fitness, in id order, so a
/// generation moves no component between ECS tables. An organism is known
/// by its [`Lineage::id`], never by its `Entity`. Extra newborns get new
/// entities; extra dead are despawned (when the population shrinks).
pub fn place_offspring(
    mut commands: Commands,
    selection: Res<SelectionResult>,
    brood: Res<Brood>,
    scenario: Res<ScenarioRes>,
    objectives: Res<Objectives>,
    mut slots: Query<(Entity, &mut Genome, &mut Lineage, &mut Fitness)>,
    learned: Query<Entity, Or<(With<Weights>, With<LearningCurve>)>>,
) {
    let spec = &scenario.0.genome;
    let (wp, gp) = (spec.bits.div_ceil(64), spec.genes.len());
    let mut survives = vec![false; selection.pool.len()];
    for &i in &selection.plan.survivors {
        survives[i as usize] = true;
    }
    let dead: Vec<Entity> = selection
        .pool
        .iter()
        .zip(&survives)
        .filter(|(_, s)| !**s)
        .map(|(e, _)| *e)
        .collect();
    let born = brood.lineages.len();
    // Which brood row each recycled entity receives.
    let mut row_of: Vec<u32> = vec![
        u32::MAX;
        dead.iter()
            .map(|e| e.index_u32() as usize + 1)
            .max()
            .unwrap_or(0)
    ];
    for (j, entity) in dead.iter().take(born).enumerate() {
        row_of[entity.index_u32() as usize] = j as u32;
    }
    slots
        .par_iter_mut()
        .for_each(|(entity, mut genome, mut slot, mut fitness)| {
            let Some(&j) = row_of.get(entity.index_u32() as usize) else {
                return;
            };
            if j == u32::MAX {
                return;
            }
            let j = j as usize;
            let view = genome.0.as_mut();
            view.words
                .copy_from_slice(&brood.words[j * wp..(j + 1) * wp]);
            view.reals
                .copy_from_slice(&brood.reals[j * gp..(j + 1) * gp]);
            *slot = brood.lineages[j];
            fitness.values.fill(f64::NAN);
            fitness.evaluated_at = None;
        });
    // Learned state belongs to the dead organism, not to the newborn.
    for entity in &learned {
        if row_of
            .get(entity.index_u32() as usize)
            .is_some_and(|&j| j != u32::MAX)
        {
            commands.entity(entity).remove::<(Weights, LearningCurve)>();
        }
    }
    for j in dead.len()..born {
        let bits = lineage_evo::BitString::from_words(
            brood.words[j * wp..(j + 1) * wp].to_vec(),
            spec.bits,
        );
        let genome = Genome(lineage_evo::Genome::new(
            bits,
            brood.reals[j * gp..(j + 1) * gp].to_vec(),
        ));
        commands.spawn((
            genome,
            brood.lineages[j],
            Fitness::pending(objectives.0.len()),
        ));
    }
    for &entity in dead.iter().skip(born) {
        commands.entity(entity).despawn();
    }
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
