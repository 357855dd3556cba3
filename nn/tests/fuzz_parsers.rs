//! An in-tree mutation fuzzer for the data readers: CSV text and IDX files (plain and gzipped).
//! Valid inputs are mutated (bit flips, overwritten, inserted and removed bytes, truncation,
//! extreme header fields) for a fixed count from a fixed seed, and every result is parsed and,
//! when it parses, turned into a data set and a batch: each must return `Ok` or `Err`, never
//! panic or abort.

use graphgrad_nn::data::{mnist_from_arrays, parse_csv, parse_idx, CsvOptions};
use graphgrad_ops::testing::assert_mutants_never_panic;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::io::Write;

/// Mutated inputs per reader.
const CASES: usize = 3000;

/// One random mutation of `bytes`; `specials` are bytes worth planting (delimiters, digits).
fn mutate(bytes: &mut Vec<u8>, specials: &[u8], rng: &mut ChaCha8Rng) {
    let len = bytes.len().max(1);
    let at = |rng: &mut ChaCha8Rng, n: usize| rng.gen_range(0..len).min(n.saturating_sub(1));
    match rng.gen_range(0..7) {
        0 => {
            let i = at(rng, bytes.len());
            if let Some(b) = bytes.get_mut(i) {
                *b ^= 1 << rng.gen_range(0..8);
            }
        }
        1 => {
            let i = at(rng, bytes.len());
            let v = specials[rng.gen_range(0..specials.len())];
            if let Some(b) = bytes.get_mut(i) {
                *b = v;
            }
        }
        2 => {
            // an extreme big-endian 32-bit field (IDX dimensions)
            let i = rng.gen_range(0..len);
            let v: u32 = [u32::MAX, 1 << 31, 1 << 16, 0][rng.gen_range(0..4)];
            for (k, byte) in v.to_be_bytes().into_iter().enumerate() {
                if let Some(b) = bytes.get_mut(i + k) {
                    *b = byte;
                }
            }
        }
        3 => bytes.truncate(rng.gen_range(0..len)),
        4 => {
            let i = rng.gen_range(0..=bytes.len());
            bytes.insert(i, specials[rng.gen_range(0..specials.len())]);
        }
        5 => {
            if !bytes.is_empty() {
                bytes.remove(rng.gen_range(0..bytes.len()));
            }
        }
        _ => {
            // a number text that is extreme or not a number
            let i = rng.gen_range(0..=bytes.len());
            let word =
                ["1e20", "1e300", "-1", "NaN", "inf", "18446744073709551616", "0.5", ""][rng.gen_range(0..8)];
            bytes.splice(i..i, word.bytes());
        }
    }
}

/// Runs `parse` on `CASES` mutants of `valid` (`specials` planted among them); none may panic.
fn fuzz(name: &str, valid: &[u8], specials: &[u8], seed: u64, parse: impl Fn(&[u8])) {
    assert_mutants_never_panic(name, valid, seed, CASES, |bytes, rng| mutate(bytes, specials, rng), parse);
}

#[test]
fn mutated_csv_is_an_error_not_a_panic() {
    let valid = b"x,y,label\n0.5,1,0\n2,-3e1,1\n7,8,2\n";
    fuzz("csv", valid, b",\n\r\"0123456789.-e ", 11, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        for options in [CsvOptions::default(), CsvOptions::default().with_delimiter(';')] {
            if let Ok(table) = parse_csv(&text, &options) {
                if let Ok(ds) = table.clone().into_classification(None) {
                    let _ = ds.num_classes();
                    let _ = ds.batch(&(0..ds.len()).collect::<Vec<_>>());
                }
                let _ = table.into_regression(1);
            }
        }
    });
}

#[test]
fn mutated_idx_is_an_error_not_a_panic() {
    // 2 images of 2×2 bytes, and their 2 labels
    let images: Vec<u8> =
        [&[0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2][..], &[1, 2, 3, 4, 5, 6, 7, 8]].concat();
    let labels: Vec<u8> = vec![0, 0, 0x08, 1, 0, 0, 0, 2, 3, 9];
    let specials = [0, 1, 2, 3, 0x08, 0x0D, 0x0E, 0xff, 0x1f, 0x8b];
    let load = |images: &[u8], labels: &[u8]| {
        if let (Ok(images), Ok(labels)) = (parse_idx(images), parse_idx(labels)) {
            if let Ok(ds) = mnist_from_arrays(&images, &labels) {
                let _ = ds.num_classes();
                let _ = ds.batch(&(0..ds.len()).collect::<Vec<_>>());
            }
        }
    };
    fuzz("idx images", &images, &specials, 12, |b| load(b, &labels));
    fuzz("idx labels", &labels, &specials, 13, |b| load(&images, b));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&images).unwrap();
    fuzz("idx gzipped", &gz.finish().unwrap(), &specials, 14, |b| load(b, &labels));
}
