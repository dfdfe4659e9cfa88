//! The environment of `[lifetime]`: each kind built from its table (so a
//! missing data file or a bad parameter is caught by `lineage validate`),
//! and the keys each kind may hold.

use std::sync::Arc;

use lineage_env::{
    Aligned, Dataset, DatasetSpec, DatasetTask, Decision, DelayedMatch, Environment,
    GaussianClusters, Hmm, HmmParams, Icl, IclParams, LinearTeacher, Positions, Sinusoids, Task,
    TeacherNetwork, Text, Vocabulary,
};

use crate::lifetime::EnvHandle;
use crate::memory::{MemoryEstimate, MemoryPart};
use crate::raw::lifetime::{RawEnvironment, RawSeed};

use super::Check;

impl<E> Check<'_, E> {
    /// The environment built, its task, and for a plugin's the memory it
    /// declared (a built-in's is known from its table, before it is
    /// built). `before` is the estimate so far, which a plugin's declared
    /// held-out and probe sets join before they are allocated.
    pub(super) fn environment(
        &self,
        raw: &RawEnvironment,
        before: &MemoryEstimate,
    ) -> Result<(EnvHandle, Task, Option<Vec<MemoryPart>>), E> {
        if let RawEnvironment::Plugin {
            plugin,
            seed,
            config,
        } = raw
        {
            let (env, parts) = self.plugin_environment(plugin, *seed, config, before)?;
            let task = env.task();
            return Ok((
                EnvHandle {
                    env,
                    description: format!("{raw:?}"),
                },
                task,
                Some(parts),
            ));
        }
        let built: Result<Arc<dyn Environment>, lineage_env::EnvError> = match raw {
            RawEnvironment::Plugin { .. } => unreachable!("handled above"),
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
                direction,
            } => {
                let aligned = match direction.as_deref() {
                    None | Some("full") => Aligned::Full,
                    Some("top_half") => Aligned::TopHalf,
                    Some(other) => {
                        return self.err(
                            "environment.direction",
                            format!("expected \"full\" or \"top_half\", found \"{other}\""),
                        );
                    }
                };
                LinearTeacher::new(*inputs, *kappa, *heldout, seed.resolve(self.seed))
                    .map(|e| Arc::new(e.aligned(aligned)) as _)
            }
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
            RawEnvironment::Dataset { .. } => self.dataset(raw).map(|e| Arc::new(e) as _),
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
                labels_per_class,
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
                labels_per_class: *labels_per_class,
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
            None,
        ))
    }

    /// `plugin = "NAME:OFFERING"`: the plugin declared in `[plugins.NAME]`
    /// loaded (in this process or a worker, as it says) and the offering
    /// created from the table's other keys. The plugin's refusal points at
    /// the key it names in backquotes, else at `plugin`.
    fn plugin_environment(
        &self,
        reference: &str,
        seed: RawSeed,
        config: &toml::Table,
        before: &MemoryEstimate,
    ) -> Result<(Arc<dyn Environment>, Vec<MemoryPart>), E> {
        let field = "environment.plugin";
        let (alias, offering) = match reference.split_once(':') {
            Some((a, o)) => (a, Some(o)),
            None => (reference, None),
        };
        let Some(declared) = self.plugins.iter().find(|p| p.alias == alias) else {
            let names: Vec<&str> = self.plugins.iter().map(|p| p.alias.as_str()).collect();
            let mut message =
                format!("no plugin `{alias}`: declare it as a `[plugins.{alias}]` table");
            if !names.is_empty() {
                message.push_str(&format!(" (declared: {})", names.join(", ")));
            }
            return self.err(field, message);
        };
        let plugin = crate::plugin_env::load(declared).or_else(|m| self.err(field, m))?;
        let environments: Vec<&str> = plugin
            .offerings
            .iter()
            .filter(|o| o.kind == lineage_plugin_host::Kind::Environment)
            .map(|o| o.name.as_str())
            .collect();
        let offering = match (offering, environments.as_slice()) {
            (Some(o), _) => o,
            (None, [only]) => only,
            (None, []) => {
                return self.err(
                    field,
                    format!("plugin `{}` offers no environment", plugin.name),
                );
            }
            (None, several) => {
                return self.err(
                    field,
                    format!(
                        "plugin `{}` offers several environments ({}): name one as `{alias}:OFFERING`",
                        plugin.name,
                        several.join(", ")
                    ),
                );
            }
        };
        let toml = toml::to_string(config)
            .or_else(|e| self.err("environment", format!("cannot write the table: {e}")))?;
        let mut entries = Vec::new();
        crate::validate::plugins::flatten("", config, &mut entries);
        let declared_bytes = std::cell::Cell::new(0u64);
        let admit = |bytes: u64| {
            declared_bytes.set(bytes);
            let mut estimate = before.clone();
            estimate.held.push(MemoryPart {
                what: "environment data the plugin declared".into(),
                field: "lifetime.environment".into(),
                bytes,
            });
            match self.budget.refuse(&estimate) {
                Some((_, message)) => Err(message),
                None => Ok(()),
            }
        };
        let env = lineage_plugin_host::PluginEnvironment::create(
            &plugin,
            offering,
            &toml,
            &entries,
            seed.resolve(self.seed),
            &admit,
        )
        .or_else(|e| {
            let message = e.to_string();
            let key = message
                .split('`')
                .skip(1)
                .step_by(2)
                .find(|word| config.contains_key(*word));
            match key {
                Some(k) => self.err(&format!("environment.{k}"), message),
                None => self.err(field, message),
            }
        })?;
        let parts = vec![MemoryPart {
            what: "environment data".into(),
            field: "lifetime.environment".into(),
            bytes: declared_bytes.get(),
        }];
        Ok((Arc::new(env), parts))
    }
}

