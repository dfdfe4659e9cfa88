//! The run's tables: `generations.csv`, `organisms.csv`, `timings.csv`,
//! `curves.csv` and `metrics.csv`.
//!
//! Rows are appended as generations complete; each file's length is noted
//! in every checkpoint so that a resumed run first cuts the files back to
//! that point and then appends exactly what an uninterrupted run would have.
//! Numbers are written in Rust's shortest round-trip form, so a row is a
//! pure function of the values in it.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use bevy_ecs::resource::Resource;
use lineage_evo::Objective;

use crate::error::EngineError;
use crate::sets::LineageSystems;

/// File names inside a run directory.
pub mod files {
    /// Per-generation statistics.
    pub const GENERATIONS: &str = "generations.csv";
    /// One row per evaluated organism.
    pub const ORGANISMS: &str = "organisms.csv";
    /// Wall time of each system set per generation.
    pub const TIMINGS: &str = "timings.csv";
    /// Learning curves (with `[lifetime]` and `record.organisms`).
    pub const CURVES: &str = "curves.csv";
    /// Evaluation suites' metrics per organism (with `[evaluate] suites`).
    pub const METRICS: &str = "metrics.csv";
    /// The environment's probe sets along every lifetime (with an
    /// environment that declares probe sets and `record.organisms`).
    pub const PROBES: &str = "probes.csv";
}

/// An append-only CSV file that knows its length.
pub(crate) struct Table {
    path: PathBuf,
    writer: BufWriter<File>,
    /// Bytes written so far.
    pub(crate) len: u64,
}

impl Table {
    /// Creates the table with its header line (no newline).
    pub(crate) fn create(path: PathBuf, header: &str) -> Result<Table, EngineError> {
        let file = File::create(&path).map_err(EngineError::io("cannot create", &path))?;
        let mut table = Table {
            path,
            writer: BufWriter::with_capacity(1 << 16, file),
            len: 0,
        };
        table.row(header)?;
        Ok(table)
    }

    /// Opens an existing table, cut back to `len` bytes.
    pub(crate) fn reopen(path: PathBuf, len: u64) -> Result<Table, EngineError> {
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(EngineError::io("cannot open", &path))?;
        let actual = file
            .metadata()
            .map_err(EngineError::io("cannot read", &path))?
            .len();
        if actual < len {
            return Err(EngineError::BadRunDir {
                path,
                message: format!(
                    "holds {actual} bytes but the checkpoint recorded {len}: the file was truncated"
                ),
            });
        }
        file.set_len(len)
            .map_err(EngineError::io("cannot truncate", &path))?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(EngineError::io("cannot open", &path))?;
        Ok(Table {
            path,
            writer: BufWriter::with_capacity(1 << 16, file),
            len,
        })
    }

    /// Appends `rows`, each already ending in a newline.
    pub(crate) fn append(&mut self, rows: &str) -> Result<(), EngineError> {
        self.writer
            .write_all(rows.as_bytes())
            .map_err(EngineError::io("cannot write", &self.path))?;
        self.len += rows.len() as u64;
        Ok(())
    }

    fn row(&mut self, line: &str) -> Result<(), EngineError> {
        self.writer
            .write_all(line.as_bytes())
            .map_err(EngineError::io("cannot write", &self.path))?;
        self.writer
            .write_all(b"\n")
            .map_err(EngineError::io("cannot write", &self.path))?;
        self.len += line.len() as u64 + 1;
        Ok(())
    }

    /// Hands what is buffered to the OS and returns a handle that syncs it
    /// to disk, for whoever must know it is durable (a checkpoint's writer).
    pub(crate) fn hand_over(&mut self) -> Result<Unsynced, EngineError> {
        self.writer
            .flush()
            .map_err(EngineError::io("cannot write", &self.path))?;
        let file = self
            .writer
            .get_ref()
            .try_clone()
            .map_err(EngineError::io("cannot write", &self.path))?;
        Ok(Unsynced {
            path: self.path.clone(),
            file,
        })
    }
}

/// A table handed to the OS but maybe not yet on disk.
pub struct Unsynced {
    path: PathBuf,
    file: File,
}

impl Unsynced {
    /// Syncs it to disk.
    pub fn sync(self) -> Result<(), EngineError> {
        self.file
            .sync_data()
            .map_err(EngineError::io("cannot sync", &self.path))
    }
}

/// Lengths of the tables at a checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TableLengths {
    /// `generations.csv`.
    pub generations: u64,
    /// `organisms.csv` (0 when not recorded).
    pub organisms: u64,
    /// `timings.csv`.
    pub timings: u64,
    /// `curves.csv` (0 when not recorded).
    #[serde(default)]
    pub curves: u64,
    /// `metrics.csv` (0 when not recorded).
    #[serde(default)]
    pub metrics: u64,
    /// `probes.csv` (0 when not recorded).
    #[serde(default)]
    pub probes: u64,
}

/// Writes the run's tables.
#[derive(Resource)]
pub struct Recorder {
    generations: Table,
    organisms: Option<Table>,
    timings: Table,
    curves: Option<Table>,
    metrics: Option<Table>,
    probes: Option<Table>,
}

