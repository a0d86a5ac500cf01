//! The optimisation flags (contract 4.11): `--clip-on-cpu`, `--vae-on-cpu`, `--offload-to-cpu`,
//! `--diffusion-fa`. Each is three-state in the config (undefined = auto). The decision takes plain
//! numbers so it can be tested without a GPU; the caller measures the machine.

use serde_json::{json, Value};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
/// `DIFFUSION_VRAM_THRESHOLDS.modelOverheadMultiplier`: weights plus activations and buffers.
pub const MODEL_OVERHEAD_MULTIPLIER: f64 = 1.2;
/// Below this much VRAM left after the model, the text encoders go to the CPU.
pub const CLIP_ON_CPU_HEADROOM: f64 = 6.0 * GIB;
/// Below this much VRAM left after the model, the VAE goes to the CPU.
pub const VAE_ON_CPU_HEADROOM: f64 = 2.0 * GIB;
/// The model is offloaded to RAM when its footprint exceeds this share of total VRAM.
pub const OFFLOAD_VRAM_SHARE: f64 = 0.85;

/// What the system module knows about the GPU, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GpuMemory {
    pub available: bool,
    pub vram: Option<u64>,
    pub vram_available: Option<u64>,
}

/// The user's explicit choices; `None` = auto.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FlagOverrides {
    pub clip_on_cpu: Option<bool>,
    pub vae_on_cpu: Option<bool>,
    pub offload_to_cpu: Option<bool>,
    pub diffusion_fa: Option<bool>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub clip_on_cpu: bool,
    pub vae_on_cpu: bool,
    pub offload_to_cpu: bool,
    pub diffusion_fa: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlagDecision {
    /// What is passed to sd.cpp.
    pub flags: Flags,
    /// What auto-detection alone would have chosen.
    pub auto: Flags,
    pub footprint: u64,
    pub gpu: GpuMemory,
    /// One short reason per auto value, for the log.
    pub reasons: Vec<String>,
}

pub fn footprint(model_size: u64) -> u64 {
    (model_size as f64 * MODEL_OVERHEAD_MULTIPLIER) as u64
}

/// Computes the flags for a model of `model_size` bytes (the aggregate of all components).
/// `has_llm`: the model has an `llm` component (Flux 2 style), which wants flash attention.
pub fn decide(
    model_size: u64,
    has_llm: bool,
    gpu: GpuMemory,
    overrides: FlagOverrides,
) -> FlagDecision {
    let fp = footprint(model_size);
    let mut reasons = Vec::new();
    let mut auto = Flags {
        diffusion_fa: has_llm,
        ..Flags::default()
    };
    reasons.push(if has_llm {
        "flash attention: model has an llm text encoder (Flux 2 style)".to_string()
    } else {
        "flash attention: off (no llm component)".to_string()
    });
    match gpu.vram.filter(|_| gpu.available) {
        None => {
            auto.clip_on_cpu = true;
            reasons.push("no GPU with known VRAM: text encoders on CPU, no offload".to_string());
        }
        Some(vram) => {
            let vram_f = vram as f64;
            let fp_f = fp as f64;
            let headroom = vram_f - fp_f;
            auto.clip_on_cpu = headroom < CLIP_ON_CPU_HEADROOM;
            auto.vae_on_cpu = headroom < VAE_ON_CPU_HEADROOM;
            auto.offload_to_cpu = fp_f > OFFLOAD_VRAM_SHARE * vram_f;
            reasons.push(format!(
                "VRAM {} total, footprint {} (size x {MODEL_OVERHEAD_MULTIPLIER}), headroom {}",
                gib(vram_f),
                gib(fp_f),
                gib(headroom)
            ));
            if let Some(free) = gpu.vram_available {
                if (free as f64) - fp_f < VAE_ON_CPU_HEADROOM && !auto.clip_on_cpu {
                    auto.clip_on_cpu = true;
                    reasons.push(format!(
                        "only {} VRAM free: text encoders on CPU",
                        gib(free as f64)
                    ));
                }
            }
        }
    }
    let flags = Flags {
        clip_on_cpu: overrides.clip_on_cpu.unwrap_or(auto.clip_on_cpu),
        vae_on_cpu: overrides.vae_on_cpu.unwrap_or(auto.vae_on_cpu),
        offload_to_cpu: overrides.offload_to_cpu.unwrap_or(auto.offload_to_cpu),
        diffusion_fa: overrides.diffusion_fa.unwrap_or(auto.diffusion_fa),
    };
    FlagDecision {
        flags,
        auto,
        footprint: fp,
        gpu,
        reasons,
    }
}

fn gib(bytes: f64) -> String {
    format!("{:.2} GiB", bytes / GIB)
}

impl Flags {
    /// The sd.cpp switches, in the contract's order.
    pub fn args(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.clip_on_cpu {
            out.push("--clip-on-cpu".to_string());
        }
        if self.vae_on_cpu {
            out.push("--vae-on-cpu".to_string());
        }
        if self.offload_to_cpu {
            out.push("--offload-to-cpu".to_string());
        }
        if self.diffusion_fa {
            out.push("--diffusion-fa".to_string());
        }
        out
    }

    pub fn to_json(self) -> Value {
        json!({
            "clipOnCpu": self.clip_on_cpu,
            "vaeOnCpu": self.vae_on_cpu,
            "offloadToCpu": self.offload_to_cpu,
            "diffusionFlashAttention": self.diffusion_fa,
        })
    }
}

