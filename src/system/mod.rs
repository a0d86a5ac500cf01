//! `systemInfo`: RAM, CPU and GPU of this machine (or of a simulated one), the 60-second
//! capabilities cache, and `canRunModel`. The diffusion server's offload flags are computed from
//! these numbers, so every figure is a real reading in bytes; when a GPU source fails the answer
//! is "no GPU", never an error.
//!
//! Everything here is blocking (sysinfo, NVML, probe commands); the napi layer runs it on tokio's
//! blocking pool.

pub mod can_run;
pub mod command;
pub mod cpu;
pub mod gpu;
pub mod memory;
pub mod recommendations;
pub mod simulated;

use crate::error::Result;
use can_run::{CanRunOptions, CanRunResult, GpuBudget, ModelNeeds};
use cpu::CpuInfo;
use gpu::nvml::NvmlLoad;
use gpu::{GpuInfo, Platform};
use memory::MemoryInfo;
use recommendations::Recommendations;
use serde::Serialize;
use serde_json::Value;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where detection looks. Production uses the defaults plus what the JS side passes (the
/// simulation file, PATH, the NVML library); tests point it at fakes.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// A simulated machine file; when set, nothing is probed.
    pub simulate_file: Option<PathBuf>,
    /// Directories searched for probe tools (PATH syntax); the process PATH when `None`.
    pub search_path: Option<OsString>,
    pub nvml: NvmlLoad,
    /// Root of sysfs (`/sys`), for the AMD and Intel DRM probes.
    pub sysfs_root: PathBuf,
    /// Deadline of each probe command.
    pub command_timeout: Duration,
    pub platform: Platform,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            simulate_file: None,
            search_path: None,
            nvml: NvmlLoad::Default,
            sysfs_root: PathBuf::from("/sys"),
            command_timeout: command::DEFAULT_TIMEOUT,
            platform: Platform::current(),
        }
    }
}

#[cfg(test)]
impl ProbeConfig {
    /// Linux chain, no NVML, tools and sysfs only from `dir`.
    pub(crate) fn for_tests(dir: &std::path::Path) -> Self {
        ProbeConfig {
            simulate_file: None,
            search_path: Some(dir.as_os_str().to_os_string()),
            nvml: NvmlLoad::Skip,
            sysfs_root: dir.join("sys"),
            command_timeout: Duration::from_secs(5),
            platform: Platform::Linux,
        }
    }
}

/// `SystemCapabilities` of the contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemCapabilities {
    pub cpu: CpuInfo,
    pub memory: MemoryInfo,
    pub gpu: GpuInfo,
    /// Node's `process.platform` name.
    pub platform: String,
    pub recommendations: Recommendations,
    /// ISO 8601 with milliseconds, as `Date.prototype.toISOString`.
    pub detected_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simulated: Option<bool>,
}

/// Measures everything now (or reads the simulated machine).
pub fn probe_capabilities(cfg: &ProbeConfig) -> Result<SystemCapabilities> {
    let sim = cfg
        .simulate_file
        .as_deref()
        .map(simulated::load)
        .transpose()?;
    let simulated = sim.is_some().then_some(true);
    let (memory, gpu, cpu) = match sim {
        Some(m) => (m.memory, m.gpu, m.cpu.unwrap_or_else(cpu::read)),
        None => {
            let memory = memory::read()?;
            let gpu = gpu::detect(cfg, memory.total);
            (memory, gpu, cpu::read())
        }
    };
    let recommendations = recommendations::recommend(cpu.cores, memory.total, &gpu);
    Ok(SystemCapabilities {
        cpu,
        memory,
        gpu,
        platform: cpu::node_platform().to_string(),
        recommendations,
        detected_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        simulated,
    })
}

/// Live RAM reading (`getMemoryInfo`), never cached.
pub fn memory_info(cfg: &ProbeConfig) -> Result<MemoryInfo> {
    match &cfg.simulate_file {
        Some(p) => Ok(simulated::load(p)?.memory),
        None => memory::read(),
    }
}

