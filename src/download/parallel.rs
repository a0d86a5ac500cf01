//! One file over several ranged connections. The file is cut into parts; each connection takes
//! the next part (or, at the end, half of the largest part still running), with its own stall
//! timer, retries and backoff. The connection count adapts: it starts with a few and grows while
//! throughput grows, and halves on 429/5xx.
//!
//! Bytes go through the download's pool of buffers (`buffers`, shared by its files) to one
//! writer thread (`pwrite` at their offset) and then to one hasher thread, which keeps a cursor:
//! a buffer that lands at the cursor is hashed from memory, and when ranges ahead of it complete
//! it hashes them from the file (page cache) in order. So the sha256 is ready when the last byte
//! is written, with no second pass over the file. Bytes behind the cursor are done with and leave
//! the page cache (`page_cache`).
//!
//! The written ranges are recorded in the `.partial.meta` sidecar (version 2) after an fdatasync,
//! so after a crash only the missing ranges are fetched again. A server that answers a range with
//! the whole file makes the caller fall back to one stream.

use crate::debug_log;
use crate::error::{Error, Result};
use crate::http::{header_str, send};
use reqwest::header::{HeaderMap, HeaderValue, IF_RANGE, RANGE};
use reqwest::Method;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use url::Url;

use super::buffers::{Pool, BUFFER};
use super::cancel::CancelToken;
use super::net::{Failure, Net};
use super::page_cache::{self, DropBehind};
use super::progress::{ItemTracker, Phase};
use super::ranges::RangeSet;
use super::resume::{self, parse_content_range, same_etag, Sidecar, Start};
use super::transfer::{HashSource, Job};

/// How often the controller looks at throughput and records progress.
const TICK: Duration = Duration::from_millis(250);
/// The sidecar is rewritten at least this often while bytes arrive (more often when parts end).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);
/// Connections a download starts with.
const INITIAL_CONNECTIONS: usize = 3;

/// How the file is split; `part_size` is also the smallest file worth splitting (two parts).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub max_connections: usize,
    pub part_size: u64,
}

impl Settings {
    /// Whether a file of `size` bytes is fetched in ranges at all.
    pub fn applies(&self, size: Option<u64>) -> bool {
        self.max_connections > 1 && size.is_some_and(|s| s >= 2 * self.part_size)
    }

    /// The part size for a file: about 64 parts, never below `part_size` nor above 64 MiB
    /// (unless `part_size` is larger).
    fn part_for(&self, total: u64) -> u64 {
        (total / 64).clamp(self.part_size, (64 << 20).max(self.part_size))
    }
}

/// How a ranged fetch ended without a verified file.
pub enum Outcome {
    /// Complete (not yet compared with the expected hash); still at the partial path.
    /// `resumed`: bytes of an earlier run are part of it.
    Done {
        size: u64,
        sha256: String,
        resumed: bool,
    },
    /// The server does not serve ranges (or stopped, or the file changed under us): the partial
    /// and its sidecar are gone and the caller fetches the file in one stream from zero.
    FallBack(String),
}

enum WriteCmd {
    Data(u64, Vec<u8>),
    /// Replies once every earlier write is done.
    Flush(std_mpsc::Sender<()>),
    /// Passed on to the hasher after every earlier write.
    FinishHash(std_mpsc::Sender<(u64, String)>),
}

enum HashCmd {
    Data(u64, Vec<u8>),
    Finish(std_mpsc::Sender<(u64, String)>),
}

/// A part being fetched: `pos` is the next byte this connection expects, `end` where it stops
/// (lowered when another connection takes the second half).
struct Slot {
    pos: AtomicU64,
    end: AtomicU64,
}

/// State shared by the connections of one file.
struct Shared {
    total: u64,
    part: u64,
    file: Arc<File>,
    done: Arc<Mutex<RangeSet>>,
    todo: Mutex<Vec<(u64, u64)>>,
    slots: Mutex<Vec<Arc<Slot>>>,
    pool: Arc<Pool>,
    write_tx: Mutex<std_mpsc::Sender<WriteCmd>>,
    /// Fired on a fatal error, a fallback or a cancel: every connection stops.
    stop: CancelToken,
    target: AtomicUsize,
    running: AtomicUsize,
    /// A connection got 429/5xx since the controller last looked.
    throttled: AtomicBool,
    /// Some connection got a 206: the server does ranges.
    ranged: AtomicBool,
    parts_done: AtomicU64,
    /// The signed CDN URL the resolve URL redirected to, reused until it stops working.
    direct: Mutex<Option<Url>>,
    etag: Option<String>,
    if_range: Option<String>,
}

