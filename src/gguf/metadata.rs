//! The contract's `GGUFMetadata` built from a parsed header, and reading it from a local file.

use super::reader::{parse_header, GgufHeader, ParseError, Value, MAX_HEADER_BYTES};
use serde_json::{json, Map, Number, Value as Json};
use std::io::Read;
use std::path::Path;

/// A GGUF value as JSON: integers exact, floats as numbers (non-finite become null), arrays kept
/// element-wise; this is `raw`'s representation.
pub fn to_json(v: &Value) -> Json {
    match v {
        Value::U8(x) => json!(x),
        Value::I8(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::U64(x) => json!(x),
        Value::I64(x) => json!(x),
        Value::F32(x) => float(*x as f64),
        Value::F64(x) => float(*x),
        Value::Bool(x) => json!(x),
        Value::String(s) => json!(s),
        Value::Array(items) => Json::Array(items.iter().map(to_json).collect()),
    }
}

fn float(f: f64) -> Json {
    Number::from_f64(f).map(Json::Number).unwrap_or(Json::Null)
}

/// Builds the contract's `GGUFMetadata` (plus `raw`). `file_len` lets the MoE expert byte count
/// include the last tensor.
pub fn metadata_json(h: &GgufHeader, file_len: Option<u64>) -> Json {
    let mut m = Map::new();
    m.insert("version".into(), json!(h.version));
    m.insert("tensor_count".into(), json!(h.tensor_count));
    m.insert("kv_count".into(), json!(h.kv_count));
    let arch = h
        .get("general.architecture")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(a) = &arch {
        m.insert("architecture".into(), json!(a));
    }
    if let Some(v) = h.get("general.name") {
        m.insert("general_name".into(), to_json(v));
    }
    if let Some(v) = h.get("general.file_type") {
        m.insert("file_type".into(), to_json(v));
    }
    if let Some(a) = &arch {
        let fields = [
            ("block_count", "block_count"),
            ("context_length", "context_length"),
            ("attention_head_count", "attention.head_count"),
            ("attention_head_count_kv", "attention.head_count_kv"),
            ("attention_key_length", "attention.key_length"),
            ("embedding_length", "embedding_length"),
            ("feed_forward_length", "feed_forward_length"),
            (
                "attention_layer_norm_rms_epsilon",
                "attention.layer_norm_rms_epsilon",
            ),
            ("vocab_size", "vocab_size"),
            ("rope_dimension_count", "rope.dimension_count"),
            ("rope_freq_base", "rope.freq_base"),
            ("attention_sliding_window", "attention.sliding_window"),
            ("expert_count", "expert_count"),
            ("expert_used_count", "expert_used_count"),
            ("expert_feed_forward_length", "expert_feed_forward_length"),
        ];
        for (name, key) in fields {
            if let Some(v) = h.get(&format!("{a}.{key}")) {
                m.insert(name.into(), to_json(v));
            }
        }
    }
    if let Some(bytes) = expert_weight_bytes(h, file_len) {
        m.insert("expert_weights_bytes".into(), json!(bytes));
    }
    let raw: Map<String, Json> = h.kv.iter().map(|(k, v)| (k.clone(), to_json(v))).collect();
    m.insert("raw".into(), Json::Object(raw));
    Json::Object(m)
}

/// Sum of the byte spans of MoE expert tensors (`_exps.` in the name), from sorted offsets.
fn expert_weight_bytes(h: &GgufHeader, file_len: Option<u64>) -> Option<u64> {
    if !h.tensors.iter().any(|t| t.name.contains("_exps.")) {
        return None;
    }
    let alignment = h
        .get("general.alignment")
        .and_then(Value::as_u64)
        .filter(|a| *a > 0)
        .unwrap_or(32);
    let data_start = h.header_len.div_ceil(alignment) * alignment;
    let mut sorted: Vec<_> = h.tensors.iter().collect();
    sorted.sort_by_key(|t| t.offset);
    let mut total = 0u64;
    for (i, t) in sorted.iter().enumerate() {
        let end = match sorted.get(i + 1) {
            Some(next) => next.offset,
            None => file_len?.checked_sub(data_start)?,
        };
        if t.name.contains("_exps.") {
            total = total.saturating_add(end.saturating_sub(t.offset));
        }
    }
    Some(total)
}

/// Reads a local file's header, reading more of the file only as far as the parser needs.
pub fn read_local_header(path: &Path) -> Result<(GgufHeader, u64), String> {
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("Cannot open {}: {e}", path.display()))?;
    let len = file
        .metadata()
        .map_err(|e| format!("Cannot read {}: {e}", path.display()))?
        .len();
    let mut buf = Vec::new();
    let mut want = 1u64 << 20;
    loop {
        let target = want.min(len).min(MAX_HEADER_BYTES);
        if (buf.len() as u64) < target {
            let more = target - buf.len() as u64;
            buf.reserve_exact(more as usize);
            (&mut file)
                .take(more)
                .read_to_end(&mut buf)
                .map_err(|e| format!("Cannot read {}: {e}", path.display()))?;
        }
        match parse_header(&buf, Some(len)) {
            Ok(h) => return Ok((h, len)),
            Err(ParseError::NeedMore(n)) if (buf.len() as u64) < len.min(MAX_HEADER_BYTES) => {
                want = n.max(want * 2);
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// `fetchLocalGGUFMetadata`: the contract's `GGUFMetadata` for a local file.
pub fn read_local_metadata(path: &Path) -> Result<Json, String> {
    let (h, len) = read_local_header(path)?;
    Ok(metadata_json(&h, Some(len)))
}

#[cfg(test)]
mod tests {
    use super::super::reader::{encode_header, TensorInfo};
    use super::*;

    #[test]
    fn builds_contract_fields() {
        let mut bytes = encode_header(
            &[
                ("general.architecture", Value::String("qwen3moe".into())),
                ("general.name", Value::String("Q".into())),
                ("general.file_type", Value::U32(7)),
                ("qwen3moe.block_count", Value::U32(48)),
                ("qwen3moe.context_length", Value::U64(40960)),
                (
                    "qwen3moe.attention.layer_norm_rms_epsilon",
                    Value::F32(1e-6),
                ),
                ("qwen3moe.rope.freq_base", Value::F32(1_000_000.0)),
                ("qwen3moe.expert_count", Value::U32(128)),
            ],
            &[
                TensorInfo {
                    name: "blk.0.ffn_up_exps.weight".into(),
                    dims: vec![4],
                    ggml_type: 0,
                    offset: 0,
                },
                TensorInfo {
                    name: "blk.0.attn_q.weight".into(),
                    dims: vec![4],
                    ggml_type: 0,
                    offset: 96,
                },
                TensorInfo {
                    name: "blk.0.ffn_down_exps.weight".into(),
                    dims: vec![4],
                    ggml_type: 0,
                    offset: 128,
                },
            ],
        );
        let header_len = bytes.len();
        let data_start = header_len.div_ceil(32) * 32;
        bytes.resize(data_start + 200, 0);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.gguf");
        std::fs::write(&p, &bytes).unwrap();
        let m = read_local_metadata(&p).unwrap();
        assert_eq!(m["architecture"], "qwen3moe");
        assert_eq!(m["general_name"], "Q");
        assert_eq!(m["file_type"], 7);
        assert_eq!(m["block_count"], 48);
        assert_eq!(m["context_length"], 40960);
        assert_eq!(m["expert_count"], 128);
        assert_eq!(m["tensor_count"], 3);
        assert_eq!(m["kv_count"], 8);
        assert!((m["rope_freq_base"].as_f64().unwrap() - 1e6).abs() < 1.0);
        // 96 bytes (first expert tensor) + 200 - 128 (last one, up to the end of the file).
        assert_eq!(m["expert_weights_bytes"], 96 + 72);
        assert_eq!(m["raw"]["qwen3moe.block_count"], 48);
    }

    #[test]
    fn large_headers_are_read_incrementally() {
        let tokens: Vec<Value> = (0..200_000)
            .map(|i| Value::String(format!("token{i}")))
            .collect();
        let bytes = encode_header(
            &[
                ("general.architecture", Value::String("llama".into())),
                ("tokenizer.ggml.tokens", Value::Array(tokens)),
            ],
            &[],
        );
        assert!(bytes.len() > 2 << 20);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.gguf");
        std::fs::write(&p, &bytes).unwrap();
        let m = read_local_metadata(&p).unwrap();
        assert_eq!(
            m["raw"]["tokenizer.ggml.tokens"].as_array().unwrap().len(),
            200_000
        );
    }

    #[test]
    fn truncated_file_is_an_error() {
        let bytes = encode_header(
            &[("general.architecture", Value::String("llama".into()))],
            &[],
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.gguf");
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        assert!(read_local_metadata(&p).is_err());
    }
}
