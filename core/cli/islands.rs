//! Island models from the command line: in this process, or over MPI when
//! the binary has the `mpi` feature and an MPI launcher started it
//! (`mpirun -np 4 lineage run SCENARIO`, `srun --mpi=pmix lineage run
//! SCENARIO`). Each process reports its islands' generations through
//! `tracing`, every event carrying the process and its islands, as text
//! or, with `--log-format json`, one JSON object per line.

use std::io::IsTerminal;
use std::ops::Range;
use std::path::Path;

use lineage_engine::fabric::{Fabric, OneProcess, launched_processes};
use lineage_engine::islands::ResumedIslands;
use lineage_engine::{GenerationReport, RunOptions};
use lineage_scenario::{Overrides, Scenario};

use crate::Failure;

/// How events are written to standard error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// One line of text per event.
    #[default]
    Text,
    /// One JSON object per line, for cluster log collectors.
    Json,
}

/// Sends `tracing` events to standard error: warnings always, progress
/// unless `quiet`.
pub(crate) fn init_logging(format: LogFormat, quiet: bool) {
    let _ = LOG_FORMAT.set(format);
    let level = if quiet {
        tracing::Level::WARN
    } else {
        tracing::Level::INFO
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    // A second call (tests running several commands in one process) keeps
    // the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.without_time().try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The format [`init_logging`] chose.
static LOG_FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// Worker threads for this process: `--threads` when given, else Slurm's
/// `SLURM_CPUS_PER_TASK`, else the cores shared among the MPI processes on
/// this machine, else 0 (one per core). Results never depend on it.
pub(crate) fn threads(given: usize) -> usize {
    let var = |name: &str| std::env::var(name).ok();
    threads_from(
        given,
        var("SLURM_CPUS_PER_TASK").as_deref(),
        var("OMPI_COMM_WORLD_LOCAL_SIZE")
            .or_else(|| var("MPI_LOCALNRANKS"))
            .as_deref(),
        std::thread::available_parallelism().map_or(1, usize::from),
    )
}

/// [`threads`] from the values it reads.
fn threads_from(
    given: usize,
    slurm_cpus_per_task: Option<&str>,
    local_processes: Option<&str>,
    cores: usize,
) -> usize {
    let count = |v: Option<&str>| {
        v.and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
    };
    if given > 0 {
        given
    } else if let Some(n) = count(slurm_cpus_per_task) {
        n
    } else {
        match count(local_processes) {
            Some(local) if local > 1 => (cores / local).max(1),
            _ => 0,
        }
    }
}

/// Refuses a run that an MPI launcher started as one of several processes
/// when it is not an island model: each process would run the whole
/// scenario into the same records.
pub(crate) fn refuse_if_launched_many(what: &str) -> Result<(), Failure> {
    let n = launched_processes();
    if n > 1 {
        return Err(Failure::bad_input(format!(
            "an MPI launcher started {n} processes, but {what} is not an island model: only [islands] split over processes; run it without mpirun/srun (or with one process)"
        )));
    }
    Ok(())
}

/// Runs `body` on the processes this one belongs to: MPI when a launcher
/// started it (and the binary has the `mpi` feature), else this process
/// alone.
fn on_processes<T>(body: impl FnOnce(&dyn Fabric) -> Result<T, Failure>) -> Result<T, Failure> {
    #[cfg(feature = "mpi")]
    if lineage_engine::fabric::launched() {
        let mpi = lineage_mpi::Mpi::init()?;
        let out = body(&mpi);
        // After an end or a failure every process heard of
        // (`lineage_engine::islands::agree`) each says its error, then all
        // finalise together; after any other failure (or a panic, which
        // skips this) the process leaves without finalising and the
        // launcher ends the others.
        let reported = mpi.finish_after(&out, || {
            if let Err(f) = &out {
                f.report();
            }
        });
        return match out {
            Err(f) if reported => Err(Failure::reported(f.code)),
            out => out,
        };
    }
    #[cfg(not(feature = "mpi"))]
    if launched_processes() > 1 {
        return Err(Failure::bad_input(format!(
            "an MPI launcher started {} processes, but this lineage was built without MPI: build it with `cargo build --release --features mpi` (see the README's \"Island model\" section)",
            launched_processes()
        )));
    }
    body(&OneProcess)
}

/// `lineage run` of a scenario with `[islands]`.
pub(crate) fn run(scenario: &Scenario, options: RunOptions, quiet: bool) -> Result<(), Failure> {
    let islands = scenario
        .islands
        .as_ref()
        .expect("a scenario with [islands]");
    on_processes(|fabric| {
        // Every island's plugins load before anything is written; every
        // process hears whether they did everywhere.
        let prepared = islands.scenarios.iter().try_for_each(|island| {
            lineage_engine::plugins::Evaluation::prepare(island, &[], None).map(|_| ())
        });
        lineage_engine::islands::agree(fabric, None, 0, prepared, false)?;
        let progress = progress(
            &scenario.objectives[0].name,
            fabric,
            islands.count,
            scenario.generations,
            quiet,
        );
        let dir = lineage_engine::islands::run_islands(scenario, &options, fabric, progress)?;
        if !quiet && fabric.rank() == 0 {
            println!("run directory: {}", dir.display());
        }
        Ok(())
    })
}

/// `lineage resume` of an island model's run directory.
pub(crate) fn resume(
    root: &Path,
    generations: Option<u32>,
    threads: usize,
    quiet: bool,
) -> Result<(), Failure> {
    let scenario = lineage_scenario::load(
        &root.join(lineage_engine::SCENARIO_FILE),
        &Overrides::default(),
    )?;
    let count = scenario.islands.as_ref().map_or(1, |i| i.count);
    let total = generations.unwrap_or(scenario.generations);
    on_processes(|fabric| {
        let progress = progress(&scenario.objectives[0].name, fabric, count, total, quiet);
        match lineage_engine::islands::resume_islands(root, generations, threads, fabric, progress)?
        {
            ResumedIslands::Ran(dir) if !quiet && fabric.rank() == 0 => {
                println!("run directory: {}", dir.display())
            }
            ResumedIslands::Ran(_) => {}
            ResumedIslands::Finished(g) if fabric.rank() == 0 => {
                println!("{}: ended at generation {g}; nothing to do", root.display())
            }
            ResumedIslands::Finished(_) => {}
        }
        Ok(())
    })
}

/// What a process reports as each of its islands' generation ends: an
/// event with the process, its block of islands, the island and the
/// generation's best and mean; a warning for each evaluation error.
/// Process 0 draws a progress bar instead of the events when its stderr
/// is a terminal and the format is text (under `mpirun` no process has a
/// terminal: the launcher pipes their output).
fn progress(
    objective: &str,
    fabric: &dyn Fabric,
    count: usize,
    generations: u32,
    quiet: bool,
) -> impl FnMut(usize, &GenerationReport) + use<> {
    let objective = objective.to_owned();
    let process = fabric.rank();
    let block: Range<usize> = lineage_engine::fabric::block(process, fabric.size(), count);
    let islands = format!("{}..{}", block.start, block.end);
    let bar = (process == 0
        && !quiet
        && LOG_FORMAT.get().copied().unwrap_or_default() == LogFormat::Text
        && std::io::stderr().is_terminal())
    .then(|| {
        let bar = indicatif::ProgressBar::new(u64::from(generations));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} gen {pos}/{len} [{bar:24}] {msg} | eta {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar
    });
    move |island, report| {
        let line = format!(
            "gen {} island {island}: {objective} best {} mean {}",
            report.generation,
            lineage_report::number(report.best[0]),
            lineage_report::number(report.mean[0])
        );
        match &bar {
            Some(bar) => {
                bar.set_position(u64::from(report.generation) + 1);
                bar.set_message(line);
                if bar.position() >= u64::from(generations) && island + 1 == block.end {
                    bar.finish_and_clear();
                }
            }
            None => tracing::info!(
                process,
                islands,
                island,
                generation = report.generation,
                best = report.best[0],
                mean = report.mean[0],
                "{line}"
            ),
        }
        for e in &report.errors {
            let warn = || {
                tracing::warn!(
                    process,
                    islands,
                    island,
                    generation = report.generation,
                    "generation {} island {island}: {e} (organisms invalidated, run goes on)",
                    report.generation
                )
            };
            match &bar {
                Some(bar) => bar.suspend(warn),
                None => warn(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_come_from_the_flag_then_slurm_then_the_shared_cores() {
        assert_eq!(threads_from(3, Some("8"), Some("2"), 16), 3);
        assert_eq!(threads_from(0, Some("8"), Some("2"), 16), 8);
        assert_eq!(threads_from(0, Some(" 4\n"), None, 16), 4);
        assert_eq!(threads_from(0, Some("x"), Some("4"), 16), 4);
        assert_eq!(threads_from(0, Some("0"), Some("3"), 16), 5);
        assert_eq!(threads_from(0, None, Some("32"), 16), 1);
        assert_eq!(threads_from(0, None, Some("1"), 16), 0);
        assert_eq!(threads_from(0, None, None, 16), 0);
    }
}
