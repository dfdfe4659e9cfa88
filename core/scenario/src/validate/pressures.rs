//! The pressures one phase is run under: `population`, `[selection]`,
//! `[mutation]`, `[crossover]`, `[fitness]` and `[lifetime]`, each checked
//! against the genome.

use std::path::Path;
use std::sync::Arc;

use lineage_evo::GenomeSpec;
use lineage_evo::operators::Crossover;

use super::fitness::fitness_spec;
use super::mutation::mutation;
use super::selection::selection;
use super::{Checked, Ctx, one_of};
use crate::memory::{self, MemoryEstimate};
use crate::raw::RawScenario;
use crate::{CrossoverSpec, Pressures};

/// A population past this is almost surely a typo, and would exhaust memory
/// before the first generation ends.
pub(super) const MAX_POPULATION: usize = 100_000_000;

pub(super) const CROSSOVER_METHODS: [&str; 3] = ["none", "uniform", "one_point"];

/// The pressures of one phase, and the memory the phase needs: its
/// environment's data (held) and one generation's.
pub(super) fn pressures(
    ctx: &Ctx<'_>,
    raw: &RawScenario,
    genome: &GenomeSpec,
) -> Checked<(Pressures, MemoryEstimate)> {
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
    let mut estimate = MemoryEstimate {
        held: Vec::new(),
        generation: memory::generation(population, genome, None),
    };
    if let Some((field, message)) = ctx.budget.refuse(&estimate) {
        return Err(ctx.at(&field, message));
    }
    let lifetime = match &raw.lifetime {
        Some(l) => {
            let at = |field: &str, message: String| ctx.at(field, message);
            let dir_of = |field: &str| ctx.sources.dir_of(ctx.resolved, field).map(Path::to_owned);
            let plugins = super::plugins::plugins(ctx, raw)?;
            let check = super::Check {
                at: &at,
                dir_of: &dir_of,
                budget: ctx.budget,
                population,
                seed: raw.seed,
                plugins: &plugins,
            };
            let (config, lifetime_estimate) = check.lifetime(l, genome)?;
            estimate = lifetime_estimate;
            Some(Arc::new(config))
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
    Ok((
        Pressures {
            population,
            selection,
            mutation,
            crossover,
            fitness,
            lifetime,
        },
        estimate,
    ))
}
