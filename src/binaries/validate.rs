//! Does a build work on this machine? Phase 1 runs `--version` (llama-server) or `--help`
//! (sd-server) and wants exit 0. Phase 2, when a model is given, loads it: one 64x64 image with
//! one step through sd-server's async job API, or a four-token completion from llama-server. Both
//! watch the output for the lines a broken GPU backend prints (genai-electron 0.26's list), since
//! a Vulkan or CUDA build can start fine and then fail on the first real work.

use serde_json::{json, Value};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};

use super::pins::Kind;

const PHASE1_TIMEOUT: Duration = Duration::from_secs(10);
const TAIL_BYTES: usize = 2000;

/// Why a build was judged unusable, with the end of what it printed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub reason: String,
    pub tail: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.tail.trim().is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}; output ends with: {}", self.reason, self.tail.trim())
        }
    }
}

/// The label of the GPU error a line reports, if any (0.26's patterns: an optional
/// `ggml…:`/`cuda…:`-style prefix, then the phrase).
pub fn gpu_error(line: &str) -> Option<&'static str> {
    let mut l = line.trim();
    while l.starts_with('[') {
        match l.find(']') {
            Some(i) => l = l[i + 1..].trim_start(),
            None => break,
        }
    }
    let lower = l.to_ascii_lowercase();
    let bare = lower.as_str();
    let word_end = |s: &str, p: &str| {
        s.strip_prefix(p)
            .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
    };
    for (label, phrase) in [
        ("vkcreatedevice failed", "vkcreatedevice failed"),
        ("llama_model_load: error", "llama_model_load: error"),
        ("llama_model_load: error", "llama_model_load:  error"),
        ("failed to load model", "failed to load model"),
        ("error: invalid argument", "error: invalid argument"),
    ] {
        if word_end(bare, phrase) {
            return Some(label);
        }
    }
    // Strip one optional `<ggml|llama|cuda|vulkan|gpu>[\w.-]*( failed)?:` prefix.
    let mut candidates = vec![bare];
    if ["ggml", "llama", "cuda", "vulkan", "gpu"]
        .iter()
        .any(|p| bare.starts_with(p))
    {
        let end = bare
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
            .unwrap_or(bare.len());
        let rest = bare[end..].strip_prefix(" failed").unwrap_or(&bare[end..]);
        if let Some(r) = rest.strip_prefix(':') {
            candidates.push(r.trim_start());
        }
    }
    for s in candidates {
        for (label, phrase) in [
            ("cuda error", "cuda error"),
            ("cuda error", "cuda_error"),
            ("failed to allocate", "failed to allocate"),
            ("vulkan error", "vulkan error"),
            ("gpu error", "gpu error"),
            ("out of memory", "out of memory"),
        ] {
            if word_end(s, phrase) {
                return Some(label);
            }
        }
    }
    None
}

/// The child's output: a bounded tail and the first GPU error seen.
#[derive(Default)]
struct Output {
    tail: String,
    partial: String,
    gpu: Option<&'static str>,
}

impl Output {
    fn push(&mut self, chunk: &str) {
        self.tail.push_str(chunk);
        if self.tail.len() > TAIL_BYTES * 2 {
            let mut cut = self.tail.len() - TAIL_BYTES;
            while !self.tail.is_char_boundary(cut) {
                cut += 1;
            }
            self.tail.drain(..cut);
        }
        self.partial.push_str(chunk);
        while let Some(i) = self.partial.find(['\n', '\r']) {
            let line: String = self.partial.drain(..=i).collect();
            if self.gpu.is_none() {
                self.gpu = gpu_error(&line);
            }
        }
        if self.partial.len() > 64 * 1024 {
            self.partial.clear();
        }
    }

    fn tail(&self) -> String {
        let t = &self.tail;
        let mut start = t.len().saturating_sub(TAIL_BYTES);
        while !t.is_char_boundary(start) {
            start += 1;
        }
        t[start..].to_string()
    }
}

type Shared = Arc<Mutex<Output>>;

fn collect(r: impl AsyncRead + Unpin + Send + 'static, out: Shared) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut r = r;
        let mut buf = vec![0u8; 8192];
        while let Ok(n) = r.read(&mut buf).await {
            if n == 0 {
                break;
            }
            out.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(&String::from_utf8_lossy(&buf[..n]));
        }
    })
}

type Readers = Vec<tokio::task::JoinHandle<()>>;

/// Waits (briefly) until the readers have everything the exited program printed.
async fn drain(readers: &mut Readers) {
    for r in readers.drain(..) {
        let _ = tokio::time::timeout(Duration::from_secs(1), r).await;
    }
}

