#![cfg_attr(test, allow(dead_code))]
//! The napi layer: the only module that knows about Node. It converts arguments, runs the core
//! on tokio and maps core errors to the JS error classes. No business logic lives here.

mod diffusion;
mod download;
mod errors;
mod files;
mod models;
mod system;
