//! NVIDIA GPUs through NVML, the library the driver ships (`libnvidia-ml.so.1` / `nvml.dll`),
//! loaded at run time so the addon starts on machines without it. Loading and `nvmlInit` take
//! tens to hundreds of milliseconds, so the handle, or the reason it could not be had, is kept
//! for the life of the process: a machine without NVIDIA pays the failed `dlopen` once.

use super::{GpuDevice, GpuInfo, GpuType};
use crate::debug_log;
use nvml_wrapper::Nvml;
use std::path::PathBuf;
use std::sync::OnceLock;

pub const SOURCE: &str = "nvml";

/// Where NVML comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NvmlLoad {
    /// Do not use NVML (tests that exercise the fallbacks deterministically).
    Skip,
    /// The loader's default name for the platform.
    Default,
    /// An explicit library file (`GENAI_ELECTRON_NVML_LIBRARY`), for installs outside the loader
    /// path, or a path that does not exist to force the `nvidia-smi` fallback.
    Library(PathBuf),
}

static NVML: OnceLock<Result<Nvml, String>> = OnceLock::new();

/// Reads every NVIDIA device. The first call in the process decides how NVML is loaded.
pub fn probe(load: &NvmlLoad) -> Result<GpuInfo, String> {
    if *load == NvmlLoad::Skip {
        return Err("disabled".into());
    }
    let nvml = NVML
        .get_or_init(|| open(load))
        .as_ref()
        .map_err(Clone::clone)?;
    read(nvml)
}

/// Loads and initialises NVML; an error names the library that could not be used.
pub fn open(load: &NvmlLoad) -> Result<Nvml, String> {
    let result = match load {
        NvmlLoad::Skip => return Err("disabled".into()),
        NvmlLoad::Default => Nvml::init(),
        NvmlLoad::Library(path) => Nvml::builder().lib_path(path.as_os_str()).init(),
    };
    result.map_err(|e| match load {
        NvmlLoad::Library(p) => format!("{}: {e}", p.display()),
        _ => e.to_string(),
    })
}

fn read(nvml: &Nvml) -> Result<GpuInfo, String> {
    let count = nvml.device_count().map_err(|e| e.to_string())?;
    let mut devices = Vec::new();
    for index in 0..count {
        // A device that cannot be read (lost from the bus, no permission) is left out rather
        // than failing the whole reading.
        let reading = nvml.device_by_index(index).and_then(|d| {
            let name = d.name()?;
            let mem = d.memory_info()?;
            Ok(GpuDevice {
                index,
                name,
                vram: Some(mem.total),
                vram_available: Some(mem.free),
            })
        });
        match reading {
            Ok(d) => devices.push(d),
            Err(e) => debug_log!("GPU: NVML device {index} unreadable: {e}"),
        }
    }
    let mut info = GpuInfo::from_devices(GpuType::Nvidia, devices, SOURCE)
        .ok_or_else(|| format!("no readable device ({count} reported)"))?;
    info.driver_version = nvml.sys_driver_version().ok();
    info.cuda_version = nvml.sys_cuda_driver_version().ok().map(cuda_version);
    Ok(info)
}

/// NVML's CUDA driver version integer (e.g. 12040) as `12.4`.
pub fn cuda_version(v: i32) -> String {
    format!(
        "{}.{}",
        nvml_wrapper::cuda_driver_version_major(v),
        nvml_wrapper::cuda_driver_version_minor(v)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_an_error_not_a_crash() {
        let err = open(&NvmlLoad::Library(PathBuf::from(
            "/nonexistent/dir/libnvidia-ml.so.1",
        )))
        .expect_err("loading a missing library must fail");
        assert!(err.contains("/nonexistent/dir/libnvidia-ml.so.1"), "{err}");
        assert_eq!(probe(&NvmlLoad::Skip).unwrap_err(), "disabled");
    }

    #[test]
    fn cuda_versions_read_as_major_dot_minor() {
        assert_eq!(cuda_version(12040), "12.4");
        assert_eq!(cuda_version(11080), "11.8");
    }
}
