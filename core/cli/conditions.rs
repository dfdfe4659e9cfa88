//! `lineage report` for a scenario with conditions: each condition's seed
//! runs are read at their last generation, aggregated over seeds (mean,
//! standard error, n), compared with the first condition (difference of
//! means and Cohen's d), printed as a table and written to `report.json`,
//! `report.csv` and SVG plots in the run directory.
//!
//! The run directory holds `conditions.json`
//! (`{"scenario", "conditions": [{"name", "from", "seeds", "runs"}]}`, runs
//! relative to the directory, one per seed) and one ordinary run directory
//! per condition and seed. A run that is missing or has not finished is
//! listed and skipped; a condition without a finished run has n = 0.
//!
//! What one run contributes, all from its last generation: each
//! objective's best (`generations.csv`), the mean `birth_heldout` and
//! `final_heldout` over the generation's organisms (`organisms.csv`), the
//! mean of every suite metric as `<suite>/<metric>` (`metrics.csv`) and the
//! mean held-out loss per step (`curves.csv`). Non-finite values (diverged
//! or invalid organisms) are left out of every mean.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use lineage_engine::manifest::{MANIFEST, Manifest};
use lineage_engine::recorder::files;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::{Value, json};

use crate::Failure;
use crate::table::{Generations, significant};

/// The file that marks a run directory as a scenario with conditions.
pub const CONDITIONS_FILE: &str = lineage_engine::conditions::INDEX;
/// Written next to `conditions.json`.
pub const REPORT_JSON: &str = "report.json";
/// One row per condition and metric.
pub const REPORT_CSV: &str = "report.csv";
/// The learning curves plot.
pub const CURVES_SVG: &str = "report-curves.svg";

/// The printed tables stay within this many columns.
const WIDTH: usize = 100;
/// Significant digits of the printed means, standard errors and differences.
const DIGITS: usize = 4;

/// Whether `dir` holds a scenario with conditions.
pub fn is_conditions_run(dir: &Path) -> bool {
    dir.join(CONDITIONS_FILE).is_file()
}

