//! `systemInfo.getOptimalConfig(modelInfo, hints)`: genai-electron 0.26's sizing of a
//! llama-server start (threads, slots, context, GPU layers, automatic CPU-resident MoE experts and
//! q8_0 KV quantisation) from free VRAM, available RAM and the GGUF header, with 0.26's constants
//! and fallbacks, so the same machine gets the same flags as before the switch.

use serde_json::{json, Map, Value};

use crate::error::Error;
use crate::system::can_run::{
    ModelNeeds, COMPUTE_BUFFER_BYTES, GPU_WEIGHTS_OVERHEAD,
    KV_FLOOR_TOKENS as FLOOR_CONTEXT_TOKENS, MOE_EXPERT_TOTAL_RAM_FRACTION, OS_RAM_MARGIN_BYTES,
    OVERHEAD as CPU_WEIGHTS_OVERHEAD,
};
use crate::system::cpu::recommended_threads;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
/// 0.26's `KV_SIZING.minPartialReserveBytes`: VRAM kept for the KV cache when only some layers fit.
const MIN_PARTIAL_RESERVE_BYTES: f64 = 1.5 * GIB;

/// What the machine has, as `detect()` and `getMemoryInfo()` report it.
#[derive(Debug, Clone, Copy)]
pub struct Machine {
    pub cores: u32,
    pub ram_total: f64,
    pub ram_available: f64,
    pub gpu_available: bool,
    pub vram: Option<f64>,
    pub vram_available: Option<f64>,
}

fn meta(model: &Value) -> &Value {
    &model["ggufMetadata"]
}

fn positive(v: &Value) -> Option<f64> {
    v.as_f64().filter(|n| *n > 0.0)
}

fn size(model: &Value) -> f64 {
    model["size"].as_f64().unwrap_or(0.0)
}

/// The training context, else 0.26's fallback (8192 for models of 30 GiB or more, else 4096).
pub fn context_length(model: &Value) -> f64 {
    positive(&meta(model)["context_length"]).unwrap_or(if size(model) / GIB >= 30.0 {
        8192.0
    } else {
        4096.0
    })
}

/// `floorContextToGranularity`: 128-token steps up to 2048, then 256, 512, 1024, 2048, 4096.
pub fn floor_context(tokens: f64) -> f64 {
    let ladder = [
        (2048.0, 128.0),
        (4096.0, 256.0),
        (8192.0, 512.0),
        (16384.0, 1024.0),
        (32768.0, 2048.0),
        (f64::INFINITY, 4096.0),
    ];
    for (upper, step) in ladder {
        if tokens <= upper {
            return (tokens / step).floor() * step;
        }
    }
    tokens.floor()
}

/// `calculateGPULayers` (the fallback without GGUF metadata).
fn gpu_layers_by_size(total_layers: f64, vram: f64, model_size: f64) -> f64 {
    if vram == 0.0 || model_size >= vram {
        return 0.0;
    }
    let per_layer = model_size / total_layers;
    let usable = (vram - 2.0 * GIB).max(0.0);
    (usable / per_layer).floor().min(total_layers)
}

fn hint_f64(h: &Map<String, Value>, k: &str) -> Option<f64> {
    h.get(k).and_then(Value::as_f64)
}

fn hint_str<'a>(h: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    h.get(k).and_then(Value::as_str)
}

