//! Helpers shared by the examples: command-line flags, progress bars and SVG charts.

#![allow(dead_code)] // each example uses a different subset

use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;
use std::error::Error;
use std::path::{Path, PathBuf};

/// Any error an example reports.
pub type AnyResult<T> = Result<T, Box<dyn Error>>;

/// `--name value` flags after the program name, with typed look-ups and defaults.
pub struct Flags {
    pairs: Vec<(String, String)>,
    switches: Vec<String>,
}

impl Flags {
    /// Parses `std::env::args()`: `--key value` pairs and bare `--switch`es listed in
    /// `switch_names`. Unknown flags are an error that lists the known ones.
    pub fn parse(known: &[&str], switch_names: &[&str]) -> AnyResult<Flags> {
        let mut args = std::env::args().skip(1);
        let (mut pairs, mut switches) = (Vec::new(), Vec::new());
        while let Some(arg) = args.next() {
            let Some(name) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg:?}; flags: {}", known.join(", ")).into());
            };
            if switch_names.contains(&name) {
                switches.push(name.to_string());
            } else if known.contains(&name) {
                let value = args.next().ok_or_else(|| format!("--{name} needs a value"))?;
                pairs.push((name.to_string(), value));
            } else {
                let all: Vec<&str> = known.iter().chain(switch_names).copied().collect();
                return Err(format!("unknown flag --{name}; flags: --{}", all.join(", --")).into());
            }
        }
        Ok(Flags { pairs, switches })
    }

    /// The value of `--name` parsed as `T`, or `default`.
    pub fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> AnyResult<T> {
        match self.pairs.iter().rev().find(|(k, _)| k == name) {
            Some((_, v)) => v.parse().map_err(|_| format!("--{name}: cannot parse {v:?}").into()),
            None => Ok(default),
        }
    }

    /// The value of `--name` as a string, if given.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Whether `--name` was given.
    pub fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }
}

/// True when the examples should run briefly (the integration test sets `GRAPHGRAD_FAST=1`).
pub fn fast_mode() -> bool {
    std::env::var("GRAPHGRAD_FAST").is_ok_and(|v| v != "0")
}

/// `--mode eager` (the default) or `--mode compiled`: whether the training step is compiled
/// whole (`compile_if`), the same step body either way.
pub fn compiled_mode(flags: &Flags) -> AnyResult<bool> {
    match flags.text("mode").unwrap_or("eager") {
        "eager" => Ok(false),
        "compiled" => Ok(true),
        other => Err(format!("--mode {other:?}: choose eager or compiled").into()),
    }
}

/// The output folder `out/<example>` (created), or `--out` when given.
pub fn output_dir(flags: &Flags, example: &str) -> AnyResult<PathBuf> {
    let dir = flags.text("out").map(PathBuf::from).unwrap_or_else(|| Path::new("out").join(example));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// A progress bar over `len` steps with a message slot.
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(&format!("{what} {{bar:30}} {{pos}}/{{len}} {{msg}}"))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// One named curve of a line chart.
pub struct Series<'a> {
    /// Legend label.
    pub label: &'a str,
    /// (x, y) points.
    pub points: Vec<(f64, f64)>,
}

/// Writes an SVG line chart of `series` to `path`.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> AnyResult<()> {
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
) -> Option<SeriesLabelPosition> {
    // box in pixels, with the 10-px margin plotters keeps from the plot's edge
    let (w, h) = (44.0 + 8.2 * chars as f64 + 10.0, 19.0 * rows as f64 + 14.0 + 10.0);
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
) -> AnyResult<()> {
    const SIZE: (u32, u32) = (900, 520);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    draw_panel(&root, SIZE, &Panel { title, x_label, y_label, lines, points, x_ticks: tick, y_range: None })?;
    root.present()?;
    Ok(())
}

/// Writes an SVG of `panels` side by side (each 720 × 520 px) under one `title`.
pub fn panels(path: &Path, title: &str, panels: &[Panel]) -> AnyResult<()> {
    const PANEL: (u32, u32) = (720, 520);
    let size = (PANEL.0 * panels.len().max(1) as u32, PANEL.1 + 40);
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let body = root.titled(title, ("sans-serif", 22))?;
    for (area, panel) in body.split_evenly((1, panels.len().max(1))).iter().zip(panels) {
        draw_panel(area, PANEL, panel)?;
    }
    root.present()?;
    Ok(())
}