impl<E> Check<'_, E> {
    /// A `dataset`'s files read and checked. A key that does not fit the
    /// task, or a missing file, is an error on that key; what is wrong
    /// inside a file is [`lineage_env::EnvError`] naming the file and
    /// array.
    fn dataset(&self, raw: &RawEnvironment) -> Result<Dataset, lineage_env::EnvError> {
        let RawEnvironment::Dataset {
            path,
            heldout_path,
            task,
            inputs,
            labels,
            targets,
            tokens,
            context,
            heldout_fraction,
            heldout,
            standardize,
            classes,
            vocab,
            seed,
        } = raw
        else {
            unreachable!("called for a dataset")
        };
        let invalid = |message: String| lineage_env::EnvError::Invalid {
            environment: "dataset",
            message,
        };
        let task_kind = match (task.as_str(), context) {
            ("classification", None) => DatasetTask::Classification,
            ("regression", None) => DatasetTask::Regression,
            ("sequences", None) => DatasetTask::Sequences,
            ("tokens", Some(c)) => DatasetTask::Tokens { context: *c },
            ("tokens", None) => {
                return Err(invalid(
                    "`context` is required for `task = \"tokens\"`".into(),
                ));
            }
            (t, Some(_)) if DatasetTask::NAMES.contains(&t) => {
                return Err(invalid(format!(
                    "`context` applies to `task = \"tokens\"` only, not `{t}`"
                )));
            }
            (t, _) => {
                return Err(invalid(format!(
                    "`task` is `{t}`; expected one of: {}",
                    DatasetTask::NAMES.join(", ")
                )));
            }
        };
        // The one array name each task reads besides the inputs.
        let (wanted, default, others) = match task_kind {
            DatasetTask::Classification | DatasetTask::Sequences => {
                ("labels", "y", [("targets", targets), ("tokens", tokens)])
            }
            DatasetTask::Regression => ("targets", "y", [("labels", labels), ("tokens", tokens)]),
            DatasetTask::Tokens { .. } => (
                "tokens",
                "tokens",
                [("labels", labels), ("targets", targets)],
            ),
        };
        if let Some((key, _)) = others.iter().find(|(_, v)| v.is_some()) {
            return Err(invalid(format!(
                "`{key}` does not apply to `task = \"{task}\"` (it reads `{wanted}`)"
            )));
        }
        if matches!(task_kind, DatasetTask::Tokens { .. }) && inputs.is_some() {
            return Err(invalid(
                "`inputs` does not apply to `task = \"tokens\"`".into(),
            ));
        }
        if classes.is_some()
            && !matches!(
                task_kind,
                DatasetTask::Classification | DatasetTask::Sequences
            )
        {
            return Err(invalid(format!(
                "`classes` does not apply to `task = \"{task}\"`"
            )));
        }
        let name = match task_kind {
            DatasetTask::Classification | DatasetTask::Sequences => labels,
            DatasetTask::Regression => targets,
            DatasetTask::Tokens { .. } => tokens,
        };
        let file = |field: &str, p: &str| {
            let file = self.data_path(&format!("lifetime.environment.{field}"), p);
            if file.is_file() {
                Ok(file)
            } else {
                Err(lineage_env::EnvError::Io {
                    environment: "dataset",
                    path: file.display().to_string(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("no such file (`{field}`)"),
                    ),
                })
            }
        };
        Dataset::new(&DatasetSpec {
            path: file("path", path)?,
            heldout_path: heldout_path
                .as_deref()
                .map(|h| file("heldout_path", h))
                .transpose()?,
            task: task_kind,
            inputs: inputs.clone().unwrap_or_else(|| "x".into()),
            targets: name.clone().unwrap_or_else(|| default.into()),
            heldout_fraction: *heldout_fraction,
            heldout: *heldout,
            standardize: *standardize,
            classes: classes.clone(),
            vocab: *vocab,
            seed: seed.resolve(self.seed),
        })
    }
}

/// Pairs Reddy's random-offset positions make room for by default (65
/// slots).
pub(super) const MAX_PAIRS_DEFAULT: usize = 32;

/// The keys an environment's table may hold.
pub(super) fn env_keys(raw: &RawEnvironment) -> &'static [&'static str] {
    match raw {
        // The plugin's own keys, which it checks.
        RawEnvironment::Plugin { .. } => &[],
        RawEnvironment::GaussianClusters { .. } => &["classes", "dim", "spread", "heldout", "seed"],
        RawEnvironment::Teacher { .. } => &[
            "inputs", "hidden", "outputs", "noise", "classify", "heldout", "seed",
        ],
        RawEnvironment::Sinusoids { .. } => &["heldout"],
        RawEnvironment::LinearTeacher { .. } => {
            &["inputs", "kappa", "heldout", "seed", "direction"]
        }
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
        RawEnvironment::Dataset { .. } => &[
            "path",
            "heldout_path",
            "task",
            "inputs",
            "labels",
            "targets",
            "tokens",
            "context",
            "heldout_fraction",
            "heldout",
            "standardize",
            "classes",
            "vocab",
            "seed",
        ],
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
            "labels_per_class",
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
