//! CPU facts from sysinfo, named the way Node names them (`os.cpus().length`, `os.arch()`), so
//! values match what genai-electron reported.

use serde::Serialize;

/// `CPUInfo` of the contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuInfo {
    /// Logical processors, as `os.cpus().length`.
    pub cores: u32,
    pub model: String,
    /// Node's name for the architecture (`x64`, `arm64`, ...).
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simulated: Option<bool>,
}

/// Reads the CPU list (no usage sampling, which would need two readings).
pub fn read() -> CpuInfo {
    let (cores, model) = match sysinfo::System::new() {
        Ok(mut sys) => {
            sys.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
            let cpus = sys.cpus();
            let brand = cpus
                .first()
                .map(|c| c.brand().trim().to_string())
                .unwrap_or_default();
            (cpus.len() as u32, brand)
        }
        Err(_) => (0, String::new()),
    };
    let cores = if cores > 0 {
        cores
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
    };
    CpuInfo {
        cores,
        model: if model.is_empty() {
            "Unknown CPU".into()
        } else {
            model
        },
        architecture: node_arch(std::env::consts::ARCH).to_string(),
        simulated: None,
    }
}

/// Rust's architecture name -> Node's `os.arch()` name.
pub fn node_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "x64",
        "x86" => "ia32",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64",
        "powerpc" => "ppc",
        "loongarch64" => "loong64",
        "mips64" => "mips64el",
        other => other,
    }
}

/// Node's `process.platform` for this build.
pub fn node_platform() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        "windows" => "win32",
        "solaris" | "illumos" => "sunos",
        other => other,
    }
}

/// Inference threads for a core count: leave the OS one core on small machines, two on mid-size
/// ones, and about 15 % on large ones (genai-electron's `getRecommendedThreads`).
pub fn recommended_threads(cores: u32) -> u32 {
    match cores {
        0..=2 => cores.max(1),
        3..=8 => cores - 1,
        9..=16 => cores - 2,
        _ => (f64::from(cores) * 0.85).floor() as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architecture_and_platform_use_node_names() {
        assert_eq!(node_arch("x86_64"), "x64");
        assert_eq!(node_arch("aarch64"), "arm64");
        assert_eq!(node_arch("riscv64"), "riscv64");
        let p = node_platform();
        assert!(["linux", "darwin", "win32"].contains(&p) || !p.is_empty());
        if cfg!(target_os = "macos") {
            assert_eq!(p, "darwin");
        }
    }

    #[test]
    fn threads_leave_room_for_the_os() {
        let got: Vec<u32> = [1, 2, 4, 8, 12, 16, 20, 64]
            .into_iter()
            .map(recommended_threads)
            .collect();
        assert_eq!(got, vec![1, 2, 3, 7, 10, 14, 17, 54]);
    }

    #[test]
    fn reads_this_machine() {
        let c = read();
        assert!(c.cores >= 1);
        assert!(!c.model.is_empty());
        assert_eq!(c.architecture, node_arch(std::env::consts::ARCH));
    }
}
