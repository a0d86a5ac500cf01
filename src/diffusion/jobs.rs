//! The generation registry and queue. Every request, from HTTP or from `generateImage()`, becomes
//! one entry here and waits its turn; one worker runs them in order. A full queue answers "busy"
//! (HTTP 503) instead of the contract's immediate 503 whenever anything runs. Terminal entries are
//! kept for `IMAGE_RESULT_TTL_MS` so clients can poll them.

use crate::diffusion::config::ImageRequest;
use crate::diffusion::progress::Progress;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

pub const DEFAULT_RESULT_TTL_MS: u64 = 300_000;
pub const DEFAULT_CLEANUP_INTERVAL_MS: u64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Pending,
    InProgress,
    Complete,
    Error,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::InProgress => "in_progress",
            JobStatus::Complete => "complete",
            JobStatus::Error => "error",
            JobStatus::Cancelled => "cancelled",
        }
    }
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Complete | JobStatus::Error | JobStatus::Cancelled
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobImage {
    pub png: Vec<u8>,
    pub seed: i64,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobResult {
    pub images: Vec<JobImage>,
    pub time_taken_ms: u64,
}

/// A failed job: the message (without the `Server error: ` prefix), the HTTP `code` and details.
#[derive(Debug, Clone, PartialEq)]
pub struct JobError {
    pub message: String,
    pub code: String,
    pub details: Value,
}

impl JobError {
    pub fn new(message: impl Into<String>, code: &str, details: Value) -> Self {
        JobError {
            message: message.into(),
            code: code.to_string(),
            details,
        }
    }

    pub fn from_error(e: &crate::error::Error) -> Self {
        let (message, details) = match e {
            crate::error::Error::Server { message, details } => {
                (message.clone(), Value::Object(details.clone()))
            }
            other => (other.to_string(), json!({})),
        };
        let code = details
            .get("code")
            .and_then(|c| c.as_str())
            .map(|c| wire_code(c).to_string())
            .unwrap_or_else(|| code_from_message(&message).to_string());
        JobError {
            message,
            code,
            details,
        }
    }
}

impl JobError {
    /// An error whose `details.code` is `code` (genai-electron's internal code); the HTTP
    /// `error.code` is derived from it as genai-electron derives it.
    pub fn coded(message: impl Into<String>, code: &str, details: Value) -> Self {
        let mut details = details;
        if let Value::Object(m) = &mut details {
            m.insert("code".into(), json!(code));
        }
        JobError {
            message: message.into(),
            code: wire_code(code).to_string(),
            details,
        }
    }
}

/// genai-electron's `mapErrorCode` for a `details.code`: what an HTTP client sees.
pub fn wire_code(code: &str) -> &str {
    match code {
        "GENERATION_NOT_FOUND" => "NOT_FOUND",
        "IMAGE_DECODE_FAILED" => "IO_ERROR",
        "BACKEND_QUEUE_FULL" => "SERVER_BUSY",
        "SD_SERVER_START_ABORTED" => "GENERATION_CANCELLED",
        c if c.starts_with("BACKEND_") || c.starts_with("SD_SERVER_") => "BACKEND_ERROR",
        c => c,
    }
}

/// The contract's mapping from an error message to the HTTP `error.code`.
pub fn code_from_message(message: &str) -> &'static str {
    let m = message.to_lowercase();
    if m.contains("server is busy") {
        "SERVER_BUSY"
    } else if m.contains("not running") {
        "SERVER_NOT_RUNNING"
    } else if m.contains("failed to spawn") || m.contains("exited with code") {
        "BACKEND_ERROR"
    } else if m.contains("failed to read") {
        "IO_ERROR"
    } else {
        "UNKNOWN_ERROR"
    }
}

/// Set once to ask the running job to stop; awaitable.
#[derive(Debug, Default)]
pub struct CancelFlag {
    set: AtomicBool,
    notify: Notify,
}

impl CancelFlag {
    pub fn cancel(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
    pub fn is_cancelled(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }
    pub async fn cancelled(&self) {
        loop {
            let n = self.notify.notified();
            if self.is_cancelled() {
                return;
            }
            n.await;
        }
    }
}

#[derive(Debug)]
struct Entry {
    status: JobStatus,
    created_at: i64,
    updated_at: i64,
    touched: Instant,
    request: ImageRequest,
    progress: Option<Progress>,
    result: Option<Arc<JobResult>>,
    error: Option<JobError>,
    cancel: Arc<CancelFlag>,
}

/// What the worker gets for one job.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub request: ImageRequest,
    pub cancel: Arc<CancelFlag>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// Was pending or running and is now cancelled; `was_active` if the worker had it.
    Cancelled {
        was_active: bool,
    },
    AlreadyCancelled,
    /// Complete or error: cannot be cancelled.
    Terminal(JobStatus),
    NotFound,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done(Arc<JobResult>),
    Failed(JobError),
    Cancelled,
    /// Removed before it finished (TTL or registry dropped).
    Gone,
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Entry>,
    queue: VecDeque<String>,
    active: Option<String>,
    closed: bool,
}

