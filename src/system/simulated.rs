//! A simulated machine: memory and GPU figures read from a JSON file named by
//! `GENAI_ELECTRON_SIMULATE_SYSTEM`, so apps and tests can see what the library decides on an 8 GB
//! or 24 GB GPU without one. It must never switch on by accident or pass for real hardware, so:
//! the file must say `"simulated": true`; any problem with it (unreadable, bad JSON, unknown or
//! missing field, a figure that looks like GB instead of bytes) is an error thrown by every
//! systemInfo call rather than a silent fallback to real values; and every object built from it
//! carries `simulated: true`.

use super::cpu::CpuInfo;
use super::gpu::{GpuDevice, GpuInfo, GpuType};
use super::memory::MemoryInfo;
use crate::error::{Error, Result};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use std::path::Path;

/// The environment variable that names the file (read by the JS side, passed down explicitly).
pub const ENV: &str = "GENAI_ELECTRON_SIMULATE_SYSTEM";
pub const SOURCE: &str = "simulated";
/// `details.code` of the error for a file that cannot be used.
pub const ERROR_CODE: &str = "SIMULATED_SYSTEM_INVALID";

/// Smallest believable figures: anything below is almost surely GB or MB typed as bytes.
const MIN_RAM: u64 = 256 << 20;
const MIN_VRAM: u64 = 64 << 20;

#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedMachine {
    pub memory: MemoryInfo,
    pub gpu: GpuInfo,
    /// `None` when the file has no `cpu` section: the real CPU is reported, unmarked.
    pub cpu: Option<CpuInfo>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    simulated: Value,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    memory: Memory,
    gpu: Gpu,
    #[serde(default)]
    cpu: Option<Cpu>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Memory {
    #[serde(deserialize_with = "bytes")]
    total: u64,
    #[serde(deserialize_with = "bytes")]
    available: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Gpu {
    available: bool,
    #[serde(rename = "type", default)]
    gpu_type: Option<GpuType>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "opt_bytes")]
    vram: Option<u64>,
    #[serde(default, deserialize_with = "opt_bytes")]
    vram_available: Option<u64>,
    #[serde(default)]
    devices: Option<Vec<Device>>,
    #[serde(default)]
    cuda: Option<bool>,
    #[serde(default)]
    metal: Option<bool>,
    #[serde(default)]
    rocm: Option<bool>,
    #[serde(default)]
    vulkan: Option<bool>,
    #[serde(default)]
    driver_version: Option<String>,
    #[serde(default)]
    cuda_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Device {
    name: String,
    #[serde(default, deserialize_with = "opt_bytes")]
    vram: Option<u64>,
    #[serde(default, deserialize_with = "opt_bytes")]
    vram_available: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cpu {
    cores: u32,
    model: String,
    architecture: String,
}

/// Byte counts: non-negative whole numbers (JSON `8e9` is accepted; `8.5` or `"8GB"` is not).
fn bytes<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    let v = Value::deserialize(d)?;
    v.as_u64()
        .or_else(|| {
            v.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 9.0e15)
                .map(|f| f as u64)
        })
        .ok_or_else(|| serde::de::Error::custom(format!("{v} is not a whole number of bytes")))
}

fn opt_bytes<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u64>, D::Error> {
    bytes(d).map(Some)
}

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<SimulatedMachine> {
    let invalid = |reason: String| {
        Error::fs(
            format!(
                "Invalid simulated machine file {} (set by {ENV}): {reason}",
                path.display()
            ),
            json!({
                "code": ERROR_CODE,
                "path": path.display().to_string(),
                "env": ENV,
                "reason": reason,
            }),
        )
    };
    let text = std::fs::read_to_string(path).map_err(|e| invalid(format!("cannot read: {e}")))?;
    parse(&text).map_err(invalid)
}

/// Validates the JSON text of a simulated machine.
pub fn parse(text: &str) -> std::result::Result<SimulatedMachine, String> {
    let file: File = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if file.simulated != Value::Bool(true) {
        return Err(format!(
            "the file must contain \"simulated\": true (found {}); this marker keeps a stray \
             file from passing for real hardware",
            file.simulated
        ));
    }
    let m = file.memory;
    looks_like_bytes("memory.total", m.total, MIN_RAM)?;
    if m.available > m.total {
        return Err(format!(
            "memory.available ({}) is larger than memory.total ({})",
            m.available, m.total
        ));
    }
    let mut memory = MemoryInfo::new(m.total, m.available);
    memory.simulated = Some(true);

    let mut gpu = gpu(file.gpu, m.total)?;
    gpu.simulated = Some(true);

    let cpu = match file.cpu {
        None => None,
        Some(c) if c.cores == 0 => return Err("cpu.cores must be at least 1".into()),
        Some(c) => Some(CpuInfo {
            cores: c.cores,
            model: c.model,
            architecture: c.architecture,
            simulated: Some(true),
        }),
    };
    Ok(SimulatedMachine { memory, gpu, cpu })
}

