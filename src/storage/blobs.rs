//! Shared blobs: identical files (same sha256) of different models and variants are stored once.
//! Each verified model file is hard-linked with `models/.blobs/sha256-<hex>`, so another model
//! needing the same content gets a link instead of a download, and the bytes stay on disk while
//! any model's file still links them. A blob is removed once no record lists its hash any more
//! (`collect`), which is when its last user was deleted. Where hard links are impossible (another
//! volume, a file system without them) files are copied and simply not shared.
//!
//! Files from outside (a Hugging Face cache, a ComfyUI `models/` folder) are brought in the same
//! way, after their hash is checked.

use crate::error::{Error, Result};
use crate::storage::atomic::sync_dir;
use crate::storage::paths::Paths;
use crate::storage::store::Store;
use serde_json::json;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub const BLOB_DIR: &str = ".blobs";

pub fn blob_dir(paths: &Paths) -> PathBuf {
    paths.models().join(BLOB_DIR)
}

/// `sha` is lower-case hex.
pub fn blob_path(paths: &Paths, sha: &str) -> PathBuf {
    blob_dir(paths).join(format!("sha256-{sha}"))
}

/// Whether two paths are the same file (same device and inode).
#[cfg(unix)]
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// The identity of the file at `p` for counting disk use once per file (paths otherwise).
pub fn file_key(p: &Path) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::metadata(p) {
            return format!("{}:{}", m.dev(), m.ino());
        }
    }
    p.display().to_string()
}

fn temp_beside(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(format!(".link-{}", std::process::id()));
    PathBuf::from(s)
}

/// Puts `src`'s content at `dest` (which must not be a file another record uses with other
/// content: callers decide that): a hard link where possible, else a copy. Atomic: `dest` is
/// either its old self or the new file. Returns whether it is a link.
pub fn link_or_copy(src: &Path, dest: &Path) -> Result<bool> {
    let tmp = temp_beside(dest);
    let _ = std::fs::remove_file(&tmp);
    let linked = match std::fs::hard_link(src, &tmp) {
        Ok(()) => true,
        Err(_) => {
            std::fs::copy(src, &tmp)
                .map_err(|e| Error::io("Failed to copy a shared file", dest, &e))?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io("Failed to copy a shared file", dest, &e))?;
            false
        }
    };
    if let Err(e) = std::fs::rename(&tmp, dest) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("Failed to place a shared file", dest, &e));
    }
    if let Some(d) = dest.parent() {
        sync_dir(d);
    }
    Ok(linked)
}

/// After a file with hash `sha` is verified at `dest`: it becomes the blob of that content, so
/// later downloads of the same content link to it. A blob is never trusted unverified: one that
/// is another file is replaced (files already linked to it keep their bytes). Best effort: a file
/// system without hard links leaves things as they are.
pub fn adopt(paths: &Paths, dest: &Path, sha: &str) -> Result<()> {
    let blob = blob_path(paths, sha);
    if same_file(&blob, dest) {
        return Ok(());
    }
    let dir = blob_dir(paths);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("Failed to create", &dir, &e))?;
    let tmp = dir.join(format!(".tmp-{sha}-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(dest, &tmp).is_ok() {
        std::fs::rename(&tmp, &blob).map_err(|e| Error::io("Failed to store blob", &blob, &e))?;
        sync_dir(&dir);
    }
    Ok(())
}

/// Removes blobs whose hash no record lists any more; returns the bytes freed.
pub fn collect(store: &Store) -> Result<u64> {
    let dir = blob_dir(store.paths());
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(0);
    };
    let mut used = HashSet::new();
    for m in store.list(None)? {
        for sum in m.checksums() {
            if let Some(hex) = crate::checksum::normalize(&sum) {
                used.insert(hex);
            }
        }
    }
    let mut freed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(hex) = name.strip_prefix("sha256-") else {
            continue;
        };
        if used.contains(hex) {
            continue;
        }
        let size = e.metadata().map(|m| m.len()).unwrap_or(0);
        if std::fs::remove_file(e.path()).is_ok() {
            freed += size;
        }
    }
    let _ = std::fs::remove_dir(&dir);
    Ok(freed)
}

/// The Hugging Face cache directory to import from: `HF_HUB_CACHE`, else `HF_HOME/hub`, else
/// `~/.cache/huggingface/hub` (the JS side resolves this from the environment).
pub fn hf_cache_blob(hub: &Path, sha: &str) -> Option<PathBuf> {
    // `models--org--name/blobs/<sha256>` for LFS files, whatever the repo.
    for e in std::fs::read_dir(hub).ok()?.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("models--") || name.starts_with("datasets--")) {
            continue;
        }
        let p = e.path().join("blobs").join(sha);
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

/// A file named `name` of `size` bytes somewhere under `dir` (a few levels deep, as ComfyUI's
/// `models/<type>/` or LM Studio's `publisher/model/` folders are).
pub fn find_in_folder(dir: &Path, name: &str, size: u64) -> Option<PathBuf> {
    fn walk(d: &Path, name: &str, size: u64, depth: u32) -> Option<PathBuf> {
        let entries = std::fs::read_dir(d).ok()?;
        let mut subdirs = Vec::new();
        for e in entries.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                subdirs.push(p);
            } else if m.is_file() && m.len() == size && e.file_name().to_string_lossy() == name {
                return Some(p);
            }
        }
        if depth == 0 {
            return None;
        }
        subdirs.sort();
        subdirs.iter().find_map(|s| walk(s, name, size, depth - 1))
    }
    walk(dir, name, size, 4)
}

/// A problem with an import folder, for the caller.
pub fn bad_folder(dir: &Path) -> Error {
    Error::download(
        format!("importFrom folder {} does not exist", dir.display()),
        json!({ "invalidConfig": true, "path": dir.display().to_string() }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adopting_identical_files_shares_one_copy() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path()).unwrap();
        std::fs::create_dir_all(paths.models()).unwrap();
        let a = paths.models().join("a.bin");
        let b = paths.models().join("b.bin");
        std::fs::write(&a, b"same").unwrap();
        std::fs::write(&b, b"same").unwrap();
        let sha = crate::checksum::sha256_file(&a).unwrap();
        adopt(&paths, &a, &sha).unwrap();
        let blob = blob_path(&paths, &sha);
        assert!(same_file(&a, &blob));
        // Another model needing the content links the blob.
        assert!(link_or_copy(&blob, &b).unwrap());
        adopt(&paths, &b, &sha).unwrap();
        assert!(same_file(&a, &b));
        assert_eq!(file_key(&a), file_key(&b));
        assert_eq!(std::fs::read(&b).unwrap(), b"same");
        // A freshly verified file replaces the blob rather than trusting it.
        let c = paths.models().join("c.bin");
        std::fs::write(&c, b"same").unwrap();
        adopt(&paths, &c, &sha).unwrap();
        assert!(same_file(&c, &blob));
        assert!(same_file(&a, &b));
    }

    #[test]
    fn files_are_found_in_folders_by_name_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("models/vae/flux");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("ae.safetensors"), b"12345").unwrap();
        assert_eq!(
            find_in_folder(dir.path(), "ae.safetensors", 5),
            Some(deep.join("ae.safetensors"))
        );
        assert_eq!(find_in_folder(dir.path(), "ae.safetensors", 6), None);
        assert_eq!(find_in_folder(dir.path(), "other", 5), None);
    }
}
