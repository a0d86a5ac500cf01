//! `<userData>/logs/diffusion-server.log`: the supervisor's rotating server log
//! (`[<ISO time>] [<LEVEL>] <message>`, 5 MB keeping `.1` and `.2`).

pub use crate::supervisor::logs::{parse_entry, LogFile, LogLevel};

pub const LOG_FILE: &str = "diffusion-server.log";
