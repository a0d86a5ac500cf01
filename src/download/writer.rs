//! The disk side of a transfer. Received bytes are copied into a small pool of 512 KiB buffers (so the
//! HTTP stack reuses its own read buffer instead of faulting in fresh pages for every chunk); a
//! writer thread appends full buffers to `<dest>.partial` and hands them to a hasher thread, which
//! feeds SHA-256 and returns them to the pool. Writing and hashing overlap, the file is hashed as
//! it is written and never read back, and memory stays bounded by the pool whatever the speeds.
//! On resume the bytes already in the partial file are hashed first. Written (and re-read) bytes
//! leave the page cache a window behind (`page_cache`).

use crate::checksum::finish_hex;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

use super::cancel::CancelToken;
use super::page_cache::DropBehind;
use super::progress::ItemTracker;

const BUFFER: usize = 512 << 10;
/// Buffers in flight between the network, the disk and the hash (bounds memory to a few MiB).
const POOL: usize = 6;

enum Cmd {
    Data(Vec<u8>),
    /// Truncate to zero and start a new hash (the remote file changed, or the range was ignored).
    Reset(oneshot::Sender<std::io::Result<()>>),
    /// Report the length written so far (everything sent before is on its way to the OS).
    Sync(oneshot::Sender<std::io::Result<u64>>),
    /// fsync, then the hasher replies with the length and the hex digest.
    Finish(oneshot::Sender<std::io::Result<(u64, String)>>),
}

enum HashCmd {
    Data(Vec<u8>),
    Reset,
    Finish(u64, oneshot::Sender<std::io::Result<(u64, String)>>),
}

pub struct Writer {
    tx: mpsc::UnboundedSender<Cmd>,
    /// Set by the writer thread when a write fails, so the network side stops at the next chunk
    /// instead of streaming the rest of a multi-GB body into nothing.
    failed: Arc<AtomicBool>,
    pool: mpsc::UnboundedReceiver<Vec<u8>>,
    allocated: usize,
    cur: Vec<u8>,
}

/// The error `Writer::open` returns when the cancel token fired while it hashed the prefix.
pub fn is_cancelled_error(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Interrupted
}

/// Hashes the first `len` bytes of `file`, counting them into the tracker as it goes so a long
/// resume shows progress. A cancel stops it between blocks: hashing a 20 GB partial takes
/// minutes, and cancelling must not wait for that.
fn hash_prefix(
    file: &mut File,
    len: u64,
    hasher: &mut Sha256,
    tracker: &ItemTracker,
    cancel: &CancelToken,
) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; BUFFER];
    let mut left = len;
    let mut behind = DropBehind::new(0);
    while left > 0 {
        if cancel.is_cancelled() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "cancelled while verifying the partial file",
            ));
        }
        let want = (buf.len() as u64).min(left) as usize;
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the partial file is shorter than expected",
            ));
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
        tracker.set_current(len - left);
        behind.advance(file, len - left);
    }
    Ok(())
}

fn open_file(
    path: &Path,
    offset: u64,
    tracker: &ItemTracker,
    cancel: &CancelToken,
) -> std::io::Result<(File, Sha256)> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let mut hasher = Sha256::new();
    if offset > 0 {
        hash_prefix(&mut file, offset, &mut hasher, tracker, cancel)?;
    }
    // Anything past the offset (a torn last write) is dropped.
    file.set_len(offset)?;
    file.seek(SeekFrom::Start(offset))?;
    Ok((file, hasher))
}

fn copy_err(e: &std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), e.to_string())
}

