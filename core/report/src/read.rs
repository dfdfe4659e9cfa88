//! Reading a run directory back: `manifest.json`, `conditions.json` and the
//! CSV tables (`generations.csv`, `organisms.csv`, `metrics.csv`,
//! `curves.csv`).
//!
//! The engine writes these files; this module holds the reader's view of
//! them: the fields the report shows, with every other field ignored, so a
//! record written by a newer engine still reads. Tables are read with the
//! `csv` crate, each row deserialized (rows of fixed columns into
//! `#[derive(Deserialize)]` structs, `generations.csv`, whose columns depend
//! on the objectives, into numbers). A damaged table (a row cut short by a
//! crash, a field that is not a number, a header without a needed column)
//! is a [`ReportError::Record`] with the file, the line and what is wrong.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::ReportError;
use crate::mean::Mean;

/// `manifest.json`: what produced a run.
pub const MANIFEST: &str = "manifest.json";
/// `conditions.json`: marks a run directory as an experiment with
/// conditions and lists their runs.
pub const CONDITIONS: &str = "conditions.json";
/// Per-generation statistics.
pub const GENERATIONS: &str = "generations.csv";
/// One row per evaluated organism.
pub const ORGANISMS: &str = "organisms.csv";
/// Learning curves.
pub const CURVES: &str = "curves.csv";
/// Evaluation suites' metrics per organism.
pub const METRICS: &str = "metrics.csv";
/// The environment's probe sets along every lifetime.
pub const PROBES: &str = "probes.csv";

/// The fields of `manifest.json` a report shows.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Manifest {
    /// Lineage's version.
    pub lineage_version: String,
    /// The git commit Lineage was built from, when known.
    pub git_commit: Option<String>,
    /// The scenario's name.
    pub scenario: String,
    /// SHA-256 of `scenario.toml`.
    pub scenario_sha256: String,
    /// The seed.
    pub seed: u64,
    /// Host name of the machine.
    pub host: String,
    /// When the run started.
    pub started: String,
    /// When the last session ended, if it did.
    pub finished: Option<String>,
    /// Why the run stopped early, if it did (the engine's `StopReason`,
    /// kept as JSON so that new reasons still read).
    pub stop_reason: Option<serde_json::Value>,
    /// The names of the genome's real genes (absent in older runs).
    #[serde(default)]
    pub genes: Vec<String>,
    /// The plugin libraries the run loaded.
    #[serde(default)]
    pub plugins: Vec<PluginRecord>,
}

/// One plugin library in `manifest.json`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct PluginRecord {
    /// The scenario's name for it.
    pub alias: String,
    /// The plugin's own name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The ABI version it speaks.
    pub abi_version: u32,
    /// The library file.
    pub path: PathBuf,
    /// SHA-256 of the library file.
    pub sha256: String,
    /// Libraries it replaced on a resume that accepted a changed one.
    #[serde(default)]
    pub replaced: Vec<ReplacedLibrary>,
}

/// A library a plugin's record replaced.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ReplacedLibrary {
    /// Its SHA-256.
    pub sha256: String,
    /// The first generation computed with the library after it.
    pub until_generation: u32,
}

impl Manifest {
    /// Reads `dir/manifest.json`.
    pub fn read(dir: &Path) -> Result<Manifest, ReportError> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read(&path).map_err(|source| ReportError::Read {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|e| ReportError::Json {
            path,
            message: format!("is not a Lineage manifest: {e}"),
        })
    }

    /// Why the run stopped early, in words (`target reached`).
    pub fn stop_reason(&self) -> Option<String> {
        self.stop_reason.as_ref().map(|r| match r {
            serde_json::Value::String(s) => words(s),
            other => other.to_string(),
        })
    }
}