/// Why a connection stopped.
enum End {
    /// Nothing left to take.
    Finished,
    /// More connections than the target: its part went back to the queue.
    Retired,
    Fatal(Error),
    FallBack(String),
    Stopped,
}

impl Shared {
    /// The next part: from the queue, else half of the largest part still running.
    fn take(&self) -> Option<Arc<Slot>> {
        let mut slots = self.slots.lock().unwrap();
        let mut todo = self.todo.lock().unwrap();
        let span = if let Some((a, b)) = todo.first().copied() {
            let end = b.min(a + self.part);
            if end < b {
                todo[0] = (end, b);
            } else {
                todo.remove(0);
            }
            Some((a, end))
        } else {
            let min_steal = (self.part / 4).max(64 << 10);
            slots
                .iter()
                .map(|s| {
                    let p = s.pos.load(Ordering::Acquire);
                    let e = s.end.load(Ordering::Acquire);
                    (s.clone(), p, e)
                })
                .filter(|(_, p, e)| e.saturating_sub(*p) >= 2 * min_steal)
                .max_by_key(|(_, p, e)| e - p)
                .map(|(s, p, e)| {
                    let mid = p + (e - p) / 2;
                    s.end.store(mid, Ordering::Release);
                    (mid, e)
                })
        };
        let (a, b) = span?;
        let slot = Arc::new(Slot {
            pos: AtomicU64::new(a),
            end: AtomicU64::new(b),
        });
        slots.push(slot.clone());
        Some(slot)
    }

    /// A connection gives back what it did not fetch of its part.
    fn give_back(&self, slot: &Arc<Slot>) {
        let mut slots = self.slots.lock().unwrap();
        slots.retain(|s| !Arc::ptr_eq(s, slot));
        let (p, e) = (
            slot.pos.load(Ordering::Acquire),
            slot.end.load(Ordering::Acquire),
        );
        if p < e {
            let mut todo = self.todo.lock().unwrap();
            todo.push((p, e));
            todo.sort_unstable();
        }
    }

    fn release(&self, slot: &Arc<Slot>) {
        self.slots.lock().unwrap().retain(|s| !Arc::ptr_eq(s, slot));
        self.parts_done.fetch_add(1, Ordering::Relaxed);
    }

    fn complete(&self) -> bool {
        self.done.lock().unwrap().covered() >= self.total
    }

    fn send_write(&self, off: u64, buf: Vec<u8>) {
        if buf.is_empty() {
            self.pool.put(buf);
            return;
        }
        let tx = self.write_tx.lock().unwrap().clone();
        if let Err(std_mpsc::SendError(WriteCmd::Data(_, b))) = tx.send(WriteCmd::Data(off, buf)) {
            self.pool.put(b);
        }
    }
}

/// What the writer thread works with.
struct WriteSide {
    file: Arc<File>,
    done: Arc<Mutex<RangeSet>>,
    item: Arc<ItemTracker>,
    pool: Arc<Pool>,
    error: Arc<Mutex<Option<std::io::Error>>>,
    stop: CancelToken,
}

fn write_loop(w: WriteSide, rx: std_mpsc::Receiver<WriteCmd>, hash_tx: std_mpsc::Sender<HashCmd>) {
    let WriteSide {
        file,
        done: shared_done,
        item,
        pool,
        error,
        stop,
    } = w;
    let mut since_writeback = 0u64;
    while let Ok(cmd) = rx.recv() {
        match cmd {
            WriteCmd::Data(off, buf) => {
                if error.lock().unwrap().is_some() {
                    pool.put(buf);
                    continue;
                }
                match write_at(&file, &buf, off) {
                    Ok(()) => {
                        let n = buf.len() as u64;
                        let covered = {
                            let mut d = shared_done.lock().unwrap();
                            d.insert(off, off + n);
                            d.covered()
                        };
                        item.set_current(covered);
                        since_writeback += n;
                        // Parts land all over the file: start writeback of all of it (length 0 is
                        // "to the end"), so the final fsync has little left.
                        if since_writeback >= page_cache::WINDOW {
                            page_cache::start_writeback(&file, 0, 0);
                            since_writeback = 0;
                        }
                        if let Err(std_mpsc::SendError(HashCmd::Data(_, b))) =
                            hash_tx.send(HashCmd::Data(off, buf))
                        {
                            pool.put(b);
                        }
                    }
                    Err(e) => {
                        *error.lock().unwrap() = Some(e);
                        stop.cancel();
                        pool.put(buf);
                    }
                }
            }
            WriteCmd::Flush(reply) => {
                let _ = reply.send(());
            }
            WriteCmd::FinishHash(reply) => {
                let _ = hash_tx.send(HashCmd::Finish(reply));
            }
        }
    }
}

