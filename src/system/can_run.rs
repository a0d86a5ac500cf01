//! `canRunModel` with genai-electron 0.26's rules (SystemInfo.canRunModel):
//! - when both `contextSize` and `gpuLayers` are given, the resolved placement is checked: MoE
//!   experts kept on the CPU (`cpuMoe`, `nCpuMoe`, `overrideTensors: 'exps=CPU'`) against 60 % of
//!   total RAM, the GPU share of weights (+10 %) and KV cache against free VRAM less a 1 GiB compute
//!   reserve, and the CPU share (+20 %), its KV cache and a 2 GiB OS margin against RAM;
//! - otherwise the model needs its size less its MoE expert weights, plus 20 %, plus a KV cache of
//!   4096 tokens when the record carries GGUF metadata, in RAM (only the CPU share of it when layers
//!   go to the GPU), compared with total RAM for servers that load on demand
//!   (`checkTotalMemory`, the diffusion server) or with available RAM; expert weights over 60 % of
//!   total RAM are refused; a model over 8 GiB on a machine without GPU gets an advisory.
//!
//! The reason and suggestion texts are genai-electron's, since apps show or match them.

use super::memory::MemoryInfo;
use crate::error::{Error, Result};
use serde::Serialize;
use serde_json::{Map, Value};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
/// Runtime overhead over the file size of CPU-resident weights (genai-electron's 1.2).
pub const OVERHEAD: f64 = 1.2;
const GPU_WEIGHTS_OVERHEAD: f64 = 1.1;
const CPU_ONLY_ADVISORY_BYTES: f64 = 8.0 * GIB;
const KV_FLOOR_TOKENS: f64 = 4096.0;
const COMPUTE_BUFFER_BYTES: f64 = GIB;
const OS_RAM_MARGIN_BYTES: f64 = 2.0 * GIB;
const MOE_EXPERT_TOTAL_RAM_FRACTION: f64 = 0.6;

/// Bytes per element of each llama.cpp KV cache type (block formats: block bytes / 32).
pub fn kv_bytes_per_element(cache_type: &str) -> Option<f64> {
    Some(match cache_type {
        "f16" | "bf16" => 2.0,
        "q8_0" => 34.0 / 32.0,
        "q5_0" => 22.0 / 32.0,
        "q5_1" => 24.0 / 32.0,
        "q4_0" | "iq4_nl" => 18.0 / 32.0,
        "q4_1" => 20.0 / 32.0,
        _ => return None,
    })
}

/// The options of `canRunModel`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CanRunOptions {
    pub check_total_memory: bool,
    pub gpu_layers: Option<f64>,
    pub total_layers: Option<f64>,
    pub context_size: Option<f64>,
    pub cache_type_k: Option<String>,
    pub cache_type_v: Option<String>,
    pub cpu_moe: bool,
    pub n_cpu_moe: Option<f64>,
    pub override_tensors: Option<String>,
}

/// The GPU facts the verdict reads (from the cached capabilities, as genai-electron).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GpuBudget {
    pub available: bool,
    pub vram: Option<f64>,
    pub vram_available: Option<f64>,
}

/// What a model record says about its memory needs, with genai-electron's fallbacks applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelNeeds {
    /// Bytes on disk: the record's `size`, which is the aggregate for multi-component and
    /// sharded models.
    pub size: f64,
    /// `ggufMetadata.block_count`, else genai-electron's size-based estimate.
    pub layer_count: f64,
    /// The record has GGUF metadata with an architecture and a block count: the KV floor applies.
    pub has_kv_metadata: bool,
    /// KV heads per layer (the mean for per-layer arrays).
    pub kv_heads: f64,
    /// Elements per KV head.
    pub head_dim: f64,
    /// MoE expert weights in bytes (measured, or estimated from the parameter count).
    pub expert_bytes: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CanRunResult {
    pub possible: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
    /// Set when the verdict was reached on a simulated machine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simulated: Option<bool>,
}

