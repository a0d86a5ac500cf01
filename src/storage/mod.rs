//! Storage: userData paths, model records (genai-electron's JSON), atomic writes, shared-aware
//! deletion and integrity checks.

pub mod atomic;
pub mod blobs;
pub mod delete;
pub mod ids;
pub mod integrity;
pub mod lock;
pub mod model_info;
pub mod paths;
pub mod store;

pub use model_info::{ModelInfo, ModelType};
pub use paths::Paths;
pub use store::Store;