impl FlagDecision {
    /// One log line: final values, which were auto, and why.
    pub fn log_line(&self) -> String {
        let f = |name: &str, v: bool, a: bool| {
            if v == a {
                format!("{name}={v} (auto)")
            } else {
                format!("{name}={v} (config; auto would be {a})")
            }
        };
        format!(
            "Optimization flags: {}, {}, {}, {}. {}",
            f("clipOnCpu", self.flags.clip_on_cpu, self.auto.clip_on_cpu),
            f("vaeOnCpu", self.flags.vae_on_cpu, self.auto.vae_on_cpu),
            f(
                "offloadToCpu",
                self.flags.offload_to_cpu,
                self.auto.offload_to_cpu
            ),
            f(
                "diffusionFlashAttention",
                self.flags.diffusion_fa,
                self.auto.diffusion_fa
            ),
            self.reasons.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: u64 = 1_000_000_000;
    const GI: u64 = 1 << 30;

    fn gpu(vram_gib: u64) -> GpuMemory {
        GpuMemory {
            available: true,
            vram: Some(vram_gib * GI),
            vram_available: None,
        }
    }

    #[test]
    fn plan_phase_5_table() {
        // Flux 2 Klein Q8_0 + Q4_0 (~7 GB) on 8 GB: offload.
        let d = decide(7 * GB, true, gpu(8), FlagOverrides::default());
        assert!(d.flags.offload_to_cpu);
        assert!(d.flags.diffusion_fa);
        // Flux 2 Klein Q8_0 + Q8_0 (~9 GiB) on 12 GB: offload (10.8 GiB > 0.85 x 12 GiB).
        let d = decide(9 * GI, true, gpu(12), FlagOverrides::default());
        assert!(d.flags.offload_to_cpu);
        // Flux 2 Dev (~34 GB) on 24 GB: offload.
        let d = decide(34 * GB, true, gpu(24), FlagOverrides::default());
        assert!(d.flags.offload_to_cpu && d.flags.clip_on_cpu && d.flags.vae_on_cpu);
        // SDXL split (~7 GB) on 12 GB: no offload, no flash attention.
        let d = decide(7 * GB, false, gpu(12), FlagOverrides::default());
        assert!(!d.flags.offload_to_cpu);
        assert!(!d.flags.diffusion_fa);
        // Klein on 24 GB: everything resident.
        let d = decide(7 * GB, true, gpu(24), FlagOverrides::default());
        assert_eq!(
            d.flags,
            Flags {
                diffusion_fa: true,
                ..Flags::default()
            }
        );
    }

    #[test]
    fn headroom_rules_match_the_contract_matrix() {
        // 8 GB card, 2.9 GB model: headroom ~4.5 GiB -> clip on CPU only.
        let d = decide(2_900_000_000, false, gpu(8), FlagOverrides::default());
        assert!(d.flags.clip_on_cpu && !d.flags.vae_on_cpu && !d.flags.offload_to_cpu);
        // 12 GB card, 2.9 GB model: nothing.
        let d = decide(2_900_000_000, false, gpu(12), FlagOverrides::default());
        assert_eq!(d.flags, Flags::default());
        // 8 GB card, 6.5 GB model: clip + vae.
        let d = decide(6_500_000_000, false, gpu(8), FlagOverrides::default());
        assert!(d.flags.clip_on_cpu && d.flags.vae_on_cpu);
    }

    #[test]
    fn no_gpu_or_unknown_vram_puts_clip_on_cpu() {
        let d = decide(7 * GB, true, GpuMemory::default(), FlagOverrides::default());
        assert!(d.flags.clip_on_cpu && !d.flags.vae_on_cpu && !d.flags.offload_to_cpu);
        let d = decide(
            7 * GB,
            false,
            GpuMemory {
                available: true,
                vram: None,
                vram_available: None,
            },
            FlagOverrides::default(),
        );
        assert!(d.flags.clip_on_cpu);
    }

    #[test]
    fn low_free_vram_escalates_clip() {
        let mut g = gpu(24);
        let d = decide(2 * GB, false, g, FlagOverrides::default());
        assert!(!d.flags.clip_on_cpu);
        g.vram_available = Some(3 * GI);
        let d = decide(2 * GB, false, g, FlagOverrides::default());
        assert!(d.flags.clip_on_cpu);
    }

    #[test]
    fn explicit_values_win_both_ways() {
        let o = FlagOverrides {
            clip_on_cpu: Some(false),
            vae_on_cpu: Some(true),
            offload_to_cpu: Some(false),
            diffusion_fa: Some(false),
        };
        let d = decide(34 * GB, true, gpu(8), o);
        assert_eq!(
            d.flags,
            Flags {
                vae_on_cpu: true,
                ..Flags::default()
            }
        );
        assert!(d.auto.offload_to_cpu && d.auto.diffusion_fa);
        assert!(d
            .log_line()
            .contains("offloadToCpu=false (config; auto would be true)"));
        assert_eq!(d.flags.args(), vec!["--vae-on-cpu"]);
    }

    #[test]
    fn args_follow_contract_order() {
        let f = Flags {
            clip_on_cpu: true,
            vae_on_cpu: true,
            offload_to_cpu: true,
            diffusion_fa: true,
        };
        assert_eq!(
            f.args(),
            vec![
                "--clip-on-cpu",
                "--vae-on-cpu",
                "--offload-to-cpu",
                "--diffusion-fa"
            ]
        );
    }
}
