//! napi class behind `LlamaServerManager` (lib/llama-server.js), and the llama helpers it calls.
//! The JS side keeps the status machine and events (0.26's hooks and injected managers live
//! there); this side runs the process: launch with readiness, stop with llama-server's signal
//! plan, exit reports, and the log. Exit reports go to one JS callback as JSON strings through a
//! weak ThreadsafeFunction; `launch` and `stop` await a flush call on it first, so a report sent
//! before they settle has run in JS by then.

use super::errors::{blocking, to_napi, IntoNapi};
use super::system::{config as probe_config, SystemProbeOptions, SYSTEM};
use crate::error::Error;
use crate::llama::config::LlamaConfig;
use crate::llama::optimal::{optimal_config_with_policy, Machine, PolicyError};
use crate::llama::server::{launch, LaunchSpec, STOP_PLAN};
use crate::supervisor::logs::{parse_entry, LogFile, LogLevel};
use crate::supervisor::process::Child;
use napi::bindgen_prelude::PromiseRaw;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};
use napi_derive::napi;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type EventFn = ThreadsafeFunction<String, (), String, Status, false, true>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn parse_json(text: &str, what: &str) -> napi::Result<Value> {
    serde_json::from_str(text)
        .map_err(|e| to_napi(Error::InvalidArgument(format!("{what} must be JSON: {e}"))))
}

