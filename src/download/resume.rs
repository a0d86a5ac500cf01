//! Resume state and decisions. A `<dest>.partial` is continued only when we can tell it holds the
//! beginning of the same remote file: its sidecar (`<dest>.partial.meta`, JSON, written atomically
//! before the first byte) records the URL and the validators (ETag, Last-Modified, size, expected
//! sha256) the bytes came with. The sidecar is not named `.json` because genai-electron lists every
//! `*.json` in a models directory as a model record.
//!
//! The decisions are pure functions of what is on disk and what the server says, so each rule is
//! unit-tested: a stale partial is never glued to a changed file.

use crate::error::Result;
use crate::storage::atomic::write_atomic;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sidecar {
    pub version: u32,
    /// The item's URL (the resolve URL, before redirects).
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// The sha256 the finished file must have, when one was known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Version 2 (ranged downloads): the byte ranges of the partial that are written. The partial
    /// then has the file's full length, so its length says nothing; a version-1 reader ignores
    /// such a sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranges: Option<super::ranges::RangeSet>,
}

/// The sidecar version of a ranged download.
pub const RANGED_VERSION: u32 = 2;

pub fn partial_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

pub fn sidecar_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".partial.meta");
    PathBuf::from(s)
}

/// Reads a sidecar; a missing or unreadable one is simply absent (the partial then restarts
/// unless an expected hash guards it).
pub fn load(path: &Path) -> Option<Sidecar> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice::<Sidecar>(&bytes)
        .ok()
        .filter(|s| s.version == 1)
}

/// Reads a sidecar of either version.
pub fn load_any(path: &Path) -> Option<Sidecar> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice::<Sidecar>(&bytes)
        .ok()
        .filter(|s| s.version == 1 || (s.version == RANGED_VERSION && s.ranges.is_some()))
}

/// The bytes of a valid partial of `dest` that a resume keeps (0 when it would start over).
pub fn present_bytes(dest: &Path, url: &str, remote: &Remote, expected_sha: Option<&str>) -> u64 {
    let len = std::fs::metadata(partial_path(dest))
        .map(|m| m.len())
        .unwrap_or(0);
    let sc = load_any(&sidecar_path(dest));
    match decide_start(len, sc.as_ref(), url, remote, expected_sha) {
        Start::Resume { offset } => match sc.and_then(|s| s.ranges) {
            Some(r) => r.covered().min(len),
            None => offset,
        },
        Start::Fresh { .. } => 0,
    }
}

pub fn save(path: &Path, sidecar: &Sidecar) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(sidecar).expect("sidecar serialises");
    write_atomic(path, &bytes)
}

/// What we currently know about the remote file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Remote {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub total: Option<u64>,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    Resume { offset: u64 },
    Fresh { reason: &'static str },
}

/// ETags compare without the weak prefix; the remote changing its ETag is what we look for.
pub fn same_etag(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim().trim_start_matches("W/").to_string();
    norm(a) == norm(b)
}

/// Whether to continue a partial of `partial_len` bytes.
pub fn decide_start(
    partial_len: u64,
    sidecar: Option<&Sidecar>,
    url: &str,
    remote: &Remote,
    expected_sha: Option<&str>,
) -> Start {
    if partial_len == 0 {
        return Start::Fresh {
            reason: "nothing to resume",
        };
    }
    if remote.total.is_some_and(|t| partial_len > t) {
        return Start::Fresh {
            reason: "the partial file is larger than the remote file",
        };
    }
    let Some(sc) = sidecar else {
        // Without recorded validators only a known hash can catch a stale prefix (at the end).
        return if expected_sha.is_some() {
            Start::Resume {
                offset: partial_len,
            }
        } else {
            Start::Fresh {
                reason: "the partial file has no resume state and no checksum to verify it",
            }
        };
    };
    if sc.url != url {
        return Start::Fresh {
            reason: "the partial file came from another URL",
        };
    }
    if let (Some(a), Some(b)) = (&sc.sha256, &remote.sha256) {
        if a != b {
            return Start::Fresh {
                reason: "the remote file changed (different sha256)",
            };
        }
    }
    if let (Some(a), Some(b)) = (&sc.sha256, expected_sha) {
        if a != b {
            return Start::Fresh {
                reason: "the expected checksum changed",
            };
        }
    }
    if let (Some(a), Some(b)) = (sc.total, remote.total) {
        if a != b {
            return Start::Fresh {
                reason: "the remote file changed (different size)",
            };
        }
    }
    if let (Some(a), Some(b)) = (&sc.etag, &remote.etag) {
        if !same_etag(a, b) {
            return Start::Fresh {
                reason: "the remote file changed (different ETag)",
            };
        }
    } else if let (Some(a), Some(b)) = (&sc.last_modified, &remote.last_modified) {
        if a != b {
            return Start::Fresh {
                reason: "the remote file changed (different Last-Modified)",
            };
        }
    }
    if sc.etag.is_none()
        && sc.last_modified.is_none()
        && sc.sha256.is_none()
        && expected_sha.is_none()
    {
        return Start::Fresh {
            reason: "the server gave no ETag, Last-Modified or checksum to validate a resume with",
        };
    }
    Start::Resume {
        offset: partial_len,
    }
}

