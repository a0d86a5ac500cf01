//! Waiting for a server to say it is ready, raced against its exit: a child that dies while
//! loading is reported at once with its own last lines, never after the whole startup timeout.

use super::process::{Child, ExitInfo};
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// One answer of the readiness probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Ready,
    /// Not ready yet, with what was seen (`503 Loading model`, `connection refused`).
    NotReady(String),
}

#[derive(Debug, Clone)]
pub enum Readiness {
    Ready,
    Exited(ExitInfo),
    /// The timeout ran out; the last probe answer says what the server was doing.
    TimedOut {
        last: String,
    },
}

/// Polls `probe` (first after `first_delay`, then backing off ×1.5 up to `max_delay`, or at once
/// when `wake` is notified, say by a `listening` line) until it answers `Ready`, the child
/// exits, or `timeout` passes.
pub async fn wait_ready<F, Fut>(
    child: &Child,
    timeout: Duration,
    first_delay: Duration,
    max_delay: Duration,
    wake: Option<&Notify>,
    mut probe: F,
) -> Readiness
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Probe>,
{
    let deadline = Instant::now() + timeout;
    let mut delay = first_delay;
    let mut last = "no answer yet".to_string();
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Readiness::TimedOut { last };
        }
        let nap = delay.min(deadline - now);
        tokio::select! {
            info = child.wait() => return Readiness::Exited(info),
            _ = tokio::time::sleep(nap) => {}
            _ = async {
                match wake {
                    Some(n) => n.notified().await,
                    None => std::future::pending().await,
                }
            } => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::select! {
            info = child.wait() => return Readiness::Exited(info),
            answer = tokio::time::timeout(left, probe()) => match answer {
                Ok(Probe::Ready) => {
                    // A server that answered and died in the same instant is not ready.
                    if let Some(info) = child.exited() {
                        return Readiness::Exited(info);
                    }
                    return Readiness::Ready;
                }
                Ok(Probe::NotReady(what)) => last = what,
                Err(_) => return Readiness::TimedOut { last },
            },
        }
        delay = (delay.mul_f64(1.5)).min(max_delay);
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::supervisor::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn sh(script: &str) -> Command {
        Command::new("/bin/sh", vec!["-c".to_string(), script.to_string()])
    }

    #[tokio::test]
    async fn ready_after_some_not_ready_answers() {
        let child = Child::spawn(&sh("sleep 30"), Arc::new(|_, _| {})).unwrap();
        let n = AtomicUsize::new(0);
        let r = wait_ready(
            &child,
            Duration::from_secs(10),
            Duration::from_millis(1),
            Duration::from_millis(5),
            None,
            || async {
                if n.fetch_add(1, Ordering::SeqCst) < 3 {
                    Probe::NotReady("503".into())
                } else {
                    Probe::Ready
                }
            },
        )
        .await;
        assert!(matches!(r, Readiness::Ready));
        assert_eq!(n.load(Ordering::SeqCst), 4);
        child.terminate(Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn early_exit_wins_over_a_long_timeout() {
        let child =
            Child::spawn(&sh("echo 'E bad model' >&2; exit 1"), Arc::new(|_, _| {})).unwrap();
        let t0 = Instant::now();
        let r = wait_ready(
            &child,
            Duration::from_secs(120),
            Duration::from_millis(10),
            Duration::from_millis(100),
            None,
            || async { Probe::NotReady("connection refused".into()) },
        )
        .await;
        match r {
            Readiness::Exited(info) => {
                assert_eq!(info.code, Some(1));
                assert_eq!(info.stderr_tail, vec!["E bad model"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(t0.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn timeout_reports_the_last_answer() {
        let child = Child::spawn(&sh("sleep 30"), Arc::new(|_, _| {})).unwrap();
        let r = wait_ready(
            &child,
            Duration::from_millis(150),
            Duration::from_millis(10),
            Duration::from_millis(20),
            None,
            || async { Probe::NotReady("503 Loading model".into()) },
        )
        .await;
        match r {
            Readiness::TimedOut { last } => assert_eq!(last, "503 Loading model"),
            other => panic!("{other:?}"),
        }
        child.terminate(Duration::from_secs(1)).await;
    }
}
