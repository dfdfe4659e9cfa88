//! `dataset`: examples read from the user's files, in the four kinds of
//! [`Batch`].
//!
//! | task | arrays | batch |
//! |---|---|---|
//! | `classification` | inputs `[n, ...]` (trailing extents flattened), labels `[n]` | [`Batch::Labeled`] |
//! | `regression` | inputs `[n, ...]`, targets `[n]` or `[n, outputs]` | [`Batch::Dense`] |
//! | `sequences` | inputs `[n, steps, features]`, labels `[n, steps]` (negative: not scored) | [`Batch::Sequences`] |
//! | `tokens` | one stream of token ids `[len]` | [`Batch::Tokens`] of `context + 1` tokens |
//!
//! The arrays come from `.npy`, `.npz`, `.safetensors` or CSV ([`read`]).
//! The data set is read once and shared by every organism and thread. The
//! held-out part is a second file, or a fraction of the examples drawn with
//! the environment's seed (for a token stream: its tail, so that no
//! held-out window overlaps a training one). Standardisation, where asked,
//! uses the mean and spread of the training part only. A class subset keeps
//! the classes listed and numbers them in that order. Each lifetime draws
//! its budget of examples from the training part without replacement (a
//! token stream: `budget` tokens in whole windows at random offsets) with
//! the organism's stream.
//!
//! A classification data set also offers its held-out examples as the
//! probe set `heldout`, so that records hold their accuracy at every curve
//! point (`probes.csv`, `lineage report`'s `heldout.final`).
//!
//! Every file read is recorded with its size and SHA-256
//! ([`Environment::data_files`]), so that a run's manifest says exactly
//! which data it learned from and a resume can refuse changed files.

pub mod read;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::seq::index;
use rand::{Rng, RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use sha2::{Digest, Sha256};

use crate::{Batch, DataFile, EnvError, Environment, IGNORE, Lifetime, ProbeSet, Task};
use read::{Array, Values};

const NAME: &str = "dataset";

/// What a data set's arrays are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetTask {
    /// Inputs to one of several classes.
    Classification,
    /// Inputs to real targets.
    Regression,
    /// Sequences labelled at each step.
    Sequences,
    /// A token stream, read `context` tokens at a time.
    Tokens {
        /// Tokens a model reads.
        context: usize,
    },
}

impl DatasetTask {
    /// The task's scenario names.
    pub const NAMES: &[&str] = &["classification", "regression", "sequences", "tokens"];
}

/// Where a data set is and how to read it.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetSpec {
    /// The examples (all of them, or the training part with `heldout_path`).
    pub path: PathBuf,
    /// The held-out examples, if they are a file of their own.
    pub heldout_path: Option<PathBuf>,
    /// What the arrays are.
    pub task: DatasetTask,
    /// The inputs' array (`*` in a CSV file: every column not otherwise
    /// named); unused for tokens.
    pub inputs: String,
    /// The labels', targets' or tokens' array.
    pub targets: String,
    /// Fraction of the examples held out, without `heldout_path`.
    pub heldout_fraction: f64,
    /// Most held-out examples (windows) kept; 0: all.
    pub heldout: usize,
    /// Standardise every input feature with the training part's mean and
    /// standard deviation.
    pub standardize: bool,
    /// The classes kept, numbered in this order; `None`: all.
    pub classes: Option<Vec<u32>>,
    /// The vocabulary size of a token stream; `None`: the largest id + 1.
    pub vocab: Option<usize>,
    /// The seed of the held-out split.
    pub seed: u64,
}

/// A data set read from files.
pub struct Dataset {
    task: Task,
    train: Arc<Batch>,
    heldout: Arc<Batch>,
    files: Vec<DataFile>,
    /// Keeps the shared copy alive while this data set is.
    _shared: Option<Arc<Shared>>,
}

/// A data set's data as the process shares it.
struct Shared {
    task: Task,
    train: Arc<Batch>,
    heldout: Arc<Batch>,
}

/// The data sets this process has read, by what was asked and the files'
/// hashes; entries whose data nobody holds any more are dropped.
#[allow(clippy::type_complexity)]
static CACHE: std::sync::Mutex<Vec<(DatasetSpec, Vec<DataFile>, std::sync::Weak<Shared>)>> =
    std::sync::Mutex::new(Vec::new());

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("task", &self.task)
            .field("train", &self.train.len())
            .field("heldout", &self.heldout.len())
            .finish()
    }
}

fn invalid(message: impl Into<String>) -> EnvError {
    crate::invalid(NAME, message)
}

