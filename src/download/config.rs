//! `DownloadConfig` as JSON -> a checked `DownloadRequest`. Every mistake is a `DownloadError` raised
//! before anything touches the disk or the network; unknown fields are rejected so a typo
//! (`checkSum`) is not silently ignored.

use crate::checksum;
use crate::error::{Error, Result};
use crate::storage::ModelType;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Roles a component may take (the primary is always `diffusion_model`).
pub const COMPONENT_ROLES: [&str; 6] = ["clip_l", "clip_g", "t5xxl", "llm", "llm_vision", "vae"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Url,
    HuggingFace,
}

/// Where one file comes from, as the caller wrote it (checked for presence, not yet resolved).
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    Url(String),
    HuggingFace {
        repo: String,
        file: String,
        revision: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ComponentRequest {
    pub role: String,
    pub source: SourceSpec,
    /// Lower-case hex.
    pub checksum: Option<String>,
    pub provenance: Option<Value>,
}

/// Transfer behaviour. Defaults suit real downloads; tests shorten the timers.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferOptions {
    pub hf_token: Option<String>,
    pub hf_endpoint: Option<String>,
    /// Delete `.partial` files (and files completed in this attempt) when the download fails or
    /// is cancelled. Off by default, so the next attempt resumes.
    pub cleanup_on_failure: bool,
    /// A read that yields no byte for this long counts as a failed attempt.
    pub stall_timeout: Duration,
    /// Consecutive failed attempts without progress before giving up.
    pub max_retries: u32,
    /// First backoff delay; doubles per consecutive failure.
    pub retry_base_delay: Duration,
    /// Test hook: pretend the volume has this many free bytes.
    pub test_free_disk_bytes: Option<u64>,
    /// Most connections per file (1: one stream).
    pub connections: usize,
    /// Smallest part a file is cut into; files under two parts use one stream.
    pub part_size: u64,
    /// A Hugging Face hub cache whose blobs are linked instead of downloaded (hash checked).
    pub hf_cache: Option<std::path::PathBuf>,
    /// Folders searched for a file of the same name and size (hash checked) before downloading.
    pub import_from: Vec<std::path::PathBuf>,
    /// Test hook: abort the process at this point of the install (crash tests).
    pub test_crash_at: Option<String>,
}

/// Default most connections per file.
pub const DEFAULT_CONNECTIONS: usize = 6;
/// Upper bound of the `connections` option.
pub const MAX_CONNECTIONS: usize = 32;

impl TransferOptions {
    pub fn parallel(&self) -> super::parallel::Settings {
        super::parallel::Settings {
            max_connections: self.connections,
            part_size: self.part_size,
        }
    }
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            hf_token: None,
            hf_endpoint: None,
            cleanup_on_failure: false,
            stall_timeout: Duration::from_secs(30),
            max_retries: 5,
            retry_base_delay: Duration::from_secs(1),
            test_free_disk_bytes: None,
            connections: DEFAULT_CONNECTIONS,
            part_size: 8 << 20,
            hf_cache: None,
            import_from: Vec::new(),
            test_crash_at: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DownloadRequest {
    pub source: SourceSpec,
    pub name: String,
    pub model_type: ModelType,
    pub checksum: Option<String>,
    pub provenance: Option<Value>,
    pub shard_files: Vec<String>,
    pub components: Vec<ComponentRequest>,
    pub model_directory: Option<String>,
    pub options: TransferOptions,
}

const TOP_LEVEL_FIELDS: &[&str] = &[
    "source",
    "url",
    "repo",
    "file",
    "revision",
    "name",
    "type",
    "checksum",
    "provenance",
    "shardFiles",
    "components",
    "modelDirectory",
    "hfToken",
    "hfEndpoint",
    "cleanupOnFailure",
    "stallTimeoutMs",
    "maxRetries",
    "retryDelayMs",
    "connections",
    "huggingFaceCache",
    "importFrom",
    "testHooks",
];

const COMPONENT_FIELDS: &[&str] = &[
    "role",
    "source",
    "url",
    "repo",
    "file",
    "revision",
    "checksum",
    "provenance",
];

/// Longest model name accepted: its id plus `.download-`/`.lock` stays well under the 255-byte
/// file name limit of common file systems.
pub const MAX_NAME_CHARS: usize = 200;

fn bad(message: impl Into<String>) -> Error {
    Error::download(message, json!({ "invalidConfig": true }))
}

/// A field, treating JSON `null` (JS `undefined` after conversion) as absent.
fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn opt_string(obj: &Map<String, Value>, key: &str, what: &str) -> Result<Option<String>> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(bad(format!(
            "{what}{key} must be a string, got {}",
            type_name(other)
        ))),
    }
}

