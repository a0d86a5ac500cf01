//! What every request of one download shares (client, token rules, timers, cancellation), and the
//! translation of HTTP answers into "retry" or "give up with this error".

use crate::error::Error;
use crate::http::{header_str, Auth};
use serde_json::json;
use std::time::Duration;
use url::Url;

use super::buffers::{Pool, SLACK};
use super::cancel::CancelToken;
use super::config::TransferOptions;
use super::retry;
use super::source::repo_from_resolve_url;

pub struct Net {
    pub client: crate::http::Client,
    pub auth: Auth,
    pub endpoint: String,
    pub opts: TransferOptions,
    pub cancel: CancelToken,
    /// Ranged connections the files of this download may still open (`connections` in all, shared
    /// by the files fetched at the same time). May go below zero: every file gets one.
    pub budget: std::sync::Arc<std::sync::atomic::AtomicIsize>,
    /// The receive buffers of all its ranged connections, however many files run at once: two per
    /// connection of the budget plus `buffers::SLACK`.
    pub buffers: std::sync::Arc<Pool>,
}

/// How one attempt ended, when it did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// Transient: try again after the backoff (or the server's `Retry-After`).
    Retry {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Final.
    Fatal(Error),
    Cancelled,
}

impl Net {
    pub fn new(auth: Auth, endpoint: String, opts: TransferOptions, cancel: CancelToken) -> Self {
        let connections = opts.connections.max(1);
        Net {
            client: crate::http::download_client(),
            auth,
            endpoint,
            cancel,
            budget: std::sync::Arc::new(std::sync::atomic::AtomicIsize::new(connections as isize)),
            buffers: std::sync::Arc::new(Pool::new(2 * connections + SLACK)),
            opts,
        }
    }

    pub fn cancelled_error(&self, url: &Url) -> Error {
        Error::download(
            "Download cancelled",
            json!({ "cancelled": true, "url": url.as_str() }),
        )
    }

    /// 401/403: name the repo and say whether a token was sent, because "gated repo, accept the
    /// license" and "token missing" are what a user must act on.
    pub fn access_denied(&self, status: u16, url: &Url, repo: Option<&str>) -> Error {
        // Only the endpoint itself speaks for the repo; a 403 from a CDN is about its URL.
        let repo = if self.auth.is_endpoint(url) {
            repo.map(str::to_string)
                .or_else(|| repo_from_resolve_url(url))
        } else {
            None
        };
        let token = self.auth.has_token();
        let message = match &repo {
            Some(r) if token => format!(
                "Access to Hugging Face repository {r} was denied (HTTP {status}) although a token was sent: the repository is gated or private and this token has no access to it. Accept its terms at {}/{r} with the account the token belongs to, or use a token with read access.",
                self.endpoint
            ),
            Some(r) => format!(
                "Hugging Face repository {r} is gated or private (HTTP {status}) and no token was sent. Accept its terms at {}/{r}, then set HF_TOKEN or pass hfToken.",
                self.endpoint
            ),
            None => format!(
                "HTTP error: {status} {}: access to {} was denied",
                reason(status),
                crate::http::redact(url)
            ),
        };
        Error::download(
            message,
            json!({ "status": status, "url": crate::http::redact(url), "repo": repo, "gated": repo.is_some(), "tokenSent": token }),
        )
    }

    /// A non-success final status.
    pub fn status_failure(
        &self,
        status: u16,
        headers: &reqwest::header::HeaderMap,
        url: &Url,
        repo: Option<&str>,
    ) -> Failure {
        if status == 401 || status == 403 {
            return Failure::Fatal(self.access_denied(status, url, repo));
        }
        if retry::is_retryable_status(status) {
            return Failure::Retry {
                message: format!("HTTP error: {status} {}", reason(status)),
                retry_after: header_str(headers, "retry-after")
                    .and_then(|v| retry::parse_retry_after(&v, chrono::Utc::now())),
            };
        }
        Failure::Fatal(Error::download(
            format!("HTTP error: {status} {}", reason(status)),
            json!({ "status": status, "url": crate::http::redact(url) }),
        ))
    }

    /// Sleeps the backoff for `failures`; false when cancelled meanwhile.
    pub async fn wait_before_retry(&self, failures: u32, retry_after: Option<Duration>) -> bool {
        let d = retry::backoff(
            failures,
            self.opts.retry_base_delay,
            retry_after,
            fastrand::f64(),
        );
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }
}

pub fn reason(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}
