//! `DiffusionServerConfig` and `ImageGenerationConfig`: parsed from JSON and validated before
//! anything is spawned. sd.cpp aborts (SIGABRT) on a non-numeric value and exits 1 on an unknown
//! sampler, so every number and name is checked here and refused with a message that names it.
//! A JSON `null` counts as "not given" (JS `undefined` travels as `null`).

use crate::config_fields::{given, int_in, invalid, opt_bool, refuse_unknown};
use crate::error::{Error, Result};
use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// genai-electron's `VALID_CONFIG_FIELDS` plus this library's additions (documented in the
/// README, "Configuration").
pub const VALID_CONFIG_FIELDS: &[&str] = &[
    "modelId",
    "port",
    "threads",
    "gpuLayers",
    "forceValidation",
    "clipOnCpu",
    "vaeOnCpu",
    "batchSize",
    "offloadToCpu",
    "diffusionFlashAttention",
    "host",
    "allowedOrigins",
    "startupTimeout",
    "usageMode",
    "idleTimeoutMs",
    "jobActivityTimeoutMs",
    // Added by genai-electron-rs.
    "backend",
    "preload",
    "binaryPath",
    "maxQueueSize",
    "startTimeoutMs",
    "jobStallTimeoutMs",
];

pub const DEFAULT_PORT: u16 = 8081;
pub const DEFAULT_HOST: &str = "127.0.0.1";
pub const DEFAULT_MAX_QUEUE: usize = 16;
pub const DEFAULT_START_TIMEOUT_MS: u64 = 120_000;
/// A job whose sd.cpp prints nothing for this long is declared stuck. Generous: one sampling step
/// of a large image on a CPU, or a VAE decode without output, can take minutes.
pub const DEFAULT_JOB_STALL_TIMEOUT_MS: u64 = 600_000;
/// A warm sd-server is released after this long without a job (`idleTimeoutMs`).
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 300_000;

/// What happens to sd-server after an image: kept warm (`Burst`) or released at once (`Single`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageMode {
    Burst,
    Single,
}

impl UsageMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "burst" => Some(UsageMode::Burst),
            "single" => Some(UsageMode::Single),
            _ => None,
        }
    }
}

/// sd.cpp's sampler names at master-827 (an unknown one makes it exit 1).
pub const SAMPLERS: &[&str] = &[
    "euler",
    "euler_a",
    "heun",
    "dpm2",
    "dpm++2s_a",
    "dpm++2m",
    "dpm++2mv2",
    "ipndm",
    "ipndm_v",
    "lcm",
    "ddim_trailing",
    "tcd",
    "res_multistep",
    "res_2s",
    "er_sde",
    "euler_cfg_pp",
    "euler_a_cfg_pp",
    "euler_ge",
    "dpm++2m_sde",
    "dpm++2m_sde_bt",
    "lms",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One long-lived sd-server keeps the model loaded.
    Server,
    /// One sd-cli process per request.
    Cli,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Server => "server",
            Backend::Cli => "cli",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortSpec {
    Fixed(u16),
    /// Any free port (also `0`).
    Auto,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub model_id: String,
    pub port: PortSpec,
    pub host: String,
    pub threads: Option<u32>,
    pub batch_size: Option<u32>,
    pub clip_on_cpu: Option<bool>,
    pub vae_on_cpu: Option<bool>,
    pub offload_to_cpu: Option<bool>,
    pub diffusion_fa: Option<bool>,
    pub backend: Backend,
    pub binary_path: Option<PathBuf>,
    pub max_queue: usize,
    pub start_timeout_ms: u64,
    /// No activity from sd.cpp for this long fails the job (`jobActivityTimeoutMs`, alias
    /// `jobStallTimeoutMs`); `None` = watchdog off.
    pub job_stall_timeout_ms: Option<u64>,
    /// `usageMode`: `None` = auto (burst without an LLM to make room for).
    pub usage_mode: Option<UsageMode>,
    /// `idleTimeoutMs`; `None` = a warm backend is never released for idleness.
    pub idle_timeout_ms: Option<u64>,
    /// `allowedOrigins`: the CORS allow-list (`*` = any origin).
    pub allowed_origins: Vec<String>,
    /// `preload`: spawn sd-server during `start()` instead of on the first image.
    pub preload: bool,
    /// The object as given, returned by `getConfig()`.
    pub raw: Value,
}

/// The 0.26 name or this library's older one (both given: the 0.26 name wins).
fn alias<'a>(
    obj: &'a Map<String, Value>,
    name: &'static str,
    old: &'static str,
) -> Result<Option<(&'static str, &'a Value)>> {
    Ok(given(obj, name)
        .map(|v| (name, v))
        .or_else(|| given(obj, old).map(|v| (old, v))))
}

