//! Download locks: one per model id and one per destination file (`deleteModel` takes the file
//! locks too, so it never removes a file a download is writing or has just verified), so the same model (or the same
//! file, e.g. a VAE shared by two variants) is never written by two downloads at once, in this
//! process or another. A lock is an OS advisory lock (flock / LockFileEx via fs4) on a small file
//! holding the owner's pid: the OS drops it when the owner dies, so a crash never leaves a stale
//! lock behind. Where the file system cannot lock (some network shares), the pid decides: a lock
//! whose pid is not alive is taken over.

use crate::error::{Error, Result};
use fs4::fs_std::FileExt;
use serde_json::json;
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Locks held by this process; flock would also catch these, but this gives a clear message and
/// works the same on every platform.
static HELD: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// What a lock protects, for messages.
#[derive(Debug, Clone)]
pub struct LockRequest {
    pub path: PathBuf,
    pub what: String,
}

#[derive(Debug)]
struct Held {
    path: PathBuf,
    // Keeps the OS lock; closing it unlocks.
    file: File,
}

/// Releases every lock on drop.
#[derive(Debug, Default)]
pub struct LockGuard {
    held: Vec<Held>,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let mut set = HELD.lock().unwrap_or_else(|e| e.into_inner());
        for h in self.held.drain(..) {
            if let Some(s) = set.as_mut() {
                s.remove(&h.path);
            }
            // Remove the file while still holding the lock: a process that opened it meanwhile
            // sees, after locking, that the path no longer names its file and retries (see
            // `try_take`). Windows cannot rely on that, so its lock files stay.
            #[cfg(unix)]
            let _ = std::fs::remove_file(&h.path);
            let _ = FileExt::unlock(&h.file);
            drop(h.file);
        }
    }
}

/// The lock file guarding `dest`: `.<file name>.lock` beside it.
pub fn file_lock_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.lock"))
}

fn busy(req: &LockRequest, owner: &str) -> Error {
    Error::download(
        format!("{} is already being downloaded {owner}", req.what),
        json!({ "lockFile": req.path.display().to_string(), "alreadyInProgress": true }),
    )
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut s).ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn write_pid(file: &mut File) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    writeln!(file, "{}", std::process::id())?;
    file.flush()
}

/// Whether a process with this pid exists (conservatively true where we cannot tell).
fn pid_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// True when `path` still names the open `file` (it was not removed and recreated meanwhile).
fn still_linked(path: &Path, file: &File) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(path), file.metadata()) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (path, file);
        true
    }
}

fn take(req: &LockRequest) -> Result<Held> {
    for _ in 0..16 {
        // The directory can go between making it and opening the lock inside it (or while
        // `create_dir_all` checks what it found): another process's attempt at the same model
        // failed and removed it, empty. Make it again.
        if let Some(dir) = req.path.parent() {
            match std::fs::create_dir_all(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("Failed to create directory", dir, &e)),
            }
        }
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&req.path);
        let mut file = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("Failed to open lock file", &req.path, &e)),
        };
        match file.try_lock_exclusive() {
            Ok(true) => {
                if !still_linked(&req.path, &file) {
                    continue; // The previous owner removed it as we opened it: try again.
                }
            }
            Ok(false) => {
                let owner = read_pid(&mut file)
                    .map(|p| format!("by process {p}"))
                    .unwrap_or_else(|| "by another process".into());
                return Err(busy(req, &owner));
            }
            Err(_) => {
                // No advisory locks here: fall back to the recorded pid.
                if let Some(pid) = read_pid(&mut file).filter(|p| pid_alive(*p)) {
                    return Err(busy(req, &format!("by process {pid}")));
                }
            }
        }
        write_pid(&mut file).map_err(|e| Error::io("Failed to write lock file", &req.path, &e))?;
        return Ok(Held {
            path: req.path.clone(),
            file,
        });
    }
    Err(busy(req, "(the lock file keeps changing)"))
}

