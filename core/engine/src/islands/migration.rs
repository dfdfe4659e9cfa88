//! Migration between islands: the organisms an island sends and takes in
//! ([`emigrants`], [`immigrate`]), and `migrations.csv`, where each move is
//! recorded and which checkpoints cut back to its length on resume.

use super::*;

/// An organism on its way to another island.
#[derive(Clone, Debug)]
pub struct Migrant {
    /// Its island of origin.
    pub from_island: usize,
    /// Its id there.
    pub from_id: OrganismId,
    /// Its genome.
    pub genome: Genome,
    /// Its fitness, as its island of origin evaluated it.
    pub fitness: Fitness,
    /// The weights it kept, if any.
    pub weights: Option<Weights>,
    /// Its learning curve, if it learned.
    pub curve: Option<LearningCurve>,
}

/// The organisms of `world` ranked for `choice`: best first or worst first
/// by the first objective (invalid values worst), ties by id; or `k` drawn
/// uniformly from those in id order.
pub(super) fn chosen(
    world: &mut World,
    choice: Choice,
    k: usize,
    rng: &mut impl rand::Rng,
) -> Vec<Entity> {
    let direction = world
        .resource::<Objectives>()
        .0
        .first()
        .map(|o| o.direction);
    let mut all: Vec<(Entity, OrganismId, f64)> = world
        .query::<(Entity, &Lineage, &Fitness)>()
        .iter(world)
        .map(|(e, l, f)| {
            let utility = match (direction, f.values.first()) {
                (Some(d), Some(&v)) => d.utility(v),
                _ => f64::NEG_INFINITY,
            };
            (e, l.id, utility)
        })
        .collect();
    all.sort_by_key(|(_, id, _)| *id);
    let k = k.min(all.len());
    match choice {
        Choice::Best => {
            all.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.1.cmp(&b.1)));
            all.truncate(k);
        }
        Choice::Worst => {
            all.sort_by(|a, b| a.2.total_cmp(&b.2).then(a.1.cmp(&b.1)));
            all.truncate(k);
        }
        Choice::Random => {
            let picks = rand::seq::index::sample(rng, all.len(), k).into_vec();
            all = picks.into_iter().map(|i| all[i]).collect();
        }
    }
    all.into_iter().map(|(e, _, _)| e).collect()
}

/// Copies of `k` organisms of island `island`'s run, chosen by `choice`.
pub fn emigrants(
    run: &mut Run,
    island: usize,
    choice: Choice,
    k: usize,
    rng: &mut impl rand::Rng,
) -> Vec<Migrant> {
    let world = run.world_mut();
    chosen(world, choice, k, rng)
        .into_iter()
        .map(|e| {
            let entity = world.entity(e);
            Migrant {
                from_island: island,
                from_id: entity.get::<Lineage>().map_or(0, |l| l.id),
                genome: entity
                    .get::<Genome>()
                    .cloned()
                    .expect("an organism has a genome"),
                fitness: entity
                    .get::<Fitness>()
                    .cloned()
                    .expect("an organism has a fitness"),
                weights: entity.get::<Weights>().cloned(),
                // What a checkpoint keeps of the curve: probes and held-out
                // data serve the evaluation, which is behind it.
                curve: entity.get::<LearningCurve>().map(|c| LearningCurve {
                    points: c.points.clone(),
                    status: c.status,
                    probes: Vec::new(),
                    heldout: None,
                }),
            }
        })
        .collect()
}

/// Puts `arrivals` in place of as many of the run's organisms, chosen by
/// `replace` (at most all of them; arrivals beyond are dropped). Returns
/// each arrival that stayed with its new id, in order.
pub fn immigrate(
    run: &mut Run,
    arrivals: Vec<Migrant>,
    replace: Choice,
    rng: &mut impl rand::Rng,
) -> Vec<(Migrant, OrganismId)> {
    let world = run.world_mut();
    let victims = chosen(world, replace, arrivals.len(), rng);
    let born = world.resource::<Generation>().0;
    let mut next = world.resource::<NextOrganismId>().0;
    let mut placed = Vec::with_capacity(victims.len());
    for (victim, migrant) in victims.into_iter().zip(arrivals) {
        let id = next;
        next += 1;
        let mut entity = world.entity_mut(victim);
        entity.insert((
            migrant.genome.clone(),
            migrant.fitness.clone(),
            Lineage {
                id,
                parents: [None, None],
                birth: born,
            },
        ));
        match &migrant.weights {
            Some(w) => entity.insert(w.clone()),
            None => entity.remove::<Weights>(),
        };
        match &migrant.curve {
            Some(c) => entity.insert(c.clone()),
            None => entity.remove::<LearningCurve>(),
        };
        placed.push((migrant, id));
    }
    world.resource_mut::<NextOrganismId>().0 = next;
    placed
}

/// `checkpoints/gen-NNNNNN/` at the run's root: the length of
/// `migrations.csv` when the islands' checkpoints of that generation were
/// handed over.
pub(super) const MIGRATIONS_LEN: &str = "migrations.len";

/// `migrations.csv`, a table of the recorder's kind.
pub(super) struct Migrations(crate::recorder::Table);

impl Migrations {
    const HEADER: &str = "generation,from_island,from_id,to_island,to_id";

    pub(super) fn create(root: &Path) -> Result<Migrations, EngineError> {
        crate::recorder::Table::create(root.join(MIGRATIONS), Self::HEADER).map(Migrations)
    }

    /// Opens the table, cut back to `len` bytes.
    pub(super) fn reopen(root: &Path, len: u64) -> Result<Migrations, EngineError> {
        crate::recorder::Table::reopen(root.join(MIGRATIONS), len).map(Migrations)
    }

    pub(super) fn append(&mut self, rows: &str) -> Result<(), EngineError> {
        self.0.append(rows)
    }

    /// Syncs the table and records its length as of generation `g`'s
    /// checkpoints.
    pub(super) fn checkpoint(&mut self, root: &Path, g: u32) -> Result<(), EngineError> {
        self.0.hand_over()?.sync()?;
        let dir = crate::checkpoint::dir_for(root, g);
        let tmp = dir.with_extension("tmp");
        std::fs::create_dir_all(&tmp).map_err(EngineError::io("cannot create", &tmp))?;
        crate::checkpoint::write_synced(
            &tmp.join(MIGRATIONS_LEN),
            self.0.len.to_string().as_bytes(),
        )?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(EngineError::io("cannot remove", &dir))?;
        }
        std::fs::rename(&tmp, &dir).map_err(EngineError::io("cannot move checkpoint into", &dir))
    }
}
