//! The `[lifetime]` table as written: serde structures for the
//! environment, model, optimiser, development rules, pruning and rewiring
//! (`deny_unknown_fields`), with their defaults. Meaning is checked in
//! `validate::lifetime`.

use lineage_env::HmmParams;
use serde::{Deserialize, Deserializer};

/// An environment's seed as written: a number, or `"run"` for the seed of
/// the run itself, so that every seed of a condition gets its own
/// environment (a teacher per run, as the rich/lazy exception averages
/// over teachers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RawSeed {
    /// A fixed seed (0 when not written).
    Fixed(u64),
    /// The run's seed.
    Run,
}

impl Default for RawSeed {
    fn default() -> RawSeed {
        RawSeed::Fixed(0)
    }
}

impl RawSeed {
    /// The seed for a run seeded `run`.
    pub(crate) fn resolve(self, run: u64) -> u64 {
        match self {
            RawSeed::Fixed(s) => s,
            RawSeed::Run => run,
        }
    }
}

impl<'de> Deserialize<'de> for RawSeed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawSeed, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawSeed;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a seed (an integer from 0) or \"run\" (the run's own seed)")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawSeed, E> {
                Ok(RawSeed::Fixed(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawSeed, E> {
                u64::try_from(v).map(RawSeed::Fixed).map_err(|_| {
                    E::custom(format!(
                        "expected a seed (an integer from 0) or \"run\", found {v}"
                    ))
                })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawSeed, E> {
                if v == "run" {
                    Ok(RawSeed::Run)
                } else {
                    Err(E::custom(format!(
                        "expected a seed (an integer from 0) or \"run\" (the run's own seed), found \"{v}\""
                    )))
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLifetime {
    #[serde(deserialize_with = "environment")]
    pub environment: RawEnvironment,
    pub model: RawModel,
    pub budget: usize,
    pub steps: u32,
    pub batch: usize,
    #[serde(default)]
    pub eval_every: u32,
    pub curve_heldout: Option<usize>,
    #[serde(default = "cpu")]
    pub device: String,
    #[serde(default = "auto")]
    pub path: String,
    #[serde(default = "darwinian")]
    pub inheritance: String,
    #[serde(default)]
    pub lamarckian_noise: f64,
    #[serde(default)]
    pub prune: RawPrune,
    #[serde(default)]
    pub optimizer: RawOptimizer,
    #[serde(default)]
    pub develop: RawDevelop,
    #[serde(default)]
    pub rewire: RawRewire,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRewire {
    #[serde(default)]
    pub edges: usize,
    #[serde(default)]
    pub flips: usize,
    #[serde(default)]
    pub density_sigma: f64,
}

fn cpu() -> String {
    "cpu".into()
}

fn auto() -> String {
    "auto".into()
}

fn darwinian() -> String {
    "darwinian".into()
}

/// `[lifetime.environment]` as written: a built-in `kind`, whose fields
/// serde checks, or a `plugin = "NAME:OFFERING"` whose own keys the plugin
/// checks when it creates the environment.
fn environment<'de, D: Deserializer<'de>>(d: D) -> Result<RawEnvironment, D::Error> {
    use serde::de::Error;
    let mut fields = toml::Table::deserialize(d)?;
    if let Some(plugin) = fields.remove("plugin") {
        if fields.contains_key("kind") {
            return Err(D::Error::custom(
                "an environment is either a built-in `kind` or a `plugin`, not both",
            ));
        }
        let toml::Value::String(plugin) = plugin else {
            return Err(D::Error::custom(format!(
                "`plugin` must be a string \"NAME:OFFERING\", found {plugin}"
            )));
        };
        let seed = match fields.remove("seed") {
            None => RawSeed::default(),
            Some(v) => {
                RawSeed::deserialize(v).map_err(|e| D::Error::custom(format!("`seed`: {e}")))?
            }
        };
        return Ok(RawEnvironment::Plugin {
            plugin,
            seed,
            config: fields,
        });
    }
    serde_path_to_error::deserialize(toml::Value::Table(fields)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().message().to_owned();
        if path == "." || message.starts_with("unknown field") {
            D::Error::custom(message)
        } else {
            D::Error::custom(format!("`{path}`: {message}"))
        }
    })
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum RawEnvironment {
    /// An environment a plugin supplies: `plugin = "NAME:OFFERING"` (or
    /// `"NAME"` when the plugin offers one environment), the host's
    /// `seed`, and the plugin's own keys.
    #[serde(skip)]
    Plugin {
        plugin: String,
        seed: RawSeed,
        config: toml::Table,
    },
    GaussianClusters {
        classes: usize,
        dim: usize,
        spread: f32,
        #[serde(default = "thousand")]
        heldout: usize,
        #[serde(default)]
        seed: RawSeed,
    },
    Teacher {
        inputs: usize,
        hidden: usize,
        outputs: usize,
        #[serde(default)]
        noise: f32,
        #[serde(default)]
        classify: bool,
        #[serde(default = "thousand")]
        heldout: usize,
        #[serde(default)]
        seed: RawSeed,
    },
    Sinusoids {
        #[serde(default = "hundred")]
        heldout: usize,
    },
    /// The rich/lazy study's linear student-teacher task.
    LinearTeacher {
        inputs: usize,
        #[serde(default = "one")]
        kappa: f32,
        #[serde(default = "thousand")]
        heldout: usize,
        #[serde(default)]
        seed: RawSeed,
        /// The task direction offered to `align = "task"`: `full` (F^T w)
        /// or `top_half` (F truncated to its top half of singular values).
        direction: Option<String>,
    },
    /// NeuroGym's perceptual decision; defaults are the rich/lazy study's.
    Decision {
        #[serde(default = "decision_coherences")]
        coherences: Vec<f32>,
        #[serde(default = "cognitive_noise")]
        noise: f32,
        #[serde(default = "decision_stimulus_steps")]
        stimulus_steps: usize,
        #[serde(default = "thousand")]
        heldout: usize,
        #[serde(default)]
        seed: RawSeed,
    },
    /// Delayed match-to-sample.
    DelayedMatch {
        #[serde(default = "two")]
        stimuli: usize,
        #[serde(default = "two")]
        sample_steps: usize,
        #[serde(default = "two")]
        delay_steps: usize,
        #[serde(default = "two")]
        test_steps: usize,
        #[serde(default = "cognitive_noise")]
        noise: f32,
        #[serde(default = "thousand")]
        heldout: usize,
        #[serde(default)]
        seed: RawSeed,
    },
    /// An in-context learning world (Chan et al.; Reddy's synthetic
    /// classes); defaults are science.md's small-scale recipe.
    Icl {
        #[serde(default = "icl_classes")]
        classes: usize,
        #[serde(default = "icl_dim")]
        dim: usize,
        #[serde(default = "icl_eps")]
        eps: f32,
        #[serde(default = "icl_labels")]
        labels: usize,
        #[serde(default = "icl_pairs")]
        pairs: usize,
        #[serde(default = "icl_burstiness")]
        burstiness: usize,
        #[serde(default = "icl_p_bursty")]
        p_bursty: f64,
        #[serde(default)]
        zipf: f64,
        #[serde(default)]
        p_novel: f64,
        #[serde(default = "icl_novel_classes")]
        novel_classes: usize,
        #[serde(default = "icl_labels_per_class")]
        labels_per_class: usize,
        #[serde(default)]
        dynamic: bool,
        #[serde(default = "onehot")]
        positions: String,
        max_pairs: Option<usize>,
        #[serde(default = "thousand")]
        heldout: usize,
        #[serde(default = "icl_probe_sequences")]
        probe_sequences: usize,
        #[serde(default)]
        seed: RawSeed,
    },
    /// The user's examples from files (`lineage_env::Dataset`).
    Dataset {
        path: String,
        heldout_path: Option<String>,
        task: String,
        inputs: Option<String>,
        labels: Option<String>,
        targets: Option<String>,
        tokens: Option<String>,
        context: Option<usize>,
        #[serde(default = "fifth_held_out")]
        heldout_fraction: f64,
        #[serde(default)]
        heldout: usize,
        #[serde(default)]
        standardize: bool,
        classes: Option<Vec<u32>>,
        vocab: Option<usize>,
        #[serde(default)]
        seed: RawSeed,
    },
    Text {
        path: String,
        #[serde(default = "characters")]
        vocabulary: String,
        context: usize,
        #[serde(default = "tenth")]
        validation: f64,
        #[serde(default = "thousand")]
        heldout: usize,
    },
    /// A hidden-Markov language; defaults are [`HmmParams::default`]'s.
    Hmm {
        #[serde(default = "hmm_tokens")]
        tokens: usize,
        #[serde(default = "hmm_states")]
        states: usize,
        #[serde(default = "hmm_successors", deserialize_with = "successors")]
        successors: RawCount,
        #[serde(default = "hmm_concentration")]
        concentration: f64,
        #[serde(default = "hmm_emissions", deserialize_with = "emissions")]
        emissions: RawCount,
        #[serde(default = "hmm_zipf")]
        zipf: f64,
        context: usize,
        #[serde(default = "hmm_corpus")]
        corpus: usize,
        #[serde(default = "thousand")]
        heldout: usize,
        #[serde(default)]
        seed: RawSeed,
    },
}

/// A count, or a range `[min, max]` drawn from uniformly.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawCount {
    One(usize),
    Between([usize; 2]),
}

fn count<'de, D: serde::Deserializer<'de>>(d: D, field: &str) -> Result<RawCount, D::Error> {
    RawCount::deserialize(d).map_err(|_| {
        serde::de::Error::custom(format!(
            "`{field}`: expected a count or a range [min, max] of counts"
        ))
    })
}

fn successors<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RawCount, D::Error> {
    count(d, "successors")
}

fn emissions<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RawCount, D::Error> {
    count(d, "emissions")
}

impl RawCount {
    pub(crate) fn range(&self) -> std::ops::RangeInclusive<usize> {
        match *self {
            RawCount::One(n) => n..=n,
            RawCount::Between([lo, hi]) => lo..=hi,
        }
    }
}

fn hmm_tokens() -> usize {
    HmmParams::default().tokens
}

fn hmm_states() -> usize {
    HmmParams::default().states
}

fn hmm_successors() -> RawCount {
    let r = HmmParams::default().successors;
    RawCount::Between([*r.start(), *r.end()])
}

fn hmm_concentration() -> f64 {
    HmmParams::default().concentration
}

fn hmm_emissions() -> RawCount {
    let r = HmmParams::default().emissions;
    RawCount::Between([*r.start(), *r.end()])
}

fn hmm_zipf() -> f64 {
    HmmParams::default().zipf
}

fn hmm_corpus() -> usize {
    HmmParams::default().corpus
}

fn thousand() -> usize {
    1000
}

fn icl_classes() -> usize {
    lineage_env::IclParams::default().classes
}

fn icl_dim() -> usize {
    lineage_env::IclParams::default().dim
}

fn icl_eps() -> f32 {
    lineage_env::IclParams::default().eps
}

fn icl_labels() -> usize {
    lineage_env::IclParams::default().labels
}

fn icl_pairs() -> usize {
    lineage_env::IclParams::default().pairs
}

fn icl_burstiness() -> usize {
    lineage_env::IclParams::default().burstiness
}

fn icl_labels_per_class() -> usize {
    lineage_env::IclParams::default().labels_per_class
}

fn icl_p_bursty() -> f64 {
    lineage_env::IclParams::default().p_bursty
}

fn icl_novel_classes() -> usize {
    lineage_env::IclParams::default().novel_classes
}

fn icl_probe_sequences() -> usize {
    lineage_env::IclParams::default().probe_sequences
}

fn onehot() -> String {
    "onehot".into()
}

fn hundred() -> usize {
    100
}

fn one() -> f32 {
    1.0
}

fn two() -> usize {
    2
}

fn decision_coherences() -> Vec<f32> {
    lineage_env::Decision::COHERENCES.to_vec()
}

fn decision_stimulus_steps() -> usize {
    7
}

fn cognitive_noise() -> f32 {
    0.1
}

fn characters() -> String {
    "characters".into()
}

fn fifth_held_out() -> f64 {
    0.2
}

fn tenth() -> f64 {
    0.1
}

/// `[lifetime.model]` as written: a built-in family, whose fields serde
/// checks, or a family registered in `lineage_learn::models::REGISTERED`
/// (any other `kind`), whose fields its constructor checks.
#[derive(Debug)]
pub(crate) enum RawModel {
    BuiltIn(BuiltInModel),
    Registered {
        kind: String,
        /// Every field but `kind`.
        fields: toml::Table,
    },
}

impl RawModel {
    /// The `kind`s serde reads into a [`BuiltInModel`].
    pub(crate) const BUILT_IN: &[&str] = &["mlp", "linear2", "rnn", "gru", "lstm", "transformer"];
}

impl<'de> Deserialize<'de> for RawModel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawModel, D::Error> {
        use serde::de::Error;
        let mut fields = toml::Table::deserialize(d)?;
        let kind = match fields.get("kind") {
            Some(toml::Value::String(kind)) => kind.clone(),
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "`kind` must be a string, found {other}"
                )));
            }
            None => return Err(D::Error::missing_field("kind")),
        };
        if !RawModel::BUILT_IN.contains(&kind.as_str()) {
            fields.remove("kind");
            return Ok(RawModel::Registered { kind, fields });
        }
        serde_path_to_error::deserialize(toml::Value::Table(fields))
            .map(RawModel::BuiltIn)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = e.inner().message().to_owned();
                if path == "." || message.starts_with("unknown field") {
                    D::Error::custom(message)
                } else {
                    D::Error::custom(format!("`{path}`: {message}"))
                }
            })
    }
}

