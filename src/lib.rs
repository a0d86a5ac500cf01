//! genai-electron-rs: the core (plain async Rust, no napi) plus the napi layer in `api`.

pub mod binaries;
pub mod checksum;
pub mod compat;
pub mod config_fields;
pub mod debug;
pub mod diffusion;
pub mod download;
pub mod error;
pub mod files;
pub mod gguf;
pub mod http;
pub mod llama;
pub mod storage;
pub mod supervisor;
pub mod system;

mod api;

pub use error::{Error, Result};
