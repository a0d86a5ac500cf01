//! Fetching one file: `<dest>.partial` written in one streaming pass with the hash computed on the
//! way, continued with a validated Range request after a drop, a stall or a crash, retried with
//! backoff, verified, fsynced and only then renamed to `<dest>`. A file at `<dest>` is therefore
//! always complete and, when a hash was known, verified.

use crate::debug_log;
use crate::error::{Error, Result};
use crate::http::{header_str, send};
use crate::storage::atomic::sync_dir;
use reqwest::header::{HeaderMap, HeaderValue, IF_RANGE, RANGE};
use reqwest::Method;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

use super::net::{Failure, Net};
use super::parallel::{self, Outcome};
use super::plan::Item;
use super::preflight::Probe;
use super::progress::{ItemTracker, Phase};
use super::resume::{self, classify, decide_start, parse_content_range, Reply, Sidecar, Start};
use super::writer::Writer;

/// Where the expected hash came from (for messages and details).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashSource {
    Caller,
    HuggingFace,
}

impl HashSource {
    pub fn as_str(self) -> &'static str {
        match self {
            HashSource::Caller => "checksum",
            HashSource::HuggingFace => "huggingface",
        }
    }
}

pub struct Job<'a> {
    pub item: &'a Item,
    pub probe: &'a Probe,
    pub expected: Option<(String, HashSource)>,
    pub tracker: Arc<ItemTracker>,
    /// Whether `probe.size` is already part of the tracker's total.
    pub size_counted: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub size: u64,
    pub sha256: String,
}

/// The expected hash: the caller's, else Hugging Face's.
pub fn expected_hash(item: &Item, probe: &Probe) -> Option<(String, HashSource)> {
    item.user_checksum
        .clone()
        .map(|h| (h, HashSource::Caller))
        .or_else(|| probe.sha256.clone().map(|h| (h, HashSource::HuggingFace)))
}

pub fn mismatch_error(item: &Item, expected: &str, actual: &str, source: HashSource) -> Error {
    let message = match (&item.role, item.shard) {
        (Some(r), _) => format!("Checksum verification failed for component: {r}"),
        (None, Some(n)) => format!("Checksum verification failed for shard {n}"),
        _ => "Checksum verification failed".to_string(),
    };
    Error::download(
        message,
        json!({
            "expected": crate::checksum::format(expected),
            "actual": crate::checksum::format(actual),
            "expectedFrom": source.as_str(),
            "component": item.role,
            "url": item.url.as_str(),
        }),
    )
}

pub(super) fn write_error(item: &Item, path: &Path, e: &std::io::Error) -> Error {
    if e.raw_os_error() == Some(28) || e.kind() == std::io::ErrorKind::StorageFull {
        return Error::insufficient(
            format!("The disk filled up while downloading {}: {e}", item.label()),
            json!({ "path": path.display().to_string(), "error": e.to_string() }),
        );
    }
    if e.kind() == std::io::ErrorKind::FileTooLarge {
        // FAT32 (4 GiB per file) or a process file size limit: more free space will not help,
        // another volume will, so the message says which limit was hit.
        return Error::insufficient(
            format!(
                "Cannot download {}: the file system (or a file size limit) does not allow a file this large ({}). Use a volume formatted NTFS, APFS, ext4 or exFAT, not FAT32.",
                item.label(),
                e
            ),
            json!({ "path": path.display().to_string(), "error": e.to_string() }),
        );
    }
    Error::io("Failed to write the download", path, e)
}

/// How reading one response body ended.
enum BodyEnd {
    Eof,
    Broken(String),
    Stalled,
    TooLong,
    WriterGone,
    Cancelled,
}