/// The built-in families' fields.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum BuiltInModel {
    Mlp {
        #[serde(default)]
        hidden: Vec<usize>,
        #[serde(default = "relu")]
        activation: String,
        #[serde(default = "yes")]
        bias: bool,
        embedding: Option<usize>,
        context: Option<usize>,
    },
    Linear2 {
        hidden: usize,
    },
    Rnn {
        hidden: usize,
        #[serde(default = "unit")]
        alpha: f32,
        #[serde(default = "relu")]
        activation: String,
        #[serde(default)]
        bias: bool,
    },
    Gru {
        hidden: usize,
    },
    Lstm {
        hidden: usize,
    },
    Transformer {
        d_model: usize,
        heads: usize,
        layers: usize,
        /// 0: attention-only blocks.
        d_ff: Option<usize>,
        #[serde(default = "yes")]
        layer_norm: bool,
        activation: Option<String>,
        /// `false`: no input embedding; the inputs are the residual stream.
        #[serde(default = "yes")]
        embed: bool,
        /// `false`: no learned position table.
        #[serde(default = "yes")]
        positions: bool,
        /// `false`: no attention output projection.
        #[serde(default = "yes")]
        attn_out: bool,
        /// `false`: attention scores are not scaled by 1/sqrt(head width).
        #[serde(default = "yes")]
        attn_scale: bool,
        /// Widths of ReLU layers before the readout.
        #[serde(default)]
        head: Vec<usize>,
    },
}

