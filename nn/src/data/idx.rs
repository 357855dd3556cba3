//! The IDX format of the MNIST files: a reader (plain or gzip-compressed), a writer, and a
//! loader that pairs an image file with a label file.
//!
//! Layout (all integers big-endian): two zero bytes, a type code (0x08 u8, 0x09 i8,
//! 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64), the number of dimensions, one u32 size per
//! dimension, then the values row-major. The reader checks every part and rejects a file that
//! is truncated or has bytes left over, so a half-downloaded file is an error, not a data set.

use super::dataset::Dataset;
use graphgrad_autodiff::{bail, Result};
use std::io::Read;
use std::path::Path;

/// Element type of an IDX file, with its type code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdxType {
    /// 0x08: unsigned byte.
    U8,
    /// 0x09: signed byte.
    I8,
    /// 0x0B: 16-bit integer.
    I16,
    /// 0x0C: 32-bit integer.
    I32,
    /// 0x0D: 32-bit float.
    F32,
    /// 0x0E: 64-bit float.
    F64,
}

impl IdxType {
    fn from_code(code: u8) -> Option<IdxType> {
        Some(match code {
            0x08 => IdxType::U8,
            0x09 => IdxType::I8,
            0x0B => IdxType::I16,
            0x0C => IdxType::I32,
            0x0D => IdxType::F32,
            0x0E => IdxType::F64,
            _ => return None,
        })
    }

    /// The type code in the file's header.
    pub fn code(self) -> u8 {
        match self {
            IdxType::U8 => 0x08,
            IdxType::I8 => 0x09,
            IdxType::I16 => 0x0B,
            IdxType::I32 => 0x0C,
            IdxType::F32 => 0x0D,
            IdxType::F64 => 0x0E,
        }
    }

    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            IdxType::U8 | IdxType::I8 => 1,
            IdxType::I16 => 2,
            IdxType::I32 | IdxType::F32 => 4,
            IdxType::F64 => 8,
        }
    }
}

/// An n-dimensional array read from an IDX file; values are widened to f64 (exact for every
/// IDX type).
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    /// The stored element type.
    pub dtype: IdxType,
    /// Dimension sizes, outermost first.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub values: Vec<f64>,
}

impl IdxArray {
    /// The array encoded as IDX bytes (values converted to `dtype`, saturating integers).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        if self.values.len() != self.shape.iter().product::<usize>() || self.shape.len() > 255 {
            bail!("write_idx", "{} values do not fill shape {:?}", self.values.len(), self.shape);
        }
        let mut out = vec![0, 0, self.dtype.code(), self.shape.len() as u8];
        for &d in &self.shape {
            let Ok(d) = u32::try_from(d) else {
                bail!("write_idx", "dimension {d} exceeds the format's u32")
            };
            out.extend_from_slice(&d.to_be_bytes());
        }
        for &v in &self.values {
            match self.dtype {
                IdxType::U8 => out.push(v as u8),
                IdxType::I8 => out.extend_from_slice(&(v as i8).to_be_bytes()),
                IdxType::I16 => out.extend_from_slice(&(v as i16).to_be_bytes()),
                IdxType::I32 => out.extend_from_slice(&(v as i32).to_be_bytes()),
                IdxType::F32 => out.extend_from_slice(&(v as f32).to_be_bytes()),
                IdxType::F64 => out.extend_from_slice(&v.to_be_bytes()),
            }
        }
        Ok(out)
    }
}

