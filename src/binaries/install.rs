//! The installed release on disk, in genai-electron 0.26's layout so both libraries can share a
//! userData: the whole release folder in `<userData>/binaries/<llama|diffusion>/` with
//! `.validation.json` (which build passed which test, and the program's sha256), `.variant.json`
//! and `.deps.json` beside it. A new install is assembled and validated in a candidate folder,
//! then swapped in by two renames; the previous install stays untouched until then.

use crate::error::{Error, Result};
use crate::storage::atomic::{sync_dir, write_atomic};
use fs4::fs_std::FileExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const VALIDATION_FILE: &str = ".validation.json";
pub const VARIANT_FILE: &str = ".variant.json";
pub const DEPS_FILE: &str = ".deps.json";

/// `.validation.json`. Unknown fields are kept when it is rewritten.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationRecord {
    pub variant: String,
    /// SHA-256 of the validated program.
    pub checksum: String,
    pub validated_at: String,
    pub phase1_passed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase2_passed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `.deps.json` entry: a dependency archive and the files it put into the install.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepEntry {
    pub url: String,
    pub checksum: String,
    pub files: Vec<String>,
}

pub fn read_validation(dir: &Path) -> Option<ValidationRecord> {
    let text = std::fs::read_to_string(dir.join(VALIDATION_FILE)).ok()?;
    let r: ValidationRecord = serde_json::from_str(&text).ok()?;
    (!r.variant.is_empty() && !r.checksum.is_empty() && !r.validated_at.is_empty()).then_some(r)
}

pub fn write_validation(dir: &Path, r: &ValidationRecord) -> Result<()> {
    let text = serde_json::to_string_pretty(r).expect("serialisable");
    write_atomic(&dir.join(VALIDATION_FILE), text.as_bytes())
}

/// The variant recorded by `.variant.json` (genai-electron writes it beside the cache).
pub fn read_variant(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(VARIANT_FILE)).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get("variant").and_then(Value::as_str).map(str::to_string)
}

pub fn write_variant(dir: &Path, variant: &str, platform: &str) -> Result<()> {
    let text = json!({ "variant": variant, "platform": platform }).to_string();
    write_atomic(&dir.join(VARIANT_FILE), text.as_bytes())
}

pub fn read_deps(dir: &Path) -> Vec<DepEntry> {
    std::fs::read_to_string(dir.join(DEPS_FILE))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .filter(|v| v.get("version") == Some(&json!(1)))
        .and_then(|v| serde_json::from_value(v["dependencies"].clone()).ok())
        .unwrap_or_default()
}

pub fn write_deps(dir: &Path, deps: &[DepEntry]) -> Result<()> {
    let text = serde_json::to_string_pretty(&json!({ "version": 1, "dependencies": deps }))
        .expect("serialisable");
    write_atomic(&dir.join(DEPS_FILE), text.as_bytes())
}

pub fn now_iso() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Replaces `install` by `candidate`: the old folder is renamed aside, the candidate renamed in,
/// and only then the old one deleted. If the second rename fails, the old one is put back.
pub fn swap_in(candidate: &Path, install: &Path) -> Result<()> {
    let parent = install.parent().expect("install dir has a parent");
    let name = install
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let backup = parent.join(format!(
        ".{name}.backup-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    let had_old = install.exists();
    if had_old {
        std::fs::rename(install, &backup)
            .map_err(|e| Error::io("Failed to move the previous install aside", install, &e))?;
    }
    if let Err(e) = std::fs::rename(candidate, install) {
        if had_old {
            let _ = std::fs::rename(&backup, install);
        }
        return Err(Error::io(
            "Failed to move the new install into place",
            install,
            &e,
        ));
    }
    sync_dir(parent);
    if had_old {
        let _ = std::fs::remove_dir_all(&backup);
    }
    Ok(())
}

/// One provisioning at a time per program, across processes: an OS lock on
/// `<binaries>/.<kind>.lock` (released by the OS if the holder dies).
pub struct InstallLock {
    _file: File,
}

impl InstallLock {
    /// Takes the lock, calling `waiting` once if another process holds it.
    pub async fn acquire(path: PathBuf, waiting: impl FnOnce()) -> Result<InstallLock> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("Failed to open the install lock", &path, &e))?;
        let mut waiting = Some(waiting);
        let start = std::time::Instant::now();
        loop {
            match FileExt::try_lock_exclusive(&file) {
                Ok(true) => return Ok(InstallLock { _file: file }),
                Ok(false) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // A file system without locks: go on unlocked rather than never install.
                Err(_) => return Ok(InstallLock { _file: file }),
            }
            if let Some(w) = waiting.take() {
                w();
            }
            if start.elapsed() > Duration::from_secs(3600) {
                return Err(Error::binary(
                    "Another process has been installing binaries for over an hour",
                    json!({ "lock": path.display().to_string(), "suggestion": "Stop the other process, or delete the lock file if no process uses it." }),
                ));
            }
            // Another process's lock cannot be awaited; poll it.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The program `name` (plus `.exe` on Windows) anywhere under `root`, matched without case.
pub fn find_program(root: &Path, name: &str) -> Option<PathBuf> {
    let want = format!("{name}{}", std::env::consts::EXE_SUFFIX).to_ascii_lowercase();
    let mut stack = vec![(root.to_path_buf(), 0)];
    let mut found: Option<(usize, PathBuf)> = None;
    while let Some((dir, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() && depth < 8 {
                stack.push((e.path(), depth + 1));
            } else if ft.is_file()
                && e.file_name().to_string_lossy().to_ascii_lowercase() == want
                && found.as_ref().is_none_or(|(d, _)| depth < *d)
            {
                found = Some((depth, e.path()));
            }
        }
    }
    found.map(|(_, p)| p)
}

pub fn make_executable(p: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
    }
    #[cfg(not(unix))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genai_electron_records_round_trip() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join(VALIDATION_FILE),
            r#"{"variant":"vulkan","checksum":"ab","validatedAt":"2026-01-01T00:00:00.000Z","phase1Passed":true,"version":"master-782-b290693","note":"kept"}"#,
        )
        .unwrap();
        let r = read_validation(d.path()).unwrap();
        assert_eq!(r.variant, "vulkan");
        assert_eq!(r.phase2_passed, None);
        write_validation(d.path(), &r).unwrap();
        let again: Value =
            serde_json::from_str(&std::fs::read_to_string(d.path().join(VALIDATION_FILE)).unwrap())
                .unwrap();
        assert_eq!(again["note"], "kept");
        assert!(again.get("phase2Passed").is_none());
        write_deps(
            d.path(),
            &[DepEntry {
                url: "u".into(),
                checksum: "c".into(),
                files: vec!["cudart.dll".into()],
            }],
        )
        .unwrap();
        assert_eq!(read_deps(d.path())[0].files, ["cudart.dll"]);
    }

    #[test]
    fn swap_keeps_the_old_install_until_the_new_one_is_in() {
        let d = tempfile::tempdir().unwrap();
        let install = d.path().join("diffusion");
        let cand = d.path().join("cand");
        std::fs::create_dir_all(&install).unwrap();
        std::fs::write(install.join("old"), "1").unwrap();
        std::fs::create_dir_all(&cand).unwrap();
        std::fs::write(cand.join("new"), "2").unwrap();
        swap_in(&cand, &install).unwrap();
        assert!(install.join("new").exists() && !install.join("old").exists());
        // A candidate that does not exist: the install stays as it was.
        assert!(swap_in(&d.path().join("missing"), &install).is_err());
        assert!(install.join("new").exists());
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
