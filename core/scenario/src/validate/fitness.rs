//! `[fitness]`: a built-in function of the genome, a lifetime metric, or a
//! plugin's offering, with the parameters each takes.

use lineage_evo::GenomeSpec;
use lineage_evo::fitness::{BUILTIN_NAMES, Builtin};

use super::plugins::plugin_offering;
use super::{Checked, Ctx, one_of};
use crate::raw::RawScenario;
use crate::{BUILTIN_PLUGIN, FitnessSpec, LifetimeMetric, PluginOffering};

/// `fitness.function`: a built-in name, `builtin:NAME`, or `PLUGIN:OFFERING`.
pub(super) fn fitness_spec(
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

pub(super) fn fitness(
    ctx: &Ctx<'_>,
    raw: &RawScenario,
    name: &str,
    genome: &GenomeSpec,
) -> Checked<Builtin> {
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
