//! `[stop]`: early stopping on a target fitness or on stagnation.

use super::{Checked, Ctx};
use crate::Stop;
use crate::raw::RawScenario;

pub(super) fn stop(
    ctx: &Ctx<'_>,
    raw: &RawScenario,
    objectives: &[lineage_evo::Objective],
) -> Checked<Stop> {
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
