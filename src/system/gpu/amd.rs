//! AMD GPUs on Linux: `rocm-smi` when ROCm is installed, otherwise the amdgpu driver's own VRAM
//! counters in sysfs (present on every amdgpu card, ROCm or not), so a Vulkan-only machine still
//! reports real VRAM for offload decisions.

use super::{GpuDevice, GpuInfo, GpuType};
use crate::system::{command, ProbeConfig};
use serde_json::Value;
use std::path::Path;

pub const ROCM_SOURCE: &str = "rocm-smi";
pub const SYSFS_SOURCE: &str = "amdgpu-sysfs";
pub const PROGRAM: &str = "rocm-smi";
/// JSON rather than CSV: its keys are stable across ROCm releases and say which unit they use.
pub const ARGS: [&str; 4] = ["--showproductname", "--showmeminfo", "vram", "--json"];

pub const VENDOR_ID: &str = "0x1002";

pub fn probe_rocm_smi(cfg: &ProbeConfig) -> Option<GpuInfo> {
    let out = match command::run(
        PROGRAM,
        &ARGS,
        cfg.search_path.as_deref(),
        cfg.command_timeout,
    ) {
        Ok(out) => out,
        Err(e) => {
            crate::debug_log!("GPU: rocm-smi gave nothing ({e})");
            return None;
        }
    };
    GpuInfo::from_devices(GpuType::Amd, parse_rocm_smi(&out), ROCM_SOURCE)
}

/// Parses `rocm-smi --showproductname --showmeminfo vram --json`: one `cardN` object per GPU
/// with `VRAM Total Memory (B)` / `VRAM Total Used Memory (B)` in bytes and the product name
/// under `Card Series` (older releases: `Card series`). Text printed before the JSON (warnings)
/// is skipped.
pub fn parse_rocm_smi(out: &str) -> Vec<GpuDevice> {
    let json = match (out.find('{'), out.rfind('}')) {
        (Some(a), Some(b)) if a < b => &out[a..=b],
        _ => return Vec::new(),
    };
    let Ok(Value::Object(cards)) = serde_json::from_str::<Value>(json) else {
        return Vec::new();
    };
    let mut devices: Vec<GpuDevice> = cards
        .iter()
        .filter_map(|(key, card)| {
            let index: u32 = key.strip_prefix("card")?.parse().ok()?;
            let field = |names: &[&str]| {
                card.as_object()?.iter().find_map(|(k, v)| {
                    let k = k.to_ascii_lowercase();
                    names
                        .iter()
                        .any(|n| k == *n)
                        .then(|| value_text(v))
                        .flatten()
                })
            };
            let total = field(&["vram total memory (b)"]).and_then(|s| s.parse::<u64>().ok());
            let used = field(&["vram total used memory (b)"]).and_then(|s| s.parse::<u64>().ok());
            let name = field(&["card series", "card model", "device name", "card sku"])
                .unwrap_or_else(|| format!("AMD GPU (card{index})"));
            Some(GpuDevice {
                index,
                name,
                vram: total,
                vram_available: total.zip(used).map(|(t, u)| t.saturating_sub(u)),
            })
        })
        .collect();
    devices.sort_by_key(|d| d.index);
    devices
}

fn value_text(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!s.is_empty() && s != "N/A").then_some(s)
}

/// amdgpu cards under `<sysfs>/class/drm/cardN/device` with `mem_info_vram_total`.
pub fn probe_sysfs(sysfs_root: &Path) -> Option<GpuInfo> {
    let devices = super::intel::drm_cards(sysfs_root, VENDOR_ID)
        .into_iter()
        .filter_map(|(index, dir)| {
            let read = |f: &str| -> Option<u64> {
                std::fs::read_to_string(dir.join(f))
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            };
            let total = read("mem_info_vram_total")?;
            let used = read("mem_info_vram_used");
            let name = std::fs::read_to_string(dir.join("product_name"))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| super::intel::pci_name("AMD GPU", &dir));
            Some(GpuDevice {
                index,
                name,
                vram: Some(total),
                vram_available: used.map(|u| total.saturating_sub(u)),
            })
        })
        .collect();
    GpuInfo::from_devices(GpuType::Amd, devices, SYSFS_SOURCE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::gpu::intel::tests::fake_card;

    #[test]
    fn rocm_smi_json_lists_every_card() {
        // Shape of ROCm 6.x output for a two-GPU machine, with a warning line first.
        let out = r#"WARNING: AMD GPU device(s) is/are in a low-power state. Check power control/runtime_status
{"card0": {"Card Series": "Navi 31 [Radeon RX 7900 XT/7900 XTX]", "Card Model": "0x744c", "Card Vendor": "Advanced Micro Devices, Inc. [AMD/ATI]", "Card SKU": "D7070100", "VRAM Total Memory (B)": "25753026560", "VRAM Total Used Memory (B)": "1124573184"},
 "card1": {"Card series": "Navi 23", "VRAM Total Memory (B)": "8573157376", "VRAM Total Used Memory (B)": "N/A"},
 "system": {"Driver version": "6.8.5"}}"#;
        let d = parse_rocm_smi(out);
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(d[0].name, "Navi 31 [Radeon RX 7900 XT/7900 XTX]");
        assert_eq!(d[0].vram, Some(25_753_026_560));
        assert_eq!(d[0].vram_available, Some(25_753_026_560 - 1_124_573_184));
        assert_eq!((d[1].index, d[1].name.as_str()), (1, "Navi 23"));
        assert_eq!(d[1].vram_available, None);
        let info = GpuInfo::from_devices(GpuType::Amd, d, ROCM_SOURCE).unwrap();
        assert_eq!((info.rocm, info.vulkan), (Some(true), None));
        assert!(parse_rocm_smi("rocm-smi: command failed").is_empty());
        assert!(parse_rocm_smi("{not json}").is_empty());
    }

    #[test]
    fn amdgpu_sysfs_counters() {
        let root = tempfile::tempdir().unwrap();
        let card = fake_card(root.path(), "card1", "0x1002", "0x73bf");
        std::fs::write(card.join("mem_info_vram_total"), "17163091968\n").unwrap();
        std::fs::write(card.join("mem_info_vram_used"), "163091968\n").unwrap();
        // An Intel card and an AMD card without VRAM counters are not amdgpu VRAM.
        fake_card(root.path(), "card0", "0x8086", "0x46a6");
        fake_card(root.path(), "card2", "0x1002", "0x1636");
        let info = probe_sysfs(root.path()).unwrap();
        assert_eq!(info.gpu_type, Some(GpuType::Amd));
        assert_eq!(info.name.as_deref(), Some("AMD GPU (1002:73bf)"));
        assert_eq!(info.vram, Some(17_163_091_968));
        assert_eq!(info.vram_available, Some(17_000_000_000));
        assert_eq!((info.vulkan, info.rocm), (Some(true), None));
        assert_eq!(info.devices.unwrap().len(), 1);
        assert!(probe_sysfs(&root.path().join("nothing")).is_none());
    }
}
