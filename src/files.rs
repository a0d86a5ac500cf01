//! The file helpers genai-electron exports (`ensureDirectory`, `fileExists`, `getFileSize`,
//! `deleteFile`, `moveFile`, `calculateChecksum`), with its failure texts: each failure is a
//! `FileSystemError` whose details carry the path(s) and the OS error. Blocking; the napi layer
//! runs them on the blocking pool.

use crate::error::{Error, Result};
use serde_json::json;
use std::path::Path;

fn os_error(e: &std::io::Error) -> serde_json::Value {
    json!({ "message": e.to_string(), "code": e.raw_os_error() })
}

fn failed(message: String, path: &str, e: &std::io::Error) -> Error {
    Error::fs(message, json!({ "path": path, "error": os_error(e) }))
}

/// Creates `path` and its parents; an existing directory is fine.
pub fn ensure_directory(path: &str) -> Result<()> {
    std::fs::create_dir_all(path)
        .map_err(|e| failed(format!("Failed to create directory: {path}"), path, &e))
}

/// True when something exists at `path` (following links), false on any error.
pub fn file_exists(path: &str) -> bool {
    std::fs::metadata(path).is_ok()
}

/// Size in bytes.
pub fn file_size(path: &str) -> Result<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| failed(format!("Failed to get file size: {path}"), path, &e))
}

/// Removes a file (not a directory).
pub fn delete_file(path: &str) -> Result<()> {
    std::fs::remove_file(path)
        .map_err(|e| failed(format!("Failed to delete file: {path}"), path, &e))
}

/// Renames `from` to `to` (same file system, replacing `to`).
pub fn move_file(from: &str, to: &str) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| {
        Error::fs(
            format!("Failed to move file from {from} to {to}"),
            json!({ "fromPath": from, "toPath": to, "error": os_error(&e) }),
        )
    })
}

/// Lower-case hex SHA-256 of the file, streamed.
pub fn sha256(path: &str) -> Result<String> {
    crate::checksum::sha256_file(Path::new(path))
        .map_err(|e| failed(format!("Failed to calculate checksum: {path}"), path, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_and_their_failures() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        let d = d.to_str().unwrap();
        ensure_directory(d).unwrap();
        ensure_directory(d).unwrap();
        let f = format!("{d}/f");
        std::fs::write(&f, b"abc").unwrap();
        assert!(file_exists(&f));
        assert_eq!(file_size(&f).unwrap(), 3);
        assert_eq!(
            sha256(&f).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let g = format!("{d}/g");
        move_file(&f, &g).unwrap();
        assert!(!file_exists(&f));
        delete_file(&g).unwrap();
        let err = delete_file(&g).unwrap_err();
        assert!(matches!(&err, Error::FileSystem { message, details }
                if *message == format!("Failed to delete file: {g}") && details["path"] == *g));
        assert!(file_size(&g).is_err());
        assert!(sha256(&g).is_err());
        assert!(move_file(&g, &f).is_err());
        let blocked = format!("{f}x/y");
        std::fs::write(format!("{f}x"), b"").unwrap();
        assert!(ensure_directory(&blocked).is_err());
    }
}