#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], off: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(buf, off)
}

#[cfg(windows)]
fn write_at(file: &File, mut buf: &[u8], mut off: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = file.seek_write(buf, off)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
        off += n as u64;
    }
    Ok(())
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    file.read_at(buf, off)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    use std::os::windows::fs::FileExt;
    file.seek_read(buf, off)
}

/// The hash cursor: consumes buffers that land at it and, from the file, ranges that became
/// contiguous with it. `abort` stops it between blocks (a cancelled download).
struct Hasher {
    file: Arc<File>,
    done: Arc<Mutex<RangeSet>>,
    pool: Arc<Pool>,
    sha: Sha256,
    cursor: u64,
    scratch: Vec<u8>,
    abort: Arc<AtomicBool>,
    item: Arc<ItemTracker>,
    /// Bytes present when the download started: hashing them is the "verifying" phase.
    resumed: u64,
    /// Bytes behind the cursor are written and hashed: they leave the page cache.
    behind: DropBehind,
}

impl Hasher {
    fn absorb(&mut self, off: u64, buf: Vec<u8>) {
        let end = off + buf.len() as u64;
        if off <= self.cursor && self.cursor < end {
            self.sha.update(&buf[(self.cursor - off) as usize..]);
            self.cursor = end;
            self.behind.advance(&self.file, self.cursor);
        }
        self.pool.put(buf);
    }

    fn catch_up(&mut self, rx: &std_mpsc::Receiver<HashCmd>, pending: &mut Vec<HashCmd>) {
        loop {
            if self.abort.load(Ordering::Acquire) {
                return;
            }
            let end = self.done.lock().unwrap().contiguous_end(self.cursor);
            if end <= self.cursor {
                return;
            }
            let n = ((end - self.cursor) as usize).min(self.scratch.len());
            match read_at(&self.file, &mut self.scratch[..n], self.cursor) {
                Ok(0) | Err(_) => return,
                Ok(k) => {
                    self.sha.update(&self.scratch[..k]);
                    self.cursor += k as u64;
                    self.behind.advance(&self.file, self.cursor);
                }
            }
            if self.cursor >= self.resumed && self.resumed > 0 {
                self.item.set_phase(Phase::Downloading);
                self.resumed = 0;
            }
            // Buffers waiting behind this read go back to the pool now, so the network is not
            // held up by a long catch-up.
            while let Ok(cmd) = rx.try_recv() {
                match cmd {
                    HashCmd::Data(off, buf) => self.absorb(off, buf),
                    other => pending.push(other),
                }
            }
        }
    }

    fn run(mut self, rx: std_mpsc::Receiver<HashCmd>) {
        let mut pending = Vec::new();
        self.catch_up(&rx, &mut pending);
        loop {
            let cmd = match pending.pop() {
                Some(c) => c,
                None => match rx.recv() {
                    Ok(c) => c,
                    Err(_) => return,
                },
            };
            match cmd {
                HashCmd::Data(off, buf) => self.absorb(off, buf),
                HashCmd::Finish(reply) => {
                    self.catch_up(&rx, &mut pending);
                    let sha = std::mem::take(&mut self.sha);
                    let _ = reply.send((self.cursor, crate::checksum::finish_hex(sha)));
                    return;
                }
            }
            self.catch_up(&rx, &mut pending);
        }
    }
}

fn io_error(job: &Job<'_>, path: &Path, e: &std::io::Error) -> Error {
    super::transfer::write_error(job.item, path, e)
}

/// What a resume keeps: the ranges of a valid sidecar (version 2), or the prefix of a one-stream
/// partial (version 1), else nothing.
fn resumable(job: &Job<'_>, partial: &Path, meta: &Path, total: u64) -> RangeSet {
    let len = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
    let sc = resume::load_any(meta);
    let expected = job.expected.as_ref().map(|(h, _)| h.as_str());
    let mut remote = job.probe.remote();
    remote.total = Some(total);
    match resume::decide_start(len, sc.as_ref(), job.item.url.as_str(), &remote, expected) {
        Start::Resume { offset } => match sc.and_then(|s| s.ranges) {
            Some(r) if len == total => RangeSet::from_spans(r.spans(), total),
            Some(_) => RangeSet::new(),
            None => RangeSet::from_spans(&[(0, offset)], total),
        },
        Start::Fresh { reason } => {
            if len > 0 {
                debug_log!("{}: not resuming: {reason}", job.item.url);
            }
            RangeSet::new()
        }
    }
}

