//! SVG plots with plotters: a run's objectives over generations
//! (`report-<objective>.svg`), and for an experiment with conditions each
//! condition's mean learning curve with a standard-error band
//! (`report-curves.svg`) and one bar chart per metric
//! (`report-<metric>.svg`); with real genes, each gene's distribution over
//! generations (`report-genes.svg`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::ReportError;
use crate::genes::{GeneTrack, tracks};
use crate::read::{Generations, ProbeTrack, read_genes, read_probes};
use crate::stats::{ConditionReport, CurvePoint, Report};

/// The learning curves plot of a conditions report.
pub const CURVES_SVG: &str = "report-curves.svg";

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Draws one plot per objective of the run in `dir` (best, mean and median
/// over generations) into `dir` and returns their paths.
pub fn run_plots(dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let g = Generations::read(dir)?;
    let mut written = Vec::new();
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |e: Box<dyn std::error::Error>| ReportError::Plot {
            path,
            message: e.to_string(),
        }
    };
    for objective in g.objectives() {
        let path = dir.join(format!("report-{objective}.svg"));
        draw_objective(&g, &objective, &path).map_err(failed(&path))?;
        written.push(path);
    }
    if let Some(probes) = read_probes(dir)?
        && !probes.is_empty()
    {
        let path = dir.join(PROBES_SVG);
        plot_probes(&[("population", &probes, &[])], &path).map_err(failed(&path))?;
        written.push(path);
    }
    if let Some(table) = read_genes(dir)?
        && let tracks = tracks(&[table])
        && crate::genes::moves(&tracks)
    {
        let path = dir.join(GENES_SVG);
        plot_genes(&[("population", &tracks)], &path).map_err(failed(&path))?;
        written.push(path);
    }
    Ok(written)
}

fn draw_objective(g: &Generations, objective: &str, path: &Path) -> DrawResult {
    let series: Vec<(&str, RGBColor, Vec<(f64, f64)>)> =
        [("best", RED), ("mean", BLUE), ("median", GREEN)]
            .into_iter()
            .filter_map(|(stat, color)| {
                let k = g.column(&format!("{objective}_{stat}"))?;
                let points = (0..g.rows.len())
                    .filter(|&i| g.rows[i][k].is_finite())
                    .map(|i| (g.generation(i), g.rows[i][k]))
                    .collect();
                Some((stat, color, points))
            })
            .collect();
    let all = series.iter().flat_map(|(_, _, p)| p.iter());
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(_, y)| {
        (lo.min(y), hi.max(y))
    });
    let (lo, hi) = span(lo, hi);
    let last = g
        .rows
        .len()
        .checked_sub(1)
        .map_or(1.0, |i| g.generation(i).max(1.0));
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(format!("{objective} over generations"), ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70);
    if wants_log(lo, hi) {
        let mut chart = builder.build_cartesian_2d(0f64..last, (lo / 2.0..hi * 2.0).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("generation")
            .y_desc(format!("{objective} (log scale)"))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0e}"))
            .draw()?;
        draw_series(&mut chart, series)?;
    } else {
        let pad = 0.05 * (hi - lo);
        let mut chart = builder.build_cartesian_2d(0f64..last, (lo - pad)..(hi + pad))?;
        chart
            .configure_mesh()
            .x_desc("generation")
            .y_desc(objective)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()?;
        draw_series(&mut chart, series)?;
    }
    root.present()?;
    Ok(())
}

/// The range of values to draw: `(0, 1)` when there are none, widened by
/// 0.5 each way when it is a single value.
fn span(lo: f64, hi: f64) -> (f64, f64) {
    if !lo.is_finite() || !hi.is_finite() {
        (0.0, 1.0)
    } else if hi - lo < 1e-12 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    }
}

/// Whether values from `lo` to `hi` read better on a log axis: they span
/// orders of magnitude (a converging error); anything touching zero or
/// below stays linear.
fn wants_log(lo: f64, hi: f64) -> bool {
    lo > 0.0 && hi / lo > 1e3
}

