//! The island model in one process: one [`Run`] per island, each in its
//! own folder `islands/island-K/` under the run directory, stepped in
//! lockstep; every `migration_interval` generations migrants move between
//! them.
//!
//! A generation is two halves ([`Run::evaluate_generation`],
//! [`Run::breed_generation`]). Between them every island has evaluated its
//! organisms, and the exchange runs in island order: each island `i` sends
//! to each of its targets (`Topology::targets`, a random topology drawn
//! from `(seed, g, i, Topology)`) `migrants` copies of organisms chosen
//! among its own (`best` or from `(seed, g, i * islands + target,
//! Emigrate)`); all emigrants are chosen before any arrives. Then each
//! island takes its arrivals, in the order they were sent, in place of as
//! many of its own organisms (`worst`, or from `(seed, g, island,
//! Immigrate)`), at most all of them. An arrival keeps its genome, its
//! fitness (from its island of origin), its kept weights and curve, and
//! gets a new id in its new island; `migrations.csv` records where it came
//! from. Selection then sees it like any other organism.
//!
//! Every island's streams derive from its own seed
//! (`lineage_evo::rng::island_seed`), the exchange's from the run's seed;
//! nothing depends on how islands are scheduled. The archipelago stops
//! when any island's stop criterion holds.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bevy_ecs::prelude::*;
use lineage_evo::rng::{Purpose, stream};
use lineage_scenario::{Choice, Islands, Scenario};

use crate::components::{Fitness, Genome, LearningCurve, Lineage, OrganismId, Weights};
use crate::error::EngineError;
use crate::resources::{Generation, NextOrganismId, Objectives};
use crate::{GenerationReport, Run, RunOptions};

/// The run-wide table of migrations.
pub const MIGRATIONS: &str = "migrations.csv";