impl CanRunResult {
    fn yes() -> Self {
        CanRunResult {
            possible: true,
            reason: None,
            suggestion: None,
            simulated: None,
        }
    }

    fn no(reason: String, suggestion: &str) -> Self {
        CanRunResult {
            possible: false,
            reason: Some(reason),
            suggestion: Some(suggestion.into()),
            simulated: None,
        }
    }
}

fn type_error(msg: &str) -> Error {
    Error::InvalidArgument(format!("canRunModel: {msg}"))
}

fn number(v: Option<&Value>, name: &str) -> Result<Option<f64>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() && f >= 0.0 => Ok(Some(f)),
            _ => Err(type_error(&format!("{name} must be a non-negative number"))),
        },
        Some(_) => Err(type_error(&format!("{name} must be a number"))),
    }
}

fn boolean(v: Option<&Value>, name: &str) -> Result<bool> {
    match v {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(type_error(&format!("{name} must be a boolean"))),
    }
}

fn cache_type(v: Option<&Value>, name: &str) -> Result<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if kv_bytes_per_element(s).is_some() => Ok(Some(s.clone())),
        Some(_) => Err(type_error(&format!(
            "{name} must be one of f16, bf16, q8_0, q5_0, q5_1, q4_0, q4_1, iq4_nl"
        ))),
    }
}

impl CanRunOptions {
    pub fn from_json(v: Option<&Value>) -> Result<Self> {
        let obj = match v {
            None | Some(Value::Null) => return Ok(Self::default()),
            Some(Value::Object(o)) => o,
            Some(_) => return Err(type_error("options must be an object")),
        };
        let total_layers = number(obj.get("totalLayers"), "options.totalLayers")?;
        if total_layers == Some(0.0) {
            return Err(type_error("options.totalLayers must be greater than 0"));
        }
        let override_tensors = match obj.get("overrideTensors") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(type_error("options.overrideTensors must be a string")),
        };
        Ok(CanRunOptions {
            check_total_memory: boolean(obj.get("checkTotalMemory"), "options.checkTotalMemory")?,
            gpu_layers: number(obj.get("gpuLayers"), "options.gpuLayers")?,
            total_layers,
            context_size: number(obj.get("contextSize"), "options.contextSize")?,
            cache_type_k: cache_type(obj.get("cacheTypeK"), "options.cacheTypeK")?,
            cache_type_v: cache_type(obj.get("cacheTypeV"), "options.cacheTypeV")?,
            cpu_moe: boolean(obj.get("cpuMoe"), "options.cpuMoe")?,
            n_cpu_moe: number(obj.get("nCpuMoe"), "options.nCpuMoe")?,
            override_tensors,
        })
    }
}

/// A positive number (JavaScript truthiness of a numeric field).
fn positive(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64).filter(|n| *n > 0.0)
}

/// A positive number, or the positive mean of an all-numeric array (per-layer GGUF fields).
fn scalar_mean(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64().filter(|n| *n > 0.0),
        Value::Array(items) if !items.is_empty() => {
            let nums: Option<Vec<f64>> = items.iter().map(Value::as_f64).collect();
            let nums = nums?;
            let mean = nums.iter().sum::<f64>() / nums.len() as f64;
            (mean > 0.0).then_some(mean)
        }
        _ => None,
    }
}

/// genai-electron's size-based fallback for a missing GGUF field: the value for the first size
/// (GiB) threshold the model reaches, else `otherwise`.
fn by_size(size: f64, steps: &[(f64, f64)], otherwise: f64) -> f64 {
    let gib = size / GIB;
    steps
        .iter()
        .find(|(at, _)| gib >= *at)
        .map_or(otherwise, |(_, v)| *v)
}

