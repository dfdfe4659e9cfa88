//! `[[conditions]]`: each condition is the scenario with its `set` merged
//! in, checked as a whole scenario once per seed.

use super::{Checked, Ctx, check, merge_set, one_of};
use crate::load::{Resolved, Sources};
use crate::memory::Budget;
use crate::raw::RawScenario;
use crate::{Condition, ConnectomeTransform};

/// The most conditions, and seeds per condition: each run is validated,
/// and keeps its environments, on its own.
const MAX_CONDITIONS: usize = 1000;
const MAX_SEEDS: usize = 1000;

/// Keys a condition's `set` may change: everything that shapes one run.
pub(super) const CONDITION_KEYS: [&str; 13] = [
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

/// Sets `record.weights = "learned"` unless the table keeps every weight.
fn keep_learned_weights(table: &mut toml::Table) {
    let record = table
        .entry("record")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(record) = record.as_table_mut()
        && record.get("weights").and_then(|w| w.as_str()) != Some("all")
    {
        record.insert("weights".into(), toml::Value::String("learned".into()));
    }
}

/// `[[conditions]]`: each condition is the scenario with its `set` merged
/// in, validated as a whole scenario once per seed.
pub(super) fn conditions(
    sources: &Sources,
    resolved: &Resolved,
    raw: &RawScenario,
    budget: &Budget,
) -> Checked<Vec<Condition>> {
    let ctx = Ctx {
        sources,
        resolved,
        budget,
    };
    let mut base = resolved.clone();
    base.table.remove("conditions");
    base.provenance.retain(|p, _| !p.starts_with("conditions"));
    if raw.conditions.len() > MAX_CONDITIONS {
        return Err(ctx.at(
            "conditions",
            format!(
                "expected at most {MAX_CONDITIONS} conditions, found {}",
                raw.conditions.len()
            ),
        ));
    }
    let mut out: Vec<Condition> = Vec::new();
    for (i, c) in raw.conditions.iter().enumerate() {
        let here = format!("conditions[{i}]");
        if c.seeds.len() > MAX_SEEDS {
            return Err(ctx.at(
                &format!("{here}.seeds"),
                format!(
                    "expected at most {MAX_SEEDS} seeds, found {}",
                    c.seeds.len()
                ),
            ));
        }
        // `.` so that a condition can be named by its setting (`bursty-0.5`),
        // but not first: no hidden folders, no `.` or `..`.
        let valid_name = c.name.starts_with(|ch: char| ch.is_ascii_alphanumeric())
            && c.name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.'));
        if !valid_name {
            return Err(ctx.at(
                &format!("{here}.name"),
                format!(
                    "a condition's name becomes a folder name: start with a letter or digit and use letters, digits, `_`, `-` or `.`, found {:?}",
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
        // Seeds pair by position with the source's (the k-th from its
        // k-th), so each replicate descends from its own source run; a
        // source with one seed founds them all.
        if let Some(source) = c
            .from
            .as_ref()
            .and_then(|from| out.iter().find(|o| &o.name == from))
            && source.runs.len() > 1
            && source.runs.len() < seeds.len()
        {
            return Err(ctx.at(
                &format!("{here}.seeds"),
                format!(
                    "condition `{}` has {} seeds but its source `{}` has {}: the k-th seed starts from the source's k-th, so give the source at least as many seeds, or exactly one",
                    c.name,
                    seeds.len(),
                    source.name,
                    source.runs.len()
                ),
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
        // A condition others start from keeps its organisms' learned
        // weights: its dependents' founders inherit them.
        let is_source = raw
            .conditions
            .iter()
            .any(|d| d.from.as_deref() == Some(c.name.as_str()));
        let mut runs = Vec::with_capacity(seeds.len());
        for seed in seeds {
            let mut one = merged.clone();
            one.table
                .insert("seed".into(), toml::Value::Integer(seed as i64));
            if is_source {
                keep_learned_weights(&mut one.table);
            }
            let mut scenario = check(sources, &one, budget)?;
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