/// Live GPU reading (`getGPUInfo`), never cached: the diffusion server calls it before every
/// image so free VRAM is current.
pub fn gpu_info(cfg: &ProbeConfig) -> Result<GpuInfo> {
    match &cfg.simulate_file {
        Some(p) => Ok(simulated::load(p)?.gpu),
        None => {
            // Only the Apple estimate needs RAM; elsewhere a RAM failure must not hide the GPU.
            let total = if cfg.platform == Platform::MacOs {
                memory::read()?.total
            } else {
                0
            };
            Ok(gpu::detect(cfg, total))
        }
    }
}

struct Entry {
    /// The simulation file the entry was measured with: switching files must not serve the
    /// previous machine.
    key: Option<PathBuf>,
    /// When its detection started.
    started: Instant,
    caps: SystemCapabilities,
}

#[derive(Default)]
struct Cache {
    entry: Option<Entry>,
    /// Bumped by `clear_cache`, so a detection that was running during the clear does not store
    /// its pre-clear reading.
    epoch: u64,
}

/// The `systemInfo` singleton's state: the capabilities cache.
pub struct SystemInfo {
    ttl: Duration,
    cache: Mutex<Cache>,
    /// Held while probing, so concurrent callers share one detection instead of starting several
    /// `nvidia-smi`s. Never taken on the JS thread (`clear_cache` only touches `cache`).
    probing: Mutex<()>,
}

impl Default for SystemInfo {
    fn default() -> Self {
        Self::new()
    }
}

impl SystemInfo {
    /// genai-electron's cache lifetime for `detect()`.
    pub const TTL: Duration = Duration::from_secs(60);

    pub fn new() -> Self {
        Self::with_ttl(Self::TTL)
    }

    pub fn with_ttl(ttl: Duration) -> Self {
        SystemInfo {
            ttl,
            cache: Mutex::new(Cache::default()),
            probing: Mutex::new(()),
        }
    }

    /// `detect(forceRefresh)`: the cached capabilities while younger than the TTL, else a new
    /// detection.
    pub fn detect(&self, force: bool, cfg: &ProbeConfig) -> Result<SystemCapabilities> {
        self.detect_at(force, cfg, Instant::now())
    }

