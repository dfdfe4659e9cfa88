//! Lineage's generational engine.
//!
//! Organisms are `bevy_ecs` entities carrying a [`components::Genome`], a
//! [`components::Lineage`] record, a [`components::Fitness`] and, for
//! learning organisms, [`components::Weights`] and a
//! [`components::LearningCurve`]. One generation is one run of the schedule
//! built by [`schedule::generation_schedules`] (two halves), whose sets
//! ([`LineageSystems`]) run in the order environment, learn,
//! evaluate, record, select, reproduce.
//!
//! The principal type is [`Run`]: it starts a run of a validated scenario in
//! a run directory (or resumes one from its latest checkpoint), steps it one
//! generation at a time, and keeps `generations.csv`, `organisms.csv`,
//! `timings.csv`, `manifest.json` and `checkpoints/` up to date.
//!
//! Fitness functions and evaluation suites, built in or from plugin
//! libraries, are called through `lineage-plugin-host` ([`plugins`]).
//!
//! Determinism: every random draw comes from a stream keyed by (seed,
//! generation, organism id, purpose), and every system sorts what it gathers
//! by organism id, so the records are byte-identical whatever the number of
//! threads, and a resumed run writes exactly what an uninterrupted one would.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod components;
pub mod conditions;
pub mod develop;
mod error;
pub mod export;
pub mod fabric;
pub mod fault;
pub mod islands;
pub mod manifest;
pub mod plugins;
pub mod recorder;
pub mod resources;
mod run;
pub mod schedule;
pub mod sets;
pub mod systems;
mod writer;

pub use error::EngineError;
pub use run::{
    Ended, Finished, GenerationReport, Resumed, Run, RunOptions, SCENARIO_FILE, sha256_hex,
};
pub use schedule::LineageSystems;
