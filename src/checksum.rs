//! SHA-256 helpers shared by verification and downloads. Checksums are stored as `sha256:<hex>`
//! (the contract's `formatChecksum`) and accepted with or without the prefix.

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// Lower-case hex of a digest (sha2 0.11 digests have no `{:x}`).
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

/// Finishes a hasher into lower-case hex.
pub fn finish_hex(hasher: Sha256) -> String {
    to_hex(&hasher.finalize())
}

/// Strips an optional `sha256:` prefix and lower-cases, so user input compares with our digests.
/// Returns `None` unless the rest is exactly 64 hex digits.
pub fn normalize(checksum: &str) -> Option<String> {
    let trimmed = checksum.trim();
    let hex = trimmed
        .strip_prefix("sha256:")
        .or_else(|| trimmed.strip_prefix("SHA256:"))
        .unwrap_or(trimmed);
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some(hex.to_ascii_lowercase())
    } else {
        None
    }
}

/// The stored form: `sha256:<hex>`.
pub fn format(hex: &str) -> String {
    format!("sha256:{hex}")
}

/// Hashes a file by streaming it in 1 MiB blocks (blocking; call from a blocking thread).
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(finish_hex(hasher))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_known_vector() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn normalizes_prefix_and_case() {
        let h = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
        assert_eq!(
            normalize(&format!("sha256:{h}")).unwrap(),
            h.to_ascii_lowercase()
        );
        assert!(normalize("sha256:xyz").is_none());
        assert!(normalize("").is_none());
        assert_eq!(format("ab"), "sha256:ab");
    }
}
