//! napi functions behind binary provisioning (`ensureBinary`, `BINARY_VERSIONS`). Events go to
//! one JS callback through a ThreadsafeFunction; each call is awaited, so every event has run in
//! JS before the Promise settles.

use super::errors::IntoNapi;
use crate::binaries::{self, pins, Request, Sink};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::Status;
use napi_derive::napi;
use serde_json::Value;
use std::path::PathBuf;

type EventFn = ThreadsafeFunction<Value, (), Value, Status, false>;

/// genai-electron 0.26's `BINARY_VERSIONS` (the built-in pins).
#[napi(js_name = "binaryVersions")]
pub fn binary_versions() -> Value {
    pins::Manifest::binary_versions_json()
}

fn opt_str(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Installs (or finds) a usable build; resolves with `{ dir, variant, action }`.
#[napi(js_name = "ensureBinary")]
pub async fn ensure_binary(options: Value, on_event: Option<EventFn>) -> napi::Result<Value> {
    let kind = pins::Kind::parse(&opt_str(&options, "type").unwrap_or_default()).napi()?;
    let req = Request {
        kind: Some(kind),
        user_data: PathBuf::from(opt_str(&options, "userData").unwrap_or_default()),
        force_validation: options.get("forceValidation") == Some(&Value::Bool(true)),
        cuda: options.get("cuda") == Some(&Value::Bool(true)),
        model_args: options.get("modelArgs").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        }),
        override_dir: opt_str(&options, "overrideDir").map(PathBuf::from),
        manifest_file: opt_str(&options, "manifestFile").map(PathBuf::from),
        mirror: opt_str(&options, "mirror"),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let forwarder = tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            if let Some(f) = &on_event {
                // An Err is a throwing listener or a closing environment: provisioning goes on.
                let _ = f.call_async_catch(ev).await;
            }
        }
    });
    let result = binaries::ensure(req, Sink(Some(tx))).await;
    let _ = forwarder.await;
    result.map(|o| o.to_json()).napi()
}
