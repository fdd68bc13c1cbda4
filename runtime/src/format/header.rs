//! The file envelope: magic bytes, format version, body length and a SHA-256 of the body.
//!
//! Layout (little-endian): `magic[8] | version u32 | body_len u64 | sha256[32] | body`. The
//! checksum is verified before the body is decoded, so a damaged file is reported as damaged
//! rather than as whatever the decoder happens to trip over.

use sha2::{Digest, Sha256};

/// The first bytes of every FairQuant packed model (`.fqm`).
pub const MAGIC: [u8; 8] = *b"FQMODEL\0";
/// The body layout this build writes: version 3 added the calibrated activation scales
/// ([`super::ActivationScales`]).
pub const FORMAT_VERSION: u32 = 3;
/// The oldest body layout this build still reads: a version-2 file has no activation scales
/// and runs on the f32 path.
pub const OLDEST_READABLE_VERSION: u32 = 2;
/// Bytes before the body.
pub const HEADER_LEN: usize = 8 + 4 + 8 + 32;

/// What is wrong with a file's envelope or body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("truncated: {got} bytes, but the header alone needs {HEADER_LEN}")]
    ShortHeader { got: usize },
    #[error("not a FairQuant model file (magic bytes {found:02x?}, expected {MAGIC:02x?})")]
    BadMagic { found: Vec<u8> },
    #[error(
        "format version {found} is not supported (this runtime reads versions {OLDEST_READABLE_VERSION} to {FORMAT_VERSION})"
    )]
    Version { found: u32 },
    #[error("truncated: the header announces a {expected}-byte body, the file has {got}")]
    Truncated { expected: u64, got: u64 },
    #[error("{extra} unexpected bytes after the {expected}-byte body")]
    TrailingBytes { expected: u64, extra: u64 },
    #[error(
        "checksum mismatch: the body's SHA-256 differs from the header's; the file is damaged"
    )]
    Checksum,
    #[error("the file has {len} bytes, over the limit MAX_FILE_BYTES = {max}")]
    TooLarge { len: u64, max: u64 },
    #[error("the body cannot be decoded: {0}")]
    Decode(String),
    #[error("the body cannot be encoded: {0}")]
    Encode(String),
    #[error("invalid model: {0}")]
    Invalid(String),
}

/// Prefixes `body` with the header. Public so that tools and the fuzz targets can build a file
/// around any body: the checksum is no defence against a crafted body, only against damage.
pub fn wrap(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(body));
    out.extend_from_slice(body);
    out
}

/// Checks the header and returns the format version and the verified body.
pub fn unwrap(bytes: &[u8]) -> Result<(u32, &[u8]), FormatError> {
    // A short file whose first bytes are right is truncated, not foreign.
    let n = bytes.len().min(MAGIC.len());
    if bytes[..n] != MAGIC[..n] {
        return Err(FormatError::BadMagic {
            found: bytes[..n].to_vec(),
        });
    }
    if bytes.len() < HEADER_LEN {
        return Err(FormatError::ShortHeader { got: bytes.len() });
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(FormatError::Version { found: version });
    }
    let expected = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let body = &bytes[HEADER_LEN..];
    let got = body.len() as u64;
    if got < expected {
        return Err(FormatError::Truncated { expected, got });
    }
    if got > expected {
        return Err(FormatError::TrailingBytes {
            expected,
            extra: got - expected,
        });
    }
    if Sha256::digest(body).as_slice() != &bytes[20..HEADER_LEN] {
        return Err(FormatError::Checksum);
    }
    Ok((version, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_failure() {
        let file = wrap(b"hello body");
        assert_eq!(unwrap(&file).unwrap(), (FORMAT_VERSION, &b"hello body"[..]));
        assert_eq!(
            unwrap(&file[..10]),
            Err(FormatError::ShortHeader { got: 10 })
        );
        assert_eq!(unwrap(b""), Err(FormatError::ShortHeader { got: 0 }));
        assert!(matches!(
            unwrap(b"PK\x03\x04"),
            Err(FormatError::BadMagic { .. })
        ));
        assert!(matches!(
            unwrap(&file[..file.len() - 1]),
            Err(FormatError::Truncated { .. })
        ));
        let mut longer = file.clone();
        longer.push(0);
        assert!(matches!(
            unwrap(&longer),
            Err(FormatError::TrailingBytes { extra: 1, .. })
        ));
        // A file of an older readable version comes back with its version (the caller decodes
        // its body by that layout); the first, which had no extra tensors, and a future one
        // are refused.
        let mut v2 = file.clone();
        v2[8] = 2;
        assert_eq!(unwrap(&v2).map(|(v, _)| v), Ok(2));
        let mut v1 = file.clone();
        v1[8] = 1;
        assert_eq!(unwrap(&v1), Err(FormatError::Version { found: 1 }));
        let mut v4 = file.clone();
        v4[8] = FORMAT_VERSION as u8 + 1;
        assert!(matches!(unwrap(&v4), Err(FormatError::Version { .. })));
        let mut flipped = file;
        *flipped.last_mut().unwrap() ^= 0x10;
        assert_eq!(unwrap(&flipped), Err(FormatError::Checksum));
    }
}
