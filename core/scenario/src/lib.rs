//! Scenario files: one TOML file describes one experiment.
//!
//! Loading is two-staged, as in ripgrep's low-level and high-level
//! arguments: the file is read into raw serde structures that accept exactly
//! the keys a scenario may contain, then validated into a [`Scenario`] whose
//! fields are known to be meaningful together. Every error is a
//! [`Diagnostic`] naming the file, line, column and field path, what was
//! expected and what was found; an unknown key suggests the nearest valid
//! one.
//!
//! A scenario may `extends = "base.toml"` another (tables merge key by key;
//! arrays and values replace), and may schedule changes of its generational
//! pressures with `[[environment]]` entries. Each entry's `set` table is
//! merged over everything before it from `at_generation` on; the result is a
//! list of [`Phase`]s, each fully validated at load time.
//!
//! ```
//! let text = r#"
//! name = "demo"
//! generations = 20
//! population = 50
//! genome = { bits = 32 }
//! fitness = { function = "onemax" }
//! [[environment]]
//! at_generation = 10
//! set = { mutation = { bit_rate = 0.1 } }
//! "#;
//! let s = lineage_scenario::from_str(text, "demo.toml", ".".as_ref(), &Default::default()).unwrap();
//! assert_eq!(s.pressures_at(0).mutation.bit_rate, 1.0 / 32.0);
//! assert_eq!(s.pressures_at(10).mutation.bit_rate, 0.1);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod error;
mod lifetime;
mod load;
mod memory;
mod plugin_env;
mod raw;
mod validate;

use std::path::Path;

use lineage_evo::fitness::Builtin;
use lineage_evo::operators::{Crossover, Mutation};
use lineage_evo::selection::Method;
use lineage_evo::{GenomeSpec, Objective};

pub use error::{Diagnostic, ScenarioError};
pub use lifetime::{
    ConnectomeBits, EnvHandle, Inheritance, LearningGenes, LifetimeConfig, MatrixRule, RankScale,
    Rewire,
};
pub use memory::{
    Bytes, LIFETIMES_PER_THREAD, MemoryEstimate, MemoryPart, available_memory, parse_size,
};

/// The alias of the built-in plugin: `builtin:onemax` is `onemax`.
pub const BUILTIN_PLUGIN: &str = "builtin";

/// A validated scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Name, used for the run directory.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The seed every random stream derives from.
    pub seed: u64,
    /// Generations to run (generation 0 is the founding population).
    pub generations: u32,
    /// Write a checkpoint every this many generations (0: only at the end).
    pub checkpoint_every: u32,
    /// The shape of every genome.
    pub genome: GenomeSpec,
    /// The fitness objectives, the same in every phase.
    pub objectives: Vec<Objective>,
    /// When to stop before `generations`.
    pub stop: Stop,
    /// What to record.
    pub record: Record,
    /// The generational pressures, phase by phase; `phases[0]` starts at
    /// generation 0 and each later one at its environment change.
    pub phases: Vec<Phase>,
    /// Plugins the scenario declares (`[plugins.NAME]`).
    pub plugins: Vec<PluginRef>,
    /// Evaluation suites recorded per organism (`[evaluate] suites`).
    pub suites: Vec<PluginOffering>,
    /// Each generation, the best organism of each objective lives its
    /// lifetime again and is scored on a held-out set drawn afresh
    /// (`[evaluate] rescore_best`), so that the best of N is reported
    /// without the winner's curse (`generations.csv`, `*_best_rescored`).
    pub rescore_best: bool,
    /// Conditions (`[[conditions]]`): variants of this scenario run side by
    /// side, each over its seeds; empty for a plain scenario.
    pub conditions: Vec<Condition>,
    /// The island model (`[islands]`), if the population is split.
    pub islands: Option<Islands>,
    /// The scenario as resolved TOML (extends merged, overrides applied),
    /// which loads back into the same scenario.
    pub resolved_toml: String,
    /// The memory a run of it needs at its peak (for an experiment, with
    /// every condition's environments held and its largest generation).
    pub memory: MemoryEstimate,
}

impl Scenario {
    /// Index of the phase in force at `generation`.
    pub fn phase_index(&self, generation: u32) -> usize {
        self.phases
            .iter()
            .rposition(|p| p.from_generation <= generation)
            .unwrap_or(0)
    }