/// A timeout where `<= 0` (or, as in genai-electron, a non-finite number) switches it off.
fn off_or_ms(v: &Value, key: &str) -> Result<Option<u64>> {
    let n = match v {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        // Non-finite numbers travel from JS as strings ("Infinity", "NaN").
        Value::String(s) if ["Infinity", "-Infinity", "NaN"].contains(&s.as_str()) => {
            return Ok(None)
        }
        _ => return Err(invalid(key, format!("must be a number, got {v}"))),
    };
    Ok((n > 0.0).then(|| n.ceil().min(1e15) as u64))
}

impl ServerConfig {
    pub fn parse(value: &Value) -> Result<Self> {
        let obj = value
            .as_object()
            .ok_or_else(|| invalid("config", "must be an object"))?;
        refuse_unknown(obj, VALID_CONFIG_FIELDS, "DiffusionServerManager")?;
        let model_id = match given(obj, "modelId") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            _ => return Err(invalid("modelId", "is required (a non-empty string)")),
        };
        let port = match given(obj, "port") {
            None => PortSpec::Fixed(DEFAULT_PORT),
            Some(Value::String(s)) if s == "auto" => PortSpec::Auto,
            Some(v) => match int_in(v, "port", 0, 65535)? {
                0 => PortSpec::Auto,
                p => PortSpec::Fixed(p as u16),
            },
        };
        let host = match given(obj, "host") {
            None => DEFAULT_HOST.to_string(),
            // genai-electron reads `config.host || '127.0.0.1'`.
            Some(Value::String(s)) if s.is_empty() => DEFAULT_HOST.to_string(),
            Some(Value::String(s)) if s.parse::<std::net::IpAddr>().is_ok() => s.clone(),
            Some(Value::String(s)) if s == "localhost" => DEFAULT_HOST.to_string(),
            Some(v) => {
                return Err(invalid(
                    "host",
                    format!("must be an IP address such as \"127.0.0.1\", got {v}"),
                ))
            }
        };
        let threads = match given(obj, "threads") {
            None => None,
            // 0 means "not given", as in genai-electron (`-t` only when > 0).
            Some(v) => Some(int_in(v, "threads", 0, 1024)? as u32).filter(|t| *t > 0),
        };
        // genai-electron sends `batch_count: max(1, floor(batchSize))` in each job.
        let batch_size = match given(obj, "batchSize") {
            None => None,
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() && x <= 64.0 => Some(x.floor().max(1.0) as u32),
                _ => {
                    return Err(invalid(
                        "batchSize",
                        format!("must be a number up to 64, got {v}"),
                    ))
                }
            },
        };
        if let Some(v) = given(obj, "gpuLayers") {
            if !v.is_number() {
                return Err(invalid("gpuLayers", format!("must be a number, got {v}")));
            }
        }
        opt_bool(obj, "forceValidation")?;
        let backend = match given(obj, "backend") {
            None => Backend::Server,
            Some(Value::String(s)) if s == "server" => Backend::Server,
            Some(Value::String(s)) if s == "cli" => Backend::Cli,
            Some(v) => {
                return Err(invalid(
                    "backend",
                    format!("must be \"server\" or \"cli\", got {v}"),
                ))
            }
        };
        let binary_path = match given(obj, "binaryPath") {
            None => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(PathBuf::from(s)),
            Some(v) => {
                return Err(invalid(
                    "binaryPath",
                    format!("must be a non-empty string, got {v}"),
                ))
            }
        };
        let max_queue = match given(obj, "maxQueueSize") {
            None => DEFAULT_MAX_QUEUE,
            Some(v) => int_in(v, "maxQueueSize", 0, 10_000)? as usize,
        };
        let start_timeout_ms = match alias(obj, "startupTimeout", "startTimeoutMs")? {
            None => DEFAULT_START_TIMEOUT_MS,
            Some((k, v)) => int_in(v, k, 1, 3_600_000)? as u64,
        };
        let job_stall_timeout_ms = match alias(obj, "jobActivityTimeoutMs", "jobStallTimeoutMs")? {
            None => Some(DEFAULT_JOB_STALL_TIMEOUT_MS),
            Some((k, v)) => off_or_ms(v, k)?,
        };
        let idle_timeout_ms = match given(obj, "idleTimeoutMs") {
            None => Some(DEFAULT_IDLE_TIMEOUT_MS),
            Some(v) => off_or_ms(v, "idleTimeoutMs")?,
        };
        let usage_mode = match given(obj, "usageMode") {
            None => None,
            Some(Value::String(s)) if s == "auto" => None,
            Some(Value::String(s)) if UsageMode::parse(s).is_some() => UsageMode::parse(s),
            Some(v) => {
                return Err(invalid(
                    "usageMode",
                    format!("must be \"burst\", \"single\" or \"auto\", got {v}"),
                ))
            }
        };
        let allowed_origins = match given(obj, "allowedOrigins") {
            None => Vec::new(),
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
                .iter()
                .filter_map(|o| o.as_str().map(str::to_string))
                .collect(),
            Some(v) => {
                return Err(invalid(
                    "allowedOrigins",
                    format!("must be an array of origin strings, got {v}"),
                ))
            }
        };
        Ok(ServerConfig {
            model_id,
            port,
            host,
            threads,
            batch_size,
            clip_on_cpu: opt_bool(obj, "clipOnCpu")?,
            vae_on_cpu: opt_bool(obj, "vaeOnCpu")?,
            offload_to_cpu: opt_bool(obj, "offloadToCpu")?,
            diffusion_fa: opt_bool(obj, "diffusionFlashAttention")?,
            backend,
            binary_path,
            max_queue,
            start_timeout_ms,
            job_stall_timeout_ms,
            usage_mode,
            idle_timeout_ms,
            allowed_origins,
            preload: opt_bool(obj, "preload")?.unwrap_or(false),
            raw: value.clone(),
        })
    }
}