impl ModelNeeds {
    /// Reads a `ModelInfo`-shaped object. `size` is required, except that a hand-built record
    /// without it is sized by the sum of its components (or shards).
    pub fn from_json(model: &Value) -> Result<Self> {
        let obj = model
            .as_object()
            .ok_or_else(|| type_error("modelInfo must be an object"))?;
        let size = match number(obj.get("size"), "modelInfo.size")? {
            Some(s) => s,
            None => part_sizes(obj.get("components"))
                .or_else(|| part_sizes(obj.get("shards")))
                .ok_or_else(|| type_error("modelInfo.size must be a number of bytes"))?,
        };
        let empty = Map::new();
        let meta = obj
            .get("ggufMetadata")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let arch = meta
            .get("architecture")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty());
        let raw = |field: &str| -> Option<&Value> {
            let key = format!("{}.{field}", arch?);
            meta.get("raw")?.get(key)
        };
        let block_count = positive(meta.get("block_count"));
        let layer_count = block_count.unwrap_or_else(|| {
            (size / (150.0 * 1024.0 * 1024.0))
                .round()
                .clamp(24.0, 120.0)
        });
        let heads = scalar_mean(meta.get("attention_head_count"))
            .unwrap_or_else(|| by_size(size, &[(60.0, 64.0), (25.0, 52.0), (10.0, 40.0)], 32.0));
        let kv_heads = scalar_mean(meta.get("attention_head_count_kv"))
            .or_else(|| scalar_mean(raw("attention.head_count_kv")))
            .unwrap_or(heads);
        let embedding = positive(meta.get("embedding_length")).unwrap_or_else(|| {
            by_size(
                size,
                &[(60.0, 8192.0), (25.0, 6656.0), (10.0, 5120.0)],
                4096.0,
            )
        });
        let head_dim = scalar_mean(meta.get("attention_key_length"))
            .or_else(|| scalar_mean(raw("attention.key_length")))
            .unwrap_or_else(|| (embedding / heads).round());
        let expert_bytes = positive(meta.get("expert_weights_bytes")).or_else(|| {
            let experts =
                positive(meta.get("expert_count")).or_else(|| positive(raw("expert_count")))?;
            let ff = match meta.get("expert_feed_forward_length") {
                Some(v) if !v.is_null() => positive(Some(v)),
                _ => positive(raw("expert_feed_forward_length")),
            }?;
            let params = positive(meta.get("raw")?.get("general.parameter_count"))?;
            let expert_params = 3.0 * embedding * ff * experts * layer_count;
            let fraction = (expert_params / params).min(0.95);
            (fraction > 0.0).then(|| (size * fraction).round())
        });
        Ok(ModelNeeds {
            size,
            layer_count,
            has_kv_metadata: arch.is_some() && block_count.is_some(),
            kv_heads,
            head_dim,
            expert_bytes,
        })
    }

    /// KV cache bytes per token of context.
    fn kv_bytes_per_token(&self, k: Option<&str>, v: Option<&str>) -> f64 {
        let per = |t: Option<&str>| kv_bytes_per_element(t.unwrap_or("f16")).unwrap_or(2.0);
        // genai-electron's order of operations, so the figures in messages match to the digit.
        self.layer_count * self.kv_heads * self.head_dim * (per(k) + per(v))
    }
}

/// KV cache bytes per token of `model` (a `ModelInfo`) for the given cache types (f16 by default).
pub fn kv_bytes_per_token(model: &Value, k: Option<String>, v: Option<String>) -> Result<f64> {
    let needs = ModelNeeds::from_json(model)?;
    let k = cache_type(k.map(Value::String).as_ref(), "cacheTypeK")?;
    let v = cache_type(v.map(Value::String).as_ref(), "cacheTypeV")?;
    Ok(needs.kv_bytes_per_token(k.as_deref(), v.as_deref()))
}