/// Streams the body into the writer, with the stall timer restarted on every chunk.
async fn stream_body(
    net: &Net,
    mut resp: crate::http::Response,
    writer: &mut Writer,
    tracker: &ItemTracker,
    mut pos: u64,
    total: Option<u64>,
) -> BodyEnd {
    let stall = net.opts.stall_timeout;
    loop {
        let next = tokio::select! {
            biased;
            _ = net.cancel.cancelled() => return BodyEnd::Cancelled,
            r = tokio::time::timeout(stall, resp.chunk()) => r,
        };
        let mut chunk = match next {
            Err(_) => return BodyEnd::Stalled,
            Ok(Err(e)) => return BodyEnd::Broken(e),
            Ok(Ok(None)) => return BodyEnd::Eof,
            Ok(Ok(Some(c))) => c,
        };
        let mut too_long = false;
        if let Some(t) = total {
            if pos + chunk.len() as u64 > t {
                chunk.truncate((t - pos) as usize);
                too_long = true;
            }
        }
        let n = chunk.len() as u64;
        if n > 0 {
            let sent = tokio::select! {
                biased;
                _ = net.cancel.cancelled() => return BodyEnd::Cancelled,
                r = writer.write(&chunk) => r,
            };
            if sent.is_err() {
                return BodyEnd::WriterGone;
            }
            pos += n;
            tracker.add_received(n);
        }
        if too_long {
            return BodyEnd::TooLong;
        }
    }
}

struct Attempt<'a, 'b> {
    net: &'a Net,
    job: &'a Job<'b>,
    partial: std::path::PathBuf,
    meta: std::path::PathBuf,
    /// The validators the bytes in the partial came with.
    sidecar: Option<Sidecar>,
    /// The size we now believe the file has.
    total: Option<u64>,
    counted: bool,
    /// The hash the file must have; Hugging Face's may move on if the file changes upstream.
    expected: Option<(String, HashSource)>,
    /// Bytes of more than one response (or an earlier run) are in the file: a mismatch may be
    /// a bad splice rather than a bad source, so one clean pass is worth trying.
    spliced: bool,
}

impl Attempt<'_, '_> {
    fn learn_total(&mut self, t: u64) {
        if !self.counted {
            self.job.tracker.grow_total(t);
            self.counted = true;
        }
        self.total = Some(t);
    }

    async fn reset(&mut self, writer: &mut Writer, why: &str) -> Result<()> {
        debug_log!("{}: restarting from zero: {why}", self.job.item.url);
        writer
            .reset()
            .await
            .map_err(|e| write_error(self.job.item, &self.partial, &e))?;
        let _ = std::fs::remove_file(&self.meta);
        self.sidecar = None;
        self.spliced = false;
        self.job.tracker.set_current(0);
        Ok(())
    }