/// The configuration 0.26 would pick for `model` on `machine` given `hints` (the fields of a
/// `LlamaServerConfig` the caller pins). Returns a `Partial<LlamaServerConfig>` object.
pub fn optimal_config(model: &Value, hints: &Value, machine: &Machine) -> Result<Value, Error> {
    let needs = ModelNeeds::from_json(model)?;
    let empty = Map::new();
    let h = hints.as_object().unwrap_or(&empty);
    let mut out = Map::new();
    out.insert("threads".into(), json!(recommended_threads(machine.cores)));
    out.insert(
        "parallelRequests".into(),
        h.get("parallelRequests")
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or(json!(1)),
    );
    let model_ctx = context_length(model);
    let total_layers = needs.layer_count;
    let has_vram = machine.gpu_available && machine.vram.is_some_and(|v| v > 0.0);
    let m = meta(model);
    let has_gguf = m["architecture"].as_str().is_some_and(|s| !s.is_empty());
    let num = |v: f64| json!(v as i64);

    if !has_gguf || positive(&m["block_count"]).is_none() {
        let ctx = hint_f64(h, "contextSize").unwrap_or(model_ctx.min(FLOOR_CONTEXT_TOKENS));
        out.insert("contextSize".into(), num(ctx));
        let layers = hint_f64(h, "gpuLayers").unwrap_or(if has_vram {
            gpu_layers_by_size(total_layers, machine.vram.unwrap_or(0.0), size(model))
        } else {
            0.0
        });
        out.insert("gpuLayers".into(), num(layers));
        return Ok(Value::Object(out));
    }

    let clamp_ctx = |tokens: f64| FLOOR_CONTEXT_TOKENS.max(model_ctx.min(floor_context(tokens)));
    let model_size = size(model);
    let expert_bytes = needs.expert_bytes;
    let moe_hinted = h.get("cpuMoe") == Some(&Value::Bool(true))
        || hint_str(h, "overrideTensors") == Some("exps=CPU");
    let n_cpu_moe_hint = hint_f64(h, "nCpuMoe")
        .filter(|n| *n > 0.0)
        .map(|n| n.min(total_layers))
        .unwrap_or(0.0);
    let custom_override = h.get("overrideTensors").is_some_and(|v| !v.is_null())
        && hint_str(h, "overrideTensors") != Some("exps=CPU");
    let mut cpu_expert_bytes = 0.0;
    if let Some(eb) = expert_bytes.filter(|b| *b > 0.0 && !custom_override) {
        if moe_hinted {
            cpu_expert_bytes = eb;
        } else if n_cpu_moe_hint > 0.0 {
            cpu_expert_bytes = eb * (n_cpu_moe_hint / total_layers);
        }
    }
    let mut weights_gpu = (model_size - cpu_expert_bytes) * GPU_WEIGHTS_OVERHEAD;
    let mut recommend_cpu_moe = false;
    let vram_budget = if has_vram {
        (machine.vram_available.or(machine.vram).unwrap_or(0.0) - COMPUTE_BUFFER_BYTES).max(0.0)
    } else {
        0.0
    };
    let cpu_context = |bpt: f64| {
        clamp_ctx(
            (machine.ram_available - model_size * CPU_WEIGHTS_OVERHEAD - OS_RAM_MARGIN_BYTES) / bpt,
        )
    };
    let given = |k: &str| h.get(k).is_some_and(|v| !v.is_null());
    let pinned_cache = given("cacheTypeK") || given("cacheTypeV");
    let fa_off = hint_str(h, "flashAttention") == Some("off")
        || h.get("flashAttention") == Some(&Value::Bool(false));
    let mut cache_k = hint_str(h, "cacheTypeK").unwrap_or("f16").to_string();
    let mut cache_v = hint_str(h, "cacheTypeV").unwrap_or("f16").to_string();
    let mut auto_quantized = false;
    if !pinned_cache && !fa_off && has_vram && vram_budget > 0.0 {
        let bpt_f16 = needs.kv_bytes_per_token(None, None);
        if weights_gpu + model_ctx * bpt_f16 > vram_budget {
            cache_k = "q8_0".into();
            cache_v = "q8_0".into();
            auto_quantized = true;
        }
    }
    let bpt = needs.kv_bytes_per_token(Some(&cache_k), Some(&cache_v));
    let hint_layers = hint_f64(h, "gpuLayers");
    let pinned_ctx = hint_f64(h, "contextSize");
    let (gpu_layers, context) = if has_vram && vram_budget > 0.0 {
        let required_kv = pinned_ctx.unwrap_or(FLOOR_CONTEXT_TOKENS) * bpt;
        let mut full_fits = weights_gpu + required_kv <= vram_budget;
        let measured = positive(&m["expert_weights_bytes"]);
        if !full_fits
            && !given("cpuMoe")
            && !given("nCpuMoe")
            && !given("overrideTensors")
            && hint_layers.is_none()
        {
            if let Some(eb) = measured {
                let trunk = (model_size - eb) * GPU_WEIGHTS_OVERHEAD;
                if trunk + required_kv <= vram_budget
                    && eb <= machine.ram_total * MOE_EXPERT_TOTAL_RAM_FRACTION
                {
                    recommend_cpu_moe = true;
                    cpu_expert_bytes = eb;
                    weights_gpu = trunk;
                    full_fits = true;
                }
            }
        }
        let full = match hint_layers {
            Some(l) => l >= total_layers,
            None => full_fits,
        };
        if full {
            (
                hint_layers.unwrap_or(total_layers),
                pinned_ctx.unwrap_or_else(|| clamp_ctx((vram_budget - weights_gpu) / bpt)),
            )
        } else {
            let reserve = required_kv.max(MIN_PARTIAL_RESERVE_BYTES);
            let per_layer = weights_gpu / total_layers;
            let layers = hint_layers.unwrap_or_else(|| {
                total_layers.min(((vram_budget - reserve) / per_layer).floor().max(0.0))
            });
            if layers <= 0.0 {
                (0.0, pinned_ctx.unwrap_or_else(|| cpu_context(bpt)))
            } else {
                let gpu_share = layers / total_layers;
                let cpu_share = 1.0 - gpu_share;
                let gpu_kv_budget = (vram_budget - layers * per_layer).max(0.0);
                let cpu_weights = (model_size - cpu_expert_bytes) * cpu_share + cpu_expert_bytes;
                let ram_kv_budget = (machine.ram_available
                    - cpu_weights * CPU_WEIGHTS_OVERHEAD
                    - OS_RAM_MARGIN_BYTES)
                    .max(0.0);
                let by_gpu = if gpu_share > 0.0 {
                    gpu_kv_budget / (bpt * gpu_share)
                } else {
                    f64::INFINITY
                };
                let by_ram = if cpu_share > 0.0 {
                    ram_kv_budget / (bpt * cpu_share)
                } else {
                    f64::INFINITY
                };
                (
                    layers,
                    pinned_ctx.unwrap_or_else(|| clamp_ctx(by_gpu.min(by_ram))),
                )
            }
        }
    } else {
        (
            hint_layers.unwrap_or(0.0),
            pinned_ctx.unwrap_or_else(|| cpu_context(bpt)),
        )
    };
    out.insert("contextSize".into(), num(context));
    out.insert("gpuLayers".into(), num(gpu_layers));
    if recommend_cpu_moe {
        out.insert("cpuMoe".into(), json!(true));
    }
    if auto_quantized {
        out.insert("cacheTypeK".into(), json!(cache_k));
        out.insert("cacheTypeV".into(), json!(cache_v));
        out.insert("flashAttention".into(), json!("on"));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An 8B-class GGUF: 32 layers, 8 KV heads of 128, 4.9 GB, trained for 131072 tokens.
    fn llama8b() -> Value {
        json!({
            "size": 4.9 * GIB,
            "ggufMetadata": {"architecture": "llama", "block_count": 32, "context_length": 131072,
                "attention_head_count": 32, "attention_head_count_kv": 8, "embedding_length": 4096}
        })
    }

    fn machine(ram: f64, vram: Option<f64>) -> Machine {
        Machine {
            cores: 8,
            ram_total: ram * GIB,
            ram_available: ram * GIB * 0.75,
            gpu_available: vram.is_some(),
            vram: vram.map(|v| v * GIB),
            vram_available: vram.map(|v| v * GIB),
        }
    }

    #[test]
    fn kv_math_and_ladder() {
        // 32 × 8 × 128 × (2 + 2) = 131072 bytes per token.
        let needs = ModelNeeds::from_json(&llama8b()).unwrap();
        assert_eq!(needs.kv_bytes_per_token(None, None), 131072.0);
        assert_eq!(
            needs.kv_bytes_per_token(Some("q8_0"), Some("q8_0")),
            32.0 * 8.0 * 128.0 * 34.0 / 16.0
        );
        assert_eq!(floor_context(5000.0), 4608.0);
        assert_eq!(floor_context(40000.0), 36864.0);
        assert_eq!(floor_context(2000.0), 1920.0);
    }

    #[test]
    fn gpu_offloads_everything_and_quantizes_kv_when_the_full_context_would_not_fit() {
        let c = optimal_config(&llama8b(), &json!({}), &machine(32.0, Some(12.0))).unwrap();
        assert_eq!(c["gpuLayers"], 32);
        assert_eq!(c["threads"], 7);
        assert_eq!(c["parallelRequests"], 1);
        // 11 GiB budget - 4.9 × 1.1 GiB of weights, at q8_0 since f16 × 131072 would not fit.
        assert_eq!(c["cacheTypeK"], "q8_0");
        assert_eq!(c["flashAttention"], "on");
        let budget = 11.0 * GIB - 4.9 * GIB * 1.1;
        let expect = floor_context(budget / (32.0 * 8.0 * 128.0 * 34.0 / 16.0));
        assert_eq!(c["contextSize"].as_f64().unwrap(), expect);
    }

    #[test]
    fn no_gpu_sizes_context_from_ram() {
        let c = optimal_config(&llama8b(), &json!({}), &machine(16.0, None)).unwrap();
        assert_eq!(c["gpuLayers"], 0);
        assert!(c.get("cacheTypeK").is_none());
        let avail = 12.0 * GIB - 4.9 * GIB * 1.2 - 2.0 * GIB;
        assert_eq!(
            c["contextSize"].as_f64().unwrap(),
            floor_context(avail / 131072.0).max(4096.0)
        );
    }

    #[test]
    fn policy_minimum_above_the_training_context_is_refused() {
        let e = optimal_config_with_policy(
            &llama8b(),
            &json!({"minimumContextSize": 200000}),
            &machine(32.0, Some(24.0)),
        )
        .unwrap_err();
        assert!(
            matches!(e, PolicyError::Constraint { ref reason, .. } if reason == "minimum-exceeds-native")
        );
        let c = optimal_config_with_policy(
            &llama8b(),
            &json!({"preferredContextSize": 8192, "parallelRequests": 2}),
            &machine(32.0, Some(24.0)),
        )
        .unwrap();
        assert_eq!(c["contextSize"], 16384);
        assert_eq!(c["preferredContextSize"], 8192);
    }

    #[test]
    fn hints_are_kept_and_metadata_fallback() {
        let c = optimal_config(
            &llama8b(),
            &json!({"contextSize": 8192, "gpuLayers": 10, "parallelRequests": 2}),
            &machine(16.0, Some(8.0)),
        )
        .unwrap();
        assert_eq!(c["contextSize"], 8192);
        assert_eq!(c["gpuLayers"], 10);
        assert_eq!(c["parallelRequests"], 2);
        let bare = json!({"size": 4.0 * GIB});
        let c = optimal_config(&bare, &json!({}), &machine(16.0, Some(8.0))).unwrap();
        assert_eq!(c["contextSize"], 4096);
        // 27 layers by size (4 GiB / 150 MiB), (8 - 2) GiB usable at 4/27 GiB per layer.
        assert_eq!(c["gpuLayers"], 27);
    }
}

/// An impossible or invalid context policy: 0.26's `ContextConstraintError` (`reason`) or, when
/// the minimum cannot be met, its `InsufficientResourcesError`.
#[derive(Debug)]
pub enum PolicyError {
    Constraint {
        reason: String,
        message: String,
        details: Value,
    },
    Insufficient {
        message: String,
        details: Value,
    },
    /// The model record itself is unusable (not an object, no size).
    Input(Error),
}

impl From<Error> for PolicyError {
    fn from(e: Error) -> Self {
        PolicyError::Input(e)
    }
}

/// `getOptimalConfig` with `minimumContextSize` / `preferredContextSize` / `maximumContextSize`
/// (0.26's `getConstrainedOptimalConfig`): the unconstrained answer when it meets the policy,
/// else the most GPU layers (full offload, then CPU-resident experts, then fewer layers) whose
/// context reaches the minimum. Hints without a policy give `optimal_config`.
pub fn optimal_config_with_policy(
    model: &Value,
    hints: &Value,
    machine: &Machine,
) -> std::result::Result<Value, PolicyError> {
    let empty = Map::new();
    let h = hints.as_object().unwrap_or(&empty);
    let get = |k: &str| h.get(k).and_then(Value::as_f64);
    let (minimum, preferred, maximum) = (
        get("minimumContextSize"),
        get("preferredContextSize"),
        get("maximumContextSize"),
    );
    if minimum.is_none() && preferred.is_none() && maximum.is_none() {
        return Ok(optimal_config(model, hints, machine)?);
    }
    let needs = ModelNeeds::from_json(model)?;
    let slots = get("parallelRequests").unwrap_or(1.0);
    let (t_min, t_pref, t_max) = (
        minimum.map(|m| m * slots),
        preferred.map(|p| p * slots),
        maximum.map(|m| m * slots),
    );
    // validateModelContextRange
    let legacy = context_length(model).min(FLOOR_CONTEXT_TOKENS);
    let native = positive(&meta(model)["context_length"]);
    let bounds = json!({ "minimumContextSize": minimum, "preferredContextSize": preferred, "maximumContextSize": maximum, "parallelRequests": slots });
    if let (Some(m), Some(n)) = (minimum, native) {
        if m > n {
            return Err(PolicyError::Constraint {
                reason: "minimum-exceeds-native".into(),
                message: format!("Minimum context {m} exceeds the model's native context {n}"),
                details: bounds,
            });
        }
    }
    if let (Some(m), None) = (minimum, native) {
        if m > legacy {
            return Err(PolicyError::Constraint {
                reason: "model-context-unknown".into(),
                message: format!("Cannot verify minimum context {m} because native context metadata is unavailable"),
                details: bounds,
            });
        }
    }
    let total_native = native.unwrap_or(legacy) * slots;

    let mut base_hints = h.clone();
    for k in [
        "minimumContextSize",
        "preferredContextSize",
        "maximumContextSize",
    ] {
        base_hints.remove(k);
    }
    let baseline = optimal_config(model, &Value::Object(base_hints), machine)?;
    let base_ctx = baseline["contextSize"].as_f64().unwrap_or(legacy);
    let given = |k: &str| h.get(k).is_some_and(|v| !v.is_null());
    let attach = |mut cfg: Map<String, Value>| {
        for k in [
            "cacheTypeK",
            "cacheTypeV",
            "flashAttention",
            "cpuMoe",
            "nCpuMoe",
            "overrideTensors",
        ] {
            if given(k) {
                cfg.insert(k.into(), h[k].clone());
            }
        }
        for (k, v) in [
            ("minimumContextSize", minimum),
            ("preferredContextSize", preferred),
            ("maximumContextSize", maximum),
        ] {
            if let Some(v) = v {
                cfg.insert(k.into(), json!(v as i64));
            }
        }
        cfg
    };
    let cap_context = |ctx: f64, require_min: bool| {
        let cap = ctx
            .min(t_pref.unwrap_or(f64::INFINITY))
            .min(t_max.unwrap_or(f64::INFINITY))
            .min(total_native);
        let mut sel = floor_context(cap);
        if sel <= 0.0 {
            sel = cap.floor();
        }
        if require_min {
            if let Some(tm) = t_min {
                sel = sel.max(tm);
            }
        }
        sel
    };
    let base_obj = baseline.as_object().cloned().unwrap_or_default();
    let Some(min) = minimum else {
        let mut cfg = attach(base_obj);
        cfg.insert(
            "contextSize".into(),
            json!(cap_context(base_ctx, false) as i64),
        );
        return Ok(Value::Object(cfg));
    };
    let t_min = t_min.unwrap_or(min);
    let baseline_meets = (base_ctx / slots).floor() >= min;
    let total_layers = needs.layer_count;
    let has_vram = machine.gpu_available && machine.vram.is_some_and(|v| v > 0.0);
    let vram_budget = if has_vram {
        (machine.vram_available.or(machine.vram).unwrap_or(0.0) - COMPUTE_BUFFER_BYTES).max(0.0)
    } else {
        0.0
    };
    let model_size = size(model);
    let experts = needs.expert_bytes;
    let moe_hinted = h.get("cpuMoe") == Some(&Value::Bool(true))
        || hint_str(h, "overrideTensors") == Some("exps=CPU");
    let n_cpu_moe = get("nCpuMoe")
        .filter(|n| *n > 0.0)
        .map(|n| n.min(total_layers))
        .unwrap_or(0.0);
    let custom_override =
        given("overrideTensors") && hint_str(h, "overrideTensors") != Some("exps=CPU");
    let mut hinted_cpu_experts = 0.0;
    if let Some(eb) = experts.filter(|b| *b > 0.0 && !custom_override) {
        if moe_hinted {
            hinted_cpu_experts = eb;
        } else if n_cpu_moe > 0.0 {
            hinted_cpu_experts = eb * (n_cpu_moe / total_layers);
        }
    }
    let pinned_cache = given("cacheTypeK") || given("cacheTypeV");
    let fa_off = hint_str(h, "flashAttention") == Some("off")
        || h.get("flashAttention") == Some(&Value::Bool(false));
    let mut cache_k = hint_str(h, "cacheTypeK").unwrap_or("f16").to_string();
    let mut cache_v = hint_str(h, "cacheTypeV").unwrap_or("f16").to_string();
    let mut auto_quantized =
        baseline.get("cacheTypeK").is_some() || baseline.get("cacheTypeV").is_some();
    if auto_quantized {
        cache_k = baseline["cacheTypeK"]
            .as_str()
            .unwrap_or("q8_0")
            .to_string();
        cache_v = baseline["cacheTypeV"]
            .as_str()
            .unwrap_or("q8_0")
            .to_string();
    } else if !pinned_cache && !fa_off && has_vram {
        let weights = (model_size - hinted_cpu_experts) * GPU_WEIGHTS_OVERHEAD;
        if weights + t_min * needs.kv_bytes_per_token(None, None) > vram_budget {
            cache_k = "q8_0".into();
            cache_v = "q8_0".into();
            auto_quantized = true;
        }
    }
    let bpt = needs.kv_bytes_per_token(Some(&cache_k), Some(&cache_v));
    let mut best_raw: f64 = 0.0;
    let mut raw_capacity = |cpu_experts: f64, layers: f64| -> f64 {
        if cpu_experts > 0.0 && cpu_experts > machine.ram_total * MOE_EXPERT_TOTAL_RAM_FRACTION {
            return 0.0;
        }
        let layers = layers.clamp(0.0, total_layers);
        if layers > 0.0 && !has_vram {
            return 0.0;
        }
        let gpu_share = layers / total_layers;
        let cpu_share = 1.0 - gpu_share;
        let gpu_weights = (model_size - cpu_experts) * GPU_WEIGHTS_OVERHEAD * gpu_share;
        let by_gpu = if gpu_share > 0.0 {
            (vram_budget - gpu_weights) / (bpt * gpu_share)
        } else {
            f64::INFINITY
        };
        let cpu_weights = (model_size - cpu_experts) * cpu_share + cpu_experts;
        let ram_kv =
            machine.ram_available - cpu_weights * CPU_WEIGHTS_OVERHEAD - OS_RAM_MARGIN_BYTES;
        let by_ram = if cpu_share > 0.0 {
            ram_kv / (bpt * cpu_share)
        } else {
            f64::INFINITY
        };
        let raw = by_gpu.min(by_ram).min(total_native).max(0.0);
        best_raw = best_raw.max(raw);
        raw
    };
    let base_selected = cap_context(base_ctx, true);
    let base_cpu_experts = if baseline.get("cpuMoe") == Some(&Value::Bool(true)) {
        experts.unwrap_or(0.0)
    } else {
        hinted_cpu_experts
    };
    let base_raw = raw_capacity(
        base_cpu_experts,
        baseline["gpuLayers"].as_f64().unwrap_or(0.0),
    );
    if baseline_meets && base_raw >= base_selected {
        let mut cfg = attach(base_obj);
        cfg.insert("contextSize".into(), json!(base_selected as i64));
        return Ok(Value::Object(cfg));
    }
    let choose = |raw: f64| -> Option<f64> {
        let cap = raw
            .min(t_pref.unwrap_or(f64::INFINITY))
            .min(t_max.unwrap_or(f64::INFINITY))
            .min(total_native);
        if cap < t_min {
            return None;
        }
        let rounded = floor_context(cap);
        Some(if rounded >= t_min { rounded } else { t_min })
    };
    let build = |ctx: f64, layers: f64, cpu_moe: bool| {
        let mut cfg = attach(base_obj.clone());
        cfg.insert("contextSize".into(), json!(ctx as i64));
        cfg.insert("gpuLayers".into(), json!(layers as i64));
        if auto_quantized {
            cfg.insert("cacheTypeK".into(), json!(cache_k));
            cfg.insert("cacheTypeV".into(), json!(cache_v));
            cfg.insert("flashAttention".into(), json!("on"));
        } else {
            for k in ["cacheTypeK", "cacheTypeV", "flashAttention"] {
                if !given(k) {
                    cfg.remove(k);
                }
            }
        }
        if cpu_moe {
            cfg.insert("cpuMoe".into(), json!(true));
        } else if !given("cpuMoe") {
            cfg.remove("cpuMoe");
        }
        Value::Object(cfg)
    };
    if let Some(pinned) = get("gpuLayers") {
        if let Some(sel) = choose(raw_capacity(hinted_cpu_experts, pinned)) {
            return Ok(build(sel, pinned, false));
        }
    } else {
        if has_vram {
            if let Some(sel) = choose(raw_capacity(hinted_cpu_experts, total_layers)) {
                return Ok(build(sel, total_layers, false));
            }
        }
        let measured = positive(&meta(model)["expert_weights_bytes"]);
        let auto_moe = !given("cpuMoe") && !given("nCpuMoe") && !given("overrideTensors");
        if let Some(eb) = measured.filter(|eb| {
            auto_moe && has_vram && *eb <= machine.ram_total * MOE_EXPERT_TOTAL_RAM_FRACTION
        }) {
            if let Some(sel) = choose(raw_capacity(eb, total_layers)) {
                return Ok(build(sel, total_layers, true));
            }
        }
        let highest = if has_vram { total_layers - 1.0 } else { 0.0 };
        let mut layers = highest;
        while layers >= 0.0 {
            if let Some(sel) = choose(raw_capacity(hinted_cpu_experts, layers)) {
                return Ok(build(sel, layers, false));
            }
            layers -= 1.0;
        }
    }
    let per_slot = (best_raw
        .min(t_pref.unwrap_or(f64::INFINITY))
        .min(t_max.unwrap_or(f64::INFINITY))
        / slots)
        .floor()
        .max(0.0);
    let plural = if slots == 1.0 { "" } else { "s" };
    Err(PolicyError::Insufficient {
        message: format!("Cannot satisfy minimum context {min} tokens per slot"),
        details: json!({
            "required": format!("{min} context tokens per slot ({t_min} total across {slots} slot{plural})"),
            "available": format!("At most {per_slot} context tokens per slot under the permitted placement"),
            "minimumContextSize": min,
            "preferredContextSize": preferred,
            "maximumContextSize": maximum,
            "maxFeasibleContextSize": per_slot,
            "parallelRequests": slots,
            "suggestion": "Close memory-heavy applications, reduce parallel requests or the minimum context, allow fewer GPU layers, or use a smaller model/quantization",
        }),
    })
}
