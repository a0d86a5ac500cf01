//! The download client: HTTP/1.1 on hyper-util's pooled client, with each connection's read
//! buffer capped at `READ_BUFFER`.
//!
//! Why not reqwest for model bytes: on a fast line hyper grows every connection's read buffer to
//! about 400 KiB, and often allocates a fresh one while the previous chunk is still referenced;
//! with six ranged connections that was the largest part of a download's memory, and reqwest
//! cannot cap it. And reqwest offers HTTP/2, where all the ranged requests of a file would share
//! one TCP connection (one congestion window, one per-connection CDN cap): parallel ranges need
//! one connection each, as curl, aria2 and hf_transfer use.
//!
//! Requests a proxy from the environment (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`,
//! the same rules reqwest follows) would intercept, and URLs carrying credentials, go through
//! reqwest instead (HTTP/1.1 as well, same TLS configuration), which implements proxies. That
//! client is built on first need: loading the system's CA roots again costs memory and time an
//! unproxied download never needs. When no TLS configuration can be built (no CA certificates on
//! the system), HTTPS requests fail with that reason and plain HTTP still works.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, USER_AGENT};
use reqwest::{Method, StatusCode};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::{error_chain, redact, SendError};

/// Largest read buffer of one connection. hyper starts at 8 KiB and doubles while reads fill it;
/// 64 KiB reads keep the syscall count low (measured: the same wall time as 400 KiB, about 5% more
/// CPU) while six connections hold well under 1 MiB.
pub const READ_BUFFER: usize = 64 << 10;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// reqwest's defaults, kept so both paths behave alike on a dead peer.
const KEEPALIVE: Duration = Duration::from_secs(15);
#[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
const USER_TIMEOUT: Duration = Duration::from_secs(30);
const POOL_IDLE: Duration = Duration::from_secs(90);

type Direct = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<HttpConnector>,
    http_body_util::Empty<Bytes>,
>;

/// See the module doc. Cheap to clone (the pools are shared).
#[derive(Clone)]
pub struct Client {
    direct: Direct,
    /// The TLS configuration the fallback shares (same verifier, same roots), or why there is
    /// none.
    tls: Result<rustls::ClientConfig, String>,
    fallback: Arc<OnceLock<Result<reqwest::Client, String>>>,
    /// Which requests go through the fallback: the environment's proxy rules, read as reqwest
    /// reads them, or (tests) one proxy for everything.
    proxy: Arc<Matcher>,
    only_proxy: Option<String>,
}

impl Client {
    /// `only_proxy`: send every request through this proxy instead of following the
    /// environment (tests). The TLS roots are the platform's (as reqwest's), plus `extra_roots`
    /// (tests).
    pub(super) fn new(
        only_proxy: Option<String>,
        extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    ) -> Self {
        let tls = tls_config(extra_roots).map_err(|e| e.to_string());
        let proxy = match &only_proxy {
            Some(p) => Matcher::builder().all(p.clone()).build(),
            None => Matcher::from_system(),
        };
        // Without a usable configuration the connector still needs one; it never sees an HTTPS
        // request (`request` refuses them first).
        let connector_tls = tls.clone().unwrap_or_else(|_| rootless_tls());
        Client {
            direct: direct_client(connector_tls),
            tls,
            fallback: Arc::new(OnceLock::new()),
            proxy: Arc::new(proxy),
            only_proxy,
        }
    }

    fn fallback(&self) -> Result<&reqwest::Client, String> {
        let built = self.fallback.get_or_init(|| {
            let mut b = super::builder()
                .redirect(reqwest::redirect::Policy::none())
                .http1_only()
                .tcp_nodelay(true);
            // Without a TLS configuration it still carries plain HTTP (HTTPS is refused first).
            let mut tls = self.tls.clone().unwrap_or_else(|_| rootless_tls());
            tls.alpn_protocols = vec![b"http/1.1".to_vec()];
            b = b.tls_backend_preconfigured(tls);
            if let Some(p) = self
                .only_proxy
                .as_deref()
                .and_then(|p| reqwest::Proxy::all(p).ok())
            {
                b = b.proxy(p);
            }
            b.build().map_err(|e| error_chain(&e))
        });
        built.as_ref().map_err(Clone::clone)
    }