/// The folder of island `island`, relative to the run directory.
pub fn island_dir(island: usize) -> String {
    format!("islands/island-{island}")
}

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
fn chosen(world: &mut World, choice: Choice, k: usize, rng: &mut impl rand::Rng) -> Vec<Entity> {
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
                curve: entity.get::<LearningCurve>().cloned(),
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

/// Runs the island model of `scenario` in this process; returns the run
/// directory. `on_generation` hears each island's report as its
/// generation ends.
pub fn run_islands(
    scenario: &Scenario,
    options: &RunOptions,
    on_generation: impl FnMut(usize, &GenerationReport),
) -> Result<PathBuf, EngineError> {
    let islands = scenario
        .islands
        .as_ref()
        .expect("run_islands is given a scenario with [islands]");
    let root = crate::run::output_dir(options.out.as_deref(), &scenario.name)?;
    std::fs::create_dir_all(root.join("checkpoints"))
        .map_err(EngineError::io("cannot create", &root))?;
    crate::checkpoint::write_synced(
        &root.join(crate::SCENARIO_FILE),
        scenario.resolved_toml.as_bytes(),
    )?;
    let mut runs = Vec::with_capacity(islands.count);
    for (island, s) in islands.scenarios.iter().enumerate() {
        let options = RunOptions {
            out: Some(root.join(island_dir(island))),
            threads: options.threads,
        };
        runs.push(Run::start(s.clone(), &options)?);
    }
    let mut migrations = Migrations::create(&root)?;
    migrations.checkpoint(&root, 0)?;
    drive(&root, islands, scenario, runs, migrations, on_generation)
}

/// What [`resume_islands`] found.
pub enum ResumedIslands {
    /// The run went on and ended; its directory.
    Ran(PathBuf),
    /// The run had ended at this generation; nothing was run and no record
    /// changed.
    Finished(u32),
}

/// Resumes the island model in `root` from the latest generation every
/// island has a checkpoint of, and runs it to its end (or to
/// `generations`). The records come out byte for byte as an uninterrupted
/// run's.
pub fn resume_islands(
    root: &Path,
    generations: Option<u32>,
    threads: usize,
    on_generation: impl FnMut(usize, &GenerationReport),
) -> Result<ResumedIslands, EngineError> {
    let bad = |message: String| EngineError::BadRunDir {
        path: root.to_path_buf(),
        message,
    };
    let scenario = lineage_scenario::load(&root.join(crate::SCENARIO_FILE), &Default::default())?;
    let islands = scenario
        .islands
        .as_ref()
        .ok_or_else(|| bad("its scenario.toml has no [islands]".into()))?;
    // The latest generation that the run recorded and every island holds.
    let mut recorded = crate::checkpoint::all(root)?;
    recorded.reverse();
    let mut found = None;
    for record in recorded {
        let Some(g) = crate::checkpoint::generation_of(&record) else {
            continue;
        };
        let everywhere = (0..islands.count).all(|i| {
            crate::checkpoint::all(&root.join(island_dir(i))).is_ok_and(|all| {
                all.iter()
                    .any(|p| crate::checkpoint::generation_of(p) == Some(g))
            })
        });
        if everywhere {
            found = Some((g, record));
            break;
        }
    }
    let Some((g, record)) = found else {
        return Err(bad(
            "holds no generation that every island has a checkpoint of: start the run again".into(),
        ));
    };
    let len: u64 = std::fs::read_to_string(record.join(MIGRATIONS_LEN))
        .map_err(EngineError::io("cannot read", record.join(MIGRATIONS_LEN)))?
        .trim()
        .parse()
        .map_err(|_| bad(format!("{} is damaged", record.display())))?;
    // A run that had ended is left exactly as it is: no island is resumed
    // (which would note a session in its manifest) when one had stopped.
    for (island, s) in islands.scenarios.iter().enumerate() {
        let state = crate::checkpoint::load_state(&crate::checkpoint::dir_for(
            &root.join(island_dir(island)),
            g,
        ))?;
        if state.progress.stop.is_some() || generations.unwrap_or(s.generations) <= g {
            return Ok(ResumedIslands::Finished(g));
        }
    }
    let mut runs = Vec::with_capacity(islands.count);
    for island in 0..islands.count {
        match Run::resume_at(
            &root.join(island_dir(island)),
            Some(g),
            generations,
            threads,
        )? {
            crate::Resumed::Running(run) => runs.push(*run),
            crate::Resumed::Finished(_) => return Ok(ResumedIslands::Finished(g)),
        }
    }
    let migrations = Migrations::reopen(root, len)?;
    drive(root, islands, &scenario, runs, migrations, on_generation).map(ResumedIslands::Ran)
}

/// `checkpoints/gen-NNNNNN/` at the run's root: the length of
/// `migrations.csv` when the islands' checkpoints of that generation were
/// handed over.
const MIGRATIONS_LEN: &str = "migrations.len";

/// `migrations.csv`, a table of the recorder's kind.
struct Migrations(crate::recorder::Table);

impl Migrations {
    const HEADER: &str = "generation,from_island,from_id,to_island,to_id";

    fn create(root: &Path) -> Result<Migrations, EngineError> {
        crate::recorder::Table::create(root.join(MIGRATIONS), Self::HEADER).map(Migrations)
    }

    /// Opens the table, cut back to `len` bytes.
    fn reopen(root: &Path, len: u64) -> Result<Migrations, EngineError> {
        crate::recorder::Table::reopen(root.join(MIGRATIONS), len).map(Migrations)
    }

    fn append(&mut self, rows: &str) -> Result<(), EngineError> {
        self.0.append(rows)
    }

    /// Syncs the table and records its length as of generation `g`'s
    /// checkpoints.
    fn checkpoint(&mut self, root: &Path, g: u32) -> Result<(), EngineError> {
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

/// Steps the islands in lockstep to their end, exchanging migrants, and
/// records the migrations table's length at every checkpoint.
fn drive(
    root: &Path,
    islands: &Islands,
    scenario: &Scenario,
    mut runs: Vec<Run>,
    mut migrations: Migrations,
    mut on_generation: impl FnMut(usize, &GenerationReport),
) -> Result<PathBuf, EngineError> {
    let every = islands.scenarios[0].checkpoint_every;
    while !runs.iter().any(Run::is_done) {
        let g = runs[0].generation();
        for run in &mut runs {
            run.evaluate_generation()?;
        }
        if (g + 1).is_multiple_of(islands.migration_interval) {
            let rows = exchange(islands, scenario.seed, g, &mut runs);
            migrations.append(&rows)?;
        }
        for (island, run) in runs.iter_mut().enumerate() {
            let report = run.breed_generation()?;
            on_generation(island, &report);
        }
        // The islands checkpoint at the same generations (they share
        // `checkpoint_every`, and stop together).
        let completed = g + 1;
        if (every > 0 && completed.is_multiple_of(every)) || runs.iter().any(Run::is_done) {
            migrations.checkpoint(root, completed)?;
        }
    }
    for run in runs {
        run.finish()?;
    }
    Ok(root.to_path_buf())
}

/// One exchange at generation `g`; returns its `migrations.csv` rows.
fn exchange(islands: &Islands, seed: u64, g: u32, runs: &mut [Run]) -> String {
    let n = islands.count;
    let mut inbox: Vec<Vec<Migrant>> = vec![Vec::new(); n];
    for (island, run) in runs.iter_mut().enumerate() {
        let mut topology = stream(seed, g, island as u64, Purpose::Topology);
        for target in islands.topology.targets(island, n, &mut topology) {
            let mut rng = stream(seed, g, (island * n + target) as u64, Purpose::Emigrate);
            let sent = emigrants(run, island, islands.emigrants, islands.migrants, &mut rng);
            inbox[target].extend(sent);
        }
    }
    let mut rows = String::new();
    for (island, arrivals) in inbox.into_iter().enumerate() {
        let mut rng = stream(seed, g, island as u64, Purpose::Immigrate);
        for (m, id) in immigrate(&mut runs[island], arrivals, islands.replace, &mut rng) {
            let _ = writeln!(rows, "{g},{},{},{island},{id}", m.from_island, m.from_id);
        }
    }
    rows
}

/// True when `dir` is the run directory of an island model.
pub fn is_islands_dir(dir: &Path) -> bool {
    dir.join(MIGRATIONS).exists()
}
