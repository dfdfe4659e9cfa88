//! The run's plugins: loading the scenario's libraries before generation 0,
//! creating an instance of every offering the scenario uses (built-in
//! functions included, through the same interface), and the host services
//! that answer plugins from the ECS's organisms.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bevy_ecs::resource::Resource;
use lineage_env::Batch;
use lineage_evo::{Genome, GenomeSpec, Objective};
use lineage_learn::jacobian;
use lineage_learn::measure::{self, ProbeInput};
use lineage_plugin::abi::{LN_LIFE_COMPLETED, LN_LIFE_DIVERGED, LN_LIFE_NONE, LnCurvePoint};
use lineage_plugin_host::{
    Curve, Instance, Isolation as HostIsolation, Kind, Plugin, PluginError, RunInput, RunRequest,
    RunWhat, SearchPath, Services, Stage, Tensor, builtin,
};
use lineage_scenario::{FitnessSpec, Isolation, LifetimeConfig, OnError, PluginOffering, Scenario};
use serde::{Deserialize, Serialize};

use crate::components::{LearningCurve, Lineage, Params, Weights};
use crate::error::EngineError;

/// A loaded plugin as the manifest records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PluginRecord {
    /// The scenario's name for it.
    pub alias: String,
    /// The plugin's own name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The ABI version it speaks.
    pub abi_version: u32,
    /// The library file, or `built-in` for a plugin linked into the
    /// binary.
    pub path: PathBuf,
    /// SHA-256 of the library file (empty for a linked plugin).
    pub sha256: String,
    /// Where it ran: `in-process` or `process` (a worker process).
    #[serde(default = "in_process")]
    pub isolation: String,
    /// Libraries it replaced on a resume that accepted a changed library
    /// (`lineage resume --accept-changed-plugins`), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<ReplacedLibrary>,
}

/// A library a plugin's record replaced: which, and the generations it
/// computed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplacedLibrary {
    /// Its SHA-256.
    pub sha256: String,
    /// The first generation computed with the library after it.
    pub until_generation: u32,
}

fn in_process() -> String {
    "in-process".into()
}

/// An instance of an offering with what the run does with its scores.
#[derive(Debug)]
pub struct Call {
    /// The instance.
    pub instance: Arc<Instance>,
    /// `plugin:offering`, for messages and records.
    pub label: String,
    /// Which of the offering's metrics are used, in order.
    pub columns: Vec<usize>,
    /// What an evaluation error does.
    pub on_error: OnError,
    /// The plugin, offering and configuration: two calls with the same
    /// `source` compute the same scores (whatever metrics each keeps), so
    /// a suite that is also the fitness function is called once.
    pub source: String,
}

/// Every instance the run calls.
#[derive(Resource, Debug)]
pub struct Evaluation {
    /// The fitness call of each phase.
    pub fitness: Vec<Arc<Call>>,
    /// The evaluation suites, recorded per organism.
    pub suites: Vec<Arc<Call>>,
    /// The loaded libraries, for the manifest.
    pub records: Vec<PluginRecord>,
}

