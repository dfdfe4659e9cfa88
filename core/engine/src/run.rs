//! The driver: creates or resumes a run, steps it one generation at a time,
//! and keeps its directory (records, checkpoints, manifest) up to date.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bevy_ecs::prelude::*;
use lineage_evo::rng::{self, Purpose};
use lineage_scenario::{RecordWeights, Scenario};
use sha2::{Digest, Sha256};

use crate::checkpoint::{self, CHECKPOINT_FORMAT, CheckpointState};
use crate::components::{Fitness, Genome, Inherited, LearningCurve, Lineage, Weights};
use crate::error::EngineError;
use crate::manifest::{self, Manifest, Session};
use crate::plugins::Evaluation;
use crate::recorder::Recorder;
use crate::resources::*;
use crate::schedule::generation_schedules;

/// The resolved scenario's file name inside a run directory.
pub const SCENARIO_FILE: &str = "scenario.toml";

/// How to start a run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The run directory; by default `runs/<name>-<UTC timestamp>`.
    pub out: Option<PathBuf>,
    /// Worker threads (0: one per core).
    pub threads: usize,
}

/// What one generation produced, for progress displays.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationReport {
    /// The generation just completed.
    pub generation: u32,
    /// Organisms in it.
    pub population: usize,
    /// Best value of each objective in this generation.
    pub best: Vec<f64>,
    /// Mean value of each objective.
    pub mean: Vec<f64>,
    /// Evaluation errors tolerated this generation (`on_error =
    /// "invalidate"`).
    pub errors: Vec<String>,
}

/// What [`Run::resume`] found.
pub enum Resumed {
    /// The run goes on.
    Running(Box<Run>),
    /// The run had ended; nothing was run and no record changed.
    Finished(Finished),
}

/// A run that has ended, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    /// The run directory.
    pub dir: PathBuf,
    /// Generations it holds.
    pub generations: u32,
    /// Why it ended.
    pub ended: Ended,
}

/// Why a run ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ended {
    /// A stop criterion fired; it still holds, whatever the generations
    /// asked for.
    Stopped(StopReason),
    /// Every generation asked for is done.
    AllDone,
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ended {
            Ended::Stopped(reason) => write!(
                f,
                "{} has finished: it stopped after {} generations ({reason}), and the criterion still holds",
                self.dir.display(),
                self.generations
            ),
            Ended::AllDone => write!(
                f,
                "{} has finished: all {} generations are done; ask for more with --generations N (N > {})",
                self.dir.display(),
                self.generations,
                self.generations
            ),
        }
    }
}

/// A run in progress.
pub struct Run {
    world: World,
    /// The generation's two halves (`schedule::FIRST_HALF`, `SECOND_HALF`).
    schedules: [Schedule; 2],
    /// When the generation in progress started, once its first half ran.
    started: Option<(Instant, EnvironmentState)>,
    dir: PathBuf,
    scenario: Arc<Scenario>,
    scenario_sha256: String,
    target: u32,
    manifest: Manifest,
    last_checkpoint: Option<u32>,
    /// Writes checkpoints while the next generation runs.
    writer: crate::writer::Writer,
    warnings: Vec<String>,
}

impl Run {
    /// Starts a new run of `scenario` in a fresh directory.
    pub fn start(scenario: Scenario, options: &RunOptions) -> Result<Run, EngineError> {
        Run::start_with(scenario, options, None)
    }

