//! From raw, deserialised structures to a checked [`Scenario`].
//!
//! This module holds what every section's checks share (the context that
//! locates errors, the translation of serde's messages, the merge of a `set`
//! table) and the top of the walk, [`scenario`]; each section of a scenario
//! file is checked in its own submodule.

mod conditions;
mod environment;
mod fitness;
mod genome;
mod islands;
mod lifetime;
mod mutation;
mod paths;
mod plugins;
mod pressures;
mod selection;
mod stop;

use crate::error::{Diagnostic, ScenarioError};
use crate::load::{At, Origin, Resolved, Sources, merge_into};
use crate::memory::Budget;
use crate::raw::RawScenario;
use crate::{FitnessSpec, Overrides, Phase, Record, Scenario};

pub(crate) use lifetime::Check;

use conditions::conditions;
use environment::apply_change;
use genome::genome;
use paths::absolute_data_paths;
use plugins::{plugins, suites};
use pressures::pressures;
use stop::stop;

/// Generations past this are almost surely a typo.
const MAX_GENERATIONS: u32 = 100_000_000;
/// The longest name (it becomes a directory name).
const MAX_NAME: usize = 200;
/// The most `[[environment]]` changes (each phase is validated, and keeps
/// its environment, on its own).
const MAX_CHANGES: usize = 10_000;

/// Locates errors in one resolved table.
pub(super) struct Ctx<'a> {
    pub(super) sources: &'a Sources,
    pub(super) resolved: &'a Resolved,
    /// The memory limit, and the environment data built so far.
    pub(super) budget: &'a Budget,
}

pub(super) type Checked<T> = Result<T, Box<Diagnostic>>;

impl Ctx<'_> {
    pub(super) fn at(&self, field: &str, message: impl Into<String>) -> Box<Diagnostic> {
        Box::new(
            self.sources
                .locate(self.resolved, field, At::Value, message.into()),
        )
    }

    pub(super) fn at_key(&self, field: &str, message: impl Into<String>) -> Box<Diagnostic> {
        Box::new(
            self.sources
                .locate(self.resolved, field, At::Key, message.into()),
        )
    }

    pub(super) fn deserialize(&self) -> Checked<RawScenario> {
        let value = toml::Value::Table(self.resolved.table.clone());
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            let message = e.inner().message().to_owned();
            self.serde_error(&path, &message)
        })
    }

    fn serde_error(&self, path: &str, message: &str) -> Box<Diagnostic> {
        let join = |name: &str| {
            if path.is_empty() {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            }
        };
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let (unknown, expected) = rest.split_once('`').unwrap_or((rest, ""));
            let valid = backticked(expected);
            let field = if path.ends_with(unknown) {
                path.to_owned()
            } else {
                join(unknown)
            };
            let mut msg = format!("unknown key `{unknown}`");
            if let Some(best) = nearest(unknown, &valid) {
                msg.push_str(&format!("; did you mean `{best}`?"));
            }
            msg.push_str(&format!(" (valid keys here: {})", valid.join(", ")));
            return self.at_key(&field, msg);
        }
        if let Some(rest) = message.strip_prefix("missing field `") {
            let name = rest.split('`').next().unwrap_or(rest);
            let parent = if path.is_empty() {
                "the top level".to_owned()
            } else {
                format!("`{path}`")
            };
            return self.at_key(
                &join(name),
                format!("missing required key `{name}` in {parent}"),
            );
        }
        // serde says "invalid type: X, expected Y"; we say what was expected
        // first, then what was found.
        for prefix in ["invalid type: ", "invalid value: "] {
            if let Some(rest) = message.strip_prefix(prefix)
                && let Some((found, expected)) = rest.split_once(", expected ")
            {
                let expected = match expected {
                    "usize" | "u64" => "a non-negative integer",
                    "u32" => "an integer from 0 to 4294967295",
                    "f64" => "a number",
                    other => other,
                };
                return self.at(path, format!("expected {expected}, found {found}"));
            }
        }
        self.at(path, message.to_owned())
    }
}

fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The candidate closest to `word`, if it is close enough to be a typo.
pub(crate) fn nearest<S: AsRef<str>>(word: &str, candidates: &[S]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c.as_ref()), c.as_ref()))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_owned())
}

pub(super) fn one_of(what: &str, found: &str, valid: &[&str]) -> String {
    let mut msg = format!("unknown {what} `{found}`");
    if let Some(best) = nearest(found, valid) {
        msg.push_str(&format!("; did you mean `{best}`?"));
    }
    msg.push_str(&format!(" (expected one of: {})", valid.join(", ")));
    msg
}

pub(crate) fn scenario(
    sources: &Sources,
    mut resolved: Resolved,
    overrides: &Overrides,
) -> Result<Scenario, ScenarioError> {
    if let Some(seed) = overrides.seed {
        // TOML integers are signed: a larger seed would wrap to a negative
        // number on its way into the resolved scenario.
        if seed > i64::MAX as u64 {
            return Err(ScenarioError::Invalid(Box::new(Diagnostic {
                file: "command line (--seed)".into(),
                line: 1,
                column: 1,
                field: "seed".into(),
                message: format!("expected a seed at most {}, found {seed}", i64::MAX),
                source_line: String::new(),
            })));
        }
        resolved
            .table
            .insert("seed".into(), toml::Value::Integer(seed as i64));
        resolved
            .provenance
            .insert("seed".into(), Origin::CommandLine("--seed"));
    }
    if let Some(generations) = overrides.generations {
        resolved.table.insert(
            "generations".into(),
            toml::Value::Integer(generations.into()),
        );
        resolved
            .provenance
            .insert("generations".into(), Origin::CommandLine("--generations"));
    }
    if let Some(device) = &overrides.device
        && let Some(toml::Value::Table(lifetime)) = resolved.table.get_mut("lifetime")
    {
        lifetime.insert("device".into(), toml::Value::String(device.clone()));
        resolved
            .provenance
            .insert("lifetime.device".into(), Origin::CommandLine("--device"));
    }
    if let Some(path) = &overrides.path
        && let Some(toml::Value::Table(lifetime)) = resolved.table.get_mut("lifetime")
    {
        lifetime.insert("path".into(), toml::Value::String(path.clone()));
        resolved
            .provenance
            .insert("lifetime.path".into(), Origin::CommandLine("--path"));
    }
    let budget = Budget::new(overrides.memory_limit);
    check(sources, &resolved, &budget).map_err(ScenarioError::Invalid)
}

