//! sd.cpp children (sd-server, sd-cli) on the shared supervisor (`crate::supervisor`): each
//! output line is parsed in sd.cpp's format, and the failure notes gathered from the output travel
//! with the exit report. Process groups, reaping, the parent-death signal and the host-exit kill
//! are the supervisor's.

use crate::diffusion::output_parser::{parse_line, FailureNotes, Line};
use crate::error::{Error, Result};
use crate::supervisor::process::{self as sup, Child, Command};
use serde_json::json;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::supervisor::process::{kill_all_children, signal_name as signal_name_of, Stream};

/// How a child ended, with what its output said about the failure.
#[derive(Debug, Clone, Default)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// Last non-empty stderr lines (at most `STDERR_TAIL`).
    pub stderr_tail: Vec<String>,
    pub notes: FailureNotes,
}

impl ExitInfo {
    fn base(&self) -> sup::ExitInfo {
        sup::ExitInfo {
            code: self.code,
            signal: self.signal,
            stderr_tail: Vec::new(),
        }
    }

    /// `code 1`, `signal 6 (SIGABRT)`.
    pub fn describe(&self) -> String {
        self.base().describe()
    }

    /// The contract's `exitCode`: the code, or `128 + signal` as a shell reports it.
    pub fn exit_code(&self) -> Option<i32> {
        self.base().exit_code()
    }
}

pub const STDERR_TAIL: usize = 20;

/// Receives every output line: the stream, the raw text and its parse.
pub type LineHandler = Arc<dyn Fn(Stream, &str, &Line) + Send + Sync>;

pub struct SdProcess {
    child: Child,
    notes: Arc<Mutex<FailureNotes>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SdProcess {
    /// Spawns `binary args...`. Must be called from a tokio worker (see `Child::spawn`).
    pub fn spawn(binary: &Path, args: &[String], on_line: LineHandler) -> Result<Self> {
        let notes = Arc::new(Mutex::new(FailureNotes::default()));
        let n2 = notes.clone();
        let command = Command {
            stderr_tail: STDERR_TAIL,
            ..Command::new(binary, args.to_vec())
        };
        let child = Child::spawn(
            &command,
            Arc::new(move |stream, raw| {
                let line = parse_line(raw);
                lock(&n2).observe(&line);
                on_line(stream, raw, &line);
            }),
        )
        .map_err(|e| {
            Error::server(
                format!(
                    "Failed to spawn stable-diffusion.cpp ({}): {e}",
                    binary.display()
                ),
                json!({ "binary": binary.display().to_string(), "error": e.to_string(), "code": "BACKEND_ERROR" }),
            )
        })?;
        Ok(SdProcess { child, notes })
    }

    fn with_notes(&self, info: sup::ExitInfo) -> ExitInfo {
        ExitInfo {
            code: info.code,
            signal: info.signal,
            stderr_tail: info.stderr_tail,
            notes: lock(&self.notes).clone(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// The supervised child (for readiness waits).
    pub fn child(&self) -> &Child {
        &self.child
    }

    pub fn exited(&self) -> Option<ExitInfo> {
        self.child.exited().map(|i| self.with_notes(i))
    }

    pub fn is_alive(&self) -> bool {
        self.child.is_alive()
    }

    /// Resolves when the child has exited and been reaped.
    pub async fn wait(&self) -> ExitInfo {
        let info = self.child.wait().await;
        self.with_notes(info)
    }

    /// SIGKILL to the process group now, without waiting.
    pub fn kill_now(&self) {
        self.child.kill_now();
    }

    /// SIGTERM to the process group, SIGKILL after `grace`, then waits for the reap.
    pub async fn terminate(&self, grace: Duration) -> ExitInfo {
        let info = self.child.terminate(grace).await;
        self.with_notes(info)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[tokio::test]
    async fn lines_are_parsed_and_failure_notes_reach_the_exit_report() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let p = SdProcess::spawn(
            &PathBuf::from("/bin/sh"),
            &["-c".to_string(), "printf '[INFO ] a.cpp:1 - hello\\r  |==>  | 1/2 - 1.0it/s\\033[K\\n'; echo '[ERROR] x.cpp:2 - new_sd_ctx_t failed' >&2; exit 3".to_string()],
            Arc::new(move |st, raw, _| lock(&s2).push((st, raw.to_string()))),
        )
        .unwrap();
        let info = p.wait().await;
        assert_eq!(info.code, Some(3));
        assert_eq!(info.describe(), "code 3");
        assert_eq!(
            info.stderr_tail,
            vec!["[ERROR] x.cpp:2 - new_sd_ctx_t failed"]
        );
        assert!(info.notes.context_failed);
        assert!(lock(&seen).contains(&(Stream::Stdout, "  |==>  | 1/2 - 1.0it/s".to_string())));
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
