//! `canRunModel` as genai-electron 0.5 decides it: the model needs its size plus 20 % in RAM
//! (only the CPU share of it when layers go to the GPU), compared with total RAM for servers that
//! load on demand (`checkTotalMemory`, the diffusion server) or with available RAM otherwise.
//! A model over 8 GiB on a machine without GPU is allowed, with an advisory. The reason and
//! suggestion texts are the contract's, since apps show or match them.

use super::memory::MemoryInfo;
use crate::error::{Error, Result};
use serde::Serialize;
use serde_json::Value;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
/// Runtime overhead over the file size (genai-electron's 1.2 everywhere).
pub const OVERHEAD: f64 = 1.2;
const CPU_ONLY_ADVISORY_BYTES: f64 = 8.0 * GIB;

/// The options of `canRunModel` this library acts on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CanRunOptions {
    pub check_total_memory: bool,
    pub gpu_layers: Option<f64>,
    pub total_layers: Option<f64>,
}

/// What a model record says about its memory needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelNeeds {
    /// Bytes on disk: the record's `size`, which is the aggregate for multi-component and
    /// sharded models.
    pub size: f64,
    /// `ggufMetadata.block_count`, else genai-electron's size-based estimate.
    pub layer_count: f64,
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

impl CanRunOptions {
    pub fn from_json(v: Option<&Value>) -> Result<Self> {
        let obj = match v {
            None | Some(Value::Null) => return Ok(Self::default()),
            Some(Value::Object(o)) => o,
            Some(_) => return Err(type_error("options must be an object")),
        };
        let check_total_memory = match obj.get("checkTotalMemory") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(type_error("options.checkTotalMemory must be a boolean")),
        };
        let total_layers = number(obj.get("totalLayers"), "options.totalLayers")?;
        if total_layers == Some(0.0) {
            return Err(type_error("options.totalLayers must be greater than 0"));
        }
        Ok(CanRunOptions {
            check_total_memory,
            gpu_layers: number(obj.get("gpuLayers"), "options.gpuLayers")?,
            total_layers,
        })
    }
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
        let block_count = obj
            .get("ggufMetadata")
            .and_then(|m| m.get("block_count"))
            .and_then(Value::as_f64)
            .filter(|n| *n > 0.0);
        let layer_count = block_count.unwrap_or_else(|| {
            (size / (150.0 * 1024.0 * 1024.0))
                .round()
                .clamp(24.0, 120.0)
        });
        Ok(ModelNeeds { size, layer_count })
    }
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

/// The verdict for `model` on a machine with `memory` (a live reading) and a GPU or not.
pub fn verdict(
    model: &ModelNeeds,
    opts: &CanRunOptions,
    memory: &MemoryInfo,
    gpu_available: bool,
) -> CanRunResult {
    let weights = model.size * OVERHEAD;
    let required = match opts.gpu_layers {
        Some(g) if g > 0.0 => {
            let total = opts.total_layers.unwrap_or(model.layer_count);
            weights * (1.0 - g / total).max(0.0)
        }
        _ => weights,
    };
    let (have, kind) = if opts.check_total_memory {
        (memory.total as f64, "total")
    } else {
        (memory.available as f64, "available")
    };
    if have < required {
        return CanRunResult {
            possible: false,
            reason: Some(format!(
                "Insufficient RAM: model requires {}GB, but only {}GB {kind}",
                gb_1dp(required),
                gb_1dp(have)
            )),
            suggestion: Some(if opts.check_total_memory {
                "This model is too large for your system. Try a smaller model or quantization."
                    .into()
            } else {
                "Try closing other applications or using a smaller quantization (Q4_K_M instead of Q8_0)".into()
            }),
            simulated: None,
        };
    }
    if model.size > CPU_ONLY_ADVISORY_BYTES && !gpu_available {
        return CanRunResult {
            possible: true,
            reason: Some("Model will run on CPU only, which may be slow for this size".into()),
            suggestion: Some(
                "Consider using a GPU for better performance with large models".into(),
            ),
            simulated: None,
        };
    }
    CanRunResult {
        possible: true,
        reason: None,
        suggestion: None,
        simulated: None,
    }
}

/// Bytes as GiB with one decimal, rounding halves up like JavaScript's `toFixed(1)` (Rust's
/// `{:.1}` rounds them to even), so messages match genai-electron's digit for digit.
pub fn gb_1dp(bytes: f64) -> String {
    // `f64::round` rounds halves away from zero, which is up for these non-negative values.
    format!("{:.1}", (bytes / GIB * 10.0).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const G: u64 = 1 << 30;

    fn mem(total_gib: u64, available_gib: u64) -> MemoryInfo {
        MemoryInfo::new(total_gib * G, available_gib * G)
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
        let r = verdict(&model, &total, &mem(16, 4), true);
        assert_eq!(
            r,
            CanRunResult {
                possible: true,
                reason: None,
                suggestion: None,
                simulated: None
            }
        );
        let r = verdict(&model, &CanRunOptions::default(), &mem(16, 4), true);
        assert!(!r.possible);
        assert_eq!(
            r.reason.as_deref(),
            Some("Insufficient RAM: model requires 12.0GB, but only 4.0GB available")
        );
        assert_eq!(
            r.suggestion.as_deref(),
            Some("Try closing other applications or using a smaller quantization (Q4_K_M instead of Q8_0)")
        );
        let r = verdict(&model, &total, &mem(8, 8), true);
        assert_eq!(
            r.reason.as_deref(),
            Some("Insufficient RAM: model requires 12.0GB, but only 8.0GB total")
        );
        assert_eq!(
            r.suggestion.as_deref(),
            Some("This model is too large for your system. Try a smaller model or quantization.")
        );
        // Exactly enough is enough.
        assert!(verdict(&needs(10.0 * G as f64), &total, &mem(12, 0), true).possible);
    }

    #[test]
    fn large_models_without_gpu_get_an_advisory() {
        let r = verdict(
            &needs(9.0 * G as f64),
            &CanRunOptions::default(),
            &mem(64, 60),
            false,
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
            false,
        );
        assert_eq!(small.reason, None);
        let with_gpu = verdict(
            &needs(9.0 * G as f64),
            &CanRunOptions::default(),
            &mem(64, 60),
            true,
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
        assert!(verdict(&model, &opts, &mem(16, 2), true).possible);
        let r = verdict(&model, &opts, &mem(16, 1), true);
        assert_eq!(
            r.reason.as_deref(),
            Some("Insufficient RAM: model requires 2.0GB, but only 1.0GB available")
        );
        // More GPU layers than the model has: nothing left for RAM.
        let all =
            CanRunOptions::from_json(Some(&json!({ "gpuLayers": 99, "totalLayers": 32 }))).unwrap();
        assert!(verdict(&model, &all, &mem(16, 0), true).possible);
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
    fn gigabytes_round_like_javascript() {
        assert_eq!(gb_1dp(2.25 * G as f64), "2.3");
        assert_eq!(gb_1dp(2.75 * G as f64), "2.8");
        assert_eq!(gb_1dp(2.24 * G as f64), "2.2");
        assert_eq!(gb_1dp(0.0), "0.0");
        assert_eq!(gb_1dp(7.0 * 1.2 * G as f64), "8.4");
    }
}
