//! napi functions behind the file and GGUF helpers of the package root (`calculateSHA256`,
//! `ensureDirectory`, ..., `fetchGGUFMetadata`): blocking work runs off the JS thread.

use super::errors::{blocking, IntoNapi};
use crate::error::Error;
use crate::files;
use crate::gguf::raw::raw_json;
use crate::http::Auth;
use napi_derive::napi;
use serde_json::{json, Value};

#[napi(js_name = "fileSha256")]
pub async fn file_sha256(path: String) -> napi::Result<String> {
    blocking(move || files::sha256(&path)).await
}

#[napi(js_name = "fileEnsureDirectory")]
pub async fn file_ensure_directory(path: String) -> napi::Result<()> {
    blocking(move || files::ensure_directory(&path)).await
}

#[napi(js_name = "fileExists")]
pub async fn file_exists(path: String) -> napi::Result<bool> {
    blocking(move || Ok(files::file_exists(&path))).await
}

/// Bytes as f64 (a u64 would reach JS as BigInt).
#[napi(js_name = "fileSize")]
pub async fn file_size(path: String) -> napi::Result<f64> {
    blocking(move || files::file_size(&path).map(|n| n as f64)).await
}

#[napi(js_name = "fileDelete")]
pub async fn file_delete(path: String) -> napi::Result<()> {
    blocking(move || files::delete_file(&path)).await
}

#[napi(js_name = "fileMove")]
pub async fn file_move(from: String, to: String) -> napi::Result<()> {
    blocking(move || files::move_file(&from, &to)).await
}

/// genai-electron's raw `{ metadata, tensorInfos }` of a local GGUF file (see `gguf::raw`).
#[napi(js_name = "readLocalGgufRaw")]
pub async fn read_local_gguf_raw(path: String) -> napi::Result<Value> {
    blocking(move || {
        crate::gguf::metadata::read_local_header(std::path::Path::new(&path))
            .map(|(h, _)| raw_json(&h))
            .map_err(|e| {
                Error::download(
                    format!("Failed to read GGUF metadata from local file: {e}"),
                    json!({
                        "filePath": path,
                        "originalError": e,
                        "suggestion": "Verify the file exists and is a valid GGUF format. The file may be corrupted if it was not fully downloaded.",
                    }),
                )
            })
    })
    .await
}

/// The same for a remote file, read with HTTP Range requests (HF_TOKEN goes only to the
/// Hugging Face endpoint).
#[napi(js_name = "fetchRemoteGgufRaw")]
pub async fn fetch_remote_gguf_raw(url: String) -> napi::Result<Value> {
    crate::gguf::remote::fetch_remote_header(&url, &Auth::from_env())
        .await
        .map(|(h, _)| raw_json(&h))
        .map_err(|e| {
            Error::download(
                format!("Failed to fetch GGUF metadata from URL: {e}"),
                json!({
                    "url": url,
                    "originalError": e,
                    "suggestion": "Verify the URL points to a valid GGUF file and is accessible. Check network connectivity if the error persists.",
                }),
            )
        })
        .napi()
}