    /// Streams until the partial holds the whole file (Ok), or fails for good (Err).
    async fn run(&mut self, writer: &mut Writer, mut offset: u64) -> Result<()> {
        let net = self.net;
        let item = self.job.item;
        let mut failures: u32 = 0;
        loop {
            if net.cancel.is_cancelled() {
                return Err(net.cancelled_error(&item.url));
            }
            if self.total == Some(offset) && offset > 0 {
                return Ok(());
            }
            let mut headers = HeaderMap::new();
            if offset > 0 {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes={offset}-")) {
                    headers.insert(RANGE, v);
                }
                if let Some(v) = resume::if_range(self.sidecar.as_ref())
                    .and_then(|v| HeaderValue::from_str(&v).ok())
                {
                    headers.insert(IF_RANGE, v);
                }
            }
            let sent = tokio::select! {
                biased;
                _ = net.cancel.cancelled() => return Err(net.cancelled_error(&item.url)),
                r = tokio::time::timeout(net.opts.stall_timeout, send(&net.client, Method::GET, &item.url, &headers, &net.auth)) => r,
            };
            let failure = match sent {
                Err(_) => Failure::Retry {
                    message: format!("no response within {:?}", net.opts.stall_timeout),
                    retry_after: None,
                },
                Ok(Err(e)) if e.retryable() => Failure::Retry {
                    message: e.to_string(),
                    retry_after: None,
                },
                Ok(Err(e)) => Failure::Fatal(Error::download(
                    e.to_string(),
                    json!({ "url": item.url.as_str() }),
                )),
                Ok(Ok((resp, last, linked))) => {
                    let status = resp.status().as_u16();
                    let moved = match (&self.expected, &linked.sha256) {
                        (Some((old, HashSource::HuggingFace)), Some(new)) => old != new,
                        _ => false,
                    };
                    if moved {
                        // The file changed upstream since the probe (or since the bytes we have
                        // were fetched): its new hash is the one to check, from byte zero.
                        self.expected = linked.sha256.clone().map(|h| (h, HashSource::HuggingFace));
                    }
                    if moved && offset > 0 {
                        drop(resp);
                        self.reset(writer, "the remote file changed (new sha256)")
                            .await?;
                        offset = 0;
                        Failure::Retry {
                            message: "the remote file changed (new sha256)".into(),
                            retry_after: None,
                        }
                    } else if !(200..300).contains(&status) && status != 416 {
                        net.status_failure(status, resp.headers(), &last, item.repo.as_deref())
                    } else {
                        match self.body(writer, resp, status, offset).await? {
                            (o, None) => {
                                offset = o;
                                if self.total.is_none_or(|t| t == offset) {
                                    return Ok(());
                                }
                                continue;
                            }
                            (o, Some(f)) => {
                                if o > offset {
                                    failures = 0; // progress was made: the budget starts over
                                }
                                offset = o;
                                f
                            }
                        }
                    }
                }
            };
            match failure {
                Failure::Cancelled => return Err(net.cancelled_error(&item.url)),
                Failure::Fatal(e) => return Err(e.with_detail("file", json!(item.label()))),
                Failure::Retry {
                    message,
                    retry_after,
                } => {
                    failures += 1;
                    let last_error = message;
                    if failures > net.opts.max_retries {
                        return Err(Error::download(
                            format!(
                                "{} failed after {failures} attempts without progress: {last_error}",
                                item.label()
                            ),
                            json!({
                                "url": item.url.as_str(),
                                "attempts": failures,
                                "bytesDownloaded": offset,
                                "partialKept": !net.opts.cleanup_on_failure,
                                "lastError": last_error,
                            }),
                        ));
                    }
                    debug_log!(
                        "{}: attempt failed ({last_error}); retry {failures}/{} from byte {offset}",
                        item.url,
                        net.opts.max_retries
                    );
                    if !net.wait_before_retry(failures, retry_after).await {
                        return Err(net.cancelled_error(&item.url));
                    }
                }
            }
        }
    }

    /// Handles a 2xx/416 answer: decides append/restart, records validators, streams the body.
    /// Returns the new offset and, when the attempt did not finish, the failure to retry.
    async fn body(
        &mut self,
        writer: &mut Writer,
        resp: crate::http::Response,
        status: u16,
        mut offset: u64,
    ) -> Result<(u64, Option<Failure>)> {
        let h = resp.headers();
        let cr = header_str(h, "content-range").and_then(|v| parse_content_range(&v));
        let etag = header_str(h, "etag");
        let last_modified = header_str(h, "last-modified");
        let known_etag = self.sidecar.as_ref().and_then(|s| s.etag.clone());
        match classify(
            status,
            offset,
            cr,
            etag.as_deref(),
            known_etag.as_deref(),
            self.total,
        ) {
            Reply::Complete => return Ok((offset, None)),
            Reply::Restart { reason } => {
                self.reset(writer, reason).await?;
                return Ok((
                    0,
                    Some(Failure::Retry {
                        message: reason.to_string(),
                        retry_after: None,
                    }),
                ));
            }
            Reply::RestartWithBody { reason } => {
                self.reset(writer, reason).await?;
                offset = 0;
            }
            Reply::Append => self.spliced |= offset > 0,
        }
        let body_total = match (status, cr) {
            (206, Some(c)) => c.total,
            _ => header_str(h, "content-length")
                .and_then(|v| v.parse::<u64>().ok())
                .map(|len| offset + len),
        };
        if offset == 0 {
            // A fresh body: its validators are the ones the partial's bytes will carry.
            if let Some(t) = body_total {
                self.learn_total(t);
            }
            let sc = Sidecar {
                version: 1,
                url: self.job.item.url.to_string(),
                etag,
                last_modified,
                total: self.total,
                sha256: self.expected.as_ref().map(|(h, _)| h.clone()),
                ranges: None,
            };
            resume::save(&self.meta, &sc)?;
            self.sidecar = Some(sc);
        } else if let (Some(t), None) = (body_total, self.total) {
            self.learn_total(t);
        }
        self.job.tracker.set_current(offset);
        self.job.tracker.set_phase(Phase::Downloading);
        let end = stream_body(
            self.net,
            resp,
            writer,
            &self.job.tracker,
            offset,
            self.total,
        )
        .await;
        let written = writer
            .sync()
            .await
            .map_err(|e| write_error(self.job.item, &self.partial, &e))?;
        self.job.tracker.set_current(written);
        let retry = |m: String| {
            Some(Failure::Retry {
                message: m,
                retry_after: None,
            })
        };
        Ok(match end {
            BodyEnd::Eof => match self.total {
                Some(t) if written < t => (
                    written,
                    retry(format!(
                        "the connection closed after {written} of {t} bytes"
                    )),
                ),
                _ => (written, None),
            },
            BodyEnd::Broken(m) => (written, retry(m)),
            BodyEnd::Stalled => (
                written,
                retry(format!(
                    "no data received for {:?} (stalled)",
                    self.net.opts.stall_timeout
                )),
            ),
            BodyEnd::TooLong => {
                self.reset(writer, "the server sent more bytes than announced")
                    .await?;
                (0, retry("the server sent more bytes than announced".into()))
            }
            BodyEnd::WriterGone => {
                // `sync` above reports the writer's error; reaching here means it had none.
                (written, retry("the file writer stopped".into()))
            }
            BodyEnd::Cancelled => (written, Some(Failure::Cancelled)),
        })
    }
}

