//! From raw, deserialised structures to a checked [`Scenario`].

use lineage_evo::fitness::{BUILTIN_NAMES, Builtin};
use lineage_evo::operators::{Crossover, Mutation};
use lineage_evo::selection::Method;
use lineage_evo::{GeneSpec, GenomeSpec};

use crate::error::{Diagnostic, ScenarioError};
use crate::load::{At, Origin, Resolved, Sources, merge_into};
use crate::raw::{RawChange, RawScenario};
use crate::{
    BUILTIN_PLUGIN, Condition, ConnectomeTransform, CrossoverSpec, FitnessSpec, Isolation,
    LifetimeMetric, MAX_PLUGIN_TIMEOUT_MS, OnError, Overrides, Phase, PluginOffering, PluginRef,
    Pressures, Record, Scenario, Selection, Stop,
};
use std::path::Path;
use std::sync::Arc;

/// Sizes past these are almost surely typos, and would exhaust memory
/// before the first generation ends.
const MAX_POPULATION: usize = 100_000_000;
const MAX_BITS: usize = 1 << 31;
const MAX_GENES: usize = 1 << 24;

/// Keys an `[[environment]]` entry may `set`.
const CHANGEABLE: [&str; 6] = [
    "population",
    "selection",
    "mutation",
    "crossover",
    "fitness",
    "lifetime",
];
const SELECTION_METHODS: [&str; 5] = [
    "tournament",
    "truncation",
    "mu_comma_lambda",
    "mu_plus_lambda",
    "nsga2",
];
const CROSSOVER_METHODS: [&str; 3] = ["none", "uniform", "one_point"];

/// Locates errors in one resolved table.
struct Ctx<'a> {
    sources: &'a Sources,
    resolved: &'a Resolved,
}

type Checked<T> = Result<T, Box<Diagnostic>>;

impl Ctx<'_> {
    fn at(&self, field: &str, message: impl Into<String>) -> Box<Diagnostic> {
        Box::new(
            self.sources
                .locate(self.resolved, field, At::Value, message.into()),
        )
    }

    fn at_key(&self, field: &str, message: impl Into<String>) -> Box<Diagnostic> {
        Box::new(
            self.sources
                .locate(self.resolved, field, At::Key, message.into()),
        )
    }

    fn deserialize(&self) -> Checked<RawScenario> {
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
                    "usize" | "u32" | "u64" => "a non-negative integer",
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
fn nearest<S: AsRef<str>>(word: &str, candidates: &[S]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c.as_ref()), c.as_ref()))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_owned())
}

fn one_of(what: &str, found: &str, valid: &[&str]) -> String {
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
    check(sources, &resolved).map_err(ScenarioError::Invalid)
}

fn check(sources: &Sources, resolved: &Resolved) -> Checked<Scenario> {
    let ctx = Ctx { sources, resolved };
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
    let conditions = conditions(sources, resolved, &raw)?;
    let base = pressures(&ctx, &raw, &genome)?;
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
        };
        let raw_phase = phase_ctx.deserialize()?;
        let pressures = pressures(&phase_ctx, &raw_phase, &genome)?;
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
        record: Record {
            organisms: raw.record.organisms,
        },
        phases,
        plugins,
        suites,
        conditions,
        resolved_toml,
    })
}

/// Keys a condition's `set` may change: everything that shapes one run.
const CONDITION_KEYS: [&str; 13] = [
    "population",
    "generations",
    "checkpoint_every",
    "genome",
    "selection",
    "mutation",
    "crossover",
    "fitness",
    "lifetime",
    "stop",
    "record",
    "environment",
    "evaluate",
];

