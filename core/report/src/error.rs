//! [`ReportError`]: what can go wrong reading a run's records back or
//! writing a report, with the file (and, for tables, the line) it concerns.

use std::path::PathBuf;

/// An error of `lineage-report`. Every variant names its file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// A record file could not be read (missing, unreadable).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A record table is damaged: a row cut short, a field that is not a
    /// number, a missing column.
    #[error("{}, line {line}: {message}", path.display())]
    Record {
        /// The table.
        path: PathBuf,
        /// Its line, counting the header as line 1.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A JSON record (`manifest.json`, `conditions.json`) is not what it
    /// should be.
    #[error("{}: {message}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The baseline asked for is not one of the conditions.
    #[error("no condition `{name}` (conditions: {})", conditions.join(", "))]
    NoSuchCondition {
        /// The name asked for.
        name: String,
        /// The conditions there are.
        conditions: Vec<String>,
    },
    /// `--learned` names a metric the runs do not have.
    #[error("--learned: no metric `{name}` (metrics: {})", metrics.join(", "))]
    NoSuchMetric {
        /// The name asked for.
        name: String,
        /// The metrics there are.
        metrics: Vec<String>,
    },
    /// A report file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A plot could not be drawn.
    #[error("cannot draw {}: {message}", path.display())]
    Plot {
        /// The SVG file.
        path: PathBuf,
        /// What plotters said.
        message: String,
    },
}

impl ReportError {
    /// True when the records (or the request) are at fault rather than the
    /// machine: the command line's exit code 2.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ReportError::Read { .. }
                | ReportError::Record { .. }
                | ReportError::Json { .. }
                | ReportError::NoSuchCondition { .. }
                | ReportError::NoSuchMetric { .. }
        )
    }
}