/// Draws the lines and their legend.
fn draw_series<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    series: Vec<(&str, RGBColor, Vec<(f64, f64)>)>,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (stat, color, points) in series {
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(stat)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Draws the plots of a conditions report into `dir`: the curves (when
/// any condition has one) and one bar chart per metric. Returns their paths.
pub fn report_plots(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = Vec::new();
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |e: Box<dyn std::error::Error>| ReportError::Plot {
            path,
            message: e.to_string(),
        }
    };
    if report.conditions.iter().any(|c| !c.curve.is_empty()) {
        let path = dir.join(CURVES_SVG);
        plot_curves(report, &path).map_err(failed(&path))?;
        written.push(path);
    }
    for (m, file) in metric_files(&report.metrics).into_iter().enumerate() {
        let path = dir.join(file);
        plot_bars(report, m, &path).map_err(failed(&path))?;
        written.push(path);
    }
    let genes: Vec<(&str, &[GeneTrack])> = report
        .conditions
        .iter()
        .map(|c| (c.name.as_str(), c.genes.as_slice()))
        .collect();
    if genes.iter().any(|(_, g)| crate::genes::moves(g)) {
        let path = dir.join(GENES_SVG);
        plot_genes(&genes, &path).map_err(failed(&path))?;
        written.push(path);
    }
    let probes: Vec<ProbeLines<'_>> = report
        .conditions
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.probes.as_slice(),
                c.probe_seeds.as_slice(),
            )
        })
        .collect();
    if probes.iter().any(|(_, p, _)| !p.is_empty()) {
        let path = dir.join(PROBES_SVG);
        plot_probes(&probes, &path).map_err(failed(&path))?;
        written.push(path);
    }
    Ok(written)
}

/// The probe sets plot of a run or an experiment.
pub const PROBES_SVG: &str = "report-probes.svg";

/// A condition's probe tracks for the plot: its name, the mean over seeds
/// and each seed's own.
type ProbeLines<'a> = (&'a str, &'a [ProbeTrack], &'a [Vec<ProbeTrack>]);