/// `TargetReached` (or `target_reached`) as `target reached`.
fn words(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c == '_' || c == '-' {
            out.push(' ');
        } else if c.is_uppercase() {
            if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `conditions.json`: the conditions of an experiment and their runs.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Index {
    /// The scenario's name.
    pub scenario: String,
    /// The conditions, in run order.
    pub conditions: Vec<IndexEntry>,
}

/// One condition in `conditions.json`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct IndexEntry {
    /// Its name.
    pub name: String,
    /// The condition it starts from.
    #[serde(default)]
    pub from: Option<String>,
    /// Its seeds.
    pub seeds: Vec<u64>,
    /// Its run directories, relative to the root, one per seed.
    pub runs: Vec<String>,
}

impl Index {
    /// Reads and checks `dir/conditions.json`: at least one condition,
    /// one run per seed, no name twice.
    pub fn read(dir: &Path) -> Result<Index, ReportError> {
        let path = dir.join(CONDITIONS);
        let text = std::fs::read_to_string(&path).map_err(|source| ReportError::Read {
            path: path.clone(),
            source,
        })?;
        Index::parse(&text).map_err(|message| ReportError::Json { path, message })
    }

    fn parse(text: &str) -> Result<Index, String> {
        let index: Index =
            serde_json::from_str(text).map_err(|e| format!("is not a conditions index: {e}"))?;
        if index.conditions.is_empty() {
            return Err("`conditions` is empty".into());
        }
        for (i, c) in index.conditions.iter().enumerate() {
            if c.runs.len() != c.seeds.len() {
                return Err(format!(
                    "conditions[{i}] (`{}`): {} runs for {} seeds (one run per seed expected)",
                    c.name,
                    c.runs.len(),
                    c.seeds.len()
                ));
            }
            if index.conditions[..i].iter().any(|o| o.name == c.name) {
                return Err(format!(
                    "conditions[{i}] (`{}`): the name appears twice",
                    c.name
                ));
            }
        }
        Ok(index)
    }
}

/// Whether `dir` holds an experiment with conditions.
pub fn is_conditions_run(dir: &Path) -> bool {
    dir.join(CONDITIONS).is_file()
}

/// A table read whole: its header and its rows, each with its line.
struct Table<T> {
    header: Vec<String>,
    rows: Vec<(u64, T)>,
}

/// Reads the table at `path` if it exists; `None` when it does not.
fn read_optional<T: DeserializeOwned>(
    path: &Path,
    required: &[&str],
    by_name: bool,
) -> Result<Option<Table<T>>, ReportError> {
    if !path.exists() {
        return Ok(None);
    }
    read_table(path, required, by_name).map(Some)
}

/// Reads the table at `path`. The header must name every column in
/// `required`. With `by_name`, rows deserialize by column name (a struct's
/// fields; other columns are ignored), otherwise by position (a sequence).
fn read_table<T: DeserializeOwned>(
    path: &Path,
    required: &[&str],
    by_name: bool,
) -> Result<Table<T>, ReportError> {
    let mut reader = csv::ReaderBuilder::new()
        .from_path(path)
        .map_err(|e| csv_error(path, e))?;
    let headers = reader.headers().map_err(|e| csv_error(path, e))?.clone();
    if headers.is_empty() || headers.iter().all(str::is_empty) {
        return Err(ReportError::Record {
            path: path.to_owned(),
            line: 1,
            message: "no header (the file is empty)".into(),
        });
    }
    for name in required {
        if !headers.iter().any(|h| h == *name) {
            return Err(ReportError::Record {
                path: path.to_owned(),
                line: 1,
                message: format!("the header has no `{name}` column"),
            });
        }
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(path, e))?;
        let line = record.position().map_or(0, csv::Position::line);
        let row: T = record
            .deserialize(by_name.then_some(&headers))
            .map_err(|e| field_error(path, &headers, &record, e))?;
        rows.push((line, row));
    }
    Ok(Table {
        header: headers.iter().map(str::to_owned).collect(),
        rows,
    })
}