/// Fetches `job`'s file of `total` bytes over ranged connections into its partial.
pub async fn fetch(net: &Net, job: &Job<'_>, total: u64, settings: Settings) -> Result<Outcome> {
    let item = job.item;
    let partial = resume::partial_path(&item.dest);
    let meta = resume::sidecar_path(&item.dest);
    let done = resumable(job, &partial, &meta, total);
    if done.covered() == 0 {
        let _ = std::fs::remove_file(&partial);
        let _ = std::fs::remove_file(&meta);
    }
    let resumed = done.covered();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&partial)
        .map_err(|e| io_error(job, &partial, &e))?;
    file.set_len(total)
        .map_err(|e| io_error(job, &partial, &e))?;
    let sidecar = Sidecar {
        version: resume::RANGED_VERSION,
        url: item.url.to_string(),
        etag: job.probe.etag.clone(),
        last_modified: job.probe.last_modified.clone(),
        total: Some(total),
        sha256: job.expected.as_ref().map(|(h, _)| h.clone()),
        ranges: Some(done.clone()),
    };
    resume::save(&meta, &sidecar)?;

    let file = Arc::new(file);
    let part = settings.part_for(total);
    let max = settings.max_connections.max(1);
    let pool = net.buffers.clone();
    let (write_tx, write_rx) = std_mpsc::channel();
    let (hash_tx, hash_rx) = std_mpsc::channel();
    let done = Arc::new(Mutex::new(done));
    let stop = CancelToken::new();
    let write_error = Arc::new(Mutex::new(None));
    let abort = Arc::new(AtomicBool::new(false));
    job.tracker.set_current(resumed);
    job.tracker.set_phase(if resumed > 0 {
        Phase::Verifying
    } else {
        Phase::Downloading
    });

    let todo = done.lock().unwrap().gaps(total);
    let shared = Arc::new(Shared {
        total,
        part,
        file: file.clone(),
        done: done.clone(),
        todo: Mutex::new(todo),
        slots: Mutex::new(Vec::new()),
        pool: pool.clone(),
        write_tx: Mutex::new(write_tx),
        stop: stop.clone(),
        target: AtomicUsize::new(INITIAL_CONNECTIONS.min(max)),
        running: AtomicUsize::new(0),
        throttled: AtomicBool::new(false),
        ranged: AtomicBool::new(resumed > 0),
        parts_done: AtomicU64::new(0),
        direct: Mutex::new(None),
        etag: job.probe.etag.clone(),
        if_range: resume::if_range(Some(&sidecar)),
    });
    {
        let side = WriteSide {
            file: file.clone(),
            done: done.clone(),
            item: job.tracker.clone(),
            pool: pool.clone(),
            error: write_error.clone(),
            stop: stop.clone(),
        };
        std::thread::Builder::new()
            .name("genai-download-write".into())
            .spawn(move || write_loop(side, write_rx, hash_tx))
            .map_err(|e| io_error(job, &partial, &e))?;
        let hasher = Hasher {
            file: file.clone(),
            done: done.clone(),
            pool: pool.clone(),
            sha: Sha256::new(),
            cursor: 0,
            scratch: vec![0u8; BUFFER],
            abort: abort.clone(),
            item: job.tracker.clone(),
            resumed,
            behind: DropBehind::new(0),
        };
        std::thread::Builder::new()
            .name("genai-download-hash".into())
            .spawn(move || hasher.run(hash_rx))
            .map_err(|e| io_error(job, &partial, &e))?;
    }
    // A dropped future (another file of the model failed) stops the hasher between blocks.
    struct AbortOnDrop(Arc<AtomicBool>, CancelToken);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
            self.1.cancel();
        }
    }
    let _abort_guard = AbortOnDrop(abort.clone(), stop.clone());

    let ended = drive(net, job, &shared, max, &meta, &sidecar).await;
    // Every write issued is on its way; wait for the writer to apply them, then record the state.
    flush(&shared).await;
    let write_failed = write_error.lock().unwrap().take();
    if let Some(e) = write_failed {
        checkpoint(&shared, &meta, &sidecar).await;
        return Err(io_error(job, &partial, &e));
    }
    match ended {
        Ok(()) => {}
        Err(End::FallBack(reason)) => {
            abort.store(true, Ordering::Release);
            drop(file);
            let _ = std::fs::remove_file(&partial);
            let _ = std::fs::remove_file(&meta);
            return Ok(Outcome::FallBack(reason));
        }
        Err(End::Fatal(e)) => {
            abort.store(true, Ordering::Release);
            checkpoint(&shared, &meta, &sidecar).await;
            return Err(e);
        }
        Err(_) => {
            abort.store(true, Ordering::Release);
            checkpoint(&shared, &meta, &sidecar).await;
            return Err(net.cancelled_error(&item.url));
        }
    }
    // All ranges are written: fsync, then the hasher finishes its pass.
    let f = file.clone();
    tokio::task::spawn_blocking(move || f.sync_all())
        .await
        .map_err(|e| Error::fs(format!("internal task failed: {e}"), json!({})))?
        .map_err(|e| io_error(job, &partial, &e))?;
    let hashed = ask_writer(&shared, WriteCmd::FinishHash).await;
    let (n, sha) = hashed.ok_or_else(|| {
        Error::fs(
            "The download's hash thread stopped",
            json!({ "path": partial.display().to_string() }),
        )
    })?;
    if n != total {
        return Err(Error::fs(
            format!("Hashed {n} of {total} bytes of {}", item.label()),
            json!({ "path": partial.display().to_string() }),
        ));
    }
    Ok(Outcome::Done {
        size: total,
        sha256: sha,
        resumed: resumed > 0,
    })
}