/// Sum of `size` over a components map or shards list; `None` when there is nothing to add.
fn part_sizes(parts: Option<&Value>) -> Option<f64> {
    let sizes: Vec<f64> = match parts? {
        Value::Object(map) => map
            .values()
            .filter_map(|c| c.get("size")?.as_f64())
            .collect(),
        Value::Array(list) => list
            .iter()
            .filter_map(|c| c.get("size")?.as_f64())
            .collect(),
        _ => return None,
    };
    (!sizes.is_empty()).then(|| sizes.iter().sum())
}

/// The verdict for `model` on a machine with `memory` (a live reading) and `gpu`.
pub fn verdict(
    model: &ModelNeeds,
    opts: &CanRunOptions,
    memory: &MemoryInfo,
    gpu: &GpuBudget,
) -> CanRunResult {
    if let (Some(context), Some(gpu_layers)) = (opts.context_size, opts.gpu_layers) {
        return resolved_placement(model, opts, memory, gpu, context, gpu_layers);
    }
    let total_ram = memory.total as f64;
    let kv_floor = if model.has_kv_metadata {
        KV_FLOOR_TOKENS * model.kv_bytes_per_token(None, None)
    } else {
        0.0
    };
    let experts = model.expert_bytes.unwrap_or(0.0);
    if experts > 0.0 && experts > total_ram * MOE_EXPERT_TOTAL_RAM_FRACTION {
        return CanRunResult::no(
            format!(
                "Insufficient RAM for MoE expert weights: {}GB of experts exceeds 60% of total RAM ({}GB)",
                gb_1dp(experts),
                gb_1dp(total_ram)
            ),
            "Try a smaller quantization of this model, or add more system RAM",
        );
    }
    let weights = (model.size - experts) * OVERHEAD + kv_floor;
    let required = match opts.gpu_layers {
        Some(g) if g > 0.0 => {
            let total = opts.total_layers.unwrap_or(model.layer_count);
            weights * (1.0 - g / total).max(0.0)
        }
        _ => weights,
    };
    let (have, kind) = if opts.check_total_memory {
        (total_ram, "total")
    } else {
        (memory.available as f64, "available")
    };
    if have < required {
        return CanRunResult::no(
            format!(
                "Insufficient RAM: model requires {}GB, but only {}GB {kind}",
                gb_1dp(required),
                gb_1dp(have)
            ),
            if opts.check_total_memory {
                "This model is too large for your system. Try a smaller model or quantization."
            } else {
                "Try closing other applications or using a smaller quantization (Q4_K_M instead of Q8_0)"
            },
        );
    }
    if model.size > CPU_ONLY_ADVISORY_BYTES && !gpu.available {
        return CanRunResult {
            possible: true,
            reason: Some("Model will run on CPU only, which may be slow for this size".into()),
            suggestion: Some(
                "Consider using a GPU for better performance with large models".into(),
            ),
            simulated: None,
        };
    }
    CanRunResult::yes()
}