fn write_loop(
    mut file: File,
    mut written: u64,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    hash_tx: std_mpsc::Sender<HashCmd>,
    pool: mpsc::UnboundedSender<Vec<u8>>,
    failed_flag: Arc<AtomicBool>,
) {
    let mut failed: Option<std::io::Error> = None;
    // The hash works from the buffers, so written bytes can leave the page cache at once.
    let mut behind = DropBehind::new(written);
    while let Some(cmd) = rx.blocking_recv() {
        match cmd {
            Cmd::Data(buf) => {
                if failed.is_none() {
                    match file.write_all(&buf) {
                        Ok(()) => {
                            written += buf.len() as u64;
                            behind.advance(&file, written);
                            let _ = hash_tx.send(HashCmd::Data(buf));
                            continue;
                        }
                        Err(e) => {
                            failed_flag.store(true, Ordering::Release);
                            failed = Some(e);
                        }
                    }
                }
                let _ = pool.send(buf);
            }
            Cmd::Reset(reply) => {
                let r = file.set_len(0).and_then(|_| file.seek(SeekFrom::Start(0)));
                if r.is_ok() {
                    written = 0;
                    behind = DropBehind::new(0);
                    failed = None;
                    failed_flag.store(false, Ordering::Release);
                    let _ = hash_tx.send(HashCmd::Reset);
                }
                let _ = reply.send(r.map(|_| ()));
            }
            Cmd::Sync(reply) => {
                let _ = reply.send(match &failed {
                    Some(e) => Err(copy_err(e)),
                    None => Ok(written),
                });
            }
            Cmd::Finish(reply) => {
                let r = match &failed {
                    Some(e) => Err(copy_err(e)),
                    None => file.sync_all(),
                };
                match r {
                    Ok(()) => {
                        let _ = hash_tx.send(HashCmd::Finish(written, reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
                return;
            }
        }
    }
}

fn hash_loop(
    mut hasher: Sha256,
    rx: std_mpsc::Receiver<HashCmd>,
    pool: mpsc::UnboundedSender<Vec<u8>>,
) {
    while let Ok(cmd) = rx.recv() {
        match cmd {
            HashCmd::Data(buf) => {
                hasher.update(&buf);
                let _ = pool.send(buf);
            }
            HashCmd::Reset => hasher = Sha256::new(),
            HashCmd::Finish(len, reply) => {
                let _ = reply.send(Ok((len, finish_hex(hasher))));
                return;
            }
        }
    }
}

fn gone() -> std::io::Error {
    std::io::Error::other("the file writer stopped")
}

impl Writer {
    /// Opens `path`, keeping (and hashing) its first `offset` bytes. Returns once that is done,
    /// or with an `Interrupted` error (`is_cancelled_error`) when `cancel` fires meanwhile.
    pub async fn open(
        path: PathBuf,
        offset: u64,
        tracker: Arc<ItemTracker>,
        cancel: CancelToken,
    ) -> std::io::Result<Self> {
        let (file, hasher) =
            tokio::task::spawn_blocking(move || open_file(&path, offset, &tracker, &cancel))
                .await
                .map_err(|_| gone())??;
        let (tx, rx) = mpsc::unbounded_channel();
        let (pool_tx, pool_rx) = mpsc::unbounded_channel();
        let (hash_tx, hash_rx) = std_mpsc::channel();
        let p = pool_tx.clone();
        let failed = Arc::new(AtomicBool::new(false));
        let f = failed.clone();
        std::thread::Builder::new()
            .name("genai-download-hash".into())
            .spawn(move || hash_loop(hasher, hash_rx, p))?;
        std::thread::Builder::new()
            .name("genai-download-write".into())
            .spawn(move || write_loop(file, offset, rx, hash_tx, pool_tx, f))?;
        Ok(Writer {
            tx,
            failed,
            pool: pool_rx,
            allocated: 0,
            cur: Vec::new(),
        })
    }

    async fn buffer(&mut self) -> Result<Vec<u8>, ()> {
        if let Ok(mut b) = self.pool.try_recv() {
            b.clear();
            return Ok(b);
        }
        if self.allocated < POOL {
            self.allocated += 1;
            return Ok(Vec::with_capacity(BUFFER));
        }
        // All buffers are in flight: wait for the disk or the hash to hand one back.
        let mut b = self.pool.recv().await.ok_or(())?;
        b.clear();
        Ok(b)
    }

    fn send_current(&mut self) -> Result<(), ()> {
        if self.cur.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.cur);
        self.tx.send(Cmd::Data(buf)).map_err(|_| ())
    }

    /// Copies `data` into the pool buffers, sending each one as it fills; waits only when every
    /// buffer is in flight. Err means the writer is gone (its error comes back from `sync`).
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), ()> {
        if self.failed.load(Ordering::Acquire) {
            return Err(());
        }
        while !data.is_empty() {
            if self.cur.capacity() == 0 {
                self.cur = self.buffer().await?;
            }
            let room = self.cur.capacity() - self.cur.len();
            let n = room.min(data.len());
            self.cur.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.cur.len() == self.cur.capacity() {
                self.send_current()?;
            }
        }
        Ok(())
    }

    pub async fn reset(&mut self) -> std::io::Result<()> {
        self.cur.clear();
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Reset(tx)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Hands over buffered bytes and returns the length written so far.
    pub async fn sync(&mut self) -> std::io::Result<u64> {
        self.send_current().map_err(|_| gone())?;
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Sync(tx)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Writes what is buffered, fsyncs, and returns the length and the hex digest.
    pub async fn finish(mut self) -> std::io::Result<(u64, String)> {
        self.send_current().map_err(|_| gone())?;
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Finish(tx)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::sha256_file;

    #[tokio::test]
    async fn hashes_what_it_writes_and_resumes_over_existing_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.partial");
        let t = ItemTracker::detached();
        let mut w = Writer::open(p.clone(), 0, t.clone(), CancelToken::new())
            .await
            .unwrap();
        w.write(b"hello ").await.unwrap();
        assert_eq!(w.sync().await.unwrap(), 6);
        // A crash here leaves "hello " plus junk; a resume at 6 drops the junk and hashes the rest.
        drop(w);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"JUNK")
            .unwrap();
        let mut w = Writer::open(p.clone(), 6, t.clone(), CancelToken::new())
            .await
            .unwrap();
        assert_eq!(t.current(), 6);
        w.write(b"world").await.unwrap();
        let (n, hex) = w.finish().await.unwrap();
        assert_eq!(n, 11);
        assert_eq!(std::fs::read(&p).unwrap(), b"hello world");
        assert_eq!(hex, sha256_file(&p).unwrap());
    }

    #[tokio::test]
    async fn many_buffers_through_a_small_pool() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.partial");
        let mut w = Writer::open(p.clone(), 0, ItemTracker::detached(), CancelToken::new())
            .await
            .unwrap();
        let chunk: Vec<u8> = (0..300_001u32).map(|i| (i * 7) as u8).collect();
        let mut all = Vec::new();
        for _ in 0..40 {
            w.write(&chunk).await.unwrap();
            all.extend_from_slice(&chunk);
        }
        assert!(w.allocated <= POOL);
        let (n, hex) = w.finish().await.unwrap();
        assert_eq!(n, all.len() as u64);
        assert_eq!(std::fs::read(&p).unwrap(), all);
        assert_eq!(hex, sha256_file(&p).unwrap());
    }

    #[tokio::test]
    async fn reset_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.partial");
        let mut w = Writer::open(p.clone(), 0, ItemTracker::detached(), CancelToken::new())
            .await
            .unwrap();
        w.write(&vec![1u8; BUFFER + 10]).await.unwrap();
        w.reset().await.unwrap();
        w.write(b"abc").await.unwrap();
        let (n, hex) = w.finish().await.unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn a_cancel_stops_the_prefix_hash_and_leaves_the_partial_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.partial");
        std::fs::write(&p, vec![7u8; 3 * BUFFER]).unwrap();
        let cancel = CancelToken::new();
        cancel.cancel();
        let e = match Writer::open(
            p.clone(),
            3 * BUFFER as u64,
            ItemTracker::detached(),
            cancel,
        )
        .await
        {
            Ok(_) => panic!("opened although cancelled"),
            Err(e) => e,
        };
        assert!(is_cancelled_error(&e), "{e}");
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 3 * BUFFER as u64);
    }

    #[tokio::test]
    async fn written_bytes_leave_the_page_cache() {
        use crate::download::page_cache::{resident_pages, WINDOW};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.partial");
        let mut w = Writer::open(p.clone(), 0, ItemTracker::detached(), CancelToken::new())
            .await
            .unwrap();
        let chunk = vec![3u8; 1 << 20];
        for _ in 0..((8 * WINDOW) >> 20) {
            w.write(&chunk).await.unwrap();
        }
        w.finish().await.unwrap();
        let Some((resident, pages)) = resident_pages(&p, 0, 5 * WINDOW) else {
            return;
        };
        assert!(resident * 10 < pages, "{resident} of {pages} pages cached");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_resumed_prefix_is_hashed_without_staying_cached() {
        use crate::download::page_cache::{resident_pages, WINDOW};
        use std::os::unix::io::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.partial");
        let len = 8 * WINDOW;
        std::fs::write(&p, vec![9u8; len as usize]).unwrap();
        // Start from a file on disk and not in the cache, as after a restart.
        let f = std::fs::File::open(&p).unwrap();
        f.sync_all().unwrap();
        // SAFETY: an open descriptor; only drops clean cached pages.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        let w = Writer::open(p.clone(), len, ItemTracker::detached(), CancelToken::new())
            .await
            .unwrap();
        let cached = resident_pages(&p, 0, 5 * WINDOW);
        let (n, hex) = w.finish().await.unwrap();
        assert_eq!((n, hex), (len, sha256_file(&p).unwrap()));
        let Some((resident, pages)) = cached else {
            return;
        };
        assert!(resident * 10 < pages, "{resident} of {pages} pages cached");
    }

    #[tokio::test]
    async fn resuming_past_the_end_fails() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.partial");
        std::fs::write(&p, b"abc").unwrap();
        assert!(
            Writer::open(p.clone(), 10, ItemTracker::detached(), CancelToken::new())
                .await
                .is_err()
        );
    }
}
