//! The Lineage plugin SDK: write fitness functions, evaluation suites and
//! environments (the worlds lifetimes learn in; module [`environment`]) that
//! Lineage loads at run time from a shared library, without rebuilding it.
//!
//! A plugin is a `cdylib` crate with one type implementing [`Plugin`] and
//! one [`export_plugin!`] line. The macro generates the C entry point
//! `lineage_plugin_entry`, whose descriptor ([`abi::LnPlugin`]) carries the
//! ABI version, the plugin's name and version and its offerings; the host
//! checks the version before it calls anything else.
//!
//! ```
//! use lineage_plugin::{Batch, Config, Error, Evaluate, Metric, Offering, Plugin, Scores};
//!
//! /// Mean of the real genes: a toy fitness.
//! struct MeanGene;
//!
//! impl Evaluate for MeanGene {
//!     fn evaluate(&self, batch: &Batch<'_>, scores: &mut Scores<'_>) -> Result<(), Error> {
//!         for i in 0..batch.len() {
//!             let genes = batch.genome(i)?.genes;
//!             scores.set(i, 0, genes.iter().sum::<f64>() / genes.len().max(1) as f64);
//!         }
//!         Ok(())
//!     }
//! }
//!
//! struct Example;
//!
//! impl Plugin for Example {
//!     const NAME: &'static str = "example";
//!     const VERSION: &'static str = "0.1.0";
//!     fn offerings() -> Vec<Offering> {
//!         vec![Offering::fitness("mean_gene", "mean of the real genes", vec![Metric::maximize("mean")])]
//!     }
//!     fn create(offering: &str, _config: &Config) -> Result<Box<dyn Evaluate>, Error> {
//!         match offering {
//!             "mean_gene" => Ok(Box::new(MeanGene)),
//!             other => Err(Error::new(format!("no offering `{other}`"))),
//!         }
//!     }
//! }
//!
//! lineage_plugin::export_plugin!(Example);
//! ```
//!
//! # The contract
//! - **Calls.** `evaluate` is called once per generation with every organism
//!   that needs scoring, never concurrently for one instance, possibly from
//!   different threads across generations (so an [`Evaluate`] is `Send +
//!   Sync`). A plugin may use threads of its own during the call.
//! - **Services.** [`Batch`]'s methods call back into the host: genomes,
//!   weights at birth and after learning, learning curves, held-out data,
//!   and running the organism's model. They are safe to call from any
//!   thread during the call, and what they return borrows the batch: it
//!   cannot outlive the call.
//! - **Scores.** The host owns the score buffer, prefilled with NaN. A score
//!   left NaN, or set to NaN or infinity, is an error the host reports with
//!   the plugin's name and the organism.
//! - **Errors.** Return [`Error`]; a panic is caught at the boundary and
//!   becomes an error carrying the panic's message. How the run reacts is
//!   the scenario's choice (`on_error = "abort"` or `"invalidate"`).
//! - **Batches.** Organisms are addressed by their index in the batch, ids
//!   ascending. An organism whose lifetime diverged is invalid and never in
//!   a batch. Without a `[lifetime]`, [`Batch::curve`] is empty with
//!   [`Life::None`], and weights, held-out data and model runs are errors.
//! - **Configuration.** [`Plugin::create`] gets the scenario's
//!   `[plugins.NAME.config]` once per offering used, before generation 0:
//!   reject bad keys and values there (the run then stops with exit code 2).
//! - **Lifetime.** The host never unloads a library; instances are
//!   destroyed when the run ends (not after a failed `create`).
//! - **Environments.** An [`Offering::environment`] is made by
//!   [`Plugin::environment`] from the scenario's environment table and
//!   fills the host's buffers from a seed the host gives ([`Environment`]);
//!   see the module [`environment`] for its contract.
//!
//! This crate has no dependencies, and must keep it that way: plugin authors
//! build it into their libraries.

#![deny(missing_docs)]

