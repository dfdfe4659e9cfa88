//! The engine's systems, one per step, grouped by the set they run in.
//!
//! Systems never depend on the order in which the ECS yields entities:
//! whatever they gather, they sort by organism id first.

mod environment;
mod evaluate;
mod learn;
mod record;
mod reproduce;
mod rescore;
mod select;

pub use environment::{apply_environment_changes, invalidate_stale_fitness};
pub use evaluate::{evaluate_fitness, evaluate_suites};
pub use learn::{
    PendingInheritance, attach_inheritance, birth_of, capture_inheritance, learn_lifetimes,
    lifetime_data, rewire_connectomes,
};
pub use record::{
    summarize_population, track_progress, write_generation_row, write_metric_rows,
    write_organism_rows,
};
pub use reproduce::{advance_generation, breed_offspring, place_offspring};
pub use rescore::rescore_best;
pub use select::select_parents;