/// A damaged row as a [`ReportError`].
fn csv_error(path: &Path, e: csv::Error) -> ReportError {
    let line = e.position().map_or(0, csv::Position::line);
    let message = match e.into_kind() {
        csv::ErrorKind::Io(source) => {
            return ReportError::Read {
                path: path.to_owned(),
                source,
            };
        }
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("expected {expected_len} fields, found {len}"),
        csv::ErrorKind::Utf8 { err, .. } => format!("field {} is not UTF-8", err.field() + 1),
        other => format!("{other:?}"),
    };
    ReportError::Record {
        path: path.to_owned(),
        line,
        message,
    }
}

/// A field that does not deserialize, named by its column and value.
fn field_error(
    path: &Path,
    headers: &csv::StringRecord,
    record: &csv::StringRecord,
    e: csv::Error,
) -> ReportError {
    let line = record.position().map_or(0, csv::Position::line);
    let message = match e.kind() {
        csv::ErrorKind::Deserialize { err, .. } => {
            let what = match err.kind() {
                csv::DeserializeErrorKind::ParseFloat(_) => "is not a number".to_owned(),
                csv::DeserializeErrorKind::ParseInt(_) => "is not a whole number".to_owned(),
                other => other.to_string(),
            };
            match err.field().map(|f| f as usize) {
                Some(f) if f < record.len() => format!(
                    "column `{}`: `{}` {what}",
                    headers.get(f).unwrap_or("?"),
                    &record[f]
                ),
                _ => what,
            }
        }
        _ => e.to_string(),
    };
    ReportError::Record {
        path: path.to_owned(),
        line,
        message,
    }
}

/// `generations.csv` as columns of numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Generations {
    /// Column names.
    pub header: Vec<String>,
    /// Rows of values, each as long as the header.
    pub rows: Vec<Vec<f64>>,
    /// Where the `generation` column is.
    generation: usize,
}

impl Generations {
    /// Reads `dir/generations.csv`. Every objective's `<name>_best` column
    /// comes with its `<name>_worst`.
    pub fn read(dir: &Path) -> Result<Generations, ReportError> {
        let path = dir.join(GENERATIONS);
        let table = read_table::<Vec<f64>>(&path, &["generation"], false)?;
        let g = Generations {
            generation: table
                .header
                .iter()
                .position(|h| h == "generation")
                .unwrap_or(0),
            header: table.header,
            rows: table.rows.into_iter().map(|(_, r)| r).collect(),
        };
        for o in g.objectives() {
            if g.column(&format!("{o}_worst")).is_none() {
                return Err(ReportError::Record {
                    path,
                    line: 1,
                    message: format!("the header has `{o}_best` but no `{o}_worst` column"),
                });
            }
        }
        Ok(g)
    }

    /// Index of a column.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// Objective names, from the `<name>_best` columns.
    pub fn objectives(&self) -> Vec<String> {
        self.header
            .iter()
            .filter_map(|h| h.strip_suffix("_best"))
            .map(str::to_owned)
            .collect()
    }

    /// The generation of row `row`.
    pub fn generation(&self, row: usize) -> f64 {
        self.rows[row][self.generation]
    }
}

/// The columns of `organisms.csv` the report reads.
#[derive(Debug, Deserialize)]
struct OrganismRow {
    generation: u64,
    /// Held-out loss at birth (with a lifetime; empty or absent otherwise).
    #[serde(default)]
    birth_heldout: Option<f64>,
    /// Held-out loss after the lifetime.
    #[serde(default)]
    final_heldout: Option<f64>,
}

/// A row of `metrics.csv`.
#[derive(Debug, Deserialize)]
struct MetricRow {
    generation: u64,
    suite: String,
    metric: String,
    value: f64,
}

/// The columns of `curves.csv` the report reads.
#[derive(Debug, Deserialize)]
struct CurveRow {
    generation: u64,
    step: u64,
    heldout_loss: f64,
}

