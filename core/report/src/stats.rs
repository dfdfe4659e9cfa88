//! Statistics over seeds: a condition's mean, standard deviation and
//! standard error per metric ([`Stat`]), its difference from the baseline
//! condition with Cohen's d and, seed by seed, the paired difference
//! ([`Effect`], [`Paired`]), its mean learning curve, and the [`Report`]
//! that holds them for every condition.
//!
//! Built on `read` (the records) and `genes` (gene tracks over generations).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use crate::error::ReportError;
use crate::genes::{GeneTrack, tracks};
use crate::learned::Learned;
use crate::read::{Index, Outcome, ProbeTrack, read_genes, read_probes, read_run};

pub use crate::mean::Mean;
pub use crate::paired::Paired;

/// Mean, standard error, median, range and n of one metric over seeds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    /// The mean.
    pub mean: f64,
    /// Sample standard deviation (n - 1); `None` when n < 2.
    pub sd: Option<f64>,
    /// `sd / sqrt(n)`; `None` when n < 2.
    pub se: Option<f64>,
    /// How many values.
    pub n: usize,
    /// The median (the mean of the middle two for an even n).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

impl Stat {
    /// The statistics of `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Stat> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = (n >= 2).then(|| {
            let ss: f64 = values.iter().map(|x| (x - mean) * (x - mean)).sum();
            (ss / (n - 1) as f64).sqrt()
        });
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Stat {
            mean,
            sd,
            se: sd.map(|sd| sd / (n as f64).sqrt()),
            n,
            median: 0.5 * (sorted[(n - 1) / 2] + sorted[n / 2]),
            min: sorted[0],
            max: sorted[n - 1],
        })
    }
}

/// One condition's difference from the baseline in one metric.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Effect {
    /// This condition's mean minus the baseline's.
    pub difference: f64,
    /// `sqrt(se_baseline^2 + se_this^2)`, when both have n >= 2.
    pub se: Option<f64>,
    /// Cohen's d with the pooled standard deviation, when both have n >= 2
    /// and the pooled deviation is not zero.
    pub d: Option<f64>,
    /// The comparison seed by seed, over the seeds both conditions ran
    /// (set by [`Report::aggregate`]; `None` when they share none).
    pub paired: Option<Paired>,
}

impl Effect {
    /// The effect of `b` against the baseline `a`.
    pub fn of(a: &Stat, b: &Stat) -> Effect {
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
        Effect {
            difference,
            se,
            d,
            paired: None,
        }
    }
}

/// One point of a condition's mean learning curve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurvePoint {
    /// The lifetime step.
    pub step: u64,
    /// Mean over seeds of each run's mean held-out loss at this step.
    pub mean: f64,
    /// Its standard error; `None` with fewer than two seeds.
    pub se: Option<f64>,
    /// Seeds with a value at this step.
    pub n: usize,
}

/// One seed of a condition: where its run is and what it gave.
#[derive(Clone, Debug)]
pub struct SeedRun {
    /// The seed.
    pub seed: u64,
    /// The run directory, relative to the experiment's.
    pub path: String,
    /// What the run gave.
    pub outcome: Outcome,
}

/// A condition aggregated over its seeds.
#[derive(Clone, Debug)]
pub struct ConditionReport {
    /// Its name.
    pub name: String,
    /// The condition it starts from.
    pub from: Option<String>,
    /// Its seeds' runs.
    pub runs: Vec<SeedRun>,
    /// Per metric (in [`Report::metrics`] order), the value of each seed.
    pub values: Vec<Vec<Option<f64>>>,
    /// Per metric, the statistics over the seeds that have a value.
    pub stats: Vec<Option<Stat>>,
    /// The mean learning curve over seeds.
    pub curve: Vec<CurvePoint>,
    /// Each real gene's distribution over generations, pooled over seeds
    /// (empty without real genes).
    pub genes: Vec<GeneTrack>,
    /// The probe sets along the lifetime (last generation), the mean over
    /// seeds of each seed's mean over organisms (empty without probes).
    pub probes: Vec<ProbeTrack>,
    /// The same, seed by seed (finished runs with probes, in seed order):
    /// the spread the plot shows around the mean.
    pub probe_seeds: Vec<Vec<ProbeTrack>>,
    /// Finished runs that did not meet [`Report::learned`]: their seed and
    /// their value of its metric (none: no value, e.g. a diverged
    /// lifetime). They are left out of every statistic above.
    pub unlearned: Vec<(u64, Option<f64>)>,
}

