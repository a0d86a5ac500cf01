//! Runs the external probes (`nvidia-smi`, `rocm-smi`, `system_profiler`) under a deadline.
//!
//! A wedged driver can make `nvidia-smi` hang for minutes, and detection runs before every image
//! generation, so every probe is killed when its time is up. On Unix the child gets its own
//! process group and the whole group is killed, so a wrapper script's children cannot keep the
//! output pipe (and this thread) alive. Programs are looked up in an explicit search path so tests
//! can put fake tools first without touching the process environment.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Default deadline for one probe command (genai-electron uses 10 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Probes print a few lines; anything past this is not a probe we understand.
const MAX_OUTPUT: u64 = 1 << 20;

/// Why a probe command gave no usable output. Never surfaced to JS: each one only moves
/// detection on to the next source (and is printed under `GENAI_ELECTRON_DEBUG`).
#[derive(Debug)]
pub enum CommandError {
    NotFound(String),
    Spawn(String, std::io::Error),
    TimedOut(String, Duration),
    Failed {
        program: String,
        code: Option<i32>,
        stderr: String,
    },
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::NotFound(p) => write!(f, "{p}: not found"),
            CommandError::Spawn(p, e) => write!(f, "{p}: cannot start: {e}"),
            CommandError::TimedOut(p, d) => write!(f, "{p}: killed after {} ms", d.as_millis()),
            CommandError::Failed {
                program,
                code,
                stderr,
            } => {
                let code = code.map_or_else(|| "signal".to_string(), |c| c.to_string());
                write!(f, "{program}: exit {code}: {stderr}")
            }
        }
    }
}

/// Finds `name` in `search_path` (PATH syntax; the process PATH when `None`).
pub fn find_program(name: &str, search_path: Option<&OsStr>) -> Option<PathBuf> {
    let path: OsString = match search_path {
        Some(p) => p.to_os_string(),
        None => std::env::var_os("PATH")?,
    };
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    if cfg!(windows) && name == "nvidia-smi" {
        // Drivers before 2019 installed nvidia-smi here without adding it to PATH.
        dirs.push(PathBuf::from(r"C:\Program Files\NVIDIA Corporation\NVSMI"));
    }
    dirs.iter()
        .filter(|d| !d.as_os_str().is_empty())
        .flat_map(|d| candidates(d, name))
        .find(|p| is_executable(p))
}

fn candidates(dir: &Path, name: &str) -> Vec<PathBuf> {
    if cfg!(windows) {
        vec![dir.join(format!("{name}.exe")), dir.join(name)]
    } else {
        vec![dir.join(name)]
    }
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}

/// Runs `program args` and returns its stdout, or why it could not. A non-zero exit is a
/// failure: `nvidia-smi` prints its "couldn't communicate with the driver" text on stdout.
pub fn run(
    program: &str,
    args: &[&str],
    search_path: Option<&OsStr>,
    timeout: Duration,
) -> Result<String, CommandError> {
    let exe = find_program(program, search_path)
        .ok_or_else(|| CommandError::NotFound(program.to_string()))?;
    let mut cmd = Command::new(&exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        // CREATE_NO_WINDOW: no console window flashes up inside a GUI (Electron) app.
        cmd.creation_flags(0x0800_0000);
    }
    let mut child = spawn(&mut cmd).map_err(|e| CommandError::Spawn(program.to_string(), e))?;
    let deadline = Instant::now() + timeout;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());

    let out = match stdout.recv_timeout(timeout) {
        Ok(bytes) => bytes,
        Err(_) => {
            kill(&mut child);
            return Err(CommandError::TimedOut(program.to_string(), timeout));
        }
    };
    // Output closed: the program is exiting; give it the rest of the deadline to do so.
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                kill(&mut child);
                return Err(CommandError::TimedOut(program.to_string(), timeout));
            }
            Err(e) => return Err(CommandError::Spawn(program.to_string(), e)),
        }
    };
    if !status.success() {
        let err = stderr
            .recv_timeout(Duration::from_millis(100))
            .unwrap_or_default();
        let text = String::from_utf8_lossy(if err.is_empty() { &out } else { &err });
        return Err(CommandError::Failed {
            program: program.to_string(),
            code: status.code(),
            stderr: text.lines().next().unwrap_or("").trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Spawns, retrying briefly on `ETXTBSY`: a tool that was just written (an updater, a test's
/// fake) can be briefly held open for writing by a fork in another thread.
fn spawn(cmd: &mut Command) -> std::io::Result<Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if cfg!(unix) && e.raw_os_error() == Some(26) && tries < 10 => {
                tries += 1;
                thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Reads a pipe to its end on a helper thread, so a full stderr pipe cannot stall the child and
/// the caller can wait with a deadline.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(pipe) = pipe {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.take(MAX_OUTPUT).read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
    }
    rx
}

fn kill(child: &mut Child) {
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals the process group created for this child
        // by `process_group(0)`; it touches no memory.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(all(test, unix))]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Writes an executable shell script `name` into `dir` (a fake probe tool).
    pub(crate) fn fake_tool(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn runs_a_program_found_on_the_given_path() {
        let dir = tempfile::tempdir().unwrap();
        fake_tool(dir.path(), "probe", r#"echo "args:$1:$2""#);
        let out = run(
            "probe",
            &["a b", "c"],
            Some(dir.path().as_os_str()),
            DEFAULT_TIMEOUT,
        )
        .unwrap();
        assert_eq!(out.trim(), "args:a b:c");
    }

    #[test]
    fn missing_non_executable_and_failing_programs_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = Some(dir.path().as_os_str());
        assert!(matches!(
            run("absent", &[], path, DEFAULT_TIMEOUT),
            Err(CommandError::NotFound(_))
        ));
        std::fs::write(dir.path().join("plain"), "#!/bin/sh\necho hi\n").unwrap();
        assert!(matches!(
            run("plain", &[], path, DEFAULT_TIMEOUT),
            Err(CommandError::NotFound(_))
        ));
        fake_tool(dir.path(), "broken", "echo 'driver gone'; exit 9");
        match run("broken", &[], path, DEFAULT_TIMEOUT) {
            Err(CommandError::Failed { code, stderr, .. }) => {
                assert_eq!(code, Some(9));
                assert_eq!(stderr, "driver gone");
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn a_hanging_program_and_its_children_are_killed_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        // The background child holds stdout open; only a process-group kill ends it.
        fake_tool(
            dir.path(),
            "hang",
            &format!("sleep 30 & echo $! > '{}'; wait", pidfile.display()),
        );
        let started = Instant::now();
        let r = run(
            "hang",
            &[],
            Some(dir.path().as_os_str()),
            Duration::from_millis(500),
        );
        assert!(matches!(r, Err(CommandError::TimedOut(..))), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        assert!(process_gone(pid.trim()), "background child {pid} survived");
    }

    /// True when the process no longer runs (absent, or a zombie nobody reaped yet).
    fn process_gone(pid: &str) -> bool {
        if !cfg!(target_os = "linux") {
            return true;
        }
        for _ in 0..100 {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => return true,
                Ok(stat)
                    if stat
                        .rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z') =>
                {
                    return true
                }
                Ok(_) => thread::sleep(Duration::from_millis(10)),
            }
        }
        false
    }
}