impl Evaluation {
    /// Loads the scenario's plugins and creates every instance it needs.
    /// `recorded` (on resume) pins each plugin to the library the run
    /// started with; a library that changed since is an error, unless
    /// `accept_changed` names the generation the resume starts at, which
    /// the record then notes with the library replaced. Returns the
    /// objectives the fitness calls produce.
    pub fn prepare(
        scenario: &Scenario,
        recorded: &[PluginRecord],
        accept_changed: Option<u32>,
    ) -> Result<(Evaluation, Vec<Objective>), EngineError> {
        let plugin_error = |source: PluginError| EngineError::Plugin { source };
        let builtin = builtin::plugin().map_err(plugin_error)?;
        let mut loaded: BTreeMap<&str, Arc<Plugin>> = BTreeMap::new();
        let mut records = Vec::new();
        for p in &scenario.plugins {
            // A plugin linked into the binary (the project's own suites)
            // answers to its library name before the search path, unless
            // the run started with a library file, or asks for a process
            // of its own (a worker loads a library file).
            let linked = match recorded.iter().find(|r| r.alias == p.alias) {
                _ if p.isolation == Isolation::Process => None,
                Some(r) if r.path != std::path::Path::new(builtin::LINKED_PATH) => None,
                _ => builtin::linked(&p.library),
            };
            if let Some(plugin) = linked {
                let plugin = plugin.map_err(plugin_error)?;
                records.push(PluginRecord {
                    alias: p.alias.clone(),
                    name: plugin.name.clone(),
                    version: plugin.version.clone(),
                    abi_version: plugin.abi_version,
                    path: PathBuf::from(builtin::LINKED_PATH),
                    sha256: String::new(),
                    isolation: "in-process".into(),
                    replaced: Vec::new(),
                });
                loaded.insert(&p.alias, plugin);
                continue;
            }
            let timeout = std::time::Duration::from_millis(p.timeout_ms);
            // A plugin written in Python: its file and its worker's command.
            let python = p
                .library
                .strip_prefix(lineage_scenario::PYTHON_PLUGIN)
                .map(|spec| HostIsolation::python_plugin(spec, timeout))
                .transpose()
                .map_err(plugin_error)?;
            let path = match (recorded.iter().find(|r| r.alias == p.alias), &python) {
                (Some(r), _) => r.path.clone(),
                (None, Some((file, _))) => file.clone(),
                (None, None) => SearchPath::new(p.dir.as_deref())
                    .resolve(&p.library)
                    .map_err(plugin_error)?,
            };
            let is_python = python.is_some();
            let plugin = match (p.isolation, python) {
                (_, Some((_, isolation))) => Plugin::load_isolated(&path, isolation),
                (Isolation::InProcess, None) => Plugin::load(&path),
                (Isolation::Process, None) => HostIsolation::new(&p.alias, timeout)
                    .and_then(|isolation| Plugin::load_isolated(&path, isolation)),
            }
            .map_err(plugin_error)?;
            let sha256 = plugin.sha256.clone().unwrap_or_default();
            let mut replaced = Vec::new();
            if let Some(r) = recorded.iter().find(|r| r.alias == p.alias) {
                replaced.clone_from(&r.replaced);
                if r.sha256 != sha256 {
                    let Some(generation) = accept_changed else {
                        return Err(EngineError::PluginChanged {
                            alias: p.alias.clone(),
                            path,
                        });
                    };
                    replaced.push(ReplacedLibrary {
                        sha256: r.sha256.clone(),
                        until_generation: generation,
                    });
                }
            }
            records.push(PluginRecord {
                alias: p.alias.clone(),
                name: plugin.name.clone(),
                version: plugin.version.clone(),
                abi_version: plugin.abi_version,
                path: std::path::absolute(&path).unwrap_or(path),
                sha256,
                isolation: match (p.isolation, is_python) {
                    (_, true) => "python",
                    (Isolation::InProcess, false) => "in-process",
                    (Isolation::Process, false) => "process",
                }
                .into(),
                replaced,
            });
            loaded.insert(&p.alias, plugin);
        }

        // An environment a plugin supplies was loaded with the scenario;
        // it must be the library the run records for its plugin.
        for phase in &scenario.phases {
            let Some(life) = &phase.pressures.lifetime else {
                continue;
            };
            if let Some((name, sha)) = life.environment.env.plugin_library()
                && !records.iter().any(|r| r.sha256 == sha)
            {
                return Err(EngineError::PluginUse {
                    message: format!(
                        "the environment's plugin `{name}` was loaded from a library (SHA-256 {sha}) that is not the one the run records for it; rebuild or restore one library for it"
                    ),
                });
            }
        }
        let mut made: Vec<(String, Arc<Call>)> = Vec::new();
        let mut call = |spec: &FitnessSpec, want: Kind| -> Result<Arc<Call>, EngineError> {
            let (alias, offering, config, metrics, on_error) = match spec {
                FitnessSpec::Genome(b) => (
                    builtin::NAME,
                    b.name().to_owned(),
                    builtin::config_of(b),
                    Vec::new(),
                    OnError::Abort,
                ),
                FitnessSpec::Lifetime(m) => (
                    builtin::NAME,
                    m.name().to_owned(),
                    Vec::new(),
                    Vec::new(),
                    OnError::Abort,
                ),
                FitnessSpec::Plugin(PluginOffering {
                    plugin,
                    offering,
                    metrics,
                }) => {
                    let p = scenario
                        .plugins
                        .iter()
                        .find(|p| &p.alias == plugin)
                        .expect("validated: every offering's plugin is declared");
                    (
                        p.alias.as_str(),
                        offering.clone(),
                        p.config.clone(),
                        metrics.clone(),
                        p.on_error,
                    )
                }
            };
            let key = format!("{alias}:{offering}:{}:{config:?}", metrics.join(","));
            if let Some((_, c)) = made.iter().find(|(k, _)| *k == key) {
                return Ok(c.clone());
            }
            let plugin = if alias == builtin::NAME {
                &builtin
            } else {
                &loaded[alias]
            };
            let (_, info) = plugin.offering(&offering).map_err(plugin_error)?;
            if info.kind == Kind::Environment {
                return Err(EngineError::PluginUse {
                    message: format!(
                        "`{alias}:{offering}` is an environment, not a fitness function or suite; use it as `lifetime.environment = {{ plugin = \"{alias}:{offering}\" }}`"
                    ),
                });
            }
            if info.kind != want && want == Kind::Suite {
                return Err(EngineError::PluginUse {
                    message: format!(
                        "`{alias}:{offering}` is a fitness function, not an evaluation suite; use it as `fitness.function`"
                    ),
                });
            }
            let columns = if metrics.is_empty() {
                if info.kind == Kind::Suite && want == Kind::Fitness {
                    return Err(EngineError::PluginUse {
                        message: format!(
                            "`{alias}:{offering}` is an evaluation suite; to select on it, list the metrics to use in `fitness.metrics` (it has: {})",
                            names(&info.metrics)
                        ),
                    });
                }
                (0..info.metrics.len()).collect()
            } else {
                metrics
                    .iter()
                    .map(|m| {
                        info.metrics.iter().position(|o| &o.name == m).ok_or_else(|| {
                            EngineError::PluginUse {
                                message: format!(
                                    "fitness.metrics: `{alias}:{offering}` has no metric `{m}` (it has: {})",
                                    names(&info.metrics)
                                ),
                            }
                        })
                    })
                    .collect::<Result<_, _>>()?
            };
            let toml = scenario
                .plugins
                .iter()
                .find(|p| p.alias == alias)
                .map_or(String::new(), |p| p.config_toml.clone());
            let instance =
                Instance::create(plugin, &offering, &toml, &config).map_err(plugin_error)?;
            let c = Arc::new(Call {
                instance: Arc::new(instance),
                label: format!("{alias}:{offering}"),
                columns,
                on_error,
                source: format!("{alias}:{offering}:{config:?}"),
            });
            made.push((key, c.clone()));
            Ok(c)
        };
        let fitness = scenario
            .phases
            .iter()
            .map(|p| call(&p.pressures.fitness, Kind::Fitness))
            .collect::<Result<Vec<_>, _>>()?;
        let suites = scenario
            .suites
            .iter()
            .map(|s| call(&FitnessSpec::Plugin(s.clone()), Kind::Suite))
            .collect::<Result<Vec<_>, _>>()?;
        let objectives = objectives_of(&fitness[0]);
        if let Some(other) = fitness.iter().find(|c| objectives_of(c) != objectives) {
            return Err(EngineError::PluginUse {
                message: format!(
                    "an environment change may alter the fitness function's parameters but not its objectives: `{}` gives {}, `{}` gives {}",
                    fitness[0].label,
                    names(&objectives),
                    other.label,
                    names(&objectives_of(other))
                ),
            });
        }
        if scenario.stop.target_fitness.is_some() && objectives.len() != 1 {
            return Err(EngineError::PluginUse {
                message: format!(
                    "stop.target_fitness needs a single objective, but `{}` gives {}: {}",
                    fitness[0].label,
                    objectives.len(),
                    names(&objectives)
                ),
            });
        }
        Ok((
            Evaluation {
                fitness,
                suites,
                records,
            },
            objectives,
        ))
    }
}