/// Decodes IDX bytes (gzip-compressed bytes are recognised by their magic and inflated first).
pub fn parse_idx(bytes: &[u8]) -> Result<IdxArray> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut raw = Vec::new();
        if let Err(e) = flate2::read::GzDecoder::new(bytes).read_to_end(&mut raw) {
            bail!("read_idx", "gzip data is corrupt or truncated: {e}");
        }
        return parse_idx(&raw);
    }
    if bytes.len() < 4 {
        bail!("read_idx", "file has {} bytes, too short for the 4-byte magic number", bytes.len());
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        bail!("read_idx", "bad magic number {:02x?}: an IDX file starts with two zero bytes", &bytes[..4]);
    }
    let Some(dtype) = IdxType::from_code(bytes[2]) else {
        bail!("read_idx", "unknown type code 0x{:02x} in the magic number", bytes[2]);
    };
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        bail!(
            "read_idx",
            "truncated header: {rank} dimensions need {header} bytes, the file has {}",
            bytes.len()
        );
    }
    let shape: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected =
        shape.iter().try_fold(dtype.size(), |acc, &d| acc.checked_mul(d)).and_then(|n| n.checked_add(header));
    match expected {
        Some(n) if n == bytes.len() => {}
        Some(n) if n > bytes.len() => {
            bail!(
                "read_idx",
                "truncated data: shape {shape:?} of {dtype:?} needs {n} bytes, the file has {}",
                bytes.len()
            )
        }
        Some(n) => bail!(
            "read_idx",
            "{} bytes left over after shape {shape:?} of {dtype:?} ({n} bytes)",
            bytes.len() - n
        ),
        None => bail!("read_idx", "shape {shape:?} is too large"),
    }
    let data = &bytes[header..];
    let values: Vec<f64> = match dtype {
        IdxType::U8 => data.iter().map(|&b| b as f64).collect(),
        IdxType::I8 => data.iter().map(|&b| b as i8 as f64).collect(),
        IdxType::I16 => data.chunks_exact(2).map(|c| i16::from_be_bytes([c[0], c[1]]) as f64).collect(),
        IdxType::I32 => {
            data.chunks_exact(4).map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]) as f64).collect()
        }
        IdxType::F32 => {
            data.chunks_exact(4).map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]) as f64).collect()
        }
        IdxType::F64 => {
            data.chunks_exact(8).map(|c| f64::from_be_bytes(c.try_into().expect("8 bytes"))).collect()
        }
    };
    Ok(IdxArray { dtype, shape, values })
}

/// Reads an IDX file (optionally gzip-compressed, like the `.gz` files MNIST is shipped as).
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray> {
    let path = path.as_ref();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => bail!("read_idx", "cannot read {}: {e}", path.display()),
    };
    parse_idx(&bytes).map_err(|e| match e {
        graphgrad_autodiff::Error::InvalidArgument { op, reason } => {
            graphgrad_autodiff::Error::InvalidArgument { op, reason: format!("{}: {reason}", path.display()) }
        }
        other => other,
    })
}

/// Pairs an image array `[n, rows, cols]` with a label array `[n]` as a classification data
/// set of features `[1, rows, cols]` scaled to `[0, 1]` (pixel / 255).
pub fn mnist_from_arrays(images: &IdxArray, labels: &IdxArray) -> Result<Dataset> {
    if images.shape.len() != 3 {
        bail!("load_mnist", "images must have shape [n, rows, cols], got {:?}", images.shape);
    }
    if labels.shape.len() != 1 || labels.shape[0] != images.shape[0] {
        bail!("load_mnist", "labels of shape {:?} do not match {} images", labels.shape, images.shape[0]);
    }
    use super::dataset::class_index;
    if let Some(bad) = labels.values.iter().find(|&&v| class_index(v).is_none()) {
        bail!("load_mnist", "label {bad:?} is not a class index (an integer in 0..=2^53)");
    }
    let labels = labels.values.iter().filter_map(|&v| class_index(v)).collect();
    let features = images.values.iter().map(|&v| (v / 255.0) as f32).collect();
    Dataset::classification(features, &[1, images.shape[1], images.shape[2]], labels)
}

