//! The system sets of one generation, named and in schedule order: the
//! vocabulary the schedule orders and the clock (`resources::SetClock`)
//! times. Built on nothing else in the crate.

use bevy_ecs::prelude::*;

/// The system sets of one generation, in order.
#[derive(SystemSet, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LineageSystems {
    /// Apply the environment schedule's changes for this generation.
    Environment,
    /// Lifetime learning, from development (genome -> birth weights) to
    /// the learned weights.
    Learn,
    /// Fitness functions and evaluation suites.
    Evaluate,
    /// Per-generation and per-organism records; stopping criteria.
    Record,
    /// Survivors and parents of the next generation.
    Select,
    /// Offspring: breeding, culling the dead, spawning the newborns.
    Reproduce,
}

impl LineageSystems {
    /// Every set, in schedule order.
    pub const ALL: [LineageSystems; 6] = [
        LineageSystems::Environment,
        LineageSystems::Learn,
        LineageSystems::Evaluate,
        LineageSystems::Record,
        LineageSystems::Select,
        LineageSystems::Reproduce,
    ];

    /// Column name in `timings.csv`.
    pub fn name(self) -> &'static str {
        match self {
            LineageSystems::Environment => "environment",
            LineageSystems::Learn => "learn",
            LineageSystems::Evaluate => "evaluate",
            LineageSystems::Record => "record",
            LineageSystems::Select => "select",
            LineageSystems::Reproduce => "reproduce",
        }
    }
}
