//! NVIDIA GPUs through `nvidia-smi`'s CSV, for drivers whose NVML cannot be loaded. Every line is
//! one GPU: genai-electron split the whole output on commas and so read only GPU 0, which this
//! parser deliberately does not repeat.

use super::{GpuDevice, GpuInfo, GpuType};
use crate::system::{command, ProbeConfig};

pub const SOURCE: &str = "nvidia-smi";
pub const PROGRAM: &str = "nvidia-smi";
/// The query genai-electron runs; values come in MiB.
pub const ARGS: [&str; 2] = [
    "--query-gpu=name,memory.total,memory.free",
    "--format=csv,noheader",
];

const MIB: f64 = 1024.0 * 1024.0;

pub fn probe(cfg: &ProbeConfig) -> Result<GpuInfo, String> {
    let out = command::run(
        PROGRAM,
        &ARGS,
        cfg.search_path.as_deref(),
        cfg.command_timeout,
    )
    .map_err(|e| e.to_string())?;
    let devices = parse(&out);
    GpuInfo::from_devices(GpuType::Nvidia, devices, SOURCE)
        .ok_or_else(|| format!("no GPU line in its output: {:?}", out.trim()))
}

/// Parses `name, <total> MiB, <free> MiB` lines into devices, in output order. The name is
/// whatever precedes the last two fields, so a comma inside a name does not shift the numbers.
/// `[N/A]` and other non-numbers leave that figure unknown; lines without two separators are not
/// GPU lines (warnings) and are skipped.
pub fn parse(csv: &str) -> Vec<GpuDevice> {
    csv.lines()
        .filter_map(|line| {
            let mut fields = line.rsplitn(3, ',');
            let free = fields.next()?;
            let total = fields.next()?;
            let name = fields.next()?.trim();
            if name.is_empty() {
                return None;
            }
            Some((name.to_string(), mib_to_bytes(total), mib_to_bytes(free)))
        })
        .enumerate()
        .map(|(index, (name, vram, vram_available))| GpuDevice {
            index: index as u32,
            name,
            vram,
            vram_available,
        })
        .collect()
}

/// `24564 MiB` (or a bare number, as with `nounits`) -> bytes.
fn mib_to_bytes(field: &str) -> Option<u64> {
    let f = field.trim();
    let number = f
        .strip_suffix("MiB")
        .or_else(|| f.strip_suffix("MB"))
        .unwrap_or(f)
        .trim();
    let mib: f64 = number.parse().ok()?;
    (mib.is_finite() && mib >= 0.0).then(|| (mib * MIB).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn every_line_is_a_gpu() {
        // Captured from a two-GPU workstation (the 8 GB card first).
        let csv = "NVIDIA GeForce RTX 3070, 8192 MiB, 7795 MiB\n\
                   NVIDIA GeForce RTX 4090, 24564 MiB, 23012 MiB\n";
        let d = parse(csv);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].name, "NVIDIA GeForce RTX 3070");
        assert_eq!(d[0].vram, Some(8 * GIB));
        assert_eq!(d[0].vram_available, Some(7795 * 1024 * 1024));
        assert_eq!((d[1].index, d[1].vram), (1, Some(24564 * 1024 * 1024)));
        let info = GpuInfo::from_devices(GpuType::Nvidia, d, SOURCE).unwrap();
        assert_eq!(info.name.as_deref(), Some("NVIDIA GeForce RTX 4090"));
        assert_eq!(info.vram_available, Some(23012 * 1024 * 1024));
        assert_eq!(info.source.as_deref(), Some("nvidia-smi"));
    }

    #[test]
    fn odd_fields_and_lines() {
        let csv = "\r\nWarning: persistence mode is disabled\n\
                   NVIDIA GH200 480GB, 97871 MiB, [N/A]\r\n\
                   Tesla, Inc. Card, 16384, 16000\n\
                   , 1 MiB, 1 MiB\n";
        let d = parse(csv);
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(d[0].name, "NVIDIA GH200 480GB");
        assert_eq!(d[0].vram, Some(97871 * 1024 * 1024));
        assert_eq!(d[0].vram_available, None);
        assert_eq!(d[1].name, "Tesla, Inc. Card");
        assert_eq!(d[1].vram, Some(16 * GIB));
        assert!(parse("No devices were found\n").is_empty());
        assert!(parse("").is_empty());
    }
}