impl ConditionReport {
    /// Runs that finished.
    pub fn finished(&self) -> usize {
        self.runs
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Finished(_)))
            .count()
    }

    /// Its name with where it comes from.
    pub fn label(&self) -> String {
        match &self.from {
            Some(from) => format!("{} (from {from})", self.name),
            None => self.name.clone(),
        }
    }
}

/// The conditions of an experiment compared over seeds.
#[derive(Clone, Debug)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// Metric names: objectives, held-out losses, suite metrics, in the
    /// order first found.
    pub metrics: Vec<String>,
    /// The conditions, the baseline first.
    pub conditions: Vec<ConditionReport>,
    /// `effects[c - 1][m]`: condition c against the first, in metric m.
    pub effects: Vec<Vec<Option<Effect>>>,
    /// The criterion runs had to meet to count (`--learned`).
    pub learned: Option<Learned>,
}

impl Report {
    /// Reads `conditions.json` in `dir` and every run it names. Effects
    /// are against `baseline` (default: the first condition), which then
    /// leads the conditions. With `learned`, runs that do not meet it are
    /// listed apart and counted nowhere else.
    pub fn read(
        dir: &Path,
        baseline: Option<&str>,
        learned: Option<&Learned>,
    ) -> Result<Report, ReportError> {
        let mut spec = Index::read(dir)?;
        if let Some(name) = baseline {
            let Some(at) = spec.conditions.iter().position(|c| c.name == name) else {
                return Err(ReportError::NoSuchCondition {
                    name: name.to_owned(),
                    conditions: spec.conditions.iter().map(|c| c.name.clone()).collect(),
                });
            };
            let first = spec.conditions.remove(at);
            spec.conditions.insert(0, first);
        }
        let mut runs = Vec::with_capacity(spec.conditions.len());
        let mut probes = Vec::with_capacity(spec.conditions.len());
        for c in &spec.conditions {
            let mut seeds = Vec::with_capacity(c.seeds.len());
            let mut tracks = Vec::new();
            for (&seed, path) in c.seeds.iter().zip(&c.runs) {
                let mut outcome = read_run(&dir.join(path))?;
                if let Outcome::Finished(v) = &mut outcome
                    && let Some(p) = read_probes(&dir.join(path))?
                {
                    v.values.extend(probe_summary(&p));
                    tracks.push((seed, p));
                }
                seeds.push(SeedRun {
                    seed,
                    path: path.clone(),
                    outcome,
                });
            }
            runs.push(seeds);
            probes.push(tracks);
        }
        let mut report = Report::aggregate_with(spec, runs, learned)?;
        for (c, seeds) in report.conditions.iter_mut().zip(probes) {
            let counted = |r: &SeedRun| {
                matches!(r.outcome, Outcome::Finished(_))
                    && !c.unlearned.iter().any(|&(seed, _)| seed == r.seed)
            };
            let mut tables = Vec::new();
            for r in c.runs.iter().filter(|r| counted(r)) {
                if let Some(t) = read_genes(&dir.join(&r.path))? {
                    tables.push(t);
                }
            }
            let seeds: Vec<Vec<ProbeTrack>> = seeds
                .into_iter()
                .filter(|(seed, _)| !c.unlearned.iter().any(|(s, _)| s == seed))
                .map(|(_, t)| t)
                .collect();
            c.genes = tracks(&tables);
            c.probes = mean_tracks(&seeds);
            c.probe_seeds = seeds;
        }
        Ok(report)
    }

    /// Aggregates the runs (`runs[c]`: condition c's seeds).
    pub fn aggregate(spec: Index, runs: Vec<Vec<SeedRun>>) -> Report {
        Report::aggregate_with(spec, runs, None).expect("no criterion, no error")
    }

