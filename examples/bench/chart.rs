//! The bench's one chart (an SVG drawn with `plotters`): on the left the
//! pass times against the number of containers (log scale: a per-event pass
//! takes milliseconds, a full resync at 10,000 containers a hundred times
//! that), with `docker run` → answering for dock6 and Docker's own rules
//! where the real-dockerd part ran; on the right the agent's RSS.

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::report::{Panel, Point, count};

const SIZE: (u32, u32) = (1100, 500);
const COLOURS: [RGBColor; 7] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
];

/// Draws `points` into the SVG file `path`, under `title`.
pub fn draw(path: &Path, title: &str, points: &[Point]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 16))?;
    let (left, right) = root.split_horizontally(SIZE.0 * 3 / 5);
    let in_panel =
        |panel: Panel| -> Vec<&Point> { points.iter().filter(|p| p.panel == panel).collect() };
    time_panel(&left, &in_panel(Panel::Time))?;
    rss_panel(&right, &in_panel(Panel::Rss))?;
    root.present()?;
    Ok(())
}

/// Pass times in milliseconds, log scale.
fn time_panel(area: &DrawingArea<SVGBackend, Shift>, points: &[&Point]) -> anyhow::Result<()> {
    let Some((lo, hi)) = value_range(points) else {
        return Ok(());
    };
    let mut chart = ChartBuilder::on(area)
        .caption("pass time (ms, log scale)", ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        // Two decades of headroom: the legend sits there, above every series.
        .build_cartesian_2d(0f64..x_end(points), decades(lo, hi * 100.0).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("containers")
        .y_desc("ms")
        .x_label_formatter(&|x| count(*x as usize))
        .draw()?;
    draw_series(&mut chart, points)?;
    Ok(())
}

/// The agent's resident size in megabytes, from 0.
fn rss_panel(area: &DrawingArea<SVGBackend, Shift>, points: &[&Point]) -> anyhow::Result<()> {
    let Some((_, hi)) = value_range(points) else {
        return Ok(());
    };
    let mut chart = ChartBuilder::on(area)
        .caption("agent RSS (MB)", ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(48)
        .build_cartesian_2d(0f64..x_end(points), 0f64..hi * 1.25)?;
    chart
        .configure_mesh()
        .x_desc("containers")
        .y_desc("MB")
        .x_label_formatter(&|x| count(*x as usize))
        .draw()?;
    draw_series(&mut chart, points)?;
    Ok(())
}

/// Each series as a line through its points (by container count) with a
/// marker at each, and the legend.
fn draw_series<'a, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
    points: &[&Point],
) -> anyhow::Result<()>
where
    Y: Ranged<ValueType = f64>,
{
    let mut names: Vec<&'static str> = Vec::new();
    for p in points {
        if !names.contains(&p.series) {
            names.push(p.series);
        }
    }
    for (i, name) in names.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut line: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.series == *name)
            .map(|p| (p.containers as f64, p.value))
            .collect();
        line.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
        chart.draw_series(
            line.iter()
                .map(|&(x, y)| Circle::new((x, y), 3, colour.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 12))
        .draw()?;
    Ok(())
}

/// The smallest and largest value, if there is any point (a value of 0 is
/// raised to 0.01 so that a log scale can show it).
fn value_range(points: &[&Point]) -> Option<(f64, f64)> {
    let values = points.iter().map(|p| p.value.max(0.01));
    let lo = values.clone().reduce(f64::min)?;
    let hi = values.reduce(f64::max)?;
    Some((lo, hi))
}

/// From the power of ten at or below `lo` to the one at or above `hi`.
fn decades(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let below = 10f64.powf(lo.log10().floor());
    let above = 10f64.powf(hi.log10().ceil());
    below..above.max(below * 10.0)
}

/// The x axis's end: a little past the largest container count.
fn x_end(points: &[&Point]) -> f64 {
    let most = points.iter().map(|p| p.containers).max().unwrap_or(0);
    (most.max(100) as f64) * 1.05
}