/// `[[conditions]]`: each condition is the scenario with its `set` merged
/// in, validated as a whole scenario once per seed.
fn conditions(
    sources: &Sources,
    resolved: &Resolved,
    raw: &RawScenario,
) -> Checked<Vec<Condition>> {
    let ctx = Ctx { sources, resolved };
    let mut base = resolved.clone();
    base.table.remove("conditions");
    base.provenance.retain(|p, _| !p.starts_with("conditions"));
    let mut out: Vec<Condition> = Vec::new();
    for (i, c) in raw.conditions.iter().enumerate() {
        let here = format!("conditions[{i}]");
        let valid_name = !c.name.is_empty()
            && c.name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-');
        if !valid_name {
            return Err(ctx.at(
                &format!("{here}.name"),
                format!(
                    "a condition's name becomes a folder name: use letters, digits, `_` or `-`, found {:?}",
                    c.name
                ),
            ));
        }
        if out.iter().any(|o| o.name == c.name) {
            return Err(ctx.at(
                &format!("{here}.name"),
                format!("two conditions are named `{}`", c.name),
            ));
        }
        if let Some(from) = &c.from
            && !out.iter().any(|o| &o.name == from)
        {
            let earlier: Vec<&str> = out.iter().map(|o| o.name.as_str()).collect();
            return Err(ctx.at(
                &format!("{here}.from"),
                format!(
                    "`{from}` is not an earlier condition (a condition starts from one declared before it; earlier: {})",
                    if earlier.is_empty() { "none".to_owned() } else { earlier.join(", ") }
                ),
            ));
        }
        let connectome = match &c.connectome {
            None => ConnectomeTransform::default(),
            Some(t) => {
                if c.from.is_none() {
                    return Err(ctx.at_key(
                        &format!("{here}.connectome"),
                        "`connectome` transforms an inherited connectome and needs `from`",
                    ));
                }
                let shuffle_mask = match t.mask.as_str() {
                    "keep" => false,
                    "shuffle" => true,
                    other => {
                        return Err(ctx.at(
                            &format!("{here}.connectome.mask"),
                            one_of("mask transform", other, &["keep", "shuffle"]),
                        ));
                    }
                };
                let random_signs = match t.signs.as_str() {
                    "keep" => false,
                    "random" => true,
                    other => {
                        return Err(ctx.at(
                            &format!("{here}.connectome.signs"),
                            one_of("sign transform", other, &["keep", "random"]),
                        ));
                    }
                };
                ConnectomeTransform {
                    shuffle_mask,
                    random_signs,
                }
            }
        };
        let seeds = if c.seeds.is_empty() {
            vec![raw.seed]
        } else {
            c.seeds.clone()
        };
        if let Some(bad) = seeds.iter().find(|s| **s > i64::MAX as u64) {
            return Err(ctx.at(
                &format!("{here}.seeds"),
                format!("expected seeds at most {}, found {bad}", i64::MAX),
            ));
        }
        if let Some((k, s)) = seeds
            .iter()
            .enumerate()
            .find(|(k, s)| seeds[..*k].contains(s))
        {
            return Err(ctx.at(
                &format!("{here}.seeds[{k}]"),
                format!("seed {s} is listed twice"),
            ));
        }
        let merged = merge_set(
            &ctx,
            &here,
            &c.set,
            &CONDITION_KEYS,
            ("cannot be set by a condition", "settable"),
            base.clone(),
        )?;
        let mut runs = Vec::with_capacity(seeds.len());
        for seed in seeds {
            let mut one = merged.clone();
            one.table
                .insert("seed".into(), toml::Value::Integer(seed as i64));
            let mut scenario = check(sources, &one)?;
            scenario.name = format!("{}-{}", scenario.name, c.name);
            runs.push(scenario);
        }
        if c.from.is_some() {
            // Founders carry the source's genomes and what it would pass
            // on: one of the two must shape their birth weights.
            let learns = runs[0].phases.iter().all(|p| {
                p.pressures.lifetime.as_ref().is_some_and(|l| {
                    !matches!(l.inheritance, crate::Inheritance::Darwinian)
                        || !l.connectome.is_empty()
                })
            });
            if !learns {
                return Err(ctx.at_key(
                    &format!("{here}.from"),
                    format!(
                        "condition `{}` starts from `{}`'s population, but neither its inheritance nor its genome passes anything on: set `lifetime.inheritance` to \"prune\" (e.g. `prune = {{ fraction = 0.0 }}` keeps the connectome as it is) or \"lamarckian\", or develop a connectome from the genome",
                        c.name,
                        c.from.as_deref().unwrap_or_default()
                    ),
                ));
            }
        }
        out.push(Condition {
            name: c.name.clone(),
            from: c.from.clone(),
            connectome,
            runs,
        });
    }
    Ok(out)
}