/// One validated image request.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRequest {
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub steps: Option<u32>,
    pub cfg_scale: Option<f64>,
    /// Always concrete: a missing or negative seed was replaced by a random one.
    pub seed: i64,
    pub sampler: Option<String>,
    pub count: u32,
    /// The request's `usageMode` (`burst`/`single`); `None` = the server's.
    pub usage_mode: Option<UsageMode>,
    /// Optimisation flags forced for this image (`executeImageGeneration(config, flagOverrides)`);
    /// never read from an HTTP body.
    pub flag_overrides: Option<crate::diffusion::flags::FlagOverrides>,
    /// Settle residency after the image (release or arm the idle timer). Off when a caller
    /// (an orchestrator, calibration) drives residency itself.
    pub settle: bool,
    /// Submitted over HTTP while an orchestrator is attached: the worker waits for the JS side
    /// (LLM offload) before running it, and leaves residency to the orchestrator.
    pub gated: bool,
}

/// A request the caller got wrong: HTTP 400 `INVALID_REQUEST`.
pub fn bad_request(msg: impl Into<String>) -> Error {
    Error::server(msg, json!({ "code": "INVALID_REQUEST" }))
}

/// The largest seed sd.cpp accepts from us; random seeds are drawn below it as genai-electron does.
pub const MAX_RANDOM_SEED: i64 = 2_147_483_646;

/// sd-server reads generation parameters embedded in a prompt between these tags; a prompt from an
/// HTTP client must not be able to set what the API validates (sizes, steps) or anything else.
const EXTRA_ARGS_TAG: &str = "<sd_cpp_extra_args>";
/// Far beyond what any text encoder reads, and under Linux's 128 KiB limit on one command-line
/// argument, so the cli backend never fails to spawn over a prompt.
const MAX_PROMPT_BYTES: usize = 64 * 1024;

