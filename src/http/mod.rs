//! The shared HTTP clients. rustls with the ring provider (builds faster than aws-lc) and the
//! platform certificate verifier, so corporate and system CAs keep working. Downloads go through
//! `Client` (`client.rs`: HTTP/1.1, capped read buffers); the loopback API calls use reqwest.

mod client;

pub use client::{Client, Response};
use std::sync::OnceLock;
use std::time::Duration;

/// Sent with every request.
pub const USER_AGENT: &str = concat!("genai-electron-rs/", env!("CARGO_PKG_VERSION"));

fn install_crypto_provider() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // Fails only when another provider is already installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The settings every client shares; installs the crypto provider first, since reqwest is built
/// without a default one and needs it even for plain HTTP.
fn builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(Duration::from_secs(30))
}

/// The client for downloads. It never follows redirects by itself: `send` follows them by hand
/// so the Hugging Face token can only ever reach the endpoint's own origin, and so the headers
/// Hugging Face puts on the redirect itself (`X-Linked-Etag`, `X-Linked-Size`) are seen.
pub fn download_client() -> Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| Client::new(None, Vec::new())).clone()
}

/// A client for loopback only (sd-server, llama-server): no proxy, since a system proxy must never
/// see local traffic, and short connect timeouts. Plain HTTP only, so it loads no CA store: that
/// costs time and memory on every server start, and on a system without CA certificates it made
/// building the client fail.
pub fn loopback_client() -> reqwest::Client {
    builder()
        .tls_backend_preconfigured(client::rootless_tls())
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        // A fresh loopback connection per request (about 1 ms). A reused keep-alive connection
        // to sd-server costs about 40 ms a request (curl shows it too): Nagle's algorithm on
        // sd-server's side waiting for a delayed ACK. TCP_NODELAY here covers our side.
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_default()
}

/// The default Hugging Face endpoint when `HF_ENDPOINT` is not set.
pub const DEFAULT_HF_ENDPOINT: &str = "https://huggingface.co";

/// `HF_ENDPOINT` (a mirror or a local test server), else huggingface.co; no trailing slash.
pub fn hf_endpoint_from_env() -> String {
    std::env::var("HF_ENDPOINT")
        .ok()
        .map(|s| s.trim().trim_end_matches('/').to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_HF_ENDPOINT.to_string())
}

