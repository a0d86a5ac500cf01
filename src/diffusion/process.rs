//! One supervised sd.cpp child (sd-server or sd-cli). It runs in its own process group so a stop
//! reaches everything it started; stdout and stderr are split into lines and handed to the owner;
//! the exit is awaited (so the child is always reaped, never a zombie) and published with the
//! stderr tail and the failure notes gathered from the output.
//!
//! On Linux the child also gets `PR_SET_PDEATHSIG`, so a host killed with SIGKILL does not leave
//! a model-holding sd-server behind; a normal exit is covered by `kill_all_children`.

use crate::diffusion::output_parser::{parse_line, FailureNotes, Line, LineSplitter};
use crate::error::{Error, Result};
use serde_json::json;
use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::{watch, Notify};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How a child ended.
#[derive(Debug, Clone, Default)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// Last non-empty stderr lines (at most `STDERR_TAIL`).
    pub stderr_tail: Vec<String>,
    pub notes: FailureNotes,
}

impl ExitInfo {
    /// `code 1`, `signal 6 (SIGABRT)`.
    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("code {c}"),
            (None, Some(s)) => format!("signal {s}{}", signal_name(s)),
            _ => "an unknown status".to_string(),
        }
    }

    /// The contract's `exitCode`: the code, or `128 + signal` as a shell reports it.
    pub fn exit_code(&self) -> Option<i32> {
        self.code.or(self.signal.map(|s| 128 + s))
    }
}

fn signal_name(s: i32) -> String {
    signal_name_of(s)
        .map(|n| format!(" ({n})"))
        .unwrap_or_default()
}

/// Node's name for a Linux signal number (`NodeJS.Signals`), as genai-electron reports exits.
pub fn signal_name_of(s: i32) -> Option<&'static str> {
    const NAMES: [&str; 15] = [
        "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE",
        "SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM",
    ];
    usize::try_from(s - 1)
        .ok()
        .and_then(|i| NAMES.get(i).copied())
}

pub const STDERR_TAIL: usize = 20;

/// Receives every output line: the stream, the raw text and its parse.
pub type LineHandler = Arc<dyn Fn(Stream, &str, &Line) + Send + Sync>;

pub struct SdProcess {
    pid: u32,
    exit: watch::Receiver<Option<ExitInfo>>,
    kill_request: Arc<Notify>,
}

fn live_groups() -> &'static Mutex<HashSet<i32>> {
    static LIVE: OnceLock<Mutex<HashSet<i32>>> = OnceLock::new();
    LIVE.get_or_init(|| Mutex::new(HashSet::new()))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// SIGKILLs every child this library started and that is still running. For the host's exit
/// path, where nothing can be awaited any more.
pub fn kill_all_children() {
    let groups: Vec<i32> = lock(live_groups()).iter().copied().collect();
    for g in groups {
        signal_group(g, Sig::Kill);
    }
}

#[derive(Clone, Copy)]
enum Sig {
    Term,
    Kill,
}

#[cfg(unix)]
fn signal_group(pgid: i32, sig: Sig) {
    let s = match sig {
        Sig::Term => libc::SIGTERM,
        Sig::Kill => libc::SIGKILL,
    };
    // SAFETY: kill(2) with a negative pid signals the process group; no memory is touched.
    unsafe {
        libc::kill(-pgid, s);
    }
}

#[cfg(not(unix))]
fn signal_group(_pgid: i32, _sig: Sig) {}

