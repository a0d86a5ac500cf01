//! System RAM from sysinfo. Uncached on purpose: the contract's `getMemoryInfo()` is a live
//! reading that offload decisions take right before loading a model.

use crate::error::{Error, Result};
use serde::Serialize;
use serde_json::json;

/// `MemoryInfo` of the contract, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryInfo {
    pub total: u64,
    /// Memory that can be handed to a new process without swapping (Linux `MemAvailable`), the
    /// same figure as Node's `os.freemem()`.
    pub available: u64,
    /// `total - available`, as the contract defines it (not the OS's own "used" figure).
    pub used: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simulated: Option<bool>,
}

impl MemoryInfo {
    pub fn new(total: u64, available: u64) -> Self {
        let available = available.min(total);
        MemoryInfo {
            total,
            available,
            used: total - available,
            simulated: None,
        }
    }
}

/// Reads the machine's RAM now.
pub fn read() -> Result<MemoryInfo> {
    let unreadable = |reason: String| {
        Error::fs(
            format!("Cannot read system memory: {reason}"),
            json!({ "reason": reason }),
        )
    };
    let mut sys = sysinfo::System::new().map_err(|e| unreadable(e.to_string()))?;
    sys.refresh_memory();
    let total = sys.total_memory();
    if total == 0 {
        // sysinfo reports 0 when /proc/meminfo (or its platform equivalent) cannot be read.
        return Err(unreadable("the OS reported no memory".into()));
    }
    Ok(MemoryInfo::new(total, sys.available_memory()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_is_total_minus_available() {
        let m = MemoryInfo::new(16, 10);
        assert_eq!((m.total, m.available, m.used), (16, 10, 6));
        // A reading where available exceeds total is clamped rather than underflowing.
        assert_eq!(MemoryInfo::new(8, 9).used, 0);
    }

    #[test]
    fn reads_this_machine() {
        let m = read().unwrap();
        assert!(m.total > 64 * 1024 * 1024, "{m:?}");
        assert!(m.available <= m.total);
        assert_eq!(m.used, m.total - m.available);
        assert_eq!(m.simulated, None);
    }
}
