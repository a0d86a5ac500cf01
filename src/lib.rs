//! genai-electron-rs: the core (plain async Rust, no napi) plus the napi layer in `api`.

pub mod checksum;
pub mod debug;
pub mod diffusion;
pub mod download;
pub mod error;
pub mod files;
pub mod gguf;
pub mod http;
pub mod storage;
pub mod system;

mod api;

pub use error::{Error, Result};