fn opt_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(bad(format!(
            "{key} must be a boolean, got {}",
            type_name(other)
        ))),
    }
}

/// A non-negative finite number that fits the given maximum.
fn opt_number(obj: &Map<String, Value>, key: &str, max: f64) -> Result<Option<f64>> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() && (0.0..=max).contains(&f) => Ok(Some(f)),
            _ => Err(bad(format!("{key} must be a number between 0 and {max}"))),
        },
        Some(other) => Err(bad(format!(
            "{key} must be a number, got {}",
            type_name(other)
        ))),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Unknown keys are refused, except with an `undefined`/`null` value, which JS treats as absent.
fn reject_unknown(obj: &Map<String, Value>, known: &[&str], what: &str) -> Result<()> {
    for (key, value) in obj {
        if !value.is_null() && !known.contains(&key.as_str()) {
            return Err(bad(format!("Unknown {what} field: {key}")));
        }
    }
    Ok(())
}

fn parse_checksum(obj: &Map<String, Value>, what: &str) -> Result<Option<String>> {
    match opt_string(obj, "checksum", what)? {
        None => Ok(None),
        Some(s) => checksum::normalize(&s).map(Some).ok_or_else(|| {
            bad(format!(
                "{what}checksum must be a SHA-256 hex digest (64 hex digits, optionally prefixed with \"sha256:\"), got {s:?}"
            ))
        }),
    }
}

fn parse_provenance(obj: &Map<String, Value>, what: &str) -> Result<Option<Value>> {
    match field(obj, "provenance") {
        None => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(other) => Err(bad(format!(
            "{what}provenance must be an object, got {}",
            type_name(other)
        ))),
    }
}

/// The source fields of the config or of one component (`what` prefixes messages).
fn parse_source(obj: &Map<String, Value>, what: &str) -> Result<SourceSpec> {
    let kind = match field(obj, "source") {
        None => {
            return Err(bad(format!(
                "{what}source is required (\"huggingface\" or \"url\")"
            )))
        }
        Some(Value::String(s)) if s == "url" => SourceKind::Url,
        Some(Value::String(s)) if s == "huggingface" => SourceKind::HuggingFace,
        Some(Value::String(s)) => return Err(bad(format!("Unsupported source type: {s}"))),
        Some(other) => {
            return Err(bad(format!(
                "Unsupported source type: {}",
                type_name(other)
            )))
        }
    };
    match kind {
        SourceKind::Url => {
            let url = opt_string(obj, "url", what)?.filter(|u| !u.trim().is_empty());
            let url = url.ok_or_else(|| bad("URL is required when source is \"url\""))?;
            Ok(SourceSpec::Url(url.trim().to_string()))
        }
        SourceKind::HuggingFace => {
            let repo = opt_string(obj, "repo", what)?.filter(|s| !s.trim().is_empty());
            let file = opt_string(obj, "file", what)?.filter(|s| !s.trim().is_empty());
            let (repo, file) = match (repo, file) {
                (Some(r), Some(f)) => (r, f),
                _ => {
                    return Err(bad(
                        "Repository and file are required when source is \"huggingface\"",
                    ))
                }
            };
            let revision = match opt_string(obj, "revision", what)? {
                None => "main".to_string(),
                Some(r) if r.trim().is_empty() => {
                    return Err(bad(
                        "Revision must be a non-empty string when source is \"huggingface\"",
                    ))
                }
                Some(r) => r,
            };
            Ok(SourceSpec::HuggingFace {
                repo,
                file,
                revision,
            })
        }
    }
}

