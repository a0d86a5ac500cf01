//! `ModelInfo`, the metadata record genai-electron writes as `<id>.json`. Typed for the fields the
//! library acts on; every object keeps the fields it does not know (`extra`), so records written by
//! newer or older genai-electron versions survive a rewrite intact.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ModelType {
    Llm,
    Diffusion,
}

impl ModelType {
    pub const ALL: [ModelType; 2] = [ModelType::Llm, ModelType::Diffusion];

    pub fn as_str(self) -> &'static str {
        match self {
            ModelType::Llm => "llm",
            ModelType::Diffusion => "diffusion",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "llm" => Some(ModelType::Llm),
            "diffusion" => Some(ModelType::Diffusion),
            _ => None,
        }
    }
}

/// Byte counts are JSON numbers; accept integers and integral floats (JS may write `1e9`).
fn de_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = Value::deserialize(d)?;
    match &v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                    .map(|f| f as u64)
            })
            .ok_or_else(|| serde::de::Error::custom(format!("invalid size {n}"))),
        _ => Err(serde::de::Error::custom("size must be a number")),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct ModelSource {
    #[serde(rename = "type")]
    pub source_type: String,
    #[serde(default)]
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ComponentInfo {
    pub path: String,
    #[serde(deserialize_with = "de_size", default)]
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<ModelSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardInfo {
    pub path: String,
    #[serde(deserialize_with = "de_size", default)]
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelInfo {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type")]
    pub model_type: ModelType,
    #[serde(deserialize_with = "de_size", default)]
    pub size: u64,
    pub path: String,
    #[serde(rename = "downloadedAt", default)]
    pub downloaded_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<ModelSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    #[serde(rename = "supportsReasoning", skip_serializing_if = "Option::is_none")]
    pub supports_reasoning: Option<bool>,
    #[serde(rename = "ggufMetadata", skip_serializing_if = "Option::is_none")]
    pub gguf_metadata: Option<Value>,
    /// Insertion order is kept (primary first, then config order), as the contract requires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub components: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<Vec<ShardInfo>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A component entry parsed from the `components` map. Kept as raw JSON in the record so a
/// component this version cannot parse is still preserved byte-for-byte on rewrite.
pub fn parse_component(value: &Value) -> Option<ComponentInfo> {
    serde_json::from_value(value.clone()).ok()
}

impl ModelInfo {
    pub fn is_multi_component(&self) -> bool {
        self.components.as_ref().is_some_and(|c| !c.is_empty())
    }

    /// `(role, component)` pairs in record order; entries that do not parse are skipped.
    pub fn component_list(&self) -> Vec<(String, ComponentInfo)> {
        self.components
            .iter()
            .flatten()
            .filter_map(|(role, v)| parse_component(v).map(|c| (role.clone(), c)))
            .collect()
    }

    /// Every file the record owns: components, shards and the primary path, de-duplicated.
    pub fn all_files(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |p: &str| {
            if !p.is_empty() && !out.iter().any(|q| q == p) {
                out.push(p.to_string());
            }
        };
        for (_, c) in self.component_list() {
            push(&c.path);
        }
        for s in self.shards.iter().flatten() {
            push(&s.path);
        }
        push(&self.path);
        out
    }

    /// The files that make up the model, with their sizes, for disk accounting: its components,
    /// else its shards, else its one file.
    pub fn sized_files(&self) -> Vec<(String, u64)> {
        if self.is_multi_component() {
            self.component_list()
                .into_iter()
                .map(|(_, c)| (c.path, c.size))
                .collect()
        } else if let Some(shards) = self.shards.as_ref().filter(|s| !s.is_empty()) {
            shards.iter().map(|s| (s.path.clone(), s.size)).collect()
        } else {
            vec![(self.path.clone(), self.size)]
        }
    }

    /// Every checksum the record lists (top level, components, shards), as written.
    pub fn checksums(&self) -> Vec<String> {
        let mut out: Vec<String> = self.checksum.iter().cloned().collect();
        out.extend(
            self.component_list()
                .into_iter()
                .filter_map(|(_, c)| c.checksum),
        );
        out.extend(
            self.shards
                .iter()
                .flatten()
                .filter_map(|s| s.checksum.clone()),
        );
        out
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// A `ggufMetadata` field as a number, when present.
    pub fn gguf_number(&self, field: &str) -> Option<f64> {
        self.gguf_metadata.as_ref()?.get(field)?.as_f64()
    }

    pub fn gguf_string(&self, field: &str) -> Option<String> {
        self.gguf_metadata
            .as_ref()?
            .get(field)?
            .as_str()
            .map(str::to_string)
    }
}

/// Heuristics the contract uses when a record has no GGUF metadata.
impl ModelInfo {
    /// `getModelLayerCount`: `block_count`, else `clamp(round(size / 150 MiB), 24, 120)`.
    pub fn layer_count(&self) -> u64 {
        if let Some(n) = self.gguf_number("block_count").filter(|n| *n > 0.0) {
            return n as u64;
        }
        let estimate = (self.size as f64 / (150.0 * 1024.0 * 1024.0)).round() as u64;
        estimate.clamp(24, 120)
    }

    /// `getModelContextLength`: `context_length`, else 8192 for models of 30 GiB or more, else 4096.
    pub fn context_length(&self) -> u64 {
        if let Some(n) = self.gguf_number("context_length").filter(|n| *n > 0.0) {
            return n as u64;
        }
        if self.size >= 30 * 1024 * 1024 * 1024 {
            8192
        } else {
            4096
        }
    }

    /// `getModelArchitecture`: `architecture`, else `llama` / `stable-diffusion` by type.
    pub fn architecture(&self) -> String {
        self.gguf_string("architecture")
            .unwrap_or_else(|| match self.model_type {
                ModelType::Llm => "llama".into(),
                ModelType::Diffusion => "stable-diffusion".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_survive_round_trip() {
        let input = json!({
            "id": "m", "name": "M", "type": "diffusion", "size": 10, "path": "/a",
            "downloadedAt": "2026-01-01T00:00:00.000Z",
            "source": {"type": "url", "url": "http://x/a", "mirror": "eu"},
            "futureField": {"x": [1, 2]},
            "components": {
                "diffusion_model": {"path": "/a", "size": 4, "note": "keep"},
                "vae": {"path": "/v", "size": 6, "checksum": "sha256:00"}
            }
        });
        let info: ModelInfo = serde_json::from_value(input.clone()).unwrap();
        let back = info.to_json();
        assert_eq!(back["futureField"], input["futureField"]);
        assert_eq!(back["source"]["mirror"], "eu");
        assert_eq!(back["components"]["diffusion_model"]["note"], "keep");
        let roles: Vec<_> = back["components"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(roles, vec!["diffusion_model", "vae"]);
        assert_eq!(info.all_files(), vec!["/a", "/v"]);
    }

    #[test]
    fn sizes_accept_integral_floats_only() {
        let base = json!({"id": "m", "type": "llm", "path": "/a", "size": 1.0e9});
        let info: ModelInfo = serde_json::from_value(base).unwrap();
        assert_eq!(info.size, 1_000_000_000);
        let bad = json!({"id": "m", "type": "llm", "path": "/a", "size": "big"});
        assert!(serde_json::from_value::<ModelInfo>(bad).is_err());
    }
}
