//! `verifyModel`: every component/shard/primary file must exist; every one with a stored checksum
//! is re-hashed (streaming). Errors name the component so a UI can say which file is bad.

use crate::checksum::{normalize, sha256_file};
use crate::error::{Error, Result};
use crate::storage::store::Store;
use serde_json::json;
use std::path::Path;

/// One file to check: a label for messages (`component: vae`, `shard 2`), its path and checksum.
struct Item {
    kind: ItemKind,
    path: String,
    checksum: Option<String>,
}

enum ItemKind {
    Single,
    Component(String),
    Shard(usize),
}

impl Store {
    /// Returns `true` when at least one checksum was verified, `false` when there was nothing to
    /// verify (all files present, none with a checksum).
    pub fn verify_model(&self, id: &str) -> Result<bool> {
        let info = self.get(id)?;
        let items: Vec<Item> = if info.is_multi_component() {
            info.component_list()
                .into_iter()
                .map(|(role, c)| Item {
                    kind: ItemKind::Component(role),
                    path: c.path,
                    checksum: c.checksum,
                })
                .collect()
        } else if let Some(shards) = info.shards.as_ref().filter(|s| !s.is_empty()) {
            shards
                .iter()
                .enumerate()
                .map(|(i, s)| Item {
                    kind: ItemKind::Shard(i + 1),
                    path: s.path.clone(),
                    checksum: s.checksum.clone(),
                })
                .collect()
        } else {
            vec![Item {
                kind: ItemKind::Single,
                path: info.path.clone(),
                checksum: info.checksum.clone(),
            }]
        };

        // Existence first, so a missing file is reported before minutes of hashing.
        for item in &items {
            if !Path::new(&item.path).is_file() {
                let (message, extra) = match &item.kind {
                    ItemKind::Single => {
                        (format!("Model file not found: {}", item.path), json!(null))
                    }
                    ItemKind::Component(role) => (
                        format!("Component file not found ({role}): {}", item.path),
                        json!(role),
                    ),
                    ItemKind::Shard(n) => (
                        format!("Shard file not found ({n}): {}", item.path),
                        json!(n),
                    ),
                };
                let mut err = Error::fs(message, json!({ "modelId": id, "path": item.path }));
                match &item.kind {
                    ItemKind::Component(_) => err = err.with_detail("component", extra),
                    ItemKind::Shard(_) => err = err.with_detail("shard", extra),
                    ItemKind::Single => {}
                }
                return Err(err);
            }
        }

        let mut verified = false;
        for item in &items {
            let Some(stored) = item.checksum.as_deref() else {
                continue;
            };
            let expected = normalize(stored).ok_or_else(|| {
                Error::checksum(
                    format!("Stored checksum is not a SHA-256 value: {stored}"),
                    json!({ "modelId": id, "path": item.path, "expected": stored }),
                )
            })?;
            let actual = sha256_file(Path::new(&item.path))
                .map_err(|e| Error::io("Failed to read model file", Path::new(&item.path), &e))?;
            if actual != expected {
                let (message, key, value) = match &item.kind {
                    ItemKind::Single => ("SHA256 checksum mismatch".to_string(), None, json!(null)),
                    ItemKind::Component(role) => (
                        format!("SHA256 checksum mismatch for component: {role}"),
                        Some("component"),
                        json!(role),
                    ),
                    ItemKind::Shard(n) => (
                        format!("SHA256 checksum mismatch for shard: {n}"),
                        Some("shard"),
                        json!(n),
                    ),
                };
                let mut err = Error::checksum(
                    message,
                    json!({
                        "expected": format!("sha256:{expected}"),
                        "actual": format!("sha256:{actual}"),
                        "path": item.path,
                        "modelId": id,
                        "suggestion": "The file is corrupted or was modified. Delete the model and download it again.",
                    }),
                );
                if let Some(k) = key {
                    err = err.with_detail(k, value);
                }
                return Err(err);
            }
            verified = true;
        }
        Ok(verified)
    }
}
