//! Diffusion serving: stable-diffusion.cpp argument building, process supervision (sd-server and
//! sd-cli), output parsing (progress, errors), the job queue and the HTTP API. Plain async Rust on
//! tokio; `api::diffusion` adapts it to JS.

pub mod args;
pub mod backend;
pub mod binary;
pub mod config;
pub mod flags;
pub mod http_api;
pub mod http_guard;
pub mod jobs;
pub mod layout;
pub mod logs;
pub mod manager;
pub mod output_parser;
pub mod process;
pub mod progress;
pub mod residency;
pub mod tensors;
