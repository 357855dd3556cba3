//! Line charts: curves and dots on shared axes, one or several panels per figure, with a
//! legend placed where it covers no data. Moved here from the examples' helpers so that every
//! user's program has them; the learning curves of [`crate::plot`] are drawn with them.
//!
//! Everything is drawn into an SVG string with plotters; [`save_svg`](super::save_svg)
//! writes it and [`save_png`](super::save_png) renders the same picture to PNG.

use super::{plot_error, save_svg};
use crate::error::Result;
use plotters::prelude::*;
use std::path::Path;

/// Font sizes of a figure, in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Typography {
    /// A figure's title.
    pub title: u32,
    /// A panel's caption.
    pub caption: u32,
    /// Axis names.
    pub axis: u32,
    /// Tick labels and legend entries.
    pub label: u32,
}

impl Typography {
    /// For a figure looked at on a screen (the examples' charts).
    pub const SCREEN: Typography = Typography { title: 22, caption: 20, axis: 16, label: 15 };
    /// For a figure shown on a slide: twice as big (plotters writes SVG font sizes at 1/1.24 of
    /// these, so tick labels come out at 24 px).
    pub const SLIDE: Typography = Typography { title: 40, caption: 36, axis: 32, label: 30 };
}

/// One named curve of a line chart.
pub struct Series<'a> {
    /// Legend label.
    pub label: &'a str,
    /// (x, y) points.
    pub points: Vec<(f64, f64)>,
}

/// Writes an SVG line chart of `series` to `path`.
pub fn line_chart(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<()> {
    lines_and_points(path, title, x_label, y_label, series, &[])
}

/// How a [`Line`] is drawn.
#[derive(Clone, Copy)]
pub struct Style {
    /// Stroke colour.
    pub color: RGBColor,
    /// Stroke width in pixels.
    pub width: u32,
    /// Drawn dashed (so a line that another one covers stays visible).
    pub dashed: bool,
}

/// A curve with a style of its own (see [`styled_chart`]).
pub struct Line<'a> {
    /// The curve; an empty label keeps it out of the legend.
    pub series: Series<'a>,
    /// Colour and width.
    pub style: Style,
}

/// The `i`-th colour of the charts' palette (Tableau 10: distinct, and readable on white,
/// unlike a pale yellow).
pub fn palette(i: usize) -> RGBColor {
    const TABLEAU: [RGBColor; 10] = [
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
    TABLEAU[i % TABLEAU.len()]
}

/// A tick label: integers without a decimal point ("10", not "10.0"), other values with at
/// most three significant decimals.
pub fn tick(v: &f64) -> String {
    if (v - v.round()).abs() <= 1e-9 * v.abs().max(1.0) {
        format!("{:.0}", v.round())
    } else {
        let digits = (2 - v.abs().log10().floor() as i64).clamp(0, 6) as usize;
        let text = format!("{v:.digits$}");
        let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { &text };
        text.to_string()
    }
}

/// Colours of the point series of a chart (data first), distinct from the line palette's
/// first entries.
const POINT_COLORS: [RGBColor; 4] =
    [RGBColor(90, 90, 90), RGBColor(170, 0, 120), RGBColor(0, 130, 130), RGBColor(110, 60, 160)];

/// Where a legend of `rows` entries, the longest `chars` characters, covers no curve or point:
/// the corner of the plot area (in data coordinates `x`, `y`, plot `px` pixels) whose box
/// holds none of `points`; `None` when every corner holds some.
fn free_corner(
    points: &[(f64, f64)],
    (x, y): ((f64, f64), (f64, f64)),
    px: (f64, f64),
    rows: usize,
    chars: usize,
    scale: f64,
) -> Option<SeriesLabelPosition> {
    // box in pixels, with the 10-px margin plotters keeps from the plot's edge
    let (w, h) = (44.0 + 8.2 * chars as f64 + 10.0, 19.0 * rows as f64 + 14.0 + 10.0);
    let (w, h) = (w * scale, h * scale);
    let (fw, fh) = ((w / px.0).min(1.0), (h / px.1).min(1.0));
    let inside = |left: bool, top: bool| {
        points.iter().any(|&(px_, py)| {
            let (u, v) = ((px_ - x.0) / (x.1 - x.0), (py - y.0) / (y.1 - y.0)); // 0..1, v up
            let in_x = if left { u <= fw } else { u >= 1.0 - fw };
            let in_y = if top { v >= 1.0 - fh } else { v <= fh };
            in_x && in_y
        })
    };
    [
        (false, true, SeriesLabelPosition::UpperRight),
        (true, true, SeriesLabelPosition::UpperLeft),
        (false, false, SeriesLabelPosition::LowerRight),
        (true, false, SeriesLabelPosition::LowerLeft),
    ]
    .into_iter()
    .find(|&(left, top, _)| !inside(left, top))
    .map(|(_, _, corner)| corner)
}

/// One chart of a [`panels`] figure: styled curves and dotted series on shared axes.
pub struct Panel<'a> {
    /// Shown above the chart.
    pub title: &'a str,
    /// Name of the x axis.
    pub x_label: &'a str,
    /// Name of the y axis.
    pub y_label: &'a str,
    /// The curves.
    pub lines: &'a [Line<'a>],
    /// Series drawn as dots.
    pub points: &'a [Series<'a>],
    /// Tick labels of the x axis (e.g. `2^v` for an axis in log₂ units); [`tick`] by default.
    pub x_ticks: fn(&f64) -> String,
    /// The y range to show (before the legend's head room), e.g. to share one scale between
    /// panels; `None` fits the data.
    pub y_range: Option<(f64, f64)>,
}

