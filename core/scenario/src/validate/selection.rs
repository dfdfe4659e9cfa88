//! `[selection]`: the method, its parameter and elitism, checked against
//! the population.

use lineage_evo::selection::Method;

use super::{Checked, Ctx, one_of};
use crate::Selection;
use crate::raw::RawScenario;

pub(super) const SELECTION_METHODS: [&str; 5] = [
    "tournament",
    "truncation",
    "mu_comma_lambda",
    "mu_plus_lambda",
    "nsga2",
];

pub(super) fn selection(ctx: &Ctx<'_>, raw: &RawScenario) -> Checked<Selection> {
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
