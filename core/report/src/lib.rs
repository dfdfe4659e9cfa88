//! Lineage's records read back: what `lineage inspect` and `lineage report`
//! show.
//!
//! A run directory holds `manifest.json` and CSV tables written by the
//! engine; [`summary`] turns one into the run's summary table and
//! [`run_plots`] draws its objectives over generations. An experiment with
//! conditions holds `conditions.json` and one run directory per condition
//! and seed; [`Report::read`] reads each run at its last generation and
//! aggregates the seeds of every condition (mean, standard error, n), with
//! each condition's difference from the baseline and Cohen's d, and the
//! paired difference over the seeds the two share (conditions share
//! seeds: same founders, same data), with its 95% interval and sign count.
//! [`Report::text`] prints the tables and [`Report::write`] writes
//! `report.json`, `report.csv` and SVG plots.
//!
//! The crate is split by concern: [`read`] (the record files, read with the
//! `csv` crate and serde), [`stats`] (the statistics), [`render`] (text
//! tables), `write` (`report.csv`, `report-seeds.csv`, `report.json`),
//! [`paired`] (paired differences and Student's t) and [`plot`] (plotters
//! SVGs). Every error is a [`ReportError`] naming its file, and for a
//! damaged table its line. The crate knows nothing of the engine (bevy,
//! candle): it reads records as files.
//!
//! ```
//! use lineage_report::stats::{Effect, Stat};
//! let a = Stat::of(&[1.0, 2.0, 3.0]).unwrap();
//! let b = Stat::of(&[4.0, 6.0, 8.0]).unwrap();
//! assert_eq!((a.mean, a.sd, a.n), (2.0, Some(1.0), 3));
//! let e = Effect::of(&a, &b);
//! assert_eq!(e.difference, 4.0);
//! // Cohen's d against the pooled standard deviation, sqrt(2.5).
//! assert!((e.d.unwrap() - 4.0 / 2.5f64.sqrt()).abs() < 1e-12);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod error;
pub mod genes;
pub mod learned;
pub mod mean;
pub mod paired;
pub mod plot;
pub mod read;
pub mod render;
pub mod stats;
#[cfg(test)]
mod tests;
mod write;

use std::path::{Path, PathBuf};

pub use error::ReportError;
pub use learned::Learned;
pub use plot::run_plots;
pub use read::is_conditions_run;
pub use render::{number, summary};
pub use stats::Report;

/// Written next to `conditions.json`.
pub const REPORT_JSON: &str = "report.json";
/// One row per condition and metric.
pub const REPORT_CSV: &str = "report.csv";
/// One row per condition, seed and metric: the values every table and
/// plot is computed from.
pub const SEEDS_CSV: &str = "report-seeds.csv";

impl Report {
    /// Writes `report.json`, `report.csv`, `report-seeds.csv` and the
    /// plots into `dir` and returns their paths.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
        let mut written = Vec::new();
        for (name, text) in [
            (REPORT_JSON, self.json()),
            (REPORT_CSV, self.csv()),
            (SEEDS_CSV, self.seeds_csv()),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|source| ReportError::Write {
                path: path.clone(),
                source,
            })?;
            written.push(path);
        }
        written.extend(plot::report_plots(self, dir)?);
        Ok(written)
    }
}
