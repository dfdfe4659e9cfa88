//! `lineage`: the command-line interface.
//!
//! Arguments are parsed by clap, then each command turns them into calls on
//! the engine. Errors are reported as text, never with a Rust backtrace:
//! exit code 2 means bad input (a scenario, an argument, a run directory),
//! 1 a failure while running.

mod bench;
mod conditions;
mod plugins;
mod report;
mod table;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lineage_engine::{EngineError, Run, RunOptions};
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
        /// No progress bar and no summary.
        #[arg(long)]
        quiet: bool,
    },
    /// Check a scenario file and explain what is wrong with it.
    Validate {
        /// Scenario file (TOML).
        scenario: PathBuf,
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
}

fn main() -> ExitCode {
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
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message.trim_end());
            ExitCode::from(f.code)
        }
    }
}

fn dispatch(command: Command) -> Result<(), Failure> {
    match command {
        Command::Run {
            scenario,
            seed,
            out,
            threads,
            generations,
            device,
            quiet,
        } => {
            let overrides = Overrides {
                seed,
                generations,
                device,
            };
            let scenario = load_scenario(scenario.as_deref(), &overrides)?;
            if !scenario.conditions.is_empty() {
                // Every condition's plugins load before anything is
                // written, as for a single run.
                for run in scenario.conditions.iter().filter_map(|c| c.runs.first()) {
                    lineage_engine::plugins::Evaluation::prepare(run, &[])?;
                }
                let root = lineage_engine::conditions::create_root(&scenario, out.as_deref())?;
                return drive_conditions(&scenario, &root, threads, quiet);
            }
            let run = Run::start(scenario, &RunOptions { out, threads })?;
            drive(run, quiet)
        }
        Command::Validate { scenario } => {
            let mut s = lineage_scenario::load(&scenario, &Overrides::default())?;
            // Plugins load and create their instances as a run would, so a
            // bad library or configuration shows here too.
            let (_, objectives) = lineage_engine::plugins::Evaluation::prepare(&s, &[])?;
            s.objectives = objectives;
            println!("{}: valid", scenario.display());
            print_scenario(&s);
            Ok(())
        }
        Command::Resume {
            run_dir,
            generations,
            threads,
            quiet,
        } => {
            if run_dir.join(lineage_engine::conditions::INDEX).exists() {
                if generations.is_some() {
                    return Err(Failure::bad_input(
                        "--generations applies to one run; a conditions run resumes each condition to its own generations",
                    ));
                }
                let path = run_dir.join(lineage_engine::SCENARIO_FILE);
                let scenario = lineage_scenario::load(&path, &Overrides::default())?;
                return drive_conditions(&scenario, &run_dir, threads, quiet);
            }
            let run = Run::resume(&run_dir, generations, threads)?;
            drive(run, quiet)
        }
        Command::Inspect { run_dir } => {
            if conditions::is_conditions_run(&run_dir) {
                return Err(Failure::bad_input(format!(
                    "{} is an experiment with conditions: `lineage report {}` compares them; `lineage inspect {}/conditions/<name>/seed-<k>` shows one run",
                    run_dir.display(),
                    run_dir.display(),
                    run_dir.display()
                )));
            }
            print!("{}", table::summary(&run_dir).map_err(Failure::bad_input)?);
            Ok(())
        }
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
        Command::Report { run_dir, baseline } => {
            if conditions::is_conditions_run(&run_dir) {
                return conditions::report(&run_dir, baseline.as_deref());
            }
            if baseline.is_some() {
                return Err(Failure::bad_input(
                    "--baseline compares conditions, but this run has none",
                ));
            }
            print!("{}", table::summary(&run_dir).map_err(Failure::bad_input)?);
            for path in report::plots(&run_dir).map_err(|m| Failure {
                code: 1,
                message: m,
            })? {
                println!("wrote {}", path.display());
            }
            Ok(())
        }
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
    lineage_engine::conditions::run_all(scenario, root, threads, |event| {
        if quiet {
            return;
        }
        match event {
            Event::Started {
                condition, seed, ..
            } => {
                eprintln!("[{}/{total}] {condition} seed {seed} ...", done + 1)
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
                    table::number(best)
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
            table::number(report.best[0]),
            table::number(report.mean[0])
        ));
    }
    bar.finish_and_clear();
    let dir = run.finish()?;
    if !quiet {
        print!(
            "{}",
            table::summary(&dir).map_err(|m| Failure {
                code: 1,
                message: m
            })?
        );
    }
    Ok(())
}
