//! `[islands]`: the population split into islands that evolve side by side
//! and exchange migrants. Each island is the scenario with the `set` of
//! every `[[islands.override]]` naming it merged in (in order), checked as
//! a whole scenario; `population` is each island's.

use super::{Checked, Ctx, check, merge_set, nearest, one_of};
use crate::load::{Resolved, Sources};
use crate::memory::{Budget, MemoryEstimate};
use crate::raw::RawScenario;
use crate::{Choice, Islands, Topology};

/// The most islands: each is validated, and runs, as a scenario of its own.
pub(super) const MAX_ISLANDS: usize = 4096;

/// Keys an island override's `set` may change: the pressures an island
/// lives under. The run's length, checkpoints and records are the run's.
const OVERRIDE_KEYS: [&str; 8] = [
    "population",
    "selection",
    "mutation",
    "crossover",
    "fitness",
    "lifetime",
    "environment",
    "evaluate",
];

const TOPOLOGIES: [&str; 4] = ["ring", "torus", "full", "random"];

/// Checks `[islands]` (`None` without the table) and builds every island's
/// scenario. `memory` becomes what the islands hold at once (they run at
/// the same time).
pub(super) fn islands(
    sources: &Sources,
    resolved: &Resolved,
    raw: &RawScenario,
    budget: &Budget,
    memory: &mut MemoryEstimate,
) -> Checked<Option<Islands>> {
    let Some(r) = &raw.islands else {
        return Ok(None);
    };
    let ctx = Ctx {
        sources,
        resolved,
        budget,
    };
    if !raw.conditions.is_empty() {
        return Err(ctx.at_key(
            "islands",
            "`[islands]` and `[[conditions]]` cannot be combined yet: run the island model as a scenario of its own",
        ));
    }
    if r.count == 0 || r.count > MAX_ISLANDS {
        return Err(ctx.at(
            "islands.count",
            format!("expected 1 to {MAX_ISLANDS} islands, found {}", r.count),
        ));
    }
    if r.migration_interval == 0 {
        return Err(ctx.at(
            "islands.migration_interval",
            "expected at least 1 generation between migrations, found 0",
        ));
    }
    let topology = match r.topology.as_str() {
        "ring" => Topology::Ring,
        "full" => Topology::Full,
        "torus" => {
            let rows = match r.rows {
                Some(rows) => rows,
                None => squarest_rows(r.count),
            };
            if rows == 0 || !r.count.is_multiple_of(rows) {
                return Err(ctx.at(
                    "islands.rows",
                    format!(
                        "a torus lays the {} islands out in `rows` rows of equal length: {rows} does not divide {}",
                        r.count, r.count
                    ),
                ));
            }
            Topology::Torus { rows }
        }
        "random" => {
            let Some(degree) = r.degree else {
                return Err(ctx.at(
                    "islands.topology",
                    "a random topology needs `islands.degree`, the islands each one sends migrants to",
                ));
            };
            if degree == 0 || degree >= r.count {
                return Err(ctx.at(
                    "islands.degree",
                    format!(
                        "expected a degree from 1 to {} (one less than the islands), found {degree}",
                        r.count.saturating_sub(1)
                    ),
                ));
            }
            Topology::Random { degree }
        }
        other => {
            let mut msg = one_of("topology", other, &TOPOLOGIES);
            if let Some(best) = nearest(other, &TOPOLOGIES) {
                msg.push_str(&format!("; did you mean `{best}`?"));
            }
            return Err(ctx.at("islands.topology", msg));
        }
    };
    for (key, value, applies) in [
        (
            "degree",
            r.degree.is_some(),
            matches!(topology, Topology::Random { .. }),
        ),
        (
            "rows",
            r.rows.is_some(),
            matches!(topology, Topology::Torus { .. }),
        ),
    ] {
        if value && !applies {
            return Err(ctx.at_key(
                &format!("islands.{key}"),
                format!(
                    "`islands.{key}` is read only with `topology = \"{}\"`",
                    if key == "rows" { "torus" } else { "random" }
                ),
            ));
        }
    }
    let choice = |field: &str, found: &str, first: (&str, Choice)| -> Checked<Choice> {
        match found {
            "random" => Ok(Choice::Random),
            f if f == first.0 => Ok(first.1),
            other => Err(ctx.at(field, one_of("choice", other, &[first.0, "random"]))),
        }
    };
    let emigrants = choice("islands.emigrants", &r.emigrants, ("best", Choice::Best))?;
    let replace = choice("islands.replace", &r.replace, ("worst", Choice::Worst))?;

    let mut base = resolved.clone();
    base.table.remove("islands");
    base.provenance.retain(|p, _| !p.starts_with("islands"));
    for (k, o) in r.overrides.iter().enumerate() {
        if let Some(&bad) = o.islands.iter().find(|&&i| i >= r.count) {
            return Err(ctx.at(
                &format!("islands.override[{k}].islands"),
                format!(
                    "island {bad} does not exist: islands are numbered 0 to {}",
                    r.count - 1
                ),
            ));
        }
        if o.islands.is_empty() {
            return Err(ctx.at(
                &format!("islands.override[{k}].islands"),
                "expected the islands it applies to, found none",
            ));
        }
    }
    // The islands are the run: what they hold replaces the base's estimate.
    let mut total = MemoryEstimate::default();
    let mut scenarios = Vec::with_capacity(r.count);
    for island in 0..r.count {
        let mut one = base.clone();
        // Each island's streams derive from its own seed.
        one.table.insert(
            "seed".into(),
            toml::Value::Integer(lineage_evo::rng::island_seed(raw.seed, island) as i64),
        );
        for (k, o) in r.overrides.iter().enumerate() {
            if o.islands.contains(&island) {
                one = merge_set(
                    &ctx,
                    &format!("islands.override[{k}]"),
                    &o.set,
                    &OVERRIDE_KEYS,
                    ("cannot be set per island", "settable"),
                    one,
                )?;
            }
        }
        let mut scenario = check(sources, &one, budget)?;
        scenario.name = format!("{}-island-{island}", scenario.name);
        if r.migrants >= scenario.pressures_at(0).population {
            return Err(ctx.at(
                "islands.migrants",
                format!(
                    "island {island} has {} organisms: it cannot send or take {} migrants per neighbour",
                    scenario.pressures_at(0).population,
                    r.migrants
                ),
            ));
        }
        total.add(&scenario.memory);
        scenarios.push(scenario);
    }
    *memory = total;
    if scenarios
        .iter()
        .any(|s| s.objectives != scenarios[0].objectives || s.genome != scenarios[0].genome)
    {
        return Err(ctx.at_key(
            "islands.override",
            "every island must have the same genome and objectives: migrants carry their genome and fitness from island to island",
        ));
    }
    Ok(Some(Islands {
        count: r.count,
        migration_interval: r.migration_interval,
        migrants: r.migrants,
        topology,
        emigrants,
        replace,
        scenarios,
    }))
}

/// The number of rows of the most square grid of `count` islands.
fn squarest_rows(count: usize) -> usize {
    let mut rows = 1;
    let mut r = 1;
    while r * r <= count {
        if count.is_multiple_of(r) {
            rows = r;
        }
        r += 1;
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::squarest_rows;

    #[test]
    fn the_squarest_grid_has_the_most_rows_up_to_the_square_root() {
        assert_eq!(squarest_rows(16), 4);
        assert_eq!(squarest_rows(12), 3);
        assert_eq!(squarest_rows(7), 1);
        assert_eq!(squarest_rows(1), 1);
    }
}