/// The objectives a fitness call produces.
fn objectives_of(call: &Call) -> Vec<Objective> {
    let metrics = &call.instance.offering().metrics;
    call.columns.iter().map(|&i| metrics[i].clone()).collect()
}

fn names(objectives: &[Objective]) -> String {
    objectives
        .iter()
        .map(|o| o.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The host's answers about one batch of organisms.
pub struct BatchServices<'a> {
    /// Each organism's lineage (its id and birth generation).
    pub lineages: Vec<&'a Lineage>,
    /// Each organism's genome.
    pub genomes: Vec<&'a Genome>,
    /// What each organism kept of its model.
    pub weights: Vec<Option<&'a Weights>>,
    /// Each organism's learning curve.
    pub curves: Vec<Option<&'a LearningCurve>>,
    /// The genome's layout.
    pub spec: &'a GenomeSpec,
    /// The lifetime configuration in force.
    pub lifetime: Option<&'a LifetimeConfig>,
    /// The run's seed: birth weights not kept are developed again from it.
    pub seed: u64,
    /// The offering being called, for messages.
    pub label: &'a str,
    /// Whether it declared that it reads weights.
    pub reads_weights: bool,
    /// Birth weights developed again, per organism, once asked for.
    pub births: Vec<std::sync::OnceLock<Result<Params, String>>>,
}

impl<'a> BatchServices<'a> {
    /// Services for `members` (lineage, genome, weights, curve) under the
    /// offering of `call`.
    pub fn new(
        members: &[(
            &'a Lineage,
            &'a crate::components::Genome,
            Option<&'a Weights>,
            Option<&'a LearningCurve>,
        )],
        call: &'a Call,
        spec: &'a GenomeSpec,
        lifetime: Option<&'a LifetimeConfig>,
        seed: u64,
    ) -> BatchServices<'a> {
        BatchServices {
            lineages: members.iter().map(|m| m.0).collect(),
            genomes: members.iter().map(|m| &m.1.0).collect(),
            weights: members.iter().map(|m| m.2).collect(),
            curves: members.iter().map(|m| m.3).collect(),
            spec,
            lifetime,
            seed,
            label: &call.label,
            reads_weights: call.instance.offering().reads_weights,
            births: members.iter().map(|_| std::sync::OnceLock::new()).collect(),
        }
    }

    fn config(&self) -> Result<&LifetimeConfig, String> {
        self.lifetime.ok_or_else(|| {
            "organisms in this run have no model: the scenario has no [lifetime]".into()
        })
    }

    /// An organism's parameters at a stage, flat in the model's order.
    fn flat(&self, organism: usize, stage: Stage) -> Result<&Params, String> {
        let cfg = self.config()?;
        if !self.reads_weights {
            return Err(format!(
                "`{}` reads weights but does not declare it: a Rust plugin declares it with \
                 `Offering::reading_weights()`, a C plugin sets LN_READS_WEIGHTS in \
                 `offering_reads` (plugin ABI 3), a Python one passes `reads_weights=True` \
                 to its decorator",
                self.label
            ));
        }
        let kept = self.weights[organism];
        match stage {
            Stage::Learned => match kept.and_then(|w| w.learned.as_ref()) {
                Some(p) => Ok(p),
                None if self.curves[organism].is_none_or(|c| c.status.is_none()) => {
                    Err("the organism has not learned yet".into())
                }
                None => Err("the organism kept no learned weights".into()),
            },
            Stage::Birth => {
                if let Some(p) = kept.and_then(|w| w.birth.as_ref()) {
                    return Ok(p);
                }
                self.births[organism]
                    .get_or_init(|| {
                        crate::systems::birth_of(
                            cfg,
                            self.seed,
                            self.lineages[organism],
                            self.genomes[organism],
                            None,
                            None,
                        )
                        .map(|(birth, _)| Params::from_parts(&birth))
                    })
                    .as_ref()
                    .map_err(|e| format!("cannot develop the birth weights again: {e}"))
            }
        }
    }

    /// An organism's parameters at a stage, one vector each in the
    /// model's order.
    fn params(&self, organism: usize, stage: Stage) -> Result<Vec<Vec<f32>>, String> {
        let cfg = self.config()?;
        let flat = self.flat(organism, stage)?;
        Ok(flat.parts(cfg.model.params().iter().map(|p| p.len())))
    }

    fn tensor(&self, organism: usize, name: &str, stage: Stage) -> Result<Tensor<'_>, String> {
        let cfg = self.config()?;
        let layout = cfg.model.params();
        let Some(index) = layout.iter().position(|p| p.name == name) else {
            let known: Vec<&str> = layout.iter().map(|p| p.name.as_str()).collect();
            return Err(format!(
                "no weight `{name}` (the model has: {})",
                known.join(", ")
            ));
        };
        let flat = self.flat(organism, stage)?;
        let data = flat
            .part(layout.iter().map(|p| p.len()), index)
            .ok_or_else(|| format!("the organism's weights do not fit the model's `{name}`"))?;
        Ok(Tensor {
            data: Cow::Borrowed(data),
            shape: layout[index].shape.clone(),
        })
    }
}

