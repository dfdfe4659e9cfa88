//! Environments that plugins supply (ABI 4): [`PluginEnvironment`] is an
//! instance of an `LN_ENVIRONMENT` offering behind the same
//! [`lineage_env::Environment`] trait as the built-in worlds, so that
//! everything that works with those (the environment schedule, conditions,
//! islands, the memory estimate, `lineage export`, streaming lifetimes)
//! works with it.
//!
//! The host owns every buffer: it sizes them from the task the plugin
//! declared ([`Shape`]), prefills them so that an unwritten value shows,
//! and checks what comes back ([`check`]) before a model sees it: the
//! count written, finite reals, labels and tokens in range. The plugin's
//! only randomness is the seed of each fill: for training data, one drawn
//! from the organism's learning stream; for the held-out and probe sets,
//! ones derived from the run's seed.
//!
//! - `raw`: the calls into a plugin loaded in this process, shared by the
//!   engine and the worker process.

mod raw;

use std::sync::Arc;

use lineage_env::{Batch, EnvError, Environment, IGNORE, Lifetime, ProbeSet, Task};
use lineage_plugin::Kind;
use lineage_plugin::abi::*;
use rand::RngCore;

use crate::library::Plugin;
use crate::{Instance, PluginError};

pub(crate) use raw::{describe, fill};

/// The largest number of values one buffer of an environment's batch may
/// hold (2^31: 8 GiB of `f32`), checked before anything is allocated.
pub const MAX_VALUES: usize = 1 << 31;
/// The most probe sets an environment may declare.
pub const MAX_PROBES: usize = 256;

/// The value the host prefills labels and tokens with: out of range for
/// every task, and not [`IGNORE`].
pub(crate) const UNSET: u32 = u32::MAX - 1;

/// What an instance declares about itself, as it declared it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Described {
    pub(crate) task: LnTask,
    /// Name, examples, choices.
    pub(crate) probes: Vec<(String, usize, Option<Vec<u32>>)>,
    pub(crate) direction: Option<Vec<f32>>,
}

/// The sizes of the buffers of one fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) kind: u32,
    pub(crate) n: usize,
    pub(crate) steps: usize,
    pub(crate) x: usize,
    pub(crate) y: usize,
    pub(crate) labels: usize,
    pub(crate) tokens: usize,
}

impl Shape {
    /// The bytes its buffers take (every value is 4 bytes).
    pub(crate) fn bytes(&self) -> u64 {
        (self.x as u64 + self.y as u64 + self.labels as u64 + self.tokens as u64) * 4
    }

    /// The buffers of `n` examples of `task`, each at most [`MAX_VALUES`].
    pub(crate) fn of(task: &Task, n: usize) -> Result<Shape, String> {
        let mul = |a: usize, b: usize| {
            a.checked_mul(b)
                .filter(|&v| v <= MAX_VALUES)
                .ok_or_else(|| format!("{n} examples of this task exceed {MAX_VALUES} values"))
        };
        let blank = Shape {
            kind: 0,
            n,
            steps: 0,
            x: 0,
            y: 0,
            labels: 0,
            tokens: 0,
        };
        Ok(match *task {
            Task::Regression { inputs, outputs } => Shape {
                kind: LN_DATA_DENSE,
                x: mul(n, inputs)?,
                y: mul(n, outputs)?,
                ..blank
            },
            Task::Classification { inputs, .. } => Shape {
                kind: LN_DATA_LABELED,
                x: mul(n, inputs)?,
                labels: n,
                ..blank
            },
            Task::SequenceClassification { inputs, steps, .. } => Shape {
                kind: LN_DATA_SEQUENCES,
                steps,
                x: mul(mul(n, steps)?, inputs)?,
                labels: mul(n, steps)?,
                ..blank
            },
            Task::NextToken { context, .. } => Shape {
                kind: LN_DATA_TOKENS,
                steps: context + 1,
                tokens: mul(n, context + 1)?,
                ..blank
            },
        })
    }
}

/// The buffers of one fill and the count the plugin says it wrote.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Filled {
    pub(crate) x: Vec<f32>,
    pub(crate) y: Vec<f32>,
    pub(crate) labels: Vec<u32>,
    pub(crate) tokens: Vec<u32>,
    pub(crate) written: usize,
}

