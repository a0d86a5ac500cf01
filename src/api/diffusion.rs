//! napi class behind `DiffusionServerManager` (lib/diffusion-server.js). Notifications (status,
//! crash, progress, binary-log) go to one JS callback as JSON strings through a weak
//! ThreadsafeFunction (it never keeps Node alive; the JS side holds a handle while running).
//! Every method whose result JS awaits first awaits a "flush" call on that callback, so all earlier
//! notifications have run in JS before the Promise settles.

use super::errors::{to_napi, IntoNapi};
use super::system::{config as probe_config, SystemProbeOptions, SYSTEM};
use crate::diffusion::config::UsageMode;
use crate::diffusion::flags::{FlagOverrides, GpuMemory};
use crate::diffusion::logs;
use crate::diffusion::manager::{DiffusionServer, EventSink, StartEnv};
use crate::error::Error;
use crate::storage::ModelInfo;
use napi::bindgen_prelude::{Buffer, PromiseRaw};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Env;
use napi::Status;
use napi_derive::napi;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

type EventFn = ThreadsafeFunction<String, (), String, Status, false, true>;

#[napi(object)]
pub struct DiffusionStartEnv {
    /// `GENAI_ELECTRON_SD_BINARY_DIR`.
    pub binary_dir: Option<String>,
    /// `IMAGE_RESULT_TTL_MS`.
    pub result_ttl_ms: Option<f64>,
    /// `IMAGE_CLEANUP_INTERVAL_MS`.
    pub cleanup_interval_ms: Option<f64>,
}

#[napi(object)]
pub struct NativeImage {
    pub image: Buffer,
    pub seed: f64,
    pub width: f64,
    pub height: f64,
}

#[napi(object)]
pub struct NativeGeneration {
    pub images: Vec<NativeImage>,
    pub time_taken: f64,
}

#[napi]
pub struct NativeDiffusionServer {
    core: Arc<DiffusionServer>,
    events: Arc<EventFn>,
}

async fn flush(events: &EventFn) {
    // A throwing listener was already caught in JS; nothing to do with the result here.
    let _ = events
        .call_async_catch(r#"{"type":"flush"}"#.to_string())
        .await;
}

fn parse_json(text: &str, what: &str) -> napi::Result<Value> {
    serde_json::from_str(text)
        .map_err(|e| to_napi(Error::InvalidArgument(format!("{what} must be JSON: {e}"))))
}

fn parse_flag_overrides(v: &Value) -> napi::Result<FlagOverrides> {
    let flag = |k: &str| -> napi::Result<Option<bool>> {
        match v.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(x) => Err(to_napi(Error::InvalidArgument(format!(
                "flagOverrides.{k} must be a boolean, got {x}"
            )))),
        }
    };
    Ok(FlagOverrides {
        clip_on_cpu: flag("clipOnCpu")?,
        vae_on_cpu: flag("vaeOnCpu")?,
        offload_to_cpu: flag("offloadToCpu")?,
        diffusion_fa: flag("diffusionFlashAttention")?,
    })
}

fn ms(v: Option<f64>, default: u64) -> Duration {
    Duration::from_millis(
        v.filter(|x| x.is_finite() && *x > 0.0)
            .map(|x| x as u64)
            .unwrap_or(default),
    )
}

#[napi]
impl NativeDiffusionServer {
    #[napi(constructor)]
    pub fn new(callback: EventFn) -> Self {
        let events = Arc::new(callback);
        let ev = events.clone();
        let sink: EventSink = Arc::new(move |v: Value| {
            ev.call_with_return_value(
                v.to_string(),
                ThreadsafeFunctionCallMode::NonBlocking,
                |_, _| Ok(()),
            );
        });
        NativeDiffusionServer {
            core: Arc::new(DiffusionServer::new(sink)),
            events,
        }
    }