pub(super) fn check(sources: &Sources, resolved: &Resolved, budget: &Budget) -> Checked<Scenario> {
    let ctx = Ctx {
        sources,
        resolved,
        budget,
    };
    let raw = ctx.deserialize()?;
    if raw.name.trim().is_empty() {
        return Err(ctx.at("name", "expected a non-empty name, found an empty string"));
    }
    if let Some(bad) = raw
        .name
        .chars()
        .find(|c| c.is_control() || matches!(c, '/' | '\\'))
    {
        return Err(ctx.at(
            "name",
            format!("the name becomes a directory name and cannot contain {bad:?}"),
        ));
    }
    if raw.generations == 0 {
        return Err(ctx.at("generations", "expected at least 1 generation, found 0"));
    }
    if raw.seed > i64::MAX as u64 {
        return Err(ctx.at(
            "seed",
            format!("expected a seed at most {}, found {}", i64::MAX, raw.seed),
        ));
    }
    let genome = genome(&ctx, &raw)?;
    let plugins = plugins(&ctx, &raw)?;
    let suites = suites(&ctx, &raw)?;
    if raw.generations > MAX_GENERATIONS {
        return Err(ctx.at(
            "generations",
            format!(
                "expected at most {MAX_GENERATIONS} generations, found {}",
                raw.generations
            ),
        ));
    }
    if raw.name.chars().count() > MAX_NAME {
        return Err(ctx.at(
            "name",
            format!(
                "the name becomes a directory name: expected at most {MAX_NAME} characters, found {}",
                raw.name.chars().count()
            ),
        ));
    }
    if raw.environment.len() > MAX_CHANGES {
        return Err(ctx.at(
            "environment",
            format!(
                "expected at most {MAX_CHANGES} environment changes, found {}",
                raw.environment.len()
            ),
        ));
    }
    let conditions = conditions(sources, resolved, &raw, budget)?;
    let (base, mut memory) = pressures(&ctx, &raw, &genome)?;
    let objectives = base.fitness.objectives();
    let stop = stop(&ctx, &raw, &objectives)?;

    let mut phases = vec![Phase {
        from_generation: 0,
        pressures: base,
    }];
    let mut cumulative = resolved.clone();
    cumulative.table.remove("environment");
    cumulative
        .provenance
        .retain(|p, _| !p.starts_with("environment"));
    let mut previous = 0;
    for (i, change) in raw.environment.iter().enumerate() {
        let here = format!("environment[{i}]");
        if change.at_generation <= previous {
            let msg = if previous == 0 {
                format!(
                    "expected a generation of at least 1, found {}",
                    change.at_generation
                )
            } else {
                format!(
                    "changes must come in increasing order of generation: found {} after {previous}",
                    change.at_generation
                )
            };
            return Err(ctx.at(&format!("{here}.at_generation"), msg));
        }
        previous = change.at_generation;
        cumulative = apply_change(&ctx, &here, change, cumulative)?;
        let phase_ctx = Ctx {
            sources,
            resolved: &cumulative,
            budget,
        };
        let raw_phase = phase_ctx.deserialize()?;
        let (pressures, phase_memory) = pressures(&phase_ctx, &raw_phase, &genome)?;
        memory.absorb(&phase_memory);
        let same = match (&pressures.fitness, &phases[0].pressures.fitness) {
            (FitnessSpec::Plugin(a), FitnessSpec::Plugin(b)) => a == b,
            (FitnessSpec::Plugin(_), _) | (_, FitnessSpec::Plugin(_)) => false,
            _ => pressures.fitness.objectives() == objectives,
        };
        if !same {
            return Err(phase_ctx.at(
                "fitness.function",
                "an environment change may alter the fitness function's parameters but not its objectives",
            ));
        }
        phases.push(Phase {
            from_generation: change.at_generation,
            pressures,
        });
    }

    if raw.evaluate.rescore_best {
        rescore_best(&ctx, &phases)?;
    }
    for c in &conditions {
        for run in &c.runs {
            memory.absorb(&run.memory);
        }
    }
    let islands = islands::islands(sources, resolved, &raw, budget, &mut memory)?;
    if let Some((field, message)) = budget.refuse(&memory) {
        return Err(ctx.at(&field, message));
    }
    let mut table = resolved.table.clone();
    absolute_data_paths(sources, resolved, &mut table);
    let resolved_toml = toml::to_string(&table)
        .map_err(|e| ctx.at("", format!("cannot write the resolved scenario: {e}")))?;
    Ok(Scenario {
        name: raw.name,
        description: raw.description,
        seed: raw.seed,
        generations: raw.generations,
        checkpoint_every: raw.checkpoint_every,
        genome,
        objectives,
        stop,
        record: record(&ctx, &raw.record)?,
        phases,
        plugins,
        suites,
        rescore_best: raw.evaluate.rescore_best,
        conditions,
        islands,
        resolved_toml,
        memory,
    })
}

/// `[evaluate] rescore_best` needs, in every phase, a lifetime whose
/// environment can draw a fresh held-out set.
fn rescore_best(ctx: &Ctx<'_>, phases: &[Phase]) -> Result<(), Box<Diagnostic>> {
    use lineage_evo::rng::{Purpose, stream};
    for phase in phases {
        let Some(cfg) = &phase.pressures.lifetime else {
            return Err(ctx.at(
                "evaluate.rescore_best",
                format!(
                    "the best organism is re-scored on fresh held-out data after its lifetime, but from generation {} there is no `[lifetime]`",
                    phase.from_generation
                ),
            ));
        };
        let mut probe = stream(0, 0, 0, Purpose::Rescore);
        if cfg.environment.env.fresh_heldout(&mut probe).is_none() {
            return Err(ctx.at(
                "evaluate.rescore_best",
                format!(
                    "the environment `{}` cannot draw a fresh held-out set (its held-out part is all the held-out data it has, or its task is drawn per lifetime), so the best organism cannot be re-scored",
                    cfg.environment.env.name()
                ),
            ));
        }
    }
    Ok(())
}

