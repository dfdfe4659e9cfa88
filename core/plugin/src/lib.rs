//! The plugin host: finds plugin libraries, loads them (and never unloads
//! them), checks their descriptors, creates configured instances of their
//! offerings, and calls them once per generation with a batch of organisms.
//!
//! The principal types are [`Plugin`] (a checked descriptor: name, version,
//! offerings, path and SHA-256), [`SearchPath`] (where names are looked
//! up), [`Instance`] (a configured offering, called with
//! [`Instance::evaluate`]) and [`Services`], the host-side trait through
//! which a caller hands an instance its organisms' genomes, weights, curves,
//! held-out data and models.
//!
//! A library can also run in a worker process ([`Plugin::load_isolated`],
//! module [`isolate`]): the same `lineage` binary run as
//! `lineage __plugin-worker`, so that a crash or a hang in the plugin is an
//! evaluation error rather than the end of the run.
//!
//! The built-in fitness functions are a plugin too ([`builtin`]), written
//! with the same SDK and called through the same C descriptor, only linked
//! in instead of loaded: every run exercises the interface third-party
//! plugins use.
//!
//! **Architecture invariant:** this crate holds all of the host's `unsafe`
//! code for plugins; nothing else in Lineage touches a plugin's pointers.
//! It knows nothing of the ECS, candle or scenarios.

#![deny(missing_docs)]

pub mod builtin;
mod call;
pub mod environment;
mod instance;
pub mod isolate;
mod library;
mod worker;

use std::path::PathBuf;

pub use call::{Curve, RunInput, RunRequest, RunWhat, Services, Stage, Tensor};
pub use environment::PluginEnvironment;
pub use instance::Instance;
pub use isolate::{
    Isolation, WORKER_COMMAND, WORKER_EXE_VAR, is_module_name, set_worker, set_worker_exe,
};
pub use library::{OfferingInfo, Plugin, SearchPath, library_file_names};
pub use lineage_plugin::Kind;
pub use lineage_plugin::abi::ABI_VERSION;
pub use worker::{run as run_worker, run_status as run_worker_status};

/// Why a plugin could not be found, loaded or configured. Every message
/// names the plugin (its path or name) and the problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// A name that no folder of the search path holds.
    #[error("plugin `{name}` is not on the search path; looked for {candidates} in:\n{searched}")]
    NotFound {
        /// The name as written.
        name: String,
        /// The file names tried.
        candidates: String,
        /// The folders searched, one per line.
        searched: String,
    },
    /// A path that does not exist.
    #[error("plugin {path}: no such file")]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// The file exists but cannot be read.
    #[error("plugin {path}: cannot read: {message}")]
    Unreadable {
        /// The path.
        path: PathBuf,
        /// The system's message.
        message: String,
    },
    /// The dynamic loader refused the file.
    #[error("plugin {path}: not a loadable shared library: {message}")]
    NotALibrary {
        /// The path.
        path: PathBuf,
        /// The loader's message.
        message: String,
    },
    /// The library lacks the entry symbol.
    #[error(
        "plugin {path}: no `lineage_plugin_entry` symbol: not a Lineage plugin (export one with `lineage_plugin::export_plugin!` or `LINEAGE_PLUGIN_EXPORT` in C)"
    )]
    NoEntry {
        /// The path.
        path: PathBuf,
    },
    /// The library speaks another ABI version.
    #[error(
        "plugin {path}: ABI version {found}, but this Lineage speaks ABI versions 1 to {expected}; rebuild the plugin against a matching SDK or header"
    )]
    AbiMismatch {
        /// The path.
        path: PathBuf,
        /// The plugin's version.
        found: u32,
        /// The host's version.
        expected: u32,
    },
    /// The descriptor breaks the ABI's rules.
    #[error("plugin {path}: invalid descriptor: {message}")]
    BadDescriptor {
        /// The path (or `built-in`).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The scenario names an offering the plugin does not have.
    #[error("plugin `{plugin}` has no offering `{offering}`; it offers: {available}")]
    UnknownOffering {
        /// The plugin's name.
        plugin: String,
        /// The offering asked for.
        offering: String,
        /// What it offers.
        available: String,
    },
    /// `isolation = "process"` without a worker executable to run.
    #[error(
        "plugin `{plugin}`: isolation = \"process\" needs a worker executable (the `lineage` binary): run through `lineage`, or set LINEAGE_WORKER_EXE to its path"
    )]
    NoWorker {
        /// The scenario's name for the plugin.
        plugin: String,
    },
    /// The worker process of an isolated plugin failed while loading it.
    #[error("plugin {path}: the worker process {message}")]
    Worker {
        /// The path.
        path: PathBuf,
        /// What happened.
        message: String,
    },
    /// A Python plugin named by module that cannot be found.
    #[error("python plugin module `{module}`: {message}")]
    PythonModule {
        /// The module as written.
        module: String,
        /// What is wrong.
        message: String,
    },
    /// The plugin refused its configuration.
    #[error("plugin `{plugin}` cannot create `{offering}`: {message}")]
    Create {
        /// The plugin's name.
        plugin: String,
        /// The offering.
        offering: String,
        /// The plugin's message.
        message: String,
    },
}