/// Sends the writer a command carrying a reply channel and waits (off the runtime) for the reply,
/// which comes after every write sent before. None when the writer is gone.
async fn ask_writer<T: Send + 'static>(
    shared: &Arc<Shared>,
    cmd: impl FnOnce(std_mpsc::Sender<T>) -> WriteCmd,
) -> Option<T> {
    let (tx, rx) = std_mpsc::channel();
    let sent = shared.write_tx.lock().unwrap().send(cmd(tx)).is_ok();
    if !sent {
        return None;
    }
    tokio::task::spawn_blocking(move || rx.recv().ok())
        .await
        .ok()
        .flatten()
}

/// Waits until the writer has applied every write sent so far.
async fn flush(shared: &Arc<Shared>) {
    ask_writer(shared, WriteCmd::Flush).await;
}

/// Records the written ranges: fdatasync first, so the sidecar never claims bytes a power cut
/// could lose.
fn checkpoint_blocking(file: &File, done: &Mutex<RangeSet>, meta: &Path, base: &Sidecar) {
    let ranges = done.lock().unwrap().clone();
    let mut sc = base.clone();
    sc.ranges = Some(ranges);
    if file.sync_data().is_ok() {
        let _ = resume::save(meta, &sc);
    }
}

async fn checkpoint(shared: &Arc<Shared>, meta: &Path, base: &Sidecar) {
    let sh = shared.clone();
    let meta: PathBuf = meta.to_path_buf();
    let base = base.clone();
    let _ =
        tokio::task::spawn_blocking(move || checkpoint_blocking(&sh.file, &sh.done, &meta, &base))
            .await;
}

/// How one request for a part ended, when it did not fetch the whole part.
enum Attempt {
    Retry {
        message: String,
        retry_after: Option<Duration>,
        progressed: bool,
        throttled: bool,
    },
    Fatal(Error),
    FallBack(String),
    Stopped,
}

fn retry(message: impl Into<String>, progressed: bool) -> Attempt {
    Attempt::Retry {
        message: message.into(),
        retry_after: None,
        progressed,
        throttled: false,
    }
}

