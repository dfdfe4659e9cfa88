//! The island model in one process: one [`Run`] per island, each in its
//! own folder `islands/island-K/` under the run directory, stepped in
//! lockstep; every `migration_interval` generations migrants move between
//! them.
//!
//! A generation is two halves ([`Run::evaluate_generation`],
//! [`Run::breed_generation`]). Between them every island has evaluated its
//! organisms, and the exchange runs in island order: each island `i` sends
//! to each of its targets (`Topology::targets`, a random topology drawn
//! from `(seed, g, i, Topology)`) `migrants` copies of organisms chosen
//! among its own (`best` or from `(seed, g, i * islands + target,
//! Emigrate)`); all emigrants are chosen before any arrives. Then each
//! island takes its arrivals, in the order they were sent, in place of as
//! many of its own organisms (`worst`, or from `(seed, g, island,
//! Immigrate)`), at most all of them. An arrival keeps its genome, its
//! fitness (from its island of origin), its kept weights and curve, and
//! gets a new id in its new island; `migrations.csv` records where it came
//! from. Selection then sees it like any other organism.
//!
//! Every island's streams derive from its own seed
//! (`lineage_evo::rng::island_seed`), the exchange's from the run's seed;
//! nothing depends on how islands are scheduled. The archipelago stops
//! when any island's stop criterion holds.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bevy_ecs::prelude::*;
use lineage_evo::rng::{Purpose, stream};
use lineage_scenario::{Choice, Islands, Scenario};
use serde::{Deserialize, Serialize};

use crate::components::{Fitness, Genome, LearningCurve, Lineage, OrganismId, Weights};
use crate::error::EngineError;
use crate::fabric::Fabric;
use crate::resources::{Generation, NextOrganismId, Objectives};
use crate::{GenerationReport, Run, RunOptions};

mod manifest;
mod migration;
mod wire;

pub use manifest::{IslandsManifest, IslandsSession};
use manifest::{hosts, session};
use migration::{MIGRATIONS_LEN, Migrations};
pub use migration::{Migrant, emigrants, immigrate};

/// The run-wide table of migrations.
pub const MIGRATIONS: &str = "migrations.csv";

/// The folder of island `island`, relative to the run directory.
pub fn island_dir(island: usize) -> String {
    format!("islands/island-{island}")
}

/// Runs the island model of `scenario`: every island in this process
/// with [`OneProcess`](crate::fabric::OneProcess), or this process's block
/// of islands ([`crate::fabric::block`]) with another fabric. Returns the
/// run directory, which process 0 chooses. `on_generation` hears each of
/// this process's islands' reports as its generation ends.
pub fn run_islands(
    scenario: &Scenario,
    options: &RunOptions,
    fabric: &dyn Fabric,
    on_generation: impl FnMut(usize, &GenerationReport),
) -> Result<PathBuf, EngineError> {
    let islands = scenario
        .islands
        .as_ref()
        .expect("run_islands is given a scenario with [islands]");
    let mine = blocks(islands, fabric)?;
    // Process 0 chooses and creates the directory, and tells the others
    // where it is (or that it failed: then every process stops).
    let created = if fabric.rank() == 0 {
        create_root(scenario, options)
    } else {
        Ok(PathBuf::new())
    };
    let told = fabric.broadcast(match &created {
        Ok(root) => path_bytes(root),
        Err(_) => Vec::new(),
    })?;
    let root = match created {
        Err(e) => return Err(e),
        Ok(_) if told.is_empty() => {
            return Err(EngineError::Fabric(format!(
                "process 0 could not create the run directory, so {} stopped (process 0 says why)",
                fabric.name()
            )));
        }
        Ok(_) => path_from(told),
    };
    fabric.note_run_dir(&root);
    let hosts = hosts(fabric)?;
    let started = (|| {
        let mut runs = Vec::with_capacity(mine.len());
        for island in mine.clone() {
            let options = RunOptions {
                out: Some(root.join(island_dir(island))),
                threads: options.threads,
            };
            runs.push(Run::start(islands.scenarios[island].clone(), &options)?);
        }
        let migrations = match fabric.rank() {
            0 => {
                let now = crate::manifest::utc_now();
                IslandsManifest {
                    lineage_version: env!("CARGO_PKG_VERSION").into(),
                    git_commit: crate::manifest::git_commit(),
                    scenario: scenario.name.clone(),
                    scenario_sha256: crate::run::sha256_hex(scenario.resolved_toml.as_bytes()),
                    seed: scenario.seed,
                    islands: islands.count,
                    started: now,
                    finished: None,
                    sessions: vec![session("run", fabric, options.threads, hosts, 0)],
                }
                .write(&root)?;
                let mut m = Migrations::create(&root)?;
                m.checkpoint(&root, 0)?;
                Some(m)
            }
            _ => None,
        };
        Ok((runs, migrations))
    })();
    let ((runs, migrations), _) = agree(fabric, Some(&root), 0, started, false)?;
    drive(
        &root,
        islands,
        scenario.seed,
        mine,
        runs,
        migrations,
        fabric,
        on_generation,
    )
}

