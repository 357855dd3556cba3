//! The checkpoint file layout: a fixed 32-byte header, then the bincode payload.
//!
//! ```text
//! offset  size  field
//!      0     8  magic  b"GGRDCKPT"
//!      8     4  format version (u32, little-endian; this build writes 1)
//!     12     4  flags (u32; 0, reserved)
//!     16     8  payload length in bytes (u64)
//!     24     4  CRC-32 (IEEE, crc32fast) of the payload
//!     28     4  CRC-32 of bytes 0..28 (the header itself)
//!     32     …  payload: the bincode encoding of `Checkpoint`
//! ```
//!
//! The header has its own checksum so that a damaged version or length field is reported as
//! a damaged header rather than as a "future version" or a "truncated" file. Reading checks,
//! in order: magic, header size, header checksum, version, flags, length, payload checksum,
//! and only then decodes (with bincode's size limit set to the payload length, so a corrupted
//! length prefix inside the payload cannot ask for a huge allocation).

use crate::FormatError;

/// The first 8 bytes of every checkpoint file.
pub const MAGIC: [u8; 8] = *b"GGRDCKPT";
/// The format version this build writes (and the newest it reads).
pub const FORMAT_VERSION: u32 = 1;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 32;

/// Prepends the header (magic, `version`, lengths and checksums) to `payload`: the bytes of a
/// checkpoint file around its payload.
pub fn seal_payload(payload: &[u8], version: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let header_crc = crc32fast::hash(&out[..28]);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// Checks the header and the payload checksum; returns the payload.
pub(crate) fn unseal(bytes: &[u8]) -> Result<&[u8], FormatError> {
    let found = bytes.len() as u64;
    let prefix = &bytes[..bytes.len().min(MAGIC.len())];
    if prefix != &MAGIC[..prefix.len()] {
        return Err(FormatError::WrongMagic { found: prefix.to_vec() });
    }
    if bytes.len() < HEADER_LEN {
        return Err(FormatError::Truncated { expected: HEADER_LEN as u64, found });
    }
    let (stored, computed) = (u32_at(bytes, 28), crc32fast::hash(&bytes[..28]));
    if stored != computed {
        return Err(FormatError::CorruptHeader { stored, computed });
    }
    let version = u32_at(bytes, 8);
    if version > FORMAT_VERSION {
        return Err(FormatError::FutureVersion { found: version, supported: FORMAT_VERSION });
    }
    if version == 0 {
        return Err(FormatError::UnknownVersion { found: version });
    }
    let flags = u32_at(bytes, 12);
    if flags != 0 {
        return Err(FormatError::Malformed { reason: format!("unknown header flags {flags:#x}") });
    }
    let payload_len = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    let expected = (HEADER_LEN as u64).saturating_add(payload_len);
    if found < expected {
        return Err(FormatError::Truncated { expected, found });
    }
    if found > expected {
        return Err(FormatError::TrailingBytes { expected, found });
    }
    let payload = &bytes[HEADER_LEN..];
    let (stored, computed) = (u32_at(bytes, 24), crc32fast::hash(payload));
    if stored != computed {
        return Err(FormatError::ChecksumMismatch { stored, computed });
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_unseal_to_the_payload() {
        let sealed = seal_payload(b"hello", FORMAT_VERSION);
        assert_eq!(sealed.len(), HEADER_LEN + 5);
        assert_eq!(unseal(&sealed).unwrap(), b"hello");
    }

    #[test]
    fn each_kind_of_damage_is_named() {
        let sealed = seal_payload(b"hello", FORMAT_VERSION);
        assert!(matches!(unseal(b"PK\x03\x04"), Err(FormatError::WrongMagic { .. })));
        assert!(matches!(unseal(&sealed[..5]), Err(FormatError::Truncated { expected: 32, found: 5 })));
        assert!(matches!(unseal(&sealed[..34]), Err(FormatError::Truncated { expected: 37, found: 34 })));
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(matches!(unseal(&longer), Err(FormatError::TrailingBytes { expected: 37, found: 38 })));
        let mut flipped = sealed.clone();
        flipped[33] ^= 0x10;
        assert!(matches!(unseal(&flipped), Err(FormatError::ChecksumMismatch { .. })));
        let mut header = sealed.clone();
        header[9] ^= 1;
        assert!(matches!(unseal(&header), Err(FormatError::CorruptHeader { .. })));
        let future = seal_payload(b"hello", FORMAT_VERSION + 1);
        assert_eq!(unseal(&future), Err(FormatError::FutureVersion { found: 2, supported: 1 }));
        assert_eq!(unseal(&seal_payload(b"", 0)), Err(FormatError::UnknownVersion { found: 0 }));
    }
}
