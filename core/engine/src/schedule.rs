//! The generation schedule: named, ordered system sets.
//!
//! One run of the schedule is one generation:
//! `Environment -> Learn -> Evaluate -> Record -> Select -> Reproduce`.
//! Systems that add behaviour (lifetime learning, plugins) go into the set
//! named for what they do; the sets' order is the contract. A clock mark
//! runs before each set so the driver can write each set's wall time to
//! `timings.csv`. Ambiguity detection is an error: two systems that could
//! run in either order and touch the same data would make results depend on
//! scheduling.
//!
//! Built on `sets` (the set names, which the resources use too) and
//! `resources`.

use bevy_ecs::prelude::*;
use bevy_ecs::schedule::{LogLevel, ScheduleBuildSettings};

use crate::resources::{Failure, SetClock};
pub use crate::sets::LineageSystems;
use crate::systems;

/// Clock marks between the sets.
#[derive(SystemSet, Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ClockMark(Option<LineageSystems>);

fn mark(set: Option<LineageSystems>) -> impl FnMut(ResMut<SetClock>) {
    move |mut clock: ResMut<SetClock>| clock.mark(set)
}

/// Run condition: no system has failed this generation.
pub fn healthy(failure: Res<Failure>) -> bool {
    failure.0.is_none()
}

/// The sets of a generation's first half: up to the records, where every
/// organism has been evaluated (an island model exchanges migrants here).
pub const FIRST_HALF: [LineageSystems; 4] = [
    LineageSystems::Environment,
    LineageSystems::Learn,
    LineageSystems::Evaluate,
    LineageSystems::Record,
];

/// The sets of a generation's second half: selection and reproduction.
pub const SECOND_HALF: [LineageSystems; 2] = [LineageSystems::Select, LineageSystems::Reproduce];

/// Builds the generation's two schedules with the engine's own systems:
/// [`FIRST_HALF`] and [`SECOND_HALF`]; a generation runs the first, then
/// the second.
pub fn generation_schedules() -> [Schedule; 2] {
    [half(&FIRST_HALF), half(&SECOND_HALF)]
}

/// One half of the generation: `sets` in order, a clock mark before each,
/// and after the last set of the generation the closing mark.
fn half(sets: &[LineageSystems]) -> Schedule {
    let mut schedule = Schedule::default();
    // Systems run on the run's own thread, one after another (the sets are
    // a chain anyway; the work inside them goes to the run's rayon pool).
    // The multi-threaded executor would run them on bevy's process-wide
    // task pool, where one run's lifetime-long learning system holds a
    // thread that another run side by side (an experiment's seeds) waits for.
    schedule.set_executor(bevy_ecs::schedule::SingleThreadedExecutor::new());
    schedule.set_build_settings(ScheduleBuildSettings {
        ambiguity_detection: LogLevel::Error,
        ..Default::default()
    });
    for &set in sets {
        schedule.add_systems(mark(Some(set)).in_set(ClockMark(Some(set))));
        schedule.configure_sets(set.run_if(healthy));
        schedule.configure_sets(ClockMark(Some(set)).before(set));
    }
    for pair in sets.windows(2) {
        schedule.configure_sets(pair[0].before(ClockMark(Some(pair[1]))));
    }
    let last = *sets.last().expect("a half has sets");
    if last == LineageSystems::Reproduce {
        schedule.add_systems(mark(None).in_set(ClockMark(None)));
        schedule.configure_sets(last.before(ClockMark(None)));
    }
    for &set in sets {
        add_systems(&mut schedule, set);
    }
    schedule
}

/// The engine's systems of `set`.
fn add_systems(schedule: &mut Schedule, set: LineageSystems) {
    match set {
        LineageSystems::Environment => schedule.add_systems(
            (
                systems::apply_environment_changes,
                systems::invalidate_stale_fitness,
            )
                .chain()
                .in_set(set),
        ),
        LineageSystems::Learn => schedule.add_systems(systems::learn_lifetimes.in_set(set)),
        LineageSystems::Evaluate => schedule.add_systems(
            (
                systems::evaluate_fitness,
                systems::evaluate_suites,
                systems::rescore_best,
            )
                .chain()
                .in_set(set),
        ),
        LineageSystems::Record => schedule.add_systems(
            (
                systems::summarize_population,
                systems::write_generation_row,
                systems::write_organism_rows,
                systems::write_metric_rows,
                systems::track_progress,
            )
                .chain()
                .in_set(set),
        ),
        LineageSystems::Select => schedule.add_systems(systems::select_parents.in_set(set)),
        LineageSystems::Reproduce => schedule.add_systems(
            (
                systems::breed_offspring,
                systems::capture_inheritance,
                systems::place_offspring,
                systems::rewire_connectomes,
                systems::attach_inheritance,
                systems::advance_generation,
            )
                .chain()
                .in_set(set),
        ),
    };
}