/// Examples of one part: inputs `[n, width]` (or `[n, steps, width]`) and
/// labels or targets.
struct Part {
    n: usize,
    steps: usize,
    x: Vec<f32>,
    y: Values,
}

impl Dataset {
    /// Reads and checks the data set `spec` describes.
    pub fn new(spec: &DatasetSpec) -> Result<Dataset, EnvError> {
        if !(0.0..1.0).contains(&spec.heldout_fraction) {
            return Err(invalid(format!(
                "`heldout_fraction` must be in [0, 1), found {}",
                spec.heldout_fraction
            )));
        }
        let mut files = vec![data_file(&spec.path)?];
        if let Some(h) = &spec.heldout_path {
            files.push(data_file(h)?);
        }
        // One copy per process: every condition, phase or island that
        // names the same files the same way shares the data read first.
        let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|(_, _, data)| data.strong_count() > 0);
        let shared = cache
            .iter()
            .find(|(s, f, _)| s == spec && *f == files)
            .and_then(|(_, _, data)| data.upgrade());
        if let Some(data) = shared {
            return Ok(Dataset {
                task: data.task.clone(),
                train: data.train.clone(),
                heldout: data.heldout.clone(),
                files,
                _shared: Some(data),
            });
        }
        let dataset = match spec.task {
            DatasetTask::Tokens { context } => Dataset::tokens(spec, context)?,
            _ => Dataset::examples(spec)?,
        };
        let data = Arc::new(Shared {
            task: dataset.task.clone(),
            train: dataset.train.clone(),
            heldout: dataset.heldout.clone(),
        });
        cache.push((spec.clone(), files.clone(), Arc::downgrade(&data)));
        Ok(Dataset {
            files,
            _shared: Some(data),
            ..dataset
        })
    }

    /// Examples in the training part.
    pub fn train_len(&self) -> usize {
        match &*self.train {
            Batch::Tokens { tokens, .. } => tokens.len(),
            b => b.len(),
        }
    }

    fn examples(spec: &DatasetSpec) -> Result<Dataset, EnvError> {
        let load = |path: &Path| -> Result<Part, EnvError> {
            let arrays = read::read(path, &[&spec.inputs, &spec.targets])
                .map_err(|e| invalid(e.to_string()))?;
            let [x, y] = <[Array; 2]>::try_from(arrays).map_err(|_| invalid("two arrays"))?;
            part(path, spec, x, y)
        };
        let all = load(&spec.path)?;
        let all = select_classes(&spec.path, spec, all)?;
        let (mut train, mut held) = match &spec.heldout_path {
            Some(h) => {
                let held = select_classes(h, spec, load(h)?)?;
                if held.x.len() / held.n.max(1) != all.x.len() / all.n.max(1)
                    || held.steps != all.steps
                {
                    return Err(invalid(format!(
                        "{}: the held-out examples have another shape than those of {}",
                        h.display(),
                        spec.path.display()
                    )));
                }
                (all, held)
            }
            None => split(all, spec.heldout_fraction, spec.seed),
        };
        if train.n == 0 {
            return Err(invalid(format!(
                "{}: no training examples are left",
                spec.path.display()
            )));
        }
        if spec.heldout > 0 && held.n > spec.heldout {
            held = take(&held, &(0..spec.heldout).collect::<Vec<_>>());
        }
        if held.n == 0 {
            return Err(invalid(format!(
                "{}: no held-out examples (set `heldout_fraction` or `heldout_path`)",
                spec.path.display()
            )));
        }
        if spec.standardize {
            let width = train.x.len() / (train.n * train.steps);
            let (mean, std) = moments(&train.x, width);
            for part in [&mut train, &mut held] {
                for row in part.x.chunks_exact_mut(width) {
                    for ((v, m), s) in row.iter_mut().zip(&mean).zip(&std) {
                        *v = (*v - m) / s;
                    }
                }
            }
        }
        let width = train.x.len() / (train.n * train.steps);
        let task = match (spec.task, &train.y) {
            (DatasetTask::Classification, Values::Int(_)) => Task::Classification {
                inputs: width,
                classes: classes(spec, &train, &held),
            },
            (DatasetTask::Sequences, Values::Int(_)) => Task::SequenceClassification {
                inputs: width,
                classes: classes(spec, &train, &held),
                steps: train.steps,
            },
            (DatasetTask::Regression, Values::Float(y)) => Task::Regression {
                inputs: width,
                outputs: y.len() / train.n,
            },
            _ => unreachable!("checked in `part`"),
        };
        Ok(Dataset {
            task,
            train: Arc::new(batch(spec.task, train)),
            heldout: Arc::new(batch(spec.task, held)),
            files: Vec::new(),
            _shared: None,
        })
    }

    fn tokens(spec: &DatasetSpec, context: usize) -> Result<Dataset, EnvError> {
        if context == 0 {
            return Err(invalid("`context` must be at least 1"));
        }
        let load = |path: &Path| -> Result<Vec<u32>, EnvError> {
            let mut arrays =
                read::read(path, &[&spec.targets]).map_err(|e| invalid(e.to_string()))?;
            let array = arrays.pop().ok_or_else(|| invalid("no array"))?;
            let at =
                |m: String| invalid(format!("{}, array `{}`: {m}", path.display(), spec.targets));
            let Values::Int(ids) = array.values else {
                return Err(at(
                    "token ids must be integers, found floating-point values".into(),
                ));
            };
            ids.iter()
                .enumerate()
                .map(|(i, &t)| {
                    u32::try_from(t)
                        .ok()
                        .filter(|&t| t != IGNORE)
                        .ok_or_else(|| at(format!("token {i} is {t}, not an id")))
                })
                .collect()
        };
        let window = context + 1;
        let (train, held) = match &spec.heldout_path {
            Some(h) => (load(&spec.path)?, load(h)?),
            None => {
                let mut all = load(&spec.path)?;
                let cut = all.len() - (all.len() as f64 * spec.heldout_fraction) as usize;
                let held = all.split_off(cut);
                (all, held)
            }
        };
        if train.len() < window {
            return Err(invalid(format!(
                "{}: the training stream holds {} tokens, fewer than one window of {window}",
                spec.path.display(),
                train.len()
            )));
        }
        let mut windows: Vec<u32> = held.chunks_exact(window).flatten().copied().collect();
        if spec.heldout > 0 {
            windows.truncate(spec.heldout * window);
        }
        if windows.is_empty() {
            return Err(invalid(format!(
                "{}: the held-out stream holds no window of {window} tokens",
                spec.path.display()
            )));
        }
        let largest = train.iter().chain(&windows).copied().max().unwrap_or(0) as usize;
        let vocab = match spec.vocab {
            Some(v) if v <= largest => {
                return Err(invalid(format!(
                    "`vocab` is {v} but the data hold token {largest}"
                )));
            }
            Some(v) => v,
            None => largest + 1,
        };
        Ok(Dataset {
            task: Task::NextToken { vocab, context },
            heldout: Arc::new(Batch::Tokens {
                n: windows.len() / window,
                len: window,
                tokens: windows,
            }),
            train: Arc::new(Batch::Tokens {
                n: 1,
                len: train.len(),
                tokens: train,
            }),
            files: Vec::new(),
            _shared: None,
        })
    }
}