/// Takes every lock or none. Requests are taken in path order so two callers never hold halves.
pub fn acquire(requests: &[LockRequest]) -> Result<LockGuard> {
    let mut reqs: Vec<&LockRequest> = requests.iter().collect();
    reqs.sort_by(|a, b| a.path.cmp(&b.path));
    reqs.dedup_by(|a, b| a.path == b.path);
    let mut guard = LockGuard::default();
    for req in reqs {
        {
            let mut set = HELD.lock().unwrap_or_else(|e| e.into_inner());
            let set = set.get_or_insert_with(HashSet::new);
            if !set.insert(req.path.clone()) {
                return Err(busy(req, "in this process"));
            }
        }
        match take(req) {
            Ok(h) => guard.held.push(h),
            Err(e) => {
                let mut set = HELD.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(s) = set.as_mut() {
                    s.remove(&req.path);
                }
                return Err(e); // `guard` drops and releases what was taken.
            }
        }
    }
    Ok(guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(dir: &Path, name: &str) -> LockRequest {
        LockRequest {
            path: dir.join(name),
            what: format!("Model {name}"),
        }
    }

    #[test]
    fn second_taker_is_refused_until_release() {
        let dir = tempfile::tempdir().unwrap();
        let a = req(dir.path(), ".a.lock");
        let g = acquire(std::slice::from_ref(&a)).unwrap();
        let e = acquire(std::slice::from_ref(&a)).unwrap_err().to_string();
        assert!(
            e.contains("already being downloaded in this process"),
            "{e}"
        );
        assert_eq!(
            std::fs::read_to_string(&a.path).unwrap().trim(),
            std::process::id().to_string()
        );
        drop(g);
        #[cfg(unix)]
        assert!(!a.path.exists(), "lock files are removed on release");
        let _g = acquire(&[a]).unwrap();
    }

    /// A process whose own attempt at the same model failed removes the model's directory if it
    /// finds it empty, which can happen between our making it and opening our lock inside it.
    /// Each round here: another thread removes the directory once, at a random moment.
    #[test]
    fn a_directory_removed_under_us_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("model");
        const ROUNDS: usize = 3000;
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let remover = {
            let (sub, barrier) = (sub.clone(), barrier.clone());
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    barrier.wait();
                    for _ in 0..fastrand::u32(0..4000) {
                        std::hint::spin_loop();
                    }
                    let _ = std::fs::remove_dir(&sub);
                    barrier.wait();
                }
            })
        };
        let a = req(&sub, ".file.lock");
        let mut failures = Vec::new();
        for _ in 0..ROUNDS {
            barrier.wait();
            match acquire(std::slice::from_ref(&a)) {
                Ok(g) => drop(g),
                Err(e) => failures.push(e.to_string()),
            }
            barrier.wait();
        }
        remover.join().unwrap();
        assert!(
            failures.is_empty(),
            "{} of {ROUNDS} failed: {:?}",
            failures.len(),
            failures.first()
        );
    }

    #[test]
    fn all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let a = req(dir.path(), ".a.lock");
        let b = req(dir.path(), "sub/.b.lock");
        let held_b = acquire(std::slice::from_ref(&b)).unwrap();
        assert!(acquire(&[a.clone(), b.clone()]).is_err());
        // `a` was released when the combined acquisition failed.
        let _ga = acquire(&[a]).unwrap();
        drop(held_b);
    }

    #[test]
    fn a_leftover_lock_file_of_a_dead_process_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let a = req(dir.path(), ".stale.lock");
        // Not locked by anyone: only the file and a pid remain (a crashed owner).
        std::fs::write(&a.path, "999999999\n").unwrap();
        let _g = acquire(&[a]).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_lock_held_by_another_process_names_its_pid() {
        let dir = tempfile::tempdir().unwrap();
        let a = req(dir.path(), ".other.lock");
        std::fs::write(&a.path, "").unwrap();
        // flock(1) holds the lock in a child while we try; it writes its pid first.
        let script = format!(
            "exec 9<>'{p}'; flock -x 9; echo $$ > '{p}'; echo ready; read _",
            p = a.path.display()
        );
        let mut child = match std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(_) => return,
        };
        let mut line = String::new();
        use std::io::BufRead;
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).unwrap();
        if line.trim() != "ready" {
            let _ = child.kill();
            return; // no flock(1) on this system
        }
        let e = acquire(std::slice::from_ref(&a)).unwrap_err().to_string();
        assert!(e.contains(&format!("by process {}", child.id())), "{e}");
        drop(child.stdin.take());
        child.wait().unwrap();
        let _g = acquire(&[a]).unwrap();
    }
}
