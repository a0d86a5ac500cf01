//! A server's log under `<userData>/logs/`: `[<ISO time>] [<LEVEL padded to 5>] <message>` lines,
//! rotated at 5 MB keeping `.1` and `.2` (genai-electron's format, so existing log viewers work).
//! Writes are small appends under a mutex; a failing disk never fails the server.

use serde_json::{json, Value};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub const ROTATE_BYTES: u64 = 5 * 1024 * 1024;
const KEEP: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

pub struct LogFile {
    path: PathBuf,
    rotate_bytes: u64,
    state: Mutex<Option<(File, u64)>>,
}

impl LogFile {
    pub fn new(path: PathBuf) -> Self {
        Self::with_rotation(path, ROTATE_BYTES)
    }

    pub fn with_rotation(path: PathBuf, rotate_bytes: u64) -> Self {
        LogFile {
            path,
            rotate_bytes,
            state: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open(&self) -> Option<(File, u64)> {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .ok()?;
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        Some((f, len))
    }

    fn rotated(&self, i: u32) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(format!(".{i}"));
        PathBuf::from(s)
    }

    fn rotate(&self) {
        for i in (1..KEEP).rev() {
            let _ = std::fs::rename(self.rotated(i), self.rotated(i + 1));
        }
        let _ = std::fs::rename(&self.path, self.rotated(1));
    }

    /// Appends one line per line of `message` (multi-line messages stay greppable).
    pub fn write(&self, level: LogLevel, message: &str) {
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let tag = format!("{:<5}", level.as_str().to_uppercase());
        let mut text = String::new();
        for line in message.lines().filter(|l| !l.trim().is_empty()) {
            text.push_str(&format!("[{now}] [{tag}] {line}\n"));
        }
        if text.is_empty() {
            return;
        }
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if guard.is_none() {
            *guard = self.open();
        }
        if let Some((_, len)) = guard.as_ref() {
            if *len > 0 && len + text.len() as u64 > self.rotate_bytes {
                *guard = None;
                self.rotate();
                *guard = self.open();
            }
        }
        if let Some((f, len)) = guard.as_mut() {
            if f.write_all(text.as_bytes()).is_ok() {
                *len += text.len() as u64;
            } else {
                *guard = None;
            }
        }
    }

    /// The last `n` non-empty lines of the current file.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let start = lines.len().saturating_sub(n);
        lines[start..].iter().map(|s| s.to_string()).collect()
    }

    /// Truncates the current file (rotated files stay).
    pub fn clear(&self) {
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *guard = None;
        let _ = File::create(&self.path);
    }
}

/// `LogEntry` for `getStructuredLogs`: unparseable lines become `info` entries stamped now.
pub fn parse_entry(line: &str) -> Value {
    let parsed = (|| {
        let rest = line.strip_prefix('[')?;
        let (ts, rest) = rest.split_once("] [")?;
        let (level, msg) = rest.split_once("] ")?;
        Some((ts.to_string(), level.trim().to_lowercase(), msg.to_string()))
    })();
    match parsed {
        Some((ts, level, message)) => json!({"timestamp": ts, "level": level, "message": message}),
        None => json!({
            "timestamp": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            "level": "info",
            "message": line,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG_FILE: &str = "server.log";

    #[test]
    fn format_and_structured_parse() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogFile::new(dir.path().join("logs").join(LOG_FILE));
        log.write(LogLevel::Info, "hello");
        log.write(LogLevel::Warn, "two\nlines");
        let t = log.tail(10);
        assert_eq!(t.len(), 3);
        assert!(t[0].ends_with("] [INFO ] hello"), "{}", t[0]);
        assert!(t[1].contains("] [WARN ] two"));
        let e = parse_entry(&t[2]);
        assert_eq!(e["level"], "warn");
        assert_eq!(e["message"], "lines");
        assert!(e["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(parse_entry("garbage")["level"], "info");
        assert_eq!(log.tail(1).len(), 1);
        log.clear();
        assert!(log.tail(10).is_empty());
    }

    /// A server's stdout and stderr readers and its manager all write at once:
    /// rotation must never split, interleave or drop a line of the files it keeps.
    #[test]
    fn concurrent_writes_rotate_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(LOG_FILE);
        let log = std::sync::Arc::new(LogFile::with_rotation(p.clone(), 4000));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..300 {
                        log.write(LogLevel::Info, &format!("thread {t} line {i:03} end"));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut seen = 0;
        for f in [
            p.clone(),
            dir.path().join(format!("{LOG_FILE}.1")),
            dir.path().join(format!("{LOG_FILE}.2")),
        ] {
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(
                text.len() <= 4000,
                "{} is {} bytes",
                f.display(),
                text.len()
            );
            assert!(text.ends_with('\n'));
            for line in text.lines() {
                let e = parse_entry(line);
                assert_eq!(e["level"], "info", "{line}");
                let m = e["message"].as_str().unwrap();
                assert!(m.starts_with("thread ") && m.ends_with(" end"), "{line}");
                seen += 1;
            }
        }
        assert!(seen > 0);
        assert!(!dir.path().join(format!("{LOG_FILE}.3")).exists());
    }

    #[test]
    fn rotates_keeping_two() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(LOG_FILE);
        let log = LogFile::with_rotation(p.clone(), 200);
        for i in 0..40 {
            log.write(LogLevel::Info, &format!("line number {i:03}"));
        }
        let one = dir.path().join(format!("{LOG_FILE}.1"));
        let two = dir.path().join(format!("{LOG_FILE}.2"));
        assert!(one.exists() && two.exists());
        assert!(!dir.path().join(format!("{LOG_FILE}.3")).exists());
        assert!(std::fs::metadata(&p).unwrap().len() <= 200);
        assert!(log.tail(1)[0].ends_with("line number 039"));
    }
}