pub mod abi;
mod config;
pub mod environment;
#[doc(hidden)]
pub mod export;
mod host;

pub use config::Config;
pub use environment::{Description, Environment, Examples, Part, Probe, Rng, Task};
pub use host::{Batch, Curve, CurvePoint, Data, Genome, Input, Life, Stage, TensorView};

/// Why a plugin call failed: a message for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> Error {
        Error(message.into())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(message: String) -> Error {
        Error(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Error {
        Error(message.to_owned())
    }
}

/// Whether larger or smaller values of a metric are better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Larger is better.
    Maximize,
    /// Smaller is better.
    Minimize,
}

/// One named value an offering writes per organism.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metric {
    /// Name, `[a-z0-9_]+`.
    pub name: String,
    /// Which way is better.
    pub direction: Direction,
}

impl Metric {
    /// A metric to maximise.
    pub fn maximize(name: &str) -> Metric {
        Metric {
            name: name.to_owned(),
            direction: Direction::Maximize,
        }
    }

    /// A metric to minimise.
    pub fn minimize(name: &str) -> Metric {
        Metric {
            name: name.to_owned(),
            direction: Direction::Minimize,
        }
    }
}

/// What an offering is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Scores organisms for selection.
    Fitness,
    /// Metrics recorded per organism, used for selection only when the
    /// scenario says so.
    Suite,
    /// An environment lifetimes learn in ([`Environment`], ABI 4).
    Environment,
}

/// A fitness function, evaluation suite or environment a plugin offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offering {
    /// Name, unique in the plugin, `[a-z0-9_]+`.
    pub name: String,
    /// Fitness or suite.
    pub kind: Kind,
    /// One line on what it measures.
    pub description: String,
    /// The values it writes per organism, in order.
    pub metrics: Vec<Metric>,
    /// True when it reads organisms' weights ([`Batch::weights`] or model
    /// runs such as [`Batch::outputs`]); see [`Offering::reading_weights`].
    pub reads_weights: bool,
}

impl Offering {
    /// A fitness function.
    pub fn fitness(name: &str, description: &str, metrics: Vec<Metric>) -> Offering {
        Offering {
            name: name.to_owned(),
            kind: Kind::Fitness,
            description: description.to_owned(),
            metrics,
            reads_weights: false,
        }
    }

    /// An evaluation suite.
    pub fn suite(name: &str, description: &str, metrics: Vec<Metric>) -> Offering {
        Offering {
            name: name.to_owned(),
            kind: Kind::Suite,
            description: description.to_owned(),
            metrics,
            reads_weights: false,
        }
    }

    /// An environment lifetimes learn in, made by [`Plugin::environment`]
    /// from the scenario's `environment = { plugin = "NAME:OFFERING", ... }`
    /// table.
    pub fn environment(name: &str, description: &str) -> Offering {
        Offering {
            name: name.to_owned(),
            kind: Kind::Environment,
            description: description.to_owned(),
            metrics: Vec::new(),
            reads_weights: false,
        }
    }

    /// Declares that the offering reads organisms' weights, at birth or
    /// learned, directly or through model runs. The host keeps weights
    /// after a lifetime only where an offering in use (or inheritance)
    /// reads them, and answers an undeclared request with an error.
    pub fn reading_weights(mut self) -> Offering {
        self.reads_weights = true;
        self
    }
}