async fn flush(events: &EventFn) {
    let _ = events
        .call_async_catch(r#"{"type":"flush"}"#.to_string())
        .await;
}

#[napi(object)]
pub struct NativeLaunch {
    pub binary: String,
    pub args: Vec<String>,
    pub health_host: String,
    pub port: u32,
    pub startup_timeout_ms: f64,
    pub model_path: String,
    /// The JS side's launch number, echoed in this launch's exit report.
    pub launch: u32,
}

#[napi(object)]
pub struct NativeLaunched {
    pub pid: u32,
    pub load_time_ms: f64,
    pub effective_context_size: Option<f64>,
    pub total_slots: Option<f64>,
}

#[napi]
pub struct NativeLlamaServer {
    events: Arc<EventFn>,
    child: Arc<Mutex<Option<Arc<Child>>>>,
    log: Arc<Mutex<Option<Arc<LogFile>>>>,
    /// Bumped by every launch and stop: a launch whose number changed before its child was
    /// spawned kills that child at once (a stop can arrive before the spawn happens).
    epoch: Arc<std::sync::atomic::AtomicU64>,
}

#[napi]
impl NativeLlamaServer {
    #[napi(constructor)]
    pub fn new(callback: EventFn) -> Self {
        NativeLlamaServer {
            events: Arc::new(callback),
            child: Arc::new(Mutex::new(None)),
            log: Arc::new(Mutex::new(None)),
            epoch: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    /// Uses `path` as the log from now on (`<userData>/logs/llama-server.log`).
    #[napi]
    pub fn open_log(&self, path: String) {
        let mut l = lock(&self.log);
        if l.as_ref()
            .map(|f| f.path() != Path::new(&path))
            .unwrap_or(true)
        {
            *l = Some(Arc::new(LogFile::new(PathBuf::from(path))));
        }
    }

    #[napi]
    pub fn log_path(&self) -> Option<String> {
        lock(&self.log)
            .as_ref()
            .map(|l| l.path().display().to_string())
    }

    #[napi]
    pub fn write_log(&self, level: String, message: String) {
        let level = match level.as_str() {
            "error" => LogLevel::Error,
            "warn" => LogLevel::Warn,
            "debug" => LogLevel::Debug,
            _ => LogLevel::Info,
        };
        if let Some(l) = lock(&self.log).clone() {
            l.write(level, &message);
        }
    }

    #[napi]
    pub async fn logs(&self, lines: u32) -> napi::Result<Vec<String>> {
        let log = lock(&self.log).clone();
        Ok(
            blocking(move || Ok(log.map(|l| l.tail(lines as usize)).unwrap_or_default()))
                .await
                .unwrap_or_default(),
        )
    }

    #[napi]
    pub async fn structured_logs(&self, lines: u32) -> napi::Result<Vec<Value>> {
        let lines = self.logs(lines).await?;
        Ok(lines.iter().map(|l| parse_entry(l)).collect())
    }

    #[napi]
    pub async fn clear_logs(&self) -> napi::Result<()> {
        let log = lock(&self.log).clone();
        let _ = blocking(move || {
            if let Some(l) = log {
                l.clear();
            }
            Ok(())
        })
        .await;
        Ok(())
    }

    /// Spawns llama-server and resolves once `/health` says 200. On failure nothing runs.
    #[napi(ts_return_type = "Promise<NativeLaunched>")]
    pub fn launch<'env>(
        &self,
        env: &'env Env,
        spec: NativeLaunch,
    ) -> napi::Result<PromiseRaw<'env, NativeLaunched>> {
        let log = lock(&self.log)
            .clone()
            .ok_or_else(|| to_napi(Error::InvalidArgument("openLog() first".into())))?;
        let launch_id = spec.launch;
        let ls = LaunchSpec {
            binary: PathBuf::from(spec.binary),
            args: spec.args,
            health_host: spec.health_host,
            port: u16::try_from(spec.port).unwrap_or(0),
            startup_timeout: Duration::from_millis(spec.startup_timeout_ms.max(1.0) as u64),
            model_path: spec.model_path,
        };
        let (slot, events) = (self.child.clone(), self.events.clone());
        let epoch = self.epoch.clone();
        let mine = epoch.fetch_add(1, Ordering::SeqCst) + 1;
        env.spawn_future(async move {
            let (slot2, ev) = (slot.clone(), events.clone());
            let r = launch(&ls, log, move |child| {
                let mut guard = lock(&slot2);
                if epoch.load(Ordering::SeqCst) != mine {
                    // Stopped before the spawn: readiness sees the exit and reports it.
                    child.kill_now();
                } else {
                    *guard = Some(child.clone());
                }
                drop(guard);
                tokio::spawn(async move {
                    let info = child.wait().await;
                    let report = json!({
                        "type": "exit",
                        "launch": launch_id,
                        "code": info.code,
                        "signal": info.signal_name(),
                        "stderr": info.stderr_tail.join("\n"),
                    });
                    ev.call_with_return_value(
                        report.to_string(),
                        ThreadsafeFunctionCallMode::NonBlocking,
                        |_, _| Ok(()),
                    );
                });
            })
            .await;
            let r = r.map(|(_, launched)| NativeLaunched {
                pid: launched.pid,
                load_time_ms: launched.load_time_ms as f64,
                effective_context_size: launched.effective_context_size.map(|n| n as f64),
                total_slots: launched.total_slots.map(|n| n as f64),
            });
            flush(&events).await;
            r.napi()
        })
    }

    /// Stops the running llama-server (TERM, a second TERM, then KILL) and waits for the reap.
    /// Resolves with how it ended, or null when nothing ran.
    #[napi(ts_return_type = "Promise<any>")]
    pub fn stop<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, Value>> {
        let child = {
            let mut guard = lock(&self.child);
            self.epoch.fetch_add(1, Ordering::SeqCst);
            guard.take()
        };
        let events = self.events.clone();
        env.spawn_future(async move {
            let out = match child {
                Some(c) => {
                    let info = c.stop(STOP_PLAN).await;
                    json!({ "code": info.code, "signal": info.signal_name() })
                }
                None => Value::Null,
            };
            flush(&events).await;
            Ok(out)
        })
    }

    /// The pid of the running llama-server, if it is alive.
    #[napi]
    pub fn running_pid(&self) -> Option<u32> {
        lock(&self.child)
            .as_ref()
            .filter(|c| c.is_alive())
            .map(|c| c.pid())
    }
}

/// Checks a `LlamaServerConfig` (types, ranges, unknown fields) without starting anything.
#[napi(js_name = "llamaValidateConfig")]
pub fn llama_validate_config(config_json: String) -> napi::Result<()> {
    let v = parse_json(&config_json, "config")?;
    LlamaConfig::parse(&v).napi().map(|_| ())
}

#[napi(object)]
pub struct LlamaArgs {
    pub args: Vec<String>,
    /// The flash-attention setting after a quantized V cache forced it on.
    pub flash_attention: Option<String>,
    pub flash_attention_forced: bool,
}

/// The llama-server argument list for a resolved config (port already chosen).
#[napi(js_name = "llamaBuildArgs")]
pub fn llama_build_args(
    config_json: String,
    model_path: String,
    port: u32,
) -> napi::Result<LlamaArgs> {
    let v = parse_json(&config_json, "config")?;
    let mut cfg = LlamaConfig::parse(&v).napi()?;
    let forced = cfg.normalize_v_cache().napi()?;
    let port = u16::try_from(port)
        .map_err(|_| to_napi(Error::InvalidArgument(format!("port {port} out of range"))))?;
    Ok(LlamaArgs {
        args: cfg.args(&model_path, port),
        flash_attention: cfg.flash_attention.clone(),
        flash_attention_forced: forced,
    })
}

/// Where llama-server is (see `llama::binary`).
#[napi(js_name = "llamaResolveBinary")]
pub fn llama_resolve_binary(
    explicit: Option<String>,
    env_dir: Option<String>,
    default_dir: String,
) -> napi::Result<String> {
    crate::llama::binary::resolve(
        explicit.as_deref().map(Path::new),
        env_dir.as_deref(),
        Path::new(&default_dir),
    )
    .map(|p| p.display().to_string())
    .napi()
}

/// `systemInfo.getOptimalConfig(modelInfo, hints)`.
#[napi(js_name = "systemOptimalConfig")]
pub async fn system_optimal_config(
    model_json: String,
    hints_json: String,
    options: Option<SystemProbeOptions>,
) -> napi::Result<Value> {
    let model = parse_json(&model_json, "modelInfo")?;
    let hints = parse_json(&hints_json, "hints")?;
    let cfg = probe_config(options);
    blocking(move || {
        let caps = SYSTEM.detect(false, &cfg)?;
        let mem = crate::system::memory_info(&cfg)?;
        let machine = Machine {
            cores: caps.cpu.cores,
            ram_total: mem.total as f64,
            ram_available: mem.available as f64,
            gpu_available: caps.gpu.available,
            vram: caps.gpu.vram.map(|v| v as f64),
            vram_available: caps.gpu.vram_available.map(|v| v as f64),
        };
        optimal_config_with_policy(&model, &hints, &machine).map_err(|e| match e {
            PolicyError::Constraint {
                reason,
                message,
                details,
            } => {
                let mut d =
                    json!({ "code": "CONTEXT_CONSTRAINT", "reason": reason, "stage": "sizing" });
                if let (Some(o), Some(extra)) = (d.as_object_mut(), details.as_object()) {
                    o.extend(extra.clone());
                }
                Error::server(message, d)
            }
            PolicyError::Insufficient { message, details } => Error::insufficient(message, details),
            PolicyError::Input(e) => e,
        })
    })
    .await
}

/// SIGKILLs every child process this library started (both servers); for the host's `exit`.
#[napi(js_name = "supervisorKillAllChildren")]
pub fn supervisor_kill_all_children() {
    crate::supervisor::kill_all_children();
}

/// Expert weight bytes of a MoE GGUF (measured, else estimated), as 0.26 computes them.
#[napi(js_name = "llamaExpertWeightsBytes")]
pub fn llama_expert_weights_bytes(model_json: String) -> napi::Result<Option<f64>> {
    let model = parse_json(&model_json, "modelInfo")?;
    Ok(crate::system::can_run::ModelNeeds::from_json(&model)
        .napi()?
        .expert_bytes)
}