    /// Starts a new run whose founders are `founders` (genomes and what
    /// each inherits; see [`crate::conditions::founders_from`]) instead of
    /// random genomes.
    pub fn start_with(
        mut scenario: Scenario,
        options: &RunOptions,
        founders: Option<Vec<(Genome, Option<Inherited>)>>,
    ) -> Result<Run, EngineError> {
        // Plugins load before anything is written: a bad one stops the run
        // before generation 0 and leaves no directory behind.
        let (evaluation, objectives) = Evaluation::prepare(&scenario, &[], None)?;
        scenario.objectives = objectives;
        let dir = output_dir(options.out.as_deref(), &scenario.name)?;
        std::fs::create_dir_all(dir.join("checkpoints"))
            .map_err(EngineError::io("cannot create", &dir))?;
        let scenario_path = dir.join(SCENARIO_FILE);
        checkpoint::write_synced(&scenario_path, scenario.resolved_toml.as_bytes())?;
        let scenario_sha256 = sha256_hex(scenario.resolved_toml.as_bytes());
        let threads = resolve_threads(options.threads);
        let started = manifest::utc_now();
        let manifest = Manifest {
            lineage_version: env!("CARGO_PKG_VERSION").to_owned(),
            git_commit: manifest::git_commit(),
            stream_derivation: rng::STREAM_DERIVATION,
            scenario: scenario.name.clone(),
            scenario_sha256: scenario_sha256.clone(),
            seed: scenario.seed,
            threads,
            host: manifest::host_name(),
            started: started.clone(),
            finished: None,
            generations_completed: 0,
            stop_reason: None,
            sessions: vec![Session {
                command: "run".into(),
                threads,
                from_generation: 0,
                started,
                finished: None,
            }],
            cpu_features: lineage_learn::cpu_features(),
            plugins: evaluation.records.clone(),
            data_files: scenario.data_files().into_iter().map(Into::into).collect(),
            genes: scenario
                .genome
                .genes
                .iter()
                .map(|g| g.name.clone())
                .collect(),
        };
        manifest.write(&dir)?;

        let scenario = Arc::new(scenario);
        let lifetimes = scenario
            .phases
            .iter()
            .any(|p| p.pressures.lifetime.is_some());
        let probes = scenario.phases.iter().any(|p| {
            p.pressures
                .lifetime
                .as_ref()
                .is_some_and(|l| !l.environment.env.probe_sets().is_empty())
        });
        let recorder = Recorder::create(
            &dir,
            &scenario.objectives,
            scenario.record.organisms.any(),
            lifetimes,
            !scenario.suites.is_empty(),
            probes,
            scenario.rescore_best,
        )?;
        let mut world = base_world(&scenario, threads, recorder, evaluation)?;
        let m = scenario.objectives.len();
        let population = scenario.pressures_at(0).population;
        if let Some(founders) = founders {
            for (id, (genome, inherited)) in founders.into_iter().enumerate() {
                let mut founder = world.spawn((
                    genome,
                    Lineage {
                        id: id as u64,
                        parents: [None, None],
                        birth: 0,
                    },
                    Fitness::pending(m),
                ));
                if let Some(inherited) = inherited {
                    founder.insert(inherited);
                }
            }
        } else {
            world.spawn_batch((0..population as u64).map(|id| {
                let mut stream = rng::stream(scenario.seed, 0, id, Purpose::Init);
                let genome = lineage_evo::Genome::random(&scenario.genome, &mut stream);
                (
                    Genome(genome),
                    Lineage {
                        id,
                        parents: [None, None],
                        birth: 0,
                    },
                    Fitness::pending(m),
                )
            }));
        }
        world.insert_resource(NextOrganismId(population as u64));
        let target = scenario.generations;
        let mut run = Run {
            world,
            schedules: generation_schedules(),
            started: None,
            dir,
            scenario,
            scenario_sha256,
            target,
            manifest,
            last_checkpoint: None,
            writer: crate::writer::Writer::start()?,
            warnings: Vec::new(),
        };
        run.initialize_schedule()?;
        // The founders are a checkpoint too: a run killed in its first
        // generation resumes like any other (written while it runs).
        run.hand_over_checkpoint()?;
        Ok(run)
    }

