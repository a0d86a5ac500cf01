//! Before any byte is fetched: ask every file's size (HEAD, in parallel), learn Hugging Face's
//! sha256 for LFS files, and check the disk can hold what is left to download.

use crate::error::{Error, Result};
use crate::http::{content_length, header_str, send, LinkedInfo};
use reqwest::header::{HeaderMap, HeaderValue, RANGE};
use reqwest::Method;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

use super::net::{Failure, Net};
use super::plan::Item;
use super::resume::{parse_content_range, Remote};

/// Per-request limit for the size probes: they carry no body, so a slow answer means trouble.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the server says about one file before we fetch it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Probe {
    pub size: Option<u64>,
    /// Hugging Face's sha256 (`X-Linked-Etag`) for LFS files.
    pub sha256: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Probe {
    pub fn remote(&self) -> Remote {
        Remote {
            etag: self.etag.clone(),
            last_modified: self.last_modified.clone(),
            total: self.size,
            sha256: self.sha256.clone(),
        }
    }
}

type Answer = (u16, url::Url, HeaderMap, LinkedInfo);

async fn one_request(
    net: &Net,
    item: &Item,
    method: Method,
    headers: &HeaderMap,
) -> std::result::Result<Answer, Failure> {
    let fut = send(&net.client, method, &item.url, headers, &net.auth);
    let limit = PROBE_TIMEOUT.min(net.opts.stall_timeout.max(Duration::from_secs(1)));
    let r = tokio::select! {
        _ = net.cancel.cancelled() => return Err(Failure::Cancelled),
        r = tokio::time::timeout(limit, fut) => r,
    };
    match r {
        Err(_) => Err(Failure::Retry {
            message: "no answer to the size request".into(),
            retry_after: None,
        }),
        Ok(Err(e)) if e.retryable() => Err(Failure::Retry {
            message: e.to_string(),
            retry_after: None,
        }),
        Ok(Err(e)) => Err(Failure::Fatal(Error::download(
            e.to_string(),
            json!({ "url": item.url.as_str() }),
        ))),
        // The body (if any) is dropped unread: a ranged probe asks for one byte.
        Ok(Ok((resp, last, linked))) => {
            Ok((resp.status().as_u16(), last, resp.headers().clone(), linked))
        }
    }
}

/// HEAD (with a couple of retries), falling back to `GET Range: bytes=0-0` for servers that refuse
/// HEAD. 401/403/404 from the server we asked (or the Hugging Face endpoint) are final: they fail
/// the download before anything is written. Anything else leaves the size unknown, unless a
/// redirect already told it (`X-Linked-Size`); the transfer learns the rest.
pub async fn probe(net: &Net, item: &Item) -> Result<Probe> {
    let tries = net.opts.max_retries.min(2) + 1;
    let mut linked_seen = LinkedInfo::default();
    for method in [Method::HEAD, Method::GET] {
        if method == Method::GET && linked_seen.size.is_some() {
            break; // Hugging Face's redirect already said the size: no need to probe the CDN
        }
        let mut headers = HeaderMap::new();
        if method == Method::GET {
            headers.insert(RANGE, HeaderValue::from_static("bytes=0-0"));
        }
        for attempt in 1..=tries {
            match one_request(net, item, method.clone(), &headers).await {
                Ok((status, last, h, linked)) => {
                    linked_seen.sha256 = linked.sha256.or(linked_seen.sha256.take());
                    linked_seen.size = linked.size.or(linked_seen.size);
                    if (200..300).contains(&status) {
                        let size = if status == 206 {
                            header_str(&h, "content-range")
                                .and_then(|v| parse_content_range(&v))
                                .and_then(|c| c.total)
                        } else if method == Method::HEAD {
                            content_length(&h)
                        } else {
                            None // a 200 to a ranged GET is the whole body: no size from it
                        };
                        let size = linked_seen.size.or(size);
                        if method == Method::GET && size.is_none() {
                            break;
                        }
                        return Ok(Probe {
                            size,
                            sha256: linked_seen.sha256,
                            etag: header_str(&h, "etag"),
                            last_modified: header_str(&h, "last-modified"),
                        });
                    }
                    let ours = last == item.url || net.auth.is_endpoint(&last);
                    match net.status_failure(status, &h, &last, item.repo.as_deref()) {
                        Failure::Fatal(e) if ours && matches!(status, 401 | 403 | 404 | 410) => {
                            return Err(e.with_detail("file", json!(item.label())))
                        }
                        Failure::Retry { retry_after, .. } if attempt < tries => {
                            if !net.wait_before_retry(attempt, retry_after).await {
                                return Err(net.cancelled_error(&item.url));
                            }
                        }
                        _ => break, // e.g. 405 to HEAD: try the next method
                    }
                }
                Err(Failure::Cancelled) => return Err(net.cancelled_error(&item.url)),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry { retry_after, .. }) => {
                    if attempt < tries && !net.wait_before_retry(attempt, retry_after).await {
                        return Err(net.cancelled_error(&item.url));
                    }
                }
            }
        }
    }
    crate::debug_log!("size of {} unknown before download", item.url);
    Ok(Probe {
        size: linked_seen.size,
        sha256: linked_seen.sha256,
        ..Probe::default()
    })
}

