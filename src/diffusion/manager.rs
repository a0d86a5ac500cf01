//! The diffusion server: lifecycle (start, stop), status and events, the job worker and the HTTP
//! API, tied together. One instance per JS `DiffusionServerManager`.
//!
//! Start order: config validated (nothing changes on a bad config) -> status `starting` -> log
//! opened -> model record -> files checked (layout) -> flags decided -> binary found -> public port
//! bound (PortInUseError before anything is spawned) -> `running`. sd-server itself is spawned on
//! the first image (or during start with `preload: true`) and released per `usageMode` and
//! `idleTimeoutMs` (see `residency`). Any failure unwinds what was done and leaves `stopped`.

use crate::diffusion::args::ProcessOptions;
use crate::diffusion::backend::{
    Backend, CliBackend, Hooks, ProgressFn, RunError, ServerBackend, ServerSetup, Timeouts,
};
use crate::diffusion::binary;
use crate::diffusion::config::{self, ImageRequest, PortSpec, ServerConfig, UsageMode};
use crate::diffusion::flags::{self, FlagOverrides, GpuMemory};
use crate::diffusion::http_api::{self, Api};
use crate::diffusion::jobs::{
    self, CancelFlag, CancelOutcome, Claimed, JobError, JobResult, Jobs, Outcome,
};
use crate::diffusion::layout;
use crate::diffusion::logs::{self, LogFile, LogLevel};
use crate::diffusion::process::{signal_name_of, ExitInfo};
use crate::diffusion::progress::{Progress, Stage};
use crate::diffusion::residency::BackendState;
use crate::error::{Error, Result};
use crate::storage::{ModelInfo, Paths, Store};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

pub type EventSink = Arc<dyn Fn(Value) + Send + Sync>;
/// Measures the GPU (the system module's job); called once per start, off the async threads.
pub type GpuProbe = Arc<dyn Fn() -> Result<GpuMemory> + Send + Sync>;
/// `canRunModel`-style admission check; `Err` is returned from `start()`.
pub type ResourceCheck = Arc<dyn Fn(&ModelInfo) -> Result<()> + Send + Sync>;

/// What a start needs from its surroundings. The JS side reads the environment on its own thread
/// and passes it here, so the core never reads environment variables.
#[derive(Clone)]
pub struct StartEnv {
    pub gpu: GpuProbe,
    pub resources: Option<ResourceCheck>,
    /// `GENAI_ELECTRON_SD_BINARY_DIR`.
    pub binary_dir: Option<String>,
    /// `IMAGE_RESULT_TTL_MS` / `IMAGE_CLEANUP_INTERVAL_MS`.
    pub result_ttl: Duration,
    pub cleanup_interval: Duration,
}

impl Default for StartEnv {
    fn default() -> Self {
        StartEnv {
            gpu: Arc::new(|| Ok(GpuMemory::default())),
            resources: None,
            binary_dir: None,
            result_ttl: Duration::from_millis(jobs::DEFAULT_RESULT_TTL_MS),
            cleanup_interval: Duration::from_millis(jobs::DEFAULT_CLEANUP_INTERVAL_MS),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Stopped,
    Starting,
    Running,
    Stopping,
    Crashed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Stopped => "stopped",
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Stopping => "stopping",
            Status::Crashed => "crashed",
        }
    }
}

struct State {
    status: Status,
    port: u16,
    model_id: String,
    started_at: Option<String>,
    config: Option<Value>,
    error: Option<String>,
    /// `backend` of the config: `server` or `cli` (`getInfo().backendKind`).
    backend_kind: Option<&'static str>,
    flags: Option<Value>,
    /// `usageMode` of the config (`None` = auto) and `idleTimeoutMs` (`None` = never).
    usage_mode: Option<UsageMode>,
    idle_timeout: Option<Duration>,
    /// Jobs are accepted (from a successful start until stop begins), including while a
    /// crashed sd-server is being replaced.
    accepting: bool,
}

