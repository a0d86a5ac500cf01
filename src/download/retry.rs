//! Retry policy: which HTTP answers are worth another try, how long to wait (exponential backoff
//! with jitter, or the server's `Retry-After` within reason), and when to give up.

use std::time::Duration;

/// Backoff never waits longer than this between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A `Retry-After` longer than this is capped: a download that sits silent for minutes looks
/// hung, and the attempt budget still bounds the total.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// 408, 429 and 5xx are transient; every other error status is an answer.
pub fn is_retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..=599).contains(&status)
}

/// `Retry-After: <seconds>` or an HTTP date, relative to `now`.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - now;
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// The wait before attempt `failures + 1`, `failures` >= 1 being the consecutive failures so far.
/// `jitter` in [0, 1) spreads clients that failed together (±20 %).
pub fn backoff(
    failures: u32,
    base: Duration,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Duration {
    if let Some(ra) = retry_after {
        return ra.min(MAX_RETRY_AFTER);
    }
    let exp = failures.saturating_sub(1).min(20);
    let raw = base.saturating_mul(1u32 << exp).min(MAX_BACKOFF);
    raw.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 410, 416] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = chrono::Utc
            .with_ymd_and_hms(2015, 10, 21, 7, 28, 0)
            .unwrap();
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_grows_caps_and_honours_retry_after() {
        let base = Duration::from_secs(1);
        assert_eq!(backoff(1, base, None, 0.5), Duration::from_secs(1));
        assert_eq!(backoff(2, base, None, 0.5), Duration::from_secs(2));
        assert_eq!(backoff(3, base, None, 0.5), Duration::from_secs(4));
        assert_eq!(backoff(30, base, None, 0.5), MAX_BACKOFF);
        assert!(backoff(1, base, None, 0.0) >= Duration::from_millis(800));
        assert!(backoff(1, base, None, 0.999) <= Duration::from_millis(1200));
        assert_eq!(
            backoff(1, base, Some(Duration::from_secs(5)), 0.5),
            Duration::from_secs(5)
        );
        assert_eq!(
            backoff(1, base, Some(Duration::from_secs(3600)), 0.5),
            MAX_RETRY_AFTER
        );
        assert_eq!(backoff(4, Duration::ZERO, None, 0.5), Duration::ZERO);
    }
}
