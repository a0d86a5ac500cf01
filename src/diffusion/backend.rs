//! The two ways of running a job. `Server`: one sd-server per started model, on a private loopback
//! port, fed through its native async job API; the model stays loaded between images. `Cli`: one
//! sd-cli per request. Both parse the child's stdout for progress and failure lines; both turn a
//! dead or failing child into an error that quotes sd.cpp.

use crate::diffusion::args::{cli_args, server_args, server_job_body, ProcessOptions};
use crate::diffusion::jobs::{CancelFlag, Claimed, JobError, JobImage};
use crate::diffusion::layout::ModelFiles;
use crate::diffusion::logs::{LogFile, LogLevel};
use crate::diffusion::output_parser::{role_of, Event, FailureNotes, Level, Line};
use crate::diffusion::process::{ExitInfo, LineHandler, SdProcess, Stream};
use crate::diffusion::progress::{Progress, Tracker};
use crate::error::{Error, Result};
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
    /// sd-server died on its own (not stopped or cancelled by us).
    fn crashed(&self, info: &ExitInfo);
    /// A replacement sd-server is loading / is ready (after a crash or a cancel).
    fn respawning(&self);
    fn respawned(&self, pid: u32);
    /// The replacement could not be started (the server is unusable until one can be).
    fn respawn_failed(&self, error: &Error);
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
    /// When the child last printed anything during this job (the stall watchdog's clock).
    last_output: Instant,
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
        }
    }
}

/// Resolves once the job in `sink` has printed nothing for `timeout`. sd.cpp prints a line per
/// sampling step, so silence that long means it hangs (a deadlock, a stuck GPU driver), and
/// nothing else would ever end the job.
async fn stalled(sink: &SinkSlot, timeout: Duration) {
    loop {
        let last = lock(sink)
            .as_ref()
            .map(|s| s.last_output)
            .unwrap_or_else(Instant::now);
        let deadline = last + timeout;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline.into()).await;
    }
}