pub struct Jobs {
    inner: Mutex<Inner>,
    max_queue: usize,
    work: Notify,
    changed: watch::Sender<u64>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `gen_<ms>_<9 base-36 chars>`, genai-electron's id form.
pub fn generate_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let tail: String = (0..9)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect();
    format!("gen_{}_{tail}", now_ms())
}

impl Jobs {
    pub fn new(max_queue: usize) -> Self {
        Jobs {
            inner: Mutex::new(Inner::default()),
            max_queue,
            work: Notify::new(),
            changed: watch::channel(0).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// Queues a request. `Err(waiting)` when the queue is full or the registry is closed.
    pub fn submit(&self, request: ImageRequest) -> Result<(String, i64), usize> {
        let mut g = self.lock();
        let waiting = g.queue.len();
        if g.closed || (waiting >= self.max_queue && g.active.is_some()) || waiting > self.max_queue
        {
            return Err(waiting);
        }
        let id = generate_id();
        let now = now_ms();
        g.map.insert(
            id.clone(),
            Entry {
                status: JobStatus::Pending,
                created_at: now,
                updated_at: now,
                touched: Instant::now(),
                request,
                progress: None,
                result: None,
                error: None,
                cancel: Arc::new(CancelFlag::default()),
            },
        );
        g.queue.push_back(id.clone());
        drop(g);
        self.work.notify_one();
        Ok((id, now))
    }

    /// Waits for the next pending job and marks it in progress. `None` once closed.
    pub async fn claim(&self) -> Option<Claimed> {
        loop {
            let notified = self.work.notified();
            {
                let mut g = self.lock();
                if g.closed {
                    return None;
                }
                while let Some(id) = g.queue.pop_front() {
                    if let Some(e) = g.map.get_mut(&id) {
                        if e.status != JobStatus::Pending {
                            continue;
                        }
                        e.status = JobStatus::InProgress;
                        e.updated_at = now_ms();
                        e.touched = Instant::now();
                        let c = Claimed {
                            id: id.clone(),
                            request: e.request.clone(),
                            cancel: e.cancel.clone(),
                        };
                        g.active = Some(id);
                        drop(g);
                        self.bump();
                        return Some(c);
                    }
                }
            }
            notified.await;
        }
    }

    pub fn set_progress(&self, id: &str, p: Progress) {
        let mut g = self.lock();
        if let Some(e) = g.map.get_mut(id) {
            if e.status == JobStatus::InProgress {
                e.progress = Some(p);
                e.updated_at = now_ms();
                e.touched = Instant::now();
            }
        }
    }

    /// Records the worker's result, unless the job was cancelled meanwhile (a cancel wins).
    pub fn finish(&self, id: &str, outcome: Result<JobResult, JobError>) {
        let mut g = self.lock();
        if g.active.as_deref() == Some(id) {
            g.active = None;
        }
        if let Some(e) = g.map.get_mut(id) {
            if e.status == JobStatus::InProgress {
                match outcome {
                    Ok(r) => {
                        e.status = JobStatus::Complete;
                        e.result = Some(Arc::new(r));
                    }
                    Err(err) => {
                        e.status = JobStatus::Error;
                        e.error = Some(err);
                    }
                }
                e.updated_at = now_ms();
                e.touched = Instant::now();
            }
        }
        drop(g);
        self.bump();
    }

    pub fn cancel(&self, id: &str) -> CancelOutcome {
        let mut g = self.lock();
        let active = g.active.as_deref() == Some(id);
        let outcome = match g.map.get_mut(id) {
            None => return CancelOutcome::NotFound,
            Some(e) => match e.status {
                JobStatus::Cancelled => return CancelOutcome::AlreadyCancelled,
                JobStatus::Complete | JobStatus::Error => return CancelOutcome::Terminal(e.status),
                JobStatus::Pending | JobStatus::InProgress => {
                    e.status = JobStatus::Cancelled;
                    e.updated_at = now_ms();
                    e.touched = Instant::now();
                    e.cancel.cancel();
                    CancelOutcome::Cancelled { was_active: active }
                }
            },
        };
        g.queue.retain(|q| q != id);
        if active {
            g.active = None;
        }
        drop(g);
        self.bump();
        outcome
    }

    /// Cancels everything and refuses new work (server stopping).
    pub fn close(&self) {
        let mut g = self.lock();
        g.closed = true;
        g.queue.clear();
        g.active = None;
        let now = now_ms();
        for e in g.map.values_mut() {
            if !e.status.is_terminal() {
                e.status = JobStatus::Cancelled;
                e.updated_at = now;
                e.cancel.cancel();
            }
        }
        drop(g);
        self.work.notify_waiters();
        self.bump();
    }

    pub fn active_id(&self) -> Option<String> {
        self.lock().active.clone()
    }

    pub fn is_busy(&self) -> bool {
        let g = self.lock();
        g.active.is_some() || !g.queue.is_empty()
    }

    pub fn status(&self, id: &str) -> Option<JobStatus> {
        self.lock().map.get(id).map(|e| e.status)
    }

    /// Resolves when the job reaches a terminal state.
    pub async fn wait(&self, id: &str) -> Outcome {
        let mut rx = self.changed.subscribe();
        loop {
            {
                let g = self.lock();
                match g.map.get(id) {
                    None => return Outcome::Gone,
                    Some(e) => match e.status {
                        JobStatus::Complete => {
                            return e.result.clone().map(Outcome::Done).unwrap_or(Outcome::Gone)
                        }
                        JobStatus::Error => {
                            return e
                                .error
                                .clone()
                                .map(Outcome::Failed)
                                .unwrap_or(Outcome::Gone)
                        }
                        JobStatus::Cancelled => return Outcome::Cancelled,
                        _ => {}
                    },
                }
            }
            if rx.changed().await.is_err() {
                return Outcome::Gone;
            }
        }
    }

    /// The HTTP view of one entry (contract 4.7).
    pub fn to_json(&self, id: &str) -> Option<Value> {
        use base64::Engine;
        let g = self.lock();
        let e = g.map.get(id)?;
        let mut v = json!({
            "id": id,
            "status": e.status.as_str(),
            "createdAt": e.created_at,
            "updatedAt": e.updated_at,
        });
        match e.status {
            JobStatus::InProgress => {
                if let Some(p) = &e.progress {
                    v["progress"] = p.to_json();
                }
            }
            JobStatus::Complete => {
                if let Some(r) = &e.result {
                    let images: Vec<Value> = r
                        .images
                        .iter()
                        .map(|i| {
                            json!({
                                "image": base64::engine::general_purpose::STANDARD.encode(&i.png),
                                "seed": i.seed,
                                "width": i.width,
                                "height": i.height,
                            })
                        })
                        .collect();
                    v["result"] =
                        json!({ "images": images, "format": "png", "timeTaken": r.time_taken_ms });
                }
            }
            JobStatus::Error => {
                if let Some(err) = &e.error {
                    v["error"] = json!({ "message": err.message, "code": err.code });
                }
            }
            _ => {}
        }
        Some(v)
    }

    /// Drops terminal entries untouched for longer than `ttl`. Returns how many went.
    pub fn cleanup(&self, ttl: Duration) -> usize {
        let mut g = self.lock();
        let before = g.map.len();
        g.map
            .retain(|_, e| !(e.status.is_terminal() && e.touched.elapsed() > ttl));
        let removed = before - g.map.len();
        drop(g);
        if removed > 0 {
            self.bump();
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> ImageRequest {
        ImageRequest::parse(&json!({"prompt": "a cat", "seed": 1})).unwrap()
    }

    #[tokio::test]
    async fn lifecycle_and_json() {
        let jobs = Jobs::new(4);
        let (id, created) = jobs.submit(req()).unwrap();
        assert!(id.starts_with("gen_") && id.len() == 4 + 13 + 1 + 9);
        assert_eq!(jobs.to_json(&id).unwrap()["status"], "pending");
        assert_eq!(jobs.to_json(&id).unwrap()["createdAt"], created);
        let c = jobs.claim().await.unwrap();
        assert_eq!(c.id, id);
        assert_eq!(jobs.active_id(), Some(id.clone()));
        let img = JobImage {
            png: vec![1, 2, 3],
            seed: 1,
            width: 64,
            height: 64,
        };
        jobs.finish(
            &id,
            Ok(JobResult {
                images: vec![img],
                time_taken_ms: 5,
            }),
        );
        let v = jobs.to_json(&id).unwrap();
        assert_eq!(v["status"], "complete");
        assert_eq!(v["result"]["images"][0]["image"], "AQID");
        assert_eq!(v["result"]["format"], "png");
        assert!(matches!(jobs.wait(&id).await, Outcome::Done(_)));
        assert_eq!(
            jobs.cancel(&id),
            CancelOutcome::Terminal(JobStatus::Complete)
        );
        assert_eq!(jobs.cancel("nope"), CancelOutcome::NotFound);
    }

    #[tokio::test]
    async fn queue_limit_and_cancel_pending() {
        let jobs = Jobs::new(1);
        let (a, _) = jobs.submit(req()).unwrap();
        let _claimed = jobs.claim().await.unwrap();
        let (b, _) = jobs.submit(req()).unwrap();
        assert_eq!(jobs.submit(req()).unwrap_err(), 1);
        assert_eq!(
            jobs.cancel(&b),
            CancelOutcome::Cancelled { was_active: false }
        );
        assert_eq!(jobs.cancel(&b), CancelOutcome::AlreadyCancelled);
        assert!(jobs.submit(req()).is_ok());
        // A cancel of the running job wins over its late result.
        assert_eq!(
            jobs.cancel(&a),
            CancelOutcome::Cancelled { was_active: true }
        );
        jobs.finish(&a, Err(JobError::new("boom", "BACKEND_ERROR", json!({}))));
        assert_eq!(jobs.status(&a), Some(JobStatus::Cancelled));
        assert_eq!(jobs.wait(&a).await, Outcome::Cancelled);
    }

    #[tokio::test]
    async fn zero_queue_means_busy_while_running() {
        let jobs = Jobs::new(0);
        jobs.submit(req()).unwrap();
        jobs.claim().await.unwrap();
        assert!(jobs.submit(req()).is_err());
    }

    #[tokio::test]
    async fn close_cancels_and_ends_claims() {
        let jobs = Arc::new(Jobs::new(4));
        let (id, _) = jobs.submit(req()).unwrap();
        jobs.close();
        assert_eq!(jobs.status(&id), Some(JobStatus::Cancelled));
        assert!(jobs.claim().await.is_none());
        assert!(jobs.submit(req()).is_err());
    }

    #[test]
    fn cleanup_removes_only_old_terminal_entries() {
        let jobs = Jobs::new(4);
        let (a, _) = jobs.submit(req()).unwrap();
        let (b, _) = jobs.submit(req()).unwrap();
        jobs.cancel(&a);
        assert_eq!(jobs.cleanup(Duration::from_secs(3600)), 0);
        assert_eq!(jobs.cleanup(Duration::ZERO), 1);
        assert!(jobs.to_json(&a).is_none());
        assert!(jobs.to_json(&b).is_some());
    }

    #[test]
    fn wire_codes_follow_genai_electron() {
        for (internal, wire) in [
            ("SD_SERVER_EXITED", "BACKEND_ERROR"),
            ("BACKEND_JOB_STUCK", "BACKEND_ERROR"),
            ("SD_SERVER_READY_TIMEOUT", "BACKEND_ERROR"),
            ("BACKEND_QUEUE_FULL", "SERVER_BUSY"),
            ("IMAGE_DECODE_FAILED", "IO_ERROR"),
            ("SD_SERVER_START_ABORTED", "GENERATION_CANCELLED"),
            ("GENERATION_NOT_FOUND", "NOT_FOUND"),
            ("MODEL_LOAD_FAILED", "MODEL_LOAD_FAILED"),
        ] {
            assert_eq!(wire_code(internal), wire, "{internal}");
        }
        let e = JobError::coded("x", "BACKEND_JOB_STUCK", json!({ "idleMs": 1 }));
        assert_eq!(
            (e.code.as_str(), &e.details["code"]),
            ("BACKEND_ERROR", &json!("BACKEND_JOB_STUCK"))
        );
    }

    #[test]
    fn error_codes_from_messages() {
        assert_eq!(
            code_from_message("stable-diffusion.cpp exited with code 1"),
            "BACKEND_ERROR"
        );
        assert_eq!(code_from_message("Server is busy"), "SERVER_BUSY");
        assert_eq!(
            code_from_message("Failed to read generated image"),
            "IO_ERROR"
        );
        assert_eq!(code_from_message("weird"), "UNKNOWN_ERROR");
    }
}
