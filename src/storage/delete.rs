//! Shared-aware deletion. Variants of one model may share encoder/VAE files through
//! `modelDirectory`; a file is deleted only when no other record references it, and nothing outside
//! `<userData>/models/` is ever deleted, whatever a (possibly hand-edited) record says.

use crate::error::{Error, Result};
use crate::storage::atomic::sync_dir;
use crate::storage::lock::{self, file_lock_path, LockRequest};
use crate::storage::model_info::ModelInfo;
use crate::storage::paths::normalize_lexically;
use crate::storage::store::Store;
use serde_json::json;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// What a delete removed and kept, for logs and tests.
#[derive(Debug, Default, Clone)]
pub struct DeleteReport {
    pub deleted: Vec<PathBuf>,
    pub kept_shared: Vec<PathBuf>,
    pub removed_dirs: Vec<PathBuf>,
}

impl Store {
    /// `deleteModel(id)`.
    pub fn delete_model(&self, id: &str) -> Result<DeleteReport> {
        let info = self.get(id)?;
        let record_file = self.record_file(&info);
        let paths = self.paths();

        // Refuse the whole delete before touching anything if any path escapes models/.
        let files: Vec<PathBuf> = info
            .all_files()
            .into_iter()
            .map(|p| normalize_lexically(Path::new(&p)))
            .collect();
        for f in &files {
            if !paths.is_inside_models(f) {
                return Err(Error::fs(
                    format!(
                        "Refusing to delete {}: it is outside the models directory {}",
                        f.display(),
                        paths.models().display()
                    ),
                    json!({ "modelId": id, "path": f.display().to_string() }),
                ));
            }
        }

        let referenced = self.files_referenced_by_others(&info)?;
        let mut report = DeleteReport::default();
        // Held until the files are gone, so no download starts reusing one meanwhile.
        let mut guards = Vec::new();
        for f in &files {
            if referenced.contains(f) {
                report.kept_shared.push(f.clone());
                continue;
            }
            // A download holding this file's lock is writing it or has verified it for a record
            // it is about to write: the file is in use, like one another record references.
            if f.is_file() {
                let request = LockRequest {
                    path: file_lock_path(f),
                    what: format!("File {}", f.display()),
                };
                match lock::acquire(std::slice::from_ref(&request)) {
                    Ok(g) => guards.push((g, request.path)),
                    Err(_) => {
                        report.kept_shared.push(f.clone());
                        continue;
                    }
                }
            }
            match std::fs::remove_file(f) {
                Ok(()) => report.deleted.push(f.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("Failed to delete model file", f, &e)),
            }
        }

        for (guard, _lock_file) in guards {
            drop(guard);
            // Windows keeps lock files after unlocking; they would keep the directory alive.
            #[cfg(not(unix))]
            let _ = std::fs::remove_file(&_lock_file);
        }

        // Remove per-model directories left empty (never the type directory or models/ itself).
        let type_dir = paths.models_of(info.model_type);
        let mut dirs: Vec<PathBuf> = files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .filter(|d| d != &type_dir && paths.is_inside_models(d))
            .collect();
        dirs.sort();
        dirs.dedup();
        for d in dirs {
            if std::fs::remove_dir(&d).is_ok() {
                report.removed_dirs.push(d);
            }
        }

        match std::fs::remove_file(&record_file) {
            Ok(()) => sync_dir(&type_dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::io(
                    "Failed to delete model metadata",
                    &record_file,
                    &e,
                ))
            }
        }
        // Shared content this model was the last user of goes now.
        let _ = crate::storage::blobs::collect(self);
        Ok(report)
    }

    /// Every file path referenced by any other record (all types: a single-file model and a
    /// component may point at the same file too).
    fn files_referenced_by_others(&self, info: &ModelInfo) -> Result<HashSet<PathBuf>> {
        let mut set = HashSet::new();
        for other in self.list(None)? {
            if other.id == info.id && other.model_type == info.model_type {
                continue;
            }
            for p in other.all_files() {
                set.insert(normalize_lexically(Path::new(&p)));
            }
        }
        Ok(set)
    }
}