/// Extra room kept free: file systems need some, and sizes can be slightly off.
pub fn margin(required: u64) -> u64 {
    (64u64 << 20).max(required / 100)
}

/// Human-readable bytes (binary units, as file managers on most platforms show them).
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Free bytes on the volume of `dir` (or its nearest existing ancestor).
pub fn available_space(dir: &Path) -> Result<u64> {
    let mut p = dir.to_path_buf();
    while !p.exists() {
        if !p.pop() {
            break;
        }
    }
    fs4::available_space(&p).map_err(|e| Error::io("Cannot read free disk space", &p, &e))
}

/// Fails with `InsufficientResourcesError` when `required` bytes (plus the margin) do not fit.
pub fn check_space(name: &str, required: u64, available: u64, dir: &Path) -> Result<()> {
    if required == 0 {
        return Ok(());
    }
    let need = required + margin(required);
    if available >= need {
        return Ok(());
    }
    Err(Error::insufficient(
        format!(
            "Not enough disk space to download {name}: it needs {} ({} to download plus a {} safety margin) but only {} is free on the volume of {}",
            format_bytes(need),
            format_bytes(required),
            format_bytes(need - required),
            format_bytes(available),
            dir.display()
        ),
        json!({
            "required": need,
            "available": available,
            "download": required,
            "path": dir.display().to_string(),
            "suggestion": format!("Free at least {} on that volume, or point userData at a larger one.", format_bytes(need - available)),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_check_names_both_figures() {
        assert!(check_space("M", 0, 0, Path::new("/x")).is_ok());
        assert!(check_space("M", 1000, 100 << 20, Path::new("/x")).is_ok());
        let e = check_space("Flux", 8 << 30, 3 << 30, Path::new("/data")).unwrap_err();
        assert_eq!(e.code(), "INSUFFICIENT_RESOURCES");
        let m = e.to_string();
        assert!(m.contains("needs 8.1 GiB"), "{m}");
        assert!(m.contains("only 3.0 GiB is free"), "{m}");
        match e {
            Error::InsufficientResources { details, .. } => {
                assert_eq!(details["required"], (8u64 << 30) + margin(8 << 30));
                assert_eq!(details["available"], 3u64 << 30);
            }
            _ => unreachable!(),
        }
        // The margin alone can make it fail.
        assert!(check_space("M", 1000, 1000, Path::new("/x")).is_err());
    }

    #[test]
    fn bytes_format() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(7 << 30), "7.0 GiB");
        assert_eq!(margin(0), 64 << 20);
        assert_eq!(margin(100 << 30), 1 << 30);
    }
}
