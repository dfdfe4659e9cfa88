//! The conditions report as files: `report.csv` and `report-seeds.csv`
//! (csv writer) and `report.json` (serde structures; keys in field order,
//! the per-metric object in the report's metric order). [`Report::write`]
//! puts them in the run directory; the printed tables are `render.rs`'s.

use serde::Serialize;

use crate::read::Outcome;
use crate::stats::Report;

impl Report {
    /// `report.csv`: `condition,metric,mean,se,n,median`, then the paired
    /// comparison with the baseline (`paired_difference`, `paired_se`,
    /// `paired_ci_low`, `paired_ci_high`, `paired_n`, `paired_higher`; empty
    /// for the baseline), one row per condition and metric; an undefined
    /// value is an empty field.
    pub fn csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let opt = |x: Option<f64>| x.map_or(String::new(), |x| x.to_string());
        // Writing into memory cannot fail.
        let _ = w.write_record([
            "condition",
            "metric",
            "mean",
            "se",
            "n",
            "median",
            "paired_difference",
            "paired_se",
            "paired_ci_low",
            "paired_ci_high",
            "paired_n",
            "paired_higher",
        ]);
        for (i, c) in self.conditions.iter().enumerate() {
            for (m, name) in self.metrics.iter().enumerate() {
                let s = c.stats[m];
                let p = i
                    .checked_sub(1)
                    .and_then(|e| self.effects[e][m])
                    .and_then(|e| e.paired);
                let _ = w.write_record([
                    c.name.clone(),
                    name.clone(),
                    opt(s.map(|s| s.mean)),
                    opt(s.and_then(|s| s.se)),
                    s.map_or(0, |s| s.n).to_string(),
                    opt(s.map(|s| s.median)),
                    opt(p.map(|p| p.mean)),
                    opt(p.and_then(|p| p.se)),
                    opt(p.and_then(|p| p.ci).map(|ci| ci.0)),
                    opt(p.and_then(|p| p.ci).map(|ci| ci.1)),
                    p.map_or(String::new(), |p| p.n.to_string()),
                    p.map_or(String::new(), |p| p.higher.to_string()),
                ]);
            }
        }
        let bytes = w.into_inner().unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// `report-seeds.csv`: `condition,seed,metric,value,counted`, one row
    /// per condition, seed and metric of every finished run, so that
    /// every plotted or tabulated number can be checked against the
    /// values it comes from. `counted` is false for a run `--learned` left
    /// out (its value is then the criterion metric's, or empty).
    pub fn seeds_csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let _ = w.write_record(["condition", "seed", "metric", "value", "counted"]);
        for c in &self.conditions {
            for (r, run) in c.runs.iter().enumerate() {
                if let Some(&(_, value)) = c.unlearned.iter().find(|u| u.0 == run.seed) {
                    let metric = self.learned.as_ref().map_or("", |l| l.metric.as_str());
                    let _ = w.write_record([
                        c.name.clone(),
                        run.seed.to_string(),
                        metric.to_owned(),
                        value.map_or(String::new(), |v| v.to_string()),
                        "false".into(),
                    ]);
                    continue;
                }
                for (m, name) in self.metrics.iter().enumerate() {
                    if let Some(v) = c.values[m][r] {
                        let _ = w.write_record([
                            c.name.clone(),
                            run.seed.to_string(),
                            name.clone(),
                            v.to_string(),
                            "true".into(),
                        ]);
                    }
                }
            }
        }
        let bytes = w.into_inner().unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// `report.json`, pretty-printed by serde_json.
    pub fn json(&self) -> String {
        let json = ReportJson {
            scenario: &self.scenario,
            learned: self.learned.as_ref().map(ToString::to_string),
            metrics: &self.metrics,
            conditions: self.conditions_json(),
            effects: self.effects_json(),
        };
        // Plain structures of strings and numbers always serialise.
        serde_json::to_string_pretty(&json).unwrap_or_default() + "\n"
    }