/// What one seed's run contributed.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The run directory (or its manifest) does not exist.
    NotRun,
    /// The run started but its manifest says it has not finished.
    NotFinished,
    /// The values of its last generation.
    Finished(RunValues),
}

/// One finished run's values at its last generation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunValues {
    /// The last generation.
    pub generation: u64,
    /// Metric name and value, finite values only, in the order found.
    pub values: Vec<(String, f64)>,
    /// Step and mean held-out loss over the generation's organisms.
    pub curve: Vec<(u64, f64)>,
}

/// Reads one seed's run directory. What it contributes, all from its last
/// generation: each objective's best (`generations.csv`), the mean
/// `birth_heldout` and `final_heldout` over the generation's organisms
/// (`organisms.csv`), the mean of every suite metric as `<suite>/<metric>`
/// (`metrics.csv`) and the mean held-out loss per step (`curves.csv`).
/// Non-finite values (diverged or invalid organisms) are left out of every
/// mean.
pub fn read_run(dir: &Path) -> Result<Outcome, ReportError> {
    if !dir.join(MANIFEST).is_file() {
        return Ok(Outcome::NotRun);
    }
    let manifest = Manifest::read(dir)?;
    if manifest.finished.is_none() {
        return Ok(Outcome::NotFinished);
    }
    let g = Generations::read(dir)?;
    let Some(last) = g.rows.len().checked_sub(1) else {
        return Ok(Outcome::NotFinished);
    };
    let generation = g.generation(last).max(0.0) as u64;
    let mut values = Vec::new();
    for objective in g.objectives() {
        if let Some(k) = g.column(&format!("{objective}_best")) {
            let v = g.rows[last][k];
            if v.is_finite() {
                values.push((objective, v));
            }
        }
    }
    // Held-out losses at birth and at the end of the lifetime.
    let path = dir.join(ORGANISMS);
    if let Some(t) = read_optional::<OrganismRow>(&path, &["generation"], true)? {
        let rows: Vec<&OrganismRow> = t
            .rows
            .iter()
            .map(|(_, r)| r)
            .filter(|r| r.generation == generation)
            .collect();
        type Pick = fn(&OrganismRow) -> Option<f64>;
        let columns: [(&str, Pick); 2] = [
            ("birth_heldout", |r| r.birth_heldout),
            ("final_heldout", |r| r.final_heldout),
        ];
        for (name, pick) in columns {
            if !t.header.iter().any(|h| h == name) {
                continue;
            }
            let mut mean = Mean::default();
            for r in &rows {
                if let Some(x) = pick(r) {
                    mean.add(x);
                }
            }
            if let Some(v) = mean.value() {
                values.push((name.to_owned(), v));
            }
        }
    }
    // Suite metrics, in the order they first appear.
    let path = dir.join(METRICS);
    let required = ["generation", "suite", "metric", "value"];
    if let Some(t) = read_optional::<MetricRow>(&path, &required, true)? {
        let mut metrics: Vec<(String, Mean)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (_, r) in t.rows.iter().filter(|(_, r)| r.generation == generation) {
            let name = format!("{}/{}", r.suite, r.metric);
            let k = *index.entry(name.clone()).or_insert_with(|| {
                metrics.push((name, Mean::default()));
                metrics.len() - 1
            });
            metrics[k].1.add(r.value);
        }
        for (name, mean) in metrics {
            if let Some(v) = mean.value() {
                values.push((name, v));
            }
        }
    }
    // The learning curve: mean held-out loss per step.
    let mut curve = Vec::new();
    let path = dir.join(CURVES);
    let required = ["generation", "step", "heldout_loss"];
    if let Some(t) = read_optional::<CurveRow>(&path, &required, true)? {
        let mut steps: BTreeMap<u64, Mean> = BTreeMap::new();
        for (_, r) in t.rows.iter().filter(|(_, r)| r.generation == generation) {
            steps.entry(r.step).or_default().add(r.heldout_loss);
        }
        curve = steps
            .into_iter()
            .filter_map(|(step, mean)| Some((step, mean.value()?)))
            .collect();
    }
    Ok(Outcome::Finished(RunValues {
        generation,
        values,
        curve,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Result<Table<Vec<f64>>, ReportError> {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("t.csv");
        std::fs::write(&path, text).unwrap();
        read_table(&path, &["generation"], false)
    }

    fn message(text: &str) -> String {
        match table(text) {
            Err(ReportError::Record { line, message, .. }) => format!("line {line}: {message}"),
            other => panic!("{text:?} read as {:?}", other.map(|t| t.rows)),
        }
    }

    #[test]
    fn damaged_tables_name_the_line_and_the_fault() {
        let ok = "generation,a,b\n0,1,2\n1,NaN,inf\n";
        let t = table(ok).unwrap();
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[1].0, 3);
        assert!(t.rows[1].1[1].is_nan() && t.rows[1].1[2].is_infinite());
        // Cut mid-row (no final newline), a short row in the middle, a
        // long one, a field that is not a number.
        assert_eq!(
            message("generation,a,b\n0,1,2\n1,1"),
            "line 3: expected 3 fields, found 2"
        );
        assert_eq!(
            message("generation,a,b\n0\n1,1,1\n"),
            "line 2: expected 3 fields, found 1"
        );
        assert_eq!(
            message("generation,a,b\n0,1,2,3\n"),
            "line 2: expected 3 fields, found 4"
        );
        assert_eq!(
            message("generation,a,b\n0,1,2\n1,x1,2\n"),
            "line 3: column `a`: `x1` is not a number"
        );
        assert_eq!(message(""), "line 1: no header (the file is empty)");
        assert_eq!(
            message("gen,a,b\n0,1,2\n"),
            "line 1: the header has no `generation` column"
        );
    }

    #[test]
    fn rows_by_name_ignore_other_columns_and_check_their_types() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(METRICS);
        std::fs::write(
            &path,
            "id,generation,suite,metric,value\n7,2,s,m,0.5\n8,2,s,m,oops\n",
        )
        .unwrap();
        let e = read_table::<MetricRow>(&path, &["value"], true)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            e,
            format!(
                "{}, line 3: column `value`: `oops` is not a number",
                path.display()
            )
        );
        std::fs::write(&path, "id,generation,suite,metric,value\n7,-2,s,m,1\n").unwrap();
        let e = read_table::<MetricRow>(&path, &["value"], true)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.ends_with("line 2: column `generation`: `-2` is not a whole number"),
            "{e}"
        );
        assert!(
            read_optional::<MetricRow>(&tmp.path().join("none.csv"), &[], true)
                .unwrap()
                .is_none()
        );
        let e = read_table::<MetricRow>(&tmp.path().join("none.csv"), &[], true)
            .err()
            .unwrap();
        assert!(matches!(e, ReportError::Read { .. }), "{e}");
    }

    #[test]
    fn stop_reasons_read_as_words() {
        assert_eq!(words("TargetReached"), "target reached");
        assert_eq!(words("Stagnation"), "stagnation");
        assert_eq!(words("generations_done"), "generations done");
    }
}