    /// Resumes the run in `dir` from its latest checkpoint and continues
    /// until `generations` in all (default: the scenario's).
    ///
    /// A run that has ended (a stop criterion fired, or every generation
    /// asked for is done) is left exactly as it is and comes back as
    /// [`Resumed::Finished`]: a stop criterion still holds however many
    /// generations are asked for. The one thing written then is the
    /// manifest's closing fields, when the run was killed after its last
    /// checkpoint but before it could write them.
    pub fn resume(
        dir: &Path,
        generations: Option<u32>,
        threads: usize,
    ) -> Result<Resumed, EngineError> {
        Run::resume_at(dir, None, generations, threads, false)
    }

    /// [`Run::resume`], going on with a plugin whose library changed since
    /// the run started (a fixed plugin) when `accept_changed_plugins`: the
    /// manifest keeps the library it replaced and the generation the new
    /// one took over at, and the run warns about it.
    pub fn resume_accepting(
        dir: &Path,
        generations: Option<u32>,
        threads: usize,
        accept_changed_plugins: bool,
    ) -> Result<Resumed, EngineError> {
        Run::resume_at(dir, None, generations, threads, accept_changed_plugins)
    }

    /// [`Run::resume`] from the checkpoint that starts generation `at`
    /// (`None`: the latest), as an island model resumes every island from
    /// the latest generation they all have.
    pub fn resume_at(
        dir: &Path,
        at: Option<u32>,
        generations: Option<u32>,
        threads: usize,
        accept_changed_plugins: bool,
    ) -> Result<Resumed, EngineError> {
        let mut manifest = Manifest::read(dir)?;
        let scenario_path = dir.join(SCENARIO_FILE);
        let text = std::fs::read(&scenario_path)
            .map_err(EngineError::io("cannot read", &scenario_path))?;
        let scenario_sha256 = sha256_hex(&text);
        if scenario_sha256 != manifest.scenario_sha256 {
            return Err(EngineError::BadRunDir {
                path: scenario_path,
                message:
                    "was changed after the run started (its SHA-256 differs from the manifest's)"
                        .into(),
            });
        }
        let mut scenario = lineage_scenario::load(&scenario_path, &Default::default())?;
        for now in scenario.data_files() {
            if let Some(then) = manifest.data_files.iter().find(|f| f.path == now.path)
                && then.sha256 != now.sha256
            {
                return Err(EngineError::DataChanged {
                    path: now.path.into(),
                    recorded: then.sha256.clone(),
                    now: now.sha256,
                });
            }
        }
        let checkpoint_dir = match at {
            None => checkpoint::latest(dir)?,
            Some(g) => checkpoint::all(dir)?
                .into_iter()
                .find(|p| checkpoint::generation_of(p) == Some(g))
                .ok_or_else(|| EngineError::BadRunDir {
                    path: dir.join("checkpoints"),
                    message: format!("holds no checkpoint of generation {g}"),
                })?,
        };
        let (state, organisms) = checkpoint::load(
            &checkpoint_dir,
            scenario.genome.bits,
            scenario.genome.genes.len(),
        )?;
        if state.scenario_sha256 != scenario_sha256 || state.seed != scenario.seed {
            return Err(EngineError::BadRunDir {
                path: checkpoint_dir,
                message: "belongs to a different scenario than the run's scenario.toml".into(),
            });
        }
        let target = generations.unwrap_or(scenario.generations);
        let ended = match state.progress.stop {
            Some(reason) => Some(Ended::Stopped(reason)),
            None if target <= state.generation => Some(Ended::AllDone),
            None => None,
        };
        if let Some(ended) = ended {
            if manifest.finished.is_none() {
                close_manifest(&mut manifest, state.generation, state.progress.stop);
                manifest.write(dir)?;
            }
            return Ok(Resumed::Finished(Finished {
                dir: dir.to_owned(),
                generations: state.generation,
                ended,
            }));
        }
        // Plugins load only for a run that goes on (a finished one needs
        // none, and may be inspected on a machine without them).
        let (evaluation, objectives) = Evaluation::prepare(
            &scenario,
            &manifest.plugins,
            accept_changed_plugins.then_some(state.generation),
        )?;
        scenario.objectives = objectives;
        let mut warnings = Vec::new();
        for (now, then) in evaluation.records.iter().filter_map(|r| {
            let then = manifest.plugins.iter().find(|t| t.alias == r.alias)?;
            (then.sha256 != r.sha256).then_some((r, then))
        }) {
            warnings.push(format!(
                "plugin `{}`: its library changed since the run started (SHA-256 {} is now {}); generations from {} on are computed with the new one, as the manifest records",
                now.alias, then.sha256, now.sha256, state.generation
            ));
        }
        manifest.plugins.clone_from(&evaluation.records);
        let threads = resolve_threads(threads);
        manifest.sessions.push(Session {
            command: "resume".into(),
            threads,
            from_generation: state.generation,
            started: manifest::utc_now(),
            finished: None,
        });
        manifest.threads = threads;
        manifest.finished = None;
        let features = lineage_learn::cpu_features();
        if features != manifest.cpu_features {
            warnings.push(format!(
                "this machine's CPU features [{}] differ from those the run was computed with [{}]: learning takes other code paths, so records may differ from an uninterrupted run in the last bits",
                features.join(", "),
                manifest.cpu_features.join(", ")
            ));
            manifest.cpu_features = features;
        }
        manifest.write(dir)?;

        let scenario = Arc::new(scenario);
        let recorder = Recorder::reopen(dir, &state.tables, scenario.record.organisms.any())?;
        let mut world = base_world(&scenario, threads, recorder, evaluation)?;
        let mut learned = checkpoint::load_weights(&checkpoint_dir)?;
        for organism in organisms {
            let id = organism.1.id;
            let mut entity = world.spawn(organism);
            if let Some(state) = learned.remove(&id) {
                if let Some(w) = state.weights {
                    check_weights(&checkpoint_dir, &scenario, id, &w)?;
                    entity.insert(w);
                }
                if let Some(c) = state.curve {
                    entity.insert(c);
                }
                if let Some(i) = state.inherited {
                    entity.insert(i);
                }
            }
        }
        world.insert_resource(Generation(state.generation));
        world.insert_resource(NextOrganismId(state.next_organism_id));
        world.insert_resource(EnvironmentState {
            phase: state.environment_phase,
            changed: state.environment_changed,
        });
        world.insert_resource(state.progress);
        let from = state.generation;
        let mut run = Run {
            world,
            schedules: generation_schedules(),
            started: None,
            dir: dir.to_owned(),
            scenario,
            scenario_sha256,
            target,
            manifest,
            last_checkpoint: Some(from),
            writer: crate::writer::Writer::start()?,
            warnings,
        };
        run.initialize_schedule()?;
        Ok(Resumed::Running(Box::new(run)))
    }

