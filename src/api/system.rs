//! napi functions behind `systemInfo`. The JS side passes what it reads from the environment
//! (simulation file, PATH, NVML library) on every call, so the core never reads env vars from a
//! worker thread while JS may be writing them.

use super::errors::{blocking, IntoNapi};
use crate::system::gpu::nvml::NvmlLoad;
use crate::system::{self, ProbeConfig, SystemInfo};
use napi_derive::napi;
use serde_json::Value;
use std::sync::LazyLock;
use std::time::Duration;

/// The process-wide cache behind the `systemInfo` singleton. Other napi modules (the diffusion
/// server) share it, so `clearCache()` and the 60-second cache mean the same thing everywhere.
pub(super) static SYSTEM: LazyLock<SystemInfo> = LazyLock::new(SystemInfo::new);

#[napi(object)]
pub struct SystemProbeOptions {
    /// `GENAI_ELECTRON_SIMULATE_SYSTEM`, resolved to an absolute path.
    pub simulate_file: Option<String>,
    /// PATH used to find `nvidia-smi`, `rocm-smi`, `system_profiler`.
    pub search_path: Option<String>,
    /// `GENAI_ELECTRON_NVML_LIBRARY`.
    pub nvml_library: Option<String>,
    /// Deadline for each probe command, in milliseconds.
    pub timeout_ms: Option<f64>,
}

/// The probe configuration for what the JS side passed (`probeOptions()` in lib/system-info.js).
pub(super) fn config(o: Option<SystemProbeOptions>) -> ProbeConfig {
    let mut cfg = ProbeConfig::default();
    if let Some(o) = o {
        cfg.simulate_file = o.simulate_file.filter(|s| !s.is_empty()).map(Into::into);
        cfg.search_path = o.search_path.map(Into::into);
        if let Some(lib) = o.nvml_library.filter(|s| !s.is_empty()) {
            cfg.nvml = NvmlLoad::Library(lib.into());
        }
        if let Some(ms) = o.timeout_ms.filter(|ms| ms.is_finite() && *ms > 0.0) {
            cfg.command_timeout = Duration::from_millis(ms as u64);
        }
    }
    cfg
}

fn to_json<T: serde::Serialize>(v: &T) -> crate::Result<Value> {
    Ok(serde_json::to_value(v).unwrap_or(Value::Null))
}

#[napi(js_name = "systemDetect")]
pub async fn system_detect(
    force_refresh: bool,
    options: Option<SystemProbeOptions>,
) -> napi::Result<Value> {
    let cfg = config(options);
    blocking(move || to_json(&SYSTEM.detect(force_refresh, &cfg)?)).await
}

/// Synchronous like the contract's `getMemoryInfo()`: one read of /proc/meminfo (or the OS
/// equivalent), microseconds.
#[napi(js_name = "systemMemoryInfo")]
pub fn system_memory_info(options: Option<SystemProbeOptions>) -> napi::Result<Value> {
    system::memory_info(&config(options))
        .and_then(|m| to_json(&m))
        .napi()
}

#[napi(js_name = "systemGpuInfo")]
pub async fn system_gpu_info(options: Option<SystemProbeOptions>) -> napi::Result<Value> {
    let cfg = config(options);
    blocking(move || to_json(&system::gpu_info(&cfg)?)).await
}

#[napi(js_name = "systemCanRunModel")]
pub async fn system_can_run_model(
    model_info: Value,
    can_run_options: Option<Value>,
    options: Option<SystemProbeOptions>,
) -> napi::Result<Value> {
    let cfg = config(options);
    blocking(move || to_json(&SYSTEM.can_run_model(&model_info, can_run_options.as_ref(), &cfg)?))
        .await
}

#[napi(js_name = "systemClearCache")]
pub fn system_clear_cache() {
    SYSTEM.clear_cache();
}

/// `estimateKVBytesPerToken(modelInfo, cacheTypeK, cacheTypeV)`: the KV arithmetic `canRunModel`
/// uses, with genai-electron's metadata fallbacks.
#[napi(js_name = "systemKvBytesPerToken")]
pub fn system_kv_bytes_per_token(
    model_info: Value,
    cache_type_k: Option<String>,
    cache_type_v: Option<String>,
) -> napi::Result<f64> {
    system::can_run::kv_bytes_per_token(&model_info, cache_type_k, cache_type_v).napi()
}