    /// The pressures in force at `generation`.
    pub fn pressures_at(&self, generation: u32) -> &Pressures {
        &self.phases[self.phase_index(generation)].pressures
    }

    /// The data files every phase's environment read (each once), with
    /// their sizes and SHA-256, as a run's manifest records them.
    pub fn data_files(&self) -> Vec<lineage_env::DataFile> {
        let mut files: Vec<lineage_env::DataFile> = Vec::new();
        for phase in &self.phases {
            let Some(life) = &phase.pressures.lifetime else {
                continue;
            };
            for file in life.environment.env.data_files() {
                if !files.iter().any(|f| f.path == file.path) {
                    files.push(file);
                }
            }
        }
        files
    }
}

/// A stretch of generations with fixed pressures.
#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    /// First generation of the phase.
    pub from_generation: u32,
    /// The pressures.
    pub pressures: Pressures,
}

/// What the environment schedule may change.
#[derive(Clone, Debug, PartialEq)]
pub struct Pressures {
    /// Organisms per generation.
    pub population: usize,
    /// Selection method and elitism.
    pub selection: Selection,
    /// Mutation rates.
    pub mutation: Mutation,
    /// Crossover, if offspring may have two parents.
    pub crossover: Option<CrossoverSpec>,
    /// The fitness function and its parameters.
    pub fitness: FitnessSpec,
    /// Lifetime learning, when organisms learn.
    pub lifetime: Option<std::sync::Arc<LifetimeConfig>>,
}

/// What fitness is computed from.
#[derive(Clone, Debug, PartialEq)]
pub enum FitnessSpec {
    /// A function of the genome.
    Genome(Builtin),
    /// A measure of the organism's lifetime (needs `[lifetime]`).
    Lifetime(LifetimeMetric),
    /// An offering of a plugin; its objectives are known once it is loaded.
    Plugin(PluginOffering),
}

/// One condition of an experiment: the scenario with some fields changed,
/// run once per seed, optionally starting from another condition's final
/// population.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// Name, unique in the scenario (`[A-Za-z0-9_-]+`): the run's folder.
    pub name: String,
    /// The condition whose final population founds this one's, if any.
    pub from: Option<String>,
    /// How an inherited connectome is transformed (with `from`).
    pub connectome: ConnectomeTransform,
    /// One checked scenario per seed, in seed order (each with its seed).
    pub runs: Vec<Scenario>,
}

/// `[islands]`: the population split into islands that evolve side by side
/// under their own pressures and exchange migrants every
/// `migration_interval` generations. The number of islands is part of the
/// experiment; how many processes run them is not.
#[derive(Clone, Debug, PartialEq)]
pub struct Islands {
    /// Islands.
    pub count: usize,
    /// Generations between migrations: migrants move after every
    /// generation whose number plus one is a multiple of it.
    pub migration_interval: u32,
    /// Organisms each island sends to each island it sends to.
    pub migrants: usize,
    /// Who sends to whom.
    pub topology: Topology,
    /// Which organisms leave (among those evaluated that generation).
    pub emigrants: Choice,
    /// Which organisms the arrivals replace.
    pub replace: Choice,
    /// Each island's scenario (the base with its overrides), in island
    /// order; `population` is the island's.
    pub scenarios: Vec<Scenario>,
}

/// Who sends migrants to whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// Island `i` sends to `i + 1` (the last to the first).
    Ring,
    /// The islands on a grid of `rows` rows that wraps around: each sends
    /// to its four neighbours (fewer where the grid is 1 or 2 wide).
    Torus {
        /// Rows of the grid (a divisor of the count).
        rows: usize,
    },
    /// Every island sends to every other.
    Full,
    /// At every migration each island sends to `degree` other islands
    /// drawn afresh from the migration stream.
    Random {
        /// Islands each sends to.
        degree: usize,
    },
}

