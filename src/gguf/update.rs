//! `updateModelMetadata(id, { source })`: re-read a model's GGUF header locally and/or remotely
//! and store it as the record's `ggufMetadata`.

use crate::error::{Error, Result};
use crate::http::Auth;
use crate::storage::Store;
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    LocalOnly,
    RemoteOnly,
    LocalRemote,
    RemoteLocal,
}

impl Strategy {
    pub fn parse(s: Option<&str>) -> Result<Self> {
        Ok(match s.unwrap_or("local-remote") {
            "local-only" => Strategy::LocalOnly,
            "remote-only" => Strategy::RemoteOnly,
            "local-remote" => Strategy::LocalRemote,
            "remote-local" => Strategy::RemoteLocal,
            other => {
                return Err(Error::download(
                    format!("Invalid metadata fetch strategy: {other}"),
                    json!({ "strategy": other, "validStrategies": ["local-only", "remote-only", "local-remote", "remote-local"] }),
                ))
            }
        })
    }
}

async fn local(path: PathBuf) -> std::result::Result<Value, String> {
    tokio::task::spawn_blocking(move || super::read_local_metadata(&path))
        .await
        .map_err(|e| e.to_string())?
}

async fn remote(auth: &Auth, url: Option<String>) -> std::result::Result<Value, String> {
    let url = url.ok_or_else(|| "the model has no source URL".to_string())?;
    super::remote::fetch_remote_metadata(&url, auth).await
}

/// `auth` carries the Hugging Face endpoint and token (see `http::Auth`): the same rules as
/// downloads, so gated repos work here too and the token never leaves the endpoint's origin.
pub async fn update_model_metadata(
    store: Store,
    auth: &Auth,
    id: &str,
    strategy: Strategy,
) -> Result<Value> {
    let s = store.clone();
    let owned = id.to_string();
    let mut info = tokio::task::spawn_blocking(move || s.get(&owned))
        .await
        .map_err(|e| Error::fs(e.to_string(), json!({})))??;
    let path = PathBuf::from(&info.path);
    let url = info
        .source
        .as_ref()
        .map(|s| s.url.clone())
        .filter(|u| !u.is_empty());
    let (first_local, try_other) = match strategy {
        Strategy::LocalOnly => (true, false),
        Strategy::RemoteOnly => (false, false),
        Strategy::LocalRemote => (true, true),
        // Without a URL, remote-local reads the local file only (the contract's rule).
        Strategy::RemoteLocal => (url.is_none(), url.is_some()),
    };
    let mut errors = serde_json::Map::new();
    let first = if first_local {
        local(path.clone()).await
    } else {
        remote(auth, url.clone()).await
    };
    let result = match first {
        Ok(m) => Ok(m),
        Err(e) => {
            errors.insert(
                if first_local {
                    "localError"
                } else {
                    "remoteError"
                }
                .into(),
                json!(e),
            );
            if try_other {
                let second = if first_local {
                    remote(auth, url.clone()).await
                } else {
                    local(path.clone()).await
                };
                second.map_err(|e2| {
                    errors.insert(
                        if first_local {
                            "remoteError"
                        } else {
                            "localError"
                        }
                        .into(),
                        json!(e2),
                    );
                })
            } else {
                Err(())
            }
        }
    };
    let metadata = result.map_err(|_| {
        let msgs: Vec<String> = errors
            .values()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let mut details = errors.clone();
        details.insert("modelId".into(), json!(id));
        Error::download(
            format!(
                "Failed to update GGUF metadata for {id}: {}",
                msgs.join("; ")
            ),
            Value::Object(details),
        )
    })?;
    info.gguf_metadata = Some(metadata);
    let s = store.clone();
    let saved = info.clone();
    tokio::task::spawn_blocking(move || s.save(&saved))
        .await
        .map_err(|e| Error::fs(e.to_string(), json!({})))??;
    Ok(info.to_json())
}
