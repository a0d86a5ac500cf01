//! The two ways of running a job. `Server`: one sd-server per started model, on a private loopback
//! port, fed through its native async job API; the model stays loaded between images. `Cli`: one
//! sd-cli per request. Both parse the child's stdout for progress and failure lines; both turn a
//! dead or failing child into an error that quotes sd.cpp.

use crate::diffusion::args::{cli_args, server_args, server_job_body, ProcessOptions};
use crate::diffusion::flags::{self, FlagOverrides, Flags, GpuMemory};
use crate::diffusion::jobs::{CancelFlag, Claimed, JobError, JobImage};
use crate::diffusion::layout::ModelFiles;
use crate::diffusion::logs::{LogFile, LogLevel};
use crate::diffusion::output_parser::{role_of, Event, FailureNotes, Level, Line};
use crate::diffusion::process::{ExitInfo, LineHandler, SdProcess, Stream};
use crate::diffusion::progress::{Progress, Tracker};
use crate::diffusion::residency::{now_iso, stronger, BackendState, Residency};
use crate::error::{Error, Result};
use crate::supervisor::readiness::{wait_ready, Probe, Readiness};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Grace between SIGTERM and SIGKILL (the contract's 5 s).
pub const KILL_GRACE: Duration = Duration::from_secs(5);
/// sd-server spawns tried, each on a new port, when the port is lost between choosing and binding.
const SPAWN_ATTEMPTS: u32 = 3;
/// How often a running sd-server job is polled when its output says nothing.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// One poll of sd-server's job API; a frozen sd-server must not hold the job loop (and with it
/// cancellation) inside a request.
const POLL_TIMEOUT: Duration = Duration::from_secs(10);

pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Notifications from a backend to the manager.
pub trait Hooks: Send + Sync {
    fn log(&self, level: LogLevel, message: &str);
    /// `backend-status`: sd-server's residency state changed (or was re-stated with a reason).
    fn backend_status(
        &self,
        state: BackendState,
        previous: BackendState,
        reason: Option<&str>,
        exit: Option<&ExitInfo>,
    );
    /// sd-server died on its own (not stopped or released by us).
    fn crashed(&self, info: &ExitInfo);
    /// sd-server is gone (released or crashed): room was made, for whoever waits for it.
    fn released(&self, reason: &str);
}

#[derive(Debug)]
pub enum RunError {
    Cancelled,
    Failed(JobError),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the output of the current job feeds.
struct JobSink {
    tracker: Tracker,
    on_progress: ProgressFn,
    seeds: Vec<i64>,
    saved: Vec<(u32, String, bool)>,
    notes: FailureNotes,
    /// Rung on lines that mean "look now" (done, failed, saved).
    wake: Arc<Notify>,
    /// When the job last showed activity (output, submission, a status change): the job
    /// activity watchdog's clock.
    last_output: Instant,
    /// sd-server's id for the job, once submitted.
    backend_job: Option<String>,
    /// The last stderr lines during this job (quoted when it is declared stuck).
    stderr: std::collections::VecDeque<String>,
}

impl JobSink {
    fn new(count: u32, on_progress: ProgressFn, wake: Arc<Notify>) -> Self {
        JobSink {
            tracker: Tracker::new(count),
            on_progress,
            seeds: Vec::new(),
            saved: Vec::new(),
            notes: FailureNotes::default(),
            wake,
            last_output: Instant::now(),
            backend_job: None,
            stderr: Default::default(),
        }
    }
}

/// Resolves with the idle time once the job in `sink` has shown no activity for `timeout`
/// (never when `None`: the watchdog is off). sd.cpp prints a line per sampling step, so silence
/// that long means it hangs (a deadlock, a stuck GPU driver), and nothing else would end the job.
async fn stalled(sink: &SinkSlot, timeout: Option<Duration>) -> Duration {
    let Some(timeout) = timeout else {
        return std::future::pending().await;
    };
    // genai-electron checks on a tick of a tenth of the timeout (at most 30 s).
    let tick = (timeout / 10).clamp(Duration::from_millis(1), Duration::from_secs(30));
    loop {
        let last = lock(sink)
            .as_ref()
            .map(|s| s.last_output)
            .unwrap_or_else(Instant::now);
        let idle = last.elapsed();
        if idle >= timeout {
            return idle;
        }
        tokio::time::sleep((timeout - idle).min(tick)).await;
    }
}

/// `BACKEND_JOB_STUCK`: the job activity watchdog ended the job.
fn stuck_error(
    job_id: Option<String>,
    idle: Duration,
    timeout: Duration,
    stage: &str,
    args: &[String],
    stderr_tail: String,
) -> JobError {
    JobError::coded(
        format!(
            "stable-diffusion.cpp job made no progress for {} ms (jobActivityTimeoutMs {}): the job was stopped and the backend released",
            idle.as_millis(),
            timeout.as_millis()
        ),
        "BACKEND_JOB_STUCK",
        json!({
            "jobId": job_id,
            "idleMs": idle.as_millis() as u64,
            "timeoutMs": timeout.as_millis() as u64,
            "stage": stage,
            "args": args,
            "backendStderrTail": stderr_tail,
            "suggestion": "If very slow steps are expected (large images on a CPU), raise DiffusionServerConfig.jobActivityTimeoutMs, or set it to 0 to disable the watchdog.",
        }),
    )
}

type SinkSlot = Arc<Mutex<Option<JobSink>>>;

/// Builds the handler that logs a child's output and feeds the current job.
fn line_handler(
    program: &'static str,
    log: Arc<LogFile>,
    sink: SinkSlot,
    listening: Arc<Notify>,
) -> LineHandler {
    Arc::new(move |stream, raw, line| {
        // Progress bars are logged only when complete, or the log would fill with `\r` updates.
        let level = match (stream, line) {
            (_, Line::Progress { current, total, .. }) if current < total => None,
            (
                _,
                Line::Log {
                    level: Level::Error,
                    ..
                },
            ) => Some(LogLevel::Error),
            (
                _,
                Line::Log {
                    level: Level::Warn, ..
                },
            ) => Some(LogLevel::Warn),
            (Stream::Stderr, _) => Some(LogLevel::Warn),
            _ => Some(LogLevel::Info),
        };
        if let Some(l) = level {
            // sd.cpp's own `[LEVEL] file:line - ` prefix is replaced by the log's level tag.
            let text = match line {
                Line::Log { message, .. } => message.as_str(),
                _ => raw.trim(),
            };
            log.write(l, &format!("{program}: {text}"));
        }
        if let Line::Log {
            event: Event::Listening(_),
            ..
        } = line
        {
            listening.notify_one();
        }
        let mut guard = lock(&sink);
        if let Some(s) = guard.as_mut() {
            s.last_output = Instant::now();
            if stream == Stream::Stderr {
                if s.stderr.len() >= crate::diffusion::process::STDERR_TAIL {
                    s.stderr.pop_front();
                }
                s.stderr.push_back(raw.trim_end().to_string());
            }
            s.notes.observe(line);
            if let Some(p) = s.tracker.observe(line, Instant::now()) {
                (s.on_progress)(p);
            }
            if let Line::Log { event, .. } = line {
                match event {
                    Event::ImageStart { seed, .. } => s.seeds.push(*seed),
                    Event::Saved { index, path, ok } => {
                        s.saved.push((*index, path.clone(), *ok));
                        s.wake.notify_one();
                    }
                    Event::GenerationDone | Event::GenerationFailed => s.wake.notify_one(),
                    _ => {}
                }
            }
        }
    })
}

/// Width and height from a PNG's IHDR chunk.
pub fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    if png.len() < 24 || &png[..8] != b"\x89PNG\r\n\x1a\n" || &png[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(png[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(png[20..24].try_into().ok()?);
    Some((w, h))
}

fn image_from_png(png: Vec<u8>, seed: i64) -> std::result::Result<JobImage, JobError> {
    let (width, height) = png_size(&png).ok_or_else(|| {
        JobError::coded(
            "Failed to read generated image: not a PNG",
            "IMAGE_DECODE_FAILED",
            json!({ "bytes": png.len() }),
        )
    })?;
    Ok(JobImage {
        png,
        seed,
        width,
        height,
    })
}

/// Explains a failed model load: which component, and sd.cpp's own lines.
pub fn load_error(info: &ExitInfo, files: &ModelFiles, program: &str, args: &[String]) -> Error {
    let notes = &info.notes;
    let role_path = |role: &str| -> Option<String> {
        let flag = crate::diffusion::layout::COMPONENT_FLAGS
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, f)| *f)?;
        files
            .components
            .iter()
            .find(|(f, _)| f == flag)
            .map(|(_, p)| p.display().to_string())
    };
    let mut summary = String::new();
    let mut component: Option<String> = None;
    let mut path: Option<String> = None;
    if let Some((name, p)) = notes.failed_components.first() {
        let role = role_of(name).unwrap_or("model").to_string();
        summary = format!(
            "stable-diffusion.cpp could not load the {role} component ({p}): the file is missing or is not a model file"
        );
        component = Some(role);
        path = Some(p.clone());
    } else if let Some(module) = notes.tensor_modules.first() {
        let role = role_of(module).unwrap_or("model").to_string();
        let p = role_path(&role);
        summary = if role == "vae" {
            format!(
                "the VAE{} does not match the diffusion model (its tensor shapes are wrong for this model). A Flux 1 VAE (ae.safetensors, 16 latent channels) does not work with Flux 2; use the Flux 2 VAE (flux2-vae.safetensors)",
                p.as_ref().map(|p| format!(" ({p})")).unwrap_or_default()
            )
        } else {
            format!(
                "the {role} component{} does not match the diffusion model: sd.cpp reported {} tensor problem(s)",
                p.as_ref().map(|p| format!(" ({p})")).unwrap_or_default(),
                notes.tensor_line_count
            )
        };
        component = Some(role);
        path = p;
    } else if notes.context_failed {
        summary = "stable-diffusion.cpp could not create a model context from these files (model family not recognised)".to_string();
    } else if info.code == Some(0) {
        summary = format!(
            "{program} exited right after starting, without serving (its port could not be bound)"
        );
    }
    let mut message = if summary.is_empty() {
        format!(
            "{program} exited with {} while loading the model",
            info.describe()
        )
    } else {
        format!("Failed to load model: {summary}")
    };
    let mut quoted = notes.lines.clone();
    for l in &info.stderr_tail {
        // Notes hold the message part of tagged lines; compare like with like.
        let text = match crate::diffusion::output_parser::parse_line(l) {
            Line::Log { message, .. } => message,
            _ => l.trim().to_string(),
        };
        if !quoted.contains(&text) && quoted.len() < 16 {
            quoted.push(text);
        }
    }
    if !quoted.is_empty() {
        message.push_str("\nstable-diffusion.cpp said:\n");
        message.push_str(
            &quoted
                .iter()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
        );
    }
    Error::server(
        message,
        json!({
            "code": "MODEL_LOAD_FAILED",
            "component": component,
            "path": path,
            "exitCode": info.exit_code(),
            "lines": quoted,
            "stderr": info.stderr_tail.join("\n"),
            "args": args,
        }),
    )
}

/// The error for a child that died during a job (`code`: the `details.code`).
fn crash_error(
    info: &ExitInfo,
    program: &str,
    files: &ModelFiles,
    args: &[String],
    code: &str,
) -> JobError {
    let mut message = format!(
        "stable-diffusion.cpp ({program}) exited with {} during generation",
        info.describe()
    );
    if !info.stderr_tail.is_empty() {
        message.push('\n');
        message.push_str(&info.stderr_tail.join("\n"));
    }
    let mul_mat = info
        .stderr_tail
        .iter()
        .any(|l| l.contains("ggml_can_mul_mat"));
    if let Some(w) = files.warnings.iter().find(|w| w.contains("text context")) {
        message.push_str(&format!("\nLikely cause: {w}"));
    } else if mul_mat && files.has_llm {
        message.push_str("\nLikely cause: the llm text encoder does not match the diffusion model (for example Qwen3-8B given to Flux 2 Klein 4B, which needs Qwen3-4B)");
    }
    JobError::coded(
        message,
        code,
        json!({
            "exitCode": info.exit_code(),
            "signal": info.signal.and_then(crate::diffusion::process::signal_name_of),
            "stderr": info.stderr_tail.join("\n"),
            "stdout": info.notes.lines.join("\n"),
            "args": args,
        }),
    )
}

pub enum Backend {
    Server(Arc<ServerBackend>),
    Cli(Box<CliBackend>),
}

impl Backend {
    pub async fn run(
        &self,
        job: &Claimed,
        on_progress: ProgressFn,
    ) -> std::result::Result<Vec<JobImage>, RunError> {
        match self {
            Backend::Server(s) => s.run(job, on_progress).await,
            Backend::Cli(c) => c.run(job, on_progress).await,
        }
    }

    pub async fn shutdown(&self) {
        match self {
            Backend::Server(s) => s.shutdown().await,
            Backend::Cli(c) => c.shutdown().await,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        match self {
            Backend::Server(s) => s.pid(),
            Backend::Cli(c) => lock(&c.current).as_ref().map(|p| p.pid()),
        }
    }

    /// `DiffusionBackendInfo`. sd-cli has no resident process: `busy` while one runs, else
    /// `absent`.
    pub fn info(&self) -> Value {
        match self {
            Backend::Server(s) => s.info(),
            Backend::Cli(c) => json!({
                "state": if lock(&c.current).is_some() { "busy" } else { "absent" },
            }),
        }
    }

    pub async fn release(&self, reason: &str) {
        if let Backend::Server(s) = self {
            s.release(reason).await;
        }
    }

    pub fn claim_release(&self, reason: &str) {
        if let Backend::Server(s) = self {
            s.claim_release(reason);
        }
    }

    /// The call-time part of a server `stop()` (see `Residency::claim_stop`).
    pub fn claim_stop(&self) {
        if let Backend::Server(s) = self {
            lock(&s.rep.res).claim_stop();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// sd-server

struct Live {
    proc: SdProcess,
    base: String,
    /// The command line, quoted in errors.
    args: Vec<String>,
    /// Set before we stop it on purpose, so its exit is not reported as a crash.
    expected: AtomicBool,
    /// The crash was reported (by the watcher or by the job that saw it first). A mutex, not a
    /// flag: the second caller must wait until the first has finished emitting.
    reported: Mutex<bool>,
}

/// `startupTimeout` (spawn to ready, per spawn) and `jobActivityTimeoutMs` (no activity during a
/// job; `None` = off).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub start: Duration,
    pub job_stall: Option<Duration>,
}

/// What an sd-server spawn is made of, besides the flags decided per image.
pub struct ServerSetup {
    pub binary: PathBuf,
    pub files: ModelFiles,
    pub threads: Option<u32>,
    pub batch_size: Option<u32>,
    /// Measured at `start()`; flags are decided from it per image.
    pub gpu: GpuMemory,
    /// The server config's own flag choices (`None` = auto).
    pub overrides: FlagOverrides,
}

/// The residency record and where its changes go; shared with the exit watcher task.
#[derive(Clone)]
struct Reporter {
    res: Arc<Mutex<Residency>>,
    hooks: Arc<dyn Hooks>,
}

impl Reporter {
    /// Changes the state and emits `backend-status`; with a reason it emits even when the state
    /// stays the same (genai-electron's rule).
    fn set_state(&self, state: BackendState, reason: Option<&str>, exit: Option<&ExitInfo>) {
        let previous = {
            let mut r = lock(&self.res);
            let p = r.state;
            if p == state && reason.is_none() {
                return;
            }
            r.state = state;
            p
        };
        self.hooks.backend_status(state, previous, reason, exit);
    }

    fn disarm_idle(&self) {
        if let Some(h) = lock(&self.res).idle.take() {
            h.abort();
        }
    }

    /// Reports an exit we did not ask for, once: `absent` with reason `crashed` and the exit.
    /// The job that sees the exit calls this before failing, so the event reaches JS first.
    fn report_exit(&self, live: &Live, info: &ExitInfo) {
        let mut reported = lock(&live.reported);
        if live.expected.load(Ordering::SeqCst) || *reported {
            return;
        }
        *reported = true;
        self.disarm_idle();
        lock(&self.res).clear();
        self.set_state(BackendState::Absent, Some("crashed"), Some(info));
        self.hooks.crashed(info);
        self.hooks.released("crashed");
    }
}

pub struct ServerBackend {
    setup: ServerSetup,
    start_timeout: Duration,
    stall_timeout: Option<Duration>,
    log: Arc<LogFile>,
    hooks: Arc<dyn Hooks>,
    rep: Reporter,
    /// The process; held across a spawn or a stop, so they never overlap.
    live: tokio::sync::Mutex<Option<Arc<Live>>>,
    /// Set while a spawn runs; a release aborts the spawn through it.
    start_abort: Mutex<Option<Arc<CancelFlag>>>,
    sink: SinkSlot,
    client: reqwest::Client,
    shutdown: Arc<CancelFlag>,
}

fn forced_ports() -> &'static Mutex<std::collections::VecDeque<u16>> {
    static PORTS: std::sync::OnceLock<Mutex<std::collections::VecDeque<u16>>> =
        std::sync::OnceLock::new();
    PORTS.get_or_init(Default::default)
}

/// Test hook: the next sd-server spawns use these ports, in order, instead of free ones. Lets a
/// test reproduce the port being taken between choosing it and sd-server binding it.
pub fn force_next_ports(ports: &[u16]) {
    lock(forced_ports()).extend(ports.iter().copied());
}

/// A free port on 127.0.0.1, chosen by the kernel. sd-server binds with SO_REUSEPORT and reports
/// success even when the bind fails, so it must never be given a port someone else holds.
pub fn free_loopback_port() -> Result<u16> {
    if let Some(p) = lock(forced_ports()).pop_front() {
        return Ok(p);
    }
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| {
        Error::server(
            format!("Cannot find a free loopback port for sd-server: {e}"),
            json!({}),
        )
    })?;
    Ok(l.local_addr().map(|a| a.port()).unwrap_or(0))
}

fn start_aborted() -> Error {
    Error::server(
        "Server start was aborted by stop()",
        json!({ "code": "SD_SERVER_START_ABORTED" }),
    )
}

impl ServerBackend {
    pub fn new(
        setup: ServerSetup,
        timeouts: Timeouts,
        log: Arc<LogFile>,
        hooks: Arc<dyn Hooks>,
        shutdown: Arc<CancelFlag>,
    ) -> Self {
        ServerBackend {
            setup,
            start_timeout: timeouts.start,
            stall_timeout: timeouts.job_stall,
            log,
            rep: Reporter {
                res: Arc::new(Mutex::new(Residency::default())),
                hooks: hooks.clone(),
            },
            hooks,
            live: tokio::sync::Mutex::new(None),
            start_abort: Mutex::new(None),
            sink: Arc::new(Mutex::new(None)),
            client: crate::http::loopback_client(),
            shutdown,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        lock(&self.rep.res).pid
    }

    pub fn state(&self) -> BackendState {
        lock(&self.rep.res).state
    }

    pub fn info(&self) -> Value {
        lock(&self.rep.res).to_json()
    }

    /// The flags for an image: its own overrides, then the config's, then the automatic rule.
    pub fn flags_for(&self, job: Option<FlagOverrides>) -> Flags {
        let (j, c) = (job.unwrap_or_default(), self.setup.overrides);
        let merged = FlagOverrides {
            clip_on_cpu: j.clip_on_cpu.or(c.clip_on_cpu),
            vae_on_cpu: j.vae_on_cpu.or(c.vae_on_cpu),
            offload_to_cpu: j.offload_to_cpu.or(c.offload_to_cpu),
            diffusion_fa: j.diffusion_fa.or(c.diffusion_fa),
        };
        flags::decide(
            self.setup.files.size,
            self.setup.files.has_llm,
            self.setup.gpu,
            merged,
        )
        .flags
    }

    pub fn disarm_idle(&self) {
        self.rep.disarm_idle();
    }

    /// A ready sd-server with these flags: the warm one, or a new one (the warm one is released
    /// with reason `flags-changed` first when its flags differ).
    async fn ensure(&self, flags: Flags) -> Result<Arc<Live>> {
        let mut guard = self.live.lock().await;
        if let Some(l) = guard.take() {
            if l.proc.is_alive() {
                if lock(&self.rep.res).flags == Some(flags) {
                    *guard = Some(l.clone());
                    return Ok(l);
                }
                self.stop_live(l, "flags-changed").await;
            }
        }
        if self.shutdown.is_cancelled() {
            return Err(start_aborted());
        }
        let abort = Arc::new(CancelFlag::default());
        *lock(&self.start_abort) = Some(abort.clone());
        self.rep
            .set_state(BackendState::Starting, Some("spawned"), None);
        let (t0, started_at) = (Instant::now(), now_iso());
        let r = self.spawn_ready(flags, &abort).await;
        *lock(&self.start_abort) = None;
        match r {
            Ok(live) => {
                {
                    let mut res = lock(&self.rep.res);
                    res.pid = Some(live.proc.pid());
                    res.started_at = Some(started_at);
                    res.load_time_ms = Some(t0.elapsed().as_millis() as u64);
                    res.last_used_at = None;
                    res.flags = Some(flags);
                    res.stop_reason = None;
                    res.first_stop = None;
                }
                *guard = Some(live.clone());
                self.rep.set_state(BackendState::Ready, Some("ready"), None);
                self.watch(live.clone());
                Ok(live)
            }
            Err(e) => {
                self.rep
                    .set_state(BackendState::Absent, Some("start-failed"), None);
                Err(e)
            }
        }
    }

    /// Stops `live` (the caller holds the process slot): `stopping` then `absent`, both with
    /// the highest-ranked reason asked for meanwhile.
    async fn stop_live(&self, live: Arc<Live>, reason: &str) {
        self.disarm_idle();
        live.expected.store(true, Ordering::SeqCst);
        let (first, reason) = {
            let mut r = lock(&self.rep.res);
            let s = stronger(r.stop_reason.as_deref(), reason);
            r.stop_reason = Some(s.clone());
            (r.first_stop.take().unwrap_or_else(|| reason.to_string()), s)
        };
        self.rep
            .set_state(BackendState::Stopping, Some(&first), None);
        let info = live.proc.terminate(KILL_GRACE).await;
        let reason = {
            let mut r = lock(&self.rep.res);
            r.clear();
            r.stop_reason.take().unwrap_or(reason)
        };
        self.hooks.log(
            LogLevel::Info,
            &format!("sd-server released ({reason}; {})", info.describe()),
        );
        self.rep
            .set_state(BackendState::Absent, Some(&reason), None);
        self.hooks.released(&reason);
    }

    /// `releaseBackend({ reason })`: aborts a spawn in progress, joins a stop in progress
    /// (raising its reason by rank), or stops the warm process. Nothing to do when absent.
    pub async fn release(&self, reason: &str) {
        self.disarm_idle();
        if let Some(a) = lock(&self.start_abort).as_ref() {
            a.cancel();
        }
        self.claim_release(reason);
        let mut guard = self.live.lock().await;
        match guard.take() {
            Some(live) if live.proc.is_alive() => self.stop_live(live, reason).await,
            _ => {
                // Nothing left to stop (it exited meanwhile): no claim may outlive this call.
                let mut r = lock(&self.rep.res);
                r.first_stop = None;
                r.stop_reason = None;
            }
        }
    }

    /// The synchronous part of `releaseBackend()`, run on the JS thread at call time so that
    /// overlapping releases are ordered as they were called.
    pub fn claim_release(&self, reason: &str) {
        lock(&self.rep.res).claim_release(reason);
    }

    async fn spawn_ready(&self, flags: Flags, abort: &CancelFlag) -> Result<Arc<Live>> {
        let mut attempt = 0;
        loop {
            if self.shutdown.is_cancelled() {
                // stop() has begun: spawning now would only start a process to kill.
                return Err(start_aborted());
            }
            attempt += 1;
            match self.spawn_once(flags, abort).await {
                Err(SpawnFailure::PortLost(e)) if attempt < SPAWN_ATTEMPTS => {
                    self.hooks
                        .log(LogLevel::Warn, &format!("{e}; retrying on another port"));
                }
                Err(SpawnFailure::PortLost(e)) | Err(SpawnFailure::Fatal(e)) => return Err(e),
                Ok(l) => return Ok(l),
            }
        }
    }

    async fn spawn_once(
        &self,
        flags: Flags,
        abort: &CancelFlag,
    ) -> std::result::Result<Arc<Live>, SpawnFailure> {
        let port = free_loopback_port().map_err(SpawnFailure::Fatal)?;
        let opts = ProcessOptions {
            threads: self.setup.threads,
            flags,
            batch_size: None,
        };
        let args = server_args(&self.setup.files, &opts, "127.0.0.1", port);
        self.hooks.log(
            LogLevel::Info,
            &format!(
                "Spawning sd-server: {} {}",
                self.setup.binary.display(),
                args.join(" ")
            ),
        );
        let listening = Arc::new(Notify::new());
        let handler = line_handler(
            "sd-server",
            self.log.clone(),
            self.sink.clone(),
            listening.clone(),
        );
        let proc =
            SdProcess::spawn(&self.setup.binary, &args, handler).map_err(SpawnFailure::Fatal)?;
        let live = Arc::new(Live {
            proc,
            base: format!("http://127.0.0.1:{port}"),
            args: std::iter::once(self.setup.binary.display().to_string())
                .chain(args.iter().cloned())
                .collect(),
            expected: AtomicBool::new(false),
            reported: Mutex::new(false),
        });
        // If this future is dropped before the process is handed over, nobody else knows it:
        // kill it rather than leave a model-holding sd-server running.
        let mut orphan_guard = KillOnDrop(Some(live.clone()));
        // Ready when sd-server answers as sd-server; woken early by its `listening on` line.
        let ready = wait_ready(
            live.proc.child(),
            self.start_timeout,
            Duration::from_millis(10),
            Duration::from_millis(250),
            Some(&listening),
            || async {
                if self.probe(&live.base).await {
                    Probe::Ready
                } else {
                    Probe::NotReady("no sd-server answer".into())
                }
            },
        );
        let stop_now = |live: &Arc<Live>| {
            live.expected.store(true, Ordering::SeqCst);
            let live = live.clone();
            async move { live.proc.terminate(KILL_GRACE).await }
        };
        tokio::select! {
            outcome = ready => match outcome {
                Readiness::Ready => {
                    orphan_guard.0 = None;
                    self.hooks.log(LogLevel::Info, &format!("sd-server ready (pid {}, {})", live.proc.pid(), live.base));
                    Ok(live)
                }
                Readiness::Exited(_) => {
                    let info = live.proc.wait().await;
                    let loaded_ok = !info.notes.context_failed && info.notes.failed_components.is_empty() && info.notes.tensor_modules.is_empty();
                    if info.code == Some(0) && loaded_ok {
                        // sd-server prints `listening on` before binding and exits 0 when the bind
                        // fails: the port was taken after we chose it. Not a model problem.
                        return Err(SpawnFailure::PortLost(Error::server(
                            format!("sd-server could not listen on 127.0.0.1:{port} (it exited with code 0 right after starting; the port was probably taken by another program)"),
                            json!({ "code": "PORT_UNAVAILABLE", "port": port, "args": args }),
                        )));
                    }
                    Err(SpawnFailure::Fatal(load_error(&info, &self.setup.files, "sd-server", &args)))
                }
                Readiness::TimedOut { .. } => {
                    let pid = live.proc.pid();
                    let info = stop_now(&live).await;
                    let ms = self.start_timeout.as_millis() as u64;
                    Err(SpawnFailure::Fatal(Error::server(
                        format!("sd-server did not become ready within {ms} ms"),
                        json!({
                            "code": "SD_SERVER_READY_TIMEOUT",
                            "pid": pid,
                            "port": port,
                            "host": "127.0.0.1",
                            "timeoutMs": ms,
                            "stderrTail": info.stderr_tail.join("\n"),
                            "stdoutTail": info.notes.lines.join("\n"),
                            "args": args,
                            "suggestion": "Increase DiffusionServerConfig.startupTimeout: large models on slow disks can take minutes to load.",
                        }),
                    )))
                }
            },
            _ = self.shutdown.cancelled() => {
                stop_now(&live).await;
                Err(SpawnFailure::Fatal(start_aborted()))
            }
            _ = abort.cancelled() => {
                stop_now(&live).await;
                Err(SpawnFailure::Fatal(Error::server(
                    "stable-diffusion.cpp backend released before it was ready",
                    json!({ "code": "BACKEND_RELEASED_DURING_START" }),
                )))
            }
        }
    }

    /// Reports an exit we did not ask for.
    fn watch(&self, live: Arc<Live>) {
        let rep = self.rep.clone();
        tokio::spawn(async move {
            let info = live.proc.wait().await;
            rep.report_exit(&live, &info);
        });
    }

    /// True when sd-server answers on `base`. Any answer is not enough: if the port was taken
    /// between choosing and binding it, the other program answers while sd-server exits 0, so
    /// the reply must be sd-server's own model list.
    async fn probe(&self, base: &str) -> bool {
        let Ok(r) = self
            .client
            .get(format!("{base}/v1/models"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
        else {
            return false;
        };
        r.status().is_success() && r.text().await.is_ok_and(|t| t.contains("sd-cpp-local"))
    }
}

impl ServerBackend {
    /// `preload`: spawn sd-server now with the config's flags (for `start()`).
    pub async fn preload(&self) -> Result<()> {
        self.ensure(self.flags_for(None)).await.map(|_| ())
    }

    /// Ends sd-server for `stop()`: aborts a spawn, releases with reason `stop`.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.release("stop").await;
    }

    /// Arms the idle release (`burst`): after `after` without a job, release with reason
    /// `idle-timeout`. Only a ready sd-server is armed; a job or a release disarms it.
    pub fn arm_idle(self: &Arc<Self>, after: Option<Duration>) {
        self.disarm_idle();
        let Some(after) = after else { return };
        if self.state() != BackendState::Ready {
            return;
        }
        let me = self.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(after).await;
            lock(&me.rep.res).idle = None;
            me.release("idle-timeout").await;
        });
        lock(&self.rep.res).idle = Some(task.abort_handle());
    }

    async fn run(
        &self,
        job: &Claimed,
        on_progress: ProgressFn,
    ) -> std::result::Result<Vec<JobImage>, RunError> {
        let flags = self.flags_for(job.request.flag_overrides);
        // Not raced against the job's cancel: a spawn abandoned half way would leave an
        // untracked sd-server behind. It is bounded by startupTimeout; stop() and
        // releaseBackend() abort it.
        let live = self
            .ensure(flags)
            .await
            .map_err(|e| RunError::Failed(JobError::from_error(&e)))?;
        if job.cancel.is_cancelled() {
            // Cancelled while sd-server was loading: it never got the job, keep it.
            return Err(RunError::Cancelled);
        }
        self.disarm_idle();
        self.rep.set_state(BackendState::Busy, Some("job"), None);
        let wake = Arc::new(Notify::new());
        *lock(&self.sink) = Some(JobSink::new(job.request.count, on_progress, wake.clone()));
        let mut stuck = None;
        let result = tokio::select! {
            r = self.run_on(&live, job, &wake) => r,
            idle = stalled(&self.sink, self.stall_timeout) => {
                stuck = Some(idle);
                Err(RunError::Cancelled)
            }
        };
        let sink = lock(&self.sink).take();
        if let Some(idle) = stuck {
            let (job_id, stage, tail) = sink
                .as_ref()
                .map(|s| {
                    (
                        s.backend_job.clone(),
                        s.tracker.current().stage.as_str(),
                        s.stderr.iter().cloned().collect::<Vec<_>>().join("\n"),
                    )
                })
                .unwrap_or_default();
            if let Some(id) = &job_id {
                // Best effort: sd-server may still be able to drop a job it has not begun.
                let _ = self
                    .client
                    .post(format!("{}/sdcpp/v1/jobs/{id}/cancel", live.base))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await;
            }
            let timeout = self.stall_timeout.unwrap_or_default();
            self.hooks.log(
                LogLevel::Error,
                &format!(
                    "Generation {} made no progress for {} ms: releasing sd-server",
                    job.id,
                    idle.as_millis()
                ),
            );
            self.release("stuck").await;
            return Err(RunError::Failed(stuck_error(
                job_id, idle, timeout, stage, &live.args, tail,
            )));
        }
        if matches!(result, Err(RunError::Cancelled)) {
            // sd-server cannot stop a running job: release it; the next image spawns anew.
            self.hooks.log(
                LogLevel::Info,
                &format!("Generation {} cancelled: releasing sd-server", job.id),
            );
            self.release("cancel").await;
            return Err(RunError::Cancelled);
        }
        if live.proc.is_alive() {
            lock(&self.rep.res).last_used_at = Some(now_iso());
            if self.state() == BackendState::Busy {
                self.rep.set_state(BackendState::Ready, Some("job"), None);
            }
        }
        let images = result?;
        let seeds = sink.map(|s| s.seeds).unwrap_or_default();
        // One image asked for, a batch of `batchSize` made: the first is the result.
        let keep = job.request.count as usize;
        Ok(images
            .into_iter()
            .take(keep)
            .enumerate()
            .map(|(i, mut img)| {
                img.seed = seeds.get(i).copied().unwrap_or(job.request.seed + i as i64);
                img
            })
            .collect())
    }

    /// The end of a job whose sd-server died: `SD_SERVER_EXITED`, after the crash was reported.
    fn exited(&self, live: &Live, info: &ExitInfo) -> RunError {
        self.rep.report_exit(live, info);
        RunError::Failed(crash_error(
            info,
            "sd-server",
            &self.setup.files,
            &live.args,
            "SD_SERVER_EXITED",
        ))
    }

    fn touch(&self) {
        if let Some(s) = lock(&self.sink).as_mut() {
            s.last_output = Instant::now();
        }
    }

    async fn run_on(
        &self,
        live: &Arc<Live>,
        job: &Claimed,
        wake: &Arc<Notify>,
    ) -> std::result::Result<Vec<JobImage>, RunError> {
        let body = server_job_body(&job.request, self.setup.batch_size);
        let submit = self
            .client
            .post(format!("{}/sdcpp/v1/img_gen", live.base))
            .header("content-type", "application/json")
            .timeout(POLL_TIMEOUT)
            .body(body.to_string())
            .send();
        let resp = tokio::select! {
            r = submit => r,
            _ = job.cancel.cancelled() => return Err(RunError::Cancelled),
            info = live.proc.wait() => return Err(self.exited(live, &info)),
        };
        let resp = resp.map_err(|e| {
            RunError::Failed(JobError::coded(
                format!("Failed to submit the job to sd-server: {e}"),
                if e.is_timeout() {
                    "BACKEND_REQUEST_TIMEOUT"
                } else {
                    "BACKEND_REQUEST_FAILED"
                },
                json!({}),
            ))
        })?;
        self.touch();
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            let code = match status.as_u16() {
                429 => "BACKEND_QUEUE_FULL",
                400 => "BACKEND_BAD_REQUEST",
                _ => "BACKEND_HTTP_ERROR",
            };
            return Err(RunError::Failed(JobError::coded(
                format!(
                    "sd-server refused the job (HTTP {}): {text}",
                    status.as_u16()
                ),
                code,
                json!({ "status": status.as_u16(), "body": text }),
            )));
        }
        let job_id = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_string))
            .ok_or_else(|| {
                RunError::Failed(JobError::coded(
                    format!("sd-server answered without a job id: {text}"),
                    "BACKEND_INVALID_RESPONSE",
                    json!({ "body": text }),
                ))
            })?;
        if let Some(s) = lock(&self.sink).as_mut() {
            s.backend_job = Some(job_id.clone());
        }
        let poll_url = format!("{}/sdcpp/v1/jobs/{job_id}", live.base);
        // After output says "done", sd-server still encodes the PNG before the job reads
        // `completed`: poll quickly for a while instead of waiting a whole idle interval.
        let mut delay = POLL_INTERVAL;
        let mut seen: (String, Value) = (String::new(), Value::Null);
        loop {
            delay = (delay * 2).min(POLL_INTERVAL);
            tokio::select! {
                _ = job.cancel.cancelled() => return Err(RunError::Cancelled),
                info = live.proc.wait() => return Err(self.exited(live, &info)),
                _ = wake.notified() => delay = Duration::from_millis(2),
                _ = tokio::time::sleep(delay) => {}
            }
            let poll = async {
                match self
                    .client
                    .get(&poll_url)
                    .timeout(POLL_TIMEOUT)
                    .send()
                    .await
                {
                    Ok(r) => json_of(r).await,
                    Err(_) => None,
                }
            };
            let v: Value = tokio::select! {
                v = poll => match v {
                    Some(v) => v,
                    // The process may be dying; the next turn sees its exit.
                    None => continue,
                },
                _ = job.cancel.cancelled() => return Err(RunError::Cancelled),
                info = live.proc.wait() => return Err(self.exited(live, &info)),
            };
            let status = v
                .get("status")
                .and_then(|s| s.as_str())
                .unwrap_or("")
                .to_string();
            // A change of status or queue position is activity for the watchdog; another
            // "generating" is not.
            let now = (
                status.clone(),
                v.get("queue_position").cloned().unwrap_or(Value::Null),
            );
            if now != seen {
                self.touch();
                seen = now;
            }
            match status.as_str() {
                "completed" => return self.decode_images(&v).map_err(RunError::Failed),
                "failed" => {
                    let msg = v
                        .pointer("/error/message")
                        .and_then(|m| m.as_str())
                        .unwrap_or("generation failed");
                    let (notes, stderr) = lock(&self.sink)
                        .as_ref()
                        .map(|s| {
                            (
                                s.notes.lines.clone(),
                                s.stderr.iter().cloned().collect::<Vec<_>>().join("\n"),
                            )
                        })
                        .unwrap_or_default();
                    let mut message =
                        format!("stable-diffusion.cpp failed to generate the image: {msg}");
                    if !notes.is_empty() {
                        message.push('\n');
                        message.push_str(&notes.join("\n"));
                    }
                    return Err(RunError::Failed(JobError::coded(
                        message,
                        "BACKEND_JOB_FAILED",
                        json!({
                            "jobId": job_id,
                            "backendError": v.get("error"),
                            "sdError": v.get("error"),
                            "lines": notes,
                            "args": live.args,
                            "stderr": stderr,
                            "stdout": "",
                        }),
                    )));
                }
                "cancelled" => return Err(RunError::Cancelled),
                _ => {}
            }
        }
    }

    fn decode_images(&self, v: &Value) -> std::result::Result<Vec<JobImage>, JobError> {
        use base64::Engine;
        let list = v
            .pointer("/result/images")
            .and_then(|i| i.as_array())
            .cloned()
            .unwrap_or_default();
        if list.is_empty() {
            return Err(JobError::coded(
                "Failed to read generated image: sd-server returned no images",
                "IMAGE_DECODE_FAILED",
                json!({}),
            ));
        }
        let mut out = Vec::new();
        for item in list {
            let b64 = item.get("b64_json").and_then(|b| b.as_str()).unwrap_or("");
            let png = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .ok()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    JobError::coded(
                        "Failed to read generated image: sd-server returned an empty or invalid base64 image",
                        "IMAGE_DECODE_FAILED",
                        json!({}),
                    )
                })?;
            out.push(image_from_png(png, 0)?);
        }
        Ok(out)
    }
}

