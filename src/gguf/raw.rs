//! The raw parse genai-electron 0.26 returns from `fetchGGUFMetadata` / `fetchLocalGGUFMetadata`:
//! `{ metadata, tensorInfos }` with every GGUF key as written and 64-bit integers as BigInt.
//! JSON has no BigInt, so each 64-bit integer travels as `{"$bigint": "<decimal>"}`; GGUF values
//! are never objects, so the tag cannot collide with a real value. Metadata is a list of
//! `[key, value]` pairs in file order (JS builds the object; a repeated key keeps the last value,
//! as in genai-electron).

use super::metadata::to_json;
use super::reader::{GgufHeader, Value};
use serde_json::{json, Value as Json};

/// The tag the JS side turns into a BigInt.
pub const BIGINT_TAG: &str = "$bigint";

fn big(v: impl ToString) -> Json {
    json!({ BIGINT_TAG: v.to_string() })
}

/// A non-finite float has no JSON form: it travels as the text JavaScript's `Number()` reads.
fn non_finite(f: f64) -> Json {
    let text = if f.is_nan() {
        "NaN"
    } else if f > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    };
    json!({ "$float": text })
}

/// 64-bit integers tagged, non-finite floats tagged, everything else as `raw`'s JSON.
fn value(v: &Value) -> Json {
    match v {
        Value::U64(x) => big(x),
        Value::I64(x) => big(x),
        Value::F32(x) if !x.is_finite() => non_finite(*x as f64),
        Value::F64(x) if !x.is_finite() => non_finite(*x),
        Value::Array(items) => Json::Array(items.iter().map(value).collect()),
        other => to_json(other),
    }
}

/// `{ metadata: [[key, value], ...], tensorInfos: [...] }` for `h`.
pub fn raw_json(h: &GgufHeader) -> Json {
    let mut pairs = Vec::with_capacity(h.kv.len() + 3);
    pairs.push(json!(["version", h.version]));
    pairs.push(json!(["tensor_count", big(h.tensor_count)]));
    pairs.push(json!(["kv_count", big(h.kv_count)]));
    pairs.extend(h.kv.iter().map(|(k, v)| json!([k, value(v)])));
    let tensors: Vec<Json> = h
        .tensors
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "n_dims": t.dims.len(),
                "shape": t.dims.iter().map(big).collect::<Vec<_>>(),
                "dtype": t.ggml_type,
                "offset": big(t.offset),
            })
        })
        .collect();
    json!({ "metadata": pairs, "tensorInfos": tensors })
}

#[cfg(test)]
mod tests {
    use super::super::reader::{encode_header, parse_header, TensorInfo};
    use super::*;

    #[test]
    fn tags_64_bit_integers_and_keeps_file_order() {
        let bytes = encode_header(
            &[
                ("general.architecture", Value::String("llama".into())),
                ("llama.context_length", Value::U64(1 << 40)),
                ("llama.block_count", Value::U32(2)),
                (
                    "llama.attention.head_count",
                    Value::Array(vec![Value::I32(8), Value::I32(4)]),
                ),
                ("llama.rope.freq_base", Value::F32(10000.0)),
                ("x.inf", Value::F64(f64::NEG_INFINITY)),
            ],
            &[TensorInfo {
                name: "t".into(),
                dims: vec![4, 2],
                ggml_type: 1,
                offset: 64,
            }],
        );
        let h = parse_header(&bytes, Some(bytes.len() as u64)).unwrap();
        let raw = raw_json(&h);
        let keys: Vec<&str> = raw["metadata"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[0].as_str().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "version",
                "tensor_count",
                "kv_count",
                "general.architecture",
                "llama.context_length",
                "llama.block_count",
                "llama.attention.head_count",
                "llama.rope.freq_base",
                "x.inf"
            ]
        );
        assert_eq!(raw["metadata"][1][1], json!({ "$bigint": "1" }));
        assert_eq!(
            raw["metadata"][4][1],
            json!({ "$bigint": (1u64 << 40).to_string() })
        );
        assert_eq!(raw["metadata"][5][1], json!(2));
        assert_eq!(raw["metadata"][6][1], json!([8, 4]));
        assert_eq!(raw["metadata"][7][1], json!(10000.0));
        assert_eq!(raw["metadata"][8][1], json!({ "$float": "-Infinity" }));
        let t = &raw["tensorInfos"][0];
        assert_eq!(t["n_dims"], 2);
        assert_eq!(t["shape"], json!([{ "$bigint": "4" }, { "$bigint": "2" }]));
        assert_eq!(t["offset"], json!({ "$bigint": "64" }));
        assert_eq!(t["dtype"], 1);
    }
}