/// `report-probes.svg`: one panel per probe set, its accuracies (not its
/// loss) against the lifetime step, one colour per condition (a thinner
/// line for `accuracy_all`), and each seed's `accuracy` as a faint line
/// beside the mean, so the spread over seeds shows.
fn plot_probes(conditions: &[ProbeLines<'_>], path: &Path) -> DrawResult {
    let mut names: Vec<&str> = Vec::new();
    for (_, tracks, _) in conditions {
        for t in *tracks {
            if !names.contains(&t.probe.as_str()) {
                names.push(&t.probe);
            }
        }
    }
    let root = SVGBackend::new(path, (800, 240 * names.len().max(1) as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((names.len().max(1), 1));
    for (panel, &name) in panels.iter().zip(&names) {
        let last = conditions
            .iter()
            .flat_map(|(_, ts, _)| ts.iter())
            .filter(|t| t.probe == name)
            .flat_map(|t| t.points.iter().map(|p| p.0))
            .max()
            .unwrap_or(1);
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("probe `{name}`: accuracy along the lifetime (last generation)"),
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..(last as f64).max(1.0), 0f64..1.0)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("accuracy")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()?;
        for (k, (_, _, seeds)) in conditions.iter().enumerate() {
            for t in seeds
                .iter()
                .flatten()
                .filter(|t| t.probe == name && t.metric == "accuracy")
            {
                let points: Vec<(f64, f64)> =
                    t.points.iter().map(|&(s, v)| (s as f64, v)).collect();
                chart.draw_series(LineSeries::new(points, color(k).mix(0.3).stroke_width(1)))?;
            }
        }
        for (k, (condition, tracks, _)) in conditions.iter().enumerate() {
            for t in tracks
                .iter()
                .filter(|t| t.probe == name && t.metric != "loss")
            {
                let points: Vec<(f64, f64)> =
                    t.points.iter().map(|&(s, v)| (s as f64, v)).collect();
                let style = color(k).stroke_width(if t.metric == "accuracy" { 2 } else { 1 });
                let label = if t.metric == "accuracy" {
                    (*condition).to_owned()
                } else {
                    format!("{condition} ({})", t.metric)
                };
                chart
                    .draw_series(LineSeries::new(points, style))?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color(k).stroke_width(2))
                    });
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// The genes plot of a run or an experiment.
pub const GENES_SVG: &str = "report-genes.svg";

/// `report-genes.svg`: one panel per real gene, the median over the
/// organisms evaluated in each generation against the generation, with the
/// interquartile range shaded; one colour per condition (pooled seeds).
fn plot_genes(conditions: &[(&str, &[GeneTrack])], path: &Path) -> DrawResult {
    let mut names: Vec<&str> = Vec::new();
    for (_, tracks) in conditions {
        for t in *tracks {
            if !names.contains(&t.name.as_str()) {
                names.push(&t.name);
            }
        }
    }
    let root = SVGBackend::new(path, (800, 260 * names.len() as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((names.len(), 1));
    for (panel, &name) in panels.iter().zip(&names) {
        let tracks: Vec<(usize, &str, &GeneTrack)> = conditions
            .iter()
            .enumerate()
            .filter_map(|(k, (c, ts))| ts.iter().find(|t| t.name == name).map(|t| (k, *c, t)))
            .collect();
        let points = tracks.iter().flat_map(|(_, _, t)| t.points.iter());
        let (lo, hi, last) = points.fold(
            (f64::INFINITY, f64::NEG_INFINITY, 0u64),
            |(lo, hi, last), q| (lo.min(q.q1), hi.max(q.q3), last.max(q.generation)),
        );
        let (lo, hi) = span(lo, hi);
        let pad = 0.05 * (hi - lo);
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("gene `{name}`: median and quartiles per generation"),
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..(last as f64).max(1.0), (lo - pad)..(hi + pad))?;
        chart
            .configure_mesh()
            .x_desc("generation")
            .y_desc(name)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()?;
        let bands = tracks
            .iter()
            .map(|&(k, _, t)| {
                let mut outline: Vec<(f64, f64)> = t
                    .points
                    .iter()
                    .map(|q| (q.generation as f64, q.q3))
                    .collect();
                outline.extend(t.points.iter().rev().map(|q| (q.generation as f64, q.q1)));
                (color(k), outline)
            })
            .collect();
        draw_bands(&mut chart, bands)?;
        let series = tracks
            .iter()
            .map(|&(k, c, t)| {
                let line = t
                    .points
                    .iter()
                    .map(|q| (q.generation as f64, q.median))
                    .collect();
                (c, color(k), line)
            })
            .collect();
        draw_series(&mut chart, series)?;
    }
    root.present()?;
    Ok(())
}

/// `report-<metric>.svg` for each metric: `:` and `/` (and anything else
/// a file name should not hold) become `-`; names that collide, with each
/// other or with the curves plot, get a number.
fn metric_files(metrics: &[String]) -> Vec<String> {
    let mut taken: HashSet<String> = HashSet::from([
        CURVES_SVG.to_owned(),
        GENES_SVG.to_owned(),
        PROBES_SVG.to_owned(),
    ]);
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
fn plot_curves(report: &Report, path: &Path) -> DrawResult {
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
    let (lo, hi) = span(lo, hi);
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
    if wants_log(lo, hi) {
        let mut chart = builder.build_cartesian_2d(x0..x1, (lo / 2.0..hi * 2.0).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("held-out loss (log scale)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0e}"))
            .draw()?;
        draw_bands(&mut chart, bands)?;
        draw_series(&mut chart, series)?;
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
        draw_series(&mut chart, series)?;
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
fn plot_bars(report: &Report, m: usize, path: &Path) -> DrawResult {
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