fn relu() -> String {
    "relu".into()
}

fn yes() -> bool {
    true
}

fn unit() -> f32 {
    1.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrune {
    #[serde(default = "fifth")]
    pub fraction: f64,
    pub reset: Option<f32>,
}

fn fifth() -> f64 {
    0.2
}

impl Default for RawPrune {
    fn default() -> Self {
        RawPrune {
            fraction: fifth(),
            reset: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOptimizer {
    #[serde(default = "adamw")]
    pub method: String,
    #[serde(default = "lr")]
    pub lr: f32,
    #[serde(default = "momentum")]
    pub momentum: f32,
    #[serde(default)]
    pub weight_decay: f32,
    #[serde(default = "beta2")]
    pub beta2: f32,
    #[serde(default = "eps")]
    pub eps: f32,
    pub clip: Option<f32>,
    #[serde(default = "constant")]
    pub schedule: String,
    #[serde(default)]
    pub warmup: u32,
    #[serde(default)]
    pub cooldown: u32,
}

fn adamw() -> String {
    "adamw".into()
}
fn lr() -> f32 {
    1e-3
}
fn momentum() -> f32 {
    0.9
}
fn beta2() -> f32 {
    0.999
}
fn eps() -> f32 {
    1e-8
}
fn constant() -> String {
    "constant".into()
}

impl Default for RawOptimizer {
    fn default() -> Self {
        RawOptimizer {
            method: adamw(),
            lr: lr(),
            momentum: momentum(),
            weight_decay: 0.0,
            beta2: beta2(),
            eps: eps(),
            clip: None,
            schedule: constant(),
            warmup: 0,
            cooldown: 0,
        }
    }
}

/// `align`: a literal direction, or `"task"` (the environment's task
/// direction).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawAlign {
    Direction(Vec<f32>),
    Named(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDevelop {
    pub init: Option<String>,
    pub gain: Option<f32>,
    pub density: Option<f64>,
    pub rank: Option<usize>,
    pub connectome: Option<bool>,
    pub scale: Option<f32>,
    pub align: Option<RawAlign>,
    pub alignment: Option<f64>,
    pub rank_scale: Option<String>,
    #[serde(default)]
    pub matrix: Vec<RawMatrixRule>,
}

#[derive(Debug, Default)]
pub(crate) struct RawRule {
    pub init: Option<String>,
    pub gain: Option<f32>,
    pub density: Option<f64>,
    pub rank: Option<usize>,
    pub connectome: Option<bool>,
    pub scale: Option<f32>,
    pub align: Option<RawAlign>,
    pub alignment: Option<f64>,
    pub rank_scale: Option<String>,
    /// Only on a matrix rule.
    pub dale: Option<f64>,
    /// Only on a matrix rule.
    pub cell_types: Option<String>,
    /// Only on a matrix rule.
    pub cell_scale: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMatrixRule {
    pub name: String,
    pub init: Option<String>,
    pub gain: Option<f32>,
    pub density: Option<f64>,
    pub rank: Option<usize>,
    pub connectome: Option<bool>,
    pub scale: Option<f32>,
    pub align: Option<RawAlign>,
    pub alignment: Option<f64>,
    pub rank_scale: Option<String>,
    pub dale: Option<f64>,
    pub cell_types: Option<String>,
    pub cell_scale: Option<String>,
}