/// The SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// A file's size and SHA-256.
pub fn data_file(path: &Path) -> Result<DataFile, EnvError> {
    let io = |source| EnvError::Io {
        environment: NAME,
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher).map_err(io)?;
    Ok(DataFile {
        path: path.display().to_string(),
        bytes,
        sha256: format!("{:x}", hasher.finalize()),
    })
}

/// Checks the arrays of one file and lays them out as a [`Part`].
fn part(path: &Path, spec: &DatasetSpec, x: Array, y: Array) -> Result<Part, EnvError> {
    let at = |array: &str, m: String| invalid(format!("{}, array `{array}`: {m}", path.display()));
    let (inputs, targets) = (spec.inputs.as_str(), spec.targets.as_str());
    let n = *x
        .shape
        .first()
        .ok_or_else(|| at(inputs, "expected at least one dimension (examples)".into()))?;
    if y.shape.first() != Some(&n) {
        return Err(at(
            targets,
            format!(
                "has {:?} rows but the inputs have {n}",
                y.shape.first().unwrap_or(&0)
            ),
        ));
    }
    let steps = match spec.task {
        DatasetTask::Sequences => {
            if x.shape.len() != 3 || y.shape.len() != 2 || y.shape[1] != x.shape[1] {
                return Err(at(
                    inputs,
                    format!(
                        "sequences need inputs [n, steps, features] and labels [n, steps]; found {:?} and {:?}",
                        x.shape, y.shape
                    ),
                ));
            }
            x.shape[1].max(1)
        }
        _ => 1,
    };
    let x = match x.values {
        Values::Float(v) => v,
        Values::Int(v) => v.into_iter().map(|i| i as f32).collect(),
    };
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(at(
            inputs,
            format!("value {i} is {} (every input must be finite)", x[i]),
        ));
    }
    if n > 0 && x.len() / n == 0 {
        return Err(at(inputs, "the examples have no features".into()));
    }
    let y = match (spec.task, y.values) {
        (DatasetTask::Regression, v) => {
            let v = match v {
                Values::Float(v) => v,
                Values::Int(v) => v.into_iter().map(|i| i as f32).collect(),
            };
            if let Some(i) = v.iter().position(|v| !v.is_finite()) {
                return Err(at(
                    targets,
                    format!("value {i} is {} (targets must be finite)", v[i]),
                ));
            }
            Values::Float(v)
        }
        (_, Values::Float(_)) => {
            return Err(at(
                targets,
                "labels must be integers, found floating-point values".into(),
            ));
        }
        (task, Values::Int(v)) => {
            let sequences = task == DatasetTask::Sequences;
            if y.shape.len() != 1 + usize::from(sequences) {
                return Err(at(
                    targets,
                    format!(
                        "labels must be [n{}], found {:?}",
                        if sequences { ", steps" } else { "" },
                        y.shape
                    ),
                ));
            }
            if let Some(i) = v
                .iter()
                .position(|&l| l < 0 && !sequences || l > i64::from(u32::MAX - 1))
            {
                return Err(at(targets, format!("label {i} is {}, not a class", v[i])));
            }
            Values::Int(v)
        }
    };
    Ok(Part { n, steps, x, y })
}