/// Requests `slot`'s range once and streams it into buffers for the writer.
async fn fetch_part(
    net: &Net,
    job: &Job<'_>,
    sh: &Shared,
    slot: &Slot,
) -> std::result::Result<(), Attempt> {
    let item = job.item;
    let start = slot.pos.load(Ordering::Acquire);
    let end = slot.end.load(Ordering::Acquire);
    if start >= end {
        return Ok(());
    }
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("bytes={start}-{}", end - 1)) {
        headers.insert(RANGE, v);
    }
    if let Some(v) = sh
        .if_range
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert(IF_RANGE, v);
    }
    let direct = sh.direct.lock().unwrap().clone();
    let url = direct.clone().unwrap_or_else(|| item.url.clone());
    let stall = net.opts.stall_timeout;
    let sent = tokio::select! {
        biased;
        _ = sh.stop.cancelled() => return Err(Attempt::Stopped),
        r = tokio::time::timeout(stall, send(&net.client, Method::GET, &url, &headers, &net.auth)) => r,
    };
    let (mut resp, last, linked) = match sent {
        Err(_) => return Err(retry(format!("no response within {stall:?}"), false)),
        Ok(Err(e)) if e.retryable() => return Err(retry(e.to_string(), false)),
        Ok(Err(e)) => {
            return Err(Attempt::Fatal(Error::download(
                e.to_string(),
                json!({ "url": item.url.as_str() }),
            )))
        }
        Ok(Ok(r)) => r,
    };
    let status = resp.status().as_u16();
    if let (Some((old, HashSource::HuggingFace)), Some(new)) = (&job.expected, &linked.sha256) {
        if old != new {
            return Err(Attempt::FallBack(
                "the remote file changed (new sha256)".into(),
            ));
        }
    }
    if status == 200 {
        return Err(Attempt::FallBack(if sh.ranged.load(Ordering::Acquire) {
            "the server stopped serving ranges, or the file changed".into()
        } else {
            "the server does not serve byte ranges".into()
        }));
    }
    if status == 416 {
        return Err(Attempt::FallBack(
            "the server cannot serve a range of the announced size (the file changed?)".into(),
        ));
    }
    if status != 206 {
        if direct.is_some() && matches!(status, 401 | 403 | 404 | 410) {
            // A signed CDN link expired: resolve again.
            *sh.direct.lock().unwrap() = None;
            return Err(retry(format!("HTTP {status} from the CDN link"), false));
        }
        return Err(
            match net.status_failure(status, resp.headers(), &last, item.repo.as_deref()) {
                Failure::Retry {
                    message,
                    retry_after,
                } => Attempt::Retry {
                    message,
                    retry_after,
                    progressed: false,
                    throttled: status == 429 || status >= 500,
                },
                Failure::Fatal(e) => Attempt::Fatal(e.with_detail("file", json!(item.label()))),
                Failure::Cancelled => Attempt::Stopped,
            },
        );
    }
    let h = resp.headers();
    let cr = header_str(h, "content-range").and_then(|v| parse_content_range(&v));
    match cr {
        Some(c) if c.total.is_some_and(|t| t != sh.total) => {
            return Err(Attempt::FallBack(
                "the remote file changed (different size)".into(),
            ))
        }
        Some(c) if c.start == start => {}
        _ => {
            return Err(retry(
                "the server returned another range than requested",
                false,
            ))
        }
    }
    if let (Some(a), Some(b)) = (header_str(h, "etag"), &sh.etag) {
        if !same_etag(&a, b) {
            return Err(Attempt::FallBack(
                "the remote file changed (different ETag)".into(),
            ));
        }
    }
    if direct.is_none() && last != item.url {
        *sh.direct.lock().unwrap() = Some(last);
    }
    sh.ranged.store(true, Ordering::Release);

    let mut pos = start;
    let mut buf_off = start;
    let mut buf = tokio::select! {
        _ = sh.stop.cancelled() => return Err(Attempt::Stopped),
        b = sh.pool.get() => b,
    };
    let result = loop {
        if pos >= slot.end.load(Ordering::Acquire) {
            break Ok(());
        }
        let next = tokio::select! {
            biased;
            _ = sh.stop.cancelled() => break Err(Attempt::Stopped),
            r = tokio::time::timeout(stall, resp.chunk()) => r,
        };
        let chunk = match next {
            Err(_) => {
                break Err(retry(
                    format!("no data received for {stall:?} (stalled)"),
                    pos > start,
                ))
            }
            Ok(Err(e)) => break Err(retry(e, pos > start)),
            Ok(Ok(None)) => {
                break Err(retry(
                    format!("the connection closed at byte {pos} of the range ending at {end}"),
                    pos > start,
                ))
            }
            Ok(Ok(Some(c))) => c,
        };
        let stop_at = slot.end.load(Ordering::Acquire);
        let take = (chunk.len() as u64).min(stop_at.saturating_sub(pos)) as usize;
        job.tracker.count_received(take as u64);
        let mut data = &chunk[..take];
        let mut stopped = false;
        while !data.is_empty() {
            let room = BUFFER - buf.len();
            let n = room.min(data.len());
            buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            pos += n as u64;
            if buf.len() == BUFFER {
                let full = std::mem::take(&mut buf);
                sh.send_write(buf_off, full);
                buf_off = pos;
                buf = tokio::select! {
                    _ = sh.stop.cancelled() => { stopped = true; break; }
                    b = sh.pool.get() => b,
                };
            }
        }
        slot.pos.store(pos, Ordering::Release);
        if stopped {
            break Err(Attempt::Stopped);
        }
    };
    // What arrived is good whatever ended the body: it goes to disk, and a retry starts after it.
    slot.pos.store(pos, Ordering::Release);
    if buf.capacity() > 0 {
        sh.send_write(buf_off, buf);
    }
    result
}

