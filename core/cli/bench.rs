//! `lineage bench learn`: organism-steps per second of a population's
//! lifetime learning, so users can size their runs.

use lineage_learn::bench::{self, Workload};
use lineage_learn::{DeviceChoice, Method, Path};

use crate::Failure;

/// Arguments of `lineage bench learn`.
#[derive(clap::Args)]
pub struct LearnArgs {
    /// Model: mlp:64-128-10, rnn:3-64-3:t8, gru:3-64-3:t8, lstm:3-64-3:t8,
    /// transformer:49-48-32:l2:h4:ff96:t17 (transformer options: noln, ff0,
    /// noembed, nopos, noout, noscale, head128-128, last; Reddy's model:
    /// transformer:128-128-32:l2:h1:ff0:t17:noln:noembed:nopos:noout:noscale:head128-128-128:last).
    #[arg(long, default_value = "mlp:64-128-10")]
    model: String,
    /// Training path: auto (the one the device takes), fast (hand-written,
    /// CPU; MLPs, RNNs, transformers), candle (autograd, one organism at a
    /// time; `general` also works) or batched (every built-in family).
    #[arg(long, default_value = "auto")]
    path: String,
    /// Optimiser: sgd (momentum 0.9, lr 0.01), adam or adamw (lr 1e-3, weight decay 0.01).
    #[arg(long, default_value = "sgd")]
    optimizer: String,
    /// Examples per minibatch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Organisms trained together.
    #[arg(long, default_value_t = 64)]
    population: usize,
    /// Optimiser steps per lifetime.
    #[arg(long, default_value_t = 200)]
    steps: u32,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// cpu, cuda or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the benchmark and prints its measurement.
pub fn learn(args: &LearnArgs) -> Result<(), Failure> {
    let work: Workload = bench::parse_model(&args.model).map_err(Failure::bad_input)?;
    let method = Method::parse(&args.optimizer).ok_or_else(|| {
        Failure::bad_input(format!(
            "--optimizer `{}`: expected one of {}",
            args.optimizer,
            Method::NAMES.join(", ")
        ))
    })?;
    let device = DeviceChoice::parse(&args.device)
        .ok_or_else(|| {
            Failure::bad_input(format!(
                "--device `{}`: expected cpu, cuda or auto",
                args.device
            ))
        })?
        .device()
        .map_err(|e| Failure::bad_input(e.to_string()))?;
    let path = Path::parse(&args.path).ok_or_else(|| {
        Failure::bad_input(format!("--path `{}`: expected {}", args.path, Path::NAMES))
    })?;
    if let Some(path) = path {
        path.supports(&work.model, &device)
            .map_err(|e| Failure::bad_input(format!("--path {}: {e}", args.path)))?;
    }
    if args.batch == 0 || args.population == 0 || args.steps == 0 {
        return Err(Failure::bad_input(
            "--batch, --population and --steps must be positive",
        ));
    }
    let threads = if args.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        args.threads
    };
    let m = bench::run(
        &work,
        method,
        args.batch,
        args.population,
        args.steps,
        threads,
        &device,
        path,
    )
    .map_err(|e| Failure {
        code: 1,
        message: e.to_string(),
    })?;
    let path = m.path.name();
    if args.json {
        println!(
            "{{\"framework\": \"lineage\", \"version\": \"{}\", \"model\": \"{}\", \"optimizer\": \"{}\", \
             \"population\": {}, \"batch\": {}, \"steps\": {}, \"threads\": {threads}, \"path\": \"{path}\", \
             \"seconds\": {:.6}, \"organism_steps_per_s\": {:.1}, \"gflops\": {:.3}, \"final_train_loss\": {:.6}}}",
            env!("CARGO_PKG_VERSION"),
            args.model,
            args.optimizer,
            args.population,
            args.batch,
            args.steps,
            m.seconds,
            m.organism_steps_per_s,
            m.gflops,
            m.final_train_loss,
        );
    } else {
        println!(
            "{} ({} parameters), {} organisms x {} steps at batch {}, {}, {threads} threads, {path} path",
            args.model,
            work.model.parameter_count(),
            args.population,
            args.steps,
            args.batch,
            args.optimizer,
        );
        println!(
            "{:.0} organism-steps/s, {:.1} GFLOP/s ({:.3} s; mean final training loss {:.4})",
            m.organism_steps_per_s, m.gflops, m.seconds, m.final_train_loss
        );
    }
    Ok(())
}