/// `lineage report RUN_DIR` for a scenario with conditions: prints the
/// tables, writes the report files and plots, and prints their paths.
/// Effects are against `baseline` (default: the first condition).
pub fn report(dir: &Path, baseline: Option<&str>) -> Result<(), Failure> {
    let report = Report::read(dir, baseline).map_err(Failure::bad_input)?;
    print!("{}", report.text(dir));
    let written = report
        .write(dir)
        .map_err(|message| Failure { code: 1, message })?;
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// `conditions.json`, as the engine writes it.
type Conditions = lineage_engine::conditions::Index;

/// Reads and checks `dir/conditions.json`.
fn read_conditions(dir: &Path) -> Result<Conditions, String> {
    let path = dir.join(CONDITIONS_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_conditions(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn parse_conditions(text: &str) -> Result<Conditions, String> {
    let index: Conditions =
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

/// What one seed's run contributed.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    /// The run directory (or its manifest) does not exist.
    NotRun,
    /// The run started but its manifest says it has not finished.
    NotFinished,
    /// The values of its last generation.
    Finished(RunValues),
}

/// One finished run's values at its last generation.
#[derive(Clone, Debug, Default, PartialEq)]
struct RunValues {
    generation: u64,
    /// Metric name and value, finite values only, in the order found.
    values: Vec<(String, f64)>,
    /// Step and mean held-out loss over the generation's organisms.
    curve: Vec<(u64, f64)>,
}

/// Reads one seed's run directory.
fn read_run(dir: &Path) -> Result<Outcome, String> {
    if !dir.join(MANIFEST).is_file() {
        return Ok(Outcome::NotRun);
    }
    let manifest = Manifest::read(dir).map_err(|e| e.to_string())?;
    if manifest.finished.is_none() {
        return Ok(Outcome::NotFinished);
    }
    let g = Generations::read(dir)?;
    let Some(last) = g.rows.last() else {
        return Ok(Outcome::NotFinished);
    };
    let generation = last[0] as u64;
    let mut values = Vec::new();
    for objective in g.objectives() {
        let k = g
            .column(&format!("{objective}_best"))
            .expect("objectives come from the `_best` columns");
        if last[k].is_finite() {
            values.push((objective, last[k]));
        }
    }
    // Held-out losses at birth and at the end of the lifetime.
    if let Some(rows) = Rows::read(&dir.join(files::ORGANISMS), generation)? {
        for name in ["birth_heldout", "final_heldout"] {
            let Some(c) = rows.column(name) else { continue };
            let mut mean = Mean::default();
            for row in 0..rows.rows.len() {
                mean.add(rows.number(row, c)?);
            }
            if let Some(v) = mean.value() {
                values.push((name.to_owned(), v));
            }
        }
    }
    // Suite metrics, in the order they first appear.
    if let Some(rows) = Rows::read(&dir.join(files::METRICS), generation)? {
        let (s, m, v) = (
            rows.require("suite")?,
            rows.require("metric")?,
            rows.require("value")?,
        );
        let mut metrics: Vec<(String, Mean)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (row, (_, fields)) in rows.rows.iter().enumerate() {
            let name = format!("{}/{}", fields[s], fields[m]);
            let k = *index.entry(name.clone()).or_insert_with(|| {
                metrics.push((name, Mean::default()));
                metrics.len() - 1
            });
            metrics[k].1.add(rows.number(row, v)?);
        }
        for (name, mean) in metrics {
            if let Some(v) = mean.value() {
                values.push((name, v));
            }
        }
    }
    // The learning curve: mean held-out loss per step.
    let mut curve = Vec::new();
    if let Some(rows) = Rows::read(&dir.join(files::CURVES), generation)? {
        let (s, l) = (rows.require("step")?, rows.require("heldout_loss")?);
        let mut steps: BTreeMap<u64, Mean> = BTreeMap::new();
        for row in 0..rows.rows.len() {
            let step = rows.number(row, s)?;
            if step < 0.0 || step.fract() != 0.0 {
                return Err(rows.bad(row, s, "is not a step"));
            }
            steps
                .entry(step as u64)
                .or_default()
                .add(rows.number(row, l)?);
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

/// A running mean of the finite values added.
#[derive(Clone, Copy, Debug, Default)]
struct Mean {
    sum: f64,
    n: usize,
}

impl Mean {
    fn add(&mut self, x: f64) {
        if x.is_finite() {
            self.sum += x;
            self.n += 1;
        }
    }

    fn value(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }
}

/// The rows of one generation of a run's CSV file.
struct Rows {
    path: PathBuf,
    header: Vec<String>,
    /// Line number and fields.
    rows: Vec<(usize, Vec<String>)>,
}

impl Rows {
    /// The rows of `path` whose `generation` column is `generation`; `None`
    /// when the file does not exist. The last column takes the rest of the
    /// line, commas included (the genome summary of `organisms.csv` has
    /// none, but a row would not be misread if it had).
    fn read(path: &Path, generation: u64) -> Result<Option<Rows>, String> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let read_error = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
        let mut lines = std::io::BufReader::new(file).lines();
        let Some(header) = lines.next().transpose().map_err(read_error)? else {
            return Err(format!("{} is empty (no header)", path.display()));
        };
        let header: Vec<String> = header.split(',').map(str::to_owned).collect();
        let Some(g) = header.iter().position(|h| h == "generation") else {
            return Err(format!("{}: no `generation` column", path.display()));
        };
        let mut rows = Vec::new();
        for (i, line) in lines.enumerate() {
            let line = line.map_err(read_error)?;
            let line_no = i + 2;
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.splitn(header.len(), ',').collect();
            if fields.len() != header.len() {
                return Err(format!(
                    "{}:{line_no}: {} fields, the header has {}",
                    path.display(),
                    fields.len(),
                    header.len()
                ));
            }
            let here: u64 = fields[g].parse().map_err(|_| {
                format!(
                    "{}:{line_no}: column `generation`: `{}` is not a generation",
                    path.display(),
                    fields[g]
                )
            })?;
            if here == generation {
                rows.push((line_no, fields.into_iter().map(str::to_owned).collect()));
            }
        }
        Ok(Some(Rows {
            path: path.to_owned(),
            header,
            rows,
        }))
    }

    fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// A column the file must have.
    fn require(&self, name: &str) -> Result<usize, String> {
        self.column(name)
            .ok_or_else(|| format!("{}: no `{name}` column", self.path.display()))
    }

    /// The number in row `row`, column `column` (`NaN` and `inf` included).
    fn number(&self, row: usize, column: usize) -> Result<f64, String> {
        self.rows[row].1[column]
            .parse()
            .map_err(|_| self.bad(row, column, "is not a number"))
    }

    /// An error about one field.
    fn bad(&self, row: usize, column: usize, what: &str) -> String {
        let (line, fields) = &self.rows[row];
        format!(
            "{}:{line}: column `{}`: `{}` {what}",
            self.path.display(),
            self.header[column],
            fields[column]
        )
    }
}

/// Mean, standard error and n of one metric over seeds.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Stat {
    mean: f64,
    /// Sample standard deviation (n - 1); `None` when n < 2.
    sd: Option<f64>,
    /// `sd / sqrt(n)`; `None` when n < 2.
    se: Option<f64>,
    n: usize,
}

impl Stat {
    /// The statistics of `values`; `None` when there are none.
    fn of(values: &[f64]) -> Option<Stat> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = (n >= 2).then(|| {
            let ss: f64 = values.iter().map(|x| (x - mean) * (x - mean)).sum();
            (ss / (n - 1) as f64).sqrt()
        });
        Some(Stat {
            mean,
            sd,
            se: sd.map(|sd| sd / (n as f64).sqrt()),
            n,
        })
    }
}

/// One condition's difference from the first condition in one metric.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Effect {
    /// This condition's mean minus the first condition's.
    difference: f64,
    /// `sqrt(se_first^2 + se_this^2)`, when both have n >= 2.
    se: Option<f64>,
    /// Cohen's d with the pooled standard deviation, when both have n >= 2
    /// and the pooled deviation is not zero.
    d: Option<f64>,
}

impl Effect {
    /// The effect of `b` against the baseline `a`.
    fn of(a: &Stat, b: &Stat) -> Effect {
        let difference = b.mean - a.mean;
        let (se, d) = match (a.sd, a.se, b.sd, b.se) {
            (Some(sa), Some(ea), Some(sb), Some(eb)) => {
                let (na, nb) = (a.n as f64, b.n as f64);
                let pooled =
                    (((na - 1.0) * sa * sa + (nb - 1.0) * sb * sb) / (na + nb - 2.0)).sqrt();
                (
                    Some((ea * ea + eb * eb).sqrt()),
                    (pooled > 0.0).then(|| difference / pooled),
                )
            }
            _ => (None, None),
        };
        Effect { difference, se, d }
    }
}

/// One point of a condition's mean learning curve.
#[derive(Clone, Copy, Debug, PartialEq)]
struct CurvePoint {
    step: u64,
    mean: f64,
    se: Option<f64>,
    n: usize,
}

/// One seed of a condition: where its run is and what it gave.
#[derive(Clone, Debug)]
struct SeedRun {
    seed: u64,
    path: String,
    outcome: Outcome,
}

/// A condition aggregated over its seeds.
#[derive(Clone, Debug)]
struct ConditionReport {
    name: String,
    from: Option<String>,
    runs: Vec<SeedRun>,
    /// Per metric (in `Report::metrics` order), the value of each seed.
    values: Vec<Vec<Option<f64>>>,
    /// Per metric, the statistics over the seeds that have a value.
    stats: Vec<Option<Stat>>,
    curve: Vec<CurvePoint>,
}

impl ConditionReport {
    /// Runs that finished.
    fn finished(&self) -> usize {
        self.runs
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Finished(_)))
            .count()
    }
}

/// The whole report.
#[derive(Clone, Debug)]
struct Report {
    scenario: String,
    /// Metric names: objectives, held-out losses, suite metrics.
    metrics: Vec<String>,
    conditions: Vec<ConditionReport>,
    /// `effects[c - 1][m]`: condition c against the first, in metric m.
    effects: Vec<Vec<Option<Effect>>>,
}

impl Report {
    /// Reads `conditions.json` and every run it names.
    fn read(dir: &Path, baseline: Option<&str>) -> Result<Report, String> {
        let mut spec = read_conditions(dir)?;
        if let Some(name) = baseline {
            // The baseline leads: every effect is against the first.
            let Some(at) = spec.conditions.iter().position(|c| c.name == name) else {
                let names: Vec<&str> = spec.conditions.iter().map(|c| c.name.as_str()).collect();
                return Err(format!(
                    "--baseline: no condition `{name}` (conditions: {})",
                    names.join(", ")
                ));
            };
            let first = spec.conditions.remove(at);
            spec.conditions.insert(0, first);
        }
        let mut runs = Vec::with_capacity(spec.conditions.len());
        for c in &spec.conditions {
            let mut seeds = Vec::with_capacity(c.seeds.len());
            for (&seed, path) in c.seeds.iter().zip(&c.runs) {
                seeds.push(SeedRun {
                    seed,
                    path: path.clone(),
                    outcome: read_run(&dir.join(path))?,
                });
            }
            runs.push(seeds);
        }
        Ok(Report::aggregate(spec, runs))
    }

    /// Aggregates the runs (`runs[c]`: condition c's seeds).
    fn aggregate(spec: Conditions, runs: Vec<Vec<SeedRun>>) -> Report {
        let mut metrics: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for run in runs.iter().flatten() {
            if let Outcome::Finished(v) = &run.outcome {
                for (name, _) in &v.values {
                    if seen.insert(name.clone()) {
                        metrics.push(name.clone());
                    }
                }
            }
        }
        let conditions: Vec<ConditionReport> = spec
            .conditions
            .into_iter()
            .zip(runs)
            .map(|(c, runs)| {
                let values: Vec<Vec<Option<f64>>> = metrics
                    .iter()
                    .map(|m| {
                        runs.iter()
                            .map(|r| match &r.outcome {
                                Outcome::Finished(v) => {
                                    v.values.iter().find(|(n, _)| n == m).map(|&(_, x)| x)
                                }
                                _ => None,
                            })
                            .collect()
                    })
                    .collect();
                let stats = values
                    .iter()
                    .map(|seeds| Stat::of(&seeds.iter().flatten().copied().collect::<Vec<_>>()))
                    .collect();
                let mut steps: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
                for r in &runs {
                    if let Outcome::Finished(v) = &r.outcome {
                        for &(step, loss) in &v.curve {
                            steps.entry(step).or_default().push(loss);
                        }
                    }
                }
                let curve = steps
                    .into_iter()
                    .filter_map(|(step, losses)| {
                        let s = Stat::of(&losses)?;
                        Some(CurvePoint {
                            step,
                            mean: s.mean,
                            se: s.se,
                            n: s.n,
                        })
                    })
                    .collect();
                ConditionReport {
                    name: c.name,
                    from: c.from,
                    runs,
                    values,
                    stats,
                    curve,
                }
            })
            .collect();
        let effects = conditions
            .iter()
            .skip(1)
            .map(|c| {
                (0..metrics.len())
                    .map(|m| match (&conditions[0].stats[m], &c.stats[m]) {
                        (Some(a), Some(b)) => Some(Effect::of(a, b)),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        Report {
            scenario: spec.scenario,
            metrics,
            conditions,
            effects,
        }
    }

    /// The printed report: the runs, the table of means and the effects.
    fn text(&self, dir: &Path) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "run:          {}", dir.display());
        let _ = writeln!(
            out,
            "scenario:     {} ({} conditions; each run's last generation)",
            self.scenario,
            self.conditions.len()
        );
        let name_width = self
            .conditions
            .iter()
            .map(|c| label(c).chars().count())
            .max()
            .unwrap_or(0);
        for c in &self.conditions {
            let seeds: Vec<u64> = c.runs.iter().map(|r| r.seed).collect();
            let generations: Vec<u64> = c
                .runs
                .iter()
                .filter_map(|r| match &r.outcome {
                    Outcome::Finished(v) => Some(v.generation),
                    _ => None,
                })
                .collect();
            let last = match (generations.iter().min(), generations.iter().max()) {
                (Some(lo), Some(hi)) if lo == hi => format!(", last generation {lo}"),
                (Some(lo), Some(hi)) => format!(", last generations {lo} to {hi}"),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "  {:<name_width$}  seeds {}: {} of {} runs finished{last}",
                label(c),
                seed_list(&seeds),
                c.finished(),
                c.runs.len()
            );
            for r in &c.runs {
                let why = match r.outcome {
                    Outcome::NotRun => "not run",
                    Outcome::NotFinished => "not finished",
                    Outcome::Finished(_) => continue,
                };
                let _ = writeln!(
                    out,
                    "  {:<name_width$}    seed {}: {} ({why})",
                    "", r.seed, r.path
                );
            }
        }
        if self.metrics.is_empty() {
            out.push_str("\nno metrics: no finished run\n");
            return out;
        }
        out.push('\n');
        out.push_str(&self.means_table());
        out.push('\n');
        out.push_str(&self.effects_table());
        out
    }

    /// Rows: conditions; columns: metrics, as `mean ± se`.
    fn means_table(&self) -> String {
        let keys = [
            Column::left(
                "condition",
                self.conditions.iter().map(|c| c.name.clone()).collect(),
            ),
            Column::right(
                "n",
                self.conditions
                    .iter()
                    .map(|c| c.finished().to_string())
                    .collect(),
            ),
        ];
        let data: Vec<Column> = self
            .metrics
            .iter()
            .enumerate()
            .map(|(m, name)| Column {
                title: name.clone(),
                left: false,
                cells: self
                    .conditions
                    .iter()
                    .map(|c| match c.stats[m] {
                        None => vec!["-".into()],
                        Some(s) => {
                            let mut cell = vec![significant(s.mean, DIGITS)];
                            cell.push(match s.se {
                                Some(se) => format!(" ± {}", significant(se, DIGITS)),
                                None => String::new(),
                            });
                            // A metric some finished runs lack says how many have it.
                            cell.push(if s.n == c.finished() {
                                String::new()
                            } else {
                                format!(" (n={})", s.n)
                            });
                            cell
                        }
                    })
                    .collect(),
            })
            .collect();
        let mut out = String::from("mean ± standard error over seeds (n: finished runs)\n");
        out.push_str(&blocks(&keys, &data));
        out
    }

    /// Rows: metrics; columns: conditions after the first, as
    /// `difference ± se  d=…`.
    fn effects_table(&self) -> String {
        let Some(first) = self.conditions.first() else {
            return String::new();
        };
        if self.conditions.len() < 2 {
            return "one condition: no effects\n".into();
        }
        let keys = [Column::left("metric", self.metrics.clone())];
        let data: Vec<Column> = self.conditions[1..]
            .iter()
            .zip(&self.effects)
            .map(|(c, effects)| Column {
                title: c.name.clone(),
                left: false,
                cells: effects
                    .iter()
                    .map(|e| match e {
                        None => vec!["-".into()],
                        Some(e) => {
                            let sign = if e.difference > 0.0 { "+" } else { "" };
                            vec![
                                format!("{sign}{}", significant(e.difference, DIGITS)),
                                e.se.map_or(String::new(), |se| {
                                    format!(" ± {}", significant(se, DIGITS))
                                }),
                                e.d.map_or(String::new(), |d| format!("  d={}", significant(d, 3))),
                            ]
                        }
                    })
                    .collect(),
            })
            .collect();
        let mut out = format!(
            "effects against {}: difference of means ± se, Cohen's d (pooled sd)\n",
            first.name
        );
        out.push_str(&blocks(&keys, &data));
        out
    }

    /// `report.json`.
    fn json(&self) -> Value {
        let number = |x: Option<f64>| x.map_or(Value::Null, Value::from);
        let conditions: Vec<Value> = self
            .conditions
            .iter()
            .map(|c| {
                let runs: Vec<Value> = c
                    .runs
                    .iter()
                    .map(|r| {
                        let (status, generation) = match &r.outcome {
                            Outcome::NotRun => ("not run", Value::Null),
                            Outcome::NotFinished => ("not finished", Value::Null),
                            Outcome::Finished(v) => ("finished", Value::from(v.generation)),
                        };
                        json!({
                            "seed": r.seed,
                            "path": r.path,
                            "status": status,
                            "generation": generation,
                        })
                    })
                    .collect();
                let metrics: serde_json::Map<String, Value> = self
                    .metrics
                    .iter()
                    .enumerate()
                    .map(|(m, name)| {
                        let s = c.stats[m];
                        let value = json!({
                            "mean": number(s.map(|s| s.mean)),
                            "se": number(s.and_then(|s| s.se)),
                            "sd": number(s.and_then(|s| s.sd)),
                            "n": s.map_or(0, |s| s.n),
                            "values": c.values[m].iter().map(|&v| number(v)).collect::<Vec<_>>(),
                        });
                        (name.clone(), value)
                    })
                    .collect();
                json!({
                    "name": c.name,
                    "from": c.from,
                    "seeds": c.runs.iter().map(|r| r.seed).collect::<Vec<_>>(),
                    "runs": runs,
                    "finished": c.finished(),
                    "metrics": metrics,
                    "curve": {
                        "steps": c.curve.iter().map(|p| p.step).collect::<Vec<_>>(),
                        "mean": c.curve.iter().map(|p| number(Some(p.mean))).collect::<Vec<_>>(),
                        "se": c.curve.iter().map(|p| number(p.se)).collect::<Vec<_>>(),
                        "n": c.curve.iter().map(|p| p.n).collect::<Vec<_>>(),
                    },
                })
            })
            .collect();
        let mut effects = Vec::new();
        for (c, row) in self.conditions.iter().skip(1).zip(&self.effects) {
            for (metric, e) in self.metrics.iter().zip(row) {
                effects.push(json!({
                    "condition": c.name,
                    "baseline": self.conditions[0].name,
                    "metric": metric,
                    "difference": number(e.map(|e| e.difference)),
                    "se": number(e.and_then(|e| e.se)),
                    "d": number(e.and_then(|e| e.d)),
                }));
            }
        }
        json!({
            "scenario": self.scenario,
            "metrics": self.metrics,
            "conditions": conditions,
            "effects": effects,
        })
    }

    /// `report.csv`: `condition,metric,mean,se,n`.
    fn csv(&self) -> String {
        let mut out = String::from("condition,metric,mean,se,n\n");
        let opt = |x: Option<f64>| x.map_or(String::new(), |x| x.to_string());
        for c in &self.conditions {
            for (m, name) in self.metrics.iter().enumerate() {
                let s = c.stats[m];
                let _ = writeln!(
                    out,
                    "{},{},{},{},{}",
                    csv_field(&c.name),
                    csv_field(name),
                    opt(s.map(|s| s.mean)),
                    opt(s.and_then(|s| s.se)),
                    s.map_or(0, |s| s.n)
                );
            }
        }
        out
    }

    /// Writes `report.json`, `report.csv` and the plots into `dir`.
    fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, String> {
        let mut written = Vec::new();
        let path = dir.join(REPORT_JSON);
        // Keys in the order of the report, then the metrics in theirs.
        let mut order: Vec<&str> = JSON_KEYS.to_vec();
        order.extend(self.metrics.iter().map(String::as_str));
        let mut json = String::new();
        pretty(&self.json(), &order, 0, &mut json);
        json.push('\n');
        std::fs::write(&path, json).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
        let path = dir.join(REPORT_CSV);
        std::fs::write(&path, self.csv())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
        if self.conditions.iter().any(|c| !c.curve.is_empty()) {
            let path = dir.join(CURVES_SVG);
            plot_curves(self, &path).map_err(|e| format!("cannot draw {}: {e}", path.display()))?;
            written.push(path);
        }
        for (m, file) in metric_files(&self.metrics).into_iter().enumerate() {
            let path = dir.join(file);
            plot_bars(self, m, &path)
                .map_err(|e| format!("cannot draw {}: {e}", path.display()))?;
            written.push(path);
        }
        Ok(written)
    }
}

/// The order of the keys of `report.json` (serde_json's maps sort them).
const JSON_KEYS: [&str; 24] = [
    "scenario",
    "name",
    "from",
    "seeds",
    "finished",
    "runs",
    "metrics",
    "conditions",
    "effects",
    "seed",
    "path",
    "status",
    "generation",
    "curve",
    "condition",
    "baseline",
    "metric",
    "steps",
    "mean",
    "difference",
    "se",
    "sd",
    "d",
    "n",
];

/// Indented JSON with object keys in `order` (others after them,
/// alphabetically) and arrays of plain values on one line.
fn pretty(value: &Value, order: &[&str], indent: usize, out: &mut String) {
    let pad = |out: &mut String, level: usize| out.push_str(&"  ".repeat(level));
    match value {
        Value::Object(map) if !map.is_empty() => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by_key(|k| order.iter().position(|o| o == k).unwrap_or(order.len()));
            out.push_str("{\n");
            for (i, k) in keys.iter().enumerate() {
                pad(out, indent + 1);
                let _ = write!(out, "{}: ", Value::String((*k).clone()));
                pretty(&map[k.as_str()], order, indent + 1, out);
                out.push_str(if i + 1 < keys.len() { ",\n" } else { "\n" });
            }
            pad(out, indent);
            out.push('}');
        }
        Value::Array(items) if items.iter().any(|v| v.is_object() || v.is_array()) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                pad(out, indent + 1);
                pretty(item, order, indent + 1, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            pad(out, indent);
            out.push(']');
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(Value::to_string).collect();
            let _ = write!(out, "[{}]", items.join(", "));
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Seeds as a list, runs of three or more consecutive seeds as ranges:
/// `1-10, 12`.
fn seed_list(seeds: &[u64]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < seeds.len() {
        let mut j = i;
        while j + 1 < seeds.len() && seeds[j + 1] == seeds[j] + 1 {
            j += 1;
        }
        if j >= i + 2 {
            parts.push(format!("{}-{}", seeds[i], seeds[j]));
        } else {
            parts.extend(seeds[i..=j].iter().map(u64::to_string));
        }
        i = j + 1;
    }
    parts.join(", ")
}

/// A condition's name with where it comes from.
fn label(c: &ConditionReport) -> String {
    match &c.from {
        Some(from) => format!("{} (from {from})", c.name),
        None => c.name.clone(),
    }
}

/// A CSV field, quoted when it must be.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// `report-<metric>.svg` for each metric: `:` and `/` (and anything else
/// a file name should not hold) become `-`; names that collide, with each
/// other or with the curves plot, get a number.
fn metric_files(metrics: &[String]) -> Vec<String> {
    let mut taken: HashSet<String> = HashSet::from([CURVES_SVG.to_owned()]);
    metrics
        .iter()
        .map(|m| {
            let clean: String = m
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            let mut file = format!("report-{clean}.svg");
            let mut k = 2;
            while !taken.insert(file.clone()) {
                file = format!("report-{clean}-{k}.svg");
                k += 1;
            }
            file
        })
        .collect()
}

/// A column of a printed table, under a left-aligned title. A cell is a few
/// pieces: the first is right-aligned and the others left-aligned (so `±`
/// lines up), unless the column is `left` or the cell a lone piece, when
/// the whole cell is.
struct Column {
    title: String,
    left: bool,
    cells: Vec<Vec<String>>,
}

impl Column {
    fn left(title: &str, cells: Vec<String>) -> Column {
        Column {
            title: title.into(),
            left: true,
            cells: cells.into_iter().map(|c| vec![c]).collect(),
        }
    }

    fn right(title: &str, cells: Vec<String>) -> Column {
        Column {
            title: title.into(),
            left: false,
            cells: cells.into_iter().map(|c| vec![c]).collect(),
        }
    }

    /// Widest text of each piece.
    fn pieces(&self) -> Vec<usize> {
        let mut widths = Vec::new();
        for cell in &self.cells {
            widths.resize(widths.len().max(cell.len()), 0);
            for (w, piece) in widths.iter_mut().zip(cell) {
                *w = (*w).max(piece.chars().count());
            }
        }
        widths
    }

    fn width(&self) -> usize {
        self.pieces()
            .iter()
            .sum::<usize>()
            .max(self.title.chars().count())
    }

    /// Row `i`'s cell, `width` wide.
    fn cell(&self, i: usize, width: usize) -> String {
        let cell = &self.cells[i];
        let widths = self.pieces();
        // A lone piece among cells of several (`-`, nothing to show) sits
        // at the left like the title.
        if self.left || (cell.len() == 1 && widths.len() > 1) {
            return format!("{:<width$}", cell.concat());
        }
        let mut text = String::new();
        for (k, w) in widths.iter().enumerate() {
            let piece = cell.get(k).map_or("", String::as_str);
            if k == 0 {
                let _ = write!(text, "{piece:>w$}");
            } else {
                let _ = write!(text, "{piece:<w$}");
            }
        }
        format!("{text:<width$}")
    }

    fn title(&self, width: usize) -> String {
        format!("{:<width$}", self.title)
    }
}

/// Prints `keys` then as many `data` columns as fit in [`WIDTH`], block
/// after block until every data column is shown.
fn blocks(keys: &[Column], data: &[Column]) -> String {
    const GAP: &str = "  ";
    let key_widths: Vec<usize> = keys.iter().map(Column::width).collect();
    let key_width: usize = key_widths.iter().map(|w| w + GAP.len()).sum();
    let rows = keys.first().map_or(0, |k| k.cells.len());
    let widths: Vec<usize> = data.iter().map(Column::width).collect();
    let mut out = String::new();
    let mut start = 0;
    while start < data.len() {
        let mut end = start + 1;
        let mut used = key_width + widths[start];
        while end < data.len() && used + GAP.len() + widths[end] <= WIDTH {
            used += GAP.len() + widths[end];
            end += 1;
        }
        if start > 0 {
            out.push('\n');
        }
        let line = |row: Option<usize>| {
            let mut text = String::new();
            let columns = keys
                .iter()
                .zip(&key_widths)
                .chain(data[start..end].iter().zip(&widths[start..end]));
            for (k, (column, &w)) in columns.enumerate() {
                if k > 0 {
                    text.push_str(GAP);
                }
                text.push_str(&match row {
                    None => column.title(w),
                    Some(i) => column.cell(i, w),
                });
            }
            text.trim_end().to_owned() + "\n"
        };
        out.push_str(&line(None));
        for i in 0..rows {
            out.push_str(&line(Some(i)));
        }
        start = end;
    }
    out
}

/// Distinct colours for conditions (Tableau 10).
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn color(c: usize) -> RGBColor {
    COLORS[c % COLORS.len()]
}

/// `report-curves.svg`: each condition's mean held-out loss against the
/// step, with a band of ± one standard error over seeds.
fn plot_curves(report: &Report, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let drawn: Vec<(usize, &ConditionReport)> = report
        .conditions
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.curve.is_empty())
        .collect();
    let points = drawn.iter().flat_map(|(_, c)| c.curve.iter());
    let (lo, hi, first, last) = points.fold(
        (f64::INFINITY, f64::NEG_INFINITY, u64::MAX, 0),
        |(lo, hi, first, last), p| {
            let se = p.se.unwrap_or(0.0);
            (
                lo.min(p.mean - se),
                hi.max(p.mean + se),
                first.min(p.step),
                last.max(p.step),
            )
        },
    );
    let (lo, hi) = crate::report::span(lo, hi);
    let (x0, x1) = (first as f64, (last as f64).max(first as f64 + 1.0));
    let series: Vec<(&str, RGBColor, Vec<(f64, f64)>)> = drawn
        .iter()
        .map(|&(k, c)| {
            let line = c.curve.iter().map(|p| (p.step as f64, p.mean)).collect();
            (c.name.as_str(), color(k), line)
        })
        .collect();
    let bands: Vec<(RGBColor, Vec<(f64, f64)>)> = drawn
        .iter()
        .map(|&(k, c)| {
            let band = |sign: f64| {
                move |p: &CurvePoint| (p.step as f64, p.mean + sign * p.se.unwrap_or(0.0))
            };
            let mut outline: Vec<(f64, f64)> = c.curve.iter().map(band(1.0)).collect();
            outline.extend(c.curve.iter().rev().map(band(-1.0)));
            (color(k), outline)
        })
        .collect();
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(
            "held-out loss over the lifetime (last generation; mean ± se over seeds)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70);
    if crate::report::wants_log(lo, hi) {
        let mut chart = builder.build_cartesian_2d(x0..x1, (lo / 2.0..hi * 2.0).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("held-out loss (log scale)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0e}"))
            .draw()?;
        draw_bands(&mut chart, bands)?;
        crate::report::draw_series(&mut chart, series)?;
    } else {
        let pad = 0.05 * (hi - lo);
        let mut chart = builder.build_cartesian_2d(x0..x1, (lo - pad)..(hi + pad))?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("held-out loss")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()?;
        draw_bands(&mut chart, bands)?;
        crate::report::draw_series(&mut chart, series)?;
    }
    root.present()?;
    Ok(())
}

/// Shaded polygons, drawn under the lines.
fn draw_bands<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    bands: Vec<(RGBColor, Vec<(f64, f64)>)>,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (color, outline) in bands {
        chart
            .draw_series(std::iter::once(Polygon::new(
                outline,
                color.mix(0.2).filled(),
            )))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `report-<metric>.svg`: one bar per condition (its mean over seeds) with
/// a ± one standard error bar, and each seed's value as a dot.
fn plot_bars(report: &Report, m: usize, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let metric = &report.metrics[m];
    let k = report.conditions.len();
    let mut lo = 0f64;
    let mut hi = 0f64;
    for c in &report.conditions {
        if let Some(s) = c.stats[m] {
            let se = s.se.unwrap_or(0.0);
            lo = lo.min(s.mean - se);
            hi = hi.max(s.mean + se);
        }
        for v in c.values[m].iter().flatten() {
            lo = lo.min(*v);
            hi = hi.max(*v);
        }
    }
    if hi - lo < 1e-12 {
        hi = lo + 1.0;
    }
    let pad = 0.08 * (hi - lo);
    let (lo, hi) = (
        if lo < 0.0 { lo - pad } else { lo },
        if hi > 0.0 { hi + pad } else { hi },
    );
    // Name on one line, the seed count under it; bars wide enough for the
    // longest name (about 8.5 px a character at 15 px).
    let labels: Vec<(String, String)> = report
        .conditions
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                format!("n={}", c.stats[m].map_or(0, |s| s.n)),
            )
        })
        .collect();
    let longest = labels
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    let per_bar = (longest as u32 * 17 / 2 + 16).max(140);
    let width = (160 + per_bar * k as u32).max(560);
    let root = SVGBackend::new(path, (width, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{metric}: mean ± se over seeds"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(56)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..k as f64, lo..hi)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(metric.as_str())
        .draw()?;
    // The conditions' names under their bars (plotters would put ticks at
    // round numbers, not at the bars).
    let style =
        TextStyle::from(("sans-serif", 15).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, (name, n)) in labels.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, lo));
        root.draw(&Text::new(name.as_str(), (x, y + 10), style.clone()))?;
        root.draw(&Text::new(n.as_str(), (x, y + 30), style.clone()))?;
    }
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(0.0, 0.0), (k as f64, 0.0)],
        BLACK.stroke_width(1),
    )))?;
    for (i, c) in report.conditions.iter().enumerate() {
        let x = i as f64;
        let Some(s) = c.stats[m] else { continue };
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x + 0.2, s.mean.max(0.0)), (x + 0.8, s.mean.min(0.0))],
            color(i).mix(0.75).filled(),
        )))?;
        if let Some(se) = s.se {
            let (a, b) = (s.mean - se, s.mean + se);
            let whisker = BLACK.stroke_width(2);
            chart.draw_series([
                PathElement::new(vec![(x + 0.5, a), (x + 0.5, b)], whisker),
                PathElement::new(vec![(x + 0.42, a), (x + 0.58, a)], whisker),
                PathElement::new(vec![(x + 0.42, b), (x + 0.58, b)], whisker),
            ])?;
        }
        let seeds: Vec<f64> = c.values[m].iter().flatten().copied().collect();
        let spread = 0.3 / seeds.len().max(2) as f64;
        let mid = (seeds.len() as f64 - 1.0) / 2.0;
        chart.draw_series(seeds.iter().enumerate().map(|(j, &v)| {
            Circle::new(
                (x + 0.5 + (j as f64 - mid) * spread, v),
                3,
                BLACK.mix(0.6).filled(),
            )
        }))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What one synthetic seed run holds at its last generation (2).
    struct Fake {
        /// `fitness_best` of the last generation.
        best: f64,
        /// Final held-out loss: the two organisms have this ± 0.5.
        heldout: f64,
        /// `mc:language/xent_gap`: the two organisms have this ± 1.
        gap: f64,
        /// Mean held-out loss at steps 0 and 10.
        curve: [f64; 2],
    }

    /// Writes an ordinary run directory with three generations, of which
    /// only the last counts: two organisms that learned and one that
    /// diverged (NaN values, left out of every mean).
    fn write_run(dir: &Path, f: &Fake) {
        std::fs::create_dir_all(dir).unwrap();
        let manifest = Manifest {
            lineage_version: "0.1.0".into(),
            git_commit: None,
            stream_derivation: 1,
            scenario: "demo".into(),
            scenario_sha256: "0".repeat(64),
            seed: 1,
            threads: 1,
            host: "test".into(),
            started: "2025-01-01T00:00:00Z".into(),
            finished: Some("2025-01-01T00:01:00Z".into()),
            generations_completed: 3,
            stop_reason: None,
            sessions: Vec::new(),
            cpu_features: Vec::new(),
            plugins: Vec::new(),
        };
        std::fs::write(
            dir.join(MANIFEST),
            serde_json::to_string(&manifest).unwrap(),
        )
        .unwrap();
        let header = "generation,population,evaluated,invalid,fitness_best,fitness_mean,\
                      fitness_median,fitness_worst,diversity,phase,eval_errors";
        let generations = format!(
            "{header}\n0,3,3,0,100,0,0,0,0.5,0,0\n1,3,3,0,200,0,0,0,0.5,0,0\n\
             2,3,3,1,{},0,0,0,0.5,0,0\n",
            f.best
        );
        std::fs::write(dir.join(files::GENERATIONS), generations).unwrap();
        let (lo, hi) = (f.heldout - 0.5, f.heldout + 0.5);
        let organisms = format!(
            "id,birth,generation,parent1,parent2,fitness,lifetime,birth_heldout,final_heldout,genome\n\
             1,1,1,,,1,completed,9,99,ones=1/8 fp=00000001 x=0.5\n\
             7,2,2,1,,1,completed,3,{lo},ones=3/8 fp=0000abcd x=0.500000;0.250000\n\
             8,2,2,1,2,2,completed,5,{hi},ones=4/8 fp=0000abce\n\
             9,2,2,1,,NaN,diverged at step 5,7,NaN,ones=5/8 fp=0000abcf\n"
        );
        std::fs::write(dir.join(files::ORGANISMS), organisms).unwrap();
        let metrics = format!(
            "id,generation,suite,metric,value\n\
             1,1,mc:language,xent_gap,1000\n\
             7,2,mc:language,xent_gap,{}\n\
             8,2,mc:language,xent_gap,{}\n\
             9,2,mc:language,xent_gap,NaN\n\
             9,2,mc:language,accuracy,inf\n",
            f.gap - 1.0,
            f.gap + 1.0
        );
        std::fs::write(dir.join(files::METRICS), metrics).unwrap();
        let [c0, c10] = f.curve;
        let curves = format!(
            "id,generation,step,train_loss,heldout_loss\n\
             1,1,0,9,9\n1,1,10,9,9\n\
             7,2,0,1,{}\n7,2,10,1,{}\n\
             8,2,0,1,{}\n8,2,10,1,{}\n\
             9,2,0,1,{c0}\n9,2,5,1,NaN\n",
            c0 - 0.25,
            c10 - 0.25,
            c0 + 0.25,
            c10 + 0.25,
        );
        std::fs::write(dir.join(files::CURVES), curves).unwrap();
    }

    /// Two conditions of three seeds; the second also names a seed whose
    /// run has not been made.
    fn write_example(dir: &Path) {
        let a = [
            Fake {
                best: 1.0,
                heldout: 2.0,
                gap: 0.5,
                curve: [4.0, 2.0],
            },
            Fake {
                best: 2.0,
                heldout: 2.5,
                gap: 1.0,
                curve: [5.0, 2.5],
            },
            Fake {
                best: 3.0,
                heldout: 3.0,
                gap: 1.5,
                curve: [6.0, 3.0],
            },
        ];
        let b = [
            Fake {
                best: 4.0,
                heldout: 1.0,
                gap: 0.0,
                curve: [4.0, 1.0],
            },
            Fake {
                best: 6.0,
                heldout: 1.5,
                gap: 0.0,
                curve: [4.0, 1.5],
            },
            Fake {
                best: 8.0,
                heldout: 3.5,
                gap: 3.0,
                curve: [4.0, 3.5],
            },
        ];
        for (name, fakes) in [("Connectome", &a), ("Shuffled", &b)] {
            for (s, f) in fakes.iter().enumerate() {
                write_run(&dir.join(format!("conditions/{name}/seed-{}", s + 1)), f);
            }
        }
        let json = r#"{"scenario": "demo", "conditions": [
            {"name": "Connectome", "from": null, "seeds": [1, 2, 3],
             "runs": ["conditions/Connectome/seed-1", "conditions/Connectome/seed-2",
                      "conditions/Connectome/seed-3"]},
            {"name": "Shuffled", "from": "outer", "seeds": [1, 2, 3, 4],
             "runs": ["conditions/Shuffled/seed-1", "conditions/Shuffled/seed-2",
                      "conditions/Shuffled/seed-3", "conditions/Shuffled/seed-4"]}
        ]}"#;
        std::fs::write(dir.join(CONDITIONS_FILE), json).unwrap();
    }

    /// The text with every run of spaces made one, for comparing lines.
    fn squeezed(text: &str) -> String {
        text.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    fn check_stat(s: Option<Stat>, mean: f64, se: f64, n: usize) {
        let s = s.expect("a statistic");
        assert!(close(s.mean, mean), "mean {} != {mean}", s.mean);
        assert!(close(s.se.unwrap(), se), "se {:?} != {se}", s.se);
        assert_eq!(s.n, n);
    }

    #[test]
    fn aggregates_match_hand_computation() {
        let tmp = tempfile::tempdir().unwrap();
        write_example(tmp.path());
        let r = Report::read(tmp.path(), None).unwrap();
        assert_eq!(
            r.metrics,
            [
                "fitness",
                "birth_heldout",
                "final_heldout",
                "mc:language/xent_gap"
            ]
        );
        let [a, b] = &r.conditions[..] else {
            panic!("two conditions")
        };
        assert_eq!((a.finished(), b.finished()), (3, 3));
        assert_eq!(b.runs[3].outcome, Outcome::NotRun);
        let s3 = 3f64.sqrt();
        // fitness: A = 1, 2, 3 (mean 2, sd 1); B = 4, 6, 8 (mean 6, sd 2).
        check_stat(a.stats[0], 2.0, 1.0 / s3, 3);
        check_stat(b.stats[0], 6.0, 2.0 / s3, 3);
        // birth_heldout: every run's organisms have 3 and 5 (the diverged
        // 7 still counts: its birth loss is finite), mean 5, sd 0.
        check_stat(a.stats[1], 5.0, 0.0, 3);
        // final_heldout: A = 2, 2.5, 3 (sd 0.5); B = 1, 1.5, 3.5 (mean 2,
        // deviations -1, -0.5, 1.5: sd = sqrt(3.5 / 2)).
        check_stat(a.stats[2], 2.5, 0.5 / s3, 3);
        check_stat(b.stats[2], 2.0, 1.75f64.sqrt() / s3, 3);
        // xent_gap: A = 0.5, 1, 1.5 (sd 0.5); B = 0, 0, 3 (mean 1, sd sqrt(3)).
        check_stat(a.stats[3], 1.0, 0.5 / s3, 3);
        check_stat(b.stats[3], 1.0, 1.0, 3);
        assert_eq!(a.values[0], [Some(1.0), Some(2.0), Some(3.0)]);
        assert_eq!(b.values[0], [Some(4.0), Some(6.0), Some(8.0), None]);

        // fitness: difference 4, se sqrt(1/3 + 4/3), pooled sd
        // sqrt((2 * 1 + 2 * 4) / 4) = sqrt(2.5), d = 4 / sqrt(2.5).
        let e = r.effects[0][0].unwrap();
        assert!(close(e.difference, 4.0));
        assert!(close(e.se.unwrap(), (5.0f64 / 3.0).sqrt()));
        assert!(close(e.d.unwrap(), 4.0 / 2.5f64.sqrt()));
        // birth_heldout: no difference and no spread: d is undefined.
        let e = r.effects[0][1].unwrap();
        assert_eq!((e.difference, e.se, e.d), (0.0, Some(0.0), None));
        // final_heldout: -0.5, se sqrt(0.25 / 3 + 1.75 / 3) = sqrt(2 / 3),
        // pooled sd sqrt((2 * 0.25 + 2 * 1.75) / 4) = 1, d = -0.5.
        let e = r.effects[0][2].unwrap();
        assert!(close(e.difference, -0.5));
        assert!(close(e.se.unwrap(), (2.0f64 / 3.0).sqrt()));
        assert!(close(e.d.unwrap(), -0.5));
        // xent_gap: 0, se sqrt(0.25 / 3 + 1), d 0.
        let e = r.effects[0][3].unwrap();
        assert!(close(e.se.unwrap(), (0.25f64 / 3.0 + 1.0).sqrt()));
        assert_eq!(e.d, Some(0.0));

        // The curves: step 5 has only a NaN, so it is left out; at step 0
        // the diverged organism counts. A at step 0: per run (c0 - 0.25 +
        // c0 + 0.25 + c0) / 3 = c0, so 4, 5, 6.
        let steps: Vec<u64> = a.curve.iter().map(|p| p.step).collect();
        assert_eq!(steps, [0, 10]);
        assert!(close(a.curve[0].mean, 5.0) && close(a.curve[0].se.unwrap(), 1.0 / s3));
        assert!(close(a.curve[1].mean, 2.5) && close(a.curve[1].se.unwrap(), 0.5 / s3));
        assert!(close(b.curve[0].mean, 4.0) && b.curve[0].se == Some(0.0));
        assert!(close(b.curve[1].mean, 2.0) && close(b.curve[1].se.unwrap(), 1.75f64.sqrt() / s3));
    }

    #[test]
    fn a_baseline_leads_and_effects_are_against_it() {
        let tmp = tempfile::tempdir().unwrap();
        write_example(tmp.path());
        let r = Report::read(tmp.path(), Some("Shuffled")).unwrap();
        assert_eq!(r.conditions[0].name, "Shuffled");
        assert_eq!(r.conditions[1].name, "Connectome");
        let fitness = r.metrics.iter().position(|m| m == "fitness").unwrap();
        let effect = r.effects[0][fitness].as_ref().unwrap();
        assert!(close(effect.difference, -4.0), "{effect:?}");
        let e = Report::read(tmp.path(), Some("Nope")).unwrap_err();
        assert!(e.contains("no condition `Nope`"), "{e}");
    }

    #[test]
    fn writes_the_report_files_and_plots() {
        let tmp = tempfile::tempdir().unwrap();
        write_example(tmp.path());
        let r = Report::read(tmp.path(), None).unwrap();
        let text = r.text(tmp.path());
        println!("{text}");
        assert!(
            text.contains("seed 4: conditions/Shuffled/seed-4 (not run)"),
            "{text}"
        );
        let lines = squeezed(&text);
        for line in [
            "condition n fitness birth_heldout final_heldout mc:language/xent_gap",
            "Connectome 3 2.000 ± 0.5774 5.000 ± 0.000 2.500 ± 0.2887 1.000 ± 0.2887",
            "Shuffled 3 6.000 ± 1.155 5.000 ± 0.000 2.000 ± 0.7638 1.000 ± 1.000",
            "fitness +4.000 ± 1.291 d=2.53",
            "birth_heldout 0.000 ± 0.000",
            "final_heldout -0.5000 ± 0.8165 d=-0.500",
            "mc:language/xent_gap 0.000 ± 1.041 d=0.00",
        ] {
            assert!(lines.contains(&format!("\n{line}\n")), "{line}\n{text}");
        }
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
        let written = r.write(tmp.path()).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "report.json",
                "report.csv",
                "report-curves.svg",
                "report-fitness.svg",
                "report-birth_heldout.svg",
                "report-final_heldout.svg",
                "report-mc-language-xent_gap.svg",
            ]
        );
        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(tmp.path().join(REPORT_JSON)).unwrap())
                .unwrap();
        let shuffled = &json["conditions"][1];
        assert_eq!(shuffled["from"], "outer");
        assert_eq!(shuffled["seeds"], json!([1, 2, 3, 4]));
        assert_eq!(shuffled["runs"][3]["status"], "not run");
        assert_eq!(shuffled["metrics"]["fitness"]["mean"], 6.0);
        assert_eq!(shuffled["metrics"]["fitness"]["n"], 3);
        assert_eq!(
            shuffled["metrics"]["fitness"]["values"],
            json!([4.0, 6.0, 8.0, null])
        );
        assert_eq!(shuffled["curve"]["steps"], json!([0, 10]));
        assert_eq!(json["effects"][0]["metric"], "fitness");
        assert_eq!(json["effects"][0]["difference"], 4.0);
        let csv = std::fs::read_to_string(tmp.path().join(REPORT_CSV)).unwrap();
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("condition,metric,mean,se,n"));
        assert_eq!(
            lines.next(),
            Some(format!("Connectome,fitness,2,{},3", 1.0 / 3f64.sqrt()).as_str())
        );
        assert_eq!(csv.lines().count(), 1 + 2 * 4);
        for name in &names[2..] {
            let svg = std::fs::read_to_string(tmp.path().join(name)).unwrap();
            assert!(svg.contains("<svg") && svg.contains("Shuffled"), "{name}");
        }
        let curves = std::fs::read_to_string(tmp.path().join(CURVES_SVG)).unwrap();
        assert!(curves.contains("<polyline") && curves.contains("<polygon"));
    }

    #[test]
    fn a_condition_without_finished_runs_has_n_zero() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write_run(
            &dir.join("a/1"),
            &Fake {
                best: 1.0,
                heldout: 2.0,
                gap: 0.0,
                curve: [1.0, 1.0],
            },
        );
        // Started but not finished: skipped like a missing run.
        let unfinished = dir.join("b/1");
        write_run(
            &unfinished,
            &Fake {
                best: 9.0,
                heldout: 9.0,
                gap: 9.0,
                curve: [9.0, 9.0],
            },
        );
        let text = std::fs::read_to_string(unfinished.join(MANIFEST)).unwrap();
        let mut m: Manifest = serde_json::from_str(&text).unwrap();
        m.finished = None;
        std::fs::write(
            unfinished.join(MANIFEST),
            serde_json::to_string(&m).unwrap(),
        )
        .unwrap();
        std::fs::write(
            dir.join(CONDITIONS_FILE),
            r#"{"scenario": "s", "conditions": [
                {"name": "A", "seeds": [1], "runs": ["a/1"]},
                {"name": "B", "from": null, "seeds": [1, 2], "runs": ["b/1", "b/2"]}]}"#,
        )
        .unwrap();
        let r = Report::read(dir, None).unwrap();
        let b = &r.conditions[1];
        assert_eq!(b.finished(), 0);
        assert_eq!(b.runs[0].outcome, Outcome::NotFinished);
        assert_eq!(b.runs[1].outcome, Outcome::NotRun);
        assert!(b.stats.iter().all(Option::is_none));
        // One seed: a mean without a standard error.
        let s = r.conditions[0].stats[0].unwrap();
        assert_eq!((s.mean, s.se, s.n), (1.0, None, 1));
        assert!(r.effects[0].iter().all(Option::is_none));
        let text = r.text(dir);
        assert!(
            text.contains("b/1 (not finished)") && text.contains("b/2 (not run)"),
            "{text}"
        );
        assert!(squeezed(&text).contains("\nB 0 - - - -\n"), "{text}");
        assert!(
            squeezed(&text).contains("\nA 1 1.000 5.000 2.000 0.000\n"),
            "{text}"
        );
        r.write(dir).unwrap();
        let csv = std::fs::read_to_string(dir.join(REPORT_CSV)).unwrap();
        assert!(csv.contains("\nB,fitness,,,0\n"), "{csv}");
    }

    #[test]
    fn bad_input_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join(CONDITIONS_FILE);
        for (json, expected) in [
            ("{", "is not a conditions index"),
            (r#"{"conditions": []}"#, "missing field `scenario`"),
            (r#"{"scenario": "s"}"#, "missing field `conditions`"),
            (
                r#"{"scenario": "s", "conditions": []}"#,
                "`conditions` is empty",
            ),
            (
                r#"{"scenario": "s", "conditions": [{"name": "A", "from": null, "seeds": [1]}]}"#,
                "missing field `runs`",
            ),
            (
                r#"{"scenario": "s", "conditions": [{"name": "A", "seeds": [1], "runs": []}]}"#,
                "0 runs for 1 seeds",
            ),
        ] {
            std::fs::write(&path, json).unwrap();
            let e = Report::read(dir, None).unwrap_err();
            assert!(
                e.starts_with(&path.display().to_string()) && e.contains(expected),
                "{json}: {e}"
            );
        }
        write_run(
            &dir.join("a"),
            &Fake {
                best: 1.0,
                heldout: 2.0,
                gap: 0.0,
                curve: [1.0, 1.0],
            },
        );
        std::fs::write(
            &path,
            r#"{"scenario": "s", "conditions": [{"name": "A", "seeds": [1], "runs": ["a"]}]}"#,
        )
        .unwrap();
        let metrics = dir.join("a").join(files::METRICS);
        std::fs::write(&metrics, "id,generation,suite,metric,value\n7,2,s,m,oops\n").unwrap();
        let e = Report::read(dir, None).unwrap_err();
        assert!(
            e.starts_with(&format!("{}:2: column `value`", metrics.display()))
                && e.contains("oops"),
            "{e}"
        );
        std::fs::write(&metrics, "id,generation,suite,metric,value\n7,2,s\n").unwrap();
        let e = Report::read(dir, None).unwrap_err();
        assert!(e.contains("3 fields, the header has 5"), "{e}");
    }

    #[test]
    fn seed_lists_shorten_runs() {
        assert_eq!(seed_list(&[1, 2, 3, 4, 7, 9, 10]), "1-4, 7, 9, 10");
        assert_eq!(seed_list(&[5]), "5");
        assert_eq!(seed_list(&[]), "");
    }

    #[test]
    fn significant_digits() {
        assert_eq!(significant(2.0, 4), "2.000");
        assert_eq!(significant(0.577350269, 4), "0.5774");
        assert_eq!(significant(9.99951, 4), "10.00");
        assert_eq!(significant(-1234.56, 4), "-1235");
        assert_eq!(significant(12345678.0, 4), "1.235e7");
        assert_eq!(significant(0.000012345, 4), "1.234e-5");
        assert_eq!(significant(0.0, 4), "0.000");
        assert_eq!(significant(-0.0, 1), "0");
    }

    #[test]
    fn wide_tables_come_in_blocks() {
        let data: Vec<Column> = (0..9)
            .map(|i| {
                Column::right(
                    &format!("metric-{i}-with-a-long-name"),
                    vec!["1.000".into()],
                )
            })
            .collect();
        let keys = [Column::left("condition", vec!["A".into()])];
        let text = blocks(&keys, &data);
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
        assert_eq!(
            text.lines().filter(|l| l.starts_with("condition")).count(),
            3,
            "{text}"
        );
        assert!(text.contains("metric-8-with-a-long-name"));
    }
}
