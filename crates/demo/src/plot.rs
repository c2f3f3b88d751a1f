//! Line plots laid out for inline SVG: the demo's curves over GRPO steps, drawn into
//! `report.html` by its template.
//!
//! This file does a plot's arithmetic — the data's spans, round ticks, the map from data to
//! pixels — and hands the template a [`Figure`] in pixel coordinates. The browser draws the
//! text, so no font ships with aha and the page needs no file beside it. It does not do log
//! axes, bars or anything the demo does not use.

use serde::Serialize;

/// One curve: `(x, y)` points in x order, and a CSS colour.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub color: &'static str,
}

/// A plot: title, axis names and curves. `y_range` fixes the y axis (e.g. 0..1 for accuracy);
/// otherwise it spans the data.
#[derive(Debug, Clone, PartialEq)]
pub struct LinePlot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub y_range: Option<(f64, f64)>,
}

/// Colours for up to four curves (blue, orange, green, red).
pub const PALETTE: [&str; 4] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"];

/// The SVG's user units; the page scales it to its own width.
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 400.0;
/// Margins around the axes box, room for tick labels, axis names and the title.
const LEFT: f64 = 90.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 60.0;

/// A plot in pixels, ready for the template: the axes box, ticks, curves and labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
    pub x_ticks: Vec<Tick>,
    pub y_ticks: Vec<Tick>,
    pub lines: Vec<Line>,
    /// A legend is drawn only when there is more than one curve to tell apart.
    pub legend: bool,
}

/// A grid line and its label, at pixel `at` along its axis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tick {
    pub at: f64,
    pub label: String,
}

/// A curve in pixels: `points` in SVG's `x,y x,y` form, and `dots` marking the points of a curve
/// too short to show as a line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub label: String,
    pub color: &'static str,
    pub points: String,
    pub dots: Vec<(f64, f64)>,
}

/// Round tick positions covering `[lo, hi]`: multiples of 1, 2 or 5 × 10^k, about five of them.
pub fn nice_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !lo.is_finite() || !hi.is_finite() || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// A tick label with as many decimals as the tick spacing needs.
fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    let s = format!("{v:.decimals$}");
    if s.starts_with("-0") && s.trim_start_matches(['-', '0', '.']).is_empty() {
        s[1..].to_string()
    } else {
        s
    }
}

/// The data's x and y spans, widened when flat so the plot has height.
fn spans(plot: &LinePlot) -> ((f64, f64), (f64, f64)) {
    let pts = plot.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    if let Some(r) = plot.y_range {
        (y0, y1) = r;
    } else if y1 - y0 < 1e-12 {
        let pad = if y0.abs() > 1e-12 {
            y0.abs() * 0.1
        } else {
            1.0
        };
        (y0, y1) = (y0 - pad, y1 + pad);
    } else {
        let pad = (y1 - y0) * 0.05;
        (y0, y1) = (y0 - pad, y1 + pad);
    }
    ((x0, x1), (y0, y1))
}

/// Pixels to a tenth: finer than any screen shows, and keeps the page small.
fn tenth(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Ticks along one axis: `to_px` maps a data value to its pixel.
fn ticks(lo: f64, hi: f64, to_px: impl Fn(f64) -> f64) -> Vec<Tick> {
    let at = nice_ticks(lo, hi);
    let step = if at.len() > 1 { at[1] - at[0] } else { 1.0 };
    at.iter()
        .map(|&v| Tick {
            at: tenth(to_px(v)),
            label: tick_label(v, step),
        })
        .collect()
}

/// Lays `plot` out in pixels.
pub fn layout(plot: &LinePlot) -> Figure {
    let ((x0, x1), (y0, y1)) = spans(plot);
    let (right, bottom) = (WIDTH - RIGHT, HEIGHT - BOTTOM);
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * (right - LEFT);
    let py = |y: f64| bottom - (y - y0) / (y1 - y0) * (bottom - TOP);
    let lines = plot
        .series
        .iter()
        .map(|s| {
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|&(x, y)| (tenth(px(x)), tenth(py(y.clamp(y0, y1)))))
                .collect();
            Line {
                label: s.label.clone(),
                color: s.color,
                points: pts
                    .iter()
                    .map(|(x, y)| format!("{x},{y}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                dots: if pts.len() <= 2 { pts } else { Vec::new() },
            }
        })
        .collect();
    Figure {
        title: plot.title.clone(),
        x_label: plot.x_label.clone(),
        y_label: plot.y_label.clone(),
        width: WIDTH,
        height: HEIGHT,
        left: LEFT,
        right,
        top: TOP,
        bottom,
        x_ticks: ticks(x0, x1, px),
        y_ticks: ticks(y0, y1, py),
        lines,
        legend: plot.series.len() > 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            nice_ticks(0.0, 1.0),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        assert_eq!(
            nice_ticks(0.0, 100.0),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(nice_ticks(3.0, 47.0), vec![10.0, 20.0, 30.0, 40.0]);
        assert_eq!(tick_label(0.6000000000000001, 0.2), "0.6");
        assert_eq!(tick_label(40.0, 10.0), "40");
        assert_eq!(tick_label(-0.0001, 0.01), "0.00");
    }

    fn diagonal(series: usize) -> LinePlot {
        LinePlot {
            title: "Accuracy".into(),
            x_label: "step".into(),
            y_label: "accuracy".into(),
            series: (0..series)
                .map(|i| Series {
                    label: format!("curve {i}"),
                    points: vec![(0.0, 0.0), (10.0, 1.0)],
                    color: PALETTE[i],
                })
                .collect(),
            y_range: Some((0.0, 1.0)),
        }
    }

    #[test]
    fn maps_the_data_onto_the_axes_box() {
        let f = layout(&diagonal(1));
        // (0, 0) is the box's bottom-left corner, (10, 1) its top-right; a two-point curve is
        // also marked with dots.
        assert_eq!(f.lines[0].points, "90,340 620,44");
        assert_eq!(f.lines[0].dots, vec![(90.0, 340.0), (620.0, 44.0)]);
        let y: Vec<(f64, &str)> = f.y_ticks.iter().map(|t| (t.at, t.label.as_str())).collect();
        assert_eq!(y[0], (340.0, "0.0"));
        assert_eq!(y[5], (44.0, "1.0"));
        assert_eq!(f.x_ticks.last().map(|t| t.at), Some(620.0));
        assert!(!f.legend);
    }

    #[test]
    fn clamps_to_a_fixed_range_and_draws_a_legend_for_two_curves() {
        let mut plot = diagonal(2);
        plot.series[1].points = (0..=10).map(|i| (i as f64, 2.0)).collect();
        let f = layout(&plot);
        assert!(f.legend);
        assert!(f.lines[1].dots.is_empty(), "a long curve is a line");
        assert!(f.lines[1].points.split(' ').all(|p| p.ends_with(",44")));
    }
}