/// `total_ram` gives a simulated Apple GPU without `vram` the contract's unified-memory estimate,
/// as a real Mac would report.
fn gpu(g: Gpu, total_ram: u64) -> std::result::Result<GpuInfo, String> {
    if !g.available {
        let extra = g.gpu_type.is_some()
            || g.name.is_some()
            || g.vram.is_some()
            || g.vram_available.is_some()
            || g.devices.is_some();
        if extra {
            return Err("gpu.available is false, so the gpu section must hold nothing else".into());
        }
        return Ok(GpuInfo::none());
    }
    let gpu_type = g
        .gpu_type
        .ok_or("gpu.type is required when gpu.available is true (nvidia, amd, apple or intel)")?;
    let listed = g.devices.is_some();
    let devices = match g.devices {
        Some(_) if g.name.is_some() || g.vram.is_some() || g.vram_available.is_some() => {
            return Err("give either gpu.devices or gpu.name/vram/vramAvailable, not both".into())
        }
        Some(list) if list.is_empty() => return Err("gpu.devices is empty".into()),
        Some(list) => list,
        None => {
            let unified = gpu_type == GpuType::Apple && g.vram.is_none();
            vec![Device {
                name: g
                    .name
                    .unwrap_or_else(|| format!("Simulated {} GPU", type_name(gpu_type))),
                vram: if unified {
                    super::gpu::apple::unified("", total_ram).vram
                } else {
                    g.vram
                },
                vram_available: g.vram_available,
            }]
        }
    };
    let mut out = Vec::with_capacity(devices.len());
    for (i, d) in devices.into_iter().enumerate() {
        let at = |f: &str| {
            if listed {
                format!("gpu.devices[{i}].{f}")
            } else {
                format!("gpu.{f}")
            }
        };
        if let Some(v) = d.vram {
            looks_like_bytes(&at("vram"), v, MIN_VRAM)?;
        }
        match (d.vram, d.vram_available) {
            (None, Some(_)) => {
                return Err(format!("{} without {}", at("vramAvailable"), at("vram")))
            }
            (Some(t), Some(a)) if a > t => {
                return Err(format!(
                    "{} ({a}) is larger than vram ({t})",
                    at("vramAvailable")
                ))
            }
            _ => {}
        }
        out.push(GpuDevice {
            index: i as u32,
            name: d.name,
            vram: d.vram,
            vram_available: d.vram_available,
        });
    }
    let mut info = GpuInfo::from_devices(gpu_type, out, SOURCE).ok_or("gpu.devices is empty")?;
    info.cuda = g.cuda;
    info.metal = g.metal;
    info.rocm = g.rocm;
    info.vulkan = g.vulkan;
    info.driver_version = g.driver_version;
    info.cuda_version = g.cuda_version;
    info.set_default_api_flags();
    Ok(info)
}

fn type_name(t: GpuType) -> &'static str {
    match t {
        GpuType::Nvidia => "NVIDIA",
        GpuType::Amd => "AMD",
        GpuType::Apple => "Apple",
        GpuType::Intel => "Intel",
    }
}