/// One connection: takes parts until none is left, retrying its part on failures.
async fn connection(net: &Net, job: &Job<'_>, sh: &Shared) -> End {
    let mut failures = 0u32;
    let mut slot: Option<Arc<Slot>> = None;
    loop {
        if sh.stop.is_cancelled() {
            if let Some(s) = &slot {
                sh.give_back(s);
            }
            return End::Stopped;
        }
        let s = match &slot {
            Some(s) => s.clone(),
            None => {
                if try_retire(sh) {
                    return End::Retired;
                }
                match sh.take() {
                    Some(s) => {
                        slot = Some(s.clone());
                        s
                    }
                    None => return End::Finished,
                }
            }
        };
        match fetch_part(net, job, sh, &s).await {
            Ok(()) => {
                sh.release(&s);
                slot = None;
                failures = 0;
            }
            Err(Attempt::Retry {
                message,
                retry_after,
                progressed,
                throttled,
            }) => {
                if progressed {
                    failures = 0;
                }
                failures += 1;
                if throttled {
                    // Fewer connections: the server (or a proxy) is asking us to slow down.
                    let r = sh.running.load(Ordering::Acquire);
                    sh.target.store((r / 2).max(1), Ordering::Release);
                    sh.throttled.store(true, Ordering::Release);
                }
                if failures > net.opts.max_retries {
                    sh.give_back(&s);
                    let done = sh.done.lock().unwrap().covered();
                    return End::Fatal(Error::download(
                        format!(
                            "{} failed after {failures} attempts without progress: {message}",
                            job.item.label()
                        ),
                        json!({
                            "url": job.item.url.as_str(),
                            "attempts": failures,
                            "bytesDownloaded": done,
                            "partialKept": !net.opts.cleanup_on_failure,
                            "lastError": message,
                        }),
                    ));
                }
                debug_log!(
                    "{}: range from byte {} failed ({message}); retry {failures}/{}",
                    job.item.url,
                    s.pos.load(Ordering::Acquire),
                    net.opts.max_retries
                );
                if throttled && try_retire(sh) {
                    sh.give_back(&s);
                    return End::Retired;
                }
                let d = super::retry::backoff(
                    failures,
                    net.opts.retry_base_delay,
                    retry_after,
                    fastrand::f64(),
                );
                tokio::select! {
                    _ = sh.stop.cancelled() => {}
                    _ = tokio::time::sleep(d) => {}
                }
            }
            Err(Attempt::Fatal(e)) => {
                sh.give_back(&s);
                return End::Fatal(e);
            }
            Err(Attempt::FallBack(r)) => {
                sh.give_back(&s);
                return End::FallBack(r);
            }
            Err(Attempt::Stopped) => {
                sh.give_back(&s);
                return End::Stopped;
            }
        }
    }
}

/// Leaves when more connections run than the target (one at a time, so exactly the surplus goes).
fn try_retire(sh: &Shared) -> bool {
    loop {
        let r = sh.running.load(Ordering::Acquire);
        if r <= sh.target.load(Ordering::Acquire) {
            return false;
        }
        if sh
            .running
            .compare_exchange(r, r - 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return true;
        }
    }
}

