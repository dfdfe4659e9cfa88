//! Develop and Learn sets, and what offspring inherit.
//!
//! - [`learn_lifetimes`] (Learn): every organism whose fitness is pending
//!   lives its lifetime: birth weights and masks developed from its genome
//!   or from what it inherited, data from the environment, training, a
//!   learning curve, and the weights the run keeps ([`KeptWeights`]);
//! - [`capture_inheritance`] and [`attach_inheritance`] (Reproduce): under
//!   Lamarckian and pruning inheritance, a child receives its first
//!   parent's learned weights and masks before the parent's entity is
//!   recycled.
//!
//! All of them do nothing in a scenario without `[lifetime]`.

use std::collections::HashMap;
use std::sync::Arc;

use bevy_ecs::prelude::*;
use lineage_evo::rng::{Purpose, stream};
use lineage_learn::Job;
use lineage_learn::data::{Examples, minibatch_indices};
use lineage_scenario::{Inheritance, LIFETIMES_PER_THREAD, LifetimeConfig};
use rand::Rng as _;
use rayon::prelude::*;

use crate::components::{
    Fitness, Genome, Inherited, LearningCurve, Lineage, Masks, OrganismId, Params, ProbeRecord,
    Weights,
};
use crate::develop;
use crate::error::EngineError;
use crate::resources::{
    Brood, EnvironmentState, Failure, Generation, KeptWeights, RandomStreams, ScenarioRes, Threads,
};

/// The lifetime settings in force in the current phase.
pub(super) fn config<'a>(
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

/// Runs the lifetime of every organism whose fitness is pending. A
/// lifetime starts with development: birth weights and masks from the
/// genome (from the development stream of the organism's birth
/// generation), from what it inherited, or the birth weights it kept from
/// an earlier lifetime.
pub fn learn_lifetimes(
    mut commands: Commands,
    scenario: Res<ScenarioRes>,
    env: Res<EnvironmentState>,
    generation: Res<Generation>,
    streams: Res<RandomStreams>,
    threads: Res<Threads>,
    kept: Res<KeptWeights>,
    mut failure: ResMut<Failure>,
    organisms: Query<(
        Entity,
        &Lineage,
        &Genome,
        &Fitness,
        Option<&Inherited>,
        Option<&Weights>,
    )>,
) {
    let Some(cfg) = config(&scenario, &env) else {
        return;
    };
    let mut todo: Vec<Learner<'_>> = organisms
        .iter()
        .filter(|(_, _, _, f, _, _)| f.is_pending())
        .map(|(entity, lineage, genome, _, inherited, weights)| Learner {
            entity,
            lineage,
            genome,
            inherited,
            weights,
        })
        .collect();
    if todo.is_empty() {
        return;
    }
    todo.sort_by_key(|l| l.lineage.id);
    let g = generation.0;
    let device = match cfg.device.device() {
        Ok(d) => d,
        Err(e) => {
            failure.0 = Some(EngineError::Learning {
                generation: g,
                message: e.to_string(),
            });
            return;
        }
    };
    let signs = develop::signs(cfg);
    // The environment's probe sets, the same for every organism.
    let probes = cfg.environment.env.probe_sets();
    // Lifetimes stream: a few per worker thread at a time are developed,
    // given their data, learn and keep what later stages need (the weights
    // the run keeps, the curve, probe records, the shared held-out set),
    // and their birth weights and training data are dropped before the
    // next ones are drawn, so what is held at once grows with the threads,
    // not with the population. Each lifetime is a pure function of its
    // organism, so the grouping changes nothing else.
    let mut group = threads.0.current_num_threads().max(1) * LIFETIMES_PER_THREAD;
    let path = cfg
        .path
        .unwrap_or_else(|| lineage_learn::path_for(&cfg.model, &device));
    if path == lineage_learn::Path::Batched {
        // The batched path (by default every built-in family on CUDA)
        // stacks a group's organisms on the device: a group is as many as
        // its memory budget holds (it cuts them again by their data).
        let budget = lineage_learn::batched::memory_budget(&device);
        let rows = lineage_learn::batched::Rows {
            batch: cfg.life.batch,
            steps: lineage_learn::batched::steps_of(&cfg.task),
        };
        let one = lineage_learn::batched::organism_bytes(&cfg.model, rows, 0).max(1);
        group = group.max(budget / one);
    }
    let context = GroupContext {
        cfg,
        seed: streams.seed,
        generation: g,
        device: &device,
        signs: &signs,
        probes: &probes,
        threads: &threads,
        kept: *kept,
        heldout: None,
    };
    for part in todo.chunks(group) {
        match learn_group(&context, part) {
            Ok(results) => {
                for (learner, (weights, curve)) in part.iter().zip(results) {
                    let mut entity = commands.entity(learner.entity);
                    entity.remove::<Inherited>().insert(curve);
                    match weights {
                        Some(w) => entity.insert(w),
                        None => entity.remove::<Weights>(),
                    };
                }
            }
            Err(e) => {
                failure.0 = Some(e);
                return;
            }
        }
    }
}

