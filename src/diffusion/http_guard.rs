//! Who may use the image HTTP API, as genai-electron 0.26 decides it: no CORS headers unless the
//! origin is in `allowedOrigins` (`*` = any), cross-origin writes from other origins refused
//! (`INVALID_ORIGIN`), and on a loopback bind a Host header that is not localhost or an IP
//! literal refused (`INVALID_HOST`, against DNS rebinding). Requests without an Origin (Node,
//! Electron's main process, curl) are not browser requests and pass.

/// The access rules of one running server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Access {
    pub allowed_origins: Vec<String>,
    /// The server listens on a loopback address: check Host headers.
    pub guard_host: bool,
}

impl Access {
    pub fn new(allowed_origins: Vec<String>, bind_host: &str) -> Self {
        Access {
            allowed_origins,
            guard_host: is_loopback_bind(bind_host),
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request, if any.
    pub fn allow_origin(&self, origin: Option<&str>) -> Option<String> {
        if self.allowed_origins.iter().any(|o| o == "*") {
            return Some("*".into());
        }
        origin
            .filter(|o| self.allowed_origins.iter().any(|a| a == o))
            .map(str::to_string)
    }

    pub fn host_ok(&self, host: Option<&str>) -> bool {
        !self.guard_host || host.is_none_or(|h| h.is_empty() || is_loopback_host_header(h.trim()))
    }
}

pub fn is_loopback_bind(host: &str) -> bool {
    let h = host.trim().to_ascii_lowercase();
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h == "localhost" || h == "::1" || h.starts_with("127.") || h.starts_with("::ffff:127.")
}

/// genai-electron's `/^(?:(?:[a-z0-9-]+\.)*localhost\.?|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]+\])(?::\d{1,5})?$/i`.
pub fn is_loopback_host_header(h: &str) -> bool {
    let (name, port) = split_port(h);
    if port.is_some_and(|p| p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    if let Some(inner) = lower.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    }
    let parts: Vec<&str> = lower.split('.').collect();
    if parts.len() == 4
        && parts
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return true;
    }
    let base = lower.strip_suffix('.').unwrap_or(&lower);
    let mut labels: Vec<&str> = base.split('.').collect();
    if labels.pop() != Some("localhost") {
        return false;
    }
    labels.iter().all(|l| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    })
}

/// `name[:port]`, with `[v6]:port` kept whole on the left.
fn split_port(h: &str) -> (&str, Option<&str>) {
    if h.starts_with('[') {
        return match h.rfind("]:") {
            Some(i) => (&h[..=i], Some(&h[i + 2..])),
            None => (h, None),
        };
    }
    match h.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (h, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_matches_genai_electron() {
        for ok in [
            "localhost",
            "localhost:8081",
            "LOCALHOST.",
            "app.localhost:1",
            "127.0.0.1:8081",
            "10.0.0.5",
            "[::1]:8081",
            "[::ffff:127.0.0.1]",
        ] {
            assert!(is_loopback_host_header(ok), "{ok}");
        }
        for bad in [
            "evil.com",
            "evil.com:8081",
            "localhost.evil.com",
            "127.0.0.1:",
            "127.0.0.1:123456",
            "1234.0.0.1",
            "[::1",
            "",
        ] {
            assert!(!is_loopback_host_header(bad), "{bad}");
        }
    }

    #[test]
    fn origins() {
        let a = Access::new(vec![], "127.0.0.1");
        assert!(a.guard_host);
        assert_eq!(a.allow_origin(Some("http://x")), None);
        let a = Access::new(vec!["http://app".into()], "0.0.0.0");
        assert!(!a.guard_host && a.host_ok(Some("evil.com")));
        assert_eq!(
            a.allow_origin(Some("http://app")).as_deref(),
            Some("http://app")
        );
        assert_eq!(a.allow_origin(Some("http://other")), None);
        let a = Access::new(vec!["*".into()], "::1");
        assert!(a.guard_host);
        assert_eq!(a.allow_origin(None).as_deref(), Some("*"));
    }
}
