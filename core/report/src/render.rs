//! Reports as text: a run's summary table (printed by `run`, `inspect` and
//! `report`) and the conditions report's tables (means, medians, effects,
//! paired comparisons, genes). The report's files are `write.rs`'s.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::ReportError;
use crate::read::{Generations, Manifest, Outcome};
use crate::stats::{ConditionReport, Effect, Report, Stat};

/// The printed tables stay within this many columns.
pub const WIDTH: usize = 100;
/// Significant digits of the printed means, standard errors and differences.
const DIGITS: usize = 4;

/// A run's summary: manifest facts, a table of generations (at most a
/// dozen rows, evenly spaced, always the last) and the best values.
pub fn summary(dir: &Path) -> Result<String, ReportError> {
    let manifest = Manifest::read(dir)?;
    let g = Generations::read(dir)?;
    Ok(summary_text(dir, &manifest, &g))
}

fn summary_text(dir: &Path, manifest: &Manifest, g: &Generations) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "run:          {}", dir.display());
    let _ = writeln!(
        out,
        "scenario:     {} (seed {}, sha256 {})",
        manifest.scenario,
        manifest.seed,
        manifest
            .scenario_sha256
            .get(..12)
            .unwrap_or(&manifest.scenario_sha256)
    );
    let _ = writeln!(
        out,
        "lineage:      {}{} on {}",
        manifest.lineage_version,
        manifest
            .git_commit
            .as_deref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default(),
        manifest.host
    );
    for p in &manifest.plugins {
        let _ = writeln!(
            out,
            "plugin:       {} = {} {} (ABI {}), {} (sha256 {})",
            p.alias,
            p.name,
            p.version,
            p.abi_version,
            p.path.display(),
            p.sha256.get(..12).unwrap_or(&p.sha256)
        );
        for r in &p.replaced {
            let _ = writeln!(
                out,
                "              replacing sha256 {} from generation {} on (resumed with --accept-changed-plugins)",
                r.sha256.get(..12).unwrap_or(&r.sha256),
                r.until_generation
            );
        }
    }
    let _ = writeln!(out, "started:      {}", manifest.started);
    let _ = writeln!(
        out,
        "finished:     {}",
        manifest.finished.as_deref().unwrap_or("(not finished)")
    );
    let stopped = match manifest.stop_reason() {
        Some(r) => format!(" (stopped early: {r})"),
        None => String::new(),
    };
    let _ = writeln!(out, "generations:  {}{stopped}", g.rows.len());
    if g.rows.is_empty() {
        return out;
    }
    let objectives = g.objectives();
    let mut columns = vec!["generation".to_owned(), "population".to_owned()];
    for o in &objectives {
        for s in ["best", "best_rescored", "mean", "median", "worst"] {
            columns.push(format!("{o}_{s}"));
        }
    }
    columns.push("diversity".into());
    // Columns the file lacks are left out, with their titles.
    let shown: Vec<(&String, usize)> = columns
        .iter()
        .filter_map(|c| Some((c, g.column(c)?)))
        .collect();
    out.push('\n');
    for (c, _) in &shown {
        let w = c.len().max(10);
        let _ = write!(out, "{c:>w$}  ");
    }
    out.push('\n');
    let n = g.rows.len();
    let step = n.div_ceil(12).max(1);
    for i in (0..n).filter(|i| i % step == 0 || *i == n - 1) {
        for (c, k) in &shown {
            let w = c.len().max(10);
            let _ = write!(out, "{:>w$}  ", number(g.rows[i][*k]));
        }
        out.push('\n');
    }
    out.push('\n');
    for o in &objectives {
        let (Some(k), Some(worst)) = (
            g.column(&format!("{o}_best")),
            g.column(&format!("{o}_worst")),
        ) else {
            continue;
        };
        // The best column is already direction-aware; compare against the
        // worst column to learn the direction.
        let maximize = g.rows.iter().any(|r| r[k] > r[worst]);
        let best = (0..n).filter(|&i| !g.rows[i][k].is_nan()).max_by(|&a, &b| {
            let (a, b) = (g.rows[a][k], g.rows[b][k]);
            if maximize {
                a.total_cmp(&b)
            } else {
                b.total_cmp(&a)
            }
        });
        if let Some(i) = best {
            // `[evaluate] rescore_best`: the same organism on fresh data.
            let again = g
                .column(&format!("{o}_best_rescored"))
                .map(|r| g.rows[i][r])
                .filter(|v| !v.is_nan())
                .map_or(String::new(), |v| {
                    format!(", {} on fresh held-out data", number(v))
                });
            let _ = writeln!(
                out,
                "best {o}: {} (generation {}{again})",
                number(g.rows[i][k]),
                g.generation(i)
            );
        }
    }
    out
}