/// Loads MNIST (or Fashion-MNIST) from an image file and a label file, each plain or gzipped:
/// features `[1, 28, 28]` in `[0, 1]`, labels 0..9. The files are not shipped; point this at
/// a local copy.
pub fn load_mnist(images: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<Dataset> {
    mnist_from_arrays(&read_idx(images)?, &read_idx(labels)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A 2-image, 2×3 MNIST-like pair written by hand (not by `to_bytes`).
    fn images_bytes() -> Vec<u8> {
        let mut b = vec![0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3];
        b.extend_from_slice(&[0, 51, 102, 153, 204, 255, 255, 0, 0, 0, 0, 255]);
        b
    }

    fn labels_bytes() -> Vec<u8> {
        vec![0, 0, 0x08, 1, 0, 0, 0, 2, 7, 3]
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("graphgrad-idx-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn reads_hand_written_files_into_a_dataset() -> Result<()> {
        let dir = temp_dir("ok");
        std::fs::write(dir.join("images.idx"), images_bytes()).unwrap();
        // the label file gzipped, as MNIST is distributed
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&labels_bytes()).unwrap();
        std::fs::write(dir.join("labels.idx.gz"), gz.finish().unwrap()).unwrap();
        let ds = load_mnist(dir.join("images.idx"), dir.join("labels.idx.gz"))?;
        assert_eq!((ds.len(), ds.feature_shape()), (2, &[1usize, 2, 3][..]));
        assert_eq!(ds.labels(), Some(&[7usize, 3][..]));
        // 51 / 255 = 0.2, 255 / 255 = 1
        assert_eq!(&ds.features()[..6], &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        std::fs::remove_dir_all(&dir).unwrap();
        Ok(())
    }

    #[test]
    fn every_type_round_trips() -> Result<()> {
        for dtype in [IdxType::U8, IdxType::I8, IdxType::I16, IdxType::I32, IdxType::F32, IdxType::F64] {
            let values = match dtype {
                IdxType::U8 => vec![0.0, 1.0, 200.0, 255.0],
                IdxType::F32 | IdxType::F64 => vec![-1.5, 0.25, 3.0, 1e6],
                _ => vec![-100.0, -1.0, 0.0, 127.0],
            };
            let a = IdxArray { dtype, shape: vec![2, 2], values };
            let bytes = a.to_bytes()?;
            assert_eq!(bytes.len(), 4 + 8 + 4 * dtype.size());
            assert_eq!(parse_idx(&bytes)?, a, "{dtype:?}");
        }
        // i16 is big-endian: 0x0102 = 258, 0xFFFE = −2
        let parsed = parse_idx(&[0, 0, 0x0B, 1, 0, 0, 0, 2, 1, 2, 0xFF, 0xFE])?;
        assert_eq!(parsed.values, vec![258.0, -2.0]);
        Ok(())
    }

    #[test]
    fn bad_files_are_errors() {
        let err = |b: &[u8]| parse_idx(b).unwrap_err().to_string();
        let good = images_bytes();
        assert!(err(&good[..good.len() - 1]).contains("truncated data"));
        assert!(err(&good[..10]).contains("truncated header"));
        assert!(err(&good[..3]).contains("too short"));
        let mut extra = good.clone();
        extra.push(0);
        assert!(err(&extra).contains("left over"));
        let mut magic = good.clone();
        magic[0] = 1;
        assert!(err(&magic).contains("bad magic"));
        let mut code = good.clone();
        code[2] = 0x0A;
        assert!(err(&code).contains("unknown type code 0x0a"));
        assert!(err(&[0x1f, 0x8b, 8, 0, 1, 2]).contains("gzip"));
        // a shape whose byte count overflows usize: 8 · (2³² − 1)³ > 2⁶⁴
        assert!(err(&[0, 0, 0x0E, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255])
            .contains("too large"));
        // mismatched counts and out-of-range files
        let images = parse_idx(&good).unwrap();
        let three_labels = parse_idx(&[0, 0, 0x08, 1, 0, 0, 0, 3, 1, 2, 3]).unwrap();
        assert!(mnist_from_arrays(&images, &three_labels).is_err());
        assert!(mnist_from_arrays(&three_labels, &three_labels).is_err());
        let dir = temp_dir("bad");
        std::fs::write(dir.join("cut.idx"), &good[..20]).unwrap();
        let e = read_idx(dir.join("cut.idx")).unwrap_err().to_string();
        assert!(e.contains("cut.idx") && e.contains("truncated"), "{e}");
        assert!(read_idx(dir.join("missing.idx")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
