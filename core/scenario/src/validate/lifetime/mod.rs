//! The `[lifetime]` checks: they build the environment (so a missing data
//! file or a bad parameter is caught by `lineage validate`) and check that
//! the model fits the environment's task and that every development rule
//! names a weight matrix that exists, with a rank it can have.

use std::path::{Path, PathBuf};

use lineage_env::{MAX_TEACHER_INPUTS, MAX_TRIAL_STEPS, Task};
use lineage_evo::GenomeSpec;
use lineage_learn::spec::ParamInfo;
use lineage_learn::{DeviceChoice, Hyper, LifetimeSpec};

use crate::lifetime::{ConnectomeBits, Inheritance, LifetimeConfig, MatrixRule, Rewire};
use crate::memory::{self, Budget, MemoryEstimate, MemoryPart};
use crate::raw::lifetime::{BuiltInModel, RawEnvironment, RawLifetime, RawModel};

/// The `[lifetime]` checks, reporting through `at(field, message)`.
pub(crate) struct Check<'a, E> {
    pub at: &'a dyn Fn(&str, String) -> E,
    /// Folder a relative data path in `field` resolves against.
    pub dir_of: &'a dyn Fn(&str) -> Option<PathBuf>,
    /// The memory limit, and the environment data built so far.
    pub budget: &'a Budget,
    /// Organisms per generation.
    pub population: usize,
    /// The run's seed, which an environment's `seed = "run"` takes.
    pub seed: u64,
    /// The scenario's `[plugins]`, which an environment `plugin = ...`
    /// names.
    pub plugins: &'a [crate::PluginRef],
}

/// Widths past these (layers, embeddings, inputs, classes) are almost
/// surely typos; they also keep every product of sizes below overflow.
const MAX_WIDTH: usize = 1 << 20;
/// The most layers of a model.
const MAX_LAYERS: usize = 1024;
/// The longest context (tokens or sequence steps).
const MAX_CONTEXT: usize = 1 << 20;
/// The most examples (or tokens) of a data budget, held-out set or corpus.
const MAX_EXAMPLES: usize = 1 << 40;
/// The largest minibatch.
const MAX_BATCH: usize = 1 << 24;
/// The most lifetime steps.
const MAX_STEPS: u32 = 1 << 30;
/// The largest vocabulary or number of hidden states of a generated
/// language.
const MAX_SYMBOLS: usize = 1 << 24;
/// The most edges moved or flipped per newborn.
const MAX_REWIRE: usize = 1 << 32;