struct Shared {
    events: EventSink,
    state: Mutex<State>,
    log: Mutex<Option<Arc<LogFile>>>,
    jobs: Mutex<Option<Arc<Jobs>>>,
    backend: Mutex<Option<Arc<Backend>>>,
    /// Set by `stop()` to abort the start in progress.
    start_abort: Mutex<Option<Arc<CancelFlag>>>,
    /// HTTP-submitted images wait for the JS orchestrator (`setHttpGate`), as genai-electron
    /// 0.26 runs them through its `ResourceOrchestrator` like `generateImage()`.
    http_gate: std::sync::atomic::AtomicBool,
    /// The worker's wait for each gated job, opened by `open_gate(id)`.
    gates: Mutex<std::collections::HashMap<String, tokio::sync::oneshot::Sender<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn emit(&self, v: Value) {
        (self.events)(v);
    }

    fn log(&self, level: LogLevel, msg: &str) {
        if let Some(l) = lock(&self.log).as_ref() {
            l.write(level, msg);
        }
    }

    fn status(&self) -> Status {
        lock(&self.state).status
    }

    /// Changes the status and emits `status` (new, old) when it actually changed.
    fn set_status(&self, s: Status) {
        let old = {
            let mut st = lock(&self.state);
            let old = st.status;
            st.status = s;
            old
        };
        self.announce(old, s);
    }

    /// Logs and emits a status change made under the state lock.
    fn announce(&self, old: Status, s: Status) {
        if old != s {
            self.log(
                LogLevel::Info,
                &format!("Status: {} -> {}", old.as_str(), s.as_str()),
            );
            self.emit(json!({ "type": "status", "status": s.as_str(), "previous": old.as_str() }));
        }
    }
}

struct ManagerHooks(Arc<Shared>);

impl Hooks for ManagerHooks {
    fn log(&self, level: LogLevel, message: &str) {
        self.0.log(level, message);
    }

    fn backend_status(
        &self,
        state: BackendState,
        previous: BackendState,
        reason: Option<&str>,
        exit: Option<&ExitInfo>,
    ) {
        let mut v = json!({
            "type": "backend-status",
            "state": state.as_str(),
            "previous": previous.as_str(),
        });
        if let Some(r) = reason {
            v["reason"] = json!(r);
        }
        if let Some(e) = exit {
            v["exit"] = json!({ "code": e.code, "signal": e.signal.and_then(signal_name_of) });
        }
        self.0.emit(v);
    }

    /// The server stays `running` (the next image spawns a new sd-server); the `crashed` event
    /// tells listeners what happened.
    fn crashed(&self, info: &ExitInfo) {
        let stderr = info.stderr_tail.join("\n");
        let message = format!("sd-server exited unexpectedly with {}", info.describe());
        self.0.log(
            LogLevel::Error,
            &format!(
                "{message}{}",
                if stderr.is_empty() {
                    String::new()
                } else {
                    format!("\n{stderr}")
                }
            ),
        );
        self.0.emit(json!({
            "type": "crashed",
            "exitCode": info.exit_code(),
            "code": info.code,
            "signal": info.signal.and_then(signal_name_of),
            "stderr": stderr,
            "message": message,
        }));
    }

    fn released(&self, reason: &str) {
        self.0
            .emit(json!({ "type": "backend-released", "reason": reason }));
    }
}

struct Running {
    jobs: Arc<Jobs>,
    backend: Arc<Backend>,
    http_stop: Arc<CancelFlag>,
    http_task: JoinHandle<()>,
    worker: JoinHandle<()>,
    cleanup: JoinHandle<()>,
}

pub struct DiffusionServer {
    shared: Arc<Shared>,
    /// Held by a start from its synchronous beginning to its end, and by stop.
    lifecycle: Arc<tokio::sync::Mutex<Option<Running>>>,
}

/// A start that has claimed the server (status `starting`) and not yet run. Taken synchronously,
/// in call order, so `start(); stop()` from JS aborts that start even if the runtime would have
/// run stop's future first.
pub struct StartTicket {
    cfg: ServerConfig,
    abort: Arc<CancelFlag>,
    lifecycle: tokio::sync::OwnedMutexGuard<Option<Running>>,
}

/// What `generateImage()` receives.
pub type Generation = JobResult;