fn parse_component(v: &Value, index: usize) -> Result<ComponentRequest> {
    let obj = v
        .as_object()
        .ok_or_else(|| bad(format!("components[{index}] must be an object")))?;
    reject_unknown(obj, COMPONENT_FIELDS, &format!("components[{index}]"))?;
    let what = format!("components[{index}].");
    let role = opt_string(obj, "role", &what)?
        .ok_or_else(|| bad(format!("components[{index}].role is required")))?;
    if role == "diffusion_model" {
        return Err(bad(
            "Component role \"diffusion_model\" is not allowed in components: the top-level source is the diffusion model",
        ));
    }
    if !COMPONENT_ROLES.contains(&role.as_str()) {
        return Err(bad(format!(
            "Unknown component role: {role:?} (expected one of {})",
            COMPONENT_ROLES.join(", ")
        )));
    }
    Ok(ComponentRequest {
        source: parse_source(obj, &what)?,
        checksum: parse_checksum(obj, &what)?,
        provenance: parse_provenance(obj, &what)?,
        role,
    })
}

/// Parses and checks a `DownloadConfig` (with callbacks and `signal` already removed by JS).
pub fn parse(config: &Value) -> Result<DownloadRequest> {
    let obj = config
        .as_object()
        .ok_or_else(|| bad("The download config must be an object"))?;
    reject_unknown(obj, TOP_LEVEL_FIELDS, "download config")?;

    let name = opt_string(obj, "name", "")?
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| bad("name is required"))?;
    // The id names files (`<id>.json`, `.download-<id>.lock`, a model directory): past this a file
    // system refuses them, and the user would see an unrelated "Failed to open lock file".
    let id_len = crate::storage::ids::generate_model_id(&name).len();
    if name.chars().count() > MAX_NAME_CHARS || id_len > MAX_NAME_CHARS {
        return Err(Error::download(
            format!(
                "name is too long ({} characters): at most {MAX_NAME_CHARS} are allowed, because the model id derived from it names files on disk",
                name.chars().count()
            ),
            json!({ "invalidConfig": true, "field": "name", "maxLength": MAX_NAME_CHARS }),
        ));
    }
    let model_type = match field(obj, "type") {
        Some(Value::String(s)) => ModelType::parse(s),
        _ => None,
    }
    .ok_or_else(|| bad("type is required and must be \"llm\" or \"diffusion\""))?;
    let source = parse_source(obj, "")?;

    let components = match field(obj, "components") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| parse_component(v, i))
            .collect::<Result<Vec<_>>>()?,
        Some(other) => {
            return Err(bad(format!(
                "components must be an array, got {}",
                type_name(other)
            )))
        }
    };
    let mut seen: Vec<&str> = Vec::new();
    for c in &components {
        if seen.contains(&c.role.as_str()) {
            return Err(bad(format!("Duplicate component role: {}", c.role)));
        }
        seen.push(&c.role);
    }

    let shard_files = match field(obj, "shardFiles") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                _ => Err(bad(format!("shardFiles[{i}] must be a non-empty string"))),
            })
            .collect::<Result<Vec<_>>>()?,
        Some(other) => {
            return Err(bad(format!(
                "shardFiles must be an array of strings, got {}",
                type_name(other)
            )))
        }
    };
    if !shard_files.is_empty() && !components.is_empty() {
        return Err(bad("shardFiles cannot be combined with components"));
    }

    let model_directory = opt_string(obj, "modelDirectory", "")?;

    let mut options = TransferOptions {
        hf_token: opt_string(obj, "hfToken", "")?.filter(|t| !t.trim().is_empty()),
        hf_endpoint: opt_string(obj, "hfEndpoint", "")?.filter(|t| !t.trim().is_empty()),
        cleanup_on_failure: opt_bool(obj, "cleanupOnFailure")?.unwrap_or(false),
        ..TransferOptions::default()
    };
    if let Some(ms) = opt_number(obj, "stallTimeoutMs", 24.0 * 3600.0 * 1000.0)? {
        if ms < 1.0 {
            return Err(bad("stallTimeoutMs must be at least 1"));
        }
        options.stall_timeout = Duration::from_millis(ms as u64);
    }
    if let Some(n) = opt_number(obj, "maxRetries", 1000.0)? {
        options.max_retries = n as u32;
    }
    if let Some(ms) = opt_number(obj, "retryDelayMs", 3600.0 * 1000.0)? {
        options.retry_base_delay = Duration::from_millis(ms as u64);
    }
    if let Some(n) = opt_number(obj, "connections", MAX_CONNECTIONS as f64)? {
        if n < 1.0 || n.fract() != 0.0 {
            return Err(bad(format!(
                "connections must be a whole number from 1 to {MAX_CONNECTIONS}"
            )));
        }
        options.connections = n as usize;
    }
    match field(obj, "huggingFaceCache") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::String(p)) if std::path::Path::new(p).is_absolute() => {
            options.hf_cache = Some(p.into());
        }
        Some(_) => {
            return Err(bad(
                "huggingFaceCache must be an absolute directory path, or false to not use one",
            ))
        }
    }
    match field(obj, "importFrom") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                match v {
                    Value::String(p) if std::path::Path::new(p).is_absolute() => {
                        let dir = std::path::PathBuf::from(p);
                        if !dir.is_dir() {
                            return Err(crate::storage::blobs::bad_folder(&dir));
                        }
                        options.import_from.push(dir);
                    }
                    _ => {
                        return Err(bad(format!(
                            "importFrom[{i}] must be an absolute directory path"
                        )))
                    }
                }
            }
        }
        Some(other) => {
            return Err(bad(format!(
                "importFrom must be an array of directory paths, got {}",
                type_name(other)
            )))
        }
    }
    match field(obj, "testHooks") {
        None => {}
        Some(Value::Object(hooks)) => {
            reject_unknown(
                hooks,
                &["freeDiskBytes", "partSize", "crashAt"],
                "testHooks",
            )?;
            options.test_crash_at = opt_string(hooks, "crashAt", "testHooks.")?;
            options.test_free_disk_bytes =
                opt_number(hooks, "freeDiskBytes", 2f64.powi(63))?.map(|f| f as u64);
            if let Some(n) = opt_number(hooks, "partSize", 2f64.powi(40))? {
                options.part_size = (n as u64).max(1);
            }
        }
        Some(other) => {
            return Err(bad(format!(
                "testHooks must be an object, got {}",
                type_name(other)
            )))
        }
    }

    Ok(DownloadRequest {
        checksum: parse_checksum(obj, "")?,
        provenance: parse_provenance(obj, "")?,
        source,
        name,
        model_type,
        shard_files,
        components,
        model_directory,
        options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(v: Value) -> String {
        parse(&v).unwrap_err().to_string()
    }

    #[test]
    fn minimal_configs_parse_with_defaults() {
        let r = parse(&json!({"source": "huggingface", "repo": "o/r", "file": "a.gguf", "name": "A", "type": "llm"})).unwrap();
        assert_eq!(
            r.source,
            SourceSpec::HuggingFace {
                repo: "o/r".into(),
                file: "a.gguf".into(),
                revision: "main".into()
            }
        );
        assert_eq!(r.options, TransferOptions::default());
        let r = parse(
            &json!({"source": "url", "url": " http://h/a.bin ", "name": "A", "type": "diffusion",
            "checksum": "sha256:ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB",
            "stallTimeoutMs": 1000, "maxRetries": 2, "retryDelayMs": 10, "cleanupOnFailure": true,
            "testHooks": {"freeDiskBytes": 5}, "onProgress": null}),
        )
        .unwrap();
        assert_eq!(r.source, SourceSpec::Url("http://h/a.bin".into()));
        assert_eq!(r.checksum.as_deref(), Some(&*"ab".repeat(32)));
        assert_eq!(r.options.stall_timeout, Duration::from_millis(1000));
        assert_eq!(r.options.max_retries, 2);
        assert_eq!(r.options.test_free_disk_bytes, Some(5));
        assert!(r.options.cleanup_on_failure);
    }

    #[test]
    fn contract_messages_for_missing_fields() {
        let base = |extra: Value| {
            let mut m = json!({"name": "A", "type": "llm"});
            m.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            m
        };
        assert!(
            err(base(json!({"source": "url"}))).contains("URL is required when source is \"url\"")
        );
        assert!(err(base(json!({"source": "huggingface", "repo": "o/r"})))
            .contains("Repository and file are required"));
        assert!(err(base(
            json!({"source": "huggingface", "repo": "o/r", "file": "a", "revision": " "})
        ))
        .contains("Revision must be a non-empty string"));
        assert!(err(base(json!({"source": "ftp"}))).contains("Unsupported source type: ftp"));
        assert!(
            err(json!({"source": "url", "url": "http://h/a", "type": "llm"}))
                .contains("name is required")
        );
        assert!(
            err(json!({"source": "url", "url": "http://h/a", "name": "A", "type": "video"}))
                .contains("type is required")
        );
        assert!(err(base(
            json!({"source": "url", "url": "http://h/a", "checkSum": "x"})
        ))
        .contains("Unknown download config field: checkSum"));
        assert!(err(base(
            json!({"source": "url", "url": "http://h/a", "checksum": "abc"})
        ))
        .contains("checksum must be a SHA-256"));
        assert!(err(base(
            json!({"source": "url", "url": "http://h/a", "stallTimeoutMs": -1})
        ))
        .contains("stallTimeoutMs"));
        assert!(err(base(
            json!({"source": "url", "url": "http://h/a", "testHooks": {"x": 1}})
        ))
        .contains("Unknown testHooks field: x"));
        assert!(err(json!([1])).contains("must be an object"));
    }

    #[test]
    fn component_roles_are_checked() {
        let cfg = |components: Value| json!({"source": "url", "url": "http://h/d.gguf", "name": "A", "type": "diffusion", "components": components});
        let vae = json!({"role": "vae", "source": "url", "url": "http://h/v.safetensors"});
        let r = parse(&cfg(json!([vae.clone()]))).unwrap();
        assert_eq!(r.components.len(), 1);
        assert_eq!(r.components[0].role, "vae");
        assert!(err(cfg(
            json!([{"role": "diffusion_model", "source": "url", "url": "http://h/x"}])
        ))
        .contains("\"diffusion_model\" is not allowed"));
        assert!(
            err(cfg(json!([vae.clone(), vae.clone()]))).contains("Duplicate component role: vae")
        );
        assert!(err(cfg(
            json!([{"role": "unet", "source": "url", "url": "http://h/x"}])
        ))
        .contains("Unknown component role: \"unet\""));
        assert!(err(cfg(json!([{"role": "vae", "source": "url"}]))).contains("URL is required"));
        assert!(err(cfg(
            json!([{"role": "vae", "source": "url", "url": "http://h/x", "sha": 1}])
        ))
        .contains("Unknown components[0] field: sha"));
        assert!(err(cfg(json!("vae"))).contains("components must be an array"));
    }
}
