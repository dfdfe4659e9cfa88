//! Fault injection for the crash tests: `LINEAGE_FAULT=ACTION:POINT:GENERATION`
//! makes the process fail at a named point of a given generation, so a test
//! can crash a run exactly where a timed `kill -9` would only land by luck.
//!
//! `ACTION` is `abort` (the process dies at once, as under SIGKILL: no
//! unwinding, no buffer flushed), `panic` (a bug: the binary's panic hook
//! reports it and the process exits 1) or `error` (the run fails there with
//! an ordinary error, as a full disk would make it). `POINT` is `checkpoint` (half-way
//! through writing the checkpoint that starts `GENERATION`: the population
//! is written, the state is not), `generation` (before `GENERATION` is
//! simulated) or `arrival` (as an island model's process reads the
//! migrant batches that reached it at the end of `GENERATION`: `error`
//! there is a batch that arrived damaged). A fourth part, `@RANK`, limits the fault to the process of
//! that rank among those an MPI launcher started (`OMPI_COMM_WORLD_RANK`,
//! `PMIX_RANK` or `PMI_RANK`): `abort:generation:5@1` kills process 1 only.
//! Without the variable every point is a no-op that costs one cached
//! lookup.

use std::sync::OnceLock;

/// A place where a fault can be injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// Inside a checkpoint write, after the population, before the state.
    Checkpoint,
    /// Before a generation is simulated.
    Generation,
    /// As a process of an island model reads the migrant batches that
    /// reached it.
    Arrival,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Abort,
    Panic,
    Error,
}

/// The spec's fault, and the rank it is limited to, if any.
fn parse_ranked(spec: &str) -> Option<((Action, Point, u32), Option<usize>)> {
    match spec.split_once('@') {
        None => Some((parse(spec)?, None)),
        Some((fault, rank)) => Some((parse(fault)?, Some(rank.parse().ok()?))),
    }
}

fn parse(spec: &str) -> Option<(Action, Point, u32)> {
    let mut parts = spec.split(':');
    let action = match parts.next()? {
        "abort" => Action::Abort,
        "panic" => Action::Panic,
        "error" => Action::Error,
        _ => return None,
    };
    let point = match parts.next()? {
        "checkpoint" => Point::Checkpoint,
        "generation" => Point::Generation,
        "arrival" => Point::Arrival,
        _ => return None,
    };
    let generation = parts.next()?.parse().ok()?;
    parts
        .next()
        .is_none()
        .then_some((action, point, generation))
}

fn configured() -> Option<(Action, Point, u32)> {
    static FAULT: OnceLock<Option<(Action, Point, u32)>> = OnceLock::new();
    *FAULT.get_or_init(|| {
        let (fault, rank) = parse_ranked(&std::env::var("LINEAGE_FAULT").ok()?)?;
        (rank.is_none() || rank == crate::fabric::launched_rank()).then_some(fault)
    })
}

/// Fails here if `LINEAGE_FAULT` names this point and generation.
pub fn at(point: Point, generation: u32) -> Result<(), crate::EngineError> {
    if let Some((action, p, g)) = configured()
        && p == point
        && g == generation
    {
        let what = format!("fault injected by LINEAGE_FAULT at {point:?} {generation}");
        match action {
            Action::Abort => std::process::abort(),
            Action::Panic => panic!("{what}"),
            Action::Error => return Err(crate::EngineError::Injected(what)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_are_ignored() {
        assert_eq!(
            parse("abort:checkpoint:3"),
            Some((Action::Abort, Point::Checkpoint, 3))
        );
        assert_eq!(
            parse("error:generation:2"),
            Some((Action::Error, Point::Generation, 2))
        );
        assert_eq!(
            parse("panic:generation:0"),
            Some((Action::Panic, Point::Generation, 0))
        );
        for bad in [
            "",
            "abort",
            "abort:checkpoint",
            "kill:checkpoint:1",
            "abort:x:1",
            "abort:checkpoint:-1",
            "abort:checkpoint:1:2",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(
            parse_ranked("abort:generation:5@1"),
            Some(((Action::Abort, Point::Generation, 5), Some(1)))
        );
        assert_eq!(parse_ranked("abort:generation:5@x"), None);
        assert_eq!(parse_ranked("abort:generation@1"), None);
    }
}