/// The branch for a fully resolved launch (`contextSize` and `gpuLayers` both known).
fn resolved_placement(
    model: &ModelNeeds,
    opts: &CanRunOptions,
    memory: &MemoryInfo,
    gpu: &GpuBudget,
    context: f64,
    gpu_layers: f64,
) -> CanRunResult {
    let total_layers = opts.total_layers.unwrap_or(model.layer_count);
    let gpu_share = gpu_layers.clamp(0.0, total_layers) / total_layers;
    let cpu_share = 1.0 - gpu_share;
    let experts = model.expert_bytes.unwrap_or(0.0);
    let override_tensors = opts.override_tensors.as_deref();
    let all_experts_on_cpu = opts.cpu_moe || override_tensors == Some("exps=CPU");
    let custom_override = override_tensors.is_some_and(|o| o != "exps=CPU");
    let n_cpu_moe = opts
        .n_cpu_moe
        .filter(|n| *n > 0.0)
        .map_or(0.0, |n| n.min(total_layers));
    let cpu_experts = if custom_override {
        0.0
    } else if all_experts_on_cpu {
        experts
    } else {
        experts * (n_cpu_moe / total_layers)
    };
    let total_ram = memory.total as f64;
    if cpu_experts > 0.0 && cpu_experts > total_ram * MOE_EXPERT_TOTAL_RAM_FRACTION {
        return CanRunResult::no(
            format!(
                "Insufficient RAM for CPU-resident MoE experts: {}GB exceeds 60% of total RAM",
                gb_1dp(cpu_experts)
            ),
            "Use fewer CPU-resident experts or a smaller model quantization",
        );
    }
    let per_token =
        model.kv_bytes_per_token(opts.cache_type_k.as_deref(), opts.cache_type_v.as_deref());
    let vram = gpu.vram.filter(|v| *v > 0.0);
    if gpu_share > 0.0 && (!gpu.available || vram.is_none()) {
        return CanRunResult::no(
            "Resolved configuration requires GPU offload, but no usable GPU VRAM is available"
                .into(),
            "Set gpuLayers to 0 or enable a supported GPU backend",
        );
    }
    if gpu_share > 0.0 {
        let free = gpu.vram_available.or(vram).unwrap_or(0.0);
        let budget = (free - COMPUTE_BUFFER_BYTES).max(0.0);
        let required = (model.size - cpu_experts) * GPU_WEIGHTS_OVERHEAD * gpu_share
            + context * per_token * gpu_share;
        if required > budget {
            return CanRunResult::no(
                format!(
                    "Insufficient VRAM: resolved placement requires {}GB, but {}GB is available after compute reserve",
                    gb_1dp(required),
                    gb_1dp(budget)
                ),
                "Reduce GPU layers or context, or use quantized KV cache",
            );
        }
    }
    if cpu_share > 0.0 {
        let cpu_weights = (model.size - cpu_experts) * cpu_share + cpu_experts;
        let required =
            cpu_weights * OVERHEAD + context * per_token * cpu_share + OS_RAM_MARGIN_BYTES;
        let have = if opts.check_total_memory {
            total_ram
        } else {
            memory.available as f64
        };
        if required > have {
            return CanRunResult::no(
                format!(
                    "Insufficient RAM: resolved placement requires {}GB, but only {}GB is available",
                    gb_1dp(required),
                    gb_1dp(have)
                ),
                "Close other applications, reduce context, or offload more layers to GPU",
            );
        }
    }
    CanRunResult::yes()
}