    /// Whether requests to `url` go through the direct HTTP/1.1 client.
    pub fn is_direct(&self, url: &url::Url) -> bool {
        self.direct_uri(url).is_some()
    }

    /// The request target when `url` goes through the direct client: no credentials in it, no
    /// proxy for it, and a target `http::Uri` can hold.
    fn direct_uri(&self, url: &url::Url) -> Option<hyper::Uri> {
        if !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        to_uri(url).filter(|u| self.proxy.intercept(u).is_none())
    }

    /// One request, no redirect followed. A transport failure is one line with its causes and the
    /// URL without its query (redirect targets are pre-signed links).
    pub async fn request(
        &self,
        method: Method,
        url: &url::Url,
        headers: HeaderMap,
    ) -> Result<Response, SendError> {
        if let (Err(e), "https") = (&self.tls, url.scheme()) {
            return Err(SendError::Untrusted(failed(
                url,
                &format!("TLS is not available: {e}"),
            )));
        }
        let (parts, body) = match self.direct_uri(url) {
            Some(uri) => {
                let mut req = hyper::Request::new(http_body_util::Empty::new());
                *req.method_mut() = method;
                *req.uri_mut() = uri;
                *req.headers_mut() = headers;
                let h = req.headers_mut();
                h.entry(USER_AGENT)
                    .or_insert(HeaderValue::from_static(super::USER_AGENT));
                h.entry(ACCEPT).or_insert(HeaderValue::from_static("*/*"));
                let resp = self
                    .direct
                    .request(req)
                    .await
                    .map_err(|e| transport_error(url, &e))?;
                let (parts, body) = resp.into_parts();
                (parts, Body::Direct(body))
            }
            None => {
                let resp = self
                    .fallback()
                    .map_err(|e| SendError::Transport(failed(url, &e)))?
                    .request(method, url.clone())
                    .headers(headers)
                    .send()
                    .await
                    .map_err(|e| transport_error(url, &e.without_url()))?;
                let (parts, body) = hyper::Response::from(resp).into_parts();
                (parts, Body::Fallback(body))
            }
        };
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// "error sending request for url (<url without its query>): <why>".
fn failed(url: &url::Url, why: &str) -> String {
    format!("error sending request for url ({}): {why}", redact(url))
}

/// A failed request as one line; an untrusted certificate says what usually causes it.
fn transport_error(url: &url::Url, e: &(dyn std::error::Error + 'static)) -> SendError {
    let m = failed(url, &error_chain(e));
    if untrusted_certificate(e) {
        SendError::Untrusted(format!(
            "{m}. The server's TLS certificate is not trusted by this system. If a proxy, VPN or \
             antivirus inspects HTTPS here, its root certificate must be in the system's \
             certificate store."
        ))
    } else {
        SendError::Transport(m)
    }
}

/// Whether rustls refused the server's certificate somewhere in the chain. `io::Error::source`
/// skips the error it wraps, so wrapped errors are looked into as well.
fn untrusted_certificate(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(rustls::Error::InvalidCertificate(_)) = err.downcast_ref::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if untrusted_certificate(inner) {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// The request target: no fragment (never sent), `None` for what `http::Uri` cannot hold.
fn to_uri(url: &url::Url) -> Option<hyper::Uri> {
    let s = url.as_str();
    let s = s.split_once('#').map_or(s, |(a, _)| a);
    s.parse().ok()
}

/// The installed crypto provider (ring, installed here if none is).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    super::install_crypto_provider();
    rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// A TLS configuration that trusts nothing, for clients that never speak HTTPS: building it
/// cannot fail and loads no certificate store.
pub(super) fn rootless_tls() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        })
        .expect("the default protocol versions are valid for the default provider")
}

/// rustls with the installed crypto provider (ring, see `install_crypto_provider`) and the
/// platform verifier, as reqwest builds it, so system and corporate CAs work the same.
fn tls_config(
    extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = provider();
    let verifier = if extra_roots.is_empty() {
        rustls_platform_verifier::Verifier::new(provider.clone())?
    } else {
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider.clone())?
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

fn direct_client(tls: rustls::ClientConfig) -> Direct {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.set_keepalive(Some(KEEPALIVE));
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    http.set_tcp_user_timeout(Some(USER_TIMEOUT));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE)
        .http1_max_buf_size(READ_BUFFER)
        .build(https)
}

/// A response whose body is read chunk by chunk.
pub struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Body,
}

enum Body {
    Direct(hyper::body::Incoming),
    Fallback(reqwest::Body),
}

impl Response {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// `Content-Length`, when present and a number.
    pub fn content_length(&self) -> Option<u64> {
        super::content_length(&self.headers)
    }