#[cfg(unix)]
fn path_bytes(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

#[cfg(unix)]
fn path_from(bytes: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

#[cfg(not(unix))]
fn path_bytes(path: &Path) -> Vec<u8> {
    path.to_string_lossy().into_owned().into_bytes()
}

#[cfg(not(unix))]
fn path_from(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(&bytes).into_owned())
}

/// The run directory with the scenario and an empty checkpoints folder.
fn create_root(scenario: &Scenario, options: &RunOptions) -> Result<PathBuf, EngineError> {
    let root = crate::run::output_dir(options.out.as_deref(), &scenario.name)?;
    std::fs::create_dir_all(root.join("checkpoints"))
        .map_err(EngineError::io("cannot create", &root))?;
    crate::checkpoint::write_synced(
        &root.join(crate::SCENARIO_FILE),
        scenario.resolved_toml.as_bytes(),
    )?;
    Ok(root)
}

/// This process's islands; an error where there are more processes than
/// islands.
fn blocks(islands: &Islands, fabric: &dyn Fabric) -> Result<Range<usize>, EngineError> {
    if fabric.size() > islands.count {
        return Err(EngineError::Fabric(format!(
            "{} processes for {} islands: each process runs a block of whole islands, so start at most {} processes (or raise islands.count)",
            fabric.size(),
            islands.count,
            islands.count
        )));
    }
    Ok(crate::fabric::block(
        fabric.rank(),
        fabric.size(),
        islands.count,
    ))
}

/// What [`resume_islands`] found.
pub enum ResumedIslands {
    /// The run went on and ended; its directory.
    Ran(PathBuf),
    /// The run had ended at this generation; nothing was run and no record
    /// changed.
    Finished(u32),
}

/// Resumes the island model in `root` from the latest generation every
/// island has a checkpoint of, and runs it to its end (or to
/// `generations`), with any number of processes. The records come out
/// byte for byte as an uninterrupted run's.
pub fn resume_islands(
    root: &Path,
    generations: Option<u32>,
    threads: usize,
    fabric: &dyn Fabric,
    on_generation: impl FnMut(usize, &GenerationReport),
) -> Result<ResumedIslands, EngineError> {
    let bad = |message: String| EngineError::BadRunDir {
        path: root.to_path_buf(),
        message,
    };
    let scenario = lineage_scenario::load(&root.join(crate::SCENARIO_FILE), &Default::default())?;
    let islands = scenario
        .islands
        .as_ref()
        .ok_or_else(|| bad("its scenario.toml has no [islands]".into()))?;
    let mine = blocks(islands, fabric)?;
    fabric.note_run_dir(root);
    let ((g, len), _) = agree(fabric, Some(root), 0, resume_point(root, islands), false)?;
    // Every process must have found the same generation (on a shared file
    // system, all see the same checkpoints).
    let found = fabric.all_gather(u64::from(g))?;
    if found.iter().any(|&other| other != u64::from(g)) {
        return Err(EngineError::Fabric(format!(
            "the processes found different checkpoints to resume from (generations {found:?} in process order): is {} on a file system every process shares?",
            root.display()
        )));
    }
    let hosts = hosts(fabric)?;
    let resumed = (|| {
        // A run that had ended is left exactly as it is: no island is
        // resumed (which would note a session in its manifest) when one
        // had stopped.
        for (island, s) in islands.scenarios.iter().enumerate() {
            let state = crate::checkpoint::load_state(&crate::checkpoint::dir_for(
                &root.join(island_dir(island)),
                g,
            ))?;
            if state.progress.stop.is_some() || generations.unwrap_or(s.generations) <= g {
                return Ok(None);
            }
        }
        let mut runs = Vec::with_capacity(mine.len());
        for island in mine.clone() {
            match Run::resume_at(
                &root.join(island_dir(island)),
                Some(g),
                generations,
                threads,
                false,
            )? {
                crate::Resumed::Running(run) => runs.push(*run),
                crate::Resumed::Finished(_) => return Ok(None),
            }
        }
        let migrations = match fabric.rank() {
            0 => {
                if let Some(mut manifest) = IslandsManifest::read(root)? {
                    manifest.finished = None;
                    manifest
                        .sessions
                        .push(session("resume", fabric, threads, hosts, g));
                    manifest.write(root)?;
                }
                Some(Migrations::reopen(root, len)?)
            }
            _ => None,
        };
        Ok(Some((runs, migrations)))
    })();
    let finished = matches!(resumed, Ok(None));
    let (resumed, any_finished) = agree(fabric, Some(root), g, resumed, finished)?;
    let Some((runs, migrations)) = resumed.filter(|_| !any_finished) else {
        return Ok(ResumedIslands::Finished(g));
    };
    drive(
        root,
        islands,
        scenario.seed,
        mine,
        runs,
        migrations,
        fabric,
        on_generation,
    )
    .map(ResumedIslands::Ran)
}

/// The latest generation that the run recorded and every island holds,
/// and the length `migrations.csv` had then.
fn resume_point(root: &Path, islands: &Islands) -> Result<(u32, u64), EngineError> {
    let bad = |message: String| EngineError::BadRunDir {
        path: root.to_path_buf(),
        message,
    };
    let mut recorded = crate::checkpoint::all(root)?;
    recorded.reverse();
    for record in recorded {
        let Some(g) = crate::checkpoint::generation_of(&record) else {
            continue;
        };
        let everywhere = (0..islands.count).all(|i| {
            crate::checkpoint::all(&root.join(island_dir(i))).is_ok_and(|all| {
                all.iter()
                    .any(|p| crate::checkpoint::generation_of(p) == Some(g))
            })
        });
        if everywhere {
            let len = std::fs::read_to_string(record.join(MIGRATIONS_LEN))
                .map_err(EngineError::io("cannot read", record.join(MIGRATIONS_LEN)))?
                .trim()
                .parse()
                .map_err(|_| bad(format!("{} is damaged", record.display())))?;
            return Ok((g, len));
        }
    }
    Err(bad(
        "holds no generation that every island has a checkpoint of: start the run again".into(),
    ))
}

/// Tells the other processes how `outcome` went (and whether this one is
/// `done`) and hears how theirs went: every process returns its own error
/// if it failed, [`EngineError::PeerFailed`] if another did, and otherwise
/// its value and whether any process was done. Generation `g` names where
/// in errors.
///
/// Every failure of an island model's processes goes through here, so no
/// process waits for another that has stopped.
pub fn agree<T>(
    fabric: &dyn Fabric,
    run_dir: Option<&Path>,
    g: u32,
    outcome: Result<T, EngineError>,
    done: bool,
) -> Result<(T, bool), EngineError> {
    let word = match (&outcome, done) {
        (Err(_), _) => FAILED,
        (Ok(_), true) => DONE,
        (Ok(_), false) => GO_ON,
    };
    let words = fabric.all_gather(word)?;
    if words.contains(&FAILED) {
        fabric.heard_failure();
    }
    let value = outcome?;
    if let Some(p) = words.iter().position(|&w| w == FAILED) {
        return Err(EngineError::PeerFailed {
            process: crate::fabric::name(p, fabric.size()),
            this: fabric.name(),
            generation: g,
            run_dir: run_dir.map(Path::to_path_buf),
        });
    }
    Ok((value, words.contains(&DONE)))
}

/// What a process tells the others at each point where they agree.
const GO_ON: u64 = 0;
/// One of its islands stopped (its criterion held, or it reached its
/// last generation): the archipelago stops.
const DONE: u64 = 1;
/// It failed: every process stops.
const FAILED: u64 = 2;

/// Steps this process's islands (`mine`, whose runs are `runs`) in
/// lockstep with the other processes' to their end, exchanging migrants;
/// process 0 records the migrations and the table's length at every
/// checkpoint.
///
/// The processes agree twice a generation: before it starts (any island
/// done: all stop) and after the evaluation (before migrants move); an
/// exchange adds one (its batches fit in messages). A process that fails
/// says so at the next of these, so no process waits for a message that
/// will never come.
fn drive(
    root: &Path,
    islands: &Islands,
    seed: u64,
    mine: Range<usize>,
    mut runs: Vec<Run>,
    mut migrations: Option<Migrations>,
    fabric: &dyn Fabric,
    mut on_generation: impl FnMut(usize, &GenerationReport),
) -> Result<PathBuf, EngineError> {
    let started = Instant::now();
    for (island, run) in mine.clone().zip(&runs) {
        for warning in run.warnings() {
            tracing::warn!(
                process = fabric.rank(),
                island,
                "island {island}: {warning}"
            );
        }
    }
    let timed = crate::fabric::Timed::new(fabric);
    let fabric = &timed;
    let every = islands.scenarios[0].checkpoint_every;
    let mut outcome: Result<(), EngineError> = Ok(());
    loop {
        let g = runs[0].generation();
        let done = runs.iter().any(Run::is_done);
        if agree(fabric, Some(root), g, outcome, done)?.1 {
            break;
        }
        let evaluated = runs
            .iter_mut()
            .try_for_each(|run| run.evaluate_generation());
        agree(fabric, Some(root), g, evaluated, false)?;
        outcome = (|| {
            if (g + 1).is_multiple_of(islands.migration_interval) {
                let rows = exchange(root, islands, seed, g, mine.clone(), &mut runs, fabric)?;
                if let Some(m) = &mut migrations {
                    m.append(&rows)?;
                }
            }
            for (island, run) in mine.clone().zip(&mut runs) {
                let report = run.breed_generation()?;
                on_generation(island, &report);
            }
            // The islands checkpoint at the same generations (they share
            // `checkpoint_every`); at the end, process 0 records the table
            // once every process has agreed to stop, below.
            let completed = g + 1;
            if let Some(m) = &mut migrations
                && every > 0
                && completed.is_multiple_of(every)
            {
                m.checkpoint(root, completed)?;
            }
            Ok(())
        })();
    }
    if let Some(m) = &mut migrations {
        let g = runs[0].generation();
        if every == 0 || !g.is_multiple_of(every) {
            m.checkpoint(root, g)?;
        }
        if let Some(mut manifest) = IslandsManifest::read(root)? {
            let now = crate::manifest::utc_now();
            if let Some(last) = manifest.sessions.last_mut() {
                last.finished = Some(now.clone());
            }
            manifest.finished = Some(now);
            manifest.write(root)?;
        }
    }
    for run in runs {
        run.finish()?;
    }
    tracing::info!(
        process = fabric.rank(),
        processes = fabric.size(),
        islands = ?mine,
        wall_s = started.elapsed().as_secs_f64(),
        fabric_s = timed.time.get().as_secs_f64(),
        messages = timed.messages.get(),
        bytes = timed.bytes.get(),
        "island model ended"
    );
    Ok(root.to_path_buf())
}

/// One exchange at generation `g` among this process's islands `mine` and
/// the other processes'; returns the `migrations.csv` rows of every
/// island at process 0 (nothing elsewhere).
///
/// Every process draws every island's targets (the topology is a function
/// of the seed), so each knows which batches to send and which to expect,
/// in the same order as their senders: by origin island, then by target
/// in the topology's order. A batch between islands of the same process
/// never leaves it.
fn exchange(
    root: &Path,
    islands: &Islands,
    seed: u64,
    g: u32,
    mine: Range<usize>,
    runs: &mut [Run],
    fabric: &dyn Fabric,
) -> Result<String, EngineError> {
    let n = islands.count;
    let size = fabric.size();
    let owner = |island| crate::fabric::owner(island, size, n);
    let targets: Vec<Vec<usize>> = (0..n)
        .map(|island| {
            let mut topology = stream(seed, g, island as u64, Purpose::Topology);
            islands.topology.targets(island, n, &mut topology)
        })
        .collect();
    // All emigrants are chosen before any arrives.
    let mut inbox: Vec<Vec<(usize, Vec<Migrant>)>> = vec![Vec::new(); mine.len()];
    let mut sends = Vec::new();
    for (island, run) in mine.clone().zip(runs.iter_mut()) {
        for &target in &targets[island] {
            let mut rng = stream(seed, g, (island * n + target) as u64, Purpose::Emigrate);
            let sent = emigrants(run, island, islands.emigrants, islands.migrants, &mut rng);
            if mine.contains(&target) {
                inbox[target - mine.start].push((island, sent));
            } else {
                sends.push((owner(target), wire::encode(&sent)));
            }
        }
    }
    let mut expected = Vec::new();
    for source in (0..n).filter(|s| !mine.contains(s)) {
        for &target in targets[source].iter().filter(|t| mine.contains(t)) {
            expected.push((source, target));
        }
    }
    let from: Vec<usize> = expected.iter().map(|&(source, _)| owner(source)).collect();
    // A batch too long for one message stops every process before any is
    // sent.
    let longest = sends.iter().map(|(_, b)| b.len()).max().unwrap_or(0);
    let fits = match longest <= fabric.max_message() {
        true => Ok(()),
        false => Err(EngineError::Fabric(format!(
            "a batch of migrants from generation {g} takes {longest} bytes, more than one message can hold ({} bytes): send fewer migrants",
            fabric.max_message()
        ))),
    };
    agree(fabric, Some(root), g, fits, false)?;
    let received = fabric.exchange(sends, &from)?;
    let decoded = crate::fault::at(crate::fault::Point::Arrival, g).and_then(|()| {
        expected
            .into_iter()
            .zip(received)
            .try_for_each(|((source, target), bytes)| {
                inbox[target - mine.start].push((source, wire::decode(&bytes)?));
                Ok(())
            })
    });
    let mut rows = String::new();
    if decoded.is_ok() {
        for ((island, run), mut batches) in mine.clone().zip(runs.iter_mut()).zip(inbox) {
            // Arrivals in the order they were sent: by origin island
            // (stable, so one origin's batches keep the topology's order).
            batches.sort_by_key(|&(source, _)| source);
            let arrivals = batches.into_iter().flat_map(|(_, b)| b).collect();
            let mut rng = stream(seed, g, island as u64, Purpose::Immigrate);
            for (m, id) in immigrate(run, arrivals, islands.replace, &mut rng) {
                let _ = writeln!(rows, "{g},{},{},{island},{id}", m.from_island, m.from_id);
            }
        }
    }
    // Process 0 gets every process's rows; blocks are in island order.
    // A process whose batches arrived damaged takes part all the same (the
    // others wait for it here) and reports its error at the next
    // agreement.
    let all = fabric.gather(rows.into_bytes())?;
    decoded?;
    let mut rows = String::new();
    for part in all {
        rows.push_str(
            std::str::from_utf8(&part)
                .map_err(|_| EngineError::Fabric("migration rows arrived damaged".into()))?,
        );
    }
    Ok(rows)
}

/// True when `dir` is the run directory of an island model.
pub fn is_islands_dir(dir: &Path) -> bool {
    dir.join(MIGRATIONS).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Process `rank` of a fabric whose other processes said `words`.
    struct Told {
        rank: usize,
        words: Vec<u64>,
    }

    impl Fabric for Told {
        fn rank(&self) -> usize {
            self.rank
        }
        fn size(&self) -> usize {
            self.words.len()
        }
        fn exchange(
            &self,
            _: Vec<(usize, Vec<u8>)>,
            _: &[usize],
        ) -> Result<Vec<Vec<u8>>, EngineError> {
            unreachable!("agree only gathers words")
        }
        fn all_gather(&self, word: u64) -> Result<Vec<u64>, EngineError> {
            let mut words = self.words.clone();
            words[self.rank] = word;
            Ok(words)
        }
        fn gather(&self, _: Vec<u8>) -> Result<Vec<Vec<u8>>, EngineError> {
            unreachable!()
        }
        fn broadcast(&self, bytes: Vec<u8>) -> Result<Vec<u8>, EngineError> {
            Ok(bytes)
        }
    }

    #[test]
    fn every_process_hears_of_a_failure_and_of_an_end() {
        let dir = Path::new("runs/x");
        let others_fine = Told {
            rank: 0,
            words: vec![GO_ON, GO_ON, GO_ON],
        };
        assert_eq!(
            agree(&others_fine, Some(dir), 4, Ok(7), false).unwrap(),
            (7, false)
        );
        assert_eq!(
            agree(&others_fine, Some(dir), 4, Ok(7), true).unwrap(),
            (7, true)
        );
        let one_done = Told {
            rank: 0,
            words: vec![GO_ON, DONE, GO_ON],
        };
        assert_eq!(
            agree(&one_done, Some(dir), 4, Ok(()), false).unwrap(),
            ((), true)
        );
        // Process 2 failed: this one stops, naming it and how to resume.
        let one_failed = Told {
            rank: 0,
            words: vec![GO_ON, DONE, FAILED],
        };
        let e = agree(&one_failed, Some(dir), 4, Ok(()), false).unwrap_err();
        let message = e.to_string();
        assert!(
            matches!(e, EngineError::PeerFailed { generation: 4, .. }),
            "{message}"
        );
        assert!(
            message.starts_with("process 2 of 3 failed in generation 4")
                && message.contains("process 0 of 3 stopped too")
                && message.contains("`lineage resume runs/x`"),
            "{message}"
        );
        // The failing process returns its own error, whatever the others
        // said.
        let own = agree(
            &one_failed,
            Some(dir),
            4,
            Err::<(), _>(EngineError::Fabric("own".into())),
            false,
        )
        .unwrap_err();
        assert_eq!(own.to_string(), "island model: own");
    }
}