impl DiffusionServer {
    pub fn new(events: EventSink) -> Self {
        DiffusionServer {
            shared: Arc::new(Shared {
                events,
                state: Mutex::new(State {
                    status: Status::Stopped,
                    port: 0,
                    model_id: String::new(),
                    started_at: None,
                    config: None,
                    error: None,
                    backend_kind: None,
                    flags: None,
                    usage_mode: None,
                    idle_timeout: None,
                    accepting: false,
                }),
                log: Mutex::new(None),
                jobs: Mutex::new(None),
                backend: Mutex::new(None),
                start_abort: Mutex::new(None),
                http_gate: std::sync::atomic::AtomicBool::new(false),
                gates: Mutex::new(std::collections::HashMap::new()),
            }),
            lifecycle: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// `start(config)`: resolves to `DiffusionServerInfo`.
    pub async fn start(&self, user_data: PathBuf, config: Value, env: StartEnv) -> Result<Value> {
        let ticket = self.begin_start(&config)?;
        self.finish_start(ticket, user_data, env).await
    }

    /// The synchronous part of a start: refuses a busy server or a bad config, else claims the
    /// server and sets status `starting`.
    pub fn begin_start(&self, config: &Value) -> Result<StartTicket> {
        match self.status() {
            Status::Running | Status::Crashed => {
                return Err(Error::server("Server is already running", json!({})))
            }
            Status::Starting => return Err(Error::server("Server is already starting", json!({}))),
            Status::Stopping => return Err(Error::server("Server is stopping", json!({}))),
            Status::Stopped => {}
        }
        let cfg = ServerConfig::parse(config)?;
        let Ok(lifecycle) = self.lifecycle.clone().try_lock_owned() else {
            return Err(Error::server("Server is already starting", json!({})));
        };
        {
            let mut st = lock(&self.shared.state);
            st.config = Some(config.clone());
            st.model_id = cfg.model_id.clone();
            st.error = None;
            st.flags = None;
            st.backend_kind = Some(cfg.backend.as_str());
            st.usage_mode = cfg.usage_mode;
            st.idle_timeout = cfg.idle_timeout_ms.map(Duration::from_millis);
        }
        let abort = Arc::new(CancelFlag::default());
        *lock(&self.shared.start_abort) = Some(abort.clone());
        self.shared.set_status(Status::Starting);
        Ok(StartTicket {
            cfg,
            abort,
            lifecycle,
        })
    }

    /// The rest of a start begun by `begin_start`.
    pub async fn finish_start(
        &self,
        ticket: StartTicket,
        user_data: PathBuf,
        env: StartEnv,
    ) -> Result<Value> {
        let StartTicket {
            cfg,
            abort,
            mut lifecycle,
        } = ticket;
        let result = tokio::select! {
            r = self.start_inner(user_data, &cfg, &env, abort.clone()) => r,
            // Steps before sd-server exists are short; this ends them at once. A preload's
            // spawn watches the same flag and kills the child before returning.
            _ = abort.cancelled(), if !cfg.preload || cfg.backend == config::Backend::Cli => Err(aborted()),
        };
        // `running` is committed under the state lock, where `begin_stop` reads the status: a
        // stop() called while this start was still `starting` has cancelled `abort` by then, so
        // it aborts this start however far the start got.
        let result = match result {
            Ok(r) => {
                let committed = {
                    let mut st = lock(&self.shared.state);
                    let ok = !abort.is_cancelled();
                    if ok {
                        st.status = Status::Running;
                        st.port = r.1;
                        st.accepting = true;
                        st.started_at = Some(
                            chrono::Utc::now()
                                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                                .to_string(),
                        );
                    }
                    ok
                };
                if committed {
                    Ok(r)
                } else {
                    r.0.http_stop.cancel();
                    r.0.backend.shutdown().await;
                    r.0.worker.abort();
                    r.0.cleanup.abort();
                    Err(aborted())
                }
            }
            other => other,
        };
        *lock(&self.shared.start_abort) = None;
        match result {
            Ok(running) => {
                let port = running.1;
                *lifecycle = Some(running.0);
                self.shared.announce(Status::Starting, Status::Running);
                self.shared.log(
                    LogLevel::Info,
                    &format!("Diffusion server running on http://{}:{port}", cfg.host),
                );
                Ok(self.info())
            }
            Err(e) => {
                self.shared
                    .log(LogLevel::Error, &format!("Start failed: {e}"));
                *lock(&self.shared.backend) = None;
                lock(&self.shared.state).port = 0;
                self.shared.set_status(Status::Stopped);
                Err(e)
            }
        }
    }

    async fn start_inner(
        &self,
        user_data: PathBuf,
        cfg: &ServerConfig,
        env: &StartEnv,
        abort: Arc<CancelFlag>,
    ) -> Result<(Running, u16)> {
        let paths = Paths::new(user_data)?;
        paths.initialize().await?;
        let log = Arc::new(LogFile::new(paths.logs().join(logs::LOG_FILE)));
        *lock(&self.shared.log) = Some(log.clone());
        self.shared.log(
            LogLevel::Info,
            &format!(
                "Starting diffusion server: model {}, backend {}, config {}",
                cfg.model_id,
                cfg.backend.as_str(),
                cfg.raw
            ),
        );

        let store = Store::new(paths.clone());
        let id = cfg.model_id.clone();
        let p2 = paths.clone();
        let (model, files) = blocking(move || {
            let model = store.get(&id)?;
            let files = layout::resolve(&model, &p2)?;
            Ok((model, files))
        })
        .await?;
        for w in &files.warnings {
            self.shared
                .log(LogLevel::Warn, &format!("Model check: {w}"));
        }
        if files.sdxl_split {
            self.shared.log(
                LogLevel::Info,
                "SDXL split layout: adding -m with the SDXL hint file so stable-diffusion.cpp detects SDXL (see the README, \"SDXL from split files\")",
            );
        }
        if let Some(check) = env.resources.clone() {
            let m = model.clone();
            blocking(move || check(&m)).await?;
        }

        let gpu_probe = env.gpu.clone();
        let gpu = blocking(move || gpu_probe()).await?;
        let decision = flags::decide(
            files.size,
            files.has_llm,
            gpu,
            FlagOverrides {
                clip_on_cpu: cfg.clip_on_cpu,
                vae_on_cpu: cfg.vae_on_cpu,
                offload_to_cpu: cfg.offload_to_cpu,
                diffusion_fa: cfg.diffusion_fa,
            },
        );
        self.shared.log(LogLevel::Info, &decision.log_line());
        lock(&self.shared.state).flags = Some(decision.flags.to_json());

        let program = binary::resolve(
            cfg.backend,
            cfg.binary_path.as_deref(),
            env.binary_dir.as_deref(),
            &paths.binaries("diffusion"),
        )?;
        let msg = format!("Using stable-diffusion.cpp binary {}", program.display());
        self.shared.log(LogLevel::Info, &msg);
        self.shared
            .emit(json!({ "type": "binary-log", "message": msg, "level": "info" }));

        let (listener, port) = bind_public(&cfg.host, cfg.port).await?;

        let hooks: Arc<dyn Hooks> = Arc::new(ManagerHooks(self.shared.clone()));
        let job_stall = cfg.job_stall_timeout_ms.map(Duration::from_millis);
        let backend = Arc::new(match cfg.backend {
            config::Backend::Server => Backend::Server(Arc::new(ServerBackend::new(
                ServerSetup {
                    binary: program,
                    files,
                    threads: cfg.threads,
                    batch_size: cfg.batch_size,
                    gpu,
                    overrides: FlagOverrides {
                        clip_on_cpu: cfg.clip_on_cpu,
                        vae_on_cpu: cfg.vae_on_cpu,
                        offload_to_cpu: cfg.offload_to_cpu,
                        diffusion_fa: cfg.diffusion_fa,
                    },
                },
                Timeouts {
                    start: Duration::from_millis(cfg.start_timeout_ms),
                    job_stall,
                },
                log.clone(),
                hooks,
                abort.clone(),
            ))),
            config::Backend::Cli => Backend::Cli(Box::new(CliBackend::new(
                program,
                files,
                ProcessOptions {
                    threads: cfg.threads,
                    flags: decision.flags,
                    batch_size: None,
                },
                paths.temp(),
                job_stall,
                log.clone(),
                hooks,
            ))),
        });
        *lock(&self.shared.backend) = Some(backend.clone());
        if abort.is_cancelled() {
            return Err(aborted());
        }
        if let (Backend::Server(s), true) = (backend.as_ref(), cfg.preload) {
            s.preload().await?;
            // A preloaded sd-server nobody uses is released like a warm one.
            s.arm_idle(cfg.idle_timeout_ms.map(Duration::from_millis));
        }

        let jobs = Arc::new(Jobs::new(cfg.max_queue));
        *lock(&self.shared.jobs) = Some(jobs.clone());
        let http_stop = Arc::new(CancelFlag::default());
        let api: Arc<dyn Api> = Arc::new(ApiImpl {
            shared: self.shared.clone(),
            jobs: jobs.clone(),
            access: crate::diffusion::http_guard::Access::new(
                cfg.allowed_origins.clone(),
                &cfg.host,
            ),
        });
        let http_task = tokio::spawn(http_api::serve(listener, api, http_stop.clone()));
        let worker = tokio::spawn(worker(self.shared.clone(), jobs.clone(), backend.clone()));
        let (ttl, interval) = (env.result_ttl, env.cleanup_interval);
        let j2 = jobs.clone();
        let cleanup = tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                j2.cleanup(ttl);
            }
        });
        Ok((
            Running {
                jobs,
                backend,
                http_stop,
                http_task,
                worker,
                cleanup,
            },
            port,
        ))
    }

    /// `stop()`: cancels queued and running jobs, ends every child (SIGTERM, then SIGKILL after
    /// 5 s) and waits for them to be reaped, closes the HTTP API.
    pub async fn stop(&self) -> Result<()> {
        if !self.begin_stop() {
            return Ok(());
        }
        self.finish_stop().await
    }

    /// The synchronous part of a stop: aborts a start in progress (it notices and unwinds,
    /// releasing the lifecycle lock). False when there is nothing to stop.
    pub fn begin_stop(&self) -> bool {
        // Under the state lock, so a start cannot commit `running` between the check and the
        // cancel (see finish_start).
        let st = lock(&self.shared.state);
        match st.status {
            Status::Stopped => false,
            Status::Starting => {
                if let Some(a) = lock(&self.shared.start_abort).as_ref() {
                    a.cancel();
                }
                true
            }
            _ => {
                if let Some(b) = self.backend() {
                    b.claim_stop();
                }
                true
            }
        }
    }

    pub async fn finish_stop(&self) -> Result<()> {
        let mut lifecycle = self.lifecycle.lock().await;
        let Some(running) = lifecycle.take() else {
            return Ok(());
        };
        lock(&self.shared.state).accepting = false;
        self.shared.set_status(Status::Stopping);
        running.jobs.close();
        running.http_stop.cancel();
        let _ = running.http_task.await;
        running.backend.shutdown().await;
        let worker_abort = running.worker.abort_handle();
        if tokio::time::timeout(Duration::from_secs(10), running.worker)
            .await
            .is_err()
        {
            // Every child is already gone; a worker still busy would only touch a closed queue.
            worker_abort.abort();
        }
        running.cleanup.abort();
        *lock(&self.shared.backend) = None;
        lock(&self.shared.state).port = 0;
        self.shared.set_status(Status::Stopped);
        self.shared.log(LogLevel::Info, "Diffusion server stopped");
        Ok(())
    }

    fn jobs(&self) -> Option<Arc<Jobs>> {
        lock(&self.shared.jobs).clone()
    }

    /// Queues a generation (`generateImage()`); returns its id.
    pub fn submit(&self, request: &Value) -> Result<String> {
        self.submit_with(request, None, true)
    }

    /// `submit` with flags forced for this image and whether the worker settles residency.
    pub fn submit_with(
        &self,
        request: &Value,
        flags: Option<FlagOverrides>,
        settle: bool,
    ) -> Result<String> {
        let accepting = lock(&self.shared.state).accepting;
        let Some(jobs) = self.jobs().filter(|_| accepting) else {
            return Err(Error::server(
                "Server is not running",
                json!({ "code": "SERVER_NOT_RUNNING", "suggestion": "Call diffusionServer.start({ modelId }) first." }),
            ));
        };
        let mut req = ImageRequest::parse(request)?;
        req.flag_overrides = flags;
        req.settle = settle;
        queue(&jobs, req).map(|(id, _)| id)
    }

    /// Whether images submitted over HTTP wait for `open_gate` before they run.
    pub fn set_http_gate(&self, on: bool) {
        self.shared
            .http_gate
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Lets a gated job run (the orchestrator made room, or has nothing to do). Idempotent.
    pub fn open_gate(&self, id: &str) {
        if let Some(tx) = lock(&self.shared.gates).remove(id) {
            let _ = tx.send(());
        }
    }

    /// Resolves with the job's images, or its error.
    pub async fn wait(&self, id: &str) -> Result<Generation> {
        let Some(jobs) = self.jobs() else {
            return Err(not_found(id));
        };
        match jobs.wait(id).await {
            Outcome::Done(r) => Ok((*r).clone()),
            Outcome::Failed(e) => {
                let mut details = match e.details {
                    Value::Object(m) => m,
                    _ => Default::default(),
                };
                details.entry("code").or_insert_with(|| json!(e.code));
                details.insert("generationId".into(), json!(id));
                Err(Error::Server {
                    message: e.message,
                    details,
                })
            }
            Outcome::Cancelled => Err(Error::server(
                "Image generation cancelled",
                json!({ "code": "GENERATION_CANCELLED", "generationId": id }),
            )),
            Outcome::Gone => Err(not_found(id)),
        }
    }

    /// `cancelImageGeneration(id)`: unknown id is an error, a finished one a no-op.
    pub fn cancel(&self, id: &str) -> Result<()> {
        let Some(jobs) = self.jobs() else {
            return Err(not_found(id));
        };
        match jobs.cancel(id) {
            CancelOutcome::NotFound => Err(not_found(id)),
            CancelOutcome::Cancelled { was_active } => {
                self.shared.log(
                    LogLevel::Info,
                    &format!(
                        "Generation {id} cancelled{}",
                        if was_active {
                            " while running"
                        } else {
                            " while queued"
                        }
                    ),
                );
                Ok(())
            }
            _ => Ok(()),
        }
    }

    pub fn active_generation_id(&self) -> Option<String> {
        self.jobs().and_then(|j| j.active_id())
    }

    /// `DiffusionServerInfo`.
    pub fn info(&self) -> Value {
        let st = lock(&self.shared.state);
        let backend = lock(&self.shared.backend).clone();
        let busy = lock(&self.shared.jobs)
            .as_ref()
            .is_some_and(|j| j.is_busy())
            && matches!(
                st.status,
                Status::Running | Status::Crashed | Status::Starting
            );
        // sd-server comes and goes with residency; the server is healthy while it serves.
        let health = match st.status {
            Status::Running => "ok",
            Status::Starting => "loading",
            Status::Crashed => "error",
            _ => "unknown",
        };
        let mut v = json!({
            "status": st.status.as_str(),
            "health": health,
            "port": st.port,
            "modelId": st.model_id,
            "busy": busy,
        });
        if let Some(pid) = backend.as_ref().and_then(|b| b.pid()) {
            v["pid"] = json!(pid);
        }
        if let Some(s) = &st.started_at {
            v["startedAt"] = json!(s);
        }
        if let Some(e) = &st.error {
            v["error"] = json!(e);
        }
        v["backend"] = backend
            .as_ref()
            .map(|b| b.info())
            .unwrap_or_else(|| json!({ "state": "absent" }));
        if let Some(b) = st.backend_kind {
            v["backendKind"] = json!(b);
        }
        if let Some(f) = &st.flags {
            v["flags"] = f.clone();
        }
        v
    }

    /// Running counts as healthy with sd-server absent: it is spawned on the next image.
    pub fn is_healthy(&self) -> bool {
        self.status() == Status::Running
    }

    fn backend(&self) -> Option<Arc<Backend>> {
        lock(&self.shared.backend).clone()
    }

    /// `getBackendInfo()`.
    pub fn backend_info(&self) -> Value {
        self.backend()
            .map(|b| b.info())
            .unwrap_or_else(|| json!({ "state": "absent" }))
    }

    /// The call-time part of `releaseBackend()` (see `ServerBackend::claim_release`); a release
    /// that waits for the image in flight claims nothing yet, as in genai-electron.
    pub fn claim_release(&self, reason: &str, wait_for_in_flight: bool) {
        if let (Some(b), false) = (self.backend(), wait_for_in_flight) {
            b.claim_release(reason);
        }
    }

    /// `releaseBackend({ reason, waitForInFlight })`.
    pub async fn release_backend(&self, reason: &str, wait_for_in_flight: bool) {
        if let Some(b) = self.backend() {
            if let Backend::Server(s) = b.as_ref() {
                s.disarm_idle();
            }
        }
        if wait_for_in_flight {
            if let Some((jobs, id)) = self.jobs().and_then(|j| j.active_id().map(|id| (j, id))) {
                jobs.wait(&id).await;
            }
        }
        if let Some(b) = self.backend() {
            b.release(reason).await;
        }
    }

    /// `settleResidency(mode)`: `single` releases sd-server now, anything else arms the idle
    /// release.
    pub async fn settle(&self, mode: Option<UsageMode>) {
        if let Some(b) = self.backend() {
            settle(&self.shared, &b, mode).await;
        }
    }

    pub fn log_file(&self) -> Option<Arc<LogFile>> {
        lock(&self.shared.log).clone()
    }

    /// The log file for a userData root even before the first start (so `getLogs()` works then).
    pub fn log_file_for(&self, user_data: PathBuf) -> Option<Arc<LogFile>> {
        if let Some(l) = self.log_file() {
            return Some(l);
        }
        let paths = Paths::new(user_data).ok()?;
        Some(Arc::new(LogFile::new(paths.logs().join(logs::LOG_FILE))))
    }
}