/// Keeps the classes `spec.classes` lists, numbered in that order.
fn select_classes(path: &Path, spec: &DatasetSpec, part: Part) -> Result<Part, EnvError> {
    let (Some(keep), Values::Int(labels)) = (&spec.classes, &part.y) else {
        return Ok(part);
    };
    let per = labels.len() / part.n.max(1);
    let number = |l: i64| keep.iter().position(|&k| i64::from(k) == l);
    let rows: Vec<usize> = (0..part.n)
        .filter(|&r| {
            labels[r * per..(r + 1) * per]
                .iter()
                .any(|&l| number(l).is_some())
        })
        .collect();
    if rows.is_empty() {
        return Err(invalid(format!(
            "{}: no example has any of the classes {keep:?}",
            path.display()
        )));
    }
    let mut kept = take(&part, &rows);
    if let Values::Int(labels) = &mut kept.y {
        for l in labels.iter_mut() {
            // A sequence step of another class is not scored.
            *l = number(*l).map_or(-1, |k| k as i64);
        }
    }
    Ok(kept)
}

/// Examples `rows` of `part`.
fn take(part: &Part, rows: &[usize]) -> Part {
    let xw = part.x.len() / part.n.max(1);
    let yw = part.y.len() / part.n.max(1);
    let x = rows
        .iter()
        .flat_map(|&r| part.x[r * xw..(r + 1) * xw].iter().copied())
        .collect();
    let y = match &part.y {
        Values::Float(v) => Values::Float(
            rows.iter()
                .flat_map(|&r| v[r * yw..(r + 1) * yw].iter().copied())
                .collect(),
        ),
        Values::Int(v) => Values::Int(
            rows.iter()
                .flat_map(|&r| v[r * yw..(r + 1) * yw].iter().copied())
                .collect(),
        ),
    };
    Part {
        n: rows.len(),
        steps: part.steps,
        x,
        y,
    }
}

/// The examples split at random (with `seed`) into a training part and
/// `fraction` of them held out.
fn split(all: Part, fraction: f64, seed: u64) -> (Part, Part) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let held = (all.n as f64 * fraction).round() as usize;
    let mut order: Vec<usize> = (0..all.n).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let (h, t) = order.split_at(held);
    let (mut h, mut t) = (h.to_vec(), t.to_vec());
    h.sort_unstable();
    t.sort_unstable();
    (take(&all, &t), take(&all, &h))
}

/// Per-feature mean and standard deviation (1 where a feature is constant).
fn moments(x: &[f32], width: usize) -> (Vec<f32>, Vec<f32>) {
    let rows = (x.len() / width).max(1) as f64;
    let mut mean = vec![0f64; width];
    for row in x.chunks_exact(width) {
        mean.iter_mut()
            .zip(row)
            .for_each(|(m, &v)| *m += f64::from(v));
    }
    mean.iter_mut().for_each(|m| *m /= rows);
    let mut var = vec![0f64; width];
    for row in x.chunks_exact(width) {
        for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
            *s += (f64::from(v) - m).powi(2);
        }
    }
    let std = var
        .iter()
        .map(|&s| {
            let s = (s / rows).sqrt();
            if s > 1e-12 { s as f32 } else { 1.0 }
        })
        .collect();
    (mean.into_iter().map(|m| m as f32).collect(), std)
}