/// Rewrites relative data paths as absolute ones, so that the resolved
/// scenario a run directory keeps still finds its data.
fn absolute_data_paths(sources: &Sources, resolved: &Resolved, table: &mut toml::Table) {
    fn fix(
        sources: &Sources,
        resolved: &Resolved,
        field: &str,
        lifetime: Option<&mut toml::Value>,
    ) {
        let Some(path) = lifetime
            .and_then(|l| l.get_mut("environment"))
            .and_then(|e| e.get_mut("path"))
        else {
            return;
        };
        let Some(text) = path.as_str() else { return };
        if Path::new(text).is_absolute() {
            return;
        }
        if let Some(dir) = sources.dir_of(resolved, field) {
            let full = dir.join(text);
            let full = full.canonicalize().unwrap_or(full);
            *path = toml::Value::String(full.display().to_string());
        }
    }
    fix(
        sources,
        resolved,
        "lifetime.environment.path",
        table.get_mut("lifetime"),
    );
    if let Some(toml::Value::Table(plugins)) = table.get_mut("plugins") {
        for (alias, plugin) in plugins.iter_mut() {
            let Some(library) = plugin.get_mut("library") else {
                continue;
            };
            let Some(text) = library.as_str() else {
                continue;
            };
            if !looks_like_path(text) || Path::new(text).is_absolute() {
                continue;
            }
            if let Some(dir) = sources.dir_of(resolved, &format!("plugins.{alias}.library")) {
                let full = dir.join(text);
                let full = full.canonicalize().unwrap_or(full);
                *library = toml::Value::String(full.display().to_string());
            }
        }
    }
    if let Some(toml::Value::Array(changes)) = table.get_mut("environment") {
        for (i, change) in changes.iter_mut().enumerate() {
            let field = format!("environment[{i}].set.lifetime.environment.path");
            let lifetime = change.get_mut("set").and_then(|s| s.get_mut("lifetime"));
            fix(sources, resolved, &field, lifetime);
        }
    }
}

fn apply_change(
    ctx: &Ctx<'_>,
    here: &str,
    change: &RawChange,
    base: Resolved,
) -> Checked<Resolved> {
    if change.set.is_empty() {
        return Err(ctx.at(
            &format!("{here}.set"),
            "expected at least one key to change, found an empty table",
        ));
    }
    merge_set(
        ctx,
        here,
        &change.set,
        &CHANGEABLE,
        (
            "cannot be changed by the environment schedule",
            "changeable",
        ),
        base,
    )
}

