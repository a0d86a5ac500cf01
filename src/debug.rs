//! Opt-in diagnostics. Nothing is printed unless `GENAI_ELECTRON_DEBUG` is set to a truthy value,
//! the same switch genai-electron uses, so a library inside an app stays quiet by default.

use std::sync::OnceLock;

pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var("GENAI_ELECTRON_DEBUG")
            .map(|v| !matches!(v.trim(), "" | "0" | "false" | "no" | "off"))
            .unwrap_or(false)
    })
}

/// Prints a debug line to stderr when debugging is enabled.
#[macro_export]
macro_rules! debug_log {
    ($($arg:tt)*) => {
        if $crate::debug::enabled() {
            eprintln!("[genai-electron-rs] {}", format!($($arg)*));
        }
    };
}
