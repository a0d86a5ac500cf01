//! llama.cpp's llama-server: configuration and arguments as genai-electron 0.26 builds them,
//! the binary lookup, `getOptimalConfig`, and the launch/readiness/stop rules of the real server.
//! The process itself is run by `supervisor`.

pub mod binary;
pub mod config;
pub mod optimal;
pub mod server;