/// Writes an SVG chart of styled `lines` and `points` (each series drawn as dots) on the same
/// axes. The legend goes into a corner where it covers no curve or point; when there is none,
/// the y range gets a band of head room above the data for it, so it never hides data.
pub fn styled_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    lines: &[Line],
    points: &[Series],
) -> Result<()> {
    const SIZE: (u32, u32) = (900, 520);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error(title))?;
        let panel = Panel { title, x_label, y_label, lines, points, x_ticks: tick, y_range: None };
        draw_panel(&root, SIZE, &panel, &Look::screen()).map_err(plot_error(title))?;
        root.present().map_err(plot_error(title))?;
    }
    save_svg(path, &svg)
}

/// Writes an SVG of `panels` side by side (each 720 × 520 px) under one `title`.
pub fn panels(path: &Path, title: &str, panels: &[Panel]) -> Result<()> {
    let looks: Vec<Look> = panels.iter().map(|_| Look::screen()).collect();
    save_svg(path, &panels_svg(title, panels, &looks, (720, 520), Typography::SCREEN)?)
}

/// How a panel is drawn beyond its data: fonts, y tick labels, vertical markers.
#[derive(Clone)]
pub(crate) struct Look {
    pub(crate) fonts: Typography,
    pub(crate) y_ticks: fn(&f64) -> String,
    /// `(x, label)`: a dashed vertical line at `x` with `label` in the legend.
    pub(crate) marker: Option<(f64, String)>,
}

impl Look {
    pub(crate) fn screen() -> Look {
        Look { fonts: Typography::SCREEN, y_ticks: tick, marker: None }
    }
}

/// The SVG of `panels` side by side, each `panel` pixels, under one `title`.
pub(crate) fn panels_svg(
    title: &str,
    panels: &[Panel],
    looks: &[Look],
    panel: (u32, u32),
    fonts: Typography,
) -> Result<String> {
    let size = (panel.0 * panels.len().max(1) as u32, panel.1 + 2 * fonts.title);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error(title))?;
        let body = root.titled(title, ("sans-serif", fonts.title)).map_err(plot_error(title))?;
        for ((area, p), look) in body.split_evenly((1, panels.len().max(1))).iter().zip(panels).zip(looks) {
            draw_panel(area, panel, p, look).map_err(plot_error(p.title))?;
        }
        root.present().map_err(plot_error(title))?;
    }
    Ok(svg)
}