impl<E> Check<'_, E> {
    fn err<T>(&self, field: &str, message: impl Into<String>) -> Result<T, E> {
        Err((self.at)(&format!("lifetime.{field}"), message.into()))
    }

    fn at_most(&self, field: &str, value: usize, max: usize) -> Result<(), E> {
        if value > max {
            return self.err(field, format!("expected at most {max}, found {value}"));
        }
        Ok(())
    }

    /// Upper bounds of every size field, checked before anything is built
    /// or multiplied.
    fn bounds(&self, raw: &RawLifetime) -> Result<(), E> {
        self.at_most("budget", raw.budget, MAX_EXAMPLES)?;
        self.at_most("batch", raw.batch, MAX_BATCH)?;
        self.at_most("steps", raw.steps as usize, MAX_STEPS as usize)?;
        self.at_most("rewire.edges", raw.rewire.edges, MAX_REWIRE)?;
        self.at_most("rewire.flips", raw.rewire.flips, MAX_REWIRE)?;
        if let Some(r) = raw.develop.rank {
            self.at_most("develop.rank", r, MAX_WIDTH)?;
        }
        for (i, m) in raw.develop.matrix.iter().enumerate() {
            if let Some(r) = m.rank {
                self.at_most(&format!("develop.matrix[{i}].rank"), r, MAX_WIDTH)?;
            }
        }
        let env = |name: &str| format!("environment.{name}");
        let widths: Vec<(&str, usize)> = match &raw.environment {
            // The plugin declares its sizes; the host bounds them.
            RawEnvironment::Plugin { .. } => Vec::new(),
            RawEnvironment::GaussianClusters {
                classes,
                dim,
                heldout,
                ..
            } => {
                self.at_most(&env("heldout"), *heldout, MAX_EXAMPLES)?;
                vec![("classes", *classes), ("dim", *dim)]
            }
            RawEnvironment::Teacher {
                inputs,
                hidden,
                outputs,
                heldout,
                ..
            } => {
                self.at_most(&env("heldout"), *heldout, MAX_EXAMPLES)?;
                vec![
                    ("inputs", *inputs),
                    ("hidden", *hidden),
                    ("outputs", *outputs),
                ]
            }
            RawEnvironment::Sinusoids { heldout } => {
                self.at_most(&env("heldout"), *heldout, MAX_EXAMPLES)?;
                Vec::new()
            }
            RawEnvironment::LinearTeacher {
                inputs, heldout, ..
            } => {
                self.at_most(&env("heldout"), *heldout, MAX_EXAMPLES)?;
                self.at_most(&env("inputs"), *inputs, MAX_TEACHER_INPUTS)?;
                Vec::new()
            }
            RawEnvironment::Decision {
                coherences,
                stimulus_steps,
                heldout,
                ..
            } => {
                self.at_most(&env("heldout"), *heldout, MAX_EXAMPLES)?;
                self.at_most(&env("coherences"), coherences.len(), MAX_SYMBOLS)?;
                self.at_most(&env("stimulus_steps"), *stimulus_steps, MAX_TRIAL_STEPS)?;
                Vec::new()
            }
            RawEnvironment::DelayedMatch {
                stimuli,
                sample_steps,
                delay_steps,
                test_steps,
                heldout,
                ..
            } => {
                self.at_most(&env("heldout"), *heldout, MAX_EXAMPLES)?;
                self.at_most(&env("stimuli"), *stimuli, MAX_TRIAL_STEPS)?;
                self.at_most(&env("sample_steps"), *sample_steps, MAX_TRIAL_STEPS)?;
                self.at_most(&env("delay_steps"), *delay_steps, MAX_TRIAL_STEPS)?;
                self.at_most(&env("test_steps"), *test_steps, MAX_TRIAL_STEPS)?;
                Vec::new()
            }
            RawEnvironment::Text {
                context, heldout, ..
            } => {
                self.at_most(&env("heldout"), *heldout, MAX_EXAMPLES)?;
                self.at_most(&env("context"), *context, MAX_CONTEXT)?;
                Vec::new()
            }
            RawEnvironment::Dataset {
                context, heldout, ..
            } => {
                self.at_most(&env("heldout"), *heldout, MAX_EXAMPLES)?;
                self.at_most(&env("context"), context.unwrap_or(0), MAX_CONTEXT)?;
                Vec::new()
            }
            RawEnvironment::Icl {
                heldout,
                probe_sequences,
                positions,
                max_pairs,
                pairs,
                ..
            } => {
                self.at_most(&env("heldout"), *heldout, MAX_EXAMPLES)?;
                self.at_most(&env("probe_sequences"), *probe_sequences, MAX_EXAMPLES)?;
                self.at_most(&env("pairs"), *pairs, MAX_CONTEXT)?;
                self.at_most(&env("max_pairs"), max_pairs.unwrap_or(0), MAX_CONTEXT)?;
                if !matches!(positions.as_str(), "onehot" | "random_offset") {
                    return self.err(
                        &env("positions"),
                        format!(
                            "expected \"onehot\" (the token's index) or \"random_offset\" (Reddy's: the one-hot at a random offset in 2 max_pairs + 1 slots), found {positions:?}"
                        ),
                    );
                }
                if max_pairs.is_some() && positions != "random_offset" {
                    return self.err(
                        &env("max_pairs"),
                        "`max_pairs` sizes the slots of `positions = \"random_offset\"`",
                    );
                }
                Vec::new()
            }
            RawEnvironment::Hmm {
                tokens,
                states,
                successors,
                emissions,
                context,
                corpus,
                heldout,
                ..
            } => {
                self.at_most(&env("heldout"), *heldout, MAX_EXAMPLES)?;
                self.at_most(&env("corpus"), *corpus, MAX_EXAMPLES)?;
                self.at_most(&env("context"), *context, MAX_CONTEXT)?;
                self.at_most(&env("tokens"), *tokens, MAX_SYMBOLS)?;
                self.at_most(&env("states"), *states, MAX_SYMBOLS)?;
                let s = successors.range();
                self.at_most(&env("successors"), *s.start().max(s.end()), MAX_SYMBOLS)?;
                let e = emissions.range();
                self.at_most(&env("emissions"), *e.start().max(e.end()), MAX_SYMBOLS)?;
                Vec::new()
            }
        };
        for (name, value) in widths {
            self.at_most(&env(name), value, MAX_WIDTH)?;
        }
        let model = match &raw.model {
            RawModel::BuiltIn(model) => model,
            RawModel::Registered { fields, .. } => {
                // A registered family's whole numbers are sizes as far as
                // these bounds go.
                for (name, value) in fields {
                    if let toml::Value::Integer(v) = value {
                        let v = usize::try_from(*v).unwrap_or(0);
                        self.at_most(&format!("model.{name}"), v, MAX_WIDTH)?;
                    }
                }
                return Ok(());
            }
        };
        match model {
            BuiltInModel::Mlp {
                hidden,
                embedding,
                context,
                ..
            } => {
                self.at_most("model.hidden", hidden.len(), MAX_LAYERS)?;
                for (i, h) in hidden.iter().enumerate() {
                    self.at_most(&format!("model.hidden[{i}]"), *h, MAX_WIDTH)?;
                }
                self.at_most("model.embedding", embedding.unwrap_or(0), MAX_WIDTH)?;
                self.at_most("model.context", context.unwrap_or(0), MAX_CONTEXT)?;
            }
            BuiltInModel::Linear2 { hidden }
            | BuiltInModel::Rnn { hidden, .. }
            | BuiltInModel::Gru { hidden }
            | BuiltInModel::Lstm { hidden } => {
                self.at_most("model.hidden", *hidden, MAX_WIDTH)?;
            }
            BuiltInModel::Transformer {
                d_model,
                heads,
                layers,
                d_ff,
                ..
            } => {
                self.at_most("model.d_model", *d_model, MAX_WIDTH)?;
                self.at_most("model.heads", *heads, MAX_WIDTH)?;
                self.at_most("model.layers", *layers, MAX_LAYERS)?;
                self.at_most("model.d_ff", d_ff.unwrap_or(0), MAX_WIDTH)?;
            }
        }
        Ok(())
    }

    /// The checked `[lifetime]`, and the memory its phase needs; refuses
    /// an environment whose data would not fit before building it.
    pub(crate) fn lifetime(
        &self,
        raw: &RawLifetime,
        genome: &GenomeSpec,
    ) -> Result<(LifetimeConfig, MemoryEstimate), E> {
        self.bounds(raw)?;
        let file_len = match &raw.environment {
            RawEnvironment::Text { path, .. } => {
                let file = self.data_path("lifetime.environment.path", path);
                std::fs::metadata(&file).map_or(0, |m| m.len())
            }
            RawEnvironment::Dataset {
                path, heldout_path, ..
            } => {
                let bound = |field: &str, p: &str| {
                    let file = self.data_path(&format!("lifetime.environment.{field}"), p);
                    lineage_env::dataset::read::decoded_bound(&file)
                };
                let held = heldout_path
                    .as_deref()
                    .map_or(0, |h| bound("heldout_path", h));
                bound("path", path).saturating_add(held)
            }
            _ => 0,
        };
        let env_parts = memory::environment(&raw.environment, file_len);
        let mut before = MemoryEstimate {
            held: [
                env_parts.clone(),
                memory::building(&raw.environment, file_len),
            ]
            .concat(),
            generation: memory::generation(self.population, genome, None),
        };
        let earlier = self.budget.held.get();
        if earlier > 0 {
            before.held.push(MemoryPart {
                what: "environment data of earlier phases and conditions".into(),
                field: "lifetime.environment".into(),
                bytes: earlier,
            });
        }
        if let Some((field, message)) = self.budget.refuse(&before) {
            return Err((self.at)(&field, message));
        }
        let (environment, task, declared) = self.environment(&raw.environment, &before)?;
        // A plugin's sizes are known once it declared its task.
        let env_parts = declared.unwrap_or(env_parts);
        let env_bytes = env_parts
            .iter()
            .fold(0u64, |a, p| a.saturating_add(p.bytes));
        self.budget.held.set(earlier.saturating_add(env_bytes));
        let model = self.model(&raw.model, &task)?;
        if let Err(m) = model.check_task(&task) {
            return self.err("model", m);
        }
        if raw.budget == 0 {
            return self.err(
                "budget",
                "expected a data budget of at least 1 example, found 0",
            );
        }
        if let Some(n) = environment.env.draw_limit()
            && raw.budget > n
        {
            return self.err(
                "budget",
                format!(
                    "a lifetime cannot draw {} examples: the data set's training part holds {n}",
                    raw.budget
                ),
            );
        }
        if raw.batch == 0 {
            return self.err(
                "batch",
                "expected a minibatch of at least 1 example, found 0",
            );
        }
        if let Task::NextToken { context, .. } = task
            && raw.budget < context
        {
            return self.err(
                "budget",
                format!("a budget of {} tokens does not fill one window of the environment's context ({context})", raw.budget),
            );
        }
        let optimizer = self.optimizer(&raw.optimizer)?;
        let params = model.params();
        let direction = environment.env.task_direction();
        let task_align = TaskAlign {
            environment: environment.env.name(),
            direction: direction.as_deref(),
        };
        let rules = self.rules(&raw.develop, &params, &task_align)?;
        let genes = self.genes(genome, &model, &rules)?;
        if genes.weights.is_some()
            && let Some(i) = raw.develop.matrix.iter().position(|m| m.dale.is_some())
        {
            return self.err(
                &format!("develop.matrix[{i}].dale"),
                "a `weights` genome gives the birth weights themselves: it cannot be combined with `dale`",
            );
        }
        let connectome = connectome_bits(&params, &rules);
        let needed: usize = connectome.iter().map(|c| 2 * c.len).sum();
        if needed > 0 && genome.bits != needed {
            return Err((self.at)(
                "genome.bits",
                format!(
                    "the connectome needs {needed} bits (a mask bit and a sign bit for each of {} weights), found {}",
                    needed / 2,
                    genome.bits
                ),
            ));
        }
        let inheritance = match raw.inheritance.as_str() {
            "darwinian" => Inheritance::Darwinian,
            "lamarckian" => {
                if !(raw.lamarckian_noise >= 0.0 && raw.lamarckian_noise.is_finite()) {
                    return self.err(
                        "lamarckian_noise",
                        format!(
                            "expected a finite noise >= 0, found {}",
                            raw.lamarckian_noise
                        ),
                    );
                }
                Inheritance::Lamarckian {
                    noise: raw.lamarckian_noise as f32,
                }
            }
            "prune" => {
                let p = &raw.prune;
                if !(0.0..1.0).contains(&p.fraction) {
                    return self.err(
                        "prune.fraction",
                        format!("expected a fraction in [0, 1), found {}", p.fraction),
                    );
                }
                if let Some(r) = p.reset
                    && !(r > 0.0 && r.is_finite())
                {
                    return self.err(
                        "prune.reset",
                        format!("expected a positive reset magnitude, found {r}"),
                    );
                }
                if genes.weights.is_some() || !connectome.is_empty() {
                    return self.err(
                        "inheritance",
                        "`prune` inherits the connectome through weights; it cannot be combined with a connectome or `weights` genome",
                    );
                }
                Inheritance::Prune {
                    fraction: p.fraction,
                    reset: p.reset,
                }
            }
            other => {
                return self.err(
                    "inheritance",
                    format!("unknown inheritance `{other}` (expected one of: darwinian, lamarckian, prune)"),
                );
            }
        };
        let device = DeviceChoice::parse(&raw.device).ok_or_else(|| {
            (self.at)(
                "lifetime.device",
                format!(
                    "unknown device `{}` (expected one of: cpu, cuda, auto)",
                    raw.device
                ),
            )
        })?;
        let candle_device = match device.device() {
            Ok(d) => d,
            Err(e) => return self.err("device", e.to_string()),
        };
        let path = lineage_learn::Path::parse(&raw.path).ok_or_else(|| {
            (self.at)(
                "lifetime.path",
                format!(
                    "unknown training path `{}` (expected one of: {})",
                    raw.path,
                    lineage_learn::Path::NAMES
                ),
            )
        })?;
        if let Some(path) = path
            && let Err(e) = path.supports(&model, &candle_device)
        {
            return self.err("path", e);
        }
        let curve_heldout = raw.curve_heldout.unwrap_or(usize::MAX);
        if curve_heldout == 0 {
            return self.err(
                "curve_heldout",
                "expected at least 1 held-out example per curve point, found 0",
            );
        }
        let rw = &raw.rewire;
        if !(rw.density_sigma >= 0.0 && rw.density_sigma.is_finite()) {
            return self.err(
                "rewire.density_sigma",
                format!("expected a finite sigma >= 0, found {}", rw.density_sigma),
            );
        }
        if (rw.edges > 0 || rw.flips > 0 || rw.density_sigma > 0.0) && connectome.is_empty() {
            return self.err(
                "rewire",
                "connectome mutation needs a connectome genome: set `develop.connectome = true` (or on a matrix)",
            );
        }
        let rewire = Rewire {
            edges: rw.edges,
            flips: rw.flips,
            density_sigma: rw.density_sigma,
        };
        let config = LifetimeConfig {
            rewire,
            environment,
            task,
            budget: raw.budget,
            life: LifetimeSpec {
                batch: raw.batch,
                eval_every: raw.eval_every,
                curve_heldout,
                optimizer,
            },
            hyper: Hyper {
                lr: raw.optimizer.lr,
                momentum: raw.optimizer.momentum,
                weight_decay: raw.optimizer.weight_decay,
                steps: raw.steps,
            },
            genes,
            rules,
            connectome,
            inheritance,
            device,
            path,
            model,
        };
        // A `steps` gene may lengthen lifetimes past `steps`.
        let steps = config.genes.steps.map_or(raw.steps, |i| {
            let max = genome.genes[i].max.round();
            if max > raw.steps as f64 {
                max.min(u32::MAX as f64) as u32
            } else {
                raw.steps
            }
        });
        let estimate = MemoryEstimate {
            held: env_parts,
            generation: memory::generation(self.population, genome, Some((&config, raw, steps))),
        };
        let mut at_peak = estimate.clone();
        if earlier > 0 {
            at_peak.held.push(MemoryPart {
                what: "environment data of earlier phases and conditions".into(),
                field: "lifetime.environment".into(),
                bytes: earlier,
            });
        }
        if let Some((field, message)) = self.budget.refuse(&at_peak) {
            return Err((self.at)(&field, message));
        }
        Ok((config, estimate))
    }

    /// `path` resolved against the folder of the file that wrote it.
    pub(crate) fn data_path(&self, field: &str, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            return p.to_owned();
        }
        match (self.dir_of)(field) {
            Some(dir) => dir.join(p),
            None => p.to_owned(),
        }
    }
}

/// What `align = "task"` resolves to: the environment's task direction.
pub(super) struct TaskAlign<'a> {
    pub(super) environment: &'a str,
    pub(super) direction: Option<&'a [f32]>,
}

pub(super) fn connectome_bits(
    params: &[ParamInfo],
    rules: &[Option<MatrixRule>],
) -> Vec<ConnectomeBits> {
    let chosen: Vec<usize> = rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.as_ref().is_some_and(|r| r.connectome))
        .map(|(i, _)| i)
        .collect();
    let total: usize = chosen.iter().map(|&i| params[i].len()).sum();
    let mut at = 0;
    chosen
        .into_iter()
        .map(|param| {
            let len = params[param].len();
            let c = ConnectomeBits {
                param,
                mask: at,
                signs: total + at,
                len,
            };
            at += len;
            c
        })
        .collect()
}

mod develop;
mod environment;

pub(in crate::validate) use develop::V1_BILLEH2020;
mod model;

#[cfg(test)]
mod tests;
