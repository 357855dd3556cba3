//! Grids drawn as plain SVG: grey-level images (originals against reconstructions) and heat
//! maps with the value in each cell (attention weights). Moved here from the examples'
//! helpers.

use super::{save_svg, xml_escape};
use crate::error::{Error, Result};
use std::path::Path;

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
) -> Result<()> {
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
                return Err(Error::Plot {
                    what: title.to_string(),
                    reason: format!("image of {} pixels, expected {height}×{width}", image.len()),
                });
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
    save_svg(path, &svg)
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
pub(crate) fn text_width(text: &str, size: usize) -> usize {
    (text.chars().count() * size * 6).div_ceil(10)
}

/// Writes an SVG of heat maps in a grid (white = the smallest value of each map, dark blue =
/// the largest), with the value printed in each cell: e.g. attention weights. Row labels get
/// the width their longest label needs, cells the width of their longest column label, each
/// map the width of its title; as many maps share a row as fit in about 1 300 px, and the
/// figure is at least as wide as its title.
pub fn heat_maps(path: &Path, title: &str, maps: &[HeatMap]) -> Result<()> {
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
            return Err(Error::Plot {
                what: title.to_string(),
                reason: format!("heat map {:?} does not match its labels", map.title),
            });
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
    save_svg(path, &svg)
}