/// One pending organism, as learning reads it.
pub(super) struct Learner<'w> {
    pub(super) entity: Entity,
    pub(super) lineage: &'w Lineage,
    pub(super) genome: &'w Genome,
    pub(super) inherited: Option<&'w Inherited>,
    pub(super) weights: Option<&'w Weights>,
}

/// What every lifetime of a generation shares.
pub(super) struct GroupContext<'a> {
    pub(super) cfg: &'a LifetimeConfig,
    pub(super) seed: u64,
    /// The generation whose streams the lifetimes draw their data from.
    pub(super) generation: u32,
    pub(super) device: &'a candle_core::Device,
    pub(super) signs: &'a [Option<Vec<f32>>],
    pub(super) probes: &'a [lineage_env::ProbeSet],
    pub(super) threads: &'a Threads,
    pub(super) kept: KeptWeights,
    /// A held-out set that replaces the environment's (the fresh one a
    /// re-scored organism is scored on); the training is unchanged.
    pub(super) heldout: Option<Arc<lineage_env::Batch>>,
}

/// An organism's birth weights and masks: those it kept, else developed
/// from its genome (and what it inherited) with the development stream of
/// its birth generation, which is the generation it first develops in, so
/// developing again gives the same weights.
pub fn birth_of(
    cfg: &LifetimeConfig,
    seed: u64,
    lineage: &Lineage,
    genome: &lineage_evo::Genome,
    inherited: Option<&Inherited>,
    weights: Option<&Weights>,
) -> Result<develop::Birth, String> {
    if let Some(w) = weights
        && let Some(birth) = &w.birth
    {
        let lens = cfg
            .model
            .params()
            .iter()
            .map(|p| p.len())
            .collect::<Vec<_>>();
        return Ok((birth.parts(lens), w.masks.values()));
    }
    let mut rng = stream(seed, lineage.birth, lineage.id, Purpose::Develop);
    let inherited = inherited.map(|i| (i.learned.as_slice(), i.masks.as_slice()));
    develop::develop(cfg, genome, inherited, &mut rng)
}