fn aborted() -> Error {
    Error::server(
        "Server start was aborted by stop()",
        json!({ "code": "SD_SERVER_START_ABORTED" }),
    )
}

fn not_found(id: &str) -> Error {
    Error::server(
        format!("Generation not found: {id}"),
        json!({
            "code": "GENERATION_NOT_FOUND",
            "generationId": id,
            "suggestion": "The id is unknown, or its result expired (IMAGE_RESULT_TTL_MS).",
        }),
    )
}

fn queue(jobs: &Jobs, req: ImageRequest) -> Result<(String, i64)> {
    jobs.submit(req).map_err(|waiting| {
        Error::server(
            format!("Server is busy: the generation queue is full ({waiting} waiting)"),
            json!({
                "code": "SERVER_BUSY",
                "suggestion": "Wait for a generation to finish, or start the server with a larger maxQueueSize.",
            }),
        )
    })
}

struct ApiImpl {
    shared: Arc<Shared>,
    jobs: Arc<Jobs>,
    access: crate::diffusion::http_guard::Access,
}

impl Api for ApiImpl {
    fn busy(&self) -> bool {
        self.jobs.is_busy()
    }
    fn submit(&self, body: &Value) -> Result<(String, i64)> {
        if !lock(&self.shared.state).accepting {
            return Err(Error::server(
                "Server is not running",
                json!({ "code": "SERVER_NOT_RUNNING" }),
            ));
        }
        let mut req = ImageRequest::parse(body)?;
        if self
            .shared
            .http_gate
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            req.gated = true;
            req.settle = false;
        }
        queue(&self.jobs, req)
    }
    fn get(&self, id: &str) -> Option<Value> {
        self.jobs.to_json(id)
    }
    fn cancel(&self, id: &str) -> CancelOutcome {
        self.jobs.cancel(id)
    }
    fn backend_state(&self) -> String {
        lock(&self.shared.backend)
            .as_ref()
            .and_then(|b| b.info()["state"].as_str().map(str::to_string))
            .unwrap_or_else(|| "absent".into())
    }
    fn access(&self) -> &crate::diffusion::http_guard::Access {
        &self.access
    }
}

