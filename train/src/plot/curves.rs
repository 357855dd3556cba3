//! The figures of a run: learning curves (loss and metrics, training against validation, the
//! best epoch marked, a log scale for a loss that spans a decade or more so the gap between
//! the curves stays visible at the small end) and the confusion matrix as a heat map.

use super::chart::{palette, panels_svg, tick, Line, Look, Panel, Series, Style, Typography};
use super::grid::text_width;
use super::{save_both, xml_escape};
use crate::error::{Error, Result};
use crate::metrics::History;
use graphgrad_nn::metrics::ConfusionMatrix;
use std::path::{Path, PathBuf};

/// What the learning curves show.
#[derive(Clone, Debug)]
pub struct CurveOptions {
    /// The figure's title (a run name).
    pub title: String,
    /// The loss's name on its axis (`"cross-entropy"`).
    pub loss_name: String,
    /// Metrics to chart besides the loss, by name without `train/`/`val/` (`"accuracy"`).
    pub metrics: Vec<String>,
    /// The value whose best epoch is marked (`"val/loss"`), and whether lower is better.
    pub monitor: Option<(String, bool)>,
}

/// Epoch ticks: whole numbers only (no "2.5" between epochs 2 and 3).
fn epoch_tick(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        tick(v)
    } else {
        String::new()
    }
}

/// Tick labels of an axis in log₁₀ units: the value itself.
fn pow10_tick(v: &f64) -> String {
    tick(&10f64.powf(*v))
}

/// Writes `stem.svg` and `stem.png`: one panel for the loss and one per metric, training and
/// validation curves in each, the best epoch of the monitored value as a dashed line.
/// Returns the two paths.
pub fn learning_curves(history: &History, options: &CurveOptions, stem: &Path) -> Result<[PathBuf; 2]> {
    if history.epochs.is_empty() {
        return Err(Error::Plot { what: options.title.clone(), reason: "no epoch to plot".into() });
    }
    // The legend names the best epoch; the figure's title says of what (a long legend entry
    // would leave no corner free for the legend).
    let best =
        options.monitor.as_ref().and_then(|(name, lower)| history.best(name, *lower).map(|b| (name, b)));
    let marker = best.map(|(_, (epoch, _))| (epoch as f64, format!("best: epoch {epoch}")));
    let title = match best {
        Some((name, (epoch, v))) => format!("{} (best {name} {} at epoch {epoch})", options.title, tick(&v)),
        None => options.title.clone(),
    };
    let mut names = vec![("loss".to_string(), options.loss_name.clone())];
    names.extend(options.metrics.iter().map(|m| (m.clone(), m.replace('_', " "))));
    let mut panel_lines: Vec<(String, String, Vec<Line>, Look)> = Vec::new();
    for (name, axis) in names {
        let train = history.series(&format!("train/{name}"));
        let val = history.series(&format!("val/{name}"));
        if train.is_empty() && val.is_empty() {
            continue;
        }
        let values: Vec<f64> = train.iter().chain(&val).map(|p| p.1).filter(|v| v.is_finite()).collect();
        let (lo, hi) = values.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let log = name == "loss" && lo > 0.0 && hi / lo >= 10.0;
        let map = |points: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
            if log {
                points.into_iter().map(|(x, y)| (x, y.log10())).collect()
            } else {
                points
            }
        };
        let mut lines = Vec::new();
        for (i, (label, points)) in [("training", train), ("validation", val)].into_iter().enumerate() {
            if !points.is_empty() {
                lines.push(Line {
                    series: Series { label, points: map(points) },
                    style: Style { color: palette(i), width: 2, dashed: false },
                });
            }
        }
        let marker = marker.clone();
        let look = Look { fonts: Typography::SLIDE, y_ticks: if log { pow10_tick } else { tick }, marker };
        let axis = if log { format!("{axis} (log scale)") } else { axis };
        panel_lines.push((name, axis, lines, look));
    }
    let titles: Vec<String> = panel_lines.iter().map(|(name, ..)| name.replace('_', " ")).collect();
    let panels: Vec<Panel> = panel_lines
        .iter()
        .zip(&titles)
        .map(|((_, axis, lines, _), title)| Panel {
            title,
            x_label: "epoch",
            y_label: axis,
            lines,
            points: &[],
            x_ticks: epoch_tick,
            y_range: None,
        })
        .collect();
    let looks: Vec<Look> = panel_lines.iter().map(|(.., look)| look.clone()).collect();
    let svg = panels_svg(&title, &panels, &looks, (900, 640), Typography::SLIDE)?;
    save_both(stem, &svg)
}

/// Writes `stem.svg` and `stem.png`: the confusion matrix as a heat map, true classes down,
/// predicted classes across, each cell's count printed and its colour the share of its row
/// (so a class's recall reads along the diagonal whatever its size). Returns the two paths.
pub fn confusion_matrix(matrix: &ConfusionMatrix, title: &str, stem: &Path) -> Result<[PathBuf; 2]> {
    const CELL: usize = 64;
    const FONT: usize = 24;
    let n = matrix.num_classes();
    let labels = matrix.labels();
    let label_w = labels.iter().map(|l| text_width(l, FONT)).max().unwrap_or(0) + 16;
    let (left, top) = (FONT * 2 + label_w, FONT * 3);
    let width = (left + n * CELL + FONT).max(text_width(title, FONT + 4) + 2 * FONT);
    let height = top + n * CELL + FONT * 4;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{FONT}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"{}\">{}</text>\n",
        FONT + 8,
        FONT + 4,
        xml_escape(title)
    );
    for (t, label) in labels.iter().enumerate() {
        let support = matrix.support(t).max(1) as f64;
        let y = top + t * CELL;
        svg += &format!(
            "<text x=\"{}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"{FONT}\" text-anchor=\"end\">{}</text>\n",
            left - 8,
            y + CELL / 2 + FONT / 3,
            xml_escape(label)
        );
        for p in 0..n {
            let count = matrix.count(t, p);
            let share = count as f64 / support; // 0 → white, 1 → dark blue
            let (r, g, b) = (
                (255.0 * (1.0 - share * 0.9)) as u8,
                (255.0 * (1.0 - share * 0.75)) as u8,
                (255.0 - share * 105.0) as u8,
            );
            let ink = if share > 0.55 { "white" } else { "black" };
            let x = left + p * CELL;
            svg += &format!(
                "<rect x=\"{x}\" y=\"{y}\" width=\"{CELL}\" height=\"{CELL}\" fill=\"rgb({r},{g},{b})\" stroke=\"#ccc\"/>\n\
                 <text x=\"{}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"{FONT}\" text-anchor=\"middle\" fill=\"{ink}\">{count}</text>\n",
                x + CELL / 2,
                y + CELL / 2 + FONT / 3
            );
        }
    }
    let below = top + n * CELL + 8;
    for (p, label) in labels.iter().enumerate() {
        let x = left + p * CELL + CELL / 2;
        svg += &format!(
            "<text x=\"{x}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"{FONT}\" text-anchor=\"middle\">{}</text>\n",
            below + FONT,
            xml_escape(label)
        );
    }
    svg += &format!(
        "<text x=\"{}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"{FONT}\" text-anchor=\"middle\">predicted class</text>\n\
         <text x=\"{}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"{FONT}\" text-anchor=\"middle\" \
         transform=\"rotate(-90 {} {})\">true class</text>\n</svg>\n",
        left + n * CELL / 2,
        below + FONT * 2 + 8,
        FONT,
        top + n * CELL / 2,
        FONT,
        top + n * CELL / 2
    );
    save_both(stem, &svg)
}
