//! Develop and Learn sets, and what offspring inherit.
//!
//! - [`develop_newborns`] (Develop): newborns get birth weights and masks
//!   from their genome, or from what they inherited;
//! - [`learn_lifetimes`] (Learn): every organism whose fitness is pending
//!   lives its lifetime: data from the environment, training from its birth
//!   weights, a learning curve;
//! - [`capture_inheritance`] and [`attach_inheritance`] (Reproduce): under
//!   Lamarckian and pruning inheritance, a child receives its first
//!   parent's learned weights and masks before the parent's entity is
//!   recycled.
//!
//! All of them do nothing in a scenario without `[lifetime]`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bevy_ecs::prelude::*;
use candle_core::{Device, Tensor};
use lineage_evo::rng::{Purpose, stream};
use lineage_learn::Job;
use lineage_learn::data::{Examples, minibatch_indices};
use lineage_scenario::{Inheritance, LifetimeConfig};
use rand::Rng as _;
use rayon::prelude::*;

use crate::components::{
    Fitness, Genome, Inherited, LearningCurve, Lineage, OrganismId, ProbeRecord, Weights,
};
use crate::develop;
use crate::error::EngineError;
use crate::resources::{
    Brood, EnvironmentState, Failure, Generation, RandomStreams, ScenarioRes, Threads,
};

/// The lifetime settings in force in the current phase.
fn config<'a>(
    scenario: &'a ScenarioRes,
    env: &EnvironmentState,
) -> Option<&'a Arc<LifetimeConfig>> {
    scenario
        .0
        .phases
        .get(env.phase)?
        .pressures
        .lifetime
        .as_ref()
}

/// Named CPU tensors from flat values in parameter order.
pub fn to_tensors(cfg: &LifetimeConfig, values: &[Vec<f32>]) -> BTreeMap<String, Tensor> {
    cfg.model
        .params()
        .iter()
        .zip(values)
        .map(|(p, v)| {
            let t = Tensor::from_slice(v, p.shape.as_slice(), &Device::Cpu)
                .expect("values have their parameter's shape");
            (p.name.clone(), t)
        })
        .collect()
}

/// Named 0/1 CPU tensors of the masked parameters.
pub fn masks_to_tensors(
    cfg: &LifetimeConfig,
    masks: &[Option<Vec<f32>>],
) -> BTreeMap<String, Tensor> {
    cfg.model
        .params()
        .iter()
        .zip(masks)
        .filter_map(|(p, m)| {
            let t = Tensor::from_slice(m.as_ref()?, p.shape.as_slice(), &Device::Cpu);
            Some((
                p.name.clone(),
                t.expect("masks have their parameter's shape"),
            ))
        })
        .collect()
}

/// Flat values in parameter order from named tensors (`None` where a name
/// is missing).
pub fn from_tensors(
    cfg: &LifetimeConfig,
    tensors: &BTreeMap<String, Tensor>,
) -> Vec<Option<Vec<f32>>> {
    cfg.model
        .params()
        .iter()
        .map(|p| {
            tensors
                .get(&p.name)
                .and_then(|t| t.flatten_all().ok()?.to_vec1::<f32>().ok())
        })
        .collect()
}

/// Gives newborns (pending organisms without weights) their birth weights.
pub fn develop_newborns(
    mut commands: Commands,
    scenario: Res<ScenarioRes>,
    env: Res<EnvironmentState>,
    generation: Res<Generation>,
    streams: Res<RandomStreams>,
    threads: Res<Threads>,
    mut failure: ResMut<Failure>,
    newborns: Query<(Entity, &Lineage, &Genome, &Fitness, Option<&Inherited>), Without<Weights>>,
) {
    let Some(cfg) = config(&scenario, &env) else {
        return;
    };
    let mut todo: Vec<_> = newborns
        .iter()
        .filter(|(_, _, _, f, _)| f.is_pending())
        .collect();
    if todo.is_empty() {
        return;
    }
    todo.sort_by_key(|(_, l, _, _, _)| l.id);
    let g = generation.0;
    let developed: Vec<Result<develop::Birth, String>> = threads.0.install(|| {
        todo.par_iter()
            .map(|(_, lineage, genome, _, inherited)| {
                let mut rng = stream(streams.seed, g, lineage.id, Purpose::Develop);
                let inherited = inherited.map(|i| (i.learned.as_slice(), i.masks.as_slice()));
                develop::develop(cfg, &genome.0, inherited, &mut rng)
            })
            .collect()
    });
    for ((entity, lineage, _, _, _), birth) in todo.into_iter().zip(developed) {
        match birth {
            Ok((weights, masks)) => {
                let masks = masks_to_tensors(cfg, &masks);
                commands.entity(entity).remove::<Inherited>().insert((
                    Weights {
                        birth: to_tensors(cfg, &weights),
                        learned: BTreeMap::new(),
                        masks,
                    },
                    LearningCurve::default(),
                ));
            }
            Err(message) => {
                failure.0 = Some(EngineError::Learning {
                    generation: g,
                    message: format!("organism {}: development failed: {message}", lineage.id),
                });
                return;
            }
        }
    }
}