/// Draws one [`Panel`] into `area` (about `size` pixels), legend placed as [`styled_chart`] says.
fn draw_panel(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    size: (u32, u32),
    panel: &Panel,
) -> AnyResult<()> {
    let Panel { title, x_label, y_label, lines, points, x_ticks, y_range } = *panel;
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
    let labelled: Vec<&str> =
        lines.iter().map(|l| &l.series).chain(points).map(|s| s.label).filter(|l| !l.is_empty()).collect();
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
    let plot_px = (f64::from(size.0) - 100.0, f64::from(size.1) - 115.0);
    let corner = if labelled.is_empty() {
        SeriesLabelPosition::UpperRight
    } else {
        match free_corner(&covered, ((x0, x1), (y_lo, y_hi)), plot_px, labelled.len(), chars) {
            Some(corner) => corner,
            None => {
                let legend_px = 19.0 * labelled.len() as f64 + 34.0;
                y_hi += (y_hi - y_lo) * legend_px / (plot_px.1 - legend_px).max(plot_px.1 / 3.0);
                SeriesLabelPosition::UpperRight
            }
        }
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y_lo..y_hi)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&x_ticks)
        .y_label_formatter(&tick)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    for (i, s) in points.iter().enumerate() {
        let color = POINT_COLORS[i % POINT_COLORS.len()].mix(0.75);
        let drawn = chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        if !s.label.is_empty() {
            drawn.label(s.label).legend(move |(x, y)| Circle::new((x + 10, y), 3, color.filled()));
        }
    }
    for line in lines {
        let style = ShapeStyle::from(&line.style.color).stroke_width(line.style.width);
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
    if !labelled.is_empty() {
        chart
            .configure_series_labels()
            .position(corner)
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}

/// One row of an [`image_grid`]: a label and its images, each `height × width` grey levels
/// (row-major, 0 = white, 1 = black; values outside 0..1 are clamped).
pub struct ImageRow<'a> {
    /// Shown left of the row.
    pub label: &'a str,
    /// The images, left to right.
    pub images: Vec<Vec<f32>>,
}

/// Writes an SVG grid of grey-level images (one rectangle per pixel), one labelled row per
/// entry of `rows` (e.g. originals above their reconstructions) and, when given, one label
/// under each column.
pub fn image_grid(
    path: &Path,
    title: &str,
    height: usize,
    width: usize,
    rows: &[ImageRow],
    column_labels: &[String],
) -> AnyResult<()> {
    const CELL: usize = 6; // pixels of the SVG per image pixel
    const GAP: usize = 8;
    const LABEL: usize = 120;
    let columns = rows.iter().map(|r| r.images.len()).max().unwrap_or(0);
    let (img_w, img_h) = (width * CELL, height * CELL);
    let svg_w = LABEL + columns * (img_w + GAP) + GAP;
    let labels_h = if column_labels.is_empty() { 0 } else { 20 };
    let svg_h = 40 + rows.len() * (img_h + GAP) + labels_h + GAP;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{svg_w}\" height=\"{svg_h}\" shape-rendering=\"crispEdges\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{GAP}\" y=\"24\" font-family=\"sans-serif\" font-size=\"16\">{}</text>\n",
        xml_escape(title)
    );
    for (r, row) in rows.iter().enumerate() {
        let y0 = 40 + r * (img_h + GAP);
        svg += &format!(
            "<text x=\"{GAP}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"13\">{}</text>\n",
            y0 + img_h / 2 + 5,
            xml_escape(row.label)
        );
        for (c, image) in row.images.iter().enumerate() {
            if image.len() != height * width {
                return Err(
                    format!("{title}: image of {} pixels, expected {height}×{width}", image.len()).into()
                );
            }
            let x0 = LABEL + c * (img_w + GAP);
            for (i, &v) in image.iter().enumerate() {
                let level = (255.0 * (1.0 - v.clamp(0.0, 1.0))).round() as u8;
                svg += &format!(
                    "<rect x=\"{}\" y=\"{}\" width=\"{CELL}\" height=\"{CELL}\" fill=\"rgb({level},{level},{level})\"/>\n",
                    x0 + (i % width) * CELL,
                    y0 + (i / width) * CELL
                );
            }
            svg += &format!(
                "<rect x=\"{x0}\" y=\"{y0}\" width=\"{img_w}\" height=\"{img_h}\" fill=\"none\" stroke=\"#999\"/>\n"
            );
        }
    }
    let labels_y = 40 + rows.len() * (img_h + GAP) + 12;
    for (c, label) in column_labels.iter().enumerate() {
        svg += &format!(
            "<text x=\"{}\" y=\"{labels_y}\" text-anchor=\"middle\" font-family=\"sans-serif\" font-size=\"13\">{}</text>\n",
            LABEL + c * (img_w + GAP) + img_w / 2,
            xml_escape(label)
        );
    }
    svg += "</svg>\n";
    std::fs::write(path, svg).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

