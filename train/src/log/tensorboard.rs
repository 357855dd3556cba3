//! TensorBoard event files of scalars, written by hand: TFRecord framing around `Event`
//! protocol buffers, the few fields TensorBoard reads for a scalar.
//!
//! A TFRecord is `length: u64 LE`, `masked_crc32c(length bytes): u32 LE`, the payload, and
//! `masked_crc32c(payload): u32 LE`, where the mask is `((crc >> 15) | (crc << 17)) +
//! 0xa282ead8` over CRC-32C (Castagnoli). The payloads are `tensorflow.Event` messages:
//!
//! ```text
//! Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//! Summary { repeated Value value = 1; }
//! Value   { string tag = 1; float simple_value = 2; }
//! ```
//!
//! The first event of a file carries `file_version = "brain.Event:2"`. (The crate
//! `tensorboard-rs` does the same job but pins protobuf 2, RUSTSEC-2024-0437; these three
//! messages take a few lines.)

use crate::error::{io, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// CRC-32C of `data`, masked as TFRecord stores it.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    (crc.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// Appends `value` as a protobuf varint.
fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a field key: field number and wire type (0 varint, 1 64-bit, 2 bytes, 5 32-bit).
fn key(out: &mut Vec<u8>, field: u64, wire_type: u64) {
    varint(out, (field << 3) | wire_type);
}

/// Appends a length-delimited field.
fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    key(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// An `Event` with `wall_time`, `step` and either a file version or one scalar summary.
fn event(wall_time: f64, step: i64, file_version: Option<&str>, scalar: Option<(&str, f32)>) -> Vec<u8> {
    let mut out = Vec::new();
    key(&mut out, 1, 1);
    out.extend_from_slice(&wall_time.to_le_bytes());
    key(&mut out, 2, 0);
    varint(&mut out, step as u64); // int64: two's complement as a 64-bit varint
    if let Some(version) = file_version {
        bytes_field(&mut out, 3, version.as_bytes());
    }
    if let Some((tag, value)) = scalar {
        let mut summary_value = Vec::new();
        bytes_field(&mut summary_value, 1, tag.as_bytes());
        key(&mut summary_value, 2, 5);
        summary_value.extend_from_slice(&value.to_le_bytes());
        let mut summary = Vec::new();
        bytes_field(&mut summary, 1, &summary_value);
        bytes_field(&mut out, 5, &summary);
    }
    out
}

/// One TFRecord around `payload`.
fn record(payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(payload.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&masked_crc32c(payload).to_le_bytes());
    out
}

/// Writes scalar events to one TensorBoard event file.
///
/// ```
/// use graphgrad_train::EventWriter;
/// let dir = std::env::temp_dir().join(format!("tb-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let mut events = EventWriter::create(&dir)?;
/// events.scalar("val/loss", 1, 0.25, 1.7e9)?;
/// events.flush()?;
/// assert!(events.path().file_name().unwrap().to_string_lossy().contains("tfevents"));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EventWriter {
    path: PathBuf,
    file: BufWriter<File>,
}

impl EventWriter {
    /// Creates `events.out.tfevents.<seconds>.graphgrad` in `dir` (replacing the event files
    /// this writer made there before, so a resumed run's scalars are not shown twice) and
    /// writes the file-version event.
    pub fn create(dir: &Path) -> Result<EventWriter> {
        let entries = std::fs::read_dir(dir).map_err(io("read", dir))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("events.out.tfevents.") && name.ends_with(".graphgrad") {
                std::fs::remove_file(entry.path()).map_err(io("remove", entry.path()))?;
            }
        }
        let now = wall_time();
        let path = dir.join(format!("events.out.tfevents.{}.graphgrad", now as u64));
        let file = File::create(&path).map_err(io("create", &path))?;
        let mut writer = EventWriter { path, file: BufWriter::new(file) };
        writer.write(&event(now, 0, Some("brain.Event:2"), None))?;
        Ok(writer)
    }

    /// Appends the scalar `tag = value` at `step`, stamped `wall_time` (seconds since 1970).
    pub fn scalar(&mut self, tag: &str, step: i64, value: f32, wall_time: f64) -> Result<()> {
        self.write(&event(wall_time, step, None, Some((tag, value))))
    }

    /// Writes buffered events to the file.
    pub fn flush(&mut self) -> Result<()> {
        self.file.flush().map_err(io("write", &self.path))
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, payload: &[u8]) -> Result<()> {
        self.file.write_all(&record(payload)).map_err(io("write", &self.path))
    }
}

/// Seconds since 1970 (0 if the clock is before it).
pub(crate) fn wall_time() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC-32C check value (RFC 3720): "123456789" → 0xE3069283; masked by hand:
    /// rotr15(0xE3069283) = 0x2507C60D, + 0xA282EAD8 = 0xC78AB0E5.
    #[test]
    fn masked_crc_matches_the_published_check_value() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(masked_crc32c(b"123456789"), 0xC78A_B0E5);
    }

    /// The bytes of a scalar event, field by field, as protoc would encode them.
    #[test]
    fn scalar_event_encoding() {
        let bytes = event(1.5, 300, None, Some(("a", 2.0)));
        let mut expected = vec![0x09];
        expected.extend_from_slice(&1.5f64.to_le_bytes());
        expected.extend_from_slice(&[0x10, 0xAC, 0x02]); // step 300 = 0b10_0101100
                                                         // summary (field 5): value (field 1, 8 bytes): tag "a" (0a 01 61), simple_value (15 + f32)
        expected.extend_from_slice(&[0x2A, 0x0A, 0x0A, 0x08, 0x0A, 0x01, b'a', 0x15]);
        expected.extend_from_slice(&2.0f32.to_le_bytes());
        assert_eq!(bytes, expected);
        let framed = record(&bytes);
        assert_eq!(u64::from_le_bytes(framed[..8].try_into().unwrap()), bytes.len() as u64);
        assert_eq!(&framed[12..12 + bytes.len()], &bytes[..]);
    }
}