/// Merges `set` (the table at `HERE.set`) over `base`, keeping where each
/// of its fields was written, after checking every key is in `allowed`
/// (`wording`: why a key is refused, and what the allowed list is called).
fn merge_set(
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

fn genome(ctx: &Ctx<'_>, raw: &RawScenario) -> Checked<GenomeSpec> {
    let g = &raw.genome;
    if !(0.0..=1.0).contains(&g.bit_density) {
        return Err(ctx.at(
            "genome.bit_density",
            format!("expected a probability in [0, 1], found {}", g.bit_density),
        ));
    }
    let mut genes = Vec::new();
    for (i, gene) in g.genes.iter().enumerate() {
        let at = |field: &str| format!("genome.genes[{i}].{field}");
        if gene.name.trim().is_empty() {
            return Err(ctx.at(&at("name"), "expected a gene name, found an empty string"));
        }
        if gene.count == 0 {
            return Err(ctx.at(&at("count"), "expected a count of at least 1, found 0"));
        }
        if !gene.min.is_finite() || !gene.max.is_finite() || gene.min > gene.max {
            return Err(ctx.at(
                &at("max"),
                format!(
                    "expected finite bounds with min <= max, found min = {}, max = {}",
                    gene.min, gene.max
                ),
            ));
        }
        if gene.log && gene.min <= 0.0 {
            return Err(ctx.at(
                &at("min"),
                format!("a log-scale gene needs min > 0, found {}", gene.min),
            ));
        }
        if genes.len() + gene.count > MAX_GENES {
            return Err(ctx.at(
                &at("count"),
                format!(
                    "expected at most {MAX_GENES} genes in all, found {} more",
                    gene.count
                ),
            ));
        }
        for k in 0..gene.count {
            let name = if gene.count == 1 {
                gene.name.clone()
            } else {
                format!("{}{k}", gene.name)
            };
            genes.push(GeneSpec {
                name,
                min: gene.min,
                max: gene.max,
                log: gene.log,
            });
        }
    }
    if g.bits > MAX_BITS {
        return Err(ctx.at(
            "genome.bits",
            format!("expected at most {MAX_BITS} bits, found {}", g.bits),
        ));
    }
    if genes.len() > MAX_GENES {
        return Err(ctx.at(
            "genome.genes",
            format!(
                "expected at most {MAX_GENES} genes in all, found {}",
                genes.len()
            ),
        ));
    }
    if g.bits == 0 && genes.is_empty() {
        return Err(ctx.at(
            "genome",
            "expected a genome with bits > 0 or at least one gene, found neither",
        ));
    }
    Ok(GenomeSpec {
        bits: g.bits,
        bit_density: g.bit_density,
        genes,
    })
}

fn pressures(ctx: &Ctx<'_>, raw: &RawScenario, genome: &GenomeSpec) -> Checked<Pressures> {
    let population = raw.population;
    // A population of one is a single lineage: the Model Connectomes outer
    // loop (`inheritance = "prune"`).
    if population < 1 {
        return Err(ctx.at("population", "expected a population of at least 1, found 0"));
    }
    if population > MAX_POPULATION {
        return Err(ctx.at(
            "population",
            format!("expected a population of at most {MAX_POPULATION}, found {population}"),
        ));
    }
    let lifetime = match &raw.lifetime {
        Some(l) => {
            let at = |field: &str, message: String| ctx.at(field, message);
            let dir_of = |field: &str| ctx.sources.dir_of(ctx.resolved, field).map(Path::to_owned);
            let check = crate::lifetime::Check {
                at: &at,
                dir_of: &dir_of,
            };
            Some(Arc::new(check.lifetime(l, genome)?))
        }
        None => None,
    };
    let fitness = fitness_spec(ctx, raw, genome, lifetime.is_some())?;
    let selection = selection(ctx, raw)?;
    let mutation = mutation(ctx, raw, genome)?;
    let crossover = match raw.crossover.method.as_str() {
        "none" => None,
        "uniform" => Some(Crossover::Uniform),
        "one_point" => Some(Crossover::OnePoint),
        other => {
            return Err(ctx.at(
                "crossover.method",
                one_of("crossover method", other, &CROSSOVER_METHODS),
            ));
        }
    };
    let rate = raw.crossover.rate;
    if !(0.0..=1.0).contains(&rate) {
        return Err(ctx.at(
            "crossover.rate",
            format!("expected a probability in [0, 1], found {rate}"),
        ));
    }
    let crossover = crossover.map(|kind| CrossoverSpec { kind, rate });
    Ok(Pressures {
        population,
        selection,
        mutation,
        crossover,
        fitness,
        lifetime,
    })
}

/// `fitness.function`: a built-in name, `builtin:NAME`, or `PLUGIN:OFFERING`.
fn fitness_spec(
    ctx: &Ctx<'_>,
    raw: &RawScenario,
    genome: &GenomeSpec,
    learns: bool,
) -> Checked<FitnessSpec> {
    let f = &raw.fitness;
    let (plugin, name) = match f.function.split_once(':') {
        Some((p, n)) => (Some(p), n),
        None => (None, f.function.as_str()),
    };
    let plugin = plugin.filter(|p| *p != BUILTIN_PLUGIN);
    let builtin_params = [
        ("k", f.k.is_some()),
        ("a", f.a.is_some()),
        ("offset", f.offset.is_some()),
    ];
    if let Some(alias) = plugin {
        let offering = plugin_offering(ctx, raw, "fitness.function", alias, name)?;
        if let Some((key, _)) = builtin_params.into_iter().find(|(_, given)| *given) {
            return Err(ctx.at_key(
                &format!("fitness.{key}"),
                format!(
                    "`{key}` is a parameter of the built-in functions; a plugin's parameters go in `[plugins.{alias}.config]`"
                ),
            ));
        }
        let metrics = f.metrics.clone().unwrap_or_default();
        if let Some(dup) = metrics
            .iter()
            .enumerate()
            .find(|(i, m)| metrics[..*i].contains(m))
        {
            return Err(ctx.at(
                "fitness.metrics",
                format!("metric `{}` is listed twice", dup.1),
            ));
        }
        return Ok(FitnessSpec::Plugin(PluginOffering {
            metrics,
            ..offering
        }));
    }
    if f.metrics.is_some() {
        return Err(ctx.at_key(
            "fitness.metrics",
            format!(
                "`metrics` picks objectives from a plugin's offering, but `{}` is built in",
                f.function
            ),
        ));
    }
    match LifetimeMetric::parse(name) {
        Some(metric) => {
            if !learns {
                return Err(ctx.at(
                    "fitness.function",
                    format!(
                        "`{}` scores an organism's lifetime, but the scenario has no `[lifetime]` table",
                        f.function
                    ),
                ));
            }
            if let Some((key, _)) = builtin_params.into_iter().find(|(_, given)| *given) {
                return Err(ctx.at_key(
                    &format!("fitness.{key}"),
                    format!(
                        "`{key}` is not a parameter of `{}`, which takes none",
                        f.function
                    ),
                ));
            }
            Ok(FitnessSpec::Lifetime(metric))
        }
        None => Ok(FitnessSpec::Genome(fitness(ctx, raw, name, genome)?)),
    }
}

/// `PLUGIN:OFFERING` where PLUGIN is declared in `[plugins]`.
fn plugin_offering(
    ctx: &Ctx<'_>,
    raw: &RawScenario,
    field: &str,
    alias: &str,
    offering: &str,
) -> Checked<PluginOffering> {
    if !raw.plugins.contains_key(alias) {
        let declared: Vec<&str> = raw.plugins.keys().map(String::as_str).collect();
        let mut msg = format!("no plugin `{alias}`: declare it as a `[plugins.{alias}]` table");
        if !declared.is_empty() {
            msg.push_str(&format!(" (declared: {})", declared.join(", ")));
        }
        return Err(ctx.at(field, msg));
    }
    if offering.is_empty() {
        return Err(ctx.at(
            field,
            format!("expected `{alias}:OFFERING`, found nothing after the colon"),
        ));
    }
    Ok(PluginOffering {
        plugin: alias.to_owned(),
        offering: offering.to_owned(),
        metrics: Vec::new(),
    })
}

/// `[plugins.NAME]` tables.
fn plugins(ctx: &Ctx<'_>, raw: &RawScenario) -> Checked<Vec<PluginRef>> {
    let mut out = Vec::new();
    for (alias, p) in &raw.plugins {
        let at = |key: &str| format!("plugins.{alias}.{key}");
        if alias == BUILTIN_PLUGIN || alias.is_empty() || alias.contains(':') {
            return Err(ctx.at_key(
                &format!("plugins.{alias}"),
                format!("`{alias}` cannot name a plugin (reserved, empty or holding a colon)"),
            ));
        }
        if p.library.trim().is_empty() {
            return Err(ctx.at(
                &at("library"),
                "expected a library name or path, found nothing",
            ));
        }
        let on_error = match p.on_error.as_str() {
            "abort" => OnError::Abort,
            "invalidate" => OnError::Invalidate,
            other => {
                return Err(ctx.at(
                    &at("on_error"),
                    one_of("error policy", other, &["abort", "invalidate"]),
                ));
            }
        };
        let isolation = match p.isolation.as_str() {
            "in-process" => Isolation::InProcess,
            "process" => Isolation::Process,
            other => {
                return Err(ctx.at(
                    &at("isolation"),
                    one_of("isolation", other, &["in-process", "process"]),
                ));
            }
        };
        if !(1..=MAX_PLUGIN_TIMEOUT_MS).contains(&p.timeout_ms) {
            return Err(ctx.at(
                &at("timeout_ms"),
                format!(
                    "expected 1 to {MAX_PLUGIN_TIMEOUT_MS} milliseconds, found {}",
                    p.timeout_ms
                ),
            ));
        }
        let dir = ctx
            .sources
            .dir_of(ctx.resolved, &at("library"))
            .map(Path::to_owned);
        let library = if looks_like_path(&p.library) && !Path::new(&p.library).is_absolute() {
            match &dir {
                Some(d) => d.join(&p.library).display().to_string(),
                None => p.library.clone(),
            }
        } else {
            p.library.clone()
        };
        let config_toml = toml::to_string(&p.config)
            .map_err(|e| ctx.at(&at("config"), format!("cannot write the table: {e}")))?;
        let mut config = Vec::new();
        flatten("", &p.config, &mut config);
        out.push(PluginRef {
            alias: alias.clone(),
            library,
            dir,
            on_error,
            isolation,
            timeout_ms: p.timeout_ms,
            config_toml,
            config,
        });
    }
    Ok(out)
}

/// A library written as a path rather than a name to look up.
fn looks_like_path(library: &str) -> bool {
    library.contains('/')
        || library.contains(std::path::MAIN_SEPARATOR)
        || library.ends_with(std::env::consts::DLL_SUFFIX)
}

/// A table as dotted keys and TOML-literal values.
fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, String)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            v => out.push((key, v.to_string())),
        }
    }
}