async fn worker(shared: Arc<Shared>, jobs: Arc<Jobs>, backend: Arc<Backend>) {
    while let Some(job) = jobs.claim().await {
        let id = job.id.clone();
        let (j2, s2, id2) = (jobs.clone(), shared.clone(), id.clone());
        let on_progress: ProgressFn = Arc::new(move |p: Progress| {
            j2.set_progress(&id2, p.clone());
            emit_progress(&s2, &id2, &p);
        });
        shared.log(
            LogLevel::Info,
            &format!("Generation {id} started: {:?}", job.request),
        );
        let t0 = Instant::now();
        let outcome = if job.request.gated && !pass_gate(&shared, &job).await {
            Err(RunError::Cancelled)
        } else {
            backend.run(&job, on_progress.clone()).await
        };
        if job.request.settle {
            // Before the result is handed out, as genai-electron settles before generateImage
            // resolves: a `single` image has freed sd-server's memory by then.
            let mode = job
                .request
                .usage_mode
                .or(lock(&shared.state).usage_mode)
                .unwrap_or(UsageMode::Burst);
            settle(&shared, &backend, Some(mode)).await;
        }
        match outcome {
            Ok(images) => {
                let n = job.request.count;
                // The closing 100 % goes to JS only: the registry says `complete` instead, so a
                // poller never sees 100 on an entry that is still `in_progress`.
                emit_progress(
                    &shared,
                    &id,
                    &Progress {
                        current_step: 0,
                        total_steps: 0,
                        stage: Stage::Decoding,
                        percentage: 100.0,
                        current_image: n,
                        total_images: n,
                    },
                );
                let ms = t0.elapsed().as_millis() as u64;
                shared.log(
                    LogLevel::Info,
                    &format!(
                        "Generation {id} complete: {} image(s) in {ms} ms",
                        images.len()
                    ),
                );
                jobs.finish(
                    &id,
                    Ok(JobResult {
                        images,
                        time_taken_ms: ms,
                    }),
                );
            }
            Err(RunError::Cancelled) => {
                jobs.finish(
                    &id,
                    Err(JobError::new(
                        "Image generation cancelled",
                        "CANCELLED",
                        json!({}),
                    )),
                );
            }
            Err(RunError::Failed(e)) => {
                shared.log(
                    LogLevel::Error,
                    &format!("Generation {id} failed: {}", e.message),
                );
                jobs.finish(&id, Err(e));
            }
        }
    }
}

