//! `SystemCapabilities.recommendations`, genai-electron's coarse LLM sizing hints: the largest
//! model class the machine handles, quantizations to prefer, inference threads, and whether GPU
//! offload applies. The tiers are the documented ones; apps display them, nothing here decides.

use super::cpu::recommended_threads;
use super::gpu::GpuInfo;
use serde::Serialize;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
const BALANCED: [&str; 2] = ["Q5_K_M", "Q4_K_M"];
const COMPACT: [&str; 3] = ["Q4_K_M", "Q4_K_S", "Q3_K_M"];

/// `SystemRecommendations` of genai-electron.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendations {
    /// `"7B"`, `"13B"`, `"34B"` or `"70B"`.
    pub max_model_size: String,
    pub recommended_quantization: Vec<String>,
    pub threads: u32,
    /// `0` without a GPU; absent with one (the layer count depends on the model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_layers: Option<u32>,
    pub gpu_acceleration: bool,
}

pub fn recommend(cores: u32, total_ram: u64, gpu: &GpuInfo) -> Recommendations {
    let ram = total_ram as f64 / GIB;
    let vram = gpu.vram.map_or(0.0, |v| v as f64 / GIB);
    let (size, quant): (&str, &[&str]) = if gpu.available && vram >= 24.0 {
        ("70B", &BALANCED)
    } else if gpu.available && vram >= 16.0 {
        ("34B", &BALANCED)
    } else if ram >= 32.0 {
        ("34B", &COMPACT)
    } else if ram >= 16.0 {
        ("13B", &BALANCED)
    } else if ram >= 8.0 {
        ("7B", &BALANCED)
    } else {
        ("7B", &COMPACT)
    };
    Recommendations {
        max_model_size: size.into(),
        recommended_quantization: quant.iter().map(|q| q.to_string()).collect(),
        threads: recommended_threads(cores),
        gpu_layers: (!gpu.available).then_some(0),
        gpu_acceleration: gpu.available,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::gpu::{GpuDevice, GpuType};

    const G: u64 = 1 << 30;

    fn gpu(vram_gib: u64) -> GpuInfo {
        let d = GpuDevice {
            index: 0,
            name: "g".into(),
            vram: Some(vram_gib * G),
            vram_available: None,
        };
        GpuInfo::from_devices(GpuType::Nvidia, vec![d], "x").unwrap()
    }

    #[test]
    fn tiers() {
        let none = GpuInfo::none();
        let r = recommend(8, 64 * G, &gpu(24));
        assert_eq!(
            (r.max_model_size.as_str(), r.gpu_layers, r.gpu_acceleration),
            ("70B", None, true)
        );
        assert_eq!(r.recommended_quantization, vec!["Q5_K_M", "Q4_K_M"]);
        assert_eq!(r.threads, 7);
        assert_eq!(recommend(8, 64 * G, &gpu(16)).max_model_size, "34B");
        // A 12 GB GPU does not lift the tier: RAM decides.
        let r = recommend(8, 16 * G, &gpu(12));
        assert_eq!((r.max_model_size.as_str(), r.gpu_layers), ("13B", None));
        let r = recommend(4, 32 * G, &none);
        assert_eq!((r.max_model_size.as_str(), r.gpu_layers), ("34B", Some(0)));
        assert_eq!(
            r.recommended_quantization,
            vec!["Q4_K_M", "Q4_K_S", "Q3_K_M"]
        );
        assert_eq!(recommend(4, 8 * G, &none).recommended_quantization.len(), 2);
        assert_eq!(recommend(2, 4 * G, &none).recommended_quantization.len(), 3);
        assert_eq!(recommend(2, 4 * G, &none).threads, 2);
    }
}