/// Downloads one item to `item.dest`, resuming a valid `.partial`. On success the file is complete,
/// verified when a hash was known, fsynced and renamed; the sidecar is gone.
pub async fn fetch(net: &Net, job: Job<'_>) -> Result<Fetched> {
    let settings = net.opts.parallel();
    if let Some(total) = job.probe.size.filter(|_| settings.applies(job.probe.size)) {
        let mut fresh_tried = false;
        loop {
            match parallel::fetch(net, &job, total, settings).await? {
                Outcome::Done {
                    size,
                    sha256,
                    resumed,
                } => {
                    let item = job.item;
                    let partial = resume::partial_path(&item.dest);
                    let meta = resume::sidecar_path(&item.dest);
                    if let Some((want, source)) = &job.expected {
                        if &sha256 != want {
                            let _ = std::fs::remove_file(&partial);
                            let _ = std::fs::remove_file(&meta);
                            if resumed && !fresh_tried {
                                // Bytes of an earlier run may be what is wrong: one clean pass.
                                debug_log!(
                                    "{}: hash mismatch after a resume; downloading again",
                                    item.url
                                );
                                fresh_tried = true;
                                job.tracker.set_current(0);
                                continue;
                            }
                            return Err(mismatch_error(item, want, &sha256, *source));
                        }
                    }
                    place(item, &partial, &meta, job.expected.is_some())?;
                    return Ok(Fetched { size, sha256 });
                }
                Outcome::FallBack(reason) => {
                    debug_log!("{}: one stream instead of ranges: {reason}", job.item.url);
                    job.tracker.set_current(0);
                    break;
                }
            }
        }
    }
    let item = job.item;
    let dest = item.dest.as_path();
    let partial = resume::partial_path(dest);
    let meta = resume::sidecar_path(dest);
    let mut expected = job.expected.clone();
    let remote = job.probe.remote();

    let partial_len = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    let sidecar = if partial_len > 0 {
        resume::load(&meta)
    } else {
        None
    };
    let mut offset = match decide_start(
        partial_len,
        sidecar.as_ref(),
        item.url.as_str(),
        &remote,
        expected.as_ref().map(|(h, _)| h.as_str()),
    ) {
        Start::Resume { offset } => offset,
        Start::Fresh { reason } => {
            if partial_len > 0 {
                debug_log!("{}: not resuming: {reason}", item.url);
            }
            0
        }
    };
    let mut sidecar = if offset > 0 { sidecar } else { None };
    // A second full pass is worth it only when a resumed prefix might be what is wrong.
    let mut may_retry_mismatch = true;
    loop {
        if offset > 0 {
            job.tracker.set_phase(Phase::Verifying);
        }
        let mut writer = Writer::open(
            partial.clone(),
            offset,
            job.tracker.clone(),
            net.cancel.clone(),
        )
        .await
        .map_err(|e| {
            if super::writer::is_cancelled_error(&e) {
                net.cancelled_error(&item.url)
            } else {
                write_error(item, &partial, &e)
            }
        })?;
        if offset == 0 {
            let _ = std::fs::remove_file(&meta);
        }
        let mut attempt = Attempt {
            net,
            job: &job,
            partial: partial.clone(),
            meta: meta.clone(),
            sidecar: sidecar.take(),
            total: remote.total,
            counted: job.size_counted,
            expected: expected.clone(),
            spliced: offset > 0,
        };
        let result = attempt.run(&mut writer, offset).await;
        if let Err(e) = result {
            // Flush what arrived so the next attempt can resume from it; an empty partial is
            // worth nothing and is not left behind. After a write error (disk full) the file
            // still holds a valid prefix, only its length is the writer's last word.
            let kept = match writer.sync().await {
                Ok(n) => n,
                Err(_) => std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0),
            };
            drop(writer);
            if kept == 0 {
                let _ = std::fs::remove_file(&partial);
                let _ = std::fs::remove_file(&meta);
            }
            return Err(e);
        }
        expected = attempt.expected.clone();
        let (size, sha) = writer
            .finish()
            .await
            .map_err(|e| write_error(item, &partial, &e))?;
        if let Some((want, source)) = &expected {
            if &sha != want {
                if attempt.spliced && may_retry_mismatch {
                    debug_log!(
                        "{}: hash mismatch after a resume; downloading again from zero",
                        item.url
                    );
                    may_retry_mismatch = false;
                    offset = 0;
                    job.tracker.set_current(0);
                    continue;
                }
                let _ = std::fs::remove_file(&partial);
                let _ = std::fs::remove_file(&meta);
                return Err(mismatch_error(item, want, &sha, *source));
            }
        }
        place(item, &partial, &meta, expected.is_some())?;
        return Ok(Fetched { size, sha256: sha });
    }
}