/// Draws one [`Panel`] into `area` (about `size` pixels), legend placed as [`styled_chart`] says.
fn draw_panel(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    size: (u32, u32),
    panel: &Panel,
    look: &Look,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let Panel { title, x_label, y_label, lines, points, x_ticks, y_range } = *panel;
    let fonts = look.fonts;
    let all = lines.iter().map(|l| &l.series).chain(points).flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in all.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        return Err(format!("{title}: nothing to plot").into());
    }
    x1 = x1.max(x0 + 1e-9);
    let span = (y1 - y0).max(1e-9);
    let (y_lo, mut y_hi) = y_range.unwrap_or((y0 - 0.04 * span, y1 + 0.04 * span));
    let scale = f64::from(fonts.label) / 15.0;
    let mut labelled: Vec<&str> =
        lines.iter().map(|l| &l.series).chain(points).map(|s| s.label).filter(|l| !l.is_empty()).collect();
    if let Some((_, label)) = &look.marker {
        labelled.push(label);
    }
    let chars = labelled.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    // what the legend must not cover: every point, and each curve sampled along its segments
    let mut covered: Vec<(f64, f64)> = points.iter().flat_map(|s| s.points.iter().copied()).collect();
    for line in lines {
        for pair in line.series.points.windows(2) {
            let ((ax, ay), (bx, by)) = (pair[0], pair[1]);
            covered.extend((0..=40).map(|i| {
                let t = f64::from(i) / 40.0;
                (ax + (bx - ax) * t, ay + (by - ay) * t)
            }));
        }
        covered.extend(line.series.points.last().copied());
    }
    let plot_px = (f64::from(size.0) - 100.0 * scale, f64::from(size.1) - 115.0 * scale);
    let corner = if labelled.is_empty() {
        SeriesLabelPosition::UpperRight
    } else {
        match free_corner(&covered, ((x0, x1), (y_lo, y_hi)), plot_px, labelled.len(), chars, scale) {
            Some(corner) => corner,
            None => {
                let legend_px = (19.0 * labelled.len() as f64 + 34.0) * scale;
                y_hi += (y_hi - y_lo) * legend_px / (plot_px.1 - legend_px).max(plot_px.1 / 3.0);
                SeriesLabelPosition::UpperRight
            }
        }
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", fonts.caption))
        .margin(15)
        .x_label_area_size((45.0 * scale) as u32)
        .y_label_area_size((70.0 * scale) as u32)
        .build_cartesian_2d(x0..x1, y_lo..y_hi)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&x_ticks)
        .y_label_formatter(&look.y_ticks)
        .label_style(("sans-serif", fonts.label))
        .axis_desc_style(("sans-serif", fonts.axis))
        .draw()?;
    for (i, s) in points.iter().enumerate() {
        let color = POINT_COLORS[i % POINT_COLORS.len()].mix(0.75);
        let r = (3.0 * scale).round() as i32;
        let drawn = chart.draw_series(s.points.iter().map(|&p| Circle::new(p, r, color.filled())))?;
        if !s.label.is_empty() {
            drawn.label(s.label).legend(move |(x, y)| Circle::new((x + 10, y), r, color.filled()));
        }
    }
    for line in lines {
        let width = (f64::from(line.style.width) * scale).round() as u32;
        let style = ShapeStyle::from(&line.style.color).stroke_width(width);
        let points = line.series.points.iter().copied();
        let drawn = if line.style.dashed {
            chart.draw_series(DashedLineSeries::new(points, 9, 6, style))?
        } else {
            chart.draw_series(LineSeries::new(points, style))?
        };
        if !line.series.label.is_empty() {
            drawn
                .label(line.series.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        }
    }
    if let Some((x, label)) = &look.marker {
        let style = ShapeStyle::from(&BLACK.mix(0.6)).stroke_width(scale.round() as u32 + 1);
        chart
            .draw_series(DashedLineSeries::new([(*x, y_lo), (*x, y_hi)], 8, 6, style))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
    }
    if !labelled.is_empty() {
        chart
            .configure_series_labels()
            .position(corner)
            .label_font(("sans-serif", fonts.label))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}

/// Writes an SVG chart of `lines` (curves, in the palette's colours) and `points` (each series
/// drawn as dots, e.g. data or marked events) on the same axes. Series with an empty label
/// stay out of the legend.
pub fn lines_and_points(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    lines: &[Series],
    points: &[Series],
) -> Result<()> {
    let styled: Vec<Line> = lines
        .iter()
        .enumerate()
        .map(|(i, s)| Line {
            series: Series { label: s.label, points: s.points.clone() },
            style: Style { color: palette(i), width: 2, dashed: false },
        })
        .collect();
    styled_chart(path, title, x_label, y_label, &styled, points)
}