/// Kills a just-spawned sd-server whose start was abandoned (see `spawn_once`).
struct KillOnDrop(Option<Arc<Live>>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(l) = self.0.take() {
            l.expected.store(true, Ordering::SeqCst);
            l.proc.kill_now();
        }
    }
}

enum SpawnFailure {
    PortLost(Error),
    Fatal(Error),
}

async fn json_of(resp: reqwest::Response) -> Option<Value> {
    let text = resp.text().await.ok()?;
    serde_json::from_str(&text).ok()
}

// ---------------------------------------------------------------------------------------------
// sd-cli

pub struct CliBackend {
    binary: PathBuf,
    files: ModelFiles,
    opts: ProcessOptions,
    temp_dir: PathBuf,
    stall_timeout: Option<Duration>,
    log: Arc<LogFile>,
    hooks: Arc<dyn Hooks>,
    current: Mutex<Option<Arc<SdProcess>>>,
    stopping: AtomicBool,
}

impl CliBackend {
    pub fn new(
        binary: PathBuf,
        files: ModelFiles,
        opts: ProcessOptions,
        temp_dir: PathBuf,
        stall_timeout: Option<Duration>,
        log: Arc<LogFile>,
        hooks: Arc<dyn Hooks>,
    ) -> Self {
        CliBackend {
            binary,
            files,
            opts,
            temp_dir,
            stall_timeout,
            log,
            hooks,
            current: Mutex::new(None),
            stopping: AtomicBool::new(false),
        }
    }

