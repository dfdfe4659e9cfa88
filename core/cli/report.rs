//! `lineage report`: one SVG per objective with its best, mean and median
//! over generations.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::table::Generations;

/// Draws the plots into the run directory and returns their paths.
pub fn plots(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let g = Generations::read(dir)?;
    let mut written = Vec::new();
    for objective in g.objectives() {
        let path = dir.join(format!("report-{objective}.svg"));
        draw(&g, &objective, &path).map_err(|e| format!("cannot draw {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn draw(g: &Generations, objective: &str, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let series: Vec<(&str, RGBColor, Vec<(f64, f64)>)> =
        [("best", RED), ("mean", BLUE), ("median", GREEN)]
            .into_iter()
            .filter_map(|(stat, color)| {
                let k = g.column(&format!("{objective}_{stat}"))?;
                let points = g
                    .rows
                    .iter()
                    .filter(|r| r[k].is_finite())
                    .map(|r| (r[0], r[k]))
                    .collect();
                Some((stat, color, points))
            })
            .collect();
    let all = series.iter().flat_map(|(_, _, p)| p.iter());
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(_, y)| {
        (lo.min(y), hi.max(y))
    });
    let (lo, hi) = span(lo, hi);
    let last = g.rows.last().map_or(1.0, |r| r[0].max(1.0));
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
        draw_series(&mut chart, series).map_err(|e| -> Box<dyn std::error::Error> { e.into() })?;
    } else {
        let pad = 0.05 * (hi - lo);
        let mut chart = builder.build_cartesian_2d(0f64..last, (lo - pad)..(hi + pad))?;
        chart
            .configure_mesh()
            .x_desc("generation")
            .y_desc(objective)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()?;
        draw_series(&mut chart, series).map_err(|e| -> Box<dyn std::error::Error> { e.into() })?;
    }
    root.present()?;
    Ok(())
}

/// The range of values to draw: `(0, 1)` when there are none, widened by
/// 0.5 each way when it is a single value.
pub(crate) fn span(lo: f64, hi: f64) -> (f64, f64) {
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
pub(crate) fn wants_log(lo: f64, hi: f64) -> bool {
    lo > 0.0 && hi / lo > 1e3
}

/// Draws the lines and their legend.
pub(crate) fn draw_series<'a, X, Y>(
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
