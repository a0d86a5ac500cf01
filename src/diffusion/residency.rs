//! sd-server residency: genai-electron 0.26's backend states, release reasons and their ranks.
//! sd-server is spawned on the first image and released when idle, after a `single` image, on
//! cancel, when stuck, or when the server stops; these are the names JS sees.

use crate::diffusion::flags::Flags;
use serde_json::{json, Value};

/// `DiffusionBackendState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendState {
    #[default]
    Absent,
    Starting,
    Ready,
    Busy,
    Stopping,
}

impl BackendState {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendState::Absent => "absent",
            BackendState::Starting => "starting",
            BackendState::Ready => "ready",
            BackendState::Busy => "busy",
            BackendState::Stopping => "stopping",
        }
    }
}

/// `DiffusionBackendReleaseReason`, highest rank first: when releases overlap, the stop in
/// progress ends with the highest-ranked reason asked for (genai-electron's rule).
pub const RELEASE_REASONS: &[&str] = &[
    "shutdown",
    "stop",
    "llm-start",
    "calibration",
    "flags-changed",
    "idle-timeout",
    "stuck",
    "explicit",
    "single",
    "cancel",
    "crashed",
];

pub fn rank(reason: &str) -> usize {
    RELEASE_REASONS
        .iter()
        .position(|r| *r == reason)
        .map(|i| RELEASE_REASONS.len() - i)
        .unwrap_or(0)
}

/// The higher-ranked of two reasons (the current one wins a tie).
pub fn stronger(current: Option<&str>, asked: &str) -> String {
    match current {
        Some(c) if rank(c) >= rank(asked) => c.to_string(),
        _ => asked.to_string(),
    }
}

/// What is known about the current sd-server (`DiffusionBackendInfo`).
#[derive(Debug, Default)]
pub struct Residency {
    pub state: BackendState,
    pub pid: Option<u32>,
    pub started_at: Option<String>,
    pub load_time_ms: Option<u64>,
    pub last_used_at: Option<String>,
    pub flags: Option<Flags>,
    /// The reason the stop in progress will report.
    pub stop_reason: Option<String>,
    /// The reason of the first release asked for while ready or busy: `stopping` reports it,
    /// as in genai-electron, where the first caller enters `stopping` before any other runs.
    pub first_stop: Option<String>,
    pub idle: Option<tokio::task::AbortHandle>,
}

impl Residency {
    /// Records a release asked for at call time, before its stop can run: the first one while
    /// ready or busy names `stopping`, and every one raises the final reason by rank.
    pub fn claim_release(&mut self, reason: &str) {
        match self.state {
            BackendState::Ready | BackendState::Busy | BackendState::Stopping => {
                if self.state != BackendState::Stopping && self.first_stop.is_none() {
                    self.first_stop = Some(reason.to_string());
                }
                self.stop_reason = Some(stronger(self.stop_reason.as_deref(), reason));
            }
            BackendState::Absent | BackendState::Starting => {}
        }
    }

    /// The releases a server `stop()` causes, in genai-electron's order and under one lock: a
    /// running image is cancelled first (`stopping` says `cancel`), then the stop raises it.
    pub fn claim_stop(&mut self) {
        if self.state == BackendState::Busy {
            self.claim_release("cancel");
        }
        self.claim_release("stop");
    }

    /// Forgets the process (it was released or died).
    pub fn clear(&mut self) {
        self.pid = None;
        self.started_at = None;
        self.load_time_ms = None;
        self.last_used_at = None;
        self.flags = None;
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({ "state": self.state.as_str() });
        if let Some(p) = self.pid {
            v["pid"] = json!(p);
        }
        if let Some(s) = &self.started_at {
            v["startedAt"] = json!(s);
        }
        if let Some(ms) = self.load_time_ms {
            v["loadTimeMs"] = json!(ms);
        }
        if let Some(s) = &self.last_used_at {
            v["lastUsedAt"] = json!(s);
        }
        if let Some(f) = self.flags {
            v["flags"] = f.to_json();
        }
        v
    }
}

pub fn now_iso() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_follow_genai_electron() {
        assert!(rank("shutdown") > rank("stop"));
        assert!(rank("idle-timeout") > rank("stuck"));
        assert!(rank("stuck") > rank("explicit"));
        assert!(rank("cancel") > rank("crashed"));
        assert_eq!(stronger(Some("single"), "stop"), "stop");
        assert_eq!(stronger(Some("stop"), "single"), "stop");
        assert_eq!(stronger(None, "cancel"), "cancel");
    }

    #[test]
    fn the_first_claim_names_stopping_and_the_strongest_ends_it() {
        let mut r = Residency {
            state: BackendState::Ready,
            ..Default::default()
        };
        for reason in ["single", "shutdown", "cancel"] {
            r.claim_release(reason);
        }
        assert_eq!(r.first_stop.as_deref(), Some("single"));
        assert_eq!(r.stop_reason.as_deref(), Some("shutdown"));
        r.state = BackendState::Stopping;
        r.first_stop = None;
        r.claim_release("explicit");
        assert_eq!(
            r.first_stop, None,
            "a stop in progress is only raised, never renamed"
        );
        let mut idle = Residency::default();
        idle.claim_release("single");
        assert_eq!((idle.first_stop, idle.stop_reason), (None, None));
        let mut busy = Residency {
            state: BackendState::Busy,
            ..Default::default()
        };
        busy.claim_stop();
        assert_eq!(busy.first_stop.as_deref(), Some("cancel"));
        assert_eq!(busy.stop_reason.as_deref(), Some("stop"));
    }
}