    fn detect_at(
        &self,
        force: bool,
        cfg: &ProbeConfig,
        now: Instant,
    ) -> Result<SystemCapabilities> {
        let fresh_enough = |e: &Entry| {
            e.key == cfg.simulate_file
                && (e.started >= now || (!force && now.duration_since(e.started) < self.ttl))
        };
        if let Some(hit) = self.lookup(fresh_enough) {
            return Ok(hit);
        }
        let _probing = self.probing.lock().unwrap_or_else(|p| p.into_inner());
        // A detection that finished while this call waited may already answer it.
        if let Some(hit) = self.lookup(fresh_enough) {
            return Ok(hit);
        }
        let epoch = self.lock().epoch;
        let started = now.max(Instant::now());
        let caps = probe_capabilities(cfg)?;
        let mut cache = self.lock();
        if cache.epoch == epoch {
            cache.entry = Some(Entry {
                key: cfg.simulate_file.clone(),
                started,
                caps: caps.clone(),
            });
        }
        Ok(caps)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lookup(&self, ok: impl Fn(&Entry) -> bool) -> Option<SystemCapabilities> {
        let cache = self.lock();
        cache
            .entry
            .as_ref()
            .filter(|e| ok(e))
            .map(|e| e.caps.clone())
    }

    /// `clearCache()`: the next `detect()` measures again.
    pub fn clear_cache(&self) {
        let mut cache = self.lock();
        cache.entry = None;
        cache.epoch += 1;
    }

    /// `canRunModel(modelInfo, options)`: GPU presence from the (cached) capabilities, RAM from a
    /// live reading, as genai-electron does.
    pub fn can_run_model(
        &self,
        model: &Value,
        options: Option<&Value>,
        cfg: &ProbeConfig,
    ) -> Result<CanRunResult> {
        let needs = ModelNeeds::from_json(model)?;
        let opts = CanRunOptions::from_json(options)?;
        let caps = self.detect(false, cfg)?;
        let memory = memory_info(cfg)?;
        let gpu = GpuBudget {
            available: caps.gpu.available,
            vram: caps.gpu.vram.map(|v| v as f64),
            vram_available: caps.gpu.vram_available.map(|v| v as f64),
        };
        let mut result = can_run::verdict(&needs, &opts, &memory, &gpu);
        if caps.simulated.is_some() || memory.simulated.is_some() {
            result.simulated = Some(true);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const G: u64 = 1 << 30;

    fn write_machine(path: &std::path::Path, ram_gib: u64, vram_gib: Option<u64>) {
        let gpu = match vram_gib {
            Some(v) => {
                json!({ "available": true, "type": "nvidia", "name": format!("Sim {v} GB"), "vram": v * G, "vramAvailable": v * G - G })
            }
            None => json!({ "available": false }),
        };
        let m = json!({
            "simulated": true,
            "memory": { "total": ram_gib * G, "available": ram_gib * G / 2 },
            "gpu": gpu,
        });
        std::fs::write(path, m.to_string()).unwrap();
    }

    fn sim_cfg(dir: &std::path::Path, file: &str) -> ProbeConfig {
        let mut cfg = ProbeConfig::for_tests(dir);
        cfg.simulate_file = Some(dir.join(file));
        cfg
    }

    #[test]
    fn detect_caches_for_the_ttl_and_force_or_clear_refresh() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = sim_cfg(dir.path(), "m.json");
        let file = cfg.simulate_file.clone().unwrap();
        let info = SystemInfo::new();
        write_machine(&file, 16, Some(8));
        let t0 = Instant::now();
        let first = info.detect_at(false, &cfg, t0).unwrap();
        assert_eq!(first.gpu.vram, Some(8 * G));
        assert_eq!(first.simulated, Some(true));

        write_machine(&file, 32, Some(24));
        let cached = info
            .detect_at(false, &cfg, t0 + Duration::from_secs(59))
            .unwrap();
        assert_eq!(cached, first);
        let expired = info
            .detect_at(false, &cfg, t0 + Duration::from_secs(61))
            .unwrap();
        assert_eq!(expired.gpu.vram, Some(24 * G));

        write_machine(&file, 64, None);
        let t1 = Instant::now() + Duration::from_secs(62);
        assert_eq!(
            info.detect_at(false, &cfg, t1).unwrap().gpu.vram,
            Some(24 * G)
        );
        let forced = info.detect_at(true, &cfg, t1).unwrap();
        assert!(!forced.gpu.available);
        assert_eq!(forced.memory.total, 64 * G);

        write_machine(&file, 12, Some(12));
        info.clear_cache();
        assert_eq!(info.detect(false, &cfg).unwrap().gpu.vram, Some(12 * G));
    }

    #[test]
    fn another_simulation_file_is_not_served_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let a = sim_cfg(dir.path(), "a.json");
        let b = sim_cfg(dir.path(), "b.json");
        write_machine(a.simulate_file.as_ref().unwrap(), 16, Some(8));
        write_machine(b.simulate_file.as_ref().unwrap(), 16, Some(24));
        let info = SystemInfo::new();
        assert_eq!(info.detect(false, &a).unwrap().gpu.vram, Some(8 * G));
        assert_eq!(info.detect(false, &b).unwrap().gpu.vram, Some(24 * G));
    }

    #[test]
    fn a_broken_simulation_file_fails_every_call() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = sim_cfg(dir.path(), "broken.json");
        std::fs::write(cfg.simulate_file.as_ref().unwrap(), r#"{"memory": {}}"#).unwrap();
        let info = SystemInfo::new();
        assert_eq!(
            info.detect(false, &cfg).unwrap_err().code(),
            "FILE_SYSTEM_ERROR"
        );
        assert!(memory_info(&cfg).is_err());
        assert!(gpu_info(&cfg).is_err());
        assert!(info
            .can_run_model(&json!({ "size": 1 }), None, &cfg)
            .is_err());
    }

    #[test]
    fn real_detection_without_any_gpu_source() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ProbeConfig::for_tests(dir.path());
        let caps = SystemInfo::new().detect(false, &cfg).unwrap();
        assert_eq!(caps.gpu, GpuInfo::none());
        assert_eq!(caps.simulated, None);
        assert!(caps.memory.total > 0 && caps.memory.simulated.is_none());
        assert!(caps.cpu.cores >= 1);
        assert_eq!(caps.recommendations.gpu_layers, Some(0));
        assert_eq!(caps.detected_at.len(), 24, "{}", caps.detected_at);
        assert!(caps.detected_at.ends_with('Z'));
        let v = serde_json::to_value(&caps).unwrap();
        for key in [
            "cpu",
            "memory",
            "gpu",
            "platform",
            "recommendations",
            "detectedAt",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {v}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_linux_chain_falls_through_each_source_in_order() {
        use crate::system::command::tests::fake_tool;
        use crate::system::gpu::intel::tests::fake_card;
        let dir = tempfile::tempdir().unwrap();
        let cfg = ProbeConfig::for_tests(dir.path());
        let gpu = |cfg: &ProbeConfig| gpu_info(cfg).unwrap();

        fake_card(&cfg.sysfs_root, "card0", "0x8086", "0x46a6");
        assert_eq!(gpu(&cfg).source.as_deref(), Some("intel-sysfs"));

        let amd = fake_card(&cfg.sysfs_root, "card1", "0x1002", "0x73bf");
        std::fs::write(amd.join("mem_info_vram_total"), "8589934592").unwrap();
        assert_eq!(gpu(&cfg).source.as_deref(), Some("amdgpu-sysfs"));

        fake_tool(
            dir.path(),
            "rocm-smi",
            r#"[ "$*" = "--showproductname --showmeminfo vram --json" ] || exit 2
echo '{"card0": {"Card Series": "Sim Radeon", "VRAM Total Memory (B)": "17179869184", "VRAM Total Used Memory (B)": "0"}}'"#,
        );
        let info = gpu(&cfg);
        assert_eq!(info.source.as_deref(), Some("rocm-smi"));
        assert_eq!(info.vram, Some(16 * G));

        // A failing nvidia-smi (no driver) moves on; a working one wins.
        fake_tool(
            dir.path(),
            "nvidia-smi",
            "echo 'NVIDIA-SMI has failed'; exit 9",
        );
        assert_eq!(gpu(&cfg).source.as_deref(), Some("rocm-smi"));
        fake_tool(
            dir.path(),
            "nvidia-smi",
            r#"[ "$*" = "--query-gpu=name,memory.total,memory.free --format=csv,noheader" ] || exit 2
echo 'Sim 3060, 12288 MiB, 11000 MiB'
echo 'Sim 4090, 24564 MiB, 20000 MiB'"#,
        );
        let info = gpu(&cfg);
        assert_eq!(info.source.as_deref(), Some("nvidia-smi"));
        assert_eq!(info.name.as_deref(), Some("Sim 4090"));
        assert_eq!(info.vram, Some(24564 << 20));
        assert_eq!(info.vram_available, Some(20000 << 20));
        assert_eq!(info.devices.as_ref().unwrap().len(), 2);

        // A hanging nvidia-smi is killed at the deadline and the chain goes on.
        fake_tool(dir.path(), "nvidia-smi", "sleep 30");
        let mut quick = cfg.clone();
        quick.command_timeout = Duration::from_millis(300);
        let started = Instant::now();
        assert_eq!(gpu(&quick).source.as_deref(), Some("rocm-smi"));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn windows_and_macos_chains() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = ProbeConfig::for_tests(dir.path());
        crate::system::gpu::intel::tests::fake_card(&cfg.sysfs_root, "card0", "0x8086", "1");
        cfg.platform = Platform::Windows;
        // No AMD/Intel detection on Windows, as in the contract.
        assert_eq!(gpu_info(&cfg).unwrap(), GpuInfo::none());
        cfg.platform = Platform::Other;
        assert_eq!(gpu_info(&cfg).unwrap(), GpuInfo::none());
    }

    #[test]
    fn can_run_model_uses_simulated_memory_and_marks_the_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = sim_cfg(dir.path(), "m.json");
        write_machine(cfg.simulate_file.as_ref().unwrap(), 16, None);
        let info = SystemInfo::new();
        let model = json!({ "size": 9 * G });
        let r = info.can_run_model(&model, None, &cfg).unwrap();
        // 10.8 GiB needed, 8 GiB available.
        assert!(!r.possible);
        assert_eq!(r.simulated, Some(true));
        let total = json!({ "checkTotalMemory": true });
        let r = info.can_run_model(&model, Some(&total), &cfg).unwrap();
        assert!(r.possible);
        assert_eq!(
            r.reason.as_deref(),
            Some("Model will run on CPU only, which may be slow for this size")
        );
    }
}