/// Hands a gated job to the JS orchestrator and waits until it opens the gate (after an LLM
/// offload, if one was needed). False when the job was cancelled meanwhile. A gate whose JS side
/// is gone (the sender dropped) counts as open: the image runs rather than hangs.
async fn pass_gate(shared: &Shared, job: &Claimed) -> bool {
    let (tx, rx) = tokio::sync::oneshot::channel();
    lock(&shared.gates).insert(job.id.clone(), tx);
    shared.emit(json!({
        "type": "gate",
        "id": job.id,
        "usageMode": job.request.usage_mode.map(|m| match m {
            UsageMode::Burst => "burst",
            UsageMode::Single => "single",
        }),
    }));
    let open = tokio::select! {
        _ = rx => true,
        _ = job.cancel.cancelled() => false,
    };
    lock(&shared.gates).remove(&job.id);
    open
}

/// `single` releases sd-server; `burst` (and anything else) arms the idle release.
async fn settle(shared: &Shared, backend: &Arc<Backend>, mode: Option<UsageMode>) {
    let Backend::Server(s) = backend.as_ref() else {
        return;
    };
    if mode == Some(UsageMode::Single) {
        s.release("single").await;
    } else {
        let idle = lock(&shared.state).idle_timeout;
        s.arm_idle(idle);
    }
}

fn emit_progress(shared: &Shared, id: &str, p: &Progress) {
    let mut v = p.to_json();
    v["type"] = json!("progress");
    v["id"] = json!(id);
    shared.emit(v);
}

/// Binds the public API port. `EADDRINUSE` is the contract's `PortInUseError`.
async fn bind_public(host: &str, port: PortSpec) -> Result<(tokio::net::TcpListener, u16)> {
    let want = match port {
        PortSpec::Fixed(p) => p,
        PortSpec::Auto => 0,
    };
    match tokio::net::TcpListener::bind((host, want)).await {
        Ok(l) => {
            let actual = l.local_addr().map(|a| a.port()).unwrap_or(want);
            Ok((l, actual))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(Error::PortInUse { port: want }),
        Err(e) => Err(Error::server(
            format!("Failed to start diffusion-server: cannot listen on {host}:{want}: {e}"),
            json!({ "host": host, "port": want, "error": e.to_string() }),
        )),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::server(format!("internal task failed: {e}"), json!({})))?
}
