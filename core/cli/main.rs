//! `lineage`: the command-line interface.
//!
//! Arguments are parsed by clap, then each command turns them into calls on
//! the engine. Errors are reported as text, never with a Rust backtrace:
//! exit code 2 means bad input (a scenario, an argument, a run directory),
//! 1 a failure while running.

mod bench;
mod islands;
mod plugins;
mod report;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lineage_engine::{EngineError, Resumed, Run, RunOptions};
use lineage_report::Learned;
use lineage_scenario::{Overrides, Scenario, ScenarioError};

/// The scenario `lineage run` runs when given none.
const QUICKSTART: &str = include_str!("../../scenarios/quickstart.toml");

#[derive(Parser)]
#[command(
    name = "lineage",
    version,
    about = "Generational neural-network simulations: evolution shapes the prior that lifetime learning starts from"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How an island model's progress and warnings are written to stderr:
    /// text, or one JSON object per line for cluster log collectors.
    #[arg(long, global = true, value_enum, default_value_t)]
    log_format: islands::LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario (the embedded quickstart when none is given).
    Run {
        /// Scenario file (TOML).
        scenario: Option<PathBuf>,
        /// Override the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Run directory (default: runs/<name>-<UTC timestamp>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Worker threads (default: one per core). Results do not depend on it.
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Override the number of generations.
        #[arg(long)]
        generations: Option<u32>,
        /// Where lifetime learning runs: cpu, cuda or auto (overrides the scenario).
        #[arg(long)]
        device: Option<String>,
        /// How lifetime learning runs: auto (the fastest measured on the
        /// device: fast on the CPU, batched on CUDA), fast (hand-written,
        /// CPU), candle (autograd, one organism at a time) or batched (the
        /// population in lockstep); overrides the scenario's `lifetime.path`.
        #[arg(long)]
        path: Option<String>,
        /// No progress bar and no summary.
        #[arg(long)]
        quiet: bool,
        /// Refuse a scenario whose estimated peak memory exceeds this
        /// (e.g. 8GiB; default: the machine's available memory).
        #[arg(long, value_parser = lineage_scenario::parse_size)]
        memory_limit: Option<u64>,
    },
    /// Check a scenario file and explain what is wrong with it.
    Validate {
        /// Scenario file (TOML).
        scenario: PathBuf,
        /// Refuse a scenario whose estimated peak memory exceeds this
        /// (e.g. 8GiB; default: the machine's available memory).
        #[arg(long, value_parser = lineage_scenario::parse_size)]
        memory_limit: Option<u64>,
    },
    /// Continue a run from its latest checkpoint.
    Resume {
        /// Run directory.
        run_dir: PathBuf,
        /// Continue until this many generations in all (default: the scenario's).
        #[arg(long)]
        generations: Option<u32>,
        /// Worker threads (default: one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// No progress bar and no summary.
        #[arg(long)]
        quiet: bool,
        /// Refuse to resume when the run's estimated peak memory exceeds
        /// this (e.g. 8GiB; default: the machine's available memory).
        #[arg(long, value_parser = lineage_scenario::parse_size)]
        memory_limit: Option<u64>,
        /// Go on although a plugin's library changed since the run started
        /// (a plugin fixed after it stopped the run): the manifest keeps the
        /// library it replaced and the generation the new one took over at.
        #[arg(long)]
        accept_changed_plugins: bool,
    },
    /// Print a run's summary table.
    Inspect {
        /// Run directory.
        run_dir: PathBuf,
    },
    /// Print a run's summary and draw each objective over generations (SVG);
    /// for an experiment with conditions, compare them over seeds (tables,
    /// report.json, report.csv, plots).
    Report {
        /// Run directory.
        run_dir: PathBuf,
        /// Conditions: compare every condition with this one (default: the
        /// first).
        #[arg(long)]
        baseline: Option<String>,
        /// Conditions: count only the runs that learned, METRIC>=VALUE or
        /// METRIC<=VALUE (e.g. 'rl:recurrent/decision_accuracy>=0.6');
        /// the others are listed apart.
        #[arg(long, value_name = "CRITERION")]
        learned: Option<Learned>,
    },
    /// Write one organism's birth and final weights, masks and lifetime data
    /// (safetensors and JSON) for use in another framework.
    Export {
        /// Run directory.
        run_dir: PathBuf,
        /// The organism's id (see organisms.csv).
        #[arg(long)]
        organism: u64,
        /// Output folder (default: RUN_DIR/export/organism-ID).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Measure how fast this machine runs Lineage's workloads.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Check plugin libraries and list those on the search path.
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
    /// Create a new plugin project (Rust with the SDK, or C with the header)
    /// that builds and passes `lineage plugins check`.
    NewPlugin(plugins::NewPluginArgs),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Organism-steps per second of population-batched lifetime learning.
    Learn(bench::LearnArgs),
}