    async fn run(
        &self,
        job: &Claimed,
        on_progress: ProgressFn,
    ) -> std::result::Result<Vec<JobImage>, RunError> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(RunError::Cancelled);
        }
        let _ = std::fs::create_dir_all(&self.temp_dir);
        let output = self.temp_dir.join(format!("sd-output-{}.png", job.id));
        let args = cli_args(&self.files, &job.request, &self.opts, &output);
        self.hooks.log(
            LogLevel::Info,
            &format!(
                "Spawning sd-cli: {} {}",
                self.binary.display(),
                args.join(" ")
            ),
        );
        let sink: SinkSlot = Arc::new(Mutex::new(Some(JobSink::new(
            job.request.count,
            on_progress,
            Arc::new(Notify::new()),
        ))));
        let handler = line_handler(
            "sd-cli",
            self.log.clone(),
            sink.clone(),
            Arc::new(Notify::new()),
        );
        let proc = Arc::new(
            SdProcess::spawn(&self.binary, &args, handler)
                .map_err(|e| RunError::Failed(JobError::from_error(&e)))?,
        );
        *lock(&self.current) = Some(proc.clone());
        let outcome = tokio::select! {
            info = proc.wait() => Ok(info),
            _ = job.cancel.cancelled() => Err(RunError::Cancelled),
            idle = stalled(&sink, self.stall_timeout) => {
                let tail = lock(&sink).as_ref().map(|s| s.stderr.iter().cloned().collect::<Vec<_>>().join("\n")).unwrap_or_default();
                let stage = lock(&sink).as_ref().map(|s| s.tracker.current().stage.as_str()).unwrap_or("loading");
                Err(RunError::Failed(stuck_error(None, idle, self.stall_timeout.unwrap_or_default(), stage, &args, tail)))
            }
        };
        *lock(&self.current) = None;
        let info = match outcome {
            Ok(info) => info,
            Err(e) => {
                proc.terminate(KILL_GRACE).await;
                let _ = std::fs::remove_file(&output);
                if let RunError::Failed(f) = &e {
                    self.hooks.log(LogLevel::Error, &f.message);
                }
                return Err(e);
            }
        };
        let sink = lock(&sink).take();
        let (saved, seeds) = sink.map(|s| (s.saved, s.seeds)).unwrap_or_default();
        let good: Vec<&(u32, String, bool)> = saved.iter().filter(|(_, _, ok)| *ok).collect();
        let cleanup = || {
            for (_, p, _) in &saved {
                let _ = std::fs::remove_file(p);
            }
        };
        if info.code != Some(0) || good.is_empty() || good.len() < job.request.count as usize {
            cleanup();
            if info.notes.context_failed || !info.notes.failed_components.is_empty() {
                return Err(RunError::Failed(JobError::from_error(&load_error(
                    &info,
                    &self.files,
                    "sd-cli",
                    &args,
                ))));
            }
            let mut message = format!("stable-diffusion.cpp exited with {}", info.describe());
            if info.code == Some(0) {
                message = format!(
                    "stable-diffusion.cpp could not save the image ({} of {} saved)",
                    good.len(),
                    job.request.count
                );
            }
            if !info.stderr_tail.is_empty() {
                message.push('\n');
                message.push_str(&info.stderr_tail.join("\n"));
            }
            let mut err = crash_error(&info, "sd-cli", &self.files, &args, "BACKEND_JOB_FAILED");
            // sd-cli exits after every image, so a non-zero exit is a failed run, not a crash.
            if let Some(cause) = err
                .message
                .split_once("\nLikely cause: ")
                .map(|(_, c)| c.to_string())
            {
                message.push_str(&format!("\nLikely cause: {cause}"));
            }
            message.push_str(&format!("\nArgs: {}", args.join(" ")));
            err.message = message;
            return Err(RunError::Failed(err));
        }
        let mut images = Vec::new();
        for (i, (_, path, _)) in good.iter().enumerate() {
            let bytes = match tokio::fs::read(path).await {
                Ok(b) => b,
                Err(e) => {
                    cleanup();
                    return Err(RunError::Failed(JobError::new(
                        format!("Failed to read generated image {path}: {e}"),
                        "IO_ERROR",
                        json!({ "path": path }),
                    )));
                }
            };
            let seed = seeds.get(i).copied().unwrap_or(job.request.seed + i as i64);
            match image_from_png(bytes, seed) {
                Ok(img) => images.push(img),
                Err(e) => {
                    cleanup();
                    return Err(RunError::Failed(e));
                }
            }
        }
        cleanup();
        Ok(images)
    }

    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let p = lock(&self.current).take();
        if let Some(p) = p {
            p.terminate(KILL_GRACE).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_size_reads_ihdr() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&64u32.to_be_bytes());
        png.extend_from_slice(&32u32.to_be_bytes());
        assert_eq!(png_size(&png), Some((64, 32)));
        assert_eq!(png_size(b"GIF89a"), None);
    }

    #[test]
    fn wrong_vae_load_error_names_the_component() {
        let files = ModelFiles {
            model: None,
            components: vec![
                ("--diffusion-model".into(), PathBuf::from("/m/dit.gguf")),
                ("--llm".into(), PathBuf::from("/m/qwen.gguf")),
                ("--vae".into(), PathBuf::from("/m/ae.safetensors")),
            ],
            roles: vec![],
            sdxl_split: false,
            size: 1,
            has_llm: true,
            warnings: vec![],
        };
        let mut info = ExitInfo {
            code: Some(1),
            ..ExitInfo::default()
        };
        for l in [
            "[ERROR] model_manager.cpp:649  - VAE tensor 'first_stage_model.decoder.conv_in.weight' has wrong shape in model metadata: got [3, 3, 16, 512], expected [3, 3, 32, 512]",
            "[ERROR] stable-diffusion.cpp:1693 - model metadata validation failed",
        ] {
            info.notes.observe(&crate::diffusion::output_parser::parse_line(l));
            info.stderr_tail.push(l.to_string());
        }
        let e = load_error(&info, &files, "sd-server", &[]);
        let m = e.to_string();
        assert!(
            m.contains("the VAE (/m/ae.safetensors) does not match"),
            "{m}"
        );
        assert!(m.contains("Flux 2 VAE"), "{m}");
        assert!(m.contains("has wrong shape in model metadata"), "{m}");
        match e {
            Error::Server { details, .. } => {
                assert_eq!(details["component"], "vae");
                assert_eq!(details["exitCode"], 1);
            }
            _ => unreachable!(),
        }
    }
}
