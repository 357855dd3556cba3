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
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in all.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        return Err(format!("{title}: nothing to plot").into());
    }
    let pad = ((y1 - y0) * 0.05).max(1e-9);
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1.max(x0 + 1e-9), (y0 - pad)..(y1 + pad))?;
    chart.configure_mesh().x_desc(x_label).y_desc(y_label).draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))?
            .label(s.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
