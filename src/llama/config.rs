//! `LlamaServerConfig`: genai-electron 0.26's fields, checked before anything runs, and the
//! llama-server argument list 0.26 builds from them (same flags, same order), so an app sees the
//! same server behaviour after switching.

use crate::config_fields::{given, int_in, invalid, opt_bool, refuse_unknown};
use crate::error::{Error, Result};
use serde_json::{json, Map, Value};

/// 0.26's `LlamaServerManager.VALID_CONFIG_FIELDS`, plus `binaryPath` (where llama-server is,
/// as `DiffusionServerConfig.binaryPath`).
pub const VALID_CONFIG_FIELDS: &[&str] = &[
    "modelId",
    "port",
    "threads",
    "contextSize",
    "minimumContextSize",
    "preferredContextSize",
    "maximumContextSize",
    "gpuLayers",
    "parallelRequests",
    "flashAttention",
    "forceValidation",
    "modelAlias",
    "continuousBatching",
    "batchSize",
    "useMmap",
    "useMlock",
    "startupTimeout",
    "jinja",
    "host",
    "cacheTypeK",
    "cacheTypeV",
    "swaFull",
    "overrideTensors",
    "cacheRam",
    "cpuMoe",
    "nCpuMoe",
    "reasoningFormat",
    "fit",
    "occupancyCheck",
    "autoRestart",
    "maxRestarts",
    "healthCheckInterval",
    "binaryPath",
];

/// The KV cache types llama-server accepts (`--cache-type-k/-v`).
pub const KV_CACHE_TYPES: &[&str] = &[
    "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1",
];

const REASONING_FORMATS: &[&str] = &["none", "deepseek", "deepseek-legacy", "auto"];

fn int_field(obj: &Map<String, Value>, key: &str, min: i64, max: i64) -> Result<Option<i64>> {
    given(obj, key)
        .map(|v| int_in(v, key, min, max))
        .transpose()
}

fn string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match given(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(invalid(key, format!("must be a string, got {v}"))),
    }
}

fn one_of(obj: &Map<String, Value>, key: &str, allowed: &[&str]) -> Result<Option<String>> {
    match string(obj, key)? {
        Some(s) if allowed.contains(&s.as_str()) => Ok(Some(s)),
        Some(s) => Err(invalid(
            key,
            format!("must be one of {}, got '{s}'", allowed.join(", ")),
        )),
        None => Ok(None),
    }
}

/// A context-policy violation, with 0.26's `ContextConstraintError` reason (the JS side raises
/// that class for `details.reason`).
fn constraint(reason: &str, message: String, extra: Value) -> Error {
    let mut details =
        json!({ "code": "CONTEXT_CONSTRAINT", "reason": reason, "stage": "validation" });
    if let (Some(d), Some(e)) = (details.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            d.insert(k.clone(), v.clone());
        }
    }
    Error::server(message, details)
}

/// 0.26's `normalizeContextConstraints` checks: positive integers, min <= preferred <= max, an
/// explicit contextSize whose per-slot share lies inside [min, max], no `fit: 'on'` without one.
fn check_context_policy(obj: &Map<String, Value>) -> Result<()> {
    const SAFE: i64 = 9_007_199_254_740_991;
    let mut vals = [None, None, None];
    for (i, (key, reason)) in [
        ("minimumContextSize", "invalid-minimum"),
        ("preferredContextSize", "invalid-preferred"),
        ("maximumContextSize", "invalid-maximum"),
    ]
    .iter()
    .enumerate()
    {
        vals[i] = int_field(obj, key, 1, SAFE).map_err(|_| {
            constraint(
                reason,
                format!("{key} must be a positive safe integer"),
                json!({ *key: obj.get(*key) }),
            )
        })?;
    }
    let [min, pref, max] = vals;
    if min.is_none() && pref.is_none() && max.is_none() {
        return Ok(());
    }
    let bounds = json!({ "minimumContextSize": min, "preferredContextSize": pref, "maximumContextSize": max });
    for (a, b, an, bn, reason) in [
        (
            min,
            pref,
            "minimumContextSize",
            "preferredContextSize",
            "minimum-exceeds-preferred",
        ),
        (
            pref,
            max,
            "preferredContextSize",
            "maximumContextSize",
            "preferred-exceeds-maximum",
        ),
        (
            min,
            max,
            "minimumContextSize",
            "maximumContextSize",
            "minimum-exceeds-maximum",
        ),
    ] {
        if let (Some(a), Some(b)) = (a, b) {
            if a > b {
                return Err(constraint(
                    reason,
                    format!("{an} cannot be greater than {bn}"),
                    bounds,
                ));
            }
        }
    }
    let slots = int_field(obj, "parallelRequests", 1, 4096)?.unwrap_or(1);
    match int_field(obj, "contextSize", 0, i32::MAX as i64)? {
        Some(ctx) => {
            let per_slot = ctx / slots;
            if per_slot <= 0
                || min.is_some_and(|m| per_slot < m)
                || max.is_some_and(|m| per_slot > m)
            {
                return Err(constraint(
                    "precomputed-context-out-of-range",
                    "The configured contextSize does not satisfy the retained per-slot hard bounds"
                        .into(),
                    json!({ "contextSize": ctx, "effectiveContextSize": per_slot, "parallelRequests": slots }),
                ));
            }
        }
        None if given(obj, "fit").and_then(Value::as_str) == Some("on") => {
            return Err(constraint(
                "fit-range-conflict",
                "fit: 'on' requires a concrete contextSize when context policy is used".into(),
                bounds,
            ));
        }
        None => {}
    }
    Ok(())
}

