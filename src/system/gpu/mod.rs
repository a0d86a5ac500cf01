//! GPU detection. Sources are tried in order of trust and the first that finds a device wins:
//! NVML (the driver's own library), `nvidia-smi`, then on Linux `rocm-smi`, the amdgpu sysfs
//! counters and Intel's DRM vendor id; macOS reports its unified-memory GPU. A source that is
//! missing, fails or hangs is logged (under `GENAI_ELECTRON_DEBUG`) and skipped: detection itself
//! never fails, it answers `{ available: false }`.

pub mod amd;
pub mod apple;
pub mod intel;
pub mod nvidia_smi;
pub mod nvml;

use super::ProbeConfig;
use crate::debug_log;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuType {
    Nvidia,
    Amd,
    Apple,
    Intel,
}

/// One GPU as a source reported it. Byte counts are bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuDevice {
    /// The source's own index (NVML/nvidia-smi order, `cardN` for sysfs and rocm-smi).
    pub index: u32,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vram: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vram_available: Option<u64>,
}

/// `GPUInfo` of the contract plus what this library adds: `driverVersion`, `cudaVersion`,
/// `devices` (every GPU the source saw), `source` (which probe answered) and `simulated`.
/// The top-level name and VRAM are those of the device with the most VRAM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GpuInfo {
    pub available: bool,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub gpu_type: Option<GpuType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vram: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vram_available: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cuda: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metal: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rocm: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vulkan: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cuda_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<GpuDevice>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simulated: Option<bool>,
}

impl GpuInfo {
    pub fn none() -> Self {
        GpuInfo::default()
    }

    /// A detected GPU set: the top-level fields describe the device with the most VRAM (the first
    /// one on ties), since that is where a model would be placed. `None` for an empty list.
    pub fn from_devices(gpu_type: GpuType, devices: Vec<GpuDevice>, source: &str) -> Option<Self> {
        let primary = devices
            .iter()
            .enumerate()
            .max_by_key(|(i, d)| (d.vram.unwrap_or(0), std::cmp::Reverse(*i)))
            .map(|(_, d)| d.clone())?;
        let mut info = GpuInfo {
            available: true,
            gpu_type: Some(gpu_type),
            name: Some(primary.name),
            vram: primary.vram,
            vram_available: primary.vram_available,
            devices: Some(devices),
            source: Some(source.to_string()),
            ..GpuInfo::default()
        };
        info.set_default_api_flags();
        Some(info)
    }

    /// The compute API each vendor's probe implies, as genai-electron sets them.
    pub fn set_default_api_flags(&mut self) {
        match self.gpu_type {
            Some(GpuType::Nvidia) => self.cuda = self.cuda.or(Some(true)),
            Some(GpuType::Apple) => self.metal = self.metal.or(Some(true)),
            Some(GpuType::Amd) => {
                if self.source.as_deref() == Some(amd::SYSFS_SOURCE) {
                    // Without ROCm tools only Vulkan (RADV) is known to be usable.
                    self.vulkan = self.vulkan.or(Some(true));
                } else {
                    self.rocm = self.rocm.or(Some(true));
                }
            }
            Some(GpuType::Intel) => self.vulkan = self.vulkan.or(Some(true)),
            None => {}
        }
    }
}

/// Which platform's probe chain to run. A field rather than `cfg!` so every chain is testable on
/// any machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Linux,
    Windows,
    MacOs,
    Other,
}

impl Platform {
    pub fn current() -> Self {
        if cfg!(target_os = "linux") {
            Platform::Linux
        } else if cfg!(windows) {
            Platform::Windows
        } else if cfg!(target_os = "macos") {
            Platform::MacOs
        } else {
            Platform::Other
        }
    }
}

/// Runs the probe chain. `total_ram` sizes Apple's unified-memory estimate.
pub fn detect(cfg: &ProbeConfig, total_ram: u64) -> GpuInfo {
    match cfg.platform {
        Platform::MacOs => apple::probe(cfg, total_ram),
        Platform::Windows => nvidia(cfg).unwrap_or_else(GpuInfo::none),
        Platform::Linux => nvidia(cfg)
            .or_else(|| amd::probe_rocm_smi(cfg))
            .or_else(|| amd::probe_sysfs(&cfg.sysfs_root))
            .or_else(|| intel::probe_sysfs(&cfg.sysfs_root))
            .unwrap_or_else(GpuInfo::none),
        Platform::Other => GpuInfo::none(),
    }
}

/// NVML first (exact, fast once loaded, gives driver and CUDA versions); `nvidia-smi` when the
/// library is missing or fails.
fn nvidia(cfg: &ProbeConfig) -> Option<GpuInfo> {
    if cfg.nvml != nvml::NvmlLoad::Skip {
        match nvml::probe(&cfg.nvml) {
            Ok(reading) => return Some(reading),
            Err(e) => debug_log!("GPU: NVML unavailable ({e}); trying nvidia-smi"),
        }
    }
    match nvidia_smi::probe(cfg) {
        Ok(info) => Some(info),
        Err(e) => {
            debug_log!("GPU: nvidia-smi gave nothing ({e})");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(index: u32, vram: Option<u64>) -> GpuDevice {
        GpuDevice {
            index,
            name: format!("gpu{index}"),
            vram,
            vram_available: vram.map(|v| v / 2),
        }
    }

    #[test]
    fn the_device_with_most_vram_is_primary_first_on_ties() {
        let info = GpuInfo::from_devices(
            GpuType::Nvidia,
            vec![dev(0, Some(8)), dev(1, Some(24)), dev(2, Some(24))],
            "nvml",
        )
        .unwrap();
        assert_eq!(info.name.as_deref(), Some("gpu1"));
        assert_eq!((info.vram, info.vram_available), (Some(24), Some(12)));
        assert_eq!(info.cuda, Some(true));
        assert_eq!(info.devices.as_ref().unwrap().len(), 3);
        let unknown = GpuInfo::from_devices(GpuType::Intel, vec![dev(3, None)], "x").unwrap();
        assert_eq!(unknown.name.as_deref(), Some("gpu3"));
        assert_eq!(unknown.vulkan, Some(true));
        assert!(GpuInfo::from_devices(GpuType::Amd, vec![], "x").is_none());
    }

    #[test]
    fn json_shape_uses_contract_names_and_omits_unknowns() {
        let none = serde_json::to_value(GpuInfo::none()).unwrap();
        assert_eq!(none, serde_json::json!({ "available": false }));
        let info =
            GpuInfo::from_devices(GpuType::Nvidia, vec![dev(0, Some(1 << 33))], "nvml").unwrap();
        let v = serde_json::to_value(info).unwrap();
        assert_eq!(v["type"], "nvidia");
        assert_eq!(v["vram"], 1u64 << 33);
        assert_eq!(v["vramAvailable"], 1u64 << 32);
        assert_eq!(v["devices"][0]["vramAvailable"], 1u64 << 32);
        assert!(v.get("metal").is_none());
    }
}