/// Runs the lifetime of every organism whose fitness is pending.
pub fn learn_lifetimes(
    scenario: Res<ScenarioRes>,
    env: Res<EnvironmentState>,
    generation: Res<Generation>,
    streams: Res<RandomStreams>,
    threads: Res<Threads>,
    mut failure: ResMut<Failure>,
    mut organisms: Query<(
        &Lineage,
        &Genome,
        &Fitness,
        &mut Weights,
        &mut LearningCurve,
    )>,
) {
    let Some(cfg) = config(&scenario, &env) else {
        return;
    };
    let mut todo: Vec<_> = organisms
        .iter_mut()
        .filter(|(_, _, f, _, _)| f.is_pending())
        .collect();
    if todo.is_empty() {
        return;
    }
    todo.sort_by_key(|(l, _, _, _, _)| l.id);
    let g = generation.0;
    let fail = |message: String| EngineError::Learning {
        generation: g,
        message,
    };
    let device = match cfg.device.device() {
        Ok(d) => d,
        Err(e) => {
            failure.0 = Some(fail(e.to_string()));
            return;
        }
    };
    let signs = develop::signs(cfg);
    // The environment's probe sets, the same for every organism.
    let probes = cfg.environment.env.probe_sets();
    // Lifetimes stream: a few per worker thread at a time are given their
    // data, learn and keep what later stages need (weights, curve, probe
    // records, the shared held-out set), and their training data are
    // dropped before the next ones are drawn, so the data held at once
    // grow with the threads, not with the population. Each lifetime is a
    // pure function of its organism, so the grouping changes nothing else.
    let group = threads.0.current_num_threads().max(1) * LIFETIMES_PER_THREAD;
    for part in todo.chunks_mut(group) {
        if let Err(e) = learn_group(
            cfg,
            streams.seed,
            g,
            &device,
            &signs,
            &probes,
            &threads,
            part,
        ) {
            failure.0 = Some(e);
            return;
        }
    }
}

/// Lifetimes in flight per worker thread: enough that threads rarely wait
/// for the slowest lifetime of a group, few enough that their data stay
/// small.
const LIFETIMES_PER_THREAD: usize = 4;

type Learner<'w> = (
    &'w Lineage,
    &'w Genome,
    &'w Fitness,
    Mut<'w, Weights>,
    Mut<'w, LearningCurve>,
);