impl Topology {
    /// The islands `island` of `count` sends migrants to, ascending; a
    /// random topology draws them from `rng`.
    pub fn targets(self, island: usize, count: usize, rng: &mut impl rand::Rng) -> Vec<usize> {
        let mut out: Vec<usize> = match self {
            Topology::Ring => vec![(island + 1) % count],
            Topology::Full => (0..count).collect(),
            Topology::Torus { rows } => {
                let cols = count / rows.max(1);
                let (r, c) = (island / cols, island % cols);
                vec![
                    r * cols + (c + 1) % cols,
                    r * cols + (c + cols - 1) % cols,
                    ((r + 1) % rows) * cols + c,
                    ((r + rows - 1) % rows) * cols + c,
                ]
            }
            Topology::Random { degree } => {
                let others = count.saturating_sub(1);
                rand::seq::index::sample(rng, others, degree.min(others))
                    .into_iter()
                    .map(|k| if k >= island { k + 1 } else { k })
                    .collect()
            }
        };
        out.retain(|&t| t != island);
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// How emigrants or the organisms they replace are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// The best by the first objective, ties by id.
    Best,
    /// The worst by the first objective (invalid first), ties by id.
    Worst,
    /// Uniformly at random, from the migration stream.
    Random,
}

/// What happens to an inherited connectome's mask and signs, matrix by
/// matrix, before development (controls and ablations).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectomeTransform {
    /// Move the kept connections to random positions (same count per
    /// matrix), carrying their weights along.
    pub shuffle_mask: bool,
    /// Give every kept connection a random sign.
    pub random_signs: bool,
}

/// A plugin a scenario declares as `[plugins.NAME]`.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginRef {
    /// The name the scenario calls it by (the table's key).
    pub alias: String,
    /// A library path (absolute once validated) or a name to look up.
    pub library: String,
    /// The folder of the file that declared it, searched first for names.
    pub dir: Option<std::path::PathBuf>,
    /// What an evaluation error does to the run.
    pub on_error: OnError,
    /// Where the library runs: in Lineage's process or in a child.
    pub isolation: Isolation,
    /// The longest an isolated call may take, in milliseconds.
    pub timeout_ms: u64,
    /// `[plugins.NAME.config]` as TOML text.
    pub config_toml: String,
    /// The same table flattened: dotted keys and TOML-literal values.
    pub config: Vec<(String, String)>,
}

/// What a plugin's evaluation error does to the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// Write a checkpoint and stop with exit code 1.
    Abort,
    /// The affected organisms get invalid fitness; the error is counted in
    /// the generation's record and the run goes on.
    Invalidate,
}

/// Where a plugin's library runs: `isolation = "in-process"` (the
/// default) or `"process"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Isolation {
    /// Loaded into Lineage's own process: fastest, but a crash in the
    /// plugin ends the run.
    #[default]
    InProcess,
    /// Loaded into a child process: a crash or a hang becomes an
    /// evaluation error that `on_error` handles.
    Process,
}

/// The prefix of a `[plugins.NAME] library` written in Python
/// (`python:FILE.py`): it runs in a Python worker process
/// (`python -m lineage._worker`), whatever `isolation` says.
pub const PYTHON_PLUGIN: &str = "python:";

/// `timeout_ms` when a scenario gives none: one minute per call.
pub const DEFAULT_PLUGIN_TIMEOUT_MS: u64 = 60_000;
/// The largest `timeout_ms`: one day.
pub const MAX_PLUGIN_TIMEOUT_MS: u64 = 86_400_000;

/// An offering of a declared plugin: `NAME:OFFERING`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginOffering {
    /// The plugin's alias.
    pub plugin: String,
    /// The offering's name.
    pub offering: String,
    /// The metrics to use as objectives (empty: all of them).
    pub metrics: Vec<String>,
}

impl FitnessSpec {
    /// The objectives it produces (none for a plugin: they are known once
    /// it is loaded).
    pub fn objectives(&self) -> Vec<Objective> {
        match self {
            FitnessSpec::Plugin(_) => Vec::new(),
            FitnessSpec::Genome(b) => b.objectives(),
            FitnessSpec::Lifetime(m) => vec![Objective {
                name: m.name().into(),
                direction: m.direction(),
            }],
        }
    }
}

/// Fitness read off an organism's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifetimeMetric {
    /// Held-out loss at the end of the lifetime (minimised).
    HeldoutLoss,
    /// Mean held-out loss over the learning curve, by the trapezoid rule
    /// over steps: rewards fast learners (minimised).
    HeldoutAuc,
    /// Held-out loss at birth minus at the end (maximised).
    Improvement,
    /// Held-out loss at birth, before any learning (minimised).
    BirthLoss,
}

impl LifetimeMetric {
    /// Scenario names of the metrics.
    pub const NAMES: &[&str] = &["heldout_loss", "heldout_auc", "improvement", "birth_loss"];