impl Services for BatchServices<'_> {
    fn genome(&self, organism: usize) -> Result<&Genome, String> {
        Ok(self.genomes[organism])
    }

    fn gene(&self, name: &str) -> Result<(usize, usize), String> {
        let genes = &self.spec.genes;
        if let Some(i) = genes.iter().position(|g| g.name == name) {
            return Ok((i, 1));
        }
        let numbered = |k: usize| format!("{name}{k}");
        match genes.iter().position(|g| g.name == numbered(0)) {
            Some(start) => {
                let count = genes[start..]
                    .iter()
                    .enumerate()
                    .take_while(|(k, g)| g.name == numbered(*k))
                    .count();
                Ok((start, count))
            }
            None => Err(format!(
                "no gene `{name}` (the genome has: {})",
                genes
                    .iter()
                    .map(|g| g.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    fn weights(&self, organism: usize, name: &str, stage: Stage) -> Result<Tensor<'_>, String> {
        self.tensor(organism, name, stage)
    }

    fn curve(&self, organism: usize) -> Result<Curve<'_>, String> {
        let Some(curve) = self.curves[organism] else {
            return Ok(Curve {
                points: Cow::Borrowed(&[]),
                status: LN_LIFE_NONE,
                diverged_at: 0,
            });
        };
        let (status, diverged_at) = match curve.status {
            Some(lineage_learn::Status::Completed) => (LN_LIFE_COMPLETED, 0),
            Some(lineage_learn::Status::Diverged { step }) => (LN_LIFE_DIVERGED, step),
            None => (LN_LIFE_NONE, 0),
        };
        Ok(Curve {
            points: Cow::Owned(
                curve
                    .points
                    .iter()
                    .map(|p| LnCurvePoint {
                        step: p.step,
                        train: p.train,
                        heldout: p.heldout,
                    })
                    .collect(),
            ),
            status,
            diverged_at,
        })
    }

    fn probes(&self, organism: usize, set: &str, metric: &str) -> Result<Tensor<'static>, String> {
        let records = self.curves[organism].map_or(&[][..], |c| c.probes.as_slice());
        let rows: Vec<f32> = records
            .iter()
            .filter(|r| r.probe == set && r.metric == metric)
            .flat_map(|r| [r.step as f32, r.value])
            .collect();
        if rows.is_empty() {
            let mut there: Vec<String> = Vec::new();
            for r in records {
                let name = format!("{}/{}", r.probe, r.metric);
                if !there.contains(&name) {
                    there.push(name);
                }
            }
            return Err(if there.is_empty() {
                format!(
                    "no probe set `{set}`: the organism has no probe records (its environment declares no probe sets, or it has not learned)"
                )
            } else {
                format!(
                    "no probe record `{set}/{metric}` (the organism has: {})",
                    there.join(", ")
                )
            });
        }
        Ok(Tensor {
            shape: vec![rows.len() / 2, 2],
            data: Cow::Owned(rows),
        })
    }

    fn heldout(&self, organism: usize) -> Result<&Batch, String> {
        self.config()?;
        self.curves[organism]
            .and_then(|c| c.heldout.as_deref())
            .ok_or_else(|| "the organism has not learned yet: no held-out data".into())
    }

    fn run(&self, organism: usize, request: &RunRequest<'_>) -> Result<Tensor<'static>, String> {
        let cfg = self.config()?;
        let params = self.params(organism, request.stage)?;
        let input = match request.input {
            RunInput::Real(x) => ProbeInput::Real {
                x,
                n: request.n,
                len: request.len,
            },
            RunInput::Tokens(tokens) => ProbeInput::Tokens {
                tokens,
                n: request.n,
                len: request.len,
            },
        };
        let probed = match request.what {
            RunWhat::Outputs => measure::outputs(&cfg.model, &params, &input),
            RunWhat::Hidden(layer) => measure::hidden(&cfg.model, &params, &input, layer),
            RunWhat::Gradient(weight) => {
                jacobian::output_gradients(&cfg.model, &params, &input, request.cotangent, weight)
            }
            RunWhat::Kernel(weight) => {
                jacobian::gradient_kernel(&cfg.model, &params, &input, request.cotangent, weight)
            }
        }
        .map_err(|e| e.to_string())?;
        Ok(Tensor {
            data: Cow::Owned(probed.values),
            shape: probed.shape,
        })
    }
}