/// `HF_TOKEN`, when set and not blank.
pub fn hf_token_from_env() -> Option<String> {
    std::env::var("HF_TOKEN")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Who gets the Hugging Face token: exactly the endpoint's origin (scheme, host and port).
/// Anything else, including the CDN Hugging Face redirects to, gets no `Authorization` header.
#[derive(Clone, Default)]
pub struct Auth {
    origin: Option<url::Origin>,
    token: Option<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("Auth")
            .field("origin", &self.origin)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Auth {
    /// `endpoint` is the Hugging Face endpoint URL; an unparseable endpoint gets no token at all.
    pub fn new(endpoint: &str, token: Option<String>) -> Self {
        let origin = url::Url::parse(endpoint).ok().map(|u| u.origin());
        Auth {
            origin: origin.filter(|o| o.is_tuple()),
            // Trimmed: a token read from a file or a CRLF `.env` keeps its line ending, and a
            // header value cannot hold one, so the token would silently not be sent at all.
            token: token
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
        }
    }

    /// False when the token cannot be put in an `Authorization` header (a control character
    /// inside it): sending nothing while reporting "a token was sent" would mislead.
    pub fn token_is_valid(&self) -> bool {
        self.token
            .as_ref()
            .is_none_or(|t| reqwest::header::HeaderValue::from_str(&format!("Bearer {t}")).is_ok())
    }

    /// From `HF_ENDPOINT` and `HF_TOKEN`.
    pub fn from_env() -> Self {
        Auth::new(&hf_endpoint_from_env(), hf_token_from_env())
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// True when `url` is on the endpoint's origin.
    pub fn is_endpoint(&self, url: &url::Url) -> bool {
        self.origin.as_ref().is_some_and(|o| *o == url.origin())
    }

    /// The `Authorization` value for a request to `url`, if it may carry the token.
    pub fn header_for(&self, url: &url::Url) -> Option<reqwest::header::HeaderValue> {
        let token = self.token.as_ref()?;
        if !self.is_endpoint(url) {
            return None;
        }
        let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
        v.set_sensitive(true);
        Some(v)
    }
}

/// What a redirect chain told us on the way: Hugging Face puts the LFS file's sha256 and size on
/// the resolve response (the redirect), not on the CDN's final response.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkedInfo {
    /// `X-Linked-Etag` when it is a sha256 (64 hex digits), lower-case.
    pub sha256: Option<String>,
    /// `X-Linked-Size`.
    pub size: Option<u64>,
    /// `X-Repo-Commit`.
    pub commit: Option<String>,
}

impl LinkedInfo {
    fn absorb(&mut self, headers: &reqwest::header::HeaderMap) {
        if let Some(sha) = header_str(headers, "x-linked-etag").and_then(|v| linked_sha256(&v)) {
            self.sha256 = Some(sha);
        }
        if let Some(size) = header_str(headers, "x-linked-size").and_then(|v| v.parse().ok()) {
            self.size = Some(size);
        }
        if let Some(c) = header_str(headers, "x-repo-commit") {
            self.commit = Some(c);
        }
    }
}

/// A header as a trimmed string, if present and visible ASCII.
pub fn header_str(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// `Content-Length`, when present and a number.
pub fn content_length(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    header_str(headers, "content-length").and_then(|v| v.parse().ok())
}

/// An `X-Linked-Etag` value is the LFS object's sha256 (quoted, maybe weak); a git blob sha1
/// (40 hex digits, non-LFS files) is not a content hash we can check, so it is ignored.
pub fn linked_sha256(value: &str) -> Option<String> {
    let v = value.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    let v = v.trim_matches('"');
    (v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())).then(|| v.to_ascii_lowercase())
}

/// A URL fit for messages and error details: no query, fragment or credentials. Redirect
/// targets are often pre-signed CDN links (a working download link for a gated file for about an
/// hour); errors end up in logs and telemetry, so they must not carry one.
pub fn redact(url: &url::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// Why `send` gave up before a final response.
#[derive(Debug)]
pub enum SendError {
    /// Connecting or sending failed (worth retrying): the error and its causes, URL redacted.
    Transport(String),
    /// More than `MAX_REDIRECTS` hops, a redirect without a usable `Location`, or one to a
    /// non-http(s) URL (not worth retrying).
    Redirect(String),
    /// The server's TLS certificate is not trusted, or TLS is unavailable here: retrying cannot
    /// help, and six attempts with backoff would only delay the one message that matters.
    Untrusted(String),
}

impl SendError {
    /// Whether another attempt may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, SendError::Transport(_))
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Transport(m) | SendError::Redirect(m) | SendError::Untrusted(m) => {
                write!(f, "{m}")
            }
        }
    }
}

/// The error and its sources in one line ("error sending request: connection refused").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let m = inner.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = inner.source();
    }
    s
}

pub const MAX_REDIRECTS: usize = 10;