/// One matrix of a [`heat_maps`] figure: `values[row][column]`, with labels for both axes.
pub struct HeatMap {
    /// Shown above the matrix.
    pub title: String,
    /// One label per row (left).
    pub row_labels: Vec<String>,
    /// One label per column (below).
    pub column_labels: Vec<String>,
    /// The values, one inner vector per row.
    pub values: Vec<Vec<f64>>,
}

/// Width in pixels of `text` in a sans-serif font of `size` px (a generous estimate: about
/// 0.6 em a character), for laying out SVG text that must not overlap.
fn text_width(text: &str, size: usize) -> usize {
    (text.chars().count() * size * 6).div_ceil(10)
}

/// Writes an SVG of heat maps in a grid (white = the smallest value of each map, dark blue =
/// the largest), with the value printed in each cell: e.g. attention weights. Row labels get
/// the width their longest label needs, cells the width of their longest column label, each
/// map the width of its title; as many maps share a row as fit in about 1 300 px, and the
/// figure is at least as wide as its title.
pub fn heat_maps(path: &Path, title: &str, maps: &[HeatMap]) -> AnyResult<()> {
    const CELL_H: usize = 34;
    const GAP: usize = 30;
    const ROW_WIDTH: usize = 1300;
    // each map's geometry: (row-label width, cell width, whole width)
    let geometry: Vec<(usize, usize, usize)> = maps
        .iter()
        .map(|m| {
            let label = m.row_labels.iter().map(|l| text_width(l, 12)).max().unwrap_or(0) + 10;
            let cell = m.column_labels.iter().map(|l| text_width(l, 12) + 8).max().unwrap_or(0).max(CELL_H);
            let width = (label + m.column_labels.len() * cell).max(text_width(&m.title, 13)) + GAP;
            (label, cell, width)
        })
        .collect();
    let widest = geometry.iter().map(|g| g.2).max().unwrap_or(GAP);
    let per_row = (ROW_WIDTH / widest).clamp(1, maps.len().max(1));
    let grid_rows = maps.len().div_ceil(per_row).max(1);
    let per_row = maps.len().div_ceil(grid_rows).max(1); // balance: 8 maps → 4 + 4, not 5 + 3
    let rows = maps.iter().map(|m| m.row_labels.len()).max().unwrap_or(0);
    let block_h = 40 + rows * CELL_H + 40; // map title, cells, column labels
    let svg_w = (GAP + per_row * widest).max(text_width(title, 16) + 2 * GAP);
    let svg_h = 40 + grid_rows * block_h + 10;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{svg_w}\" height=\"{svg_h}\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{GAP}\" y=\"24\" font-family=\"sans-serif\" font-size=\"16\">{}</text>\n",
        xml_escape(title)
    );
    for (m, (map, &(label_w, cell_w, _))) in maps.iter().zip(&geometry).enumerate() {
        if map.values.len() != map.row_labels.len()
            || map.values.iter().any(|r| r.len() != map.column_labels.len())
        {
            return Err(format!("{title}: heat map {:?} does not match its labels", map.title).into());
        }
        let (lo, hi) =
            map.values.iter().flatten().fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let span = (hi - lo).max(1e-12);
        let x_base = GAP + (m % per_row) * widest;
        let y_base = 40 + (m / per_row) * block_h;
        let x0 = x_base + label_w;
        let title_x = if text_width(&map.title, 13) > map.column_labels.len() * cell_w { x_base } else { x0 };
        svg += &format!(
            "<text x=\"{title_x}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"13\">{}</text>\n",
            y_base + 22,
            xml_escape(&map.title)
        );
        for (r, row) in map.values.iter().enumerate() {
            let y = y_base + 32 + r * CELL_H;
            svg += &format!(
                "<text x=\"{}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"12\" text-anchor=\"end\">{}</text>\n",
                x0 - 6,
                y + CELL_H / 2 + 4,
                xml_escape(&map.row_labels[r])
            );
            for (c, &v) in row.iter().enumerate() {
                let t = (v - lo) / span; // 0 → white, 1 → dark blue
                let (red, green, blue) = (
                    (255.0 * (1.0 - t * 0.9)) as u8,
                    (255.0 * (1.0 - t * 0.75)) as u8,
                    (255.0 - t * 105.0) as u8,
                );
                let ink = if t > 0.55 { "white" } else { "black" };
                let x = x0 + c * cell_w;
                svg += &format!(
                    "<rect x=\"{x}\" y=\"{y}\" width=\"{cell_w}\" height=\"{CELL_H}\" fill=\"rgb({red},{green},{blue})\" stroke=\"#ddd\"/>\n\
                     <text x=\"{}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"10\" text-anchor=\"middle\" fill=\"{ink}\">{v:.2}</text>\n",
                    x + cell_w / 2,
                    y + CELL_H / 2 + 4
                );
            }
        }
        let y = y_base + 32 + map.row_labels.len() * CELL_H + 17;
        for (c, label) in map.column_labels.iter().enumerate() {
            svg += &format!(
                "<text x=\"{}\" y=\"{y}\" font-family=\"sans-serif\" font-size=\"12\" text-anchor=\"middle\">{}</text>\n",
                x0 + c * cell_w + cell_w / 2,
                xml_escape(label)
            );
        }
    }
    svg += "</svg>\n";
    std::fs::write(path, svg).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