/// A checked configuration. `port` is `None` for `'auto'` (the manager picks a free port).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LlamaConfig {
    pub model_id: String,
    pub port: Option<u16>,
    pub port_auto: bool,
    pub threads: Option<i64>,
    pub context_size: Option<i64>,
    pub gpu_layers: Option<i64>,
    pub parallel_requests: Option<i64>,
    /// `on`, `off` or `auto` (booleans become `on`/`off`).
    pub flash_attention: Option<String>,
    pub model_alias: Option<String>,
    pub continuous_batching: Option<bool>,
    pub batch_size: Option<i64>,
    pub use_mmap: Option<bool>,
    pub use_mlock: Option<bool>,
    pub jinja: Option<bool>,
    pub host: Option<String>,
    pub cache_type_k: Option<String>,
    pub cache_type_v: Option<String>,
    pub swa_full: Option<bool>,
    pub override_tensors: Option<String>,
    pub cache_ram: Option<i64>,
    pub cpu_moe: Option<bool>,
    pub n_cpu_moe: Option<i64>,
    pub reasoning_format: Option<String>,
    pub fit: Option<String>,
}

impl LlamaConfig {
    /// Checks every field 0.26 knows (unknown fields are refused with the list of valid ones,
    /// as 0.26 does) and reads the ones that become flags.
    pub fn parse(value: &Value) -> Result<Self> {
        let obj = value
            .as_object()
            .ok_or_else(|| invalid("config", "must be an object"))?;
        refuse_unknown(obj, VALID_CONFIG_FIELDS, "LlamaServerManager")?;
        let model_id = match given(obj, "modelId") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            _ => return Err(invalid("modelId", "is required (a non-empty string)")),
        };
        let (port, port_auto) = match given(obj, "port") {
            Some(Value::String(s)) if s == "auto" => (None, true),
            Some(Value::String(s)) => {
                return Err(invalid(
                    "port",
                    format!("must be a number or 'auto', got '{s}'"),
                ))
            }
            Some(_) => (int_field(obj, "port", 1, 65535)?.map(|p| p as u16), false),
            None => (None, false),
        };
        let flash_attention = match given(obj, "flashAttention") {
            None => None,
            Some(Value::Bool(true)) => Some("on".to_string()),
            Some(Value::Bool(false)) => Some("off".to_string()),
            Some(_) => one_of(obj, "flashAttention", &["on", "off", "auto"])?,
        };
        // Fields that are checked here but become no flag.
        opt_bool(obj, "forceValidation")?;
        opt_bool(obj, "autoRestart")?;
        int_field(obj, "maxRestarts", 0, 1000)?;
        int_field(obj, "healthCheckInterval", 0, i32::MAX as i64)?;
        int_field(obj, "startupTimeout", 1, i32::MAX as i64)?;
        one_of(obj, "occupancyCheck", &["warn", "strict", "off"])?;
        string(obj, "binaryPath")?;
        check_context_policy(obj)?;
        let host = string(obj, "host")?;
        if let Some(h) = &host {
            if h.trim().is_empty() && !h.is_empty() || h.chars().any(char::is_whitespace) {
                return Err(invalid("host", format!("must be an address, got '{h}'")));
            }
        }
        let cfg = LlamaConfig {
            model_id,
            port,
            port_auto,
            threads: int_field(obj, "threads", 1, 4096)?,
            context_size: int_field(obj, "contextSize", 0, i32::MAX as i64)?,
            gpu_layers: int_field(obj, "gpuLayers", 0, 100_000)?,
            parallel_requests: int_field(obj, "parallelRequests", 1, 4096)?,
            flash_attention,
            model_alias: string(obj, "modelAlias")?,
            continuous_batching: opt_bool(obj, "continuousBatching")?,
            batch_size: int_field(obj, "batchSize", 1, i32::MAX as i64)?,
            use_mmap: opt_bool(obj, "useMmap")?,
            use_mlock: opt_bool(obj, "useMlock")?,
            jinja: opt_bool(obj, "jinja")?,
            host,
            cache_type_k: one_of(obj, "cacheTypeK", KV_CACHE_TYPES)?,
            cache_type_v: one_of(obj, "cacheTypeV", KV_CACHE_TYPES)?,
            swa_full: opt_bool(obj, "swaFull")?,
            override_tensors: string(obj, "overrideTensors")?,
            cache_ram: int_field(obj, "cacheRam", -1, i32::MAX as i64)?,
            cpu_moe: opt_bool(obj, "cpuMoe")?,
            n_cpu_moe: int_field(obj, "nCpuMoe", 0, 100_000)?,
            reasoning_format: one_of(obj, "reasoningFormat", REASONING_FORMATS)?,
            fit: one_of(obj, "fit", &["on", "off"])?,
        };
        Ok(cfg)
    }

    /// 0.26's `normalizeLlamaVCacheConfig`: a quantized V cache needs flash attention, which is
    /// forced on when left unset or `auto` and refused when `off` (llama-server would crash).
    /// Returns whether flash attention was forced on.
    pub fn normalize_v_cache(&mut self) -> Result<bool> {
        let quantized = matches!(self.cache_type_v.as_deref(), Some(t) if t != "f16" && t != "bf16" && t != "f32");
        if !quantized {
            return Ok(false);
        }
        match self.flash_attention.as_deref() {
            Some("off") => Err(Error::server(
                format!(
                    "Quantized V-cache (cacheTypeV: '{}') requires flash attention",
                    self.cache_type_v.as_deref().unwrap_or_default()
                ),
                json!({
                    "code": "INVALID_CONFIG",
                    "field": "cacheTypeV",
                    "suggestion": "Set flashAttention to 'on' (or leave it unset) when using a quantized cacheTypeV, or use cacheTypeV: 'f16'",
                }),
            )),
            None | Some("auto") => {
                self.flash_attention = Some("on".to_string());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The argument list, in 0.26's order (`buildLlamaServerArgs`).
    pub fn args(&self, model_path: &str, port: u16) -> Vec<String> {
        let mut a: Vec<String> = vec!["-m".into(), model_path.into()];
        a.push(
            if self.jinja == Some(false) {
                "--no-jinja"
            } else {
                "--jinja"
            }
            .into(),
        );
        let kv = |a: &mut Vec<String>, flag: &str, v: Option<String>| {
            if let Some(v) = v {
                a.push(flag.to_string());
                a.push(v);
            }
        };
        kv(&mut a, "--host", self.host.clone());
        kv(&mut a, "--port", Some(port.to_string()));
        kv(&mut a, "--threads", self.threads.map(|n| n.to_string()));
        kv(&mut a, "-c", self.context_size.map(|n| n.to_string()));
        kv(&mut a, "-n", Some("-1".into()));
        kv(&mut a, "-ngl", self.gpu_layers.map(|n| n.to_string()));
        kv(&mut a, "-np", self.parallel_requests.map(|n| n.to_string()));
        kv(&mut a, "-fa", self.flash_attention.clone());
        kv(
            &mut a,
            "-fit",
            Some(self.fit.clone().unwrap_or_else(|| "off".into())),
        );
        kv(&mut a, "--cache-type-k", self.cache_type_k.clone());
        kv(&mut a, "--cache-type-v", self.cache_type_v.clone());
        if self.swa_full == Some(true) {
            a.push("--swa-full".into());
        }
        kv(&mut a, "-ot", self.override_tensors.clone());
        kv(&mut a, "--cache-ram", self.cache_ram.map(|n| n.to_string()));
        if self.cpu_moe == Some(true) {
            a.push("--cpu-moe".into());
        }
        kv(&mut a, "--n-cpu-moe", self.n_cpu_moe.map(|n| n.to_string()));
        kv(&mut a, "--reasoning-format", self.reasoning_format.clone());
        kv(&mut a, "--alias", self.model_alias.clone());
        kv(&mut a, "-b", self.batch_size.map(|n| n.to_string()));
        if self.continuous_batching == Some(false) {
            a.push("--no-cont-batching".into());
        }
        if self.use_mmap == Some(false) {
            a.push("--no-mmap".into());
        }
        if self.use_mlock == Some(true) {
            a.push("--mlock".into());
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(e: Error) -> String {
        e.to_string()
    }

    #[test]
    fn minimal_config_gives_0_26_defaults() {
        let c = LlamaConfig::parse(&json!({"modelId": "m"})).unwrap();
        assert_eq!(
            c.args("/m.gguf", 8080),
            ["-m", "/m.gguf", "--jinja", "--port", "8080", "-n", "-1", "-fit", "off"]
        );
    }

    #[test]
    fn every_field_in_0_26_order() {
        let mut c = LlamaConfig::parse(&json!({
            "modelId": "m", "port": 9000, "jinja": false, "host": "0.0.0.0", "threads": 4,
            "contextSize": 8192, "gpuLayers": 33, "parallelRequests": 2, "flashAttention": true,
            "fit": "on", "cacheTypeK": "q8_0", "cacheTypeV": "q8_0", "swaFull": true,
            "overrideTensors": "exps=CPU", "cacheRam": 0, "cpuMoe": true, "nCpuMoe": 2,
            "reasoningFormat": "auto", "modelAlias": "my-model", "batchSize": 256,
            "continuousBatching": false, "useMmap": false, "useMlock": true,
            "autoRestart": true, "maxRestarts": 2, "healthCheckInterval": 0, "startupTimeout": 5000,
            "occupancyCheck": "off", "forceValidation": false, "binaryPath": "/x"
        }))
        .unwrap();
        assert!(!c.normalize_v_cache().unwrap());
        assert_eq!(
            c.args("/m.gguf", 9000).join(" "),
            "-m /m.gguf --no-jinja --host 0.0.0.0 --port 9000 --threads 4 -c 8192 -n -1 -ngl 33 -np 2 -fa on -fit on --cache-type-k q8_0 --cache-type-v q8_0 --swa-full -ot exps=CPU --cache-ram 0 --cpu-moe --n-cpu-moe 2 --reasoning-format auto --alias my-model -b 256 --no-cont-batching --no-mmap --mlock"
        );
    }

    #[test]
    fn quantized_v_cache_forces_or_refuses_flash_attention() {
        let mut c = LlamaConfig::parse(&json!({"modelId": "m", "cacheTypeV": "q4_0"})).unwrap();
        assert!(c.normalize_v_cache().unwrap());
        assert_eq!(c.flash_attention.as_deref(), Some("on"));
        let mut c = LlamaConfig::parse(
            &json!({"modelId": "m", "cacheTypeV": "q4_0", "flashAttention": false}),
        )
        .unwrap();
        assert!(msg(c.normalize_v_cache().unwrap_err()).contains("requires flash attention"));
        let mut c = LlamaConfig::parse(
            &json!({"modelId": "m", "cacheTypeV": "f16", "flashAttention": "off"}),
        )
        .unwrap();
        assert!(!c.normalize_v_cache().unwrap());
    }

    #[test]
    fn bad_input_is_refused_naming_the_field() {
        let cases = [
            (json!({}), "modelId"),
            (json!({"modelId": "m", "port": 0}), "port"),
            (json!({"modelId": "m", "port": "8080"}), "port"),
            (json!({"modelId": "m", "threads": 1.5}), "threads"),
            (json!({"modelId": "m", "gpuLayers": -1}), "gpuLayers"),
            (
                json!({"modelId": "m", "flashAttention": "maybe"}),
                "flashAttention",
            ),
            (json!({"modelId": "m", "cacheTypeK": "q9_9"}), "cacheTypeK"),
            (json!({"modelId": "m", "fit": true}), "fit"),
            (
                json!({"modelId": "m", "contextSize": "4096"}),
                "contextSize",
            ),
            (
                json!({"modelId": "m", "minimumContextSize": 0}),
                "minimumContextSize",
            ),
            (json!({"modelId": "m", "host": "a b"}), "host"),
        ];
        for (cfg, field) in cases {
            let e = LlamaConfig::parse(&cfg).unwrap_err();
            assert!(msg(e).contains(field), "{cfg}");
        }
        let e = msg(LlamaConfig::parse(&json!({"modelId": "m", "ctx": 1, "gpu": 2})).unwrap_err());
        assert!(e.starts_with("Server error: Unknown configuration fields: ctx, gpu. Valid fields for LlamaServerManager are: autoRestart, batchSize, binaryPath"), "{e}");
    }
}