/// The error of a job ended by the stall watchdog.
fn stall_error(program: &str, timeout: Duration) -> JobError {
    JobError::new(
        format!(
            "stable-diffusion.cpp ({program}) made no progress for {} ms (no output and no result): the job was stopped and {program} was killed{}",
            timeout.as_millis(),
            if program == "sd-server" { " and restarted" } else { "" }
        ),
        "BACKEND_ERROR",
        json!({
            "reason": "STALLED",
            "jobStallTimeoutMs": timeout.as_millis() as u64,
            "suggestion": "If very slow steps are expected (large images on a CPU), raise jobStallTimeoutMs.",
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
        JobError::new(
            "Failed to read generated image: not a PNG",
            "IO_ERROR",
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

/// The error for a child that died during a job.
fn crash_error(info: &ExitInfo, program: &str, files: &ModelFiles, args: &[String]) -> JobError {
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
    JobError::new(
        message,
        "BACKEND_ERROR",
        json!({
            "exitCode": info.exit_code(),
            "signal": info.signal,
            "stderr": info.stderr_tail.join("\n"),
            "args": args,
        }),
    )
}

pub enum Backend {
    Server(ServerBackend),
    Cli(CliBackend),
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

    pub fn is_alive(&self) -> bool {
        match self {
            Backend::Server(s) => s.is_alive(),
            Backend::Cli(_) => true,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// sd-server

struct Live {
    proc: SdProcess,
    base: String,
    /// Set before we stop it on purpose, so its exit is not reported as a crash.
    expected: AtomicBool,
    /// The crash was reported (by the watcher or by the job that saw it first). A mutex, not a
    /// flag: the second caller must wait until the first has finished emitting.
    reported: Mutex<bool>,
}

impl Live {
    /// Reports an exit we did not ask for, once. The job that sees the exit calls this before
    /// failing, so `crashed` reaches JS before the job's error.
    fn report_exit(&self, hooks: &dyn Hooks, info: &ExitInfo) {
        let mut reported = lock(&self.reported);
        if !self.expected.load(Ordering::SeqCst) && !*reported {
            *reported = true;
            hooks.crashed(info);
        }
    }
}

/// `startTimeoutMs` (load and answer) and `jobStallTimeoutMs` (silence during a job).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub start: Duration,
    pub job_stall: Duration,
}

pub struct ServerBackend {
    binary: PathBuf,
    files: ModelFiles,
    opts: ProcessOptions,
    start_timeout: Duration,
    stall_timeout: Duration,
    log: Arc<LogFile>,
    hooks: Arc<dyn Hooks>,
    live: tokio::sync::Mutex<Option<Arc<Live>>>,
    /// The live child's pid, readable without awaiting.
    pid: Mutex<Option<(u32, Arc<Live>)>>,
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

impl ServerBackend {
    pub fn new(
        binary: PathBuf,
        files: ModelFiles,
        opts: ProcessOptions,
        timeouts: Timeouts,
        log: Arc<LogFile>,
        hooks: Arc<dyn Hooks>,
        shutdown: Arc<CancelFlag>,
    ) -> Self {
        ServerBackend {
            binary,
            files,
            opts,
            start_timeout: timeouts.start,
            stall_timeout: timeouts.job_stall,
            log,
            hooks,
            live: tokio::sync::Mutex::new(None),
            pid: Mutex::new(None),
            sink: Arc::new(Mutex::new(None)),
            client: crate::http::loopback_client(),
            shutdown,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        lock(&self.pid)
            .as_ref()
            .filter(|(_, l)| l.proc.is_alive())
            .map(|(p, _)| *p)
    }

    pub fn is_alive(&self) -> bool {
        self.pid().is_some()
    }

    /// Spawns sd-server and waits until it is alive and answers HTTP. Retries once on another
    /// port if it exits 0 right after printing `listening on` (the port was taken meanwhile).
    pub async fn start(&self) -> Result<u32> {
        let mut guard = self.live.lock().await;
        let live = self.spawn_ready().await?;
        let pid = live.proc.pid();
        *guard = Some(live);
        Ok(pid)
    }

    async fn spawn_ready(&self) -> Result<Arc<Live>> {
        let mut attempt = 0;
        loop {
            if self.shutdown.is_cancelled() {
                // stop() has begun: spawning now would only start a process to kill.
                return Err(Error::server(
                    "Server start was aborted by stop()",
                    json!({ "code": "START_ABORTED" }),
                ));
            }
            attempt += 1;
            match self.spawn_once().await {
                Err(SpawnFailure::PortLost(e)) if attempt < SPAWN_ATTEMPTS => {
                    self.hooks
                        .log(LogLevel::Warn, &format!("{e}; retrying on another port"));
                }
                Err(SpawnFailure::PortLost(e)) | Err(SpawnFailure::Fatal(e)) => return Err(e),
                Ok(l) => return Ok(l),
            }
        }
    }

    async fn spawn_once(&self) -> std::result::Result<Arc<Live>, SpawnFailure> {
        let port = free_loopback_port().map_err(SpawnFailure::Fatal)?;
        let args = server_args(&self.files, &self.opts, "127.0.0.1", port);
        self.hooks.log(
            LogLevel::Info,
            &format!(
                "Spawning sd-server: {} {}",
                self.binary.display(),
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
        let proc = SdProcess::spawn(&self.binary, &args, handler).map_err(SpawnFailure::Fatal)?;
        let base = format!("http://127.0.0.1:{port}");
        let live = Arc::new(Live {
            proc,
            base,
            expected: AtomicBool::new(false),
            reported: Mutex::new(false),
        });
        // If this future is dropped before the process is handed over, nobody else knows it:
        // kill it rather than leave a model-holding sd-server running.
        let mut orphan_guard = KillOnDrop(Some(live.clone()));
        let ready = async {
            let mut backoff = Duration::from_millis(10);
            loop {
                if self.probe(&live.base).await {
                    return;
                }
                tokio::select! {
                    _ = listening.notified() => {}
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_millis(250));
            }
        };
        tokio::select! {
            info = live.proc.wait() => {
                let loaded_ok = !info.notes.context_failed && info.notes.failed_components.is_empty() && info.notes.tensor_modules.is_empty();
                if info.code == Some(0) && loaded_ok {
                    // sd-server prints `listening on` before binding and exits 0 when the bind
                    // fails: the port was taken after we chose it. Not a model problem.
                    return Err(SpawnFailure::PortLost(Error::server(
                        format!("sd-server could not listen on 127.0.0.1:{port} (it exited with code 0 right after starting; the port was probably taken by another program)"),
                        json!({ "code": "PORT_UNAVAILABLE", "port": port, "args": args }),
                    )));
                }
                Err(SpawnFailure::Fatal(load_error(&info, &self.files, "sd-server", &args)))
            }
            _ = tokio::time::sleep(self.start_timeout) => {
                live.expected.store(true, Ordering::SeqCst);
                live.proc.terminate(KILL_GRACE).await;
                Err(SpawnFailure::Fatal(Error::server(
                    format!("sd-server did not become ready within {} ms", self.start_timeout.as_millis()),
                    json!({ "code": "START_TIMEOUT", "args": args, "suggestion": "Large models on slow disks can take minutes to load: raise startTimeoutMs." }),
                )))
            }
            _ = self.shutdown.cancelled() => {
                live.expected.store(true, Ordering::SeqCst);
                live.proc.terminate(KILL_GRACE).await;
                Err(SpawnFailure::Fatal(Error::server("Server start was aborted by stop()", json!({ "code": "START_ABORTED" }))))
            }
            _ = ready => {
                orphan_guard.0 = None;
                *lock(&self.pid) = Some((live.proc.pid(), live.clone()));
                self.watch(live.clone());
                self.hooks.log(LogLevel::Info, &format!("sd-server ready (pid {}, {})", live.proc.pid(), live.base));
                Ok(live)
            }
        }
    }

    /// Reports an exit we did not ask for.
    fn watch(&self, live: Arc<Live>) {
        let hooks = self.hooks.clone();
        tokio::spawn(async move {
            let info = live.proc.wait().await;
            live.report_exit(hooks.as_ref(), &info);
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

    /// The live server, respawning one if the last died (crash) or was killed (cancel).
    async fn ensure_live(&self) -> std::result::Result<Arc<Live>, JobError> {
        let mut guard = self.live.lock().await;
        if let Some(l) = guard.as_ref() {
            if l.proc.is_alive() {
                return Ok(l.clone());
            }
        }
        self.hooks.respawning();
        match self.spawn_ready().await {
            Ok(l) => {
                self.hooks.respawned(l.proc.pid());
                *guard = Some(l.clone());
                Ok(l)
            }
            Err(e) => {
                self.hooks.respawn_failed(&e);
                Err(JobError::from_error(&e))
            }
        }
    }

    async fn run(
        &self,
        job: &Claimed,
        on_progress: ProgressFn,
    ) -> std::result::Result<Vec<JobImage>, RunError> {
        // Not raced against the job's cancel: a respawn abandoned half way would leave an
        // untracked sd-server behind. It is bounded by startTimeoutMs, and stop() aborts it.
        let live = self.ensure_live().await.map_err(RunError::Failed)?;
        if job.cancel.is_cancelled() {
            // Cancelled while sd-server was loading: it never got the job, keep it.
            return Err(RunError::Cancelled);
        }
        let wake = Arc::new(Notify::new());
        *lock(&self.sink) = Some(JobSink::new(job.request.count, on_progress, wake.clone()));
        let mut stall = false;
        let result = tokio::select! {
            r = self.run_on(&live, job, &wake) => r,
            _ = stalled(&self.sink, self.stall_timeout) => {
                stall = true;
                Err(RunError::Failed(stall_error("sd-server", self.stall_timeout)))
            }
        };
        let sink = lock(&self.sink).take();
        if matches!(result, Err(RunError::Cancelled)) || stall {
            // sd-server cannot stop a running job: replace the process, keep the queue.
            live.expected.store(true, Ordering::SeqCst);
            live.proc.terminate(KILL_GRACE).await;
            self.hooks.log(
                if stall {
                    LogLevel::Error
                } else {
                    LogLevel::Info
                },
                &format!(
                    "Generation {} {}: restarting sd-server",
                    job.id,
                    if stall {
                        format!(
                            "stalled (no output for {} ms)",
                            self.stall_timeout.as_millis()
                        )
                    } else {
                        "cancelled".to_string()
                    }
                ),
            );
            // Reload now, so the next request does not pay for it (a failure is reported through
            // the hooks and retried by the next request).
            if !self.shutdown.is_cancelled() {
                let _ = self.ensure_live().await;
            }
        }
        let images = result?;
        let seeds = sink.map(|s| s.seeds).unwrap_or_default();
        Ok(images
            .into_iter()
            .enumerate()
            .map(|(i, mut img)| {
                img.seed = seeds.get(i).copied().unwrap_or(job.request.seed + i as i64);
                img
            })
            .collect())
    }

    async fn run_on(
        &self,
        live: &Arc<Live>,
        job: &Claimed,
        wake: &Arc<Notify>,
    ) -> std::result::Result<Vec<JobImage>, RunError> {
        let args_for_errors = || vec![self.binary.display().to_string()];
        let body = server_job_body(&job.request);
        let submit = self
            .client
            .post(format!("{}/sdcpp/v1/img_gen", live.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send();
        let resp = tokio::select! {
            r = submit => r,
            _ = job.cancel.cancelled() => return Err(RunError::Cancelled),
            info = live.proc.wait() => {
                live.report_exit(self.hooks.as_ref(), &info);
                return Err(RunError::Failed(crash_error(&info, "sd-server", &self.files, &args_for_errors())));
            }
        };
        let resp = resp.map_err(|e| {
            RunError::Failed(JobError::new(
                format!("Failed to submit the job to sd-server: {e}"),
                "BACKEND_ERROR",
                json!({}),
            ))
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(RunError::Failed(JobError::new(
                format!(
                    "sd-server refused the job (HTTP {}): {text}",
                    status.as_u16()
                ),
                "BACKEND_ERROR",
                json!({ "status": status.as_u16(), "body": text }),
            )));
        }
        let job_id = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_string))
            .ok_or_else(|| {
                RunError::Failed(JobError::new(
                    format!("sd-server answered without a job id: {text}"),
                    "BACKEND_ERROR",
                    json!({ "body": text }),
                ))
            })?;
        let poll_url = format!("{}/sdcpp/v1/jobs/{job_id}", live.base);
        // After output says "done", sd-server still encodes the PNG before the job reads
        // `completed`: poll quickly for a while instead of waiting a whole idle interval.
        let mut delay = POLL_INTERVAL;
        loop {
            delay = (delay * 2).min(POLL_INTERVAL);
            tokio::select! {
                _ = job.cancel.cancelled() => return Err(RunError::Cancelled),
                info = live.proc.wait() => {
                    live.report_exit(self.hooks.as_ref(), &info);
                    return Err(RunError::Failed(crash_error(&info, "sd-server", &self.files, &args_for_errors())));
                }
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
                info = live.proc.wait() => {
                    live.report_exit(self.hooks.as_ref(), &info);
                    return Err(RunError::Failed(crash_error(&info, "sd-server", &self.files, &args_for_errors())));
                }
            };
            match v.get("status").and_then(|s| s.as_str()).unwrap_or("") {
                "completed" => return self.decode_images(&v).map_err(RunError::Failed),
                "failed" => {
                    let msg = v
                        .pointer("/error/message")
                        .and_then(|m| m.as_str())
                        .unwrap_or("generation failed");
                    let notes = lock(&self.sink)
                        .as_ref()
                        .map(|s| s.notes.lines.clone())
                        .unwrap_or_default();
                    let mut message =
                        format!("stable-diffusion.cpp failed to generate the image: {msg}");
                    if !notes.is_empty() {
                        message.push('\n');
                        message.push_str(&notes.join("\n"));
                    }
                    return Err(RunError::Failed(JobError::new(
                        message,
                        "BACKEND_ERROR",
                        json!({ "sdError": v.get("error"), "lines": notes }),
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
            return Err(JobError::new(
                "Failed to read generated image: sd-server returned no images",
                "IO_ERROR",
                json!({}),
            ));
        }
        let mut out = Vec::new();
        for item in list {
            let b64 = item.get("b64_json").and_then(|b| b.as_str()).unwrap_or("");
            let png = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| {
                    JobError::new(
                        format!("Failed to read generated image: bad base64 from sd-server: {e}"),
                        "IO_ERROR",
                        json!({}),
                    )
                })?;
            out.push(image_from_png(png, 0)?);
        }
        Ok(out)
    }

    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        let live = self.live.lock().await.take();
        if let Some(l) = live {
            l.expected.store(true, Ordering::SeqCst);
            let info = l.proc.terminate(KILL_GRACE).await;
            self.hooks.log(
                LogLevel::Info,
                &format!("sd-server stopped ({})", info.describe()),
            );
        }
        *lock(&self.pid) = None;
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
    stall_timeout: Duration,
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
        stall_timeout: Duration,
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
            _ = stalled(&sink, self.stall_timeout) => Err(RunError::Failed(stall_error("sd-cli", self.stall_timeout))),
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
            let mut err = crash_error(&info, "sd-cli", &self.files, &args);
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