/// `text` with the XML special characters escaped.
fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
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
) -> AnyResult<()> {
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

/// Mean cross-entropy, accuracy and predicted classes of a classifier on a whole labelled data
/// set, in eval mode and without recording gradients (training mode is restored after).
pub fn evaluate_classifier(
    model: &dyn graphgrad::nn::Module,
    data: &graphgrad::nn::data::Dataset,
) -> AnyResult<(f64, f64, Vec<usize>)> {
    use graphgrad::nn::{loss::cross_entropy, metrics::predictions, Reduction};
    model.set_training(false);
    let result = graphgrad::autodiff::no_grad(|| -> AnyResult<_> {
        let batch = data.batch(&(0..data.len()).collect::<Vec<_>>())?;
        let labels = batch.labels().ok_or("the data set has no class labels")?;
        let logits = model.forward(&batch.inputs)?;
        let loss = cross_entropy(&logits, labels, Reduction::Mean)?.item()?;
        let predicted = predictions(&logits)?;
        let correct = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
        Ok((loss, correct as f64 / labels.len().max(1) as f64, predicted))
    });
    model.set_training(true);
    result
}

/// Train and validation loss and accuracy per epoch: the curves that show under- and
/// over-fitting.
#[derive(Default)]
pub struct LearningCurves {
    train_loss: Vec<(f64, f64)>,
    val_loss: Vec<(f64, f64)>,
    train_acc: Vec<(f64, f64)>,
    val_acc: Vec<(f64, f64)>,
}

impl LearningCurves {
    /// Records one epoch (numbered from 1 on the x axis).
    pub fn push(&mut self, epoch: u64, train: (f64, f64), validation: (f64, f64)) {
        let x = epoch as f64 + 1.0;
        self.train_loss.push((x, train.0));
        self.train_acc.push((x, train.1));
        self.val_loss.push((x, validation.0));
        self.val_acc.push((x, validation.1));
    }

    /// Writes `learning_curves.svg` (loss) and `accuracy.svg` into `out`; returns their paths.
    pub fn write(&self, out: &Path, name: &str) -> AnyResult<(PathBuf, PathBuf)> {
        self.write_with(out, name, "cross-entropy")
    }

    /// As [`LearningCurves::write`], with the loss axis named `loss_label`.
    pub fn write_with(&self, out: &Path, name: &str, loss_label: &str) -> AnyResult<(PathBuf, PathBuf)> {
        let pair = |train: &[(f64, f64)], val: &[(f64, f64)]| {
            [
                Series { label: "train", points: train.to_vec() },
                Series { label: "validation", points: val.to_vec() },
            ]
        };
        let loss = out.join("learning_curves.svg");
        let title = format!("{name}: loss (a widening gap between the curves is over-fitting)");
        line_chart(&loss, &title, "epoch", loss_label, &pair(&self.train_loss, &self.val_loss))?;
        let accuracy = out.join("accuracy.svg");
        let title = format!("{name}: accuracy");
        line_chart(&accuracy, &title, "epoch", "accuracy", &pair(&self.train_acc, &self.val_acc))?;
        Ok((loss, accuracy))
    }
}