fn looks_like_bytes(field: &str, value: u64, min: u64) -> std::result::Result<(), String> {
    if value < min {
        return Err(format!(
            "{field} is {value}: figures are in bytes (for example 8 GiB = {})",
            8u64 << 30
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn machine(gpu: Value) -> String {
        json!({
            "simulated": true,
            "memory": { "total": 32 * GIB, "available": 20 * GIB },
            "gpu": gpu,
        })
        .to_string()
    }

    #[test]
    fn a_single_gpu_machine() {
        let m = parse(&machine(json!({
            "available": true, "type": "nvidia", "name": "Sim 4070",
            "vram": 12 * GIB, "vramAvailable": 11 * GIB
        })))
        .unwrap();
        assert_eq!(m.memory.total, 32 * GIB);
        assert_eq!(m.memory.used, 12 * GIB);
        assert_eq!(m.memory.simulated, Some(true));
        assert_eq!(m.gpu.name.as_deref(), Some("Sim 4070"));
        assert_eq!(
            (m.gpu.vram, m.gpu.vram_available),
            (Some(12 * GIB), Some(11 * GIB))
        );
        assert_eq!((m.gpu.cuda, m.gpu.simulated), (Some(true), Some(true)));
        assert_eq!(m.gpu.source.as_deref(), Some("simulated"));
        assert!(m.cpu.is_none());
    }

    #[test]
    fn devices_no_gpu_and_cpu() {
        let m = parse(&machine(json!({
            "available": true, "type": "amd",
            "devices": [{ "name": "small", "vram": 8 * GIB }, { "name": "big", "vram": 24 * GIB }]
        })))
        .unwrap();
        assert_eq!(m.gpu.name.as_deref(), Some("big"));
        assert_eq!(m.gpu.rocm, Some(true));
        assert_eq!(m.gpu.devices.as_ref().unwrap().len(), 2);

        let m = parse(&machine(json!({ "available": false }))).unwrap();
        assert!(!m.gpu.available);
        assert_eq!(m.gpu.simulated, Some(true));
        assert_eq!(m.gpu.name, None);

        let text = json!({
            "simulated": true, "description": "laptop",
            "memory": { "total": 8.0e9, "available": 4e9 },
            "gpu": { "available": true, "type": "intel" },
            "cpu": { "cores": 4, "model": "Sim CPU", "architecture": "arm64" }
        })
        .to_string();
        let m = parse(&text).unwrap();
        assert_eq!(m.memory.total, 8_000_000_000);
        assert_eq!(m.gpu.name.as_deref(), Some("Simulated Intel GPU"));
        assert_eq!(m.gpu.vram, None);
        assert_eq!(m.cpu.unwrap().simulated, Some(true));
    }

    #[test]
    fn an_apple_gpu_without_vram_gets_the_unified_memory_estimate() {
        let text = json!({
            "simulated": true,
            "memory": { "total": 16 * GIB, "available": 8 * GIB },
            "gpu": { "available": true, "type": "apple", "name": "Apple M3" }
        })
        .to_string();
        let m = parse(&text).unwrap();
        assert_eq!(m.gpu.vram, Some(12_025_908_428));
        assert_eq!(m.gpu.vram_available, None);
        assert_eq!((m.gpu.metal, m.gpu.simulated), (Some(true), Some(true)));
        assert_eq!(m.gpu.source.as_deref(), Some("simulated"));
        assert_eq!(m.gpu.devices.unwrap()[0].name, "Apple M3");
    }

    #[test]
    fn refuses_files_that_could_mislead() {
        let cases = [
            (
                json!({ "memory": { "total": 8 * GIB, "available": GIB }, "gpu": { "available": false } }),
                "missing field `simulated`",
            ),
            (
                json!({ "simulated": "yes", "memory": { "total": 8 * GIB, "available": GIB }, "gpu": { "available": false } }),
                "\"simulated\": true",
            ),
            (
                json!({ "simulated": true, "memory": { "total": 16, "available": 8 }, "gpu": { "available": false } }),
                "memory.total is 16: figures are in bytes",
            ),
            (
                json!({ "simulated": true, "memory": { "total": 8 * GIB, "available": 9 * GIB }, "gpu": { "available": false } }),
                "larger than memory.total",
            ),
            (
                json!({ "simulated": true, "memory": { "total": 8 * GIB, "available": GIB }, "gpu": { "available": true, "type": "nvidia", "vram": 8, "name": "x" } }),
                "gpu.vram is 8",
            ),
            (
                json!({ "simulated": true, "memory": { "total": 8 * GIB, "available": GIB }, "gpu": { "available": true, "type": "amd", "devices": [{ "name": "a", "vram": 8 * GIB, "vramAvailable": 9 * GIB }] } }),
                "gpu.devices[0].vramAvailable (9663676416) is larger than vram",
            ),
            (
                json!({ "simulated": true, "memory": { "total": 8 * GIB, "available": GIB }, "gpu": { "available": true, "type": "nvidia", "vram": 8 * GIB, "vramAvailible": GIB } }),
                "unknown field `vramAvailible`",
            ),
            (
                json!({ "simulated": true, "memory": { "total": 8 * GIB, "available": GIB }, "gpu": { "available": true, "vram": 8 * GIB } }),
                "gpu.type is required",
            ),
            (
                json!({ "simulated": true, "memory": { "total": 8 * GIB, "available": GIB }, "gpu": { "available": false, "vram": 8 * GIB } }),
                "must hold nothing else",
            ),
            (
                json!({ "simulated": true, "memory": { "total": 8 * GIB, "available": GIB }, "gpu": { "available": true, "type": "tpu" } }),
                "unknown variant `tpu`",
            ),
            (
                json!({ "simulated": true, "memory": { "total": "8GB", "available": GIB }, "gpu": { "available": false } }),
                "not a whole number of bytes",
            ),
        ];
        for (file, expected) in cases {
            let err = parse(&file.to_string()).unwrap_err();
            assert!(err.contains(expected), "{file}: {err}");
        }
        assert!(parse("{ not json").is_err());
    }

    #[test]
    fn load_errors_are_file_system_errors_with_a_code() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        let err = load(&p).unwrap_err();
        assert_eq!(err.code(), "FILE_SYSTEM_ERROR");
        match &err {
            Error::FileSystem { message, details } => {
                assert!(message.contains(ENV), "{message}");
                assert_eq!(details["code"], ERROR_CODE);
                assert_eq!(details["path"], p.display().to_string());
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(&p, machine(json!({ "available": false }))).unwrap();
        assert_eq!(load(&p).unwrap().memory.total, 32 * GIB);
    }
}
