//! genai-electron's image HTTP API (contract 4.7) on hyper: the same paths, JSON and status codes,
//! with the pitfalls fixed: query strings and a trailing slash are ignored when routing, malformed
//! JSON is a 400 (not 500), bodies over `MAX_BODY_BYTES` get 413, and a busy server queues instead
//! of answering 503 (503 only when the queue is full). Access rules (CORS, Origin and Host
//! guards) are genai-electron 0.26's, in `http_guard`.

use crate::diffusion::http_guard::Access;
use crate::diffusion::jobs::{CancelFlag, CancelOutcome, JobStatus};
use crate::error::Error;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Largest request body accepted (a prompt and a few numbers fit in far less).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What the routes need from the server.
pub trait Api: Send + Sync + 'static {
    fn busy(&self) -> bool;
    /// Validates and queues; `Err` carries an `Error::Server` whose details `code` is
    /// `INVALID_REQUEST`, `SERVER_BUSY` or `SERVER_NOT_RUNNING`.
    fn submit(&self, body: &Value) -> Result<(String, i64), Error>;
    fn get(&self, id: &str) -> Option<Value>;
    fn cancel(&self, id: &str) -> CancelOutcome;
    /// sd-server's residency state, for `/health`.
    fn backend_state(&self) -> String;
    fn access(&self) -> &Access;
}

type Resp = Response<Full<Bytes>>;

/// `Vary: Origin` always; the CORS headers only for an allowed origin.
fn with_cors(mut r: Resp, allow: Option<&str>) -> Resp {
    let h = r.headers_mut();
    h.insert(hyper::header::VARY, "Origin".parse().unwrap());
    if let Some(v) = allow.and_then(|a| hyper::header::HeaderValue::from_str(a).ok()) {
        h.insert("Access-Control-Allow-Origin", v);
        h.insert(
            "Access-Control-Allow-Methods",
            "GET, POST, OPTIONS, DELETE".parse().unwrap(),
        );
        h.insert(
            "Access-Control-Allow-Headers",
            "Content-Type".parse().unwrap(),
        );
    }
    r
}

fn json_resp(status: StatusCode, v: Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("Content-Type", "application/json".parse().unwrap());
    r
}

fn error_resp(status: StatusCode, message: &str, code: &str) -> Resp {
    json_resp(
        status,
        json!({ "error": { "message": message, "code": code } }),
    )
}

/// Strips the query string and a trailing slash.
fn route_path(uri: &hyper::Uri) -> String {
    let p = uri.path();
    let p = if p.len() > 1 {
        p.trim_end_matches('/')
    } else {
        p
    };
    p.to_string()
}

fn header(req: &Request<Incoming>, name: hyper::header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn handle(api: Arc<dyn Api>, req: Request<Incoming>) -> Resp {
    let host = header(&req, hyper::header::HOST).map(str::to_string);
    if !api.access().host_ok(host.as_deref()) {
        let shown: String = host.unwrap_or_default().chars().take(100).collect();
        return error_resp(
            StatusCode::FORBIDDEN,
            &format!("Rejected Host header \"{shown}\": the diffusion server is bound to a loopback address and only accepts localhost or IP-literal hosts"),
            "INVALID_HOST",
        );
    }
    let origin = header(&req, hyper::header::ORIGIN).map(str::to_string);
    let allow = api.access().allow_origin(origin.as_deref());
    let method = req.method().clone();
    let r = if method == Method::OPTIONS {
        Response::new(Full::new(Bytes::new()))
    } else if let (Some(o), None, false) = (
        &origin,
        &allow,
        method == Method::GET || method == Method::HEAD,
    ) {
        let shown: String = o.chars().take(100).collect();
        error_resp(
            StatusCode::FORBIDDEN,
            &format!("Rejected cross-origin {method} from \"{shown}\": add the origin to DiffusionServerConfig.allowedOrigins to allow browser clients"),
            "INVALID_ORIGIN",
        )
    } else {
        route(api, req).await
    };
    with_cors(r, allow.as_deref())
}

async fn route(api: Arc<dyn Api>, req: Request<Incoming>) -> Resp {
    let path = route_path(req.uri());
    let method = req.method().clone();
    const GENERATIONS: &str = "/v1/images/generations";
    match (method.clone(), path.as_str()) {
        (Method::GET, "/health") => json_resp(
            StatusCode::OK,
            json!({ "status": "ok", "busy": api.busy(), "backend": api.backend_state() }),
        ),
        (Method::POST, GENERATIONS) => {
            let declared = req
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            let body = match read_body(req.into_body(), declared).await {
                Ok(b) => b,
                Err(BodyError::TooLarge) => return too_large(),
                Err(BodyError::Unreadable) => {
                    return error_resp(
                        StatusCode::BAD_REQUEST,
                        "Could not read the request body",
                        "INVALID_REQUEST",
                    )
                }
            };
            let value: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    return error_resp(
                        StatusCode::BAD_REQUEST,
                        &format!("Invalid JSON in request body: {e}"),
                        "INVALID_REQUEST",
                    )
                }
            };
            match api.submit(&value) {
                Ok((id, created)) => json_resp(
                    StatusCode::CREATED,
                    json!({ "id": id, "status": "pending", "createdAt": created }),
                ),
                Err(e) => submit_error(e),
            }
        }
        (m, p) if p.starts_with(GENERATIONS) && p[GENERATIONS.len()..].starts_with('/') => {
            let id = &p[GENERATIONS.len() + 1..];
            if id.is_empty() || id.contains('/') {
                return not_found();
            }
            match m {
                Method::GET => match api.get(id) {
                    Some(v) => json_resp(StatusCode::OK, v),
                    None => error_resp(StatusCode::NOT_FOUND, "Generation not found", "NOT_FOUND"),
                },
                Method::DELETE => match api.cancel(id) {
                    CancelOutcome::Cancelled { .. } | CancelOutcome::AlreadyCancelled => {
                        json_resp(StatusCode::OK, json!({ "id": id, "status": "cancelled" }))
                    }
                    CancelOutcome::NotFound => {
                        error_resp(StatusCode::NOT_FOUND, "Generation not found", "NOT_FOUND")
                    }
                    CancelOutcome::Terminal(s) => error_resp(
                        StatusCode::CONFLICT,
                        &format!(
                            "Generation is already {} and cannot be cancelled",
                            match s {
                                JobStatus::Complete => "complete",
                                _ => "error",
                            }
                        ),
                        "ALREADY_TERMINAL",
                    ),
                },
                _ => not_found(),
            }
        }
        _ => not_found(),
    }
}

