//! One supervised child. It runs in its own process group so a stop reaches everything it
//! started; stdout and stderr are split into lines and handed to the owner; the exit is awaited
//! (so the child is always reaped, never a zombie) and published with the stderr tail.
//!
//! On Linux the child also gets `PR_SET_PDEATHSIG`, so a host killed with SIGKILL does not leave
//! a model-holding server behind; a normal host exit is covered by `kill_all_children`.

use super::lines::LineSplitter;
use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
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
}

impl ExitInfo {
    /// `code 1`, `signal 11 (SIGSEGV)`.
    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("code {c}"),
            (None, Some(s)) => match signal_name(s) {
                Some(n) => format!("signal {s} ({n})"),
                None => format!("signal {s}"),
            },
            _ => "an unknown status".to_string(),
        }
    }

    /// The code, or `128 + signal` as a shell reports it.
    pub fn exit_code(&self) -> Option<i32> {
        self.code.or(self.signal.map(|s| 128 + s))
    }

    /// Node's name for the signal (`SIGSEGV`), as `child_process` reports it.
    pub fn signal_name(&self) -> Option<String> {
        self.signal.map(|s| {
            signal_name(s)
                .map(str::to_string)
                .unwrap_or(format!("SIG{s}"))
        })
    }
}

/// Node's name for a Linux signal number (`NodeJS.Signals`), as genai-electron reports exits.
pub fn signal_name(s: i32) -> Option<&'static str> {
    const NAMES: [&str; 15] = [
        "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE",
        "SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM",
    ];
    usize::try_from(s - 1)
        .ok()
        .and_then(|i| NAMES.get(i).copied())
}

/// Stderr lines kept for the exit report unless the command says otherwise.
pub const STDERR_TAIL: usize = 40;