/// The real genes of the organisms a run evaluated, by generation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GeneTable {
    /// The genes' names (the manifest's), at most [`GENES_RECORDED`].
    pub names: Vec<String>,
    /// `(generation, values)`, one row per organism of `organisms.csv`, a
    /// value per name.
    pub rows: Vec<(u64, Vec<f64>)>,
}

/// How many real genes `organisms.csv`'s `genome` column records.
pub const GENES_RECORDED: usize = 8;

/// The columns of `organisms.csv` [`read_genes`] reads.
#[derive(Debug, Deserialize)]
struct GenomeRow {
    generation: u64,
    genome: String,
}

/// The real genes of every organism in `dir/organisms.csv`: names from the
/// manifest, values from each row's `genome` column (`x=v1;v2;…`, after
/// the bit string's summary if any). `None` for a run without real genes
/// or without organism records.
pub fn read_genes(dir: &Path) -> Result<Option<GeneTable>, ReportError> {
    let mut names = Manifest::read(dir)?.genes;
    names.truncate(GENES_RECORDED);
    if names.is_empty() {
        return Ok(None);
    }
    let path = dir.join(ORGANISMS);
    let Some(t) = read_optional::<GenomeRow>(&path, &["generation", "genome"], true)? else {
        return Ok(None);
    };
    let mut rows = Vec::with_capacity(t.rows.len());
    for (line, r) in t.rows {
        let bad = |message: String| ReportError::Record {
            path: path.clone(),
            line,
            message,
        };
        let Some(values) = r
            .genome
            .split_whitespace()
            .find_map(|w| w.strip_prefix("x="))
        else {
            return Err(bad(format!(
                "the genome {:?} has no genes (`x=`)",
                r.genome
            )));
        };
        // More than [`GENES_RECORDED`] genes end in `;+K`, the count left out.
        let values: Vec<f64> = values
            .split(';')
            .filter(|v| !v.starts_with('+'))
            .map(|v| {
                v.parse::<f64>()
                    .map_err(|_| bad(format!("the gene value {v:?} is not a number")))
            })
            .collect::<Result<_, _>>()?;
        if values.len() != names.len() {
            return Err(bad(format!(
                "the genome has {} gene values, the manifest names {}",
                values.len(),
                names.len()
            )));
        }
        rows.push((r.generation, values));
    }
    Ok(Some(GeneTable { names, rows }))
}