/// Sends `method url` with `headers`, following up to `MAX_REDIRECTS` redirects by hand. The token
/// is attached per hop by `auth` (only on the endpoint's origin), so it can never leak to another
/// host whatever the redirect chain does. Returns the final response (any status that is not a
/// redirect), the final URL and what the hops said about the linked file.
pub async fn send(
    client: &Client,
    method: reqwest::Method,
    url: &url::Url,
    headers: &reqwest::header::HeaderMap,
    auth: &Auth,
) -> Result<(Response, url::Url, LinkedInfo), SendError> {
    let mut current = url.clone();
    let mut linked = LinkedInfo::default();
    for _ in 0..=MAX_REDIRECTS {
        let mut h = headers.clone();
        // Without it any coding is acceptable (RFC 9110), and a server compressing on the fly
        // would have us save (and size, and resume into) the compressed bytes as the file.
        h.entry(reqwest::header::ACCEPT_ENCODING)
            .or_insert(reqwest::header::HeaderValue::from_static("identity"));
        if let Some(v) = auth.header_for(&current) {
            h.insert(reqwest::header::AUTHORIZATION, v);
        }
        let resp = client.request(method.clone(), &current, h).await?;
        linked.absorb(resp.headers());
        let status = resp.status();
        if !matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
            return Ok((resp, current, linked));
        }
        let location = header_str(resp.headers(), "location").ok_or_else(|| {
            SendError::Redirect(format!("HTTP {status} redirect without a Location header"))
        })?;
        let next = current.join(&location).map_err(|e| {
            SendError::Redirect(format!(
                "HTTP {status} redirect to an invalid URL {location:?}: {e}"
            ))
        })?;
        if !matches!(next.scheme(), "http" | "https") {
            return Err(SendError::Redirect(format!(
                "refusing a redirect to a non-http(s) URL: {}",
                redact(&next)
            )));
        }
        current = next;
    }
    Err(SendError::Redirect(format!(
        "too many redirects (more than {MAX_REDIRECTS}) starting at {}",
        redact(url)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_drops_signatures_and_credentials() {
        let u = url::Url::parse(
            "https://user:pw@cdn.example/x/model.gguf?X-Amz-Signature=abc&Expires=1#frag",
        )
        .unwrap();
        assert_eq!(redact(&u), "https://cdn.example/x/model.gguf");
    }

    #[test]
    fn token_goes_only_to_the_endpoint_origin() {
        let auth = Auth::new("https://huggingface.co/", Some("hf_x".into()));
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert!(auth
            .header_for(&u("https://huggingface.co/o/r/resolve/main/a.gguf"))
            .is_some());
        assert!(auth
            .header_for(&u("https://cdn-lfs.huggingface.co/x"))
            .is_none());
        assert!(auth.header_for(&u("http://huggingface.co/x")).is_none());
        assert!(auth
            .header_for(&u("https://huggingface.co:8443/x"))
            .is_none());
        let local = Auth::new("http://127.0.0.1:4000", Some("t".into()));
        assert!(local.header_for(&u("http://127.0.0.1:4000/a")).is_some());
        assert!(local.header_for(&u("http://127.0.0.1:4001/a")).is_none());
        assert!(local.header_for(&u("http://localhost:4000/a")).is_none());
        assert!(Auth::new("not a url", Some("t".into()))
            .header_for(&u("http://127.0.0.1:4000/a"))
            .is_none());
        assert!(Auth::new("https://huggingface.co", Some("  ".into()))
            .header_for(&u("https://huggingface.co/a"))
            .is_none());
        assert!(!format!("{auth:?}").contains("hf_x"));
        let padded = Auth::new("https://huggingface.co", Some(" hf_x\r\n".into()));
        assert_eq!(
            padded.header_for(&u("https://huggingface.co/a")).unwrap(),
            "Bearer hf_x"
        );
        assert!(padded.token_is_valid());
        assert!(!Auth::new("https://huggingface.co", Some("hf\nx".into())).token_is_valid());
    }

    #[test]
    fn linked_etag_is_used_only_when_it_is_a_sha256() {
        let sha = "A".repeat(64);
        assert_eq!(linked_sha256(&format!("\"{sha}\"")), Some("a".repeat(64)));
        assert_eq!(linked_sha256(&format!("W/\"{sha}\"")), Some("a".repeat(64)));
        assert_eq!(
            linked_sha256("\"0123456789abcdef0123456789abcdef01234567\""),
            None
        );
        assert_eq!(linked_sha256(""), None);
    }
}