/// An error with the exit code it deserves.
pub(crate) struct Failure {
    code: u8,
    message: String,
}

impl From<ScenarioError> for Failure {
    fn from(e: ScenarioError) -> Failure {
        Failure {
            code: 2,
            message: e.to_string(),
        }
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Failure {
        Failure {
            code: if e.is_bad_input() { 2 } else { 1 },
            message: e.to_string(),
        }
    }
}

impl Failure {
    pub(crate) fn bad_input(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }

    /// A failure whose message was already written ([`Failure::report`]).
    #[cfg(feature = "mpi")]
    pub(crate) fn reported(code: u8) -> Failure {
        Failure {
            code,
            message: String::new(),
        }
    }

    /// Writes `error: MESSAGE` to stderr (nothing for a failure already
    /// reported) in one write, so that the lines of processes sharing a
    /// pipe (an MPI launcher forwards every process's stderr) never
    /// interleave mid-line.
    pub(crate) fn report(&self) {
        if !self.message.is_empty() {
            let line = format!("error: {}\n", self.message.trim_end());
            let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
        }
    }
}

fn main() -> ExitCode {
    install_panic_hook();
    // The project's own plugins are linked in and answer to their library
    // names without a build step of their own (ARCHITECTURE.md, plugins).
    lineage_plugin_host::builtin::register_linked(
        "lineage_connectome_suite",
        lineage_connectome_suite::lineage_plugin_descriptor,
    );
    lineage_plugin_host::builtin::register_linked(
        "lineage_richlazy_suite",
        lineage_richlazy_suite::lineage_plugin_descriptor,
    );
    lineage_plugin_host::builtin::register_linked(
        "lineage_icl_suite",
        lineage_icl_suite::lineage_plugin_descriptor,
    );
    // `lineage __plugin-worker`: a hidden subcommand, the child process an
    // isolated plugin runs in (see lineage_plugin_host::isolate).
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == lineage_plugin_host::WORKER_COMMAND)
    {
        return lineage_plugin_host::run_worker();
    }
    if let Ok(exe) = std::env::current_exe() {
        lineage_plugin_host::set_worker_exe(exe);
    }
    let cli = Cli::parse();
    // A panic is a bug: the hook has said where; unwinding out of
    // `dispatch` drops the run, which flushes its records, and the process
    // exits 1 like any other failure while running.
    let log_format = cli.log_format;
    match std::panic::catch_unwind(|| dispatch(cli.command, log_format)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(f)) => {
            f.report();
            ExitCode::from(f.code)
        }
        // Stdout was closed by its reader (`lineage validate X | head`):
        // not an error, as for any Unix filter.
        Err(_) if STDOUT_CLOSED.load(std::sync::atomic::Ordering::SeqCst) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(1),
    }
}

/// Set when printing failed because stdout's reader went away.
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Replaces Rust's panic message with one line naming it an internal error
/// and where it happened; the backtrace only when `RUST_BACKTRACE` asks.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_owned());
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            STDOUT_CLOSED.store(true, std::sync::atomic::Ordering::SeqCst);
            return;
        }
        let location = info
            .location()
            .map_or_else(|| "an unknown place".to_owned(), |l| l.to_string());
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("a worker thread");
        eprintln!(
            "internal error: {message} (at {location}, in {thread}); this is a bug in lineage, please report it"
        );
        let wanted = std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0");
        if wanted {
            eprintln!("{}", std::backtrace::Backtrace::force_capture());
        }
    }));
}

