//! `[[environment]]`: changes of the generational pressures from a
//! generation on, merged over everything before them.

use super::{Checked, Ctx, merge_set};
use crate::load::Resolved;
use crate::raw::RawChange;

/// Keys an `[[environment]]` entry may `set`.
pub(super) const CHANGEABLE: [&str; 6] = [
    "population",
    "selection",
    "mutation",
    "crossover",
    "fitness",
    "lifetime",
];

pub(super) fn apply_change(
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