/// Receives every output line with its stream.
pub type LineHandler = Arc<dyn Fn(Stream, &str) + Send + Sync>;

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct Command {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Environment variables whose names start with one of these are not passed on (a server's
    /// own `LLAMA_ARG_*` settings must not silently override the configuration).
    pub env_remove_prefixes: Vec<String>,
    /// How many stderr lines the exit report keeps (0: `STDERR_TAIL`).
    pub stderr_tail: usize,
}

impl Command {
    pub fn new(program: impl Into<PathBuf>, args: Vec<String>) -> Self {
        Command {
            program: program.into(),
            args,
            ..Default::default()
        }
    }
}

/// One signal of a stop plan and how long to wait for the exit after it.
#[derive(Debug, Clone, Copy)]
pub struct StopStep {
    pub signal: Sig,
    pub wait: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    Term,
    Int,
    Kill,
}

pub struct Child {
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

/// SIGKILLs every child this library started that is still running. For the host's exit path,
/// where nothing can be awaited any more.
pub fn kill_all_children() {
    let groups: Vec<i32> = lock(live_groups()).iter().copied().collect();
    for g in groups {
        signal_group(g, Sig::Kill);
    }
}

#[cfg(unix)]
fn signal_group(pgid: i32, sig: Sig) {
    let s = match sig {
        Sig::Term => libc::SIGTERM,
        Sig::Int => libc::SIGINT,
        Sig::Kill => libc::SIGKILL,
    };
    // SAFETY: kill(2) with a negative pid signals the process group; no memory is touched.
    unsafe {
        libc::kill(-pgid, s);
    }
}

#[cfg(not(unix))]
fn signal_group(_pgid: i32, _sig: Sig) {}

impl Child {
    /// Spawns the command with piped stdout/stderr. Must be called from a tokio worker (the
    /// parent-death signal is tied to the spawning thread, and workers live as long as the
    /// runtime).
    pub fn spawn(command: &Command, on_line: LineHandler) -> std::io::Result<Self> {
        let mut cmd = tokio::process::Command::new(&command.program);
        cmd.args(&command.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false);
        if !command.env_remove_prefixes.is_empty() {
            for (k, _) in std::env::vars_os() {
                let name = k.to_string_lossy();
                if command
                    .env_remove_prefixes
                    .iter()
                    .any(|p| name.starts_with(p.as_str()))
                {
                    cmd.env_remove(&k);
                }
            }
        }
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
        let mut child = cmd.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| std::io::Error::other("the child exited before its pid was read"))?;
        lock(live_groups()).insert(pid as i32);

        let tail: Arc<Mutex<VecDeque<String>>> = Arc::new(Mutex::new(VecDeque::new()));
        let keep = if command.stderr_tail == 0 {
            STDERR_TAIL
        } else {
            command.stderr_tail
        };
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(read_stream(
                out,
                Stream::Stdout,
                on_line.clone(),
                (tail.clone(), keep),
            )));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(read_stream(
                err,
                Stream::Stderr,
                on_line.clone(),
                (tail.clone(), keep),
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
            };
            let _ = tx.send(Some(info));
        });
        Ok(Child {
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
            signal_group(self.pid as i32, Sig::Kill);
            self.kill_request.notify_one();
        }
    }

    /// Sends each step's signal to the process group and waits up to its `wait` for the exit;
    /// SIGKILL when the plan runs out. Anything the leader left in its group is killed too.
    pub async fn stop(&self, plan: &[StopStep]) -> ExitInfo {
        for step in plan {
            if let Some(info) = self.exited() {
                signal_group(self.pid as i32, Sig::Kill);
                return info;
            }
            #[cfg(unix)]
            signal_group(self.pid as i32, step.signal);
            #[cfg(not(unix))]
            if step.signal == Sig::Kill {
                self.kill_request.notify_one();
            }
            if let Ok(info) = tokio::time::timeout(step.wait, self.wait()).await {
                signal_group(self.pid as i32, Sig::Kill);
                return info;
            }
        }
        signal_group(self.pid as i32, Sig::Kill);
        self.kill_request.notify_one();
        self.wait().await
    }

    /// SIGTERM to the process group, SIGKILL after `grace`, then waits for the reap.
    pub async fn terminate(&self, grace: Duration) -> ExitInfo {
        self.stop(&[StopStep {
            signal: Sig::Term,
            wait: grace,
        }])
        .await
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
    (tail, keep): (Arc<Mutex<VecDeque<String>>>, usize),
) {
    let mut splitter = LineSplitter::new();
    let mut buf = vec![0u8; 16 * 1024];
    let handle = |segs: Vec<String>| {
        for seg in &segs {
            if stream == Stream::Stderr {
                let mut t = lock(&tail);
                t.push_back(seg.clone());
                if t.len() > keep {
                    t.pop_front();
                }
            }
            on_line(stream, seg);
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

/// Whether `path` names a file that can be run (exists, and on Unix has an execute bit).
pub fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if !meta.is_file() {
        return false;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    true
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        Command::new("/bin/sh", vec!["-c".to_string(), script.to_string()])
    }

    #[tokio::test]
    async fn stderr_tail_keeps_the_last_lines() {
        let mut cmd = sh("for i in 1 2 3 4 5; do echo line$i >&2; done");
        cmd.stderr_tail = 2;
        let info = Child::spawn(&cmd, Arc::new(|_, _| {}))
            .unwrap()
            .wait()
            .await;
        assert_eq!(info.stderr_tail, vec!["line4", "line5"]);
    }

    #[tokio::test]
    async fn lines_exit_code_and_stderr_tail() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let p = Child::spawn(
            &sh("printf 'hello\\r world\\n'; echo 'E failed' >&2; exit 3"),
            Arc::new(move |st, raw| lock(&s2).push((st, raw.to_string()))),
        )
        .unwrap();
        let info = p.wait().await;
        assert_eq!(info.code, Some(3));
        assert_eq!(info.describe(), "code 3");
        assert_eq!(info.stderr_tail, vec!["E failed"]);
        let seen = lock(&seen).clone();
        assert!(seen.contains(&(Stream::Stdout, " world".to_string())));
        assert!(seen.contains(&(Stream::Stderr, "E failed".to_string())));
        assert!(!p.is_alive());
    }

    #[tokio::test]
    async fn signal_death_is_reported_with_its_name() {
        let p = Child::spawn(&sh("kill -SEGV $$"), Arc::new(|_, _| {})).unwrap();
        let info = p.wait().await;
        assert_eq!(info.code, None);
        assert_eq!(info.signal, Some(libc::SIGSEGV));
        assert_eq!(info.signal_name().as_deref(), Some("SIGSEGV"));
        assert_eq!(info.describe(), "signal 11 (SIGSEGV)");
        assert_eq!(info.exit_code(), Some(139));
    }

    #[tokio::test]
    async fn env_prefixes_are_removed() {
        std::env::set_var("SUPERVISOR_TEST_DROP_ME", "1");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let mut cmd = sh("echo \"[${SUPERVISOR_TEST_DROP_ME:-gone}]\"");
        cmd.env_remove_prefixes = vec!["SUPERVISOR_TEST_DROP".to_string()];
        let p = Child::spawn(&cmd, Arc::new(move |_, l| lock(&s2).push(l.to_string()))).unwrap();
        p.wait().await;
        assert_eq!(lock(&seen).clone(), vec!["[gone]"]);
    }

    #[tokio::test]
    async fn terminate_kills_the_whole_group() {
        let p = Child::spawn(&sh("sleep 30 & sleep 30; wait"), Arc::new(|_, _| {})).unwrap();
        let pid = p.pid() as i32;
        let info = p.terminate(Duration::from_secs(5)).await;
        assert_eq!(info.signal, Some(libc::SIGTERM));
        assert_eq!(live_in_group(pid), 0);
    }

    /// Members of process group `pgid` that are not zombies, from /proc/<pid>/stat.
    fn live_in_group(pgid: i32) -> usize {
        let mut n = 0;
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
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

    /// A child that holds the first SIGTERM (as llama-server does during a stream) exits on the
    /// plan's second signal, without waiting for the first step's whole grace.
    #[tokio::test]
    async fn stop_plan_sends_each_signal_in_turn() {
        let ready = Arc::new(Notify::new());
        let r2 = ready.clone();
        let p = Child::spawn(
            &sh("n=0; trap 'n=$((n+1)); [ $n -ge 2 ] && exit 7' TERM; echo ready; while :; do sleep 0.05; done"),
            Arc::new(move |_, _| r2.notify_one()),
        )
        .unwrap();
        ready.notified().await;
        let t0 = std::time::Instant::now();
        let info = p
            .stop(&[
                StopStep {
                    signal: Sig::Term,
                    wait: Duration::from_millis(300),
                },
                StopStep {
                    signal: Sig::Term,
                    wait: Duration::from_secs(5),
                },
            ])
            .await;
        assert_eq!(info.code, Some(7));
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    }

    #[tokio::test]
    async fn sigterm_ignoring_child_is_killed_after_grace() {
        let ready = Arc::new(Notify::new());
        let r2 = ready.clone();
        let p = Child::spawn(
            &sh("trap '' TERM; echo ready; while :; do sleep 0.05; done"),
            Arc::new(move |_, _| r2.notify_one()),
        )
        .unwrap();
        ready.notified().await;
        let info = p.terminate(Duration::from_millis(200)).await;
        assert_eq!(info.signal, Some(libc::SIGKILL));
    }

    #[tokio::test]
    async fn missing_binary_is_a_spawn_error() {
        let cmd = Command {
            program: PathBuf::from("/nonexistent/server"),
            ..Default::default()
        };
        assert!(Child::spawn(&cmd, Arc::new(|_, _| {})).is_err());
        assert!(!is_executable(Path::new("/nonexistent/server")));
        assert!(is_executable(Path::new("/bin/sh")));
    }
}