    /// The next non-empty piece of the body; `None` at its end. Dropping the response mid-body
    /// closes its connection.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            let frame = match &mut self.body {
                Body::Direct(b) => b.frame().await.map(|r| r.map_err(|e| error_chain(&e))),
                Body::Fallback(b) => b.frame().await.map(|r| r.map_err(|e| error_chain(&e))),
            };
            match frame {
                None => return Ok(None),
                Some(Err(e)) => return Err(e),
                Some(Ok(f)) => {
                    // Trailers carry no data.
                    if let Ok(data) = f.into_data() {
                        if !data.is_empty() {
                            return Ok(Some(data));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// What the test server saw: request lines, TCP connections, ALPN protocols negotiated.
    #[derive(Default)]
    struct Seen {
        lines: std::sync::Mutex<Vec<String>>,
        connections: AtomicUsize,
        alpn: std::sync::Mutex<Vec<Option<Vec<u8>>>>,
    }

    async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Option<String> {
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut b).await.ok()? == 0 {
                return None;
            }
            head.push(b[0]);
        }
        Some(String::from_utf8_lossy(&head).lines().next()?.to_string())
    }

    /// One request per connection: records its line, answers `reply`, closes. `wait_for`: the
    /// answer waits until that many connections are open (or a second passed).
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        mut s: S,
        seen: Arc<Seen>,
        reply: Arc<Vec<u8>>,
        wait_for: usize,
    ) {
        let Some(line) = read_head(&mut s).await else {
            return;
        };
        seen.lines.lock().unwrap().push(line);
        for _ in 0..100 {
            if seen.connections.load(Ordering::SeqCst) >= wait_for {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = s.write_all(&reply).await;
        let _ = s.shutdown().await;
    }

    /// A server on 127.0.0.1; with `tls`, HTTPS offering h2 and http/1.1 (in that order).
    async fn server(
        reply: Vec<u8>,
        tls: Option<tokio_rustls::TlsAcceptor>,
        wait_for: usize,
    ) -> (u16, Arc<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Seen::default());
        let reply = Arc::new(reply);
        let s2 = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                s2.connections.fetch_add(1, Ordering::SeqCst);
                let (seen, reply, tls) = (s2.clone(), reply.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            let Ok(t) = acceptor.accept(tcp).await else {
                                return;
                            };
                            seen.alpn
                                .lock()
                                .unwrap()
                                .push(t.get_ref().1.alpn_protocol().map(<[u8]>::to_vec));
                            serve(t, seen, reply, wait_for).await;
                        }
                        None => serve(tcp, seen, reply, wait_for).await,
                    }
                });
            }
        });
        (port, seen)
    }

    fn ok(body: &[u8]) -> Vec<u8> {
        let mut r =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        r.extend_from_slice(body);
        r
    }

    async fn body(resp: &mut Response) -> Result<(Vec<u8>, usize), String> {
        let (mut all, mut largest) = (Vec::new(), 0);
        while let Some(c) = resp.chunk().await? {
            largest = largest.max(c.len());
            all.extend_from_slice(&c);
        }
        Ok((all, largest))
    }

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    async fn get(client: &Client, u: &str) -> Result<Response, SendError> {
        client.request(Method::GET, &url(u), HeaderMap::new()).await
    }

    /// An HTTPS server (self-signed, offering h2 before http/1.1) and the certificate to trust.
    async fn https_server(
        wait_for: usize,
    ) -> (u16, Arc<Seen>, rustls::pki_types::CertificateDer<'static>) {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let der = cert.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let (port, seen) = server(ok(b"secret bytes"), Some(acceptor), wait_for).await;
        (port, seen, der)
    }

    /// Three concurrent GETs of `u`: each answered, each on its own TCP connection, none over h2.
    async fn three_at_once_over_http1(client: &Client, u: &url::Url, seen: &Seen) {
        let fetch = |c: Client, u: url::Url| async move {
            let mut r = c
                .request(Method::GET, &u, HeaderMap::new())
                .await
                .map_err(|e| e.to_string())?;
            assert_eq!(r.status(), StatusCode::OK);
            body(&mut r).await
        };
        let (a, b, c) = tokio::join!(
            fetch(client.clone(), u.clone()),
            fetch(client.clone(), u.clone()),
            fetch(client.clone(), u.clone())
        );
        for r in [a, b, c] {
            assert_eq!(r.unwrap().0, b"secret bytes");
        }
        assert_eq!(seen.connections.load(Ordering::SeqCst), 3);
        let alpn = seen.alpn.lock().unwrap().clone();
        assert_eq!(alpn.len(), 3);
        assert!(
            alpn.iter().all(|p| p.as_deref() != Some(b"h2".as_slice())),
            "{alpn:?}"
        );
        assert!(seen
            .lines
            .lock()
            .unwrap()
            .iter()
            .all(|l| l == &format!("GET {} HTTP/1.1", u.path())));
    }

    /// Ranged requests must each get a TCP connection: over HTTP/2 they would share one.
    #[tokio::test]
    async fn https_requests_are_http1_one_connection_each() {
        let (port, seen, der) = https_server(3).await;
        let client = Client::new(None, vec![der]);
        let u = url(&format!("https://127.0.0.1:{port}/model.gguf"));
        assert!(client.is_direct(&u));
        three_at_once_over_http1(&client, &u, &seen).await;
    }

    /// A certificate the system does not trust fails at once, saying so: not six attempts.
    #[tokio::test]
    async fn an_untrusted_certificate_is_final_and_explained() {
        let (port, seen, _) = https_server(0).await;
        let client = Client::new(None, Vec::new());
        refused_as_untrusted(&client, &format!("https://127.0.0.1:{port}/m.gguf")).await;
        assert!(seen.lines.lock().unwrap().is_empty());
    }

    /// `u` fails at once (not retryable), saying its certificate is not trusted.
    async fn refused_as_untrusted(client: &Client, u: &str) {
        let err = get(client, u).await.err().unwrap();
        assert!(!err.retryable(), "{err}");
        assert!(
            err.to_string().contains("not trusted by this system"),
            "{err}"
        );
    }

    /// Behind a proxy too (reqwest, through a CONNECT tunnel).
    #[tokio::test]
    async fn https_through_a_proxy_is_http1_one_connection_each() {
        let (port, seen, der) = https_server(3).await;
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_port = proxy.local_addr().unwrap().port();
        let tunnels = Arc::new(AtomicUsize::new(0));
        let t2 = tunnels.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = proxy.accept().await {
                let tunnels = t2.clone();
                tokio::spawn(async move {
                    let Some(line) = read_head(&mut inbound).await else {
                        return;
                    };
                    assert_eq!(line, format!("CONNECT 127.0.0.1:{port} HTTP/1.1"));
                    tunnels.fetch_add(1, Ordering::SeqCst);
                    let mut outbound = tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .unwrap();
                    inbound
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await
                        .unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
        let client = Client::new(Some(format!("http://127.0.0.1:{proxy_port}")), vec![der]);
        let u = url(&format!("https://127.0.0.1:{port}/model.gguf"));
        assert!(!client.is_direct(&u));
        three_at_once_over_http1(&client, &u, &seen).await;
        assert_eq!(tunnels.load(Ordering::SeqCst), 3);
        // Without the certificate, the proxied path refuses it as the direct one does.
        let untrusting = Client::new(Some(format!("http://127.0.0.1:{proxy_port}")), Vec::new());
        refused_as_untrusted(&untrusting, u.as_str()).await;
    }

    /// The read buffer cap is what keeps six connections' memory small: no chunk is larger.
    #[tokio::test]
    async fn chunks_never_exceed_the_read_buffer() {
        let data: Vec<u8> = (0..(8u32 << 20)).map(|i| (i % 251) as u8).collect();
        let (port, _) = server(ok(&data), None, 0).await;
        let client = Client::new(None, Vec::new());
        let mut r = get(&client, &format!("http://127.0.0.1:{port}/big"))
            .await
            .unwrap();
        assert_eq!(r.content_length(), Some(data.len() as u64));
        let (got, largest) = body(&mut r).await.unwrap();
        assert!(got == data, "body differs");
        // hyper may read into a reclaimed buffer somewhat larger than the cap, never near its
        // 400 KiB default.
        assert!(largest <= 2 * READ_BUFFER, "a {largest}-byte chunk");
    }

    #[tokio::test]
    async fn a_body_cut_short_is_an_error() {
        let mut reply = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
        reply.extend(std::iter::repeat_n(7u8, 40000));
        let (port, _) = server(reply, None, 0).await;
        let client = Client::new(None, Vec::new());
        let mut r = get(&client, &format!("http://127.0.0.1:{port}/f"))
            .await
            .unwrap();
        let mut n = 0;
        let err = loop {
            match r.chunk().await {
                Ok(Some(c)) => n += c.len(),
                Ok(None) => panic!("the body ended without an error after {n} bytes"),
                Err(e) => break e,
            }
        };
        assert_eq!(n, 40000);
        assert!(!err.is_empty());
    }

    #[tokio::test]
    async fn a_refused_connection_names_the_url_without_its_query() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let client = Client::new(None, Vec::new());
        let u = url(&format!("http://127.0.0.1:{port}/f?X-Amz-Signature=abc"));
        let err = client
            .request(Method::GET, &u, HeaderMap::new())
            .await
            .err()
            .unwrap();
        assert!(err.retryable(), "{err}");
        let err = err.to_string();
        assert!(err.contains(&format!("http://127.0.0.1:{port}/f")), "{err}");
        assert!(!err.contains("Signature"), "{err}");
    }

    /// No TLS configuration (here: an unparseable root; on a machine, no CA certificates): HTTPS
    /// fails with the reason, plain HTTP still works, nothing panics.
    #[tokio::test]
    async fn without_tls_https_fails_clearly_and_http_works() {
        let bad = rustls::pki_types::CertificateDer::from(vec![1u8, 2, 3]);
        let client = Client::new(None, vec![bad]);
        let err = client
            .request(
                Method::GET,
                &url("https://127.0.0.1:9/m.gguf?sig=1"),
                HeaderMap::new(),
            )
            .await
            .err()
            .unwrap();
        assert!(!err.retryable(), "{err}");
        let err = err.to_string();
        assert!(err.contains("TLS is not available"), "{err}");
        assert!(
            err.contains("https://127.0.0.1:9/m.gguf") && !err.contains("sig"),
            "{err}"
        );
        let (port, _) = server(ok(b"plain"), None, 0).await;
        let mut r = get(&client, &format!("http://127.0.0.1:{port}/f"))
            .await
            .unwrap();
        assert_eq!(body(&mut r).await.unwrap().0, b"plain");
        // Through a proxy as well (the server answers as one).
        let bad = rustls::pki_types::CertificateDer::from(vec![1u8, 2, 3]);
        let proxied = Client::new(Some(format!("http://127.0.0.1:{port}")), vec![bad]);
        let mut r = get(&proxied, "http://models.invalid/f").await.unwrap();
        assert_eq!(body(&mut r).await.unwrap().0, b"plain");
    }

    /// A proxy from the environment is honoured: such requests go through reqwest.
    #[tokio::test]
    async fn proxied_requests_go_through_the_proxy() {
        let (port, seen) = server(ok(b"via proxy"), None, 0).await;
        let client = Client::new(Some(format!("http://127.0.0.1:{port}")), Vec::new());
        let u = url("http://models.invalid/m.gguf");
        assert!(!client.is_direct(&u));
        assert!(Client::new(None, Vec::new()).is_direct(&u));
        let mut r = client
            .request(Method::GET, &u, HeaderMap::new())
            .await
            .unwrap();
        assert_eq!(body(&mut r).await.unwrap().0, b"via proxy");
        assert_eq!(
            seen.lines.lock().unwrap().as_slice(),
            ["GET http://models.invalid/m.gguf HTTP/1.1"]
        );
    }
}