impl Filled {
    /// Prefilled buffers of `shape`.
    pub(crate) fn blank(shape: &Shape) -> Filled {
        Filled {
            x: vec![f32::NAN; shape.x],
            y: vec![f32::NAN; shape.y],
            labels: vec![UNSET; shape.labels],
            tokens: vec![UNSET; shape.tokens],
            written: 0,
        }
    }
}

/// Which examples a fill is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    Train,
    Heldout,
    Probe(usize),
}

impl Part {
    /// `what` and `index` of `LnEnvironmentApi::fill`.
    pub(crate) fn raw(self) -> (u32, usize) {
        match self {
            Part::Train => (LN_FILL_TRAIN, 0),
            Part::Heldout => (LN_FILL_HELDOUT, 0),
            Part::Probe(i) => (LN_FILL_PROBE, i),
        }
    }

    pub(crate) fn from_raw(what: u32, index: usize) -> Option<Part> {
        match what {
            LN_FILL_TRAIN => Some(Part::Train),
            LN_FILL_HELDOUT => Some(Part::Heldout),
            LN_FILL_PROBE => Some(Part::Probe(index)),
            _ => None,
        }
    }
}

/// Derives the `k`th seed from a run's seed (SplitMix64's finaliser over
/// their combination), so that the held-out set and each probe set draw
/// from streams of their own.
pub fn derive_seed(seed: u64, k: u64) -> u64 {
    let mut z = seed ^ k.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An instance of a plugin's environment offering, with its task, held-out
/// set, probe sets and direction fetched and checked once.
#[derive(Debug)]
pub struct PluginEnvironment {
    instance: Instance,
    /// `plugin:offering`.
    label: String,
    task: Task,
    heldout: Arc<Batch>,
    probes: Vec<ProbeSet>,
    direction: Option<Vec<f32>>,
}

impl PluginEnvironment {
    /// Creates `offering` of `plugin`, configured by `toml` and its
    /// flattened `entries`, and fetches its held-out and probe sets with
    /// seeds derived from `seed`. Every error names the plugin and the
    /// offering; a refused configuration carries the plugin's message
    /// (which names the key). `admit` is asked, with the bytes the held-out
    /// and probe sets the plugin declared will take, before they are
    /// allocated: its refusal is the error.
    pub fn create(
        plugin: &Arc<Plugin>,
        offering: &str,
        toml: &str,
        entries: &[(String, String)],
        seed: u64,
        admit: &dyn Fn(u64) -> Result<(), String>,
    ) -> Result<PluginEnvironment, EnvError> {
        let error = |message: String| EnvError::Plugin {
            plugin: plugin.name.clone(),
            offering: offering.to_owned(),
            message,
        };
        let (_, info) = plugin.offering(offering).map_err(|e| match e {
            PluginError::UnknownOffering { available, .. } => {
                error(format!("no such offering; it offers: {available}"))
            }
            other => error(other.to_string()),
        })?;
        if info.kind != Kind::Environment {
            return Err(error(format!(
                "`{offering}` is a {}, not an environment",
                match info.kind {
                    Kind::Fitness => "fitness function",
                    _ => "suite",
                }
            )));
        }
        let instance = Instance::create(plugin, offering, toml, entries).map_err(|e| match e {
            PluginError::Create { message, .. } => error(message),
            other => error(other.to_string()),
        })?;
        let described = instance.describe_environment().map_err(&error)?;
        let (task, probe_specs, direction) = checked(&described).map_err(&error)?;
        let mut env = PluginEnvironment {
            instance,
            label: format!("{}:{offering}", plugin.name),
            task,
            heldout: Arc::new(Batch::Labeled {
                n: 0,
                x: Vec::new(),
                labels: Vec::new(),
            }),
            probes: Vec::new(),
            direction,
        };
        let bytes = std::iter::once(described.task.heldout)
            .chain(probe_specs.iter().map(|(_, n, _)| *n))
            .map(|n| Shape::of(&env.task, n).map(|s| s.bytes()))
            .try_fold(0u64, |a, b| b.map(|b| a.saturating_add(b)))
            .map_err(&error)?;
        admit(bytes).map_err(&error)?;
        let heldout = env
            .draw(
                Part::Heldout,
                derive_seed(seed, 0),
                described.task.heldout,
                "the held-out set",
            )
            .map_err(&error)?;
        env.heldout = Arc::new(heldout);
        for (i, (name, n, choices)) in probe_specs.into_iter().enumerate() {
            let data = env
                .draw(
                    Part::Probe(i),
                    derive_seed(seed, 1 + i as u64),
                    n,
                    &format!("probe set `{name}`"),
                )
                .map_err(&error)?;
            env.probes.push(ProbeSet {
                name,
                data: Arc::new(data),
                choices,
            });
        }
        Ok(env)
    }

    /// `n` examples of `part` (`what`, for messages), drawn by the plugin
    /// from `seed` and checked.
    fn draw(&self, part: Part, seed: u64, n: usize, what: &str) -> Result<Batch, String> {
        let shape = Shape::of(&self.task, n).map_err(|m| format!("{what}: {m}"))?;
        let filled = self
            .instance
            .fill_environment(part, seed, &shape)
            .map_err(|m| format!("{what}: {m}"))?;
        check(&self.task, &shape, filled).map_err(|m| format!("{what}: {m}"))
    }

    /// The instance, for its plugin and offering.
    pub fn instance(&self) -> &Instance {
        &self.instance
    }
}

impl Environment for PluginEnvironment {
    fn name(&self) -> &str {
        &self.label
    }

    fn task(&self) -> Task {
        self.task.clone()
    }

    fn lifetime(&self, rng: &mut dyn RngCore, budget: usize) -> Result<Lifetime, EnvError> {
        let n = match self.task {
            Task::NextToken { context, .. } => lineage_env::windows(budget, context),
            _ => budget,
        };
        let train = self
            .draw(Part::Train, rng.next_u64(), n, "training data")
            .map_err(|message| EnvError::Plugin {
                plugin: self.instance.plugin().name.clone(),
                offering: self.instance.offering().name.clone(),
                message,
            })?;
        Ok(Lifetime {
            train,
            heldout: self.heldout.clone(),
        })
    }

    fn task_direction(&self) -> Option<Vec<f32>> {
        self.direction.clone()
    }

    fn probe_sets(&self) -> Vec<ProbeSet> {
        self.probes.clone()
    }

    fn plugin_library(&self) -> Option<(String, String)> {
        let plugin = self.instance.plugin();
        Some((
            plugin.name.clone(),
            plugin.sha256.clone().unwrap_or_default(),
        ))
    }
}

/// Limits on what a task may declare, so that nothing is sized from an
/// absurd number.
const MAX_INPUTS: usize = 1 << 20;
const MAX_CLASSES: usize = 1 << 24;
const MAX_STEPS: usize = 1 << 16;
const MAX_HELDOUT: usize = 1 << 24;

type Checked = (
    Task,
    Vec<(String, usize, Option<Vec<u32>>)>,
    Option<Vec<f32>>,
);

/// The task, probe sets and direction an instance declared, checked.
pub(crate) fn checked(d: &Described) -> Result<Checked, String> {
    let t = &d.task;
    let within = |what: &str, v: usize, lo: usize, hi: usize| {
        if (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(format!(
                "its task declares {what} = {v}; expected {lo} to {hi}"
            ))
        }
    };
    let task = match t.kind {
        LN_DATA_DENSE => Task::Regression {
            inputs: within("inputs", t.inputs, 1, MAX_INPUTS)?,
            outputs: within("outputs", t.outputs, 1, MAX_INPUTS)?,
        },
        LN_DATA_LABELED => Task::Classification {
            inputs: within("inputs", t.inputs, 1, MAX_INPUTS)?,
            classes: within("outputs (classes)", t.outputs, 2, MAX_CLASSES)?,
        },
        LN_DATA_SEQUENCES => Task::SequenceClassification {
            inputs: within("inputs", t.inputs, 1, MAX_INPUTS)?,
            classes: within("outputs (classes)", t.outputs, 2, MAX_CLASSES)?,
            steps: within("steps", t.steps, 1, MAX_STEPS)?,
        },
        LN_DATA_TOKENS => Task::NextToken {
            vocab: within("outputs (vocabulary)", t.outputs, 2, MAX_CLASSES)?,
            context: within("steps (context)", t.steps, 1, MAX_STEPS)?,
        },
        k => {
            return Err(format!(
                "its task declares kind {k}; expected LN_DATA_DENSE (1), LN_DATA_LABELED (2), LN_DATA_SEQUENCES (3) or LN_DATA_TOKENS (4)"
            ));
        }
    };
    within("heldout", t.heldout, 1, MAX_HELDOUT)?;
    Shape::of(&task, t.heldout)?;
    let classes = match task {
        Task::Classification { classes, .. } | Task::SequenceClassification { classes, .. } => {
            Some(classes)
        }
        _ => None,
    };
    if !d.probes.is_empty() && classes.is_none() {
        return Err(
            "it declares probe sets, but probe sets need a classification or sequence task".into(),
        );
    }
    let mut probes = Vec::with_capacity(d.probes.len());
    for (name, n, choices) in &d.probes {
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok {
            return Err(format!(
                "probe set name `{name}` is not made of a-z, 0-9 and _"
            ));
        }
        if probes
            .iter()
            .any(|(p, _, _): &(String, usize, _)| p == name)
        {
            return Err(format!("two probe sets are named `{name}`"));
        }
        within(
            &format!("probe set `{name}`'s examples"),
            *n,
            1,
            MAX_HELDOUT,
        )?;
        Shape::of(&task, *n)?;
        if let (Some(c), Some(classes)) = (choices, classes) {
            if c.is_empty() {
                return Err(format!("probe set `{name}` restricts to no choices"));
            }
            if let Some(bad) = c.iter().find(|&&l| l as usize >= classes) {
                return Err(format!(
                    "probe set `{name}` restricts to label {bad}, but the task has {classes} classes"
                ));
            }
        }
        probes.push((name.clone(), *n, choices.clone()));
    }
    if let Some(dir) = &d.direction {
        let inputs = match task {
            Task::Regression { inputs, .. }
            | Task::Classification { inputs, .. }
            | Task::SequenceClassification { inputs, .. } => inputs,
            Task::NextToken { .. } => 0,
        };
        if dir.len() != inputs {
            return Err(format!(
                "its task direction has {} values, but the task has {inputs} inputs",
                dir.len()
            ));
        }
        if let Some(i) = dir.iter().position(|v| !v.is_finite()) {
            return Err(format!("its task direction's value {i} is {}", dir[i]));
        }
    }
    Ok((task, probes, d.direction.clone()))
}

/// The batch a fill wrote, once its count and every value are checked
/// against `task`.
pub(crate) fn check(task: &Task, shape: &Shape, f: Filled) -> Result<Batch, String> {
    let n = shape.n;
    if f.written != n {
        return Err(format!(
            "the plugin says it wrote {} examples; {n} were asked for",
            f.written
        ));
    }
    let lens = (f.x.len(), f.y.len(), f.labels.len(), f.tokens.len());
    if lens != (shape.x, shape.y, shape.labels, shape.tokens) {
        return Err(format!(
            "buffers of {lens:?} values came back for {:?}",
            (shape.x, shape.y, shape.labels, shape.tokens)
        ));
    }
    let per = |len: usize| len / n.max(1);
    let reals = |name: &str, v: &[f32]| match v.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => Err(format!(
            "{name}[{i}] (example {}) is {}{}",
            i / per(v.len()).max(1),
            v[i],
            if v[i].is_nan() {
                " (left unwritten, or NaN)"
            } else {
                ""
            }
        )),
    };
    reals("x", &f.x)?;
    reals("y", &f.y)?;
    let ranged = |name: &str, v: &[u32], below: usize, ignore: bool| {
        let bad = v
            .iter()
            .position(|&l| (l as usize) >= below && !(ignore && l == IGNORE));
        match bad {
            None => Ok(()),
            Some(i) => Err(format!(
                "{name}[{i}] (example {}) is {}{}; expected below {below}{}",
                i / per(v.len()).max(1),
                v[i],
                if v[i] == UNSET {
                    " (left unwritten)"
                } else {
                    ""
                },
                if ignore { ", or LN_IGNORE" } else { "" }
            )),
        }
    };
    Ok(match *task {
        Task::Regression { .. } => Batch::Dense { n, x: f.x, y: f.y },
        Task::Classification { classes, .. } => {
            ranged("labels", &f.labels, classes, false)?;
            Batch::Labeled {
                n,
                x: f.x,
                labels: f.labels,
            }
        }
        Task::SequenceClassification { classes, steps, .. } => {
            ranged("labels", &f.labels, classes, true)?;
            Batch::Sequences {
                n,
                steps,
                x: f.x,
                labels: f.labels,
            }
        }
        Task::NextToken { vocab, context } => {
            ranged("tokens", &f.tokens, vocab, false)?;
            Batch::Tokens {
                n,
                len: context + 1,
                tokens: f.tokens,
            }
        }
    })
}

#[cfg(test)]
mod tests;