fn not_found() -> Resp {
    error_resp(StatusCode::NOT_FOUND, "Not found", "NOT_FOUND")
}

fn too_large() -> Resp {
    let mut r = error_resp(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("Request body too large (limit {MAX_BODY_BYTES} bytes)"),
        "PAYLOAD_TOO_LARGE",
    );
    r.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    r
}

/// How much of an oversized body is read and discarded before the 413, and for how long: a client
/// still sending when the server answers and closes gets a reset instead of the response.
const DRAIN_BYTES: usize = 16 * 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

enum BodyError {
    TooLarge,
    Unreadable,
}

/// The body, up to `MAX_BODY_BYTES`. Past the limit nothing more is kept, but the rest is read
/// (within `DRAIN_BYTES` and `DRAIN_TIME`) so the client is listening when the 413 arrives.
async fn read_body(mut body: Incoming, declared: Option<usize>) -> Result<Bytes, BodyError> {
    if declared.is_some_and(|n| n > DRAIN_BYTES) {
        return Err(BodyError::TooLarge);
    }
    let mut kept: Vec<u8> = Vec::new();
    let mut seen = 0usize;
    // A declared length over the limit is refused without keeping anything.
    let mut drain_until = declared
        .filter(|n| *n > MAX_BODY_BYTES)
        .map(|_| tokio::time::Instant::now() + DRAIN_TIME);
    loop {
        let next = match drain_until {
            Some(deadline) => match tokio::time::timeout_at(deadline, body.frame()).await {
                Ok(f) => f,
                Err(_) => return Err(BodyError::TooLarge),
            },
            None => body.frame().await,
        };
        let frame = match next {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(_)) if drain_until.is_some() => return Err(BodyError::TooLarge),
            Some(Err(_)) => return Err(BodyError::Unreadable),
        };
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > MAX_BODY_BYTES || drain_until.is_some() {
                if drain_until.is_none() {
                    drain_until = Some(tokio::time::Instant::now() + DRAIN_TIME);
                    kept = Vec::new();
                }
                if seen > DRAIN_BYTES {
                    return Err(BodyError::TooLarge);
                }
            } else {
                kept.extend_from_slice(&data);
            }
        }
    }
    if drain_until.is_some() {
        Err(BodyError::TooLarge)
    } else {
        Ok(Bytes::from(kept))
    }
}