/// Runs the lifetimes of `part`: birth weights, their data and minibatch
/// order from each organism's learning stream, then learning; returns what
/// each organism keeps.
pub(super) fn learn_group(
    cx: &GroupContext<'_>,
    part: &[Learner<'_>],
) -> Result<Vec<(Option<Weights>, LearningCurve)>, EngineError> {
    let (cfg, g) = (cx.cfg, cx.generation);
    let fail = |message: String| EngineError::Learning {
        generation: g,
        message,
    };
    type Prepared = (
        develop::Birth,
        (lineage_env::Lifetime, Vec<u32>, lineage_learn::Hyper),
    );
    let prepared: Vec<Result<Prepared, EngineError>> = cx.threads.0.install(|| {
        part.par_iter()
            .map(|o| {
                let birth = birth_of(cfg, cx.seed, o.lineage, &o.genome.0, o.inherited, o.weights)
                    .map_err(|m| {
                        fail(format!(
                            "organism {}: development failed: {m}",
                            o.lineage.id
                        ))
                    })?;
                let life = lifetime_data(cfg, cx.seed, g, o.lineage.id, &o.genome.0).map_err(
                    |source| EngineError::Environment {
                        generation: g,
                        source,
                    },
                )?;
                Ok((birth, life))
            })
            .collect()
    });
    let mut lives = Vec::with_capacity(part.len());
    let mut births = Vec::with_capacity(part.len());
    // The first failure in organism order, whatever the thread count.
    for (o, p) in part.iter().zip(prepared) {
        let (birth, mut life) = p?;
        if let Some(heldout) = &cx.heldout {
            life.0.heldout = heldout.clone();
        }
        if Examples::of(&life.0.train, &cfg.model).is_none() {
            return Err(fail(format!(
                "organism {}: the lifetime's data hold no example this model can learn from",
                o.lineage.id
            )));
        }
        births.push(birth);
        lives.push(life);
    }
    let jobs = births
        .iter()
        .zip(&lives)
        .map(|((params, masks), (life, indices, hyper))| Job {
            params: params.clone(),
            masks: masks.clone(),
            signs: cx.signs.to_vec(),
            hyper: *hyper,
            train: &life.train,
            heldout: &life.heldout,
            probes: cx.probes,
            indices: indices.clone(),
        })
        .collect();
    let outcomes = lineage_learn::train_population(
        &cfg.model,
        &cfg.task,
        &cfg.life,
        cx.device,
        cfg.path,
        jobs,
        &cx.threads.0,
    )
    .map_err(|e| fail(e.to_string()))?;
    Ok(outcomes
        .into_iter()
        .zip(births)
        .zip(&lives)
        .map(|((outcome, (birth, masks)), (life, _, _))| {
            let weights = (cx.kept.birth || cx.kept.learned).then(|| Weights {
                birth: cx.kept.birth.then(|| Params::from_parts(&birth)),
                learned: cx.kept.learned.then(|| Params::from_parts(&outcome.params)),
                masks: Masks::from_values(&masks),
            });
            let curve = LearningCurve {
                points: outcome.curve,
                status: Some(outcome.status),
                probes: outcome
                    .probes
                    .iter()
                    .map(|p| ProbeRecord {
                        step: p.step,
                        probe: cx.probes[p.probe].name.clone(),
                        metric: p.metric.name(),
                        value: p.value,
                    })
                    .collect(),
                heldout: Some(life.heldout.clone()),
            };
            (weights, curve)
        })
        .collect())
}

/// An organism's lifetime data, minibatch order and hyper-parameters: a
/// pure function of the seed, generation, id and genome (what `lineage
/// export` regenerates); an error only from an environment a plugin
/// supplies.
pub fn lifetime_data(
    cfg: &LifetimeConfig,
    seed: u64,
    generation: u32,
    id: OrganismId,
    genome: &lineage_evo::Genome,
) -> Result<(lineage_env::Lifetime, Vec<u32>, lineage_learn::Hyper), lineage_env::EnvError> {
    let hyper = develop::hyper(cfg, genome);
    let mut rng = stream(seed, generation, id, Purpose::Learn);
    let life = cfg.environment.env.lifetime(&mut rng, cfg.budget)?;
    let examples = Examples::of(&life.train, &cfg.model).map_or(0, |e| e.count());
    let indices = if examples == 0 {
        Vec::new()
    } else {
        minibatch_indices(examples, cfg.life.batch, hyper.steps, &mut rng)
    };
    Ok((life, indices, hyper))
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
        let Some(learned) = weights.learned.as_ref() else {
            continue;
        };
        if !wanted.contains_key(&lineage.id) {
            continue;
        }
        shared.insert(
            lineage.id,
            Inherited {
                learned: Arc::new(learned.parts(cfg.model.params().iter().map(|p| p.len()))),
                masks: Arc::new(weights.masks.values()),
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