fn spawn(program: &Path, args: &[String], out: &Shared) -> Result<(Child, Readers), Failure> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // The user's own LLAMA_ARG_* settings would override the test's flags (as in the supervisor).
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LLAMA_ARG_") {
            cmd.env_remove(key);
        }
    }
    if let Some(dir) = program.parent() {
        // Release builds load their shared libraries from beside the program.
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(|e| Failure {
        reason: format!("cannot run {}: {e}", program.display()),
        tail: String::new(),
    })?;
    let mut readers = Vec::new();
    if let Some(s) = child.stdout.take() {
        readers.push(collect(s, out.clone()));
    }
    if let Some(s) = child.stderr.take() {
        readers.push(collect(s, out.clone()));
    }
    Ok((child, readers))
}

/// The child's exit. Besides the runtime's notification, the status is polled: inside Node the
/// host's own SIGCHLD handling can swallow the signal the notification relies on.
async fn exited(child: &mut Child) -> std::io::Result<std::process::ExitStatus> {
    loop {
        tokio::select! {
            s = child.wait() => return s,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if let Some(s) = child.try_wait()? {
                    return Ok(s);
                }
            }
        }
    }
}

/// Kills the child and waits (bounded) for its exit.
async fn end(child: &mut Child) {
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(5), exited(child)).await;
}

fn failure(out: &Shared, reason: String) -> Failure {
    let o = out.lock().unwrap_or_else(|e| e.into_inner());
    Failure {
        reason,
        tail: o.tail(),
    }
}

/// Phase 1: the program runs and answers `--version` / `--help` with exit 0.
pub async fn phase1(kind: Kind, program: &Path) -> Result<&'static str, Failure> {
    let flag = match kind {
        Kind::Llama => "--version",
        Kind::Diffusion => "--help",
    };
    let out: Shared = Arc::default();
    let (mut child, mut readers) = spawn(program, &[flag.to_string()], &out)?;
    match tokio::time::timeout(PHASE1_TIMEOUT, exited(&mut child)).await {
        Err(_) => {
            end(&mut child).await;
            Err(failure(
                &out,
                format!("{flag} did not finish within {}s", PHASE1_TIMEOUT.as_secs()),
            ))
        }
        Ok(Err(e)) => Err(failure(&out, format!("{flag} could not be awaited: {e}"))),
        Ok(Ok(status)) if status.success() => Ok(flag),
        Ok(Ok(status)) => {
            drain(&mut readers).await;
            Err(failure(&out, format!("{flag} failed ({status})")))
        }
    }
}

fn free_port() -> Result<u16, Failure> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Failure {
            reason: format!("no free loopback port: {e}"),
            tail: String::new(),
        })
}

/// Phase 2: the program loads `model_args` and does one small piece of real work.
pub async fn phase2(kind: Kind, program: &Path, model_args: &[String]) -> Result<(), Failure> {
    let port = free_port()?;
    let mut args = model_args.to_vec();
    let budget = match kind {
        Kind::Llama => {
            args.extend(
                [
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "-ngl",
                    "1",
                    "-c",
                    "512",
                ]
                .map(String::from),
            );
            Duration::from_secs(60)
        }
        Kind::Diffusion => {
            args.extend(
                [
                    "--listen-ip",
                    "127.0.0.1",
                    "--listen-port",
                    &port.to_string(),
                ]
                .map(String::from),
            );
            Duration::from_secs(180)
        }
    };
    let out: Shared = Arc::default();
    let (child, readers) = spawn(program, &args, &out)?;
    let mut run = Running {
        child,
        readers,
        out,
        deadline: Instant::now() + budget,
        client: crate::http::loopback_client(),
        base: format!("http://127.0.0.1:{port}"),
    };
    let result = match kind {
        Kind::Llama => run.llama_work().await,
        Kind::Diffusion => run.sd_work().await,
    };
    end(&mut run.child).await;
    let gpu = run.out.lock().unwrap_or_else(|e| e.into_inner()).gpu;
    match (result, gpu) {
        (_, Some(label)) => Err(failure(
            &run.out,
            format!("GPU error in the output: {label}"),
        )),
        (r, None) => r,
    }
}

/// The phase-2 server under test.
struct Running {
    child: Child,
    readers: Readers,
    out: Shared,
    deadline: Instant,
    client: reqwest::Client,
    base: String,
}

impl Running {
    /// Sleeps one poll interval unless the child exited, a GPU error was printed or time is up.
    async fn pause(&mut self, what: &str) -> Result<(), Failure> {
        if Instant::now() >= self.deadline {
            return Err(failure(
                &self.out,
                format!("{what} within the time allowed"),
            ));
        }
        // Read under the lock, then released: `failure` takes the lock again.
        let gpu = self.out.lock().unwrap_or_else(|e| e.into_inner()).gpu;
        if let Some(label) = gpu {
            return Err(failure(
                &self.out,
                format!("GPU error in the output: {label}"),
            ));
        }
        tokio::select! {
            s = exited(&mut self.child) => {
                drain(&mut self.readers).await;
                let status = s.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                Err(failure(&self.out, format!("the program exited ({status}) before {what}")))
            }
            _ = tokio::time::sleep(Duration::from_millis(150)) => Ok(()),
        }
    }