/// `[evaluate] suites`.
fn suites(ctx: &Ctx<'_>, raw: &RawScenario) -> Checked<Vec<PluginOffering>> {
    let mut out: Vec<PluginOffering> = Vec::new();
    for (i, s) in raw.evaluate.suites.iter().enumerate() {
        let field = format!("evaluate.suites[{i}]");
        let Some((alias, offering)) = s.split_once(':') else {
            return Err(ctx.at(&field, format!("expected `PLUGIN:SUITE`, found `{s}`")));
        };
        let suite = plugin_offering(ctx, raw, &field, alias, offering)?;
        if out.contains(&suite) {
            return Err(ctx.at(&field, format!("`{s}` is listed twice")));
        }
        out.push(suite);
    }
    Ok(out)
}

fn fitness(ctx: &Ctx<'_>, raw: &RawScenario, name: &str, genome: &GenomeSpec) -> Checked<Builtin> {
    let f = &raw.fitness;
    let given = [
        ("k", f.k.is_some()),
        ("a", f.a.is_some()),
        ("offset", f.offset.is_some()),
    ];
    let (builtin, takes): (Builtin, &[&str]) = match name {
        "onemax" => (Builtin::OneMax, &[]),
        "trap" => (
            Builtin::Trap {
                k: f.k.unwrap_or(4),
            },
            &["k"],
        ),
        "sphere" => (
            Builtin::Sphere {
                offset: f.offset.unwrap_or(0.0),
            },
            &["offset"],
        ),
        "rastrigin" => (
            Builtin::Rastrigin {
                a: f.a.unwrap_or(10.0),
                offset: f.offset.unwrap_or(0.0),
            },
            &["a", "offset"],
        ),
        "zdt1" => (Builtin::Zdt1, &[]),
        other => {
            return Err(ctx.at(
                "fitness.function",
                one_of(
                    "fitness function",
                    other,
                    &BUILTIN_NAMES
                        .iter()
                        .chain(LifetimeMetric::NAMES)
                        .copied()
                        .collect::<Vec<_>>(),
                ),
            ));
        }
    };
    for (param, present) in given {
        if present && !takes.contains(&param) {
            let takes = if takes.is_empty() {
                "no parameters".to_owned()
            } else {
                format!("only {}", takes.join(", "))
            };
            return Err(ctx.at_key(
                &format!("fitness.{param}"),
                format!(
                    "`{param}` is not a parameter of `{}`, which takes {takes}",
                    f.function
                ),
            ));
        }
    }
    if let Some(x) = [f.a, f.offset]
        .into_iter()
        .flatten()
        .find(|x| !x.is_finite())
    {
        return Err(ctx.at("fitness", format!("expected finite parameters, found {x}")));
    }
    if let Builtin::Trap { k: 0 } = builtin {
        return Err(ctx.at("fitness.k", "expected a block size of at least 1, found 0"));
    }
    builtin
        .check(genome)
        .map_err(|e| ctx.at("fitness.function", e.to_string()))?;
    Ok(builtin)
}