impl Recorder {
    /// Creates the tables in `dir` with their headers.
    pub fn create(
        dir: &Path,
        objectives: &[Objective],
        organisms: bool,
        lifetimes: bool,
        suites: bool,
        probes: bool,
        rescored: bool,
    ) -> Result<Recorder, EngineError> {
        let mut header = String::from("generation,population,evaluated,invalid");
        for o in objectives {
            for stat in ["best", "mean", "median", "worst"] {
                header.push_str(&format!(",{}_{stat}", o.name));
            }
        }
        header.push_str(",diversity,phase,eval_errors");
        if rescored {
            for o in objectives {
                header.push_str(&format!(",{}_best_rescored", o.name));
            }
        }
        let generations = Table::create(dir.join(files::GENERATIONS), &header)?;
        let organisms = if organisms {
            let mut header = String::from("id,birth,generation,parent1,parent2");
            for o in objectives {
                header.push(',');
                header.push_str(&o.name);
            }
            if lifetimes {
                header.push_str(",lifetime,birth_heldout,final_heldout");
            }
            header.push_str(",genome");
            Some(Table::create(dir.join(files::ORGANISMS), &header)?)
        } else {
            None
        };
        let curves = if organisms.is_some() && lifetimes {
            Some(Table::create(
                dir.join(files::CURVES),
                "id,generation,step,train_loss,heldout_loss",
            )?)
        } else {
            None
        };
        let mut header = String::from("generation");
        for set in LineageSystems::ALL {
            header.push_str(&format!(",{}_ms", set.name()));
        }
        header.push_str(",checkpoint_ms,total_ms");
        let timings = Table::create(dir.join(files::TIMINGS), &header)?;
        let metrics = if suites {
            Some(Table::create(
                dir.join(files::METRICS),
                "id,generation,suite,metric,value",
            )?)
        } else {
            None
        };
        let probes = if organisms.is_some() && lifetimes && probes {
            Some(Table::create(
                dir.join(files::PROBES),
                "id,generation,step,probe,metric,value",
            )?)
        } else {
            None
        };
        Ok(Recorder {
            generations,
            organisms,
            timings,
            curves,
            metrics,
            probes,
        })
    }

    /// Reopens the tables of `dir`, cut back to a checkpoint's lengths.
    pub fn reopen(
        dir: &Path,
        lengths: &TableLengths,
        organisms: bool,
    ) -> Result<Recorder, EngineError> {
        Ok(Recorder {
            generations: Table::reopen(dir.join(files::GENERATIONS), lengths.generations)?,
            organisms: if organisms {
                Some(Table::reopen(
                    dir.join(files::ORGANISMS),
                    lengths.organisms,
                )?)
            } else {
                None
            },
            timings: Table::reopen(dir.join(files::TIMINGS), lengths.timings)?,
            curves: if organisms && dir.join(files::CURVES).exists() {
                Some(Table::reopen(dir.join(files::CURVES), lengths.curves)?)
            } else {
                None
            },
            metrics: if dir.join(files::METRICS).exists() {
                Some(Table::reopen(dir.join(files::METRICS), lengths.metrics)?)
            } else {
                None
            },
            probes: if organisms && dir.join(files::PROBES).exists() {
                Some(Table::reopen(dir.join(files::PROBES), lengths.probes)?)
            } else {
                None
            },
        })
    }

    /// Appends a row to `generations.csv`.
    pub fn generation_row(&mut self, row: &str) -> Result<(), EngineError> {
        self.generations.row(row)
    }

    /// Appends rows to `organisms.csv`, if it is recorded.
    pub fn organism_rows(&mut self, rows: &str) -> Result<(), EngineError> {
        match &mut self.organisms {
            Some(t) => t.append(rows),
            None => Ok(()),
        }
    }

    /// Appends rows to `curves.csv`, if it is recorded.
    pub fn curve_rows(&mut self, rows: &str) -> Result<(), EngineError> {
        match &mut self.curves {
            Some(t) => t.append(rows),
            None => Ok(()),
        }
    }

    /// Appends rows to `probes.csv`, if it is recorded.
    pub fn probe_rows(&mut self, rows: &str) -> Result<(), EngineError> {
        match &mut self.probes {
            Some(t) => t.append(rows),
            None => Ok(()),
        }
    }

    /// Appends rows to `metrics.csv`, if it is recorded.
    pub fn metric_rows(&mut self, rows: &str) -> Result<(), EngineError> {
        match &mut self.metrics {
            Some(t) => t.append(rows),
            None => Ok(()),
        }
    }

    /// True when `organisms.csv` is recorded.
    pub fn records_organisms(&self) -> bool {
        self.organisms.is_some()
    }

    /// Appends a row to `timings.csv`.
    pub fn timing_row(&mut self, row: &str) -> Result<(), EngineError> {
        self.timings.row(row)
    }

    /// Flushes everything to disk and returns the tables' lengths.
    pub fn flush(&mut self) -> Result<TableLengths, EngineError> {
        let (lengths, unsynced) = self.hand_over()?;
        for table in unsynced {
            table.sync()?;
        }
        Ok(lengths)
    }

    /// Hands every table's buffered rows to the OS and returns their
    /// lengths and the handles that sync them to disk.
    pub fn hand_over(&mut self) -> Result<(TableLengths, Vec<Unsynced>), EngineError> {
        let mut unsynced = vec![self.generations.hand_over()?, self.timings.hand_over()?];
        for t in [
            &mut self.organisms,
            &mut self.curves,
            &mut self.metrics,
            &mut self.probes,
        ]
        .into_iter()
        .flatten()
        {
            unsynced.push(t.hand_over()?);
        }
        Ok((
            TableLengths {
                generations: self.generations.len,
                organisms: self.organisms.as_ref().map_or(0, |t| t.len),
                timings: self.timings.len,
                curves: self.curves.as_ref().map_or(0, |t| t.len),
                metrics: self.metrics.as_ref().map_or(0, |t| t.len),
                probes: self.probes.as_ref().map_or(0, |t| t.len),
            },
            unsynced,
        ))
    }
}