    fn conditions_json(&self) -> Vec<ConditionJson<'_>> {
        self.conditions
            .iter()
            .map(|c| ConditionJson {
                name: &c.name,
                from: c.from.as_deref(),
                seeds: c.runs.iter().map(|r| r.seed).collect(),
                finished: c.finished(),
                unlearned: c
                    .unlearned
                    .iter()
                    .map(|&(seed, value)| UnlearnedJson { seed, value })
                    .collect(),
                runs: c
                    .runs
                    .iter()
                    .map(|r| {
                        let (status, generation) = match &r.outcome {
                            Outcome::NotRun => ("not run", None),
                            Outcome::NotFinished => ("not finished", None),
                            Outcome::Finished(v) => ("finished", Some(v.generation)),
                        };
                        RunJson {
                            seed: r.seed,
                            path: &r.path,
                            status,
                            generation,
                        }
                    })
                    .collect(),
                metrics: Ordered(
                    self.metrics
                        .iter()
                        .enumerate()
                        .map(|(m, name)| {
                            let s = c.stats[m];
                            let metric = MetricJson {
                                mean: s.map(|s| s.mean),
                                se: s.and_then(|s| s.se),
                                sd: s.and_then(|s| s.sd),
                                n: s.map_or(0, |s| s.n),
                                median: s.map(|s| s.median),
                                values: c.values[m].clone(),
                            };
                            (name.as_str(), metric)
                        })
                        .collect(),
                ),
                curve: CurveJson {
                    steps: c.curve.iter().map(|p| p.step).collect(),
                    mean: c.curve.iter().map(|p| p.mean).collect(),
                    se: c.curve.iter().map(|p| p.se).collect(),
                    n: c.curve.iter().map(|p| p.n).collect(),
                },
            })
            .collect()
    }

    fn effects_json(&self) -> Vec<EffectJson<'_>> {
        let mut effects = Vec::new();
        for (c, row) in self.conditions.iter().skip(1).zip(&self.effects) {
            for (metric, e) in self.metrics.iter().zip(row) {
                effects.push(EffectJson {
                    condition: &c.name,
                    baseline: &self.conditions[0].name,
                    metric,
                    difference: e.map(|e| e.difference),
                    se: e.and_then(|e| e.se),
                    d: e.and_then(|e| e.d),
                    paired: e.and_then(|e| e.paired).map(|p| PairedJson {
                        difference: p.mean,
                        se: p.se,
                        ci: p.ci.map(|(lo, hi)| [lo, hi]),
                        n: p.n,
                        higher: p.higher,
                        lower: p.lower,
                    }),
                });
            }
        }
        effects
    }
}

/// `report.json`. Keys come in field order; a value that is undefined
/// (`se` with one seed, `d` without spread) is `null`.
#[derive(Serialize)]
struct ReportJson<'a> {
    scenario: &'a str,
    /// The criterion runs had to meet to count (`null`: every finished run).
    learned: Option<String>,
    metrics: &'a [String],
    conditions: Vec<ConditionJson<'a>>,
    effects: Vec<EffectJson<'a>>,
}

/// One condition in `report.json`.
#[derive(Serialize)]
struct ConditionJson<'a> {
    name: &'a str,
    from: Option<&'a str>,
    seeds: Vec<u64>,
    finished: usize,
    runs: Vec<RunJson<'a>>,
    /// Finished runs left out by `learned`, with their value of its metric.
    unlearned: Vec<UnlearnedJson>,
    /// By metric name, in the report's metric order.
    metrics: Ordered<'a, MetricJson>,
    curve: CurveJson,
}

/// A run that did not learn, in `report.json`.
#[derive(Serialize)]
struct UnlearnedJson {
    seed: u64,
    value: Option<f64>,
}

/// One seed's run in `report.json`.
#[derive(Serialize)]
struct RunJson<'a> {
    seed: u64,
    path: &'a str,
    status: &'static str,
    generation: Option<u64>,
}

/// One metric of a condition in `report.json`.
#[derive(Serialize)]
struct MetricJson {
    mean: Option<f64>,
    se: Option<f64>,
    sd: Option<f64>,
    n: usize,
    median: Option<f64>,
    /// Each seed's value (`null`: no value).
    values: Vec<Option<f64>>,
}

/// A condition's mean learning curve in `report.json`, as columns.
#[derive(Serialize)]
struct CurveJson {
    steps: Vec<u64>,
    mean: Vec<f64>,
    se: Vec<Option<f64>>,
    n: Vec<usize>,
}

/// One condition's effect in one metric in `report.json`.
#[derive(Serialize)]
struct EffectJson<'a> {
    condition: &'a str,
    baseline: &'a str,
    metric: &'a str,
    difference: Option<f64>,
    se: Option<f64>,
    d: Option<f64>,
    /// Seed by seed, over the seeds both ran (`null`: none shared).
    paired: Option<PairedJson>,
}

/// A paired comparison in `report.json`: the mean of the per-seed
/// differences, its standard error and 95% interval, and the sign count.
#[derive(Serialize)]
struct PairedJson {
    difference: f64,
    se: Option<f64>,
    ci: Option<[f64; 2]>,
    n: usize,
    higher: usize,
    lower: usize,
}

/// A JSON object whose keys keep the order given. (serde_json's own maps
/// would sort them unless its `preserve_order` feature were on, and that
/// feature, unified across the binary, would reorder other crates' JSON.)
struct Ordered<'a, T>(Vec<(&'a str, T)>);

impl<T: Serialize> Serialize for Ordered<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}
