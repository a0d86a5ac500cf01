//! Reading a GGUF header from a remote file with HTTP Range requests, without downloading it:
//! fetch a prefix, parse, and fetch more only if the parser asks for it. Requests follow redirects
//! by hand through `http::send`, so a Hugging Face token reaches only the endpoint's origin.

use super::metadata::metadata_json;
use super::reader::{parse_header, GgufHeader, ParseError, MAX_HEADER_BYTES};
use crate::http::{download_client, send, Auth};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_RANGE, RANGE};
use reqwest::StatusCode;
use serde_json::Value as Json;

const FIRST_CHUNK: u64 = 2 << 20;

/// Fetches bytes `[start, end)`; returns the bytes and the total size from `Content-Range`.
/// A server that ignores Range (200) is read only up to `end`, then the connection is dropped.
pub(crate) async fn fetch_range(
    url: &url::Url,
    auth: &Auth,
    start: u64,
    end: u64,
) -> Result<(Vec<u8>, Option<u64>), String> {
    let mut out = Vec::new();
    let total = fetch_range_into(url, auth, start, end, &mut out).await?;
    Ok((out, total))
}

/// `fetch_range`, appending to `out` (one buffer for a header read in several steps).
async fn fetch_range_into(
    url: &url::Url,
    auth: &Auth,
    start: u64,
    end: u64,
    out: &mut Vec<u8>,
) -> Result<Option<u64>, String> {
    let mut headers = HeaderMap::new();
    let range =
        HeaderValue::from_str(&format!("bytes={start}-{}", end - 1)).map_err(|e| e.to_string())?;
    headers.insert(RANGE, range);
    let (mut resp, _, _) = send(
        &download_client(),
        reqwest::Method::GET,
        url,
        &headers,
        auth,
    )
    .await
    .map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("HTTP error: {status}"));
    }
    let total = resp
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit('/').next())
        .and_then(|v| v.parse::<u64>().ok())
        .or_else(|| {
            (status == StatusCode::OK)
                .then(|| resp.content_length())
                .flatten()
        });
    let skip = if status == StatusCode::PARTIAL_CONTENT {
        0
    } else {
        start
    };
    let want = (end - start) as usize;
    let mut got = 0usize;
    let mut seen = 0u64;
    out.reserve_exact(want);
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("read failed: {e}"))?
    {
        let from = skip.saturating_sub(seen).min(chunk.len() as u64) as usize;
        seen += chunk.len() as u64;
        let take = (chunk.len() - from).min(want - got);
        out.extend_from_slice(&chunk[from..from + take]);
        got += take;
        if got >= want {
            break;
        }
    }
    Ok(total)
}

/// The contract's `GGUFMetadata` of a remote file. `auth` decides which origin (the Hugging Face
/// endpoint only) may receive the token.
pub async fn fetch_remote_metadata(url: &str, auth: &Auth) -> Result<Json, String> {
    let (h, total) = fetch_remote_header(url, auth).await?;
    Ok(metadata_json(&h, total))
}

/// The parsed header of a remote file and the file's size when the server said it.
pub async fn fetch_remote_header(
    url: &str,
    auth: &Auth,
) -> Result<(GgufHeader, Option<u64>), String> {
    let url = url::Url::parse(url).map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("unsupported URL scheme {:?}", url.scheme()));
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut total: Option<u64> = None;
    let mut want = FIRST_CHUNK;
    loop {
        let limit = total.unwrap_or(u64::MAX).min(MAX_HEADER_BYTES);
        let end = want.min(limit);
        if (buf.len() as u64) < end {
            let had = buf.len();
            let t = fetch_range_into(&url, auth, had as u64, end, &mut buf).await?;
            if total.is_none() {
                total = t;
            }
            if buf.len() == had {
                return Err("the server returned no data".into());
            }
        }
        match parse_header(&buf, total) {
            Ok(h) => return Ok((h, total)),
            Err(ParseError::NeedMore(n)) if (buf.len() as u64) < limit => {
                want = n.max(want * 2);
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}