/// Runs the connections until the file is complete or something ends it; adapts their number
/// and records the written ranges along the way.
async fn drive(
    net: &Net,
    job: &Job<'_>,
    sh: &Arc<Shared>,
    max: usize,
    meta: &Path,
    base: &Sidecar,
) -> std::result::Result<(), End> {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let mut set = FuturesUnordered::new();
    // Every connection holds one unit of the download's budget while it runs.
    let launch = |set: &mut FuturesUnordered<_>| {
        sh.running.fetch_add(1, Ordering::AcqRel);
        net.budget.fetch_sub(1, Ordering::AcqRel);
        set.push(async {
            let end = connection(net, job, sh).await;
            if !matches!(end, End::Retired) {
                sh.running.fetch_sub(1, Ordering::AcqRel);
            }
            net.budget.fetch_add(1, Ordering::AcqRel);
            end
        });
    };
    let spare = || net.budget.load(Ordering::Acquire).max(0) as usize;
    // The first connection goes whatever the budget; more only as far as it allows.
    let first = sh.target.load(Ordering::Acquire).min(spare()).max(1);
    sh.target.store(first, Ordering::Release);
    for _ in 0..first {
        launch(&mut set);
    }
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut saved_at = Instant::now();
    let mut saved_parts = 0u64;
    let mut saved_covered = sh.done.lock().unwrap().covered();
    let mut pending_save: Option<tokio::task::JoinHandle<()>> = None;
    let mut window = (Instant::now(), saved_covered);
    let mut best_rate = 0.0f64;
    let mut plateaus = 0u32;
    let mut grow_after = Instant::now();
    let result = loop {
        if set.is_empty() {
            if sh.complete() {
                break Ok(());
            }
            if sh.stop.is_cancelled() || net.cancel.is_cancelled() {
                break Err(End::Stopped);
            }
            // Parts remain although every connection left (they all retired): start one.
            sh.target
                .store(sh.target.load(Ordering::Acquire).max(1), Ordering::Release);
            launch(&mut set);
            continue;
        }
        tokio::select! {
            _ = net.cancel.cancelled(), if !sh.stop.is_cancelled() => {
                sh.stop.cancel();
            }
            Some(end) = set.next() => match end {
                End::Finished | End::Retired | End::Stopped => {}
                End::Fatal(e) => {
                    sh.stop.cancel();
                    while set.next().await.is_some() {}
                    break Err(End::Fatal(e));
                }
                End::FallBack(r) => {
                    sh.stop.cancel();
                    while set.next().await.is_some() {}
                    break Err(End::FallBack(r));
                }
            },
            _ = tick.tick() => {
                let now = Instant::now();
                let covered = sh.done.lock().unwrap().covered();
                let parts = sh.parts_done.load(Ordering::Relaxed);
                let idle = pending_save.as_ref().is_none_or(|h| h.is_finished());
                if idle && covered != saved_covered
                    && (parts != saved_parts || now - saved_at >= CHECKPOINT_EVERY)
                {
                    let (s, m, b) = (sh.clone(), meta.to_path_buf(), base.clone());
                    pending_save = Some(tokio::task::spawn_blocking(move || {
                        checkpoint_blocking(&s.file, &s.done, &m, &b)
                    }));
                    saved_at = now;
                    saved_parts = parts;
                    saved_covered = covered;
                }
                let dt = now - window.0;
                if dt >= Duration::from_secs(1) {
                    let rate = (covered - window.1) as f64 / dt.as_secs_f64();
                    window = (now, covered);
                    let target = sh.target.load(Ordering::Acquire);
                    if sh.throttled.swap(false, Ordering::AcqRel) {
                        grow_after = now + Duration::from_secs(5);
                        best_rate = 0.0;
                    } else if now >= grow_after
                        && target < max
                        && spare() > 0
                        && sh.running.load(Ordering::Acquire) >= target
                    {
                        if rate > best_rate * 1.1 {
                            best_rate = rate;
                            plateaus = 0;
                            let next = (target + (target / 2).max(1)).min(max).min(target + spare());
                            sh.target.store(next, Ordering::Release);
                            for _ in target..next {
                                launch(&mut set);
                            }
                        } else {
                            plateaus += 1;
                            if plateaus >= 2 {
                                // Throughput stopped growing with connections: stay, look again later.
                                grow_after = now + Duration::from_secs(10);
                                plateaus = 0;
                                best_rate = rate;
                            }
                        }
                    }
                }
            }
        }
    };
    if let Some(h) = pending_save {
        let _ = h.await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::download::page_cache::{resident_pages, WINDOW};

    /// The hasher reads ranges that completed ahead of its cursor back from the file; once
    /// hashed they leave the page cache.
    #[test]
    fn hashed_ranges_leave_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.partial");
        let total = 8 * WINDOW;
        let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        // In the writer's buffer size, as a download writes it.
        for (i, chunk) in data.chunks(BUFFER).enumerate() {
            write_at(&file, chunk, (i * BUFFER) as u64).unwrap();
        }
        let file = Arc::new(file);
        let mut done = RangeSet::new();
        done.insert(0, total);
        let (tx, rx) = std_mpsc::channel();
        let (reply_tx, reply_rx) = std_mpsc::channel();
        tx.send(HashCmd::Finish(reply_tx)).unwrap();
        let hasher = Hasher {
            file,
            done: Arc::new(Mutex::new(done)),
            pool: Arc::new(Pool::new(1)),
            sha: Sha256::new(),
            cursor: 0,
            scratch: vec![0u8; BUFFER],
            abort: Arc::new(AtomicBool::new(false)),
            item: ItemTracker::detached(),
            resumed: 0,
            behind: DropBehind::new(0),
        };
        hasher.run(rx);
        let (n, sha) = reply_rx.recv().unwrap();
        assert_eq!(n, total);
        assert_eq!(
            sha,
            crate::checksum::finish_hex(Sha256::new_with_prefix(&data))
        );
        let Some((resident, pages)) = resident_pages(&p, 0, 5 * WINDOW) else {
            return;
        };
        assert!(resident * 10 < pages, "{resident} of {pages} pages cached");
    }
}
