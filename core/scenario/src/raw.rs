//! The scenario as written: serde structures that accept exactly the keys a
//! scenario may contain (`deny_unknown_fields`) and nothing more. Meaning is
//! checked afterwards, in `validate`. The `[lifetime]` table's structures
//! are in [`lifetime`].

pub(crate) mod lifetime;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_seed")]
    pub seed: u64,
    pub generations: u32,
    pub population: usize,
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u32,
    pub genome: RawGenome,
    pub fitness: RawFitness,
    #[serde(default)]
    pub selection: RawSelection,
    #[serde(default)]
    pub mutation: RawMutation,
    #[serde(default)]
    pub crossover: RawCrossover,
    #[serde(default)]
    pub stop: RawStop,
    #[serde(default)]
    pub record: RawRecord,
    #[serde(default)]
    pub environment: Vec<RawChange>,
    pub lifetime: Option<lifetime::RawLifetime>,
    #[serde(default)]
    pub plugins: std::collections::BTreeMap<String, RawPlugin>,
    #[serde(default)]
    pub evaluate: RawEvaluate,
    #[serde(default)]
    pub conditions: Vec<RawCondition>,
    pub islands: Option<RawIslands>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIslands {
    pub count: usize,
    #[serde(default = "default_migration_interval")]
    pub migration_interval: u32,
    #[serde(default = "default_migrants")]
    pub migrants: usize,
    #[serde(default = "default_topology")]
    pub topology: String,
    pub degree: Option<usize>,
    pub rows: Option<usize>,
    #[serde(default = "default_emigrants")]
    pub emigrants: String,
    #[serde(default = "default_replace")]
    pub replace: String,
    #[serde(default, rename = "override")]
    pub overrides: Vec<RawIslandOverride>,
}

fn default_migration_interval() -> u32 {
    5
}
fn default_migrants() -> usize {
    1
}
fn default_topology() -> String {
    "ring".into()
}
fn default_emigrants() -> String {
    "best".into()
}
fn default_replace() -> String {
    "worst".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIslandOverride {
    pub islands: Vec<usize>,
    #[serde(default)]
    pub set: toml::Table,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCondition {
    pub name: String,
    #[serde(default)]
    pub seeds: Vec<u64>,
    pub from: Option<String>,
    pub connectome: Option<RawTransform>,
    #[serde(default)]
    pub set: toml::Table,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTransform {
    #[serde(default = "keep")]
    pub mask: String,
    #[serde(default = "keep")]
    pub signs: String,
}

fn keep() -> String {
    "keep".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlugin {
    pub library: String,
    #[serde(default = "abort")]
    pub on_error: String,
    #[serde(default = "in_process")]
    pub isolation: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub config: toml::Table,
}

fn in_process() -> String {
    "in-process".into()
}

fn default_timeout_ms() -> u64 {
    crate::DEFAULT_PLUGIN_TIMEOUT_MS
}

fn abort() -> String {
    "abort".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEvaluate {
    #[serde(default)]
    pub suites: Vec<String>,
    #[serde(default)]
    pub rescore_best: bool,
}

fn default_seed() -> u64 {
    1
}

fn default_checkpoint_every() -> u32 {
    10
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGenome {
    #[serde(default)]
    pub bits: usize,
    #[serde(default = "half")]
    pub bit_density: f64,
    #[serde(default)]
    pub genes: Vec<RawGene>,
}

fn half() -> f64 {
    0.5
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGene {
    pub name: String,
    #[serde(default = "one")]
    pub count: usize,
    pub min: f64,
    pub max: f64,
    #[serde(default)]
    pub log: bool,
}

fn one() -> usize {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFitness {
    pub function: String,
    pub k: Option<usize>,
    pub a: Option<f64>,
    pub offset: Option<f64>,
    pub metrics: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSelection {
    #[serde(default = "tournament")]
    pub method: String,
    pub tournament_size: Option<usize>,
    pub fraction: Option<f64>,
    pub mu: Option<usize>,
    #[serde(default)]
    pub elitism: usize,
}

fn tournament() -> String {
    "tournament".into()
}

impl Default for RawSelection {
    fn default() -> Self {
        RawSelection {
            method: tournament(),
            tournament_size: None,
            fraction: None,
            mu: None,
            elitism: 0,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMutation {
    pub bit_rate: Option<f64>,
    pub sigma: Option<f64>,
    pub gene_rate: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCrossover {
    #[serde(default = "none")]
    pub method: String,
    #[serde(default = "crossover_rate")]
    pub rate: f64,
}

fn none() -> String {
    "none".into()
}

fn crossover_rate() -> f64 {
    0.9
}

impl Default for RawCrossover {
    fn default() -> Self {
        RawCrossover {
            method: none(),
            rate: crossover_rate(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStop {
    pub target_fitness: Option<f64>,
    pub stagnation: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRecord {
    #[serde(default)]
    pub organisms: Option<RawRecordOrganisms>,
    pub sample: Option<usize>,
    pub elites: Option<usize>,
    pub weights: Option<String>,
}

/// `record.organisms`: a mode name, or `true` / `false` (all / none).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawRecordOrganisms {
    Flag(bool),
    Mode(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChange {
    pub at_generation: u32,
    pub set: toml::Table,
}