fn submit_error(e: Error) -> Resp {
    let (message, details) = match &e {
        Error::Server { message, details } => (message.clone(), details.clone()),
        other => (other.to_string(), Default::default()),
    };
    let code = details
        .get("code")
        .and_then(|c| c.as_str())
        .unwrap_or("INTERNAL_ERROR")
        .to_string();
    let status = match code.as_str() {
        "INVALID_REQUEST" => StatusCode::BAD_REQUEST,
        "SERVER_BUSY" | "SERVER_NOT_RUNNING" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut err = json!({ "message": message, "code": code });
    if let Some(s) = details.get("suggestion") {
        err["suggestion"] = s.clone();
    }
    json_resp(status, json!({ "error": err }))
}

/// Serves until `stop` is set; then stops accepting and drops open connections.
pub async fn serve(listener: TcpListener, api: Arc<dyn Api>, stop: Arc<CancelFlag>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let api = api.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let api = api.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(api, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Fake {
        submitted: Mutex<Vec<Value>>,
        access: Access,
    }

    impl Api for Fake {
        fn busy(&self) -> bool {
            true
        }
        fn submit(&self, body: &Value) -> Result<(String, i64), Error> {
            crate::diffusion::config::ImageRequest::parse(body)?;
            if body["prompt"] == "full" {
                return Err(Error::server(
                    "Server is busy: queue full",
                    json!({"code": "SERVER_BUSY"}),
                ));
            }
            self.submitted.lock().unwrap().push(body.clone());
            Ok(("gen_1_abc".into(), 42))
        }
        fn get(&self, id: &str) -> Option<Value> {
            (id == "gen_1_abc").then(|| json!({"id": id, "status": "pending"}))
        }
        fn cancel(&self, id: &str) -> CancelOutcome {
            match id {
                "done" => CancelOutcome::Terminal(JobStatus::Complete),
                "gen_1_abc" => CancelOutcome::Cancelled { was_active: true },
                _ => CancelOutcome::NotFound,
            }
        }
        fn backend_state(&self) -> String {
            "absent".into()
        }
        fn access(&self) -> &Access {
            &self.access
        }
    }

    async fn send(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        send_declared(port, method, path, body, body.len()).await
    }

    async fn send_declared(
        port: u16,
        method: &str,
        path: &str,
        body: &[u8],
        declared: usize,
    ) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\nConnection: close\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        let text = String::from_utf8_lossy(&out).to_string();
        let code = text[9..12].parse().unwrap();
        let body = text
            .split_once("\r\n\r\n")
            .map(|x| x.1)
            .unwrap_or("")
            .to_string();
        (code, body)
    }

    #[tokio::test]
    async fn an_oversized_body_still_gets_its_413() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(CancelFlag::default());
        let task = tokio::spawn(serve(listener, Arc::new(Fake::default()), stop.clone()));
        // Several clients at once, each sending a 4 MiB body in full: none may see its
        // connection reset before it can read the answer.
        let mut clients = Vec::new();
        for _ in 0..8 {
            clients.push(tokio::spawn(async move {
                let body = vec![b'x'; 4 * MAX_BODY_BYTES];
                send(port, "POST", "/v1/images/generations", &body).await
            }));
        }
        for c in clients {
            let (code, body) = c.await.unwrap();
            assert_eq!((code, body.contains("PAYLOAD_TOO_LARGE")), (413, true));
        }
        stop.cancel();
        let _ = task.await;
    }

    #[tokio::test]
    async fn routes_codes_and_bodies() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let fake = Arc::new(Fake::default());
        let stop = Arc::new(CancelFlag::default());
        let task = tokio::spawn(serve(listener, fake.clone(), stop.clone()));

        assert_eq!(
            send(port, "GET", "/health?x=1", b"").await,
            (
                200,
                r#"{"status":"ok","busy":true,"backend":"absent"}"#.into()
            )
        );
        let (c, b) = send(
            port,
            "POST",
            "/v1/images/generations?src=app",
            br#"{"prompt":"a cat"}"#,
        )
        .await;
        assert_eq!(c, 201);
        assert_eq!(b, r#"{"id":"gen_1_abc","status":"pending","createdAt":42}"#);
        let (c, b) = send(port, "POST", "/v1/images/generations", b"{not json").await;
        assert_eq!(c, 400);
        assert!(b.contains("INVALID_REQUEST"));
        let (c, b) = send(port, "POST", "/v1/images/generations", br#"{"count":2}"#).await;
        assert_eq!(
            (c, b.contains("Missing required field: prompt")),
            (400, true)
        );
        let (c, b) = send(
            port,
            "POST",
            "/v1/images/generations",
            br#"{"prompt":"full"}"#,
        )
        .await;
        assert_eq!((c, b.contains("SERVER_BUSY")), (503, true));
        let (c, b) = send_declared(
            port,
            "POST",
            "/v1/images/generations",
            b"",
            MAX_BODY_BYTES + 1,
        )
        .await;
        assert_eq!((c, b.contains("PAYLOAD_TOO_LARGE")), (413, true));
        assert_eq!(
            send(port, "GET", "/v1/images/generations/gen_1_abc/", b"")
                .await
                .0,
            200
        );
        let (c, b) = send(port, "GET", "/v1/images/generations/nope", b"").await;
        assert_eq!(
            b,
            r#"{"error":{"message":"Generation not found","code":"NOT_FOUND"}}"#
        );
        assert_eq!(c, 404);
        assert_eq!(
            send(port, "DELETE", "/v1/images/generations/gen_1_abc", b"").await,
            (200, r#"{"id":"gen_1_abc","status":"cancelled"}"#.into())
        );
        let (c, b) = send(port, "DELETE", "/v1/images/generations/done", b"").await;
        assert_eq!((c, b.contains("already complete")), (409, true));
        assert_eq!(send(port, "GET", "/nothing", b"").await.0, 404);
        assert_eq!(
            send(port, "OPTIONS", "/v1/images/generations", b"").await.0,
            200
        );
        assert_eq!(fake.submitted.lock().unwrap().len(), 1);

        stop.cancel();
        task.await.unwrap();
        assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err());
    }
}