/// A plugin: its identity, what it offers, and how to make an instance of
/// an offering.
pub trait Plugin: 'static {
    /// The plugin's name (short, lower-case).
    const NAME: &'static str;
    /// The plugin's own version.
    const VERSION: &'static str;
    /// One line on what it offers.
    const DESCRIPTION: &'static str = "";
    /// The offerings; called once, when the library is first asked for its
    /// descriptor.
    fn offerings() -> Vec<Offering>;
    /// An instance of `offering` configured by `config`, the scenario's
    /// `[plugins.NAME.config]` table. Reject bad configuration here, naming
    /// the key: the run then stops before generation 0. Plugins that offer
    /// only environments keep the default, which refuses.
    fn create(offering: &str, _config: &Config) -> Result<Box<dyn Evaluate>, Error> {
        Err(Error::new(format!(
            "`{offering}` is not a fitness function or suite"
        )))
    }
    /// An instance of the environment offering `offering`, configured by
    /// the scenario's environment table (every key but `plugin` and
    /// `seed`). Reject bad keys and values here, naming the key in
    /// backquotes (`` `coherence` must be positive ``): the scenario's
    /// check then points at its line. Plugins without environments keep
    /// the default, which refuses.
    fn environment(offering: &str, _config: &Config) -> Result<Box<dyn Environment>, Error> {
        Err(Error::new(format!("`{offering}` is not an environment")))
    }
}

/// An instance of an offering: scores batches of organisms.
pub trait Evaluate: Send + Sync {
    /// Writes one value per organism and metric into `scores`.
    fn evaluate(&self, batch: &Batch<'_>, scores: &mut Scores<'_>) -> Result<(), Error>;
}

/// The host's score buffer for one batch: organisms x metrics, prefilled
/// with NaN.
#[derive(Debug)]
pub struct Scores<'a> {
    values: &'a mut [f64],
    metrics: usize,
}

impl<'a> Scores<'a> {
    /// Wraps `values` (`organisms x metrics`, row-major). For tests of a
    /// plugin's [`Evaluate`] outside a host.
    pub fn new(values: &'a mut [f64], metrics: usize) -> Scores<'a> {
        Scores { values, metrics }
    }

    /// Sets organism `organism`'s value of metric `metric`.
    ///
    /// # Panics
    /// When either index is out of range (caught at the boundary and
    /// reported as an error).
    pub fn set(&mut self, organism: usize, metric: usize, value: f64) {
        assert!(metric < self.metrics, "metric {metric} out of range");
        self.values[organism * self.metrics + metric] = value;
    }

    /// Organism `organism`'s values, one per metric.
    pub fn row_mut(&mut self, organism: usize) -> &mut [f64] {
        &mut self.values[organism * self.metrics..(organism + 1) * self.metrics]
    }

    /// Every value, row-major (organism, then metric).
    pub fn as_mut_slice(&mut self) -> &mut [f64] {
        self.values
    }

    /// Metrics per organism.
    pub fn metrics(&self) -> usize {
        self.metrics
    }

    /// Fills every organism's row with `score(organism)` (its `M` values),
    /// organisms spread over up to `threads` threads of the plugin's own
    /// (the host's services may be called from any thread during the
    /// call). The first error in organism order is returned, prefixed with
    /// the organism's id; a panicking scorer is an error too.
    pub fn fill_each<const M: usize>(
        &mut self,
        batch: &Batch<'_>,
        threads: usize,
        score: impl Fn(usize) -> Result<[f64; M], Error> + Sync,
    ) -> Result<(), Error> {
        let n = batch.len();
        let threads = threads.min(n).max(1);
        let mut rows: Vec<Option<Result<[f64; M], Error>>> = (0..n).map(|_| None).collect();
        std::thread::scope(|s| {
            let score = &score;
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    s.spawn(move || {
                        (t..n)
                            .step_by(threads)
                            .map(|i| (i, score(i)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            // A thread that panicked leaves its rows `None`, reported below.
            for done in handles.into_iter().filter_map(|h| h.join().ok()) {
                done.into_iter().for_each(|(i, r)| rows[i] = Some(r));
            }
        });
        for (i, row) in rows.into_iter().enumerate() {
            match row {
                Some(Ok(values)) => self.row_mut(i).copy_from_slice(&values),
                Some(Err(e)) => {
                    return Err(Error::new(format!("organism {}: {e}", batch.ids()[i])));
                }
                None => return Err(Error::new("a scoring thread panicked")),
            }
        }
        Ok(())
    }
}