    /// Builds the generation schedules for this run's world.
    fn initialize_schedule(&mut self) -> Result<(), EngineError> {
        for schedule in &mut self.schedules {
            if let Err(e) = schedule.initialize(&mut self.world) {
                return Err(EngineError::Schedule(
                    e.to_string(schedule.graph(), &self.world),
                ));
            }
        }
        Ok(())
    }

    /// What the caller should tell the user before the run goes on (for
    /// now: a resume on a machine whose CPU features differ).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Every organism alive: lineage, genome and fitness, by id.
    pub fn population(&mut self) -> Vec<(Lineage, Genome, Fitness)> {
        let mut all: Vec<_> = self
            .world
            .query::<(&Lineage, &Genome, &Fitness)>()
            .iter(&self.world)
            .map(|(l, g, f)| (*l, g.clone(), f.clone()))
            .collect();
        all.sort_by_key(|(l, _, _)| l.id);
        all
    }

    /// The run's world, for the island model's exchanges.
    pub(crate) fn world_mut(&mut self) -> &mut World {
        &mut self.world
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The scenario.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The next generation to simulate.
    pub fn generation(&self) -> u32 {
        self.world.resource::<Generation>().0
    }

    /// Generations the run will have when done.
    pub fn target(&self) -> u32 {
        self.target
    }

    /// Why the run stopped early, if it did.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.world.resource::<Progress>().stop
    }