/// The columns of `probes.csv`.
#[derive(Debug, Deserialize)]
struct ProbeRow {
    generation: u64,
    step: u64,
    probe: String,
    metric: String,
    value: f64,
}

/// One probe measure along the lifetime: `(step, mean over the organisms
/// of the run's last generation)`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeTrack {
    /// The probe set.
    pub probe: String,
    /// The measure (`loss`, `accuracy`, `accuracy_all`).
    pub metric: String,
    /// `(step, mean)`, by step.
    pub points: Vec<(u64, f64)>,
}

/// The probe measures of `dir`'s last generation with organisms in
/// `probes.csv`, each averaged over those organisms per step (finite
/// values only), in the order first found; `None` without `probes.csv`.
pub fn read_probes(dir: &Path) -> Result<Option<Vec<ProbeTrack>>, ReportError> {
    let path = dir.join(PROBES);
    let Some(t) = read_optional::<ProbeRow>(
        &path,
        &["generation", "step", "probe", "metric", "value"],
        true,
    )?
    else {
        return Ok(None);
    };
    let Some(last) = t.rows.iter().map(|(_, r)| r.generation).max() else {
        return Ok(Some(Vec::new()));
    };
    let mut tracks: Vec<(ProbeTrack, std::collections::BTreeMap<u64, Mean>)> = Vec::new();
    for (_, r) in t.rows.iter().filter(|(_, r)| r.generation == last) {
        let at = match tracks
            .iter()
            .position(|(t, _)| t.probe == r.probe && t.metric == r.metric)
        {
            Some(at) => at,
            None => {
                tracks.push((
                    ProbeTrack {
                        probe: r.probe.clone(),
                        metric: r.metric.clone(),
                        points: Vec::new(),
                    },
                    std::collections::BTreeMap::new(),
                ));
                tracks.len() - 1
            }
        };
        tracks[at].1.entry(r.step).or_default().add(r.value);
    }
    Ok(Some(
        tracks
            .into_iter()
            .map(|(mut t, steps)| {
                t.points = steps
                    .into_iter()
                    .filter_map(|(step, m)| m.value().map(|v| (step, v)))
                    .collect();
                t
            })
            .collect(),
    ))
}
