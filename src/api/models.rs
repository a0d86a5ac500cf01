//! napi functions behind `modelManager` (storage, verification, GGUF metadata). Each takes the
//! userData root resolved by the JS side, so the core holds no global state.

use super::errors::{blocking, IntoNapi};
use crate::error::Error;
use crate::gguf::update::{update_model_metadata as update, Strategy};
use crate::storage::{ModelInfo, ModelType, Paths, Store};
use napi_derive::napi;
use serde_json::{json, Value};

fn store(root: &str) -> napi::Result<Store> {
    Ok(Store::new(Paths::new(root).napi()?))
}

fn model_type(t: Option<String>) -> napi::Result<Option<ModelType>> {
    match t.as_deref() {
        None => Ok(None),
        Some(s) => ModelType::parse(s)
            .map(Some)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "Invalid model type: {s:?} (expected \"llm\" or \"diffusion\")"
                ))
            })
            .napi(),
    }
}

#[napi(js_name = "defaultUserDataPath")]
pub fn default_user_data_path() -> String {
    Paths::default_root().display().to_string()
}

#[napi(js_name = "storageInitialize")]
pub async fn storage_initialize(root: String) -> napi::Result<()> {
    Paths::new(root).napi()?.initialize().await.napi()
}

#[napi(js_name = "listModels")]
pub async fn list_models(
    root: String,
    model_type_name: Option<String>,
) -> napi::Result<Vec<Value>> {
    let s = store(&root)?;
    let t = model_type(model_type_name)?;
    blocking(move || {
        // Every record is read once: the listed ones and those they may share files with.
        let all = s.list(None)?;
        let listed: Vec<ModelInfo> = all
            .iter()
            .filter(|m| t.is_none_or(|t| m.model_type == t))
            .cloned()
            .collect();
        Ok(with_shared_among(&all, listed))
    })
    .await
}

#[napi(js_name = "getModelInfo")]
pub async fn get_model_info(root: String, id: String) -> napi::Result<Value> {
    let s = store(&root)?;
    blocking(move || {
        let mut v = with_shared_size(&s, vec![s.get(&id)?])?;
        Ok(v.pop().unwrap_or_default())
    })
    .await
}

/// The records as JSON, each with `sharedSize`: bytes of its files another model also uses.
/// Computed on every read, never stored, since it changes as other models come and go.
pub(crate) fn with_shared_size(
    s: &Store,
    models: Vec<ModelInfo>,
) -> crate::error::Result<Vec<Value>> {
    Ok(with_shared_among(&s.list(None)?, models))
}

/// `with_shared_size` against `all`, the installed records, already read.
fn with_shared_among(all: &[ModelInfo], models: Vec<ModelInfo>) -> Vec<Value> {
    let shared = crate::storage::store::shared_among(all, &models);
    models
        .iter()
        .zip(shared)
        .map(|(m, n)| {
            let mut v = m.to_json();
            if let Some(o) = v.as_object_mut() {
                o.insert(SHARED_SIZE.into(), json!(n as f64));
            }
            v
        })
        .collect()
}

/// The computed field `listModels` and `getModelInfo` add.
const SHARED_SIZE: &str = "sharedSize";

#[napi(js_name = "deleteModel")]
pub async fn delete_model(root: String, id: String) -> napi::Result<()> {
    let s = store(&root)?;
    blocking(move || s.delete_model(&id).map(|_| ())).await
}

#[napi(js_name = "verifyModel")]
pub async fn verify_model(root: String, id: String) -> napi::Result<bool> {
    let s = store(&root)?;
    blocking(move || s.verify_model(&id)).await
}

#[napi(js_name = "updateModelMetadata")]
pub async fn update_model_metadata(
    root: String,
    id: String,
    strategy: Option<String>,
    hf_token: Option<String>,
    hf_endpoint: Option<String>,
) -> napi::Result<Value> {
    let s = store(&root)?;
    let strategy = Strategy::parse(strategy.as_deref()).napi()?;
    let endpoint = hf_endpoint
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(crate::http::hf_endpoint_from_env);
    let auth = crate::http::Auth::new(&endpoint, hf_token.or_else(crate::http::hf_token_from_env));
    update(s, &auth, &id, strategy).await.napi()
}

/// `getModelLayerCount` / `getModelContextLength` / `getModelArchitecture` in one round trip.
#[napi(js_name = "getModelFacts")]
pub async fn get_model_facts(root: String, id: String) -> napi::Result<Value> {
    let s = store(&root)?;
    blocking(move || {
        let m = s.get(&id)?;
        Ok(serde_json::json!({
            "layerCount": m.layer_count(),
            "contextLength": m.context_length(),
            "architecture": m.architecture(),
        }))
    })
    .await
}

#[napi(js_name = "readLocalGgufMetadata")]
pub async fn read_local_gguf_metadata(path: String) -> napi::Result<Value> {
    blocking(move || {
        crate::gguf::read_local_metadata(std::path::Path::new(&path)).map_err(|e| {
            Error::download(
                format!("Failed to read GGUF metadata from local file: {e}"),
                serde_json::json!({ "filePath": path, "originalError": e }),
            )
        })
    })
    .await
}

#[napi(js_name = "saveModelMetadata")]
pub async fn save_model_metadata(root: String, info: Value) -> napi::Result<()> {
    let s = store(&root)?;
    let mut info: ModelInfo = serde_json::from_value(info)
        .map_err(|e| Error::InvalidArgument(format!("Invalid ModelInfo: {e}")))
        .napi()?;
    // A record read from listModels and saved back must not keep a computed, soon stale value.
    info.extra.remove(SHARED_SIZE);
    blocking(move || s.save(&info)).await
}

#[napi(js_name = "loadModelMetadata")]
pub async fn load_model_metadata(
    root: String,
    model_type_name: String,
    id: String,
) -> napi::Result<Value> {
    let s = store(&root)?;
    let t = model_type(Some(model_type_name))?.unwrap_or(ModelType::Llm);
    blocking(move || Ok(s.load(t, &id)?.to_json())).await
}

#[napi(js_name = "storageUsed")]
pub async fn storage_used(root: String, model_type_name: Option<String>) -> napi::Result<f64> {
    let s = store(&root)?;
    let t = model_type(model_type_name)?;
    blocking(move || Ok(s.storage_used(t)? as f64)).await
}

/// Free bytes on the volume holding `path` (or its nearest existing ancestor).
#[napi(js_name = "freeDiskSpace")]
pub async fn free_disk_space(path: String) -> napi::Result<f64> {
    blocking(move || {
        let mut p = std::path::PathBuf::from(&path);
        while !p.exists() {
            if !p.pop() {
                break;
            }
        }
        fs4::available_space(&p)
            .map(|b| b as f64)
            .map_err(|e| Error::io("Cannot read free disk space", &p, &e))
    })
    .await
}
