//! Data: in-memory data sets with seeded shuffling, mini-batches and train/validation/test
//! splits; readers for CSV and MNIST IDX files; the UCI digits data set shipped in the crate.
//!
//! Everything random takes a `ChaCha8Rng`, so one seed fixes every shuffle and split.

mod csv;
mod dataset;
mod digits;
mod idx;

pub use csv::{parse_csv, read_csv, CsvOptions, CsvTable, Header};
pub use dataset::{
    shuffled_indices, split_indices, Batch, BatchTargets, Batches, Dataset, Split, SplitFractions,
    SplitIndices, Targets,
};
pub use digits::{load_digits, DIGITS_DESCRIPTION, DIGITS_LICENSE, DIGITS_SAMPLES};
pub use idx::{load_mnist, mnist_from_arrays, parse_idx, read_idx, IdxArray, IdxType};