fn selection(ctx: &Ctx<'_>, raw: &RawScenario) -> Checked<Selection> {
    let s = &raw.selection;
    let n = raw.population;
    let given = [
        ("tournament_size", s.tournament_size.is_some()),
        ("fraction", s.fraction.is_some()),
        ("mu", s.mu.is_some()),
    ];
    let (takes, elitist): (&[&str], bool) = match s.method.as_str() {
        "tournament" => (&["tournament_size"], true),
        "truncation" => (&["fraction"], true),
        "mu_comma_lambda" | "mu_plus_lambda" | "nsga2" => (&["mu"], false),
        other => {
            return Err(ctx.at(
                "selection.method",
                one_of("selection method", other, &SELECTION_METHODS),
            ));
        }
    };
    for (param, present) in given {
        if present && !takes.contains(&param) {
            return Err(ctx.at_key(
                &format!("selection.{param}"),
                format!(
                    "`{param}` does not apply to method `{}`, which takes {}",
                    s.method,
                    takes.join(", ")
                ),
            ));
        }
    }
    if s.elitism > 0 && !elitist {
        return Err(ctx.at_key(
            "selection.elitism",
            format!(
                "`elitism` does not apply to `{}`, which decides survival itself through `mu`",
                s.method
            ),
        ));
    }
    if s.elitism >= n {
        return Err(ctx.at(
            "selection.elitism",
            format!(
                "expected fewer elites than the population ({n}), found {}",
                s.elitism
            ),
        ));
    }
    let method = match s.method.as_str() {
        "tournament" => {
            let size = s.tournament_size.unwrap_or(2);
            if size == 0 || size > n {
                return Err(ctx.at(
                    "selection.tournament_size",
                    format!(
                        "expected a tournament size from 1 to the population ({n}), found {size}"
                    ),
                ));
            }
            Method::Tournament { size }
        }
        "truncation" => {
            let fraction = s.fraction.unwrap_or(0.5);
            if !(fraction > 0.0 && fraction <= 1.0) {
                return Err(ctx.at(
                    "selection.fraction",
                    format!("expected a fraction in (0, 1], found {fraction}"),
                ));
            }
            Method::Truncation { fraction }
        }
        method => {
            let mu = match (s.mu, method) {
                (Some(mu), _) => mu,
                (None, "nsga2") => n / 2,
                (None, _) => {
                    return Err(ctx.at_key(
                        "selection",
                        format!("method `{method}` needs `mu`, the number of parents"),
                    ));
                }
            };
            let (limit, why) = if method == "mu_comma_lambda" {
                (n, "at most the population")
            } else {
                (
                    n - 1,
                    "below the population, so that at least one offspring is born",
                )
            };
            if mu == 0 || mu > limit {
                return Err(ctx.at(
                    "selection.mu",
                    format!("expected mu from 1 to {limit} ({why}), found {mu}"),
                ));
            }
            match method {
                "mu_comma_lambda" => Method::MuCommaLambda { mu },
                "mu_plus_lambda" => Method::MuPlusLambda { mu },
                _ => Method::Nsga2 { mu },
            }
        }
    };
    Ok(Selection {
        method,
        elitism: s.elitism,
    })
}