fn dispatch(command: Command, log_format: islands::LogFormat) -> Result<(), Failure> {
    match command {
        Command::Run {
            scenario,
            seed,
            out,
            threads,
            generations,
            device,
            path,
            quiet,
            memory_limit,
        } => {
            let overrides = Overrides {
                seed,
                generations,
                device,
                path,
                memory_limit,
            };
            let scenario = load_scenario(scenario.as_deref(), &overrides)?;
            islands::init_logging(log_format, quiet);
            let threads = islands::threads(threads);
            if scenario.islands.is_some() {
                return islands::run(&scenario, RunOptions { out, threads }, quiet);
            }
            islands::refuse_if_launched_many(&format!("scenario {:?}", scenario.name))?;
            if !scenario.conditions.is_empty() {
                // Every condition's plugins load before anything is
                // written, as for a single run.
                for run in scenario.conditions.iter().filter_map(|c| c.runs.first()) {
                    lineage_engine::plugins::Evaluation::prepare(run, &[], None)?;
                }
                let root = lineage_engine::conditions::create_root(&scenario, out.as_deref())?;
                return drive_conditions(&scenario, &root, threads, quiet);
            }
            let run = Run::start(scenario, &RunOptions { out, threads })?;
            drive(run, quiet)
        }
        Command::Validate {
            scenario,
            memory_limit,
        } => {
            let overrides = Overrides {
                memory_limit,
                ..Overrides::default()
            };
            let mut s = lineage_scenario::load(&scenario, &overrides)?;
            // Plugins load and create their instances as a run would, so a
            // bad library or configuration shows here too.
            let (_, objectives) = lineage_engine::plugins::Evaluation::prepare(&s, &[], None)?;
            s.objectives = objectives;
            println!("{}: valid", scenario.display());
            print_scenario(&s);
            println!("  estimated peak memory: {}", s.memory);
            Ok(())
        }
        Command::Resume {
            run_dir,
            generations,
            threads,
            quiet,
            memory_limit,
            accept_changed_plugins,
        } => {
            let limited = Overrides {
                memory_limit,
                ..Overrides::default()
            };
            islands::init_logging(log_format, quiet);
            let threads = islands::threads(threads);
            if lineage_engine::islands::is_islands_dir(&run_dir) {
                return islands::resume(&run_dir, generations, threads, quiet);
            }
            islands::refuse_if_launched_many(&run_dir.display().to_string())?;
            if run_dir.join(lineage_engine::conditions::INDEX).exists() {
                if generations.is_some() {
                    return Err(Failure::bad_input(
                        "--generations applies to one run; a conditions run resumes each condition to its own generations",
                    ));
                }
                let path = run_dir.join(lineage_engine::SCENARIO_FILE);
                let scenario = lineage_scenario::load(&path, &limited)?;
                return drive_conditions(&scenario, &run_dir, threads, quiet);
            }
            if memory_limit.is_some() {
                // The run loads its scenario itself, against the machine's
                // memory; a stricter limit is checked here first.
                let path = run_dir.join(lineage_engine::SCENARIO_FILE);
                if path.is_file() {
                    lineage_scenario::load(&path, &limited)?;
                }
            }
            match Run::resume_accepting(&run_dir, generations, threads, accept_changed_plugins)? {
                Resumed::Running(run) => drive(*run, quiet),
                Resumed::Finished(finished) => {
                    println!("{finished}; nothing to do");
                    Ok(())
                }
            }
        }
        Command::Inspect { run_dir } => report::inspect(&run_dir),
        Command::Bench(BenchCommand::Learn(args)) => bench::learn(&args),
        Command::Plugins(command) => plugins::plugins(&command),
        Command::NewPlugin(args) => plugins::new_plugin(&args),
        Command::Export {
            run_dir,
            organism,
            out,
        } => {
            let out =
                out.unwrap_or_else(|| run_dir.join("export").join(format!("organism-{organism}")));
            for path in lineage_engine::export::export(&run_dir, organism, &out)? {
                println!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Report {
            run_dir,
            baseline,
            learned,
        } => report::report(&run_dir, baseline.as_deref(), learned.as_ref()),
    }
}

fn load_scenario(path: Option<&Path>, overrides: &Overrides) -> Result<Scenario, Failure> {
    Ok(match path {
        Some(p) => lineage_scenario::load(p, overrides)?,
        None => lineage_scenario::from_str(
            QUICKSTART,
            "<embedded quickstart>",
            Path::new("."),
            overrides,
        )?,
    })
}

fn print_scenario(s: &Scenario) {
    let objectives: Vec<String> = s
        .objectives
        .iter()
        .map(|o| format!("{} ({:?})", o.name, o.direction).to_lowercase())
        .collect();
    println!("  name:        {}", s.name);
    println!("  seed:        {}", s.seed);
    println!("  generations: {}", s.generations);
    println!(
        "  genome:      {} bits, {} real genes",
        s.genome.bits,
        s.genome.genes.len()
    );
    println!("  objectives:  {}", objectives.join(", "));
    for p in &s.plugins {
        println!(
            "  plugin {}: {} (on_error {:?})",
            p.alias, p.library, p.on_error
        );
    }
    for suite in &s.suites {
        println!("  suite:       {}:{}", suite.plugin, suite.offering);
    }
    if let Some(i) = &s.islands {
        println!(
            "  islands:     {} ({:?}), {} migrant(s) per neighbour every {} generation(s), emigrants {:?}, replacing {:?}",
            i.count, i.topology, i.migrants, i.migration_interval, i.emigrants, i.replace
        );
        println!(
            "  processes:   1 to {} under MPI (one block of islands each; the records do not depend on it)",
            i.count
        );
        let populations: Vec<String> = i
            .scenarios
            .iter()
            .map(|s| s.pressures_at(0).population.to_string())
            .collect();
        println!("  populations: {}", populations.join(", "));
    }
    for p in &s.phases {
        let pr = &p.pressures;
        let m = &pr.mutation;
        let crossover = match pr.crossover {
            Some(c) => format!("{:?} at rate {}", c.kind, c.rate).to_lowercase(),
            None => "none".into(),
        };
        println!("  from generation {}:", p.from_generation);
        println!(
            "    population {}, selection {:?}, elitism {}",
            pr.population, pr.selection.method, pr.selection.elitism
        );
        println!(
            "    mutation: bit rate {}, sigma {}, gene rate {}; crossover: {crossover}",
            m.bit_rate, m.sigma, m.gene_rate
        );
        println!("    fitness {:?}", pr.fitness);
    }
}

/// Runs (or resumes) every condition of a scenario, one line per run.
fn drive_conditions(
    scenario: &Scenario,
    root: &Path,
    threads: usize,
    quiet: bool,
) -> Result<(), Failure> {
    use lineage_engine::conditions::Event;
    let total: usize = scenario.conditions.iter().map(|c| c.runs.len()).sum();
    let mut done = 0;
    let never = std::sync::atomic::AtomicBool::new(false);
    lineage_engine::conditions::run_all(scenario, root, threads, &never, |event| {
        if quiet {
            return;
        }
        match event {
            Event::Started {
                condition, seed, ..
            } => {
                // Runs may go side by side: the count is of finished ones.
                eprintln!("[{done}/{total} done] {condition} seed {seed} started")
            }
            Event::Skipped { condition, seed } => {
                done += 1;
                eprintln!("[{done}/{total}] {condition} seed {seed}: already done")
            }
            Event::Finished {
                condition,
                seed,
                best,
            } => {
                done += 1;
                eprintln!(
                    "[{done}/{total}] {condition} seed {seed}: best {}",
                    lineage_report::number(best)
                )
            }
        }
    })?;
    if !quiet {
        println!(
            "wrote {}; `lineage report {}` compares the conditions",
            root.display(),
            root.display()
        );
    }
    Ok(())
}

/// Steps a run to its end with a progress bar.
fn drive(mut run: Run, quiet: bool) -> Result<(), Failure> {
    for warning in run.warnings() {
        eprintln!("warning: {warning}");
    }
    let total = run.target() as u64;
    let bar = if quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} gen {pos}/{len} [{bar:24}] {msg} | {rate} | eta {eta}",
            )
            .expect("a valid template")
            .with_key(
                "rate",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.1} gen/s", state.per_sec());
                },
            )
            .progress_chars("=> "),
        );
        bar
    };
    bar.set_position(run.generation() as u64);
    let objective = run.scenario().objectives[0].name.clone();
    while !run.is_done() {
        let report = run.step()?;
        for e in &report.errors {
            bar.suspend(|| {
                eprintln!(
                    "warning: generation {}: {e} (organisms invalidated, run goes on)",
                    report.generation
                )
            });
        }
        bar.set_position(report.generation as u64 + 1);
        bar.set_message(format!(
            "{objective} best {} mean {}",
            lineage_report::number(report.best[0]),
            lineage_report::number(report.mean[0])
        ));
    }
    bar.finish_and_clear();
    let dir = run.finish()?;
    if !quiet {
        print!(
            "{}",
            lineage_report::summary(&dir).map_err(|e| Failure {
                code: 1,
                message: e.to_string()
            })?
        );
    }
    Ok(())
}