/// The `[record]` table.
fn record(ctx: &Ctx<'_>, raw: &crate::raw::RawRecord) -> Result<Record, Box<Diagnostic>> {
    use crate::raw::RawRecordOrganisms as Raw;
    use crate::{RecordOrganisms, RecordWeights};
    let count = |key: &str, value: Option<usize>| {
        value.ok_or_else(|| {
            ctx.at(
                "record.organisms",
                format!("`organisms = \"{key}\"` needs `record.{key} = N`, the organisms written per generation"),
            )
        })
    };
    let organisms = match &raw.organisms {
        None | Some(Raw::Flag(true)) => RecordOrganisms::All,
        Some(Raw::Flag(false)) => RecordOrganisms::None,
        Some(Raw::Mode(mode)) => match mode.as_str() {
            "all" => RecordOrganisms::All,
            "none" => RecordOrganisms::None,
            "sample" => RecordOrganisms::Sample(count("sample", raw.sample)?),
            "elites" => RecordOrganisms::Elites(count("elites", raw.elites)?),
            other => {
                return Err(ctx.at(
                    "record.organisms",
                    one_of(
                        "organism record",
                        other,
                        &["all", "none", "sample", "elites", "true", "false"],
                    ),
                ));
            }
        },
    };
    for (key, value, mode) in [
        ("sample", raw.sample, "sample"),
        ("elites", raw.elites, "elites"),
    ] {
        let used = matches!(
            (&organisms, mode),
            (RecordOrganisms::Sample(_), "sample") | (RecordOrganisms::Elites(_), "elites")
        );
        if value.is_some() && !used {
            return Err(ctx.at_key(
                &format!("record.{key}"),
                format!("`record.{key}` is read only with `organisms = \"{mode}\"`"),
            ));
        }
    }
    let weights = match raw.weights.as_deref() {
        None | Some("needed") => RecordWeights::Needed,
        Some("learned") => RecordWeights::Learned,
        Some("all") => RecordWeights::All,
        Some(other) => {
            return Err(ctx.at(
                "record.weights",
                one_of("weight record", other, &["needed", "learned", "all"]),
            ));
        }
    };
    Ok(Record { organisms, weights })
}

/// Merges `set` (the table at `HERE.set`) over `base`, keeping where each
/// of its fields was written, after checking every key is in `allowed`
/// (`wording`: why a key is refused, and what the allowed list is called).
pub(super) fn merge_set(
    ctx: &Ctx<'_>,
    here: &str,
    set: &toml::Table,
    allowed: &[&str],
    wording: (&str, &str),
    mut base: Resolved,
) -> Checked<Resolved> {
    for key in set.keys() {
        if !allowed.contains(&key.as_str()) {
            let mut msg = format!("`{key}` {}", wording.0);
            if let Some(best) = nearest(key, allowed)
                && best != *key
            {
                msg.push_str(&format!("; did you mean `{best}`?"));
            }
            msg.push_str(&format!(" ({}: {})", wording.1, allowed.join(", ")));
            return Err(ctx.at_key(&format!("{here}.set.{key}"), msg));
        }
    }
    let prefix = format!("{here}.set.");
    let provenance = ctx
        .resolved
        .provenance
        .iter()
        .filter_map(|(p, o)| {
            p.strip_prefix(&prefix)
                .map(|rest| (rest.to_owned(), o.clone()))
        })
        .collect();
    merge_into(
        &mut base,
        Resolved {
            table: set.clone(),
            provenance,
        },
    );
    Ok(base)
}