    /// True when no generation is left to run.
    pub fn is_done(&self) -> bool {
        self.generation() >= self.target || self.stop_reason().is_some()
    }

    /// Simulates one generation, records it, and checkpoints when due.
    pub fn step(&mut self) -> Result<GenerationReport, EngineError> {
        self.evaluate_generation()?;
        self.breed_generation()
    }

    /// The generation's first half: environment, learning, evaluation and
    /// records. Afterwards every organism alive has been evaluated; an
    /// island model exchanges migrants now ([`crate::islands::emigrants`],
    /// [`crate::islands::immigrate`]), then calls [`Run::breed_generation`].
    pub fn evaluate_generation(&mut self) -> Result<(), EngineError> {
        let started = Instant::now();
        let generation = self.generation();
        let environment = *self.world.resource::<EnvironmentState>();
        crate::fault::at(crate::fault::Point::Generation, generation)?;
        self.schedules[0].run(&mut self.world);
        self.started = Some((started, environment));
        self.check_failure()
    }

    /// The generation's second half: selection and reproduction, then a
    /// checkpoint when due and the generation's timing row.
    pub fn breed_generation(&mut self) -> Result<GenerationReport, EngineError> {
        let (started, _) = self
            .started
            .expect("the generation's first half ran: evaluate_generation before breed_generation");
        let generation = self.generation();
        self.schedules[1].run(&mut self.world);
        self.check_failure()?;
        self.started = None;
        let completed = generation + 1;
        let every = self.scenario.checkpoint_every;
        let checkpoint_started = Instant::now();
        if (every > 0 && completed.is_multiple_of(every)) || self.is_done() {
            self.hand_over_checkpoint()?;
        }
        let checkpoint_time = checkpoint_started.elapsed();
        let mut row = generation.to_string();
        for (_, d) in self.world.resource::<SetClock>().durations() {
            row.push_str(&format!(",{:.3}", d.as_secs_f64() * 1e3));
        }
        row.push_str(&format!(
            ",{:.3},{:.3}",
            checkpoint_time.as_secs_f64() * 1e3,
            started.elapsed().as_secs_f64() * 1e3
        ));
        self.world.resource_mut::<Recorder>().timing_row(&row)?;

        let stats = self.world.resource::<GenerationStats>();
        Ok(GenerationReport {
            generation,
            population: stats.population,
            best: stats.summaries.iter().map(|s| s.best).collect(),
            mean: stats.summaries.iter().map(|s| s.mean).collect(),
            errors: stats.errors.clone(),
        })
    }

    /// After a half: a system's failure becomes the run's error. Nothing
    /// computed is lost: after a plugin's evaluation error with `on_error =
    /// "abort"` the checkpoint holds the generation as it started (the
    /// environment as it was, the organisms still to be scored), so a
    /// resumed run redoes it exactly; after any other, the tables keep
    /// what they hold and the last checkpoint is the point to resume from.
    fn check_failure(&mut self) -> Result<(), EngineError> {
        let Some(e) = self.world.resource_mut::<Failure>().0.take() else {
            return Ok(());
        };
        let environment = self.started.take().map(|(_, env)| env);
        if matches!(e, EngineError::PluginEval { .. })
            && let Some(environment) = environment
        {
            self.world.insert_resource(environment);
            self.checkpoint()?;
        } else {
            self.writer.wait()?;
            let _ = self.world.resource_mut::<Recorder>().flush();
        }
        Err(e)
    }

    /// Writes a checkpoint of the state that starts the next generation,
    /// and waits until it is on disk.
    pub fn checkpoint(&mut self) -> Result<PathBuf, EngineError> {
        self.hand_over_checkpoint()?;
        let written = self.writer.wait()?;
        Ok(written.expect("a checkpoint was handed over"))
    }