fn mutation(ctx: &Ctx<'_>, raw: &RawScenario, genome: &GenomeSpec) -> Checked<Mutation> {
    let m = &raw.mutation;
    let bit_rate = m.bit_rate.unwrap_or(if genome.bits > 0 {
        1.0 / genome.bits as f64
    } else {
        0.0
    });
    let gene_rate = m.gene_rate.unwrap_or(if genome.genes.is_empty() {
        0.0
    } else {
        1.0 / genome.genes.len() as f64
    });
    let sigma = m.sigma.unwrap_or(0.1);
    for (field, rate) in [("bit_rate", bit_rate), ("gene_rate", gene_rate)] {
        if !(0.0..=1.0).contains(&rate) {
            return Err(ctx.at(
                &format!("mutation.{field}"),
                format!("expected a probability in [0, 1], found {rate}"),
            ));
        }
    }
    if !(sigma >= 0.0 && sigma.is_finite()) {
        return Err(ctx.at(
            "mutation.sigma",
            format!("expected a finite sigma >= 0, found {sigma}"),
        ));
    }
    Ok(Mutation {
        bit_rate,
        sigma,
        gene_rate,
    })
}

fn stop(ctx: &Ctx<'_>, raw: &RawScenario, objectives: &[lineage_evo::Objective]) -> Checked<Stop> {
    if let Some(t) = raw.stop.target_fitness {
        // A plugin's objectives are known (and counted) when it loads.
        if !objectives.is_empty() && objectives.len() != 1 {
            return Err(ctx.at(
                "stop.target_fitness",
                format!(
                    "a target fitness needs a single objective, but this fitness has {}",
                    objectives.len()
                ),
            ));
        }
        if !t.is_finite() {
            return Err(ctx.at(
                "stop.target_fitness",
                format!("expected a finite number, found {t}"),
            ));
        }
    }
    if raw.stop.stagnation == Some(0) {
        return Err(ctx.at("stop.stagnation", "expected at least 1 generation, found 0"));
    }
    Ok(Stop {
        target_fitness: raw.stop.target_fitness,
        stagnation: raw.stop.stagnation,
    })
}
