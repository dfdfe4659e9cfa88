//! The `[lifetime]` checks: they build the environment (so a missing data
//! file or a bad parameter is caught by `lineage validate`) and check that
//! the model fits the environment's task and that every development rule
//! names a weight matrix that exists, with a rank it can have.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lineage_develop::InitLaw;
use lineage_env::{
    Decision, DelayedMatch, Environment, GaussianClusters, Hmm, HmmParams, Icl, IclParams,
    LinearTeacher, MAX_TEACHER_INPUTS, MAX_TRIAL_STEPS, Positions, Sinusoids, Task, TeacherNetwork,
    Text, Vocabulary,
};
use lineage_evo::GenomeSpec;
use lineage_learn::spec::{
    Activation, Embedding, GruSpec, MlpSpec, ModelSpec, ParamInfo, RnnSpec, SequenceInput,
    TransformerSpec,
};
use lineage_learn::{DeviceChoice, Hyper, LifetimeSpec, Method, OptimizerSpec, Schedule};

use crate::lifetime::{
    ConnectomeBits, EnvHandle, Inheritance, LearningGenes, LifetimeConfig, MatrixRule, Rewire,
};
use crate::memory::{self, Budget, MemoryEstimate, MemoryPart};
use crate::raw::lifetime::{
    RawAlign, RawDevelop, RawEnvironment, RawLifetime, RawModel, RawOptimizer, RawRule,
};

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
        match &raw.model {
            RawModel::Mlp {
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
            RawModel::Linear2 { hidden }
            | RawModel::Rnn { hidden, .. }
            | RawModel::Gru { hidden } => {
                self.at_most("model.hidden", *hidden, MAX_WIDTH)?;
            }
            RawModel::Transformer {
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
        let (environment, task) = self.environment(&raw.environment)?;
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
        if let Err(e) = device.device() {
            return self.err("device", e.to_string());
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

    fn environment(&self, raw: &RawEnvironment) -> Result<(EnvHandle, Task), E> {
        let built: Result<Arc<dyn Environment>, lineage_env::EnvError> = match raw {
            RawEnvironment::GaussianClusters {
                classes,
                dim,
                spread,
                heldout,
                seed,
            } => GaussianClusters::new(*classes, *dim, *spread, *heldout, seed.resolve(self.seed))
                .map(|e| Arc::new(e) as _),
            RawEnvironment::Teacher {
                inputs,
                hidden,
                outputs,
                noise,
                classify,
                heldout,
                seed,
            } => TeacherNetwork::new(
                *inputs,
                *hidden,
                *outputs,
                *noise,
                *classify,
                *heldout,
                seed.resolve(self.seed),
            )
            .map(|e| Arc::new(e) as _),
            RawEnvironment::Sinusoids { heldout } => {
                Sinusoids::new(*heldout).map(|e| Arc::new(e) as _)
            }
            RawEnvironment::LinearTeacher {
                inputs,
                kappa,
                heldout,
                seed,
            } => LinearTeacher::new(*inputs, *kappa, *heldout, seed.resolve(self.seed))
                .map(|e| Arc::new(e) as _),
            RawEnvironment::Decision {
                coherences,
                noise,
                stimulus_steps,
                heldout,
                seed,
            } => Decision::new(
                coherences.clone(),
                *noise,
                *stimulus_steps,
                *heldout,
                seed.resolve(self.seed),
            )
            .map(|e| Arc::new(e) as _),
            RawEnvironment::DelayedMatch {
                stimuli,
                sample_steps,
                delay_steps,
                test_steps,
                noise,
                heldout,
                seed,
            } => DelayedMatch::new(
                *stimuli,
                *sample_steps,
                *delay_steps,
                *test_steps,
                *noise,
                *heldout,
                seed.resolve(self.seed),
            )
            .map(|e| Arc::new(e) as _),
            RawEnvironment::Text {
                path,
                vocabulary,
                context,
                validation,
                heldout,
            } => {
                let vocabulary = match vocabulary.as_str() {
                    "bytes" => Vocabulary::Bytes,
                    "characters" => Vocabulary::Characters,
                    other => {
                        return self.err(
                            "environment.vocabulary",
                            format!(
                                "unknown vocabulary `{other}` (expected one of: bytes, characters)"
                            ),
                        );
                    }
                };
                let file = self.data_path("lifetime.environment.path", path);
                if !file.is_file() {
                    return self.err(
                        "environment.path",
                        format!("cannot read the text `{}`: no such file", file.display()),
                    );
                }
                Text::from_file(&file, vocabulary, *context, *validation, *heldout)
                    .map(|e| Arc::new(e) as _)
            }
            RawEnvironment::Icl {
                classes,
                dim,
                eps,
                labels,
                pairs,
                burstiness,
                p_bursty,
                zipf,
                p_novel,
                novel_classes,
                dynamic,
                positions,
                max_pairs,
                heldout,
                probe_sequences,
                seed,
            } => Icl::new(IclParams {
                classes: *classes,
                dim: *dim,
                eps: *eps,
                labels: *labels,
                pairs: *pairs,
                burstiness: *burstiness,
                p_bursty: *p_bursty,
                zipf: *zipf,
                p_novel: *p_novel,
                novel_classes: *novel_classes,
                dynamic: *dynamic,
                positions: if positions == "random_offset" {
                    Positions::RandomOffset {
                        max_pairs: max_pairs.unwrap_or(MAX_PAIRS_DEFAULT),
                    }
                } else {
                    Positions::OneHot
                },
                heldout: *heldout,
                probe_sequences: *probe_sequences,
                seed: seed.resolve(self.seed),
            })
            .map(|e| Arc::new(e) as _),
            RawEnvironment::Hmm {
                tokens,
                states,
                successors,
                concentration,
                emissions,
                zipf,
                context,
                corpus,
                heldout,
                seed,
            } => Hmm::new(&HmmParams {
                tokens: *tokens,
                states: *states,
                successors: successors.range(),
                concentration: *concentration,
                emissions: emissions.range(),
                zipf: *zipf,
                context: *context,
                corpus: *corpus,
                heldout: *heldout,
                seed: seed.resolve(self.seed),
            })
            .map(|e| Arc::new(e) as _),
        };
        let env = built.or_else(|e| {
            // Point at the parameter the environment names, when it is one
            // of the table's keys.
            let message = e.to_string();
            let field = message
                .split('`')
                .skip(1)
                .step_by(2)
                .find(|word| env_keys(raw).contains(word))
                .map_or("environment".to_owned(), |k| format!("environment.{k}"));
            self.err(&field, message)
        })?;
        let task = env.task();
        Ok((
            EnvHandle {
                env,
                description: format!("{raw:?}"),
            },
            task,
        ))
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

    fn model(&self, raw: &RawModel, task: &Task) -> Result<ModelSpec, E> {
        let (inputs, outputs) = match *task {
            Task::Regression { inputs, outputs } => (inputs, outputs),
            Task::Classification { inputs, classes } => (inputs, classes),
            Task::SequenceClassification {
                inputs, classes, ..
            } => (inputs, classes),
            Task::NextToken { vocab, .. } => (vocab, vocab),
        };
        let tokens = matches!(task, Task::NextToken { .. });
        let activation = |name: &str| {
            Activation::parse(name).ok_or_else(|| {
                (self.at)(
                    "lifetime.model.activation",
                    format!(
                        "unknown activation `{name}` (expected one of: {})",
                        Activation::NAMES.join(", ")
                    ),
                )
            })
        };
        let positive = |field: &str, v: usize| {
            if v == 0 {
                self.err(
                    &format!("model.{field}"),
                    format!("expected `{field}` of at least 1, found 0"),
                )
            } else {
                Ok(v)
            }
        };
        let seq_input = if tokens {
            SequenceInput::Tokens { vocab: inputs }
        } else {
            SequenceInput::Dense { dim: inputs }
        };
        Ok(match raw {
            RawModel::Mlp {
                hidden,
                activation: a,
                bias,
                embedding,
                context,
            } => {
                if let Some(i) = hidden.iter().position(|&h| h == 0) {
                    return self.err(
                        &format!("model.hidden[{i}]"),
                        "expected a layer width of at least 1, found 0",
                    );
                }
                let embedding = match (tokens, embedding, context) {
                    (true, Some(dim), Some(context)) => Some(Embedding {
                        vocab: inputs,
                        dim: positive("embedding", *dim)?,
                        context: positive("context", *context)?,
                    }),
                    (true, _, _) => {
                        return self.err("model", "an MLP language model needs `embedding` (width per token) and `context` (tokens read)");
                    }
                    (false, None, None) => None,
                    (false, _, _) => {
                        return self.err(
                            "model",
                            "`embedding` and `context` apply to token environments only",
                        );
                    }
                };
                let first = embedding.map_or(inputs, |e| e.dim * e.context);
                let mut widths = vec![first];
                widths.extend(hidden);
                widths.push(outputs);
                ModelSpec::Mlp(MlpSpec {
                    embedding,
                    widths,
                    activation: activation(a)?,
                    bias: *bias,
                })
            }
            RawModel::Linear2 { hidden } => {
                if tokens {
                    return self.err(
                        "model",
                        "a two-layer linear network reads real inputs, not tokens",
                    );
                }
                ModelSpec::Mlp(MlpSpec {
                    embedding: None,
                    widths: vec![inputs, positive("hidden", *hidden)?, outputs],
                    activation: Activation::Linear,
                    bias: false,
                })
            }
            RawModel::Rnn {
                hidden,
                alpha,
                activation: a,
                bias,
            } => {
                if !(*alpha > 0.0 && *alpha <= 1.0) {
                    return self.err(
                        "model.alpha",
                        format!("expected a leak in (0, 1], found {alpha}"),
                    );
                }
                ModelSpec::Rnn(RnnSpec {
                    input: seq_input,
                    hidden: positive("hidden", *hidden)?,
                    outputs,
                    alpha: *alpha,
                    activation: activation(a)?,
                    bias: *bias,
                })
            }
            RawModel::Gru { hidden } => ModelSpec::Gru(GruSpec {
                input: seq_input,
                hidden: positive("hidden", *hidden)?,
                outputs,
            }),
            RawModel::Transformer {
                d_model,
                heads,
                layers,
                d_ff,
                layer_norm,
                activation: a,
            } => {
                let d = positive("d_model", *d_model)?;
                let h = positive("heads", *heads)?;
                if d % h != 0 {
                    return self.err(
                        "model.heads",
                        format!("{h} heads do not divide d_model = {d}"),
                    );
                }
                let context =
                    match *task {
                        Task::NextToken { context, .. } => context,
                        Task::SequenceClassification { steps, .. } => steps,
                        _ => return self.err(
                            "model",
                            "a transformer reads sequences; this environment gives single examples",
                        ),
                    };
                ModelSpec::Transformer(TransformerSpec {
                    input: seq_input,
                    context,
                    d_model: d,
                    heads: h,
                    layers: positive("layers", *layers)?,
                    d_ff: positive("d_ff", d_ff.unwrap_or(4 * d))?,
                    outputs,
                    layer_norm: *layer_norm,
                    activation: a.as_deref().map_or(Ok(Activation::Gelu), activation)?,
                })
            }
        })
    }

    fn optimizer(&self, raw: &RawOptimizer) -> Result<OptimizerSpec, E> {
        let method = Method::parse(&raw.method).ok_or_else(|| {
            (self.at)(
                "lifetime.optimizer.method",
                format!(
                    "unknown optimiser `{}` (expected one of: {})",
                    raw.method,
                    Method::NAMES.join(", ")
                ),
            )
        })?;
        for (field, v, ok) in [
            ("lr", raw.lr, raw.lr > 0.0),
            ("momentum", raw.momentum, (0.0..1.0).contains(&raw.momentum)),
            ("weight_decay", raw.weight_decay, raw.weight_decay >= 0.0),
            ("beta2", raw.beta2, (0.0..1.0).contains(&raw.beta2)),
            ("eps", raw.eps, raw.eps > 0.0),
        ] {
            if !(ok && v.is_finite()) {
                return self.err(
                    &format!("optimizer.{field}"),
                    format!("`{field}` = {v} is out of range"),
                );
            }
        }
        if let Some(c) = raw.clip
            && !(c > 0.0 && c.is_finite())
        {
            return self.err(
                "optimizer.clip",
                format!("expected a positive gradient norm, found {c}"),
            );
        }
        let schedule = match raw.schedule.as_str() {
            "constant" => Schedule::Constant,
            "warmup-hold-cooldown" => Schedule::WarmupHoldCooldown {
                warmup: raw.warmup,
                cooldown: raw.cooldown,
            },
            "inverse-sqrt" => Schedule::InverseSqrt { warmup: raw.warmup },
            other => {
                return self.err(
                    "optimizer.schedule",
                    format!("unknown schedule `{other}` (expected one of: constant, warmup-hold-cooldown, inverse-sqrt)"),
                );
            }
        };
        Ok(OptimizerSpec {
            method,
            beta2: raw.beta2,
            eps: raw.eps,
            clip: raw.clip,
            schedule,
        })
    }

    fn rules(
        &self,
        raw: &RawDevelop,
        params: &[ParamInfo],
        task: &TaskAlign<'_>,
    ) -> Result<Vec<Option<MatrixRule>>, E> {
        let all = RawRule {
            init: raw.init.clone(),
            gain: raw.gain,
            density: raw.density,
            rank: raw.rank,
            connectome: raw.connectome,
            scale: raw.scale,
            align: raw.align.clone(),
            alignment: raw.alignment,
            dale: None,
        };
        let base = self.rule("develop", &all, None, None, task)?;
        let mut rules: Vec<Option<MatrixRule>> = params
            .iter()
            .map(|p| p.role.maskable().then(|| base.clone()))
            .collect();
        for (i, m) in raw.matrix.iter().enumerate() {
            let field = format!("develop.matrix[{i}]");
            let Some(k) = params.iter().position(|p| p.name == m.name) else {
                let names: Vec<&str> = params
                    .iter()
                    .filter(|p| p.role.maskable())
                    .map(|p| p.name.as_str())
                    .collect();
                return self.err(
                    &format!("{field}.name"),
                    format!(
                        "the model has no weight matrix `{}` (its matrices: {})",
                        m.name,
                        names.join(", ")
                    ),
                );
            };
            if !params[k].role.maskable() {
                return self.err(
                    &format!("{field}.name"),
                    format!("`{}` is a bias or gain, not a weight matrix", m.name),
                );
            }
            let own = RawRule {
                init: m.init.clone(),
                gain: m.gain,
                density: m.density,
                rank: m.rank,
                connectome: m.connectome,
                scale: m.scale,
                align: m.align.clone(),
                alignment: m.alignment,
                dale: m.dale,
            };
            rules[k] = Some(self.rule(&field, &own, Some(base.clone()), Some(&params[k]), task)?);
        }
        // The base rule's rank and direction must fit every matrix they
        // apply to.
        for (p, rule) in params.iter().zip(&rules) {
            let Some(rule) = rule else { continue };
            if let Some(r) = base.rank
                && rule.rank == Some(r)
            {
                self.rank_fits("develop.rank", r, p)?;
            }
            if let (Some(a), Some(b)) = (&base.align, &rule.align)
                && Arc::ptr_eq(a, b)
            {
                self.align_fits("develop.align", a, p)?;
            }
        }
        Ok(rules)
    }

    fn rule(
        &self,
        field: &str,
        raw: &RawRule,
        base: Option<MatrixRule>,
        param: Option<&ParamInfo>,
        task: &TaskAlign<'_>,
    ) -> Result<MatrixRule, E> {
        let base = base.unwrap_or(MatrixRule {
            init: InitLaw::Gaussian,
            gain: 1.0,
            density: None,
            rank: None,
            connectome: false,
            scale: None,
            align: None,
            alignment: 1.0,
            dale: None,
        });
        let init = match raw.init.as_deref() {
            None => base.init,
            Some("gaussian") => InitLaw::Gaussian,
            Some("uniform") => InitLaw::Uniform,
            Some("kaiming") => InitLaw::Kaiming,
            Some(other) => {
                return self.err(
                    &format!("{field}.init"),
                    format!(
                        "unknown init law `{other}` (expected one of: gaussian, uniform, kaiming)"
                    ),
                );
            }
        };
        let gain = raw.gain.unwrap_or(base.gain);
        if !(gain >= 0.0 && gain.is_finite()) {
            return self.err(
                &format!("{field}.gain"),
                format!("expected a finite gain >= 0, found {gain}"),
            );
        }
        let density = raw.density.or(base.density);
        if let Some(d) = raw.density
            && !(d > 0.0 && d <= 1.0)
        {
            return self.err(
                &format!("{field}.density"),
                format!("expected a density in (0, 1], found {d}"),
            );
        }
        let rank = raw.rank.or(base.rank);
        if let Some(r) = raw.rank {
            match param {
                Some(p) => self.rank_fits(&format!("{field}.rank"), r, p)?,
                None if r == 0 => {
                    return self.err(
                        &format!("{field}.rank"),
                        "expected a rank of at least 1, found 0",
                    );
                }
                None => {}
            }
        }
        let scale = raw.scale.or(base.scale);
        if let Some(s) = raw.scale
            && !(s > 0.0 && s.is_finite())
        {
            return self.err(
                &format!("{field}.scale"),
                format!("expected a positive scale, found {s}"),
            );
        }
        let resolved: Option<Vec<f32>> = match &raw.align {
            None => None,
            Some(RawAlign::Direction(a)) => Some(a.clone()),
            Some(RawAlign::Named(name)) if name == "task" => match task.direction {
                Some(d) => Some(d.to_vec()),
                None => {
                    return self.err(
                        &format!("{field}.align"),
                        format!(
                            "`align = \"task\"` needs an environment with a task direction (linear_teacher), but `{}` has none",
                            task.environment
                        ),
                    );
                }
            },
            Some(RawAlign::Named(other)) => {
                return self.err(
                    &format!("{field}.align"),
                    format!(
                        "expected a direction (a list of numbers) or \"task\", found \"{other}\""
                    ),
                );
            }
        };
        let align: Option<Arc<[f32]>> = match &resolved {
            Some(a) => {
                if let Some(p) = param {
                    self.align_fits(&format!("{field}.align"), a, p)?;
                }
                if rank.is_none() {
                    return self.err(
                        &format!("{field}.align"),
                        "`align` sets the leading direction of a low-rank matrix: give `rank` too",
                    );
                }
                Some(a.as_slice().into())
            }
            None => base.align.clone(),
        };
        let alignment = raw.alignment.unwrap_or(base.alignment);
        if let Some(c) = raw.alignment {
            if !(0.0..=1.0).contains(&c) {
                return self.err(
                    &format!("{field}.alignment"),
                    format!("expected an alignment (a cosine) in [0, 1], found {c}"),
                );
            }
            if align.is_none() {
                return self.err(
                    &format!("{field}.alignment"),
                    "`alignment` is the cosine between a matrix's leading direction and its `align` direction: give `align` too",
                );
            }
        }
        let connectome = raw.connectome.unwrap_or(base.connectome);
        if connectome && (density.is_some() || rank.is_some()) {
            return self.err(
                &format!("{field}.connectome"),
                "a connectome matrix takes its mask and signs from the genome: it cannot also have `density` or `rank`",
            );
        }
        if let Some(f) = raw.dale {
            self.dale_fits(&format!("{field}.dale"), f, param)?;
            let clash = [
                (rank.is_some(), "rank"),
                (density.is_some(), "density"),
                (connectome, "connectome"),
            ];
            if let Some((_, key)) = clash.iter().find(|(set, _)| *set) {
                return self.err(
                    &format!("{field}.dale"),
                    format!(
                        "`dale` cannot be combined with `{key}`: Dale's law sets every weight's sign from its column, and keeps a full-rank, dense draw"
                    ),
                );
            }
        }
        Ok(MatrixRule {
            init,
            gain,
            density,
            rank,
            connectome,
            scale,
            align,
            alignment,
            dale: raw.dale,
        })
    }

    /// A Dale fraction must split a square matrix's units into both kinds.
    fn dale_fits(&self, field: &str, fraction: f64, p: Option<&ParamInfo>) -> Result<(), E> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return self.err(
                field,
                format!("expected a fraction of excitatory units in (0, 1), found {fraction}"),
            );
        }
        let Some(p) = p else { return Ok(()) };
        let (rows, cols) = (p.shape[0], p.shape.get(1).copied().unwrap_or(1));
        if rows != cols {
            return self.err(
                field,
                format!(
                    "Dale's law gives each unit one sign for its outgoing weights: it needs a square (recurrent) matrix, but `{}` is {rows}x{cols}",
                    p.name
                ),
            );
        }
        if lineage_develop::column_signs(cols, fraction).is_err() {
            return self.err(
                field,
                format!(
                    "an excitatory fraction of {fraction} leaves `{}`'s {cols} units without excitatory or without inhibitory units",
                    p.name
                ),
            );
        }
        Ok(())
    }

    fn align_fits(&self, field: &str, align: &[f32], p: &ParamInfo) -> Result<(), E> {
        let cols = p.shape.get(1).copied().unwrap_or(1);
        if align.len() != cols
            || align.iter().all(|&x| x == 0.0)
            || !align.iter().all(|x| x.is_finite())
        {
            return Err((self.at)(
                &format!("lifetime.{field}"),
                format!(
                    "`{}` reads {cols} inputs: its alignment direction needs {cols} finite values, not all zero (found {})",
                    p.name,
                    align.len()
                ),
            ));
        }
        Ok(())
    }

    fn rank_fits(&self, field: &str, rank: usize, p: &ParamInfo) -> Result<(), E> {
        let max = p.shape.iter().copied().min().unwrap_or(0);
        if rank == 0 || rank > max {
            return Err((self.at)(
                &format!("lifetime.{field}"),
                format!(
                    "rank {rank} does not fit `{}`, a {}x{} matrix (rank 1 to {max})",
                    p.name, p.shape[0], p.shape[1]
                ),
            ));
        }
        Ok(())
    }

    fn genes(
        &self,
        genome: &GenomeSpec,
        model: &ModelSpec,
        rules: &[Option<MatrixRule>],
    ) -> Result<LearningGenes, E> {
        let find = |name: &str| genome.genes.iter().position(|g| g.name == name);
        let weights = genome
            .genes
            .iter()
            .position(|g| g.name == "weights0" || g.name == "weights");
        if let Some(first) = weights {
            let count = genome.genes[first..]
                .iter()
                .take_while(|g| g.name.starts_with("weights"))
                .count();
            let needed = model.parameter_count();
            if count != needed {
                return Err((self.at)(
                    "genome.genes",
                    format!(
                        "a `weights` gene must have one value per parameter: the model has {needed}, the gene has {count}"
                    ),
                ));
            }
        }
        let params = model.params();
        let mut matrix_gain = Vec::new();
        for (i, g) in genome.genes.iter().enumerate() {
            let Some(name) = g.name.strip_prefix("gain.") else {
                continue;
            };
            match params.iter().position(|p| p.name == name) {
                Some(k) if rules[k].is_some() => matrix_gain.push((k, i)),
                _ => {
                    let matrices: Vec<&str> = params
                        .iter()
                        .zip(rules)
                        .filter(|(_, r)| r.is_some())
                        .map(|(p, _)| p.name.as_str())
                        .collect();
                    return Err((self.at)(
                        &format!("genome.genes[{i}].name"),
                        format!(
                            "a `gain.NAME` gene scales the init gain of the weight matrix NAME, and the model has no weight matrix `{name}` (its matrices: {})",
                            matrices.join(", ")
                        ),
                    ));
                }
            }
        }
        let genes = LearningGenes {
            lr: find("lr"),
            matrix_gain,
            momentum: find("momentum"),
            weight_decay: find("weight_decay"),
            steps: find("steps"),
            gain: find("gain"),
            rank: find("rank"),
            density: find("density"),
            alignment: find("alignment"),
            weights,
        };
        if let Some(i) = genes.lr
            && genome.genes[i].min <= 0.0
        {
            return Err((self.at)(
                "genome.genes",
                "the `lr` gene must stay positive (min > 0)".into(),
            ));
        }
        if let Some(i) = genes.rank {
            // The gene sets the rank of every matrix whose rule has one.
            let g = &genome.genes[i];
            let ranked: Vec<&ParamInfo> = params
                .iter()
                .zip(rules)
                .filter(|(_, r)| r.as_ref().is_some_and(|r| r.rank.is_some()))
                .map(|(p, _)| p)
                .collect();
            let max = ranked
                .iter()
                .map(|p| p.shape.iter().copied().min().unwrap_or(0))
                .min()
                .unwrap_or(0);
            if ranked.is_empty() {
                return Err((self.at)(
                    &format!("genome.genes[{i}].name"),
                    "a `rank` gene sets the rank of the matrices whose develop rule has a `rank`, and no rule has one".into(),
                ));
            }
            if g.min < 1.0 || g.max.round() as usize > max {
                return Err((self.at)(
                    "genome.genes",
                    format!(
                        "the `rank` gene ranges over [{}, {}] but ranks must lie in 1..={max} for every matrix with a rank rule",
                        g.min, g.max
                    ),
                ));
            }
        }
        Ok(genes)
    }
}

/// What `align = "task"` resolves to: the environment's task direction.
struct TaskAlign<'a> {
    environment: &'a str,
    direction: Option<&'a [f32]>,
}

/// Pairs Reddy's random-offset positions make room for by default (65
/// slots).
const MAX_PAIRS_DEFAULT: usize = 32;

/// The keys an environment's table may hold.
fn env_keys(raw: &RawEnvironment) -> &'static [&'static str] {
    match raw {
        RawEnvironment::GaussianClusters { .. } => &["classes", "dim", "spread", "heldout", "seed"],
        RawEnvironment::Teacher { .. } => &[
            "inputs", "hidden", "outputs", "noise", "classify", "heldout", "seed",
        ],
        RawEnvironment::Sinusoids { .. } => &["heldout"],
        RawEnvironment::LinearTeacher { .. } => &["inputs", "kappa", "heldout", "seed"],
        RawEnvironment::Decision { .. } => {
            &["coherences", "noise", "stimulus_steps", "heldout", "seed"]
        }
        RawEnvironment::DelayedMatch { .. } => &[
            "stimuli",
            "sample_steps",
            "delay_steps",
            "test_steps",
            "noise",
            "heldout",
            "seed",
        ],
        RawEnvironment::Text { .. } => &["path", "vocabulary", "context", "validation", "heldout"],
        RawEnvironment::Icl { .. } => &[
            "classes",
            "dim",
            "eps",
            "labels",
            "pairs",
            "burstiness",
            "p_bursty",
            "zipf",
            "p_novel",
            "novel_classes",
            "dynamic",
            "positions",
            "max_pairs",
            "heldout",
            "probe_sequences",
            "seed",
        ],
        RawEnvironment::Hmm { .. } => &[
            "tokens",
            "states",
            "successors",
            "concentration",
            "emissions",
            "zipf",
            "context",
            "corpus",
            "heldout",
            "seed",
        ],
    }
}

fn connectome_bits(params: &[ParamInfo], rules: &[Option<MatrixRule>]) -> Vec<ConnectomeBits> {
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