/// Classes: the subset's size, else the largest label + 1.
fn classes(spec: &DatasetSpec, train: &Part, held: &Part) -> usize {
    if let Some(keep) = &spec.classes {
        return keep.len();
    }
    let largest = |p: &Part| match &p.y {
        Values::Int(v) => v.iter().copied().max().unwrap_or(0),
        Values::Float(_) => 0,
    };
    (largest(train).max(largest(held)).max(0) + 1) as usize
}

fn batch(task: DatasetTask, part: Part) -> Batch {
    let labels = |v: Values| match v {
        Values::Int(v) => v
            .into_iter()
            .map(|l| u32::try_from(l).unwrap_or(IGNORE))
            .collect(),
        Values::Float(_) => unreachable!("checked in `part`"),
    };
    match task {
        DatasetTask::Classification => Batch::Labeled {
            n: part.n,
            x: part.x,
            labels: labels(part.y),
        },
        DatasetTask::Sequences => Batch::Sequences {
            n: part.n,
            steps: part.steps,
            x: part.x,
            labels: labels(part.y),
        },
        DatasetTask::Regression | DatasetTask::Tokens { .. } => Batch::Dense {
            n: part.n,
            x: part.x,
            y: match part.y {
                Values::Float(v) => v,
                Values::Int(_) => unreachable!("checked in `part`"),
            },
        },
    }
}

impl Environment for Dataset {
    fn name(&self) -> &str {
        NAME
    }

    fn task(&self) -> Task {
        self.task.clone()
    }

    fn lifetime(&self, rng: &mut dyn RngCore, budget: usize) -> Result<Lifetime, EnvError> {
        let train = match &*self.train {
            Batch::Tokens { tokens, .. } => {
                let Task::NextToken { context, .. } = self.task else {
                    unreachable!("a token stream has a next-token task")
                };
                let window = context + 1;
                let n = crate::windows(budget, context);
                let mut out = Vec::with_capacity(n * window);
                for _ in 0..n {
                    let start = rng.random_range(0..=tokens.len() - window);
                    out.extend_from_slice(&tokens[start..start + window]);
                }
                Batch::Tokens {
                    n,
                    len: window,
                    tokens: out,
                }
            }
            all => {
                let n = all.len();
                let mut rows = index::sample(rng, n, budget.min(n)).into_vec();
                rows.sort_unstable();
                pick(all, &rows)
            }
        };
        Ok(Lifetime {
            train,
            heldout: self.heldout.clone(),
        })
    }

    /// A classification data set's held-out examples once more, as the
    /// probe set `heldout`: its accuracy (and loss) at every curve point.
    fn probe_sets(&self) -> Vec<ProbeSet> {
        match *self.heldout {
            Batch::Labeled { .. } | Batch::Sequences { .. } => vec![ProbeSet {
                name: "heldout".into(),
                data: self.heldout.clone(),
                choices: None,
            }],
            _ => Vec::new(),
        }
    }

    fn draw_limit(&self) -> Option<usize> {
        match *self.train {
            Batch::Tokens { .. } => None,
            ref examples => Some(examples.len()),
        }
    }

    fn data_files(&self) -> Vec<DataFile> {
        self.files.clone()
    }
}

/// Rows `rows` of a batch of examples.
fn pick(batch: &Batch, rows: &[usize]) -> Batch {
    fn gather<T: Copy>(v: &[T], width: usize, rows: &[usize]) -> Vec<T> {
        rows.iter()
            .flat_map(|&r| v[r * width..(r + 1) * width].iter().copied())
            .collect()
    }
    let n = batch.len().max(1);
    match batch {
        Batch::Labeled { x, labels, .. } => Batch::Labeled {
            n: rows.len(),
            x: gather(x, x.len() / n, rows),
            labels: gather(labels, 1, rows),
        },
        Batch::Dense { x, y, .. } => Batch::Dense {
            n: rows.len(),
            x: gather(x, x.len() / n, rows),
            y: gather(y, y.len() / n, rows),
        },
        Batch::Sequences {
            x, labels, steps, ..
        } => Batch::Sequences {
            n: rows.len(),
            steps: *steps,
            x: gather(x, x.len() / n, rows),
            labels: gather(labels, *steps, rows),
        },
        Batch::Tokens { .. } => unreachable!("token streams are drawn by window"),
    }
}

#[cfg(test)]
mod tests;
