//! The one error type of the core. Each variant maps onto exactly one JS error class of the
//! contract (see `api::errors` for the mapping), so callers can rely on `instanceof` and `code`.

use serde_json::{json, Map, Value};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Free-form structured details, passed through to the JS error's `details`.
pub type Details = Map<String, Value>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `ModelNotFoundError`: message is `Model not found: <model_id>`.
    #[error("Model not found: {model_id}")]
    ModelNotFound { model_id: String },
    /// `DownloadError`: JS prefixes `Download failed: `.
    #[error("Download failed: {message}")]
    Download { message: String, details: Details },
    /// `InsufficientResourcesError`: message used as is.
    #[error("{message}")]
    InsufficientResources { message: String, details: Details },
    /// `ServerError`: JS prefixes `Server error: `.
    #[error("Server error: {message}")]
    Server { message: String, details: Details },
    /// `PortInUseError`.
    #[error("Port {port} is already in use")]
    PortInUse { port: u16 },
    /// `FileSystemError`: JS prefixes `File system error: `.
    #[error("File system error: {message}")]
    FileSystem { message: String, details: Details },
    /// `ChecksumError`: JS prefixes `Checksum verification failed: `.
    #[error("Checksum verification failed: {message}")]
    Checksum { message: String, details: Details },
    /// `BinaryError`: JS prefixes `Binary error: `.
    #[error("Binary error: {message}")]
    Binary { message: String, details: Details },
    /// A caller mistake that is not one of the contract's classes (plain `TypeError` in JS).
    #[error("{0}")]
    InvalidArgument(String),
}

/// Builds a details map from `json!({...})`; anything that is not an object becomes empty.
pub fn details(value: Value) -> Details {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

impl Error {
    pub fn download(message: impl Into<String>, details_value: Value) -> Self {
        Error::Download {
            message: message.into(),
            details: details(details_value),
        }
    }

    pub fn fs(message: impl Into<String>, details_value: Value) -> Self {
        Error::FileSystem {
            message: message.into(),
            details: details(details_value),
        }
    }

    pub fn server(message: impl Into<String>, details_value: Value) -> Self {
        Error::Server {
            message: message.into(),
            details: details(details_value),
        }
    }

    pub fn checksum(message: impl Into<String>, details_value: Value) -> Self {
        Error::Checksum {
            message: message.into(),
            details: details(details_value),
        }
    }

    pub fn insufficient(message: impl Into<String>, details_value: Value) -> Self {
        Error::InsufficientResources {
            message: message.into(),
            details: details(details_value),
        }
    }

    pub fn binary(message: impl Into<String>, details_value: Value) -> Self {
        Error::Binary {
            message: message.into(),
            details: details(details_value),
        }
    }

    pub fn model_not_found(model_id: impl Into<String>) -> Self {
        Error::ModelNotFound {
            model_id: model_id.into(),
        }
    }

    /// A file-system error that quotes the OS error and the path it happened on.
    pub fn io(context: &str, path: &std::path::Path, err: &std::io::Error) -> Self {
        Error::fs(
            format!("{context}: {}: {err}", path.display()),
            json!({ "path": path.display().to_string(), "error": err.to_string() }),
        )
    }

    /// The contract's `code` for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::ModelNotFound { .. } => "MODEL_NOT_FOUND",
            Error::Download { .. } => "DOWNLOAD_FAILED",
            Error::InsufficientResources { .. } => "INSUFFICIENT_RESOURCES",
            Error::Server { .. } => "SERVER_ERROR",
            Error::PortInUse { .. } => "PORT_IN_USE",
            Error::FileSystem { .. } => "FILE_SYSTEM_ERROR",
            Error::Checksum { .. } => "CHECKSUM_ERROR",
            Error::Binary { .. } => "BINARY_ERROR",
            Error::InvalidArgument(_) => "INVALID_ARGUMENT",
        }
    }

    /// Adds or replaces one detail (no-op for variants without details).
    pub fn with_detail(mut self, key: &str, value: Value) -> Self {
        match &mut self {
            Error::Download { details, .. }
            | Error::InsufficientResources { details, .. }
            | Error::Server { details, .. }
            | Error::FileSystem { details, .. }
            | Error::Checksum { details, .. }
            | Error::Binary { details, .. } => {
                details.insert(key.to_string(), value);
            }
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages_follow_the_contract() {
        let e = Error::model_not_found("abc");
        assert_eq!(e.code(), "MODEL_NOT_FOUND");
        assert_eq!(e.to_string(), "Model not found: abc");
        let e = Error::download("HTTP error: 404", json!({"status": 404}));
        assert_eq!(e.to_string(), "Download failed: HTTP error: 404");
        assert_eq!(Error::PortInUse { port: 8081 }.code(), "PORT_IN_USE");
        let e = Error::fs("x", json!(null)).with_detail("path", json!("/p"));
        match e {
            Error::FileSystem { details, .. } => assert_eq!(details["path"], "/p"),
            _ => unreachable!(),
        }
    }
}
