//! Checks shared by the server configurations (`DiffusionServerConfig`, `LlamaServerConfig`):
//! unknown fields refused with genai-electron 0.26's message, and typed field readers whose
//! errors name the field (`ServerError`, `details.code: 'INVALID_CONFIG'`).

use crate::error::{Error, Result};
use serde_json::{json, Map, Value};

pub fn invalid(field: &str, msg: impl Into<String>) -> Error {
    let msg = msg.into();
    Error::server(
        format!("Invalid configuration: {field} {msg}"),
        json!({ "field": field, "code": "INVALID_CONFIG" }),
    )
}

/// The field's value, treating `null` (JS `undefined`) as not given.
pub fn given<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

pub fn opt_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>> {
    match given(obj, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(invalid(key, format!("must be a boolean, got {v}"))),
    }
}

/// An integer in `min..=max` (JSON numbers may arrive as floats from JS).
pub fn int_in(v: &Value, key: &str, min: i64, max: i64) -> Result<i64> {
    let n = v
        .as_f64()
        .ok_or_else(|| invalid(key, format!("must be a number, got {v}")))?;
    if !n.is_finite() || n.fract() != 0.0 {
        return Err(invalid(key, format!("must be an integer, got {v}")));
    }
    if n < min as f64 || n > max as f64 {
        return Err(invalid(
            key,
            format!("must be between {min} and {max}, got {v}"),
        ));
    }
    Ok(n as i64)
}

/// 0.26's `validateConfigFields`: fields outside `valid` are refused, listing the valid ones.
pub fn refuse_unknown(obj: &Map<String, Value>, valid: &[&str], manager: &str) -> Result<()> {
    let unknown: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !valid.contains(k))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let mut sorted: Vec<&str> = valid.to_vec();
    sorted.sort_unstable();
    Err(Error::server(
        format!(
            "Unknown configuration field{}: {}. Valid fields for {manager} are: {}",
            if unknown.len() > 1 { "s" } else { "" },
            unknown.join(", "),
            sorted.join(", ")
        ),
        json!({
            "unknownFields": unknown,
            "validFields": sorted,
            "suggestion": "Remove unrecognized fields from the configuration object. If using getOptimalConfig(), pick only the fields needed for this server type.",
        }),
    ))
}