    /// Aggregates the runs (`runs[c]`: condition c's seeds), leaving out
    /// finished runs that do not meet `learned`; an error when `learned`
    /// names a metric no run has.
    pub fn aggregate_with(
        spec: Index,
        runs: Vec<Vec<SeedRun>>,
        learned: Option<&Learned>,
    ) -> Result<Report, ReportError> {
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
        let criterion = match learned {
            None => None,
            Some(l) => match metrics.iter().position(|m| *m == l.metric) {
                Some(k) => Some((l, k)),
                None => {
                    return Err(ReportError::NoSuchMetric {
                        name: l.metric.clone(),
                        metrics,
                    });
                }
            },
        };
        let conditions: Vec<ConditionReport> = spec
            .conditions
            .into_iter()
            .zip(runs)
            .map(|(c, runs)| {
                let mut values: Vec<Vec<Option<f64>>> = metrics
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
                let mut unlearned = Vec::new();
                if let Some((l, k)) = criterion {
                    for (r, run) in runs.iter().enumerate() {
                        if matches!(run.outcome, Outcome::Finished(_)) && !l.holds(values[k][r]) {
                            unlearned.push((run.seed, values[k][r]));
                            for v in values.iter_mut() {
                                v[r] = None;
                            }
                        }
                    }
                }
                let stats = values
                    .iter()
                    .map(|seeds| Stat::of(&seeds.iter().flatten().copied().collect::<Vec<_>>()))
                    .collect();
                let mut steps: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
                for r in &runs {
                    if let Outcome::Finished(v) = &r.outcome
                        && !unlearned.iter().any(|&(seed, _)| seed == r.seed)
                    {
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
                    genes: Vec::new(),
                    probes: Vec::new(),
                    probe_seeds: Vec::new(),
                    unlearned,
                }
            })
            .collect();
        let effects = conditions
            .iter()
            .skip(1)
            .map(|c| {
                (0..metrics.len())
                    .map(|m| match (&conditions[0].stats[m], &c.stats[m]) {
                        (Some(a), Some(b)) => Some(Effect {
                            paired: Paired::of(&seed_pairs(&conditions[0], c, m)),
                            ..Effect::of(a, b)
                        }),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        Ok(Report {
            scenario: spec.scenario,
            metrics,
            conditions,
            effects,
            learned: learned.cloned(),
        })
    }
}

/// `(baseline, condition)` values of metric `m` for every seed both have a
/// value for, in the condition's seed order.
fn seed_pairs(baseline: &ConditionReport, c: &ConditionReport, m: usize) -> Vec<(f64, f64)> {
    c.runs
        .iter()
        .zip(&c.values[m])
        .filter_map(|(run, &value)| {
            let at = baseline.runs.iter().position(|b| b.seed == run.seed)?;
            Some((baseline.values[m][at]?, value?))
        })
        .collect()
}

/// One run's probe sets summarised as metrics: for each set's accuracy
/// (over its choices), `<set>.final` (at the lifetime's end) and
/// `<set>.peak` (the best along the lifetime), each the mean over the last
/// generation's organisms. Their difference is how transient what the set
/// measures was (in-context learning can emerge and then fade).
pub fn probe_summary(tracks: &[ProbeTrack]) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for t in tracks.iter().filter(|t| t.metric == "accuracy") {
        let Some(&(_, last)) = t.points.last() else {
            continue;
        };
        let peak = t
            .points
            .iter()
            .map(|&(_, v)| v)
            .fold(f64::NEG_INFINITY, f64::max);
        out.push((format!("{}.final", t.probe), last));
        out.push((format!("{}.peak", t.probe), peak));
    }
    out
}

/// The mean over seeds of each (probe, metric) track, step by step.
pub fn mean_tracks(seeds: &[Vec<ProbeTrack>]) -> Vec<ProbeTrack> {
    let mut out: Vec<(ProbeTrack, BTreeMap<u64, Mean>)> = Vec::new();
    for t in seeds.iter().flatten() {
        let at = match out
            .iter()
            .position(|(o, _)| o.probe == t.probe && o.metric == t.metric)
        {
            Some(at) => at,
            None => {
                out.push((
                    ProbeTrack {
                        probe: t.probe.clone(),
                        metric: t.metric.clone(),
                        points: Vec::new(),
                    },
                    BTreeMap::new(),
                ));
                out.len() - 1
            }
        };
        for &(step, v) in &t.points {
            out[at].1.entry(step).or_default().add(v);
        }
    }
    out.into_iter()
        .map(|(mut t, steps)| {
            t.points = steps
                .into_iter()
                .filter_map(|(s, m)| m.value().map(|v| (s, v)))
                .collect();
            t
        })
        .collect()
}
