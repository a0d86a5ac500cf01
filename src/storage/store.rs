//! The metadata store: `<userData>/models/<type>/<id>.json`, one record per logical model.
//! Methods are blocking (plain file I/O); the napi layer runs them on tokio's blocking pool.

use crate::debug_log;
use crate::error::{Error, Result};
use crate::storage::atomic::write_atomic;
use crate::storage::ids::is_safe_id;
use crate::storage::model_info::{ModelInfo, ModelType};
use crate::storage::paths::Paths;
use serde_json::json;
use std::path::Path;

/// The identity of a file for counting disk use once per file.
fn file_key(p: &str) -> String {
    crate::storage::blobs::file_key(Path::new(p))
}

#[derive(Debug, Clone)]
pub struct Store {
    paths: Paths,
}

impl Store {
    pub fn new(paths: Paths) -> Self {
        Store { paths }
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// All parseable records of one type, in file-name order (stable, unlike readdir order).
    /// A corrupt or half-written JSON is skipped and reported through the debug log.
    pub fn list_type(&self, t: ModelType) -> Result<Vec<ModelInfo>> {
        let dir = self.paths.models_of(t);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("Failed to list models", &dir, &e)),
        };
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            // Every `*.json`, as genai-electron lists them (a name with no id characters gives
            // `.json`); macOS AppleDouble companions (`._x.json`) are not records.
            .filter(|p| {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                name.ends_with(".json") && !name.starts_with("._") && p.is_file()
            })
            .collect();
        files.sort();
        let mut out = Vec::with_capacity(files.len());
        for file in files {
            match read_record(&file) {
                Ok(info) => out.push(info),
                Err(e) => debug_log!("skipping unreadable model record {}: {e}", file.display()),
            }
        }
        Ok(out)
    }

    /// `listModels(type?)`: llm first, then diffusion.
    pub fn list(&self, t: Option<ModelType>) -> Result<Vec<ModelInfo>> {
        match t {
            Some(t) => self.list_type(t),
            None => {
                let mut all = self.list_type(ModelType::Llm)?;
                all.extend(self.list_type(ModelType::Diffusion)?);
                Ok(all)
            }
        }
    }

    /// `getModelInfo(id)`: the record named `<id>.json` (llm before diffusion), else any record
    /// whose `id` field matches (a record renamed by hand), else `ModelNotFoundError`.
    pub fn get(&self, id: &str) -> Result<ModelInfo> {
        if is_safe_id(id) {
            for t in ModelType::ALL {
                let file = self.paths.metadata_file(t, id);
                if file.is_file() {
                    match read_record(&file) {
                        Ok(info) if info.id == id => return Ok(info),
                        Ok(_) => {}
                        Err(e) => {
                            debug_log!("skipping unreadable model record {}: {e}", file.display())
                        }
                    }
                }
            }
        }
        self.list(None)?
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| Error::model_not_found(id))
    }

    /// Writes a record atomically. The id must be usable as a file name.
    pub fn save(&self, info: &ModelInfo) -> Result<()> {
        if !is_safe_id(&info.id) {
            return Err(Error::fs(
                format!("Invalid model id for a metadata file: {:?}", info.id),
                json!({ "modelId": info.id }),
            ));
        }
        let file = self.paths.metadata_file(info.model_type, &info.id);
        let mut text = serde_json::to_string_pretty(info).map_err(|e| {
            Error::fs(
                format!("Failed to serialise model metadata: {e}"),
                json!({}),
            )
        })?;
        text.push('\n');
        write_atomic(&file, text.as_bytes())
    }

    /// Where the record of `info` lives (by its type and id).
    pub fn record_file(&self, info: &ModelInfo) -> std::path::PathBuf {
        self.paths.metadata_file(info.model_type, &info.id)
    }
}

/// Reads and parses one record file.
pub fn read_record(file: &Path) -> Result<ModelInfo> {
    let bytes =
        std::fs::read(file).map_err(|e| Error::io("Failed to load model metadata", file, &e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::fs(
            format!("Failed to load model metadata: {}: {e}", file.display()),
            json!({ "path": file.display().to_string() }),
        )
    })
}

impl Store {
    /// `StorageManager.loadModelMetadata(type, id)`: one record by type and id.
    pub fn load(&self, t: ModelType, id: &str) -> Result<ModelInfo> {
        let file = self.paths.metadata_file(t, id);
        if !is_safe_id(id) || !file.is_file() {
            return Err(Error::fs(
                format!("Model metadata not found: {id}"),
                json!({ "modelId": id, "type": t.as_str() }),
            ));
        }
        read_record(&file)
    }

    /// `StorageManager.getStorageUsed(type?)`: bytes on disk of all records, each file counted once
    /// even when several variants share it (one path, or hard links to one shared blob).
    pub fn storage_used(&self, t: Option<ModelType>) -> Result<u64> {
        let mut seen = std::collections::HashSet::new();
        let mut total = 0u64;
        for m in self.list(t)? {
            for (p, size) in m.sized_files() {
                if seen.insert(file_key(&p)) {
                    total += size;
                }
            }
        }
        Ok(total)
    }
}

/// For each of `models`: the bytes of its files that another of `all` (the installed records)
/// also uses, through the same path or a hard link to the same shared blob. Deleting that model
/// keeps those bytes on disk, so it frees `size - shared`.
pub fn shared_among(all: &[ModelInfo], models: &[ModelInfo]) -> Vec<u64> {
    use std::collections::{HashMap, HashSet};
    // One stat per path, shared by both passes.
    let mut keys: HashMap<String, String> = HashMap::new();
    let mut key = |p: &str| -> String {
        keys.entry(p.to_string())
            .or_insert_with(|| file_key(p))
            .clone()
    };
    let mut owners: HashMap<String, HashSet<(ModelType, &str)>> = HashMap::new();
    for m in all {
        for (p, _) in m.sized_files() {
            owners
                .entry(key(&p))
                .or_default()
                .insert((m.model_type, m.id.as_str()));
        }
    }
    models
        .iter()
        .map(|m| {
            let mut seen = HashSet::new();
            let mut shared = 0;
            for (p, size) in m.sized_files() {
                let k = key(&p);
                if owners.get(&k).is_some_and(|o| o.len() > 1) && seen.insert(k) {
                    shared += size;
                }
            }
            shared
        })
        .collect()
}