/// Bytes as GiB with one decimal exactly as JavaScript's `toFixed(1)` prints it, so messages
/// match genai-electron's digit for digit: the nearest decimal of the double's exact value, and
/// on an exact tie the larger one (Rust's `{:.1}` picks the even one on ties).
pub fn gb_1dp(bytes: f64) -> String {
    let x = bytes / GIB;
    // Enough digits to hold the exact expansion of any double in the range messages use.
    let exact = format!("{x:.80}");
    let cut = exact.find('.').map_or(exact.len(), |i| i + 2);
    let (head, rest) = exact.split_at(cut);
    if x >= 0.0 && rest.starts_with('5') && rest[1..].bytes().all(|b| b == b'0') {
        let tenths: u64 = head.replace('.', "").parse().unwrap_or(0) + 1;
        return format!("{}.{}", tenths / 10, tenths % 10);
    }
    format!("{x:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const G: u64 = 1 << 30;

    fn mem(total_gib: u64, available_gib: u64) -> MemoryInfo {
        MemoryInfo::new(total_gib * G, available_gib * G)
    }

    fn gpu(available: bool) -> GpuBudget {
        GpuBudget {
            available,
            ..Default::default()
        }
    }

    fn needs(size: f64) -> ModelNeeds {
        ModelNeeds::from_json(&json!({ "size": size })).unwrap()
    }

    #[test]
    fn total_or_available_ram() {
        let model = needs(10.0 * G as f64); // needs 12 GiB
        let total = CanRunOptions {
            check_total_memory: true,
            ..Default::default()
        };
        let r = verdict(&model, &total, &mem(16, 4), &gpu(true));
        assert_eq!(
            r,
            CanRunResult {
                possible: true,
                reason: None,
                suggestion: None,
                simulated: None
            }
        );
        let r = verdict(&model, &CanRunOptions::default(), &mem(16, 4), &gpu(true));
        assert!(!r.possible);
        assert_eq!(
            r.reason.as_deref(),
            Some("Insufficient RAM: model requires 12.0GB, but only 4.0GB available")
        );
        assert_eq!(
            r.suggestion.as_deref(),
            Some("Try closing other applications or using a smaller quantization (Q4_K_M instead of Q8_0)")
        );
        let r = verdict(&model, &total, &mem(8, 8), &gpu(true));
        assert_eq!(
            r.reason.as_deref(),
            Some("Insufficient RAM: model requires 12.0GB, but only 8.0GB total")
        );
        assert_eq!(
            r.suggestion.as_deref(),
            Some("This model is too large for your system. Try a smaller model or quantization.")
        );
        // Exactly enough is enough.
        assert!(verdict(&needs(10.0 * G as f64), &total, &mem(12, 0), &gpu(true)).possible);
    }

    #[test]
    fn large_models_without_gpu_get_an_advisory() {
        let r = verdict(
            &needs(9.0 * G as f64),
            &CanRunOptions::default(),
            &mem(64, 60),
            &gpu(false),
        );
        assert!(r.possible);
        assert_eq!(
            r.reason.as_deref(),
            Some("Model will run on CPU only, which may be slow for this size")
        );
        assert!(r.suggestion.unwrap().contains("GPU"));
        let small = verdict(
            &needs(8.0 * G as f64),
            &CanRunOptions::default(),
            &mem(64, 60),
            &gpu(false),
        );
        assert_eq!(small.reason, None);
        let with_gpu = verdict(
            &needs(9.0 * G as f64),
            &CanRunOptions::default(),
            &mem(64, 60),
            &gpu(true),
        );
        assert_eq!(with_gpu.reason, None);
    }

    #[test]
    fn gpu_layers_only_count_the_cpu_share() {
        // 10 GiB model, 40 of 48 layers on the GPU: 12 GiB × 8/48 = 2 GiB of RAM.
        let model = ModelNeeds::from_json(&json!({
            "size": 10 * G, "ggufMetadata": { "block_count": 48 }
        }))
        .unwrap();
        assert_eq!(model.layer_count, 48.0);
        let opts = CanRunOptions::from_json(Some(&json!({ "gpuLayers": 40 }))).unwrap();
        assert!(verdict(&model, &opts, &mem(16, 2), &gpu(true)).possible);
        let r = verdict(&model, &opts, &mem(16, 1), &gpu(true));
        assert_eq!(
            r.reason.as_deref(),
            Some("Insufficient RAM: model requires 2.0GB, but only 1.0GB available")
        );
        // More GPU layers than the model has: nothing left for RAM.
        let all =
            CanRunOptions::from_json(Some(&json!({ "gpuLayers": 99, "totalLayers": 32 }))).unwrap();
        assert!(verdict(&model, &all, &mem(16, 0), &gpu(true)).possible);
    }

    #[test]
    fn sizes_of_multi_component_records() {
        let flux = json!({
            "id": "flux", "type": "diffusion", "size": 7 * G,
            "components": {
                "diffusion_model": { "path": "/d", "size": 4 * G },
                "llm": { "path": "/l", "size": 2 * G },
                "vae": { "path": "/v", "size": G }
            }
        });
        assert_eq!(ModelNeeds::from_json(&flux).unwrap().size, (7 * G) as f64);
        let mut no_size = flux.clone();
        no_size.as_object_mut().unwrap().remove("size");
        assert_eq!(
            ModelNeeds::from_json(&no_size).unwrap().size,
            (7 * G) as f64
        );
        // Layer estimate without metadata: round(size / 150 MiB) clamped to 24..120.
        assert_eq!(needs(1e6).layer_count, 24.0);
        assert_eq!(needs((7 * G) as f64).layer_count, 48.0);
    }

    #[test]
    fn bad_arguments_are_type_errors() {
        for bad in [
            json!(null),
            json!({}),
            json!({ "size": "big" }),
            json!({ "size": -1 }),
        ] {
            let e = ModelNeeds::from_json(&bad).unwrap_err();
            assert_eq!(e.code(), "INVALID_ARGUMENT", "{bad}");
        }
        for bad in [
            json!({ "checkTotalMemory": "yes" }),
            json!({ "gpuLayers": "all" }),
            json!({ "totalLayers": 0 }),
            json!(3),
        ] {
            assert!(CanRunOptions::from_json(Some(&bad)).is_err(), "{bad}");
        }
        let o = CanRunOptions::from_json(Some(&json!({ "checkTotalMemory": true }))).unwrap();
        assert!(o.check_total_memory);
    }

    #[test]
    fn kv_floor_applies_with_gguf_metadata() {
        // 32 layers × 8 KV heads × 128 dims × (2 + 2) bytes = 128 KiB per token; × 4096 = 512 MiB.
        let model = ModelNeeds::from_json(&json!({
            "size": 4 * G,
            "ggufMetadata": {
                "architecture": "llama", "block_count": 32, "attention_head_count": 32,
                "attention_head_count_kv": 8, "embedding_length": 4096
            }
        }))
        .unwrap();
        assert!(model.has_kv_metadata);
        let r = verdict(&model, &CanRunOptions::default(), &mem(16, 5), &gpu(true));
        assert_eq!(
            r.reason.as_deref(),
            Some("Insufficient RAM: model requires 5.3GB, but only 5.0GB available")
        );
        // Per-layer arrays count by their mean.
        let arrays = ModelNeeds::from_json(&json!({
            "size": 4 * G,
            "ggufMetadata": {
                "architecture": "gemma3", "block_count": 2,
                "attention_head_count": [8, 8], "attention_head_count_kv": [4, 12],
                "attention_key_length": 256
            }
        }))
        .unwrap();
        assert_eq!((arrays.kv_heads, arrays.head_dim), (8.0, 256.0));
    }

    #[test]
    fn moe_expert_weights() {
        let model = ModelNeeds::from_json(&json!({
            "size": 30 * G,
            "ggufMetadata": { "block_count": 48, "expert_weights_bytes": 20 * G }
        }))
        .unwrap();
        let r = verdict(&model, &CanRunOptions::default(), &mem(32, 30), &gpu(true));
        assert_eq!(
            r.reason.as_deref(),
            Some("Insufficient RAM for MoE expert weights: 20.0GB of experts exceeds 60% of total RAM (32.0GB)")
        );
        // Committed size excludes the experts: (30 - 20) × 1.2 = 12 GiB.
        let r = verdict(&model, &CanRunOptions::default(), &mem(64, 12), &gpu(true));
        assert!(r.possible);
        // Estimated from the parameter count when not measured.
        let estimated = ModelNeeds::from_json(&json!({
            "size": 10 * G,
            "ggufMetadata": {
                "architecture": "qwen3moe", "block_count": 2, "embedding_length": 10,
                "raw": { "qwen3moe.expert_count": 4, "qwen3moe.expert_feed_forward_length": 5,
                         "general.parameter_count": 3000 }
            }
        }))
        .unwrap();
        // 3 × 10 × 5 × 4 × 2 = 1200 of 3000 parameters.
        assert_eq!(
            estimated.expert_bytes,
            Some((10.0 * G as f64 * 0.4).round())
        );
    }

    #[test]
    fn resolved_placement() {
        let model = ModelNeeds::from_json(&json!({
            "size": 8 * G,
            "ggufMetadata": {
                "architecture": "llama", "block_count": 32, "attention_head_count": 32,
                "attention_head_count_kv": 8, "embedding_length": 4096,
                "expert_weights_bytes": 4 * G
            }
        }))
        .unwrap();
        let opts = |v: Value| CanRunOptions::from_json(Some(&v)).unwrap();
        let nvidia = |vram: u64, free: u64| GpuBudget {
            available: true,
            vram: Some((vram * G) as f64),
            vram_available: Some((free * G) as f64),
        };
        // All layers on a GPU without VRAM.
        let r = verdict(
            &model,
            &opts(json!({ "contextSize": 8192, "gpuLayers": 32 })),
            &mem(64, 60),
            &gpu(false),
        );
        assert_eq!(
            r.suggestion.as_deref(),
            Some("Set gpuLayers to 0 or enable a supported GPU backend")
        );
        // All on GPU: 8 × 1.1 + 8192 × 128 KiB (1 GiB) = 9.8 GiB against free − 1 GiB.
        let all_gpu = opts(json!({ "contextSize": 8192, "gpuLayers": 32 }));
        assert!(verdict(&model, &all_gpu, &mem(4, 0), &nvidia(24, 11)).possible);
        let r = verdict(&model, &all_gpu, &mem(4, 0), &nvidia(24, 10));
        assert_eq!(
            r.reason.as_deref(),
            Some("Insufficient VRAM: resolved placement requires 9.8GB, but 9.0GB is available after compute reserve")
        );
        // Experts on the CPU, half the layers on the GPU, q8_0 K cache (0.77 GiB of KV):
        // RAM holds (4 × 0.5 + 4) × 1.2 + 0.38 + 2 GiB margin = 9.6 GiB.
        let moe = opts(
            json!({ "contextSize": 8192, "gpuLayers": 16, "cpuMoe": true, "cacheTypeK": "q8_0" }),
        );
        assert!(verdict(&model, &moe, &mem(16, 10), &nvidia(8, 6)).possible);
        let r = verdict(&model, &moe, &mem(16, 9), &nvidia(8, 6));
        assert_eq!(
            r.reason.as_deref(),
            Some(
                "Insufficient RAM: resolved placement requires 9.6GB, but only 9.0GB is available"
            )
        );
        let r = verdict(&model, &moe, &mem(6, 6), &nvidia(8, 6));
        assert_eq!(
            r.reason.as_deref(),
            Some("Insufficient RAM for CPU-resident MoE experts: 4.0GB exceeds 60% of total RAM")
        );
        // A custom override puts no experts on the CPU by this rule.
        let custom =
            opts(json!({ "contextSize": 8192, "gpuLayers": 32, "overrideTensors": "blk.0=CPU" }));
        assert!(verdict(&model, &custom, &mem(6, 6), &nvidia(24, 20)).possible);
        assert!(CanRunOptions::from_json(Some(&json!({ "cacheTypeK": "q9" }))).is_err());
    }

    #[test]
    fn gigabytes_round_like_javascript() {
        assert_eq!(gb_1dp(2.25 * G as f64), "2.3");
        assert_eq!(gb_1dp(2.75 * G as f64), "2.8");
        assert_eq!(gb_1dp(2.24 * G as f64), "2.2");
        assert_eq!(gb_1dp(0.0), "0.0");
        assert_eq!(gb_1dp(7.0 * 1.2 * G as f64), "8.4");
        // 44.65 is not a tie as a double (44.6499...): JavaScript prints 44.6.
        assert_eq!(gb_1dp(44.65 * G as f64), "44.6");
        assert_eq!(gb_1dp(0.05 * G as f64), "0.1");
        assert_eq!(gb_1dp(9.95 * G as f64), "9.9");
    }
}