    /// `start(config)`; `config` is JSON (undefined values as null). The status check and the
    /// switch to `starting` happen before this returns, so calls take effect in call order.
    #[napi(ts_return_type = "Promise<any>")]
    pub fn start<'env>(
        &self,
        js_env: &'env Env,
        user_data: String,
        config_json: String,
        probe: Option<SystemProbeOptions>,
        env: Option<DiffusionStartEnv>,
    ) -> napi::Result<PromiseRaw<'env, Value>> {
        let ticket = parse_json(&config_json, "config")
            .and_then(|config| self.core.begin_start(&config).napi());
        let cfg = probe_config(probe);
        let gpu_cfg = cfg.clone();
        let env = env.unwrap_or(DiffusionStartEnv {
            binary_dir: None,
            result_ttl_ms: None,
            cleanup_interval_ms: None,
        });
        let start_env = StartEnv {
            gpu: Arc::new(move || {
                let g = crate::system::gpu_info(&gpu_cfg)?;
                Ok(GpuMemory {
                    available: g.available,
                    vram: g.vram,
                    vram_available: g.vram_available,
                })
            }),
            resources: Some(Arc::new(move |model: &ModelInfo| {
                let r = SYSTEM.can_run_model(
                    &model.to_json(),
                    Some(&json!({ "checkTotalMemory": true })),
                    &cfg,
                )?;
                if r.possible {
                    return Ok(());
                }
                let ram = crate::system::memory_info(&cfg)
                    .map(|m| m.total)
                    .unwrap_or(0);
                Err(Error::insufficient(
                    format!(
                        "System cannot run model: {}",
                        r.reason.clone().unwrap_or_default()
                    ),
                    json!({
                        "required": format!("Model size: {}GB", crate::system::can_run::gb_1dp(model.size as f64)),
                        "available": format!("Total RAM: {}GB", crate::system::can_run::gb_1dp(ram as f64)),
                        "suggestion": r.suggestion,
                    }),
                ))
            })),
            binary_dir: env.binary_dir.filter(|d| !d.trim().is_empty()),
            result_ttl: ms(
                env.result_ttl_ms,
                crate::diffusion::jobs::DEFAULT_RESULT_TTL_MS,
            ),
            cleanup_interval: ms(
                env.cleanup_interval_ms,
                crate::diffusion::jobs::DEFAULT_CLEANUP_INTERVAL_MS,
            ),
        };
        let (core, events) = (self.core.clone(), self.events.clone());
        js_env.spawn_future(async move {
            let r = match ticket {
                Ok(t) => {
                    core.finish_start(t, PathBuf::from(user_data), start_env)
                        .await
                }
                Err(e) => {
                    flush(&events).await;
                    return Err(e);
                }
            };
            flush(&events).await;
            r.napi()
        })
    }

    /// `stop()`; like `start`, it acts on the state at call time (a start called just before is
    /// aborted).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn stop<'env>(&self, js_env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let run = self.core.begin_stop();
        let (core, events) = (self.core.clone(), self.events.clone());
        js_env.spawn_future(async move {
            let r = if run {
                core.finish_stop().await
            } else {
                Ok(())
            };
            flush(&events).await;
            r.napi()
        })
    }

    /// Queues a generation; returns its id. `flags_json`: optimisation flags forced for this
    /// image; `settle: false` leaves residency to the caller (orchestrator, calibration).
    #[napi]
    pub fn submit(
        &self,
        request_json: String,
        flags_json: Option<String>,
        settle: Option<bool>,
    ) -> napi::Result<String> {
        let v = parse_json(&request_json, "config")?;
        let flags = match flags_json {
            Some(f) => Some(parse_flag_overrides(&parse_json(&f, "flagOverrides")?)?),
            None => None,
        };
        self.core
            .submit_with(&v, flags, settle.unwrap_or(true))
            .napi()
    }

    /// The call-time part of `releaseBackend()`: names `stopping` after the first caller and
    /// raises the final reason, before any release of the same tick can run.
    #[napi]
    pub fn claim_release(&self, reason: String, wait_for_in_flight: bool) {
        self.core.claim_release(&reason, wait_for_in_flight);
    }

    /// `releaseBackend({ reason, waitForInFlight })` (JS claims it first with `claimRelease`).
    #[napi]
    pub async fn release_backend(&self, reason: String, wait_for_in_flight: bool) {
        self.core.release_backend(&reason, wait_for_in_flight).await;
        flush(&self.events).await;
    }

    /// `settleResidency(mode)`.
    #[napi]
    pub async fn settle_residency(&self, mode: Option<String>) {
        self.core
            .settle(mode.as_deref().and_then(UsageMode::parse))
            .await;
        flush(&self.events).await;
    }

    /// `getBackendInfo()`.
    #[napi]
    pub fn backend_info(&self) -> Value {
        self.core.backend_info()
    }

    /// Resolves with the images of generation `id` (after all its progress notifications).
    #[napi]
    pub async fn wait(&self, id: String) -> napi::Result<NativeGeneration> {
        let r = self.core.wait(&id).await;
        flush(&self.events).await;
        let g = r.napi()?;
        Ok(NativeGeneration {
            time_taken: g.time_taken_ms as f64,
            images: g
                .images
                .into_iter()
                .map(|i| NativeImage {
                    image: Buffer::from(i.png),
                    seed: i.seed as f64,
                    width: i.width as f64,
                    height: i.height as f64,
                })
                .collect(),
        })
    }

    /// Images submitted over HTTP wait for `openGate(id)` (the orchestrator's turn) when on.
    #[napi]
    pub fn set_http_gate(&self, on: bool) {
        self.core.set_http_gate(on);
    }

    #[napi]
    pub fn open_gate(&self, id: String) {
        self.core.open_gate(&id);
    }

    #[napi]
    pub fn cancel(&self, id: String) -> napi::Result<()> {
        self.core.cancel(&id).napi()
    }

    #[napi]
    pub fn info(&self) -> Value {
        self.core.info()
    }

    #[napi]
    pub fn active_generation_id(&self) -> Option<String> {
        self.core.active_generation_id()
    }

    #[napi]
    pub fn is_healthy(&self) -> bool {
        self.core.is_healthy()
    }

    #[napi]
    pub fn log_path(&self, user_data: String) -> Option<String> {
        self.core
            .log_file_for(PathBuf::from(user_data))
            .map(|l| l.path().display().to_string())
    }

    #[napi]
    pub async fn logs(&self, user_data: String, lines: u32) -> napi::Result<Vec<String>> {
        let log = self.core.log_file_for(PathBuf::from(user_data));
        Ok(tokio::task::spawn_blocking(move || {
            log.map(|l| l.tail(lines as usize)).unwrap_or_default()
        })
        .await
        .unwrap_or_default())
    }

    #[napi]
    pub async fn structured_logs(&self, user_data: String, lines: u32) -> napi::Result<Vec<Value>> {
        let lines = self.logs(user_data, lines).await?;
        Ok(lines.iter().map(|l| logs::parse_entry(l)).collect())
    }

    #[napi]
    pub async fn clear_logs(&self, user_data: String) -> napi::Result<()> {
        let log = self.core.log_file_for(PathBuf::from(user_data));
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(l) = log {
                l.clear();
            }
        })
        .await;
        Ok(())
    }
}

/// Test hook: the next sd-server spawns use these loopback ports (see `backend::force_next_ports`).
#[napi(js_name = "diffusionTestForceNextPorts")]
pub fn diffusion_test_force_next_ports(ports: Vec<u32>) {
    let ports: Vec<u16> = ports
        .into_iter()
        .filter_map(|p| u16::try_from(p).ok())
        .collect();
    crate::diffusion::backend::force_next_ports(&ports);
}

/// SIGKILLs every sd.cpp child still running; called from the host's `exit` handler.
#[napi(js_name = "diffusionKillAllChildren")]
pub fn diffusion_kill_all_children() {
    crate::diffusion::process::kill_all_children();
}
