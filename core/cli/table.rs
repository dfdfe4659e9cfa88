//! The summary table printed by `run`, `inspect` and `report`.

use std::fmt::Write as _;
use std::path::Path;

use lineage_engine::manifest::Manifest;
use lineage_engine::recorder::files;

/// `generations.csv` as columns of numbers.
pub struct Generations {
    /// Column names.
    pub header: Vec<String>,
    /// Rows of values.
    pub rows: Vec<Vec<f64>>,
}

impl Generations {
    /// Reads `dir/generations.csv`.
    pub fn read(dir: &Path) -> Result<Generations, String> {
        let path = dir.join(files::GENERATIONS);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .ok_or_else(|| format!("{} is empty", path.display()))?
            .split(',')
            .map(str::to_owned)
            .collect();
        let rows = lines
            .enumerate()
            .map(|(i, line)| {
                line.split(',')
                    .map(|v| v.parse::<f64>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("{}:{}: {e}", path.display(), i + 2))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Generations { header, rows })
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
}

/// The run's summary: manifest facts, a table of generations (at most a
/// dozen rows, evenly spaced, always the last) and the best values.
pub fn summary(dir: &Path) -> Result<String, String> {
    let manifest = Manifest::read(dir).map_err(|e| e.to_string())?;
    let g = Generations::read(dir)?;
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
    }
    let _ = writeln!(out, "started:      {}", manifest.started);
    let _ = writeln!(
        out,
        "finished:     {}",
        manifest.finished.as_deref().unwrap_or("(not finished)")
    );
    let stopped = match manifest.stop_reason {
        Some(r) => format!(" (stopped early: {r})"),
        None => String::new(),
    };
    let _ = writeln!(out, "generations:  {}{stopped}", g.rows.len());
    if g.rows.is_empty() {
        return Ok(out);
    }
    let objectives = g.objectives();
    let mut columns = vec!["generation".to_owned(), "population".to_owned()];
    for o in &objectives {
        for s in ["best", "mean", "median", "worst"] {
            columns.push(format!("{o}_{s}"));
        }
    }
    columns.push("diversity".into());
    let idx: Vec<usize> = columns.iter().filter_map(|c| g.column(c)).collect();
    let widths: Vec<usize> = columns.iter().map(|c| c.len().max(10)).collect();
    out.push('\n');
    for (c, w) in columns.iter().zip(&widths) {
        let _ = write!(out, "{c:>w$}  ");
    }
    out.push('\n');
    let n = g.rows.len();
    let step = n.div_ceil(12).max(1);
    let shown: Vec<usize> = (0..n).filter(|i| i % step == 0 || *i == n - 1).collect();
    for i in shown {
        for (&k, w) in idx.iter().zip(&widths) {
            let _ = write!(out, "{:>w$}  ", number(g.rows[i][k]));
        }
        out.push('\n');
    }
    out.push('\n');
    for o in &objectives {
        let k = g
            .column(&format!("{o}_best"))
            .expect("objective columns exist");
        let worst = g
            .column(&format!("{o}_worst"))
            .expect("objective columns exist");
        // The best column is already direction-aware; compare against the
        // worst column to learn the direction.
        let maximize = g.rows.iter().any(|r| r[k] > r[worst]);
        let best = g.rows.iter().filter(|r| !r[k].is_nan()).max_by(|a, b| {
            if maximize {
                a[k].total_cmp(&b[k])
            } else {
                b[k].total_cmp(&a[k])
            }
        });
        if let Some(r) = best {
            let _ = writeln!(out, "best {o}: {} (generation {})", number(r[k]), r[0]);
        }
    }
    Ok(out)
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
        .expect("a formatted exponent");
    if (-4..6).contains(&exponent) {
        let decimals = (digits as i32 - 1 - exponent).max(0) as usize;
        format!("{x:.decimals$}")
    } else {
        sci
    }
}