    async fn get_json(&self, path: &str) -> Option<(u16, Value)> {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        let status = r.status().as_u16();
        Some((status, body_json(r).await))
    }

    async fn post_json(&self, path: &str, body: Value) -> Result<(u16, Value), Failure> {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| failure(&self.out, format!("POST {path} failed: {e}")))?;
        let status = r.status().as_u16();
        Ok((status, body_json(r).await))
    }

    async fn sd_work(&mut self) -> Result<(), Failure> {
        while !matches!(
            self.get_json("/sdcpp/v1/capabilities").await,
            Some((200, _))
        ) {
            self.pause("sd-server answered").await?;
        }
        let body = json!({
            "prompt": "test", "width": 64, "height": 64, "seed": 42,
            "sample_params": { "sample_steps": 1 },
        });
        let (status, v) = self.post_json("/sdcpp/v1/img_gen", body).await?;
        let Some(id) = v.get("id").and_then(Value::as_str).map(str::to_string) else {
            return Err(failure(
                &self.out,
                format!("sd-server refused the test image ({status}: {v})"),
            ));
        };
        loop {
            if let Some((_, job)) = self.get_json(&format!("/sdcpp/v1/jobs/{id}")).await {
                match job.get("status").and_then(Value::as_str) {
                    Some("completed") => return Ok(()),
                    Some(s @ ("failed" | "cancelled")) => {
                        let why = job
                            .pointer("/error/message")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        return Err(failure(&self.out, format!("the test image {s}: {why}")));
                    }
                    _ => {}
                }
            }
            self.pause("the 64x64 test image was done").await?;
        }
    }

    async fn llama_work(&mut self) -> Result<(), Failure> {
        loop {
            if let Some((200, v)) = self.get_json("/health").await {
                if v.get("status").and_then(Value::as_str) == Some("ok") {
                    break;
                }
            }
            self.pause("llama-server was healthy").await?;
        }
        let (status, body) = self
            .post_json("/completion", json!({ "prompt": "2+2=", "n_predict": 4 }))
            .await?;
        if !(200..300).contains(&status) && !model_output_refused(&body) {
            return Err(failure(
                &self.out,
                format!("the test completion answered {status}"),
            ));
        }
        Ok(())
    }
}

/// Recent llama-server builds answer 500 "The model produced output that does not match the
/// expected ... format" when the tokens a model generated do not parse (random or tiny models do
/// this). The build loaded the model and computed on it, which is what the test is for; GPU
/// failures are caught from the output lines and the process's exit, not from this answer.
fn model_output_refused(body: &Value) -> bool {
    body.pointer("/error/message")
        .and_then(Value::as_str)
        .is_some_and(|m| m.contains("model produced output"))
}

async fn body_json(r: reqwest::Response) -> Value {
    r.bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_whose_output_did_not_parse_still_shows_a_working_build() {
        let refused = json!({"error": {"code": 500, "message": "The model produced output that does not match the expected Content-only format", "type": "server_error"}});
        assert!(model_output_refused(&refused));
        for other in [
            json!({"error": {"code": 500, "message": "failed to allocate compute buffer"}}),
            json!({"error": "model produced output"}),
            Value::Null,
        ] {
            assert!(!model_output_refused(&other), "{other}");
        }
    }

    #[test]
    fn gpu_error_lines() {
        for (line, want) in [
            ("ggml_cuda_init: CUDA error: no device", Some("cuda error")),
            ("[ERROR] cuda error 2 at x", Some("cuda error")),
            (
                "ggml_vulkan: failed to allocate buffer",
                Some("failed to allocate"),
            ),
            ("vkCreateDevice failed (-3)", Some("vkcreatedevice failed")),
            (
                "llama_model_load: error loading model",
                Some("llama_model_load: error"),
            ),
            ("ggml-vulkan failed: out of memory", Some("out of memory")),
            (
                "error: invalid argument: --foo",
                Some("error: invalid argument"),
            ),
            ("loading model took 2s", None),
            ("something: cuda error", None),
            ("cuda errors are rare", None),
        ] {
            assert_eq!(gpu_error(line), want, "{line}");
        }
    }

    #[test]
    fn output_tail_is_bounded_and_scanned_across_chunks() {
        let mut o = Output::default();
        o.push("ok line\nggml_cuda_init: CUDA er");
        assert_eq!(o.gpu, None);
        o.push("ror: boom\n");
        assert_eq!(o.gpu, Some("cuda error"));
        o.push(&"x".repeat(10_000));
        assert_eq!(o.tail().len(), TAIL_BYTES);
    }
}
