//! The disk side of a transfer: one thread that appends chunks to `<dest>.partial` and feeds the
//! same bytes to SHA-256, so the file is hashed as it is written and never read back. The network
//! side hands chunks over a bounded channel, which keeps memory flat when the disk is slower than
//! the network. On resume the thread first hashes the bytes already in the partial file.

use crate::checksum::finish_hex;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

use super::progress::Tracker;

/// Chunks in flight between the network and the disk (hyper's chunks are at most a few hundred
/// KiB, so this bounds buffered data to a few MiB).
const QUEUE: usize = 32;
const WRITE_BUFFER: usize = 1 << 20;

enum Cmd {
    Data(Bytes),
    /// Truncate to zero and start a new hash (the remote file changed, or the range was ignored).
    Reset(oneshot::Sender<std::io::Result<()>>),
    /// Flush to the OS and report the length written so far.
    Sync(oneshot::Sender<std::io::Result<u64>>),
    /// Flush, fsync, and return the length and the hex digest.
    Finish(oneshot::Sender<std::io::Result<(u64, String)>>),
}

pub struct Writer {
    tx: mpsc::Sender<Cmd>,
}

struct State {
    out: BufWriter<File>,
    hasher: Sha256,
    written: u64,
    failed: Option<std::io::Error>,
}

impl State {
    fn err(&self) -> std::io::Error {
        let e = self.failed.as_ref().expect("checked by caller");
        std::io::Error::new(e.kind(), e.to_string())
    }
}

/// Hashes the first `len` bytes of `file` into `hasher`, counting them into the tracker as it goes
/// so a long resume shows progress.
fn hash_prefix(
    file: &mut File,
    len: u64,
    hasher: &mut Sha256,
    tracker: &Tracker,
) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
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
    }
    Ok(())
}

fn open_state(path: &Path, offset: u64, tracker: &Tracker) -> std::io::Result<State> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let mut hasher = Sha256::new();
    if offset > 0 {
        hash_prefix(&mut file, offset, &mut hasher, tracker)?;
    }
    // Anything past the offset (a torn last write) is dropped.
    file.set_len(offset)?;
    file.seek(SeekFrom::Start(offset))?;
    Ok(State {
        out: BufWriter::with_capacity(WRITE_BUFFER, file),
        hasher,
        written: offset,
        failed: None,
    })
}

fn run(mut st: State, mut rx: mpsc::Receiver<Cmd>) {
    while let Some(cmd) = rx.blocking_recv() {
        match cmd {
            Cmd::Data(b) => {
                if st.failed.is_none() {
                    match st.out.write_all(&b) {
                        Ok(()) => {
                            st.hasher.update(&b);
                            st.written += b.len() as u64;
                        }
                        Err(e) => st.failed = Some(e),
                    }
                }
            }
            Cmd::Reset(reply) => {
                let r = (|| {
                    st.out.flush()?;
                    let f = st.out.get_mut();
                    f.set_len(0)?;
                    f.seek(SeekFrom::Start(0))?;
                    Ok(())
                })();
                if r.is_ok() {
                    st.hasher = Sha256::new();
                    st.written = 0;
                    st.failed = None;
                }
                let _ = reply.send(r);
            }
            Cmd::Sync(reply) => {
                let r = if st.failed.is_some() {
                    Err(st.err())
                } else {
                    st.out.flush().map(|_| st.written)
                };
                let _ = reply.send(r);
            }
            Cmd::Finish(reply) => {
                let r = if st.failed.is_some() {
                    Err(st.err())
                } else {
                    (|| {
                        st.out.flush()?;
                        st.out.get_ref().sync_all()?;
                        Ok((st.written, finish_hex(st.hasher.clone())))
                    })()
                };
                let _ = reply.send(r);
                return;
            }
        }
    }
}

fn gone() -> std::io::Error {
    std::io::Error::other("the file writer stopped")
}

impl Writer {
    /// Opens `path`, keeping (and hashing) its first `offset` bytes. Returns once that is done.
    pub async fn open(path: PathBuf, offset: u64, tracker: Arc<Tracker>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (ready_tx, ready_rx) = oneshot::channel();
        let p = path;
        std::thread::Builder::new()
            .name("genai-download-writer".into())
            .spawn(move || match open_state(&p, offset, &tracker) {
                Ok(st) => {
                    let _ = ready_tx.send(Ok(()));
                    run(st, rx);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })?;
        ready_rx.await.map_err(|_| gone())??;
        Ok(Writer { tx })
    }

    /// Queues a chunk; waits only when the queue is full. Err means the writer is gone (its error
    /// comes back from the next `sync`/`finish`).
    pub async fn write(&self, chunk: Bytes) -> Result<(), ()> {
        self.tx.send(Cmd::Data(chunk)).await.map_err(|_| ())
    }

    pub async fn reset(&self) -> std::io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Reset(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    pub async fn sync(&self) -> std::io::Result<u64> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Sync(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Flushes and fsyncs; the writer is done afterwards.
    pub async fn finish(self) -> std::io::Result<(u64, String)> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Finish(tx)).await.map_err(|_| gone())?;
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
        let t = Tracker::new();
        let w = Writer::open(p.clone(), 0, t.clone()).await.unwrap();
        w.write(Bytes::from_static(b"hello ")).await.unwrap();
        assert_eq!(w.sync().await.unwrap(), 6);
        // A crash here leaves "hello " plus junk; a resume at 6 drops the junk and hashes the rest.
        drop(w);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"JUNK")
            .unwrap();
        let w = Writer::open(p.clone(), 6, t.clone()).await.unwrap();
        assert_eq!(t.snapshot().downloaded, 6);
        w.write(Bytes::from_static(b"world")).await.unwrap();
        let (n, hex) = w.finish().await.unwrap();
        assert_eq!(n, 11);
        assert_eq!(std::fs::read(&p).unwrap(), b"hello world");
        assert_eq!(hex, sha256_file(&p).unwrap());
    }

    #[tokio::test]
    async fn reset_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.partial");
        let w = Writer::open(p.clone(), 0, Tracker::new()).await.unwrap();
        w.write(Bytes::from_static(b"stale")).await.unwrap();
        w.reset().await.unwrap();
        w.write(Bytes::from_static(b"abc")).await.unwrap();
        let (n, hex) = w.finish().await.unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn resuming_past_the_end_fails() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.partial");
        std::fs::write(&p, b"abc").unwrap();
        assert!(Writer::open(p, 10, Tracker::new()).await.is_err());
    }
}
