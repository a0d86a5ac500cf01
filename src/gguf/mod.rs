//! GGUF header reading (v2 and v3, little-endian) into the contract's `GGUFMetadata`.
//! The parser works on a byte prefix of the file and asks for more when it runs out, so the same
//! code serves local files and remote files fetched with HTTP Range.

pub mod metadata;
pub mod raw;
pub mod reader;
pub mod remote;
pub mod update;

pub use metadata::{metadata_json, read_local_metadata};
pub use reader::{parse_header, GgufHeader, ParseError, TensorInfo, Value};