    /// Parses a scenario name.
    pub fn parse(name: &str) -> Option<LifetimeMetric> {
        Some(match name {
            "heldout_loss" => LifetimeMetric::HeldoutLoss,
            "heldout_auc" => LifetimeMetric::HeldoutAuc,
            "improvement" => LifetimeMetric::Improvement,
            "birth_loss" => LifetimeMetric::BirthLoss,
            _ => return None,
        })
    }

    /// The objective's column name.
    pub fn name(self) -> &'static str {
        match self {
            LifetimeMetric::HeldoutLoss => "heldout_loss",
            LifetimeMetric::HeldoutAuc => "heldout_auc",
            LifetimeMetric::Improvement => "improvement",
            LifetimeMetric::BirthLoss => "birth_loss",
        }
    }

    /// Whether it is maximised or minimised.
    pub fn direction(self) -> lineage_evo::fitness::Direction {
        match self {
            LifetimeMetric::Improvement => lineage_evo::fitness::Direction::Maximize,
            _ => lineage_evo::fitness::Direction::Minimize,
        }
    }
}

/// Selection settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Selection {
    /// The method.
    pub method: Method,
    /// Organisms carried unchanged into the next generation (tournament and
    /// truncation only).
    pub elitism: usize,
}

/// Crossover settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrossoverSpec {
    /// The operator.
    pub kind: Crossover,
    /// Probability that an offspring has two parents.
    pub rate: f64,
}

/// Early stopping.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stop {
    /// Stop once the best value of the (single) objective reaches this.
    pub target_fitness: Option<f64>,
    /// Stop after this many generations without improvement of the best
    /// value of the first objective.
    pub stagnation: Option<u32>,
}

/// What the run records.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Record {
    /// Which evaluated organisms get a row in `organisms.csv` (and their
    /// curves and probes in `curves.csv` and `probes.csv`).
    pub organisms: RecordOrganisms,
    /// Which weights organisms keep (and checkpoints hold).
    pub weights: RecordWeights,
}

impl Default for Record {
    fn default() -> Self {
        Record {
            organisms: RecordOrganisms::All,
            weights: RecordWeights::Needed,
        }
    }
}

/// `record.organisms`: which of a generation's evaluated organisms are
/// written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordOrganisms {
    /// Every one (`"all"` or `true`, the default).
    All,
    /// None (`"none"` or `false`).
    None,
    /// A uniform sample of this many, drawn from the generation's record
    /// stream (`"sample"` with `record.sample`).
    Sample(usize),
    /// The this-many best by the first objective, ties by id (`"elites"`
    /// with `record.elites`).
    Elites(usize),
}

impl RecordOrganisms {
    /// True when any organism is written.
    pub fn any(self) -> bool {
        !matches!(
            self,
            RecordOrganisms::None | RecordOrganisms::Sample(0) | RecordOrganisms::Elites(0)
        )
    }
}

/// `record.weights`: which weights organisms keep after their lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordWeights {
    /// What something in the run reads (the default): learned weights for
    /// Lamarckian and pruning inheritance and for plugin offerings that
    /// read weights, birth weights where they cannot be developed again.
    Needed,
    /// Learned weights (and masks) of every organism, as well.
    Learned,
    /// Birth and learned weights of every organism.
    All,
}

/// Values from the command line that override the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--generations`.
    pub generations: Option<u32>,
    /// `--device` (applies to `[lifetime]`).
    pub device: Option<String>,
    /// `--path` (applies to `[lifetime]`).
    pub path: Option<String>,
    /// `--memory-limit` in bytes: a scenario whose estimated peak memory
    /// exceeds it is refused (default: the machine's available memory).
    pub memory_limit: Option<u64>,
}

/// Loads and validates the scenario at `path`.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Scenario, ScenarioError> {
    let mut sources = load::Sources::default();
    let resolved = sources.load_file(path)?;
    validate::scenario(&sources, resolved, overrides)
}

/// Loads and validates a scenario given as text. `name` is used in errors;
/// `extends` resolves against `dir`.
pub fn from_str(
    text: &str,
    name: &str,
    dir: &Path,
    overrides: &Overrides,
) -> Result<Scenario, ScenarioError> {
    let mut sources = load::Sources::default();
    let resolved = sources.load_str(text, name, dir)?;
    validate::scenario(&sources, resolved, overrides)
}
