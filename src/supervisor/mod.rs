//! One child-process lifecycle for every server this library runs (llama-server, sd-server,
//! sd-cli): spawn in its own process group, split stdout/stderr into lines, wait for readiness
//! while watching for an early exit, report how it ended, stop it with a per-server signal plan,
//! kill it when the host exits, and keep a rotating log.

pub mod lines;
pub mod logs;
pub mod process;
pub mod readiness;

pub use process::{kill_all_children, Child, ExitInfo, Sig, StopStep, Stream};