/// The `If-Range` value: a strong ETag, else Last-Modified (weak ETags are not allowed there).
pub fn if_range(sidecar: Option<&Sidecar>) -> Option<String> {
    let sc = sidecar?;
    sc.etag
        .clone()
        .filter(|e| !e.starts_with("W/"))
        .or_else(|| sc.last_modified.clone())
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContentRange {
    pub start: u64,
    pub end: u64,
    pub total: Option<u64>,
}

/// `bytes <start>-<end>/<total|*>`.
pub fn parse_content_range(v: &str) -> Option<ContentRange> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.trim().split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    if end < start || total.is_some_and(|t| end >= t) {
        return None;
    }
    Some(ContentRange { start, end, total })
}

/// What to do with a successful response to a (possibly ranged) GET.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Write the body after the `offset` bytes we have.
    Append,
    /// The body is the whole file: truncate and write it from byte 0.
    RestartWithBody { reason: &'static str },
    /// Drop what we have and ask again without a range.
    Restart { reason: &'static str },
    /// Nothing left to fetch: the partial already holds the whole file.
    Complete,
}

pub fn classify(
    status: u16,
    offset: u64,
    content_range: Option<ContentRange>,
    response_etag: Option<&str>,
    known_etag: Option<&str>,
    known_total: Option<u64>,
) -> Reply {
    if offset == 0 {
        return match (status, content_range) {
            (206, Some(cr)) if cr.start != 0 => Reply::Restart {
                reason: "the server answered a full request with a partial range",
            },
            _ => Reply::Append,
        };
    }
    match status {
        200 => Reply::RestartWithBody {
            reason: "the server ignored the range request or the file changed",
        },
        206 => {
            let Some(cr) = content_range else {
                return Reply::Restart {
                    reason: "a partial response without a valid Content-Range",
                };
            };
            if cr.start != offset {
                return Reply::Restart {
                    reason: "the server returned a different range than requested",
                };
            }
            if let (Some(a), Some(b)) = (cr.total, known_total) {
                if a != b {
                    return Reply::Restart {
                        reason: "the remote file changed (different size)",
                    };
                }
            }
            if let (Some(a), Some(b)) = (response_etag, known_etag) {
                if !same_etag(a, b) {
                    return Reply::Restart {
                        reason: "the remote file changed (different ETag)",
                    };
                }
            }
            Reply::Append
        }
        416 if known_total == Some(offset) => Reply::Complete,
        _ => Reply::Restart {
            reason: "the server could not serve the requested range",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sc() -> Sidecar {
        Sidecar {
            version: 1,
            url: "http://h/a".into(),
            etag: Some("\"e1\"".into()),
            last_modified: None,
            total: Some(100),
            sha256: None,
            ranges: None,
        }
    }

    fn remote() -> Remote {
        Remote {
            etag: Some("\"e1\"".into()),
            total: Some(100),
            ..Default::default()
        }
    }

    #[test]
    fn resumes_only_a_validated_prefix() {
        let url = "http://h/a";
        assert_eq!(
            decide_start(40, Some(&sc()), url, &remote(), None),
            Start::Resume { offset: 40 }
        );
        assert!(matches!(
            decide_start(0, Some(&sc()), url, &remote(), None),
            Start::Fresh { .. }
        ));
        assert!(matches!(
            decide_start(40, Some(&sc()), "http://h/b", &remote(), None),
            Start::Fresh { .. }
        ));
        let changed = Remote {
            etag: Some("\"e2\"".into()),
            ..remote()
        };
        assert!(matches!(
            decide_start(40, Some(&sc()), url, &changed, None),
            Start::Fresh { .. }
        ));
        let resized = Remote {
            total: Some(99),
            ..remote()
        };
        assert!(matches!(
            decide_start(40, Some(&sc()), url, &resized, None),
            Start::Fresh { .. }
        ));
        assert!(matches!(
            decide_start(101, Some(&sc()), url, &remote(), None),
            Start::Fresh { .. }
        ));
        // A weak ETag equals its strong form for this purpose.
        let weak = Remote {
            etag: Some("W/\"e1\"".into()),
            ..remote()
        };
        assert_eq!(
            decide_start(40, Some(&sc()), url, &weak, None),
            Start::Resume { offset: 40 }
        );
    }

    #[test]
    fn hashes_guard_resumes_without_validators() {
        let url = "http://h/a";
        let bare = Sidecar {
            etag: None,
            total: None,
            ..sc()
        };
        assert!(matches!(
            decide_start(40, Some(&bare), url, &Remote::default(), None),
            Start::Fresh { .. }
        ));
        let sha = "f".repeat(64);
        assert_eq!(
            decide_start(40, Some(&bare), url, &Remote::default(), Some(&sha)),
            Start::Resume { offset: 40 }
        );
        // No sidecar at all (a crash before it was written, or another tool's partial).
        assert!(matches!(
            decide_start(40, None, url, &remote(), None),
            Start::Fresh { .. }
        ));
        assert_eq!(
            decide_start(40, None, url, &remote(), Some(&sha)),
            Start::Resume { offset: 40 }
        );
        // The remote's sha256 moved on: the prefix belongs to an older file.
        let with_sha = Sidecar {
            sha256: Some("a".repeat(64)),
            ..sc()
        };
        let moved = Remote {
            sha256: Some("b".repeat(64)),
            ..remote()
        };
        assert!(matches!(
            decide_start(40, Some(&with_sha), url, &moved, None),
            Start::Fresh { .. }
        ));
        assert!(matches!(
            decide_start(40, Some(&with_sha), url, &remote(), Some(&"c".repeat(64))),
            Start::Fresh { .. }
        ));
    }

    #[test]
    fn content_range_parsing() {
        assert_eq!(
            parse_content_range("bytes 10-99/100"),
            Some(ContentRange {
                start: 10,
                end: 99,
                total: Some(100)
            })
        );
        assert_eq!(
            parse_content_range("bytes 10-99/*"),
            Some(ContentRange {
                start: 10,
                end: 99,
                total: None
            })
        );
        assert_eq!(parse_content_range("bytes 10-99/50"), None);
        assert_eq!(parse_content_range("bytes 99-10/100"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
        assert_eq!(parse_content_range("bytes */100"), None);
    }

    #[test]
    fn classify_range_replies() {
        let cr = |s, t| {
            Some(ContentRange {
                start: s,
                end: 99,
                total: t,
            })
        };
        assert_eq!(classify(200, 0, None, None, None, None), Reply::Append);
        assert!(matches!(
            classify(200, 40, None, None, None, Some(100)),
            Reply::RestartWithBody { .. }
        ));
        assert_eq!(
            classify(
                206,
                40,
                cr(40, Some(100)),
                Some("\"e\""),
                Some("\"e\""),
                Some(100)
            ),
            Reply::Append
        );
        assert!(matches!(
            classify(206, 40, cr(0, Some(100)), None, None, Some(100)),
            Reply::Restart { .. }
        ));
        assert!(matches!(
            classify(206, 40, cr(40, Some(120)), None, None, Some(100)),
            Reply::Restart { .. }
        ));
        assert!(matches!(
            classify(
                206,
                40,
                cr(40, Some(100)),
                Some("\"x\""),
                Some("\"e\""),
                Some(100)
            ),
            Reply::Restart { .. }
        ));
        assert!(matches!(
            classify(206, 40, None, None, None, Some(100)),
            Reply::Restart { .. }
        ));
        assert_eq!(
            classify(416, 100, None, None, None, Some(100)),
            Reply::Complete
        );
        assert!(matches!(
            classify(416, 40, None, None, None, Some(100)),
            Reply::Restart { .. }
        ));
    }

    #[test]
    fn if_range_prefers_a_strong_etag() {
        let mut s = sc();
        assert_eq!(if_range(Some(&s)).as_deref(), Some("\"e1\""));
        s.etag = Some("W/\"e1\"".into());
        assert_eq!(if_range(Some(&s)), None);
        s.last_modified = Some("Wed, 21 Oct 2015 07:28:00 GMT".into());
        assert_eq!(
            if_range(Some(&s)).as_deref(),
            Some("Wed, 21 Oct 2015 07:28:00 GMT")
        );
        assert_eq!(if_range(None), None);
    }

    #[test]
    fn sidecar_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("m.gguf");
        assert_eq!(partial_path(&dest), dir.path().join("m.gguf.partial"));
        let p = sidecar_path(&dest);
        save(&p, &sc()).unwrap();
        assert_eq!(load(&p), Some(sc()));
        std::fs::write(&p, b"{not json").unwrap();
        assert_eq!(load(&p), None);
    }
}