impl SdProcess {
    /// Spawns `binary args...` with piped stdout/stderr. Must be called from a tokio worker (the
    /// parent-death signal is tied to the spawning thread, and workers live as long as the runtime).
    pub fn spawn(binary: &Path, args: &[String], on_line: LineHandler) -> Result<Self> {
        let mut cmd = tokio::process::Command::new(binary);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false);
        #[cfg(unix)]
        {
            cmd.process_group(0);
            #[cfg(target_os = "linux")]
            // SAFETY: prctl is async-signal-safe and only changes this child's own settings.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().map_err(|e| {
            Error::server(
                format!(
                    "Failed to spawn stable-diffusion.cpp ({}): {e}",
                    binary.display()
                ),
                json!({ "binary": binary.display().to_string(), "error": e.to_string(), "code": "BACKEND_ERROR" }),
            )
        })?;
        let pid = child.id().ok_or_else(|| {
            Error::server(
                format!("Failed to spawn process: {}", binary.display()),
                json!({ "code": "BACKEND_ERROR" }),
            )
        })?;
        lock(live_groups()).insert(pid as i32);

        let tail: Arc<Mutex<VecDeque<String>>> = Arc::new(Mutex::new(VecDeque::new()));
        let notes: Arc<Mutex<FailureNotes>> = Arc::new(Mutex::new(FailureNotes::default()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(read_stream(
                out,
                Stream::Stdout,
                on_line.clone(),
                tail.clone(),
                notes.clone(),
            )));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(read_stream(
                err,
                Stream::Stderr,
                on_line.clone(),
                tail.clone(),
                notes.clone(),
            )));
        }
        let (tx, rx) = watch::channel(None);
        let kill_request = Arc::new(Notify::new());
        let kr = kill_request.clone();
        tokio::spawn(async move {
            let status = tokio::select! {
                s = child.wait() => s,
                _ = kr.notified() => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            // The readers end when the pipes close; a grandchild holding them open must not
            // delay the exit report forever.
            for r in readers {
                let _ = tokio::time::timeout(Duration::from_secs(2), r).await;
            }
            lock(live_groups()).remove(&(pid as i32));
            let (code, signal) = match &status {
                Ok(s) => (s.code(), exit_signal(s)),
                Err(_) => (None, None),
            };
            let info = ExitInfo {
                code,
                signal,
                stderr_tail: lock(&tail).iter().cloned().collect(),
                notes: lock(&notes).clone(),
            };
            let _ = tx.send(Some(info));
        });
        Ok(SdProcess {
            pid,
            exit: rx,
            kill_request,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn exited(&self) -> Option<ExitInfo> {
        self.exit.borrow().clone()
    }

    pub fn is_alive(&self) -> bool {
        self.exit.borrow().is_none()
    }

    /// Resolves when the child has exited and been reaped.
    pub async fn wait(&self) -> ExitInfo {
        let mut rx = self.exit.clone();
        loop {
            if let Some(info) = rx.borrow_and_update().clone() {
                return info;
            }
            if rx.changed().await.is_err() {
                return rx.borrow().clone().unwrap_or_default();
            }
        }
    }

    /// SIGKILL to the process group now, without waiting (for paths that cannot await, such as
    /// a dropped future). The exit task still reaps the child.
    pub fn kill_now(&self) {
        if self.is_alive() {
            #[cfg(unix)]
            signal_group(self.pid as i32, Sig::Kill);
            self.kill_request.notify_one();
        }
    }

    /// SIGTERM to the process group, SIGKILL after `grace`, then waits for the reap.
    pub async fn terminate(&self, grace: Duration) -> ExitInfo {
        if let Some(info) = self.exited() {
            return info;
        }
        #[cfg(unix)]
        signal_group(self.pid as i32, Sig::Term);
        #[cfg(not(unix))]
        self.kill_request.notify_one();
        match tokio::time::timeout(grace, self.wait()).await {
            Ok(info) => {
                // The leader is gone; anything it left in its group goes too.
                signal_group(self.pid as i32, Sig::Kill);
                info
            }
            Err(_) => {
                signal_group(self.pid as i32, Sig::Kill);
                self.kill_request.notify_one();
                self.wait().await
            }
        }
    }
}

#[cfg(unix)]
fn exit_signal(s: &std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    s.signal()
}

#[cfg(not(unix))]
fn exit_signal(_s: &std::process::ExitStatus) -> Option<i32> {
    None
}

async fn read_stream<R: tokio::io::AsyncRead + Unpin>(
    mut r: R,
    stream: Stream,
    on_line: LineHandler,
    tail: Arc<Mutex<VecDeque<String>>>,
    notes: Arc<Mutex<FailureNotes>>,
) {
    let mut splitter = LineSplitter::new();
    let mut buf = vec![0u8; 16 * 1024];
    let handle = |segs: Vec<String>| {
        for seg in &segs {
            let line = parse_line(seg);
            if stream == Stream::Stderr {
                let mut t = lock(&tail);
                t.push_back(seg.clone());
                if t.len() > STDERR_TAIL {
                    t.pop_front();
                }
            }
            lock(&notes).observe(&line);
            on_line(stream, seg, &line);
        }
    };
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => {
                handle(splitter.finish());
                break;
            }
            Ok(n) => handle(splitter.feed(&buf[..n])),
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn sh(script: &str) -> (PathBuf, Vec<String>) {
        (
            PathBuf::from("/bin/sh"),
            vec!["-c".to_string(), script.to_string()],
        )
    }
    use std::path::PathBuf;

    #[tokio::test]
    async fn lines_exit_code_and_stderr_tail() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let (bin, args) = sh("printf '[INFO ] a.cpp:1 - hello\\r  |==>  | 1/2 - 1.0it/s\\033[K\\n'; echo '[ERROR] x.cpp:2 - new_sd_ctx_t failed' >&2; exit 3");
        let p = SdProcess::spawn(
            &bin,
            &args,
            Arc::new(move |st, raw, _| lock(&s2).push((st, raw.to_string()))),
        )
        .unwrap();
        let info = p.wait().await;
        assert_eq!(info.code, Some(3));
        assert_eq!(
            info.stderr_tail,
            vec!["[ERROR] x.cpp:2 - new_sd_ctx_t failed"]
        );
        assert!(info.notes.context_failed);
        let seen = lock(&seen).clone();
        assert!(seen.contains(&(Stream::Stdout, "  |==>  | 1/2 - 1.0it/s".to_string())));
        assert!(!p.is_alive());
    }

    #[tokio::test]
    async fn terminate_kills_the_whole_group() {
        let (bin, args) = sh("sleep 30 & sleep 30; wait");
        let p = SdProcess::spawn(&bin, &args, Arc::new(|_, _, _| {})).unwrap();
        let pid = p.pid() as i32;
        let info = p.terminate(Duration::from_secs(5)).await;
        assert_eq!(info.signal, Some(libc::SIGTERM));
        // No live (non-zombie) process of the group is left; orphans are reaped by init later.
        assert_eq!(live_in_group(pid), 0);
    }

    /// Members of process group `pgid` that are not zombies, from /proc/<pid>/stat.
    fn live_in_group(pgid: i32) -> usize {
        let mut n = 0;
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // Fields after the parenthesised command: state ppid pgrp ...
            let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
                continue;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            if f.len() > 2 && f[2] == pgid.to_string() && f[0] != "Z" && f[0] != "X" {
                n += 1;
            }
        }
        n
    }

    #[tokio::test]
    async fn sigterm_ignoring_child_is_killed_after_grace() {
        let (bin, args) = sh("trap '' TERM; echo ready; while :; do sleep 0.05; done");
        let ready = Arc::new(Notify::new());
        let r2 = ready.clone();
        let p = SdProcess::spawn(&bin, &args, Arc::new(move |_, _, _| r2.notify_one())).unwrap();
        // The trap is set only once the shell has run its first command.
        ready.notified().await;
        let info = p.terminate(Duration::from_millis(200)).await;
        assert_eq!(info.signal, Some(libc::SIGKILL));
    }

    #[tokio::test]
    async fn missing_binary_is_a_spawn_error() {
        let e = SdProcess::spawn(
            Path::new("/nonexistent/sd-server"),
            &[],
            Arc::new(|_, _, _| {}),
        )
        .err()
        .unwrap();
        assert!(e
            .to_string()
            .contains("Failed to spawn stable-diffusion.cpp"));
    }
}
