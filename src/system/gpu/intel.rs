//! Intel GPUs on Linux, found by PCI vendor id in the DRM class (`/sys/class/drm/cardN/device/vendor
//! == 0x8086`). The kernel exposes no VRAM figure for them, so `vram` stays unknown and the
//! diffusion server takes its conservative branch, as genai-electron does.

use super::{GpuDevice, GpuInfo, GpuType};
use std::path::{Path, PathBuf};

pub const SOURCE: &str = "intel-sysfs";
pub const VENDOR_ID: &str = "0x8086";

pub fn probe_sysfs(sysfs_root: &Path) -> Option<GpuInfo> {
    let devices = drm_cards(sysfs_root, VENDOR_ID)
        .into_iter()
        .map(|(index, dir)| GpuDevice {
            index,
            name: pci_name("Intel GPU", &dir),
            vram: None,
            vram_available: None,
        })
        .collect();
    GpuInfo::from_devices(GpuType::Intel, devices, SOURCE)
}

/// `(N, <root>/class/drm/cardN/device)` for every card whose PCI vendor is `vendor`, by N.
/// Connector entries (`card0-DP-1`) are not cards and are skipped.
pub fn drm_cards(sysfs_root: &Path, vendor: &str) -> Vec<(u32, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(sysfs_root.join("class").join("drm")) else {
        return Vec::new();
    };
    let mut cards: Vec<(u32, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let index: u32 = name.to_str()?.strip_prefix("card")?.parse().ok()?;
            let dir = e.path().join("device");
            let found = std::fs::read_to_string(dir.join("vendor")).ok()?;
            found
                .trim()
                .eq_ignore_ascii_case(vendor)
                .then_some((index, dir))
        })
        .collect();
    cards.sort();
    cards
}

/// `"<label> (vendor:device)"` from the PCI ids in sysfs; the kernel has no marketing name.
pub fn pci_name(label: &str, device_dir: &Path) -> String {
    let id = |f: &str| {
        std::fs::read_to_string(device_dir.join(f))
            .ok()
            .map(|s| s.trim().trim_start_matches("0x").to_ascii_lowercase())
            .filter(|s| !s.is_empty())
    };
    match (id("vendor"), id("device")) {
        (Some(v), Some(d)) => format!("{label} ({v}:{d})"),
        _ => label.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Creates `<root>/class/drm/<card>/device/{vendor,device}` and returns the device dir.
    pub(crate) fn fake_card(root: &Path, card: &str, vendor: &str, device: &str) -> PathBuf {
        let dir = root.join("class").join("drm").join(card).join("device");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("vendor"), format!("{vendor}\n")).unwrap();
        std::fs::write(dir.join("device"), format!("{device}\n")).unwrap();
        dir
    }

    #[test]
    fn intel_cards_by_vendor_id() {
        let root = tempfile::tempdir().unwrap();
        assert!(probe_sysfs(root.path()).is_none());
        fake_card(root.path(), "card0", "0x10de", "0x2684");
        assert!(probe_sysfs(root.path()).is_none());
        fake_card(root.path(), "card1", "0x8086", "0x56A0");
        // A connector directory of the same card must not count as a second GPU.
        fake_card(root.path(), "card1-DP-1", "0x8086", "0x56a0");
        let info = probe_sysfs(root.path()).unwrap();
        assert_eq!(info.gpu_type, Some(GpuType::Intel));
        assert_eq!(info.name.as_deref(), Some("Intel GPU (8086:56a0)"));
        assert_eq!((info.vram, info.vram_available), (None, None));
        assert_eq!((info.vulkan, info.cuda), (Some(true), None));
        assert_eq!(info.devices.unwrap()[0].index, 1);
    }
}