/// Why a plugin could not score a batch. Every message names the plugin
/// and its offering.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// The plugin returned an error status (a panic in a Rust plugin
    /// arrives as one, its message starting with `panicked`).
    #[error("plugin `{plugin}` offering `{offering}` failed: {message}")]
    Failed {
        /// The plugin's name.
        plugin: String,
        /// The offering.
        offering: String,
        /// Its message.
        message: String,
    },
    /// The plugin says it cannot measure this run as it is set up
    /// (`LN_UNFIT`): bad input, whatever `on_error` says.
    #[error("plugin `{plugin}` offering `{offering}` cannot measure this scenario: {message}")]
    Unfit {
        /// The plugin's name.
        plugin: String,
        /// The offering.
        offering: String,
        /// What does not fit.
        message: String,
    },
    /// The plugin reported writing a different number of scores.
    #[error(
        "plugin `{plugin}` offering `{offering}` wrote {written} scores, but {organisms} organisms x {metrics} metrics need {expected}"
    )]
    WrongCount {
        /// The plugin's name.
        plugin: String,
        /// The offering.
        offering: String,
        /// What it reported.
        written: usize,
        /// Organisms in the batch.
        organisms: usize,
        /// Metrics per organism.
        metrics: usize,
        /// `organisms x metrics`.
        expected: usize,
    },
    /// An isolated plugin's worker process died during the call (a signal
    /// such as SIGSEGV or SIGABRT, or an exit); the next call starts a new
    /// one.
    #[error("plugin `{plugin}` offering `{offering}` crashed: its worker process {what}")]
    Crashed {
        /// The plugin's name.
        plugin: String,
        /// The offering.
        offering: String,
        /// How it ended: `was killed by SIGSEGV`, `exited with status 3`.
        what: String,
    },
    /// An isolated plugin did not answer within its `timeout_ms`; its
    /// worker process was killed, and the next call starts a new one.
    #[error(
        "plugin `{plugin}` offering `{offering}` timed out: no answer within timeout_ms = {timeout_ms}; its worker process was killed"
    )]
    TimedOut {
        /// The plugin's name.
        plugin: String,
        /// The offering.
        offering: String,
        /// The timeout.
        timeout_ms: u64,
    },
    /// Some scores are NaN or infinite; the others are valid.
    #[error(
        "plugin `{plugin}` offering `{offering}` returned {value} for organism {id} (metric `{metric}`){}",
        more(.organisms)
    )]
    NonFinite {
        /// The plugin's name.
        plugin: String,
        /// The offering.
        offering: String,
        /// The first offending organism's id.
        id: u64,
        /// Its metric.
        metric: String,
        /// The value.
        value: f64,
        /// Batch indices of every organism with a non-finite score.
        organisms: Vec<usize>,
    },
}

fn more(organisms: &[usize]) -> String {
    match organisms.len() {
        0 | 1 => String::new(),
        k => format!(", and {} more organisms", k - 1),
    }
}

impl EvalError {
    /// True when the plugin says the run's set-up does not fit it
    /// ([`EvalError::Unfit`]): bad input rather than a failure.
    pub fn is_unfit(&self) -> bool {
        matches!(self, EvalError::Unfit { .. })
    }

    /// Batch indices of the organisms the error affects: all of them, or
    /// only those with non-finite scores.
    pub fn affected(&self, batch: usize) -> Vec<usize> {
        match self {
            EvalError::NonFinite { organisms, .. } => organisms.clone(),
            _ => (0..batch).collect(),
        }
    }
}
