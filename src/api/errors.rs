//! Core error -> JS error. napi can only throw plain `Error`s from async functions, so the error
//! travels as a marked JSON payload in the message; `lib/errors.js` turns it back into an instance
//! of the contract's class. This pair is the only place the mapping lives.

use crate::error::Error;
use serde_json::{json, Value};

/// Prefix that marks a structured error payload in a napi error message.
pub const MARKER: &str = "__GENAI_ELECTRON_ERROR__";

pub fn to_napi(err: Error) -> napi::Error {
    let payload = match &err {
        Error::ModelNotFound { model_id } => {
            json!({ "class": "ModelNotFoundError", "modelId": model_id })
        }
        Error::PortInUse { port } => json!({ "class": "PortInUseError", "port": port }),
        Error::Download { message, details } => payload("DownloadError", message, details),
        Error::InsufficientResources { message, details } => {
            payload("InsufficientResourcesError", message, details)
        }
        Error::Server { message, details } => payload("ServerError", message, details),
        Error::FileSystem { message, details } => payload("FileSystemError", message, details),
        Error::Checksum { message, details } => payload("ChecksumError", message, details),
        Error::Binary { message, details } => payload("BinaryError", message, details),
        Error::InvalidArgument(message) => json!({ "class": "TypeError", "message": message }),
    };
    napi::Error::new(napi::Status::GenericFailure, format!("{MARKER}{payload}"))
}

fn payload(class: &str, message: &str, details: &serde_json::Map<String, Value>) -> Value {
    json!({ "class": class, "message": message, "details": details })
}

pub trait IntoNapi<T> {
    fn napi(self) -> napi::Result<T>;
}

impl<T> IntoNapi<T> for Result<T, Error> {
    fn napi(self) -> napi::Result<T> {
        self.map_err(to_napi)
    }
}

/// Runs blocking core work (file I/O, hashing) on tokio's blocking pool, off the JS thread.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> napi::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| to_napi(Error::fs(format!("internal task failed: {e}"), json!({}))))?
        .napi()
}