    /// Encodes a checkpoint of the state that starts the next generation
    /// and hands it to the writer thread (after the previous one is
    /// written); the run goes on while it is written.
    fn hand_over_checkpoint(&mut self) -> Result<(), EngineError> {
        let generation = self.generation();
        let (tables, unsynced) = self.world.resource_mut::<Recorder>().hand_over()?;
        let env = *self.world.resource::<EnvironmentState>();
        let state = CheckpointState {
            format: CHECKPOINT_FORMAT,
            generation,
            next_organism_id: self.world.resource::<NextOrganismId>().0,
            environment_phase: env.phase,
            environment_changed: env.changed,
            progress: self.world.resource::<Progress>().clone(),
            tables,
            seed: self.scenario.seed,
            scenario_sha256: self.scenario_sha256.clone(),
            organisms: 0,
        };
        let mut query = self.world.query::<(&Genome, &Lineage, &Fitness)>();
        let mut learned = self
            .world
            .query::<(&Lineage, Option<&Weights>, &LearningCurve)>();
        let mut inherited = self.world.query::<(&Lineage, &Inherited)>();
        let mut organisms: Vec<_> = query.iter(&self.world).collect();
        organisms.sort_by_key(|(_, l, _)| l.id);
        let state = CheckpointState {
            organisms: organisms.len(),
            ..state
        };
        let mut learned: Vec<_> = learned
            .iter(&self.world)
            .map(|(l, w, c)| (l.id, w, c))
            .collect();
        learned.sort_by_key(|(id, _, _)| *id);
        let mut inherited: Vec<_> = inherited
            .iter(&self.world)
            .map(|(l, i)| (l.id, i))
            .collect();
        inherited.sort_by_key(|(id, _)| *id);
        let encoded = checkpoint::encode(&self.dir, &state, &organisms, &learned, &inherited)?;
        self.writer.submit(unsynced, encoded)?;
        self.last_checkpoint = Some(generation);
        Ok(())
    }

    /// Ends the session: a final checkpoint if the last generation has none,
    /// and the manifest's closing fields.
    pub fn finish(mut self) -> Result<PathBuf, EngineError> {
        if self.last_checkpoint != Some(self.generation()) {
            self.hand_over_checkpoint()?;
        }
        self.writer.wait()?;
        let (generation, stop) = (self.generation(), self.stop_reason());
        close_manifest(&mut self.manifest, generation, stop);
        self.manifest.write(&self.dir)?;
        Ok(self.dir)
    }
}

/// Fills in the manifest's closing fields.
fn close_manifest(manifest: &mut Manifest, generations: u32, stop: Option<StopReason>) {
    let now = manifest::utc_now();
    manifest.finished = Some(now.clone());
    manifest.generations_completed = generations;
    manifest.stop_reason = stop;
    if let Some(session) = manifest.sessions.last_mut() {
        session.finished = Some(now);
    }
}

fn base_world(
    scenario: &Arc<Scenario>,
    threads: usize,
    recorder: Recorder,
    evaluation: Evaluation,
) -> Result<World, EngineError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("lineage-worker-{i}"))
        .build()
        .map_err(|e| EngineError::Threads {
            threads,
            message: e.to_string(),
        })?;
    bevy_tasks::ComputeTaskPool::get_or_init(|| {
        bevy_tasks::TaskPoolBuilder::new()
            .num_threads(threads)
            .build()
    });

    let mut world = World::new();
    world.insert_resource(ScenarioRes(scenario.clone()));
    world.insert_resource(Generation(0));
    world.insert_resource(EnvironmentState::default());
    world.insert_resource(RandomStreams {
        seed: scenario.seed,
    });
    world.insert_resource(NextOrganismId(0));
    world.insert_resource(Objectives(scenario.objectives.clone()));
    world.insert_resource(kept_weights(scenario, &evaluation));
    world.insert_resource(evaluation);
    world.insert_resource(EvaluationErrors::default());
    world.insert_resource(SuiteScores::default());
    world.insert_resource(FitnessScores::default());
    world.insert_resource(Threads(Arc::new(pool)));
    world.insert_resource(SelectionResult::default());
    world.insert_resource(Brood::default());
    world.insert_resource(crate::systems::PendingInheritance::default());
    world.insert_resource(Progress::default());
    world.insert_resource(Failure::default());
    world.insert_resource(SetClock::default());
    world.insert_resource(GenerationStats::default());
    world.insert_resource(crate::resources::Rescored::default());
    world.insert_resource(recorder);
    Ok(world)
}

