//! macOS: every supported Mac has a Metal GPU sharing system RAM. The contract estimates its
//! usable VRAM as `floor(0.7 × total RAM)` (macOS caps GPU wiring near that share) and never
//! reports free VRAM. The name comes from `system_profiler`, which takes a second or more, so it is
//! read once per process.

use super::{GpuDevice, GpuInfo, GpuType};
use crate::system::{command, ProbeConfig};
use std::sync::OnceLock;

pub const SOURCE: &str = "apple";
pub const PROGRAM: &str = "system_profiler";
pub const ARGS: [&str; 1] = ["SPDisplaysDataType"];

pub fn probe(cfg: &ProbeConfig, total_ram: u64) -> GpuInfo {
    static NAME: OnceLock<String> = OnceLock::new();
    let name = NAME.get_or_init(|| chipset_name(cfg));
    unified(name, total_ram)
}

/// The GPU name from `system_profiler`, or a generic one when it cannot be read.
pub fn chipset_name(cfg: &ProbeConfig) -> String {
    match command::run(
        PROGRAM,
        &ARGS,
        cfg.search_path.as_deref(),
        cfg.command_timeout,
    ) {
        Ok(out) => parse_chipset(&out),
        Err(e) => {
            crate::debug_log!("GPU: system_profiler gave nothing ({e})");
            None
        }
    }
    .unwrap_or_else(|| {
        if cfg!(target_arch = "aarch64") {
            "Apple Silicon GPU".into()
        } else {
            "Apple GPU".into()
        }
    })
}

/// The first `Chipset Model:` value of `system_profiler SPDisplaysDataType`.
pub fn parse_chipset(out: &str) -> Option<String> {
    out.lines().find_map(|l| {
        let v = l.trim().strip_prefix("Chipset Model:")?.trim();
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// The unified-memory GPU record for a Mac with `total_ram` bytes.
pub fn unified(name: &str, total_ram: u64) -> GpuInfo {
    // Computed in f64 like the contract's `Math.floor(total * 0.7)`, so values match exactly.
    let vram = (total_ram as f64 * 0.7).floor() as u64;
    let device = GpuDevice {
        index: 0,
        name: name.to_string(),
        vram: Some(vram),
        vram_available: None,
    };
    GpuInfo::from_devices(GpuType::Apple, vec![device], SOURCE).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_from_system_profiler() {
        let out = "Graphics/Displays:\n\n    Apple M2 Pro:\n\n      Chipset Model: Apple M2 Pro\n      Type: GPU\n      Bus: Built-In\n      Total Number of Cores: 19\n";
        assert_eq!(parse_chipset(out).as_deref(), Some("Apple M2 Pro"));
        assert_eq!(parse_chipset("Graphics/Displays:\n"), None);
    }

    #[test]
    fn unified_memory_is_seventy_percent_of_ram() {
        let info = unified("Apple M1 Pro", 16 * (1 << 30));
        assert_eq!(info.vram, Some(12_025_908_428));
        assert_eq!(info.vram_available, None);
        assert_eq!((info.metal, info.cuda), (Some(true), None));
        assert_eq!(info.gpu_type, Some(GpuType::Apple));
        assert_eq!(info.name.as_deref(), Some("Apple M1 Pro"));
    }

    #[cfg(unix)]
    #[test]
    fn chipset_name_runs_the_tool_and_falls_back() {
        use crate::system::command::tests::fake_tool;
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = ProbeConfig::for_tests(dir.path());
        assert!(chipset_name(&cfg).starts_with("Apple"));
        fake_tool(
            dir.path(),
            "system_profiler",
            r#"[ "$1" = SPDisplaysDataType ] || exit 3; echo "      Chipset Model: Apple M4 Max""#,
        );
        assert_eq!(chipset_name(&cfg), "Apple M4 Max");
        cfg.search_path = Some(dir.path().join("none").into_os_string());
        assert!(chipset_name(&cfg).contains("GPU"));
    }
}