/// A number in at most 10 characters.
pub fn number(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x == x.trunc() && x.abs() < 1e9 {
        format!("{x:.0}")
    } else if x.abs() >= 1e4 || x.abs() < 1e-3 {
        format!("{x:.3e}")
    } else {
        format!("{x:.4}")
    }
}

/// `x` with `digits` significant digits: fixed notation for magnitudes from
/// 1e-4 up to 1e6, scientific (`1.235e7`) beyond; `-` for NaN.
pub fn significant(x: f64, digits: usize) -> String {
    if x.is_nan() {
        return "-".into();
    }
    let digits = digits.max(1);
    if x.is_infinite() {
        return format!("{x}");
    }
    if x == 0.0 {
        return format!("{:.*}", digits - 1, 0.0);
    }
    // Rounding may carry into the next power of ten (9.9996 → 1.000e1), so
    // the exponent is read from the rounded number.
    let sci = format!("{:.*e}", digits - 1, x);
    let exponent: i32 = sci
        .rsplit('e')
        .next()
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    if (-4..6).contains(&exponent) {
        let decimals = (digits as i32 - 1 - exponent).max(0) as usize;
        format!("{x:.decimals$}")
    } else {
        sci
    }
}

impl Report {
    /// The printed report: the runs, the table of means and the effects.
    pub fn text(&self, dir: &Path) -> String {
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
            .map(|c| c.label().chars().count())
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
                c.label(),
                seed_list(&seeds),
                c.finished(),
                c.runs.len()
            );
            for r in &c.runs {
                let why = match r.outcome {
                    Outcome::NotRun => "not run".to_owned(),
                    Outcome::NotFinished => "not finished".to_owned(),
                    Outcome::Finished(_) => {
                        match (&self.learned, c.unlearned.iter().find(|u| u.0 == r.seed)) {
                            (Some(l), Some(&(_, value))) => format!(
                                "did not learn: {} = {}",
                                l.metric,
                                value.map_or(
                                    "none (no value: its lifetime diverged?)".into(),
                                    |v| { significant(v, DIGITS) }
                                )
                            ),
                            _ => continue,
                        }
                    }
                };
                let _ = writeln!(
                    out,
                    "  {:<name_width$}    seed {}: {} ({why})",
                    "", r.seed, r.path
                );
            }
        }
        if let Some(l) = &self.learned {
            let left: usize = self.conditions.iter().map(|c| c.unlearned.len()).sum();
            let _ = writeln!(
                out,
                "\nruns counted: those with {l}; {left} that did not learn are listed above and left out of every table"
            );
        }
        if self.metrics.is_empty() {
            out.push_str("\nno metrics: no finished run\n");
            return out;
        }
        out.push('\n');
        out.push_str(&self.means_table());
        out.push('\n');
        out.push_str(&self.medians_table());
        out.push('\n');
        out.push_str(&self.effects_table());
        if self
            .effects
            .iter()
            .flatten()
            .flatten()
            .any(|e| e.paired.is_some())
        {
            out.push('\n');
            out.push_str(&self.paired_table());
        }
        if self
            .conditions
            .iter()
            .any(|c| crate::genes::moves(&c.genes))
        {
            out.push('\n');
            out.push_str(&self.genes_table());
        }
        out
    }

    /// Rows: conditions; columns: genes, as `median [q1, q3]` over seeds
    /// of each seed's median in the last generation (over organisms, for
    /// a condition of one seed).
    fn genes_table(&self) -> String {
        let mut names: Vec<&str> = Vec::new();
        for c in &self.conditions {
            for t in &c.genes {
                if !names.contains(&t.name.as_str()) {
                    names.push(&t.name);
                }
            }
        }
        let keys = [Column::left(
            "condition",
            self.conditions.iter().map(|c| c.name.clone()).collect(),
        )];
        let data: Vec<Column> = names
            .iter()
            .map(|&name| Column {
                title: name.into(),
                left: false,
                cells: self
                    .conditions
                    .iter()
                    .map(|c| {
                        let last = c
                            .genes
                            .iter()
                            .find(|t| t.name == name)
                            .and_then(|t| t.points.last());
                        match last {
                            None => vec!["-".into()],
                            Some(q) => vec![
                                significant(q.median, DIGITS),
                                format!(
                                    " [{}, {}]",
                                    significant(q.q1, DIGITS),
                                    significant(q.q3, DIGITS)
                                ),
                            ],
                        }
                    })
                    .collect(),
            })
            .collect();
        let mut out = String::from(
            "genes in the last generation: median [quartiles] of each seed's population median \
             (of the organisms\nfor a single seed)\n",
        );
        out.push_str(&blocks(&keys, &data));
        out
    }

    /// Rows: conditions (with their finished runs); columns: metrics, each
    /// cell `cell(condition, stat)` (`-` where there is none).
    fn by_condition(&self, cell: impl Fn(&ConditionReport, &Stat) -> Vec<String>) -> String {
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
                    .map(|c| match &c.stats[m] {
                        None => vec!["-".into()],
                        Some(s) => cell(c, s),
                    })
                    .collect(),
            })
            .collect();
        blocks(&keys, &data)
    }

    /// Rows: conditions; columns: metrics, as `mean ± se`.
    fn means_table(&self) -> String {
        let mut out = String::from("mean ± standard error over seeds (n: finished runs)\n");
        out.push_str(&self.by_condition(|c, s| {
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
        }));
        out
    }

    /// Rows: conditions; columns: metrics, as `median [min, max]`: what
    /// one seed far from the others does to a mean shows here.
    fn medians_table(&self) -> String {
        let mut out = String::from("median over seeds [smallest, largest]\n");
        out.push_str(&self.by_condition(|_, s| {
            vec![
                significant(s.median, DIGITS),
                format!(
                    " [{}, {}]",
                    significant(s.min, DIGITS),
                    significant(s.max, DIGITS)
                ),
            ]
        }));
        out
    }

    /// Rows: metrics; columns: conditions after the first, each cell
    /// `cell(effect)` (`-` where there is none).
    fn against_baseline(&self, cell: impl Fn(&Effect) -> Option<Vec<String>>) -> String {
        let keys = [Column::left("metric", self.metrics.clone())];
        let data: Vec<Column> = self.conditions[1..]
            .iter()
            .zip(&self.effects)
            .map(|(c, effects)| Column {
                title: c.name.clone(),
                left: false,
                cells: effects
                    .iter()
                    .map(|e| {
                        e.as_ref()
                            .and_then(&cell)
                            .unwrap_or_else(|| vec!["-".into()])
                    })
                    .collect(),
            })
            .collect();
        blocks(&keys, &data)
    }

    /// `+x ± se`: a difference and its standard error.
    fn difference(mean: f64, se: Option<f64>) -> [String; 2] {
        let sign = if mean > 0.0 { "+" } else { "" };
        [
            format!("{sign}{}", significant(mean, DIGITS)),
            se.map_or(String::new(), |se| {
                format!(" ± {}", significant(se, DIGITS))
            }),
        ]
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
        let mut out = format!(
            "effects against {}: difference of means ± se, Cohen's d (pooled sd)\n",
            first.name
        );
        out.push_str(&self.against_baseline(|e| {
            let mut cell = Vec::from(Self::difference(e.difference, e.se));
            cell.push(e.d.map_or(String::new(), |d| format!("  d={}", significant(d, 3))));
            Some(cell)
        }));
        out
    }

    /// Rows: metrics; columns: conditions after the first, each against
    /// the first seed by seed, as `difference ± se  [95% CI]  higher/n`.
    fn paired_table(&self) -> String {
        let data = self.against_baseline(|e| {
            let p = e.paired?;
            let mut cell = Vec::from(Self::difference(p.mean, p.se));
            cell.push(p.ci.map_or(String::new(), |(lo, hi)| {
                format!(
                    "  [{}, {}]",
                    significant(lo, DIGITS),
                    significant(hi, DIGITS)
                )
            }));
            cell.push(format!("  {}/{}", p.higher, p.n));
            Some(cell)
        });
        let mut out = format!(
            "paired by seed against {} (conditions share seeds): mean of the per-seed\n\
             differences ± se, 95% CI (Student t), seeds where higher / seeds paired\n",
            self.conditions[0].name
        );
        out.push_str(&data);
        out
    }
}

/// Seeds as a list, runs of three or more consecutive seeds as ranges:
/// `1-10, 12`.
pub fn seed_list(seeds: &[u64]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
