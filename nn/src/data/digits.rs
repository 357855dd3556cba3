//! The UCI optical-recognition-of-handwritten-digits data set, shipped inside the crate:
//! 1,797 8×8 images of the digits 0–9, each pixel a count in 0..=16.
//!
//! Source and licence: E. Alpaydin and C. Kaynak, "Optical Recognition of Handwritten
//! Digits", UCI Machine Learning Repository (1998), licensed under Creative Commons
//! Attribution 4.0 International (CC BY 4.0). The file `nn/data/digits.csv.gz` is the UCI test
//! set as distributed with scikit-learn (64 pixel columns then the label, no header); its
//! description is [`DIGITS_DESCRIPTION`]. Nothing is downloaded: the compressed bytes are part
//! of the binary (`include_bytes!`, about 57 kB).

use super::csv::{parse_csv, CsvOptions, Header};
use super::dataset::Dataset;
use graphgrad_autodiff::{bail, Result};
use std::io::Read;

/// The gzip-compressed CSV: 1,797 rows of 64 pixels (0..=16) and a label (0..=9).
const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../data/digits.csv.gz");

/// The data set's description (UCI / scikit-learn text, reStructuredText).
pub const DIGITS_DESCRIPTION: &str = include_str!("../../data/digits.rst");

/// Attribution required by the data set's licence.
pub const DIGITS_LICENSE: &str = "Optical Recognition of Handwritten Digits, E. Alpaydin and C. Kaynak, \
UCI Machine Learning Repository (1998); licensed under CC BY 4.0 \
(https://creativecommons.org/licenses/by/4.0/)";

/// Number of samples.
pub const DIGITS_SAMPLES: usize = 1797;

/// The digits data set: features `[64]` with raw pixel counts 0..=16 (scale with
/// [`Dataset::scale_features`]`(1.0 / 16.0)`, view as images with
/// [`Dataset::with_feature_shape`]`(&[1, 8, 8])`), labels 0..=9, in the file's order.
///
/// ```
/// let digits = graphgrad_nn::data::load_digits()?;
/// assert_eq!((digits.len(), digits.num_features(), digits.num_classes()), (1797, 64, 10));
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
pub fn load_digits() -> Result<Dataset> {
    let mut text = String::new();
    if let Err(e) = flate2::read::GzDecoder::new(DIGITS_CSV_GZ).read_to_string(&mut text) {
        bail!("load_digits", "the embedded data is corrupt: {e}");
    }
    let table = parse_csv(&text, &CsvOptions::default().with_header(Header::Absent))?;
    if (table.rows, table.columns) != (DIGITS_SAMPLES, 65) {
        bail!(
            "load_digits",
            "expected {DIGITS_SAMPLES} rows of 65 columns, found {} of {}",
            table.rows,
            table.columns
        );
    }
    table.into_classification(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_digits_have_the_documented_shape_and_range() -> Result<()> {
        let digits = load_digits()?;
        assert_eq!((digits.len(), digits.num_features(), digits.num_classes()), (1797, 64, 10));
        assert!(digits.features().iter().all(|&v| (0.0..=16.0).contains(&v) && v.fract() == 0.0));
        // class sizes of the UCI test set (as scikit-learn reports them)
        let mut counts = [0usize; 10];
        digits.labels().unwrap().iter().for_each(|&l| counts[l] += 1);
        assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
        // the first image is a 0: its first row of pixels is 0 0 5 13 9 1 0 0
        assert_eq!(digits.labels().unwrap()[0], 0);
        assert_eq!(&digits.features()[..8], &[0.0, 0.0, 5.0, 13.0, 9.0, 1.0, 0.0, 0.0]);
        assert!(DIGITS_DESCRIPTION.contains("Alpaydin") && DIGITS_LICENSE.contains("CC BY 4.0"));
        Ok(())
    }
}