/// Which weights organisms keep: what inheritance, the offerings in use
/// and `record.weights` read.
fn kept_weights(scenario: &Scenario, evaluation: &Evaluation) -> KeptWeights {
    let inheriting = scenario.phases.iter().any(|p| {
        p.pressures.lifetime.as_ref().is_some_and(|l| {
            l.inheritance != lineage_scenario::Inheritance::Darwinian && l.genes.weights.is_none()
        })
    });
    let read = evaluation
        .fitness
        .iter()
        .chain(&evaluation.suites)
        .any(|c| c.instance.offering().reads_weights);
    let asked = scenario.record.weights;
    KeptWeights {
        birth: inheriting || asked == RecordWeights::All,
        learned: inheriting || read || asked != RecordWeights::Needed,
    }
}

/// Refuses kept weights that do not fit the model of the checkpoint's
/// scenario (a damaged or foreign checkpoint).
fn check_weights(
    checkpoint: &Path,
    scenario: &Scenario,
    id: u64,
    weights: &Weights,
) -> Result<(), EngineError> {
    let Some(cfg) = scenario
        .phases
        .iter()
        .find_map(|p| p.pressures.lifetime.as_ref())
    else {
        return Ok(());
    };
    let layout = cfg.model.params();
    let total: usize = layout.iter().map(|p| p.len()).sum();
    let flat_fits = [&weights.birth, &weights.learned]
        .into_iter()
        .flatten()
        .all(|p| p.0.len() == total);
    let masks_fit = weights.masks.0.is_empty()
        || (weights.masks.0.len() == layout.len()
            && weights
                .masks
                .0
                .iter()
                .zip(&layout)
                .all(|(m, p)| m.as_ref().is_none_or(|b| b.len() == p.len())));
    if flat_fits && masks_fit {
        Ok(())
    } else {
        Err(EngineError::BadRunDir {
            path: checkpoint.to_path_buf(),
            message: format!(
                "the weights of organism {id} do not fit the scenario's model ({total} parameters)"
            ),
        })
    }
}

fn resolve_threads(threads: usize) -> usize {
    if threads > 0 {
        threads
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Where a new run (or experiment) goes: `out`, which must not exist or be
/// empty, or `runs/<name>-<UTC timestamp>`.
pub(crate) fn output_dir(out: Option<&Path>, name: &str) -> Result<PathBuf, EngineError> {
    match out {
        Some(dir) => {
            // Anything already there (a file, a non-empty directory) may be
            // earlier results: refuse rather than overwrite.
            let occupied = dir.exists()
                && std::fs::read_dir(dir)
                    .map(|mut d| d.next().is_some())
                    .unwrap_or(true);
            if occupied {
                return Err(EngineError::OutputExists(dir.to_path_buf()));
            }
            Ok(dir.to_path_buf())
        }
        None => Ok(fresh_dir(Path::new("runs"), name)),
    }
}

/// `root/<name>-<stamp>`, with a counter if that exists already.
fn fresh_dir(root: &Path, name: &str) -> PathBuf {
    let base = format!("{name}-{}", manifest::utc_stamp());
    let mut dir = root.join(&base);
    let mut k = 2;
    while dir.exists() {
        dir = root.join(format!("{base}-{k}"));
        k += 1;
    }
    dir
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
