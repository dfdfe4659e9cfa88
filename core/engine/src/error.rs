//! The engine's errors.

use std::path::PathBuf;

/// What can go wrong while running a generation or handling a run directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Lifetime learning cannot run (a device, a model that cannot be built).
    #[error("generation {generation}: lifetime learning: {message}")]
    Learning {
        /// The generation.
        generation: u32,
        /// What went wrong.
        message: String,
    },
    /// An environment a plugin supplies failed or broke its contract while
    /// drawing a lifetime's data (bad input: the run stops with the
    /// generation kept to redo, and resumes once the plugin is fixed).
    #[error("generation {generation}: {source}")]
    Environment {
        /// The generation.
        generation: u32,
        /// What went wrong, naming the plugin and offering.
        source: lineage_env::EnvError,
    },
    /// A file or directory operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("cannot write", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The scenario stored in a run directory is invalid.
    #[error("the run's scenario is invalid:\n{0}")]
    Scenario(#[from] lineage_scenario::ScenarioError),
    /// A fitness function failed.
    #[error("generation {generation}: {source}")]
    Fitness {
        /// The generation being evaluated.
        generation: u32,
        /// The function's error.
        source: lineage_evo::FitnessError,
    },
    /// A run directory or checkpoint is not what it should be.
    #[error("{}: {message}", path.display())]
    BadRunDir {
        /// The offending file or directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The output directory exists and is not empty.
    #[error("output directory {} already exists and is not empty (or is a file); choose another --out so that earlier results are not overwritten", .0.display())]
    OutputExists(PathBuf),
    /// The thread pool could not be built.
    #[error("cannot start {threads} worker threads: {message}")]
    Threads {
        /// Requested threads.
        threads: usize,
        /// The reason.
        message: String,
    },
    /// The generation schedule could not be built (a bug).
    #[error("the generation schedule is invalid: {0}")]
    Schedule(String),
    /// A failure injected by `LINEAGE_FAULT` (tests).
    #[error("{0}")]
    Injected(String),
    /// The processes of an island model could not talk, or disagree.
    #[error("island model: {0}")]
    Fabric(String),
    /// Another process of an island model failed; this one stopped with it.
    #[error(
        "{process} failed in generation {generation} (its own error says why), so {this} stopped too{}",
        run_dir.as_ref().map_or(String::new(), |d| format!("; the run keeps everything up to its last checkpoint: `lineage resume {}` continues it, with any number of processes", d.display()))
    )]
    PeerFailed {
        /// The process that failed, named.
        process: String,
        /// This process, named.
        this: String,
        /// The generation it failed in.
        generation: u32,
        /// The island model's run directory, once there is one.
        run_dir: Option<PathBuf>,
    },
    /// A plugin could not be found, loaded or configured.
    #[error("{source}")]
    Plugin {
        /// What went wrong.
        source: lineage_plugin_host::PluginError,
    },
    /// The scenario uses a plugin's offering in a way it does not support.
    #[error("{message}")]
    PluginUse {
        /// What is wrong.
        message: String,
    },
    /// A resumed run's plugin library is no longer the one it started with.
    #[error(
        "plugin `{alias}`: {} changed since the run started (its SHA-256 differs from the manifest's); restore it, start a new run, or resume with --accept-changed-plugins to go on with the new library (the manifest records the change)",
        path.display()
    )]
    PluginChanged {
        /// The scenario's name for the plugin.
        alias: String,
        /// The library.
        path: PathBuf,
    },
    /// A resumed run's data file is no longer the one it started with.
    #[error(
        "data file {} changed since the run started: its SHA-256 was {recorded} and is now {now}; restore it, or start a new run",
        path.display()
    )]
    DataChanged {
        /// The file.
        path: PathBuf,
        /// Its SHA-256 in the manifest.
        recorded: String,
        /// Its SHA-256 now.
        now: String,
    },
    /// A plugin failed to score a generation under `on_error = "abort"`.
    #[error("generation {generation}, `{call}`: {source}{}", if source.is_unfit() {
        format!(" (see [plugins.{}] and the scenario's [lifetime])", call.split(':').next().unwrap_or(call))
    } else {
        String::new()
    })]
    PluginEval {
        /// The generation.
        generation: u32,
        /// The scenario's `plugin:offering` that failed.
        call: String,
        /// What went wrong.
        source: Box<lineage_plugin_host::EvalError>,
    },
    /// The caller asked the runs to stop: each one under way stopped at
    /// the end of a generation and wrote a checkpoint.
    #[error(
        "stopped on request: every run under way wrote a checkpoint at the end of a generation; `lineage resume` continues"
    )]
    Stopped,
}

impl EngineError {
    /// Wraps an I/O error with what was being done and where.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> EngineError {
        let path = path.into();
        move |source| EngineError::Io {
            action,
            path,
            source,
        }
    }

    /// True when the error comes from bad input (a scenario, a run
    /// directory, an argument) rather than a failure while running.
    pub fn is_bad_input(&self) -> bool {
        match self {
            EngineError::Scenario(_)
            | EngineError::BadRunDir { .. }
            | EngineError::OutputExists(_)
            | EngineError::Plugin { .. }
            | EngineError::PluginUse { .. }
            | EngineError::PluginChanged { .. }
            | EngineError::DataChanged { .. }
            | EngineError::Environment { .. } => true,
            EngineError::PluginEval { source, .. } => source.is_unfit(),
            _ => false,
        }
    }
}