/// Moves a complete partial into place. Without a hash to check it against, a file whose content
/// is not what its name says (an HTML page) is refused instead.
fn place(item: &Item, partial: &Path, meta: &Path, verified: bool) -> Result<()> {
    let dest = item.dest.as_path();
    if !verified {
        if let Err(why) = super::sniff::check(partial, &item.filename) {
            let _ = std::fs::remove_file(partial);
            let _ = std::fs::remove_file(meta);
            return Err(Error::download(
                format!(
                    "The server did not send {}: {why}. A sign-in page, proxy error or expired link answers like this; check the URL or network.",
                    item.filename
                ),
                json!({ "url": item.url.as_str(), "path": dest.display().to_string(), "reason": why }),
            ));
        }
    }
    std::fs::rename(partial, dest)
        .map_err(|e| Error::io("Failed to move the finished download into place", dest, &e))?;
    let _ = std::fs::remove_file(meta);
    if let Some(dir) = dest.parent() {
        sync_dir(dir);
    }
    Ok(())
}

/// Hashes an existing file (a shared component, an orphan from an interrupted run) with progress;
/// a cancel stops it between blocks, so cancelling never waits for a multi-GB hash.
pub async fn hash_existing(
    net: &Net,
    path: &Path,
    tracker: Arc<ItemTracker>,
) -> Result<(u64, String)> {
    let p = path.to_path_buf();
    let cancel = net.cancel.clone();
    let cancelled = Error::download(
        "Download cancelled",
        json!({ "cancelled": true, "path": p.display().to_string() }),
    );
    tokio::task::spawn_blocking(move || {
        use sha2::Digest;
        use std::io::Read;
        let mut f = std::fs::File::open(&p).map_err(|e| Error::io("Failed to read", &p, &e))?;
        let mut h = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut n_total = 0u64;
        loop {
            if cancel.is_cancelled() {
                return Err(cancelled);
            }
            let n = f
                .read(&mut buf)
                .map_err(|e| Error::io("Failed to read", &p, &e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            n_total += n as u64;
            tracker.set_current(n_total);
        }
        Ok((n_total, crate::checksum::finish_hex(h)))
    })
    .await
    .map_err(|e| Error::fs(format!("internal task failed: {e}"), json!({})))?
}
