//! Figures: learning curves and confusion matrices of a run (written at the end of `fit`, or
//! on demand), and the general charts and grids the examples draw.
//!
//! Every figure is drawn once as SVG; [`save_png`] renders that SVG to PNG with resvg (text
//! set in the system's sans-serif font: DejaVu, Liberation or Noto, whichever is installed),
//! so the two files always show the same picture. The training figures are sized for a slide
//! ([`Typography::SLIDE`]: 24 px tick labels on panels of 900 × 640 px).

mod chart;
mod curves;
mod grid;

pub use chart::{
    line_chart, lines_and_points, palette, panels, styled_chart, tick, Line, Panel, Series, Style, Typography,
};
pub use curves::{confusion_matrix, learning_curves, CurveOptions};
pub use grid::{heat_maps, image_grid, HeatMap, ImageRow};
/// A colour of [`Style`] (plotters' type).
pub use plotters::style::RGBColor;

use crate::error::{io, Error, Result};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// An [`Error::Plot`] for the figure `what`.
pub(crate) fn plot_error<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> Error + '_ {
    move |e| Error::Plot { what: what.to_string(), reason: e.to_string() }
}

/// Writes `svg` to `path`.
pub fn save_svg(path: &Path, svg: &str) -> Result<()> {
    std::fs::write(path, svg).map_err(io("write", path))
}

/// The system's fonts, loaded once, with `sans-serif` mapped to an installed family.
fn fonts() -> Arc<resvg::usvg::fontdb::Database> {
    static FONTS: OnceLock<Arc<resvg::usvg::fontdb::Database>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let mut db = resvg::usvg::fontdb::Database::new();
            db.load_system_fonts();
            let preferred = ["DejaVu Sans", "Liberation Sans", "Noto Sans", "Arial", "Helvetica", "FreeSans"];
            let installed = |family: &str| {
                db.faces().any(|face| face.families.iter().any(|(name, _)| name.eq_ignore_ascii_case(family)))
            };
            if let Some(family) = preferred.into_iter().find(|f| installed(f)) {
                db.set_sans_serif_family(family);
            }
            Arc::new(db)
        })
        .clone()
}

/// Renders `svg` to a PNG file of the SVG's size in pixels.
pub fn save_png(path: &Path, svg: &str) -> Result<()> {
    let what = path.display().to_string();
    let options = resvg::usvg::Options { fontdb: fonts(), ..Default::default() };
    let tree = resvg::usvg::Tree::from_str(svg, &options).map_err(plot_error(&what))?;
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| Error::Plot { what: what.clone(), reason: format!("cannot make a {size:?} image") })?;
    pixmap.fill(resvg::tiny_skia::Color::WHITE);
    resvg::render(&tree, resvg::tiny_skia::Transform::default(), &mut pixmap.as_mut());
    let png = pixmap.encode_png().map_err(plot_error(&what))?;
    std::fs::write(path, png).map_err(io("write", path))
}

/// Writes `svg` as `stem.svg` and `stem.png` beside each other; returns both paths.
pub(crate) fn save_both(stem: &Path, svg: &str) -> Result<[std::path::PathBuf; 2]> {
    let (svg_path, png_path) = (stem.with_extension("svg"), stem.with_extension("png"));
    save_svg(&svg_path, svg)?;
    save_png(&png_path, svg)?;
    Ok([svg_path, png_path])
}

/// `text` with the XML special characters escaped.
pub(crate) fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