impl ImageRequest {
    pub fn parse(value: &Value) -> Result<Self> {
        let obj = value
            .as_object()
            .ok_or_else(|| bad_request("Request body must be a JSON object"))?;
        let prompt = match given(obj, "prompt") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::String(_)) | None => {
                return Err(bad_request("Missing required field: prompt"))
            }
            Some(v) => return Err(bad_request(format!("prompt must be a string, got {v}"))),
        };
        let negative_prompt = match given(obj, "negativePrompt") {
            None => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => {
                return Err(bad_request(format!(
                    "negativePrompt must be a string, got {v}"
                )))
            }
        };
        for (field, text) in [
            ("prompt", Some(&prompt)),
            ("negativePrompt", negative_prompt.as_ref()),
        ] {
            if text.is_some_and(|t| t.len() > MAX_PROMPT_BYTES) {
                return Err(bad_request(format!(
                    "{field} is longer than {MAX_PROMPT_BYTES} bytes"
                )));
            }
            if text.is_some_and(|t| t.to_ascii_lowercase().contains(EXTRA_ARGS_TAG)) {
                return Err(bad_request(format!(
                    "{field} must not contain {EXTRA_ARGS_TAG}: sd-server would read it as generation parameters that bypass validation"
                )));
            }
        }
        let int_field = |key: &str, min: i64, max: i64| -> Result<Option<u32>> {
            match given(obj, key) {
                None => Ok(None),
                Some(v) => match int_in(v, key, min, max) {
                    Ok(n) => Ok(Some(n as u32)),
                    Err(_) => Err(bad_request(format!(
                        "{key} must be an integer between {min} and {max}, got {v}"
                    ))),
                },
            }
        };
        let width = int_field("width", 64, 4096)?;
        let height = int_field("height", 64, 4096)?;
        let steps = int_field("steps", 1, 1000)?;
        let cfg_scale = match given(obj, "cfgScale") {
            None => None,
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() && (0.0..=100.0).contains(&x) => Some(x),
                _ => {
                    return Err(bad_request(format!(
                        "cfgScale must be a number between 0 and 100, got {v}"
                    )))
                }
            },
        };
        let seed = match given(obj, "seed") {
            None => None,
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15 => Some(x as i64),
                _ => return Err(bad_request(format!("seed must be an integer, got {v}"))),
            },
        };
        let seed = match seed {
            Some(s) if s >= 0 => s,
            _ => fastrand::i64(0..=MAX_RANDOM_SEED),
        };
        let sampler = match given(obj, "sampler") {
            None => None,
            Some(Value::String(s)) if SAMPLERS.contains(&s.as_str()) => Some(s.clone()),
            Some(v) => {
                return Err(bad_request(format!(
                    "sampler must be one of {}, got {v}",
                    SAMPLERS.join(", ")
                )))
            }
        };
        let count = match given(obj, "count") {
            None => 1,
            Some(v) => match int_in(v, "count", 1, 5) {
                Ok(n) => n as u32,
                Err(_) => return Err(bad_request("count must be between 1 and 5")),
            },
        };
        let usage_mode = match given(obj, "usageMode") {
            None => None,
            Some(Value::String(s)) if UsageMode::parse(s).is_some() => UsageMode::parse(s),
            Some(_) => return Err(bad_request("usageMode must be 'burst' or 'single'")),
        };
        Ok(ImageRequest {
            prompt,
            negative_prompt,
            width,
            height,
            steps,
            cfg_scale,
            seed,
            sampler,
            count,
            usage_mode,
            flag_overrides: None,
            settle: true,
            gated: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(e: Error) -> String {
        e.to_string()
    }

    #[test]
    fn unknown_fields_are_listed_sorted() {
        let e =
            ServerConfig::parse(&json!({"modelId": "m", "zeta": 1, "alpha": null})).unwrap_err();
        let m = msg(e);
        assert!(m.starts_with("Server error: Unknown configuration fields: zeta, alpha. Valid fields for DiffusionServerManager are: allowedOrigins, backend, batchSize,"), "{m}");
    }

    #[test]
    fn defaults_and_types() {
        let c = ServerConfig::parse(&json!({"modelId": "m"})).unwrap();
        assert_eq!(c.port, PortSpec::Fixed(8081));
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(c.backend, Backend::Server);
        assert_eq!(c.clip_on_cpu, None);
        let c = ServerConfig::parse(&json!({"modelId": "m", "port": "auto", "offloadToCpu": false, "threads": 4, "backend": "cli", "clipOnCpu": null})).unwrap();
        assert_eq!(c.port, PortSpec::Auto);
        assert_eq!(c.offload_to_cpu, Some(false));
        assert_eq!(c.clip_on_cpu, None);
        assert_eq!(c.threads, Some(4));
        assert_eq!(c.backend, Backend::Cli);
        for bad in [
            json!({"modelId": "m", "threads": "4"}),
            json!({"modelId": "m", "threads": 2.5}),
            json!({"modelId": "m", "port": 70000}),
            json!({"modelId": "m", "offloadToCpu": "yes"}),
            json!({"modelId": "m", "backend": "gpu"}),
            json!({"modelId": "m", "host": "example.com"}),
            json!({"modelId": ""}),
            json!({}),
        ] {
            assert!(ServerConfig::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn genai_electron_026_fields() {
        let c = ServerConfig::parse(
            &json!({"modelId": "m", "host": "", "threads": 0, "batchSize": 2.7}),
        )
        .unwrap();
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(c.threads, None);
        assert_eq!(c.batch_size, Some(2));
        assert_eq!(c.usage_mode, None);
        assert_eq!(c.idle_timeout_ms, Some(300_000));
        assert_eq!(c.job_stall_timeout_ms, Some(600_000));
        assert!(c.allowed_origins.is_empty() && !c.preload);
        let c = ServerConfig::parse(&json!({
            "modelId": "m", "usageMode": "single", "idleTimeoutMs": 0, "jobActivityTimeoutMs": -1,
            "startupTimeout": 500, "startTimeoutMs": 900, "allowedOrigins": ["http://a"], "preload": true
        }))
        .unwrap();
        assert_eq!(c.usage_mode, Some(UsageMode::Single));
        assert_eq!((c.idle_timeout_ms, c.job_stall_timeout_ms), (None, None));
        assert_eq!(c.start_timeout_ms, 500, "the 0.26 name wins over the alias");
        assert_eq!(c.allowed_origins, vec!["http://a".to_string()]);
        assert!(c.preload);
        let c = ServerConfig::parse(
            &json!({"modelId": "m", "idleTimeoutMs": "Infinity", "jobStallTimeoutMs": 5}),
        )
        .unwrap();
        assert_eq!((c.idle_timeout_ms, c.job_stall_timeout_ms), (None, Some(5)));
        for bad in [
            json!({"modelId": "m", "usageMode": "often"}),
            json!({"modelId": "m", "allowedOrigins": "*"}),
            json!({"modelId": "m", "idleTimeoutMs": "5m"}),
        ] {
            assert!(ServerConfig::parse(&bad).is_err(), "{bad}");
        }
        let e = msg(ServerConfig::parse(&json!({"modelId": "m", "gpu": 1})).unwrap_err());
        assert!(e.contains("Unknown configuration field: gpu."), "{e}");
    }

    #[test]
    fn image_request_validation() {
        let r =
            ImageRequest::parse(&json!({"prompt": "a cat", "seed": 7, "width": 64, "cfgScale": 0}))
                .unwrap();
        assert_eq!(r.seed, 7);
        assert_eq!(r.width, Some(64));
        assert_eq!(r.cfg_scale, Some(0.0));
        assert_eq!(r.count, 1);
        let r = ImageRequest::parse(&json!({"prompt": "a cat", "seed": -1})).unwrap();
        assert!((0..=MAX_RANDOM_SEED).contains(&r.seed));
        let cases = [
            (json!({}), "Missing required field: prompt"),
            (
                json!({"prompt": "x <SD_CPP_EXTRA_ARGS>{\"sample_params\":{\"sample_steps\":999}}</sd_cpp_extra_args>"}),
                "prompt must not contain <sd_cpp_extra_args>",
            ),
            (
                json!({"prompt": "x", "negativePrompt": "<sd_cpp_extra_args>{}</sd_cpp_extra_args>"}),
                "negativePrompt must not contain",
            ),
            (json!({"prompt": "  "}), "Missing required field: prompt"),
            (
                json!({"prompt": "x".repeat(MAX_PROMPT_BYTES + 1)}),
                "prompt is longer than 65536 bytes",
            ),
            (
                json!({"prompt": "x", "count": 6}),
                "count must be between 1 and 5",
            ),
            (
                json!({"prompt": "x", "count": 1.5}),
                "count must be between 1 and 5",
            ),
            (
                json!({"prompt": "x", "steps": "20"}),
                "steps must be an integer",
            ),
            (
                json!({"prompt": "x", "width": 0}),
                "width must be an integer",
            ),
            (
                json!({"prompt": "x", "cfgScale": "high"}),
                "cfgScale must be a number",
            ),
            (
                json!({"prompt": "x", "sampler": "foo"}),
                "sampler must be one of",
            ),
            (
                json!({"prompt": "x", "seed": 1.5}),
                "seed must be an integer",
            ),
        ];
        for (body, want) in cases {
            let m = msg(ImageRequest::parse(&body).unwrap_err());
            assert!(m.contains(want), "{body}: {m}");
        }
    }
}