/// Runs the lifetimes of `part`: their data and minibatch order from each
/// organism's learning stream, then learning, then the results into the
/// organisms' components.
#[allow(clippy::too_many_arguments)]
fn learn_group(
    cfg: &LifetimeConfig,
    seed: u64,
    g: u32,
    device: &candle_core::Device,
    signs: &[Option<Vec<f32>>],
    probes: &[lineage_env::ProbeSet],
    threads: &Threads,
    part: &mut [Learner<'_>],
) -> Result<(), EngineError> {
    let fail = |message: String| EngineError::Learning {
        generation: g,
        message,
    };
    let lives: Vec<(lineage_env::Lifetime, Vec<u32>, lineage_learn::Hyper)> =
        threads.0.install(|| {
            part.par_iter()
                .map(|(lineage, genome, _, _, _)| {
                    lifetime_data(cfg, seed, g, lineage.id, &genome.0)
                })
                .collect()
        });
    let mut jobs = Vec::with_capacity(part.len());
    for ((lineage, _, _, weights, _), (life, indices, hyper)) in part.iter().zip(&lives) {
        let birth: Option<Vec<Vec<f32>>> = from_tensors(cfg, &weights.birth).into_iter().collect();
        let Some(params) = birth else {
            return Err(fail(format!(
                "organism {} has no birth weights",
                lineage.id
            )));
        };
        if Examples::of(&life.train, &cfg.model).is_none() {
            return Err(fail(format!(
                "organism {}: the lifetime's data hold no example this model can learn from",
                lineage.id
            )));
        }
        jobs.push(Job {
            params,
            masks: from_tensors(cfg, &weights.masks),
            signs: signs.to_vec(),
            hyper: *hyper,
            train: &life.train,
            heldout: &life.heldout,
            probes,
            indices: indices.clone(),
        });
    }
    let outcomes = lineage_learn::train_population(
        &cfg.model, &cfg.task, &cfg.life, device, None, jobs, &threads.0,
    )
    .map_err(|e| fail(e.to_string()))?;
    for (((_, _, _, weights, curve), outcome), (life, _, _)) in
        part.iter_mut().zip(outcomes).zip(&lives)
    {
        weights.learned = to_tensors(cfg, &outcome.params);
        curve.points = outcome.curve;
        curve.probes = outcome
            .probes
            .iter()
            .map(|p| ProbeRecord {
                step: p.step,
                probe: probes[p.probe].name.clone(),
                metric: p.metric.name(),
                value: p.value,
            })
            .collect();
        curve.status = Some(outcome.status);
        curve.heldout = Some(life.heldout.clone());
    }
    Ok(())
}

/// An organism's lifetime data, minibatch order and hyper-parameters: a
/// pure function of the seed, generation, id and genome (what `lineage
/// export` regenerates).
pub fn lifetime_data(
    cfg: &LifetimeConfig,
    seed: u64,
    generation: u32,
    id: OrganismId,
    genome: &lineage_evo::Genome,
) -> (lineage_env::Lifetime, Vec<u32>, lineage_learn::Hyper) {
    let hyper = develop::hyper(cfg, genome);
    let mut rng = stream(seed, generation, id, Purpose::Learn);
    let life = cfg.environment.env.lifetime(&mut rng, cfg.budget);
    let examples = Examples::of(&life.train, &cfg.model).map_or(0, |e| e.count());
    let indices = if examples == 0 {
        Vec::new()
    } else {
        minibatch_indices(examples, cfg.life.batch, hyper.steps, &mut rng)
    };
    (life, indices, hyper)
}

/// Mutates newborns' connectome genomes: rewiring, sign flips and density
/// changes, per connectome matrix, from each newborn's rewiring stream.
pub fn rewire_connectomes(
    scenario: Res<ScenarioRes>,
    env: Res<EnvironmentState>,
    generation: Res<Generation>,
    streams: Res<RandomStreams>,
    mut organisms: Query<(&Lineage, &mut Genome)>,
) {
    let Some(cfg) = config(&scenario, &env) else {
        return;
    };
    let rw = cfg.rewire;
    if rw.edges == 0 && rw.flips == 0 && rw.density_sigma == 0.0 {
        return;
    }
    let born = generation.0 + 1;
    organisms.par_iter_mut().for_each(|(lineage, mut genome)| {
        if lineage.birth != born || lineage.parents[0].is_none() {
            return;
        }
        let mut rng = stream(streams.seed, generation.0, lineage.id, Purpose::Rewire);
        let bits = genome.0.bits_mut();
        for c in &cfg.connectome {
            let region = lineage_develop::rewire::Region {
                mask: c.mask,
                signs: c.signs,
                len: c.len,
            };
            if rw.density_sigma > 0.0 {
                let edges = (0..c.len).filter(|&k| bits.get(c.mask + k)).count();
                let factor =
                    (rw.density_sigma * rng.sample::<f64, _>(rand_distr::StandardNormal)).exp();
                let target = (edges as f64 * factor).round().max(1.0) as usize;
                lineage_develop::rewire::change_density(bits, region, target, &mut rng);
            }
            lineage_develop::rewire::rewire(bits, region, rw.edges, &mut rng);
            lineage_develop::rewire::flip_signs(bits, region, rw.flips, &mut rng);
        }
    });
}

/// Children waiting for what their first parent passes on, by child id.
#[derive(Resource, Default)]
pub struct PendingInheritance(pub HashMap<OrganismId, Inherited>);

/// Under Lamarckian or pruning inheritance, copies each newborn's first
/// parent's learned weights and masks before parents' entities are
/// recycled.
pub fn capture_inheritance(
    scenario: Res<ScenarioRes>,
    env: Res<EnvironmentState>,
    brood: Res<Brood>,
    mut pending: ResMut<PendingInheritance>,
    parents: Query<(&Lineage, &Weights)>,
) {
    pending.0.clear();
    let Some(cfg) = config(&scenario, &env) else {
        return;
    };
    if cfg.inheritance == Inheritance::Darwinian || cfg.genes.weights.is_some() {
        return;
    }
    let wanted: HashMap<OrganismId, ()> = brood
        .lineages
        .iter()
        .filter_map(|l| l.parents[0])
        .map(|p| (p, ()))
        .collect();
    let mut shared: HashMap<OrganismId, Inherited> = HashMap::new();
    for (lineage, weights) in &parents {
        if !wanted.contains_key(&lineage.id) || weights.learned.is_empty() {
            continue;
        }
        let learned: Option<Vec<Vec<f32>>> =
            from_tensors(cfg, &weights.learned).into_iter().collect();
        let Some(learned) = learned else { continue };
        shared.insert(
            lineage.id,
            Inherited {
                learned: Arc::new(learned),
                masks: Arc::new(from_tensors(cfg, &weights.masks)),
            },
        );
    }
    for child in &brood.lineages {
        if let Some(inherited) = child.parents[0].and_then(|p| shared.get(&p)) {
            pending.0.insert(child.id, inherited.clone());
        }
    }
}

/// Hands the captured inheritance to the newborns.
pub fn attach_inheritance(
    mut commands: Commands,
    mut pending: ResMut<PendingInheritance>,
    newborns: Query<(Entity, &Lineage)>,
) {
    if pending.0.is_empty() {
        return;
    }
    for (entity, lineage) in &newborns {
        if let Some(inherited) = pending.0.remove(&lineage.id) {
            commands.entity(entity).insert(inherited);
        }
    }
}
