//! Tensor names and shapes from a model file's header (safetensors or GGUF), without reading
//! weights. sd.cpp decides the model family from tensor *names*, so layout checks that must happen
//! before spawning (SDXL split naming, Flux 2 text-encoder width) read the same names.

use std::io::Read;
use std::path::Path;

/// One tensor; `shape` in PyTorch order (outermost first) whatever the file format.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<u64>,
}

/// Largest safetensors header we read; real ones are a few MB at most.
const MAX_SAFETENSORS_HEADER: u64 = 256 * 1024 * 1024;

/// Reads the tensor table, or `None` when the file is neither safetensors nor GGUF (sd.cpp will
/// then report it itself).
pub fn read_tensors(path: &Path) -> Option<Vec<Tensor>> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut magic = [0u8; 8];
    f.read_exact(&mut magic).ok()?;
    if &magic[..4] == b"GGUF" {
        let (h, _) = crate::gguf::metadata::read_local_header(path).ok()?;
        return Some(from_gguf(h));
    }
    let len = safetensors_header_len(&magic, Some(f.metadata().ok()?.len()))?;
    let mut buf = vec![0u8; len as usize];
    f.read_exact(&mut buf).ok()?;
    if buf.first() != Some(&b'{') {
        return None;
    }
    parse_safetensors_header(&buf)
}

/// The tensor table of a GGUF header, shapes in PyTorch order.
pub fn from_gguf(h: crate::gguf::reader::GgufHeader) -> Vec<Tensor> {
    h.tensors
        .into_iter()
        .map(|t| Tensor {
            name: t.name,
            shape: t.dims.into_iter().rev().collect(),
        })
        .collect()
}

/// The length of a safetensors header from the file's first 8 bytes, when plausible.
pub fn safetensors_header_len(first8: &[u8], file_len: Option<u64>) -> Option<u64> {
    let len = u64::from_le_bytes(first8.get(..8)?.try_into().ok()?);
    let fits = file_len.is_none_or(|f| len + 8 <= f);
    ((2..=MAX_SAFETENSORS_HEADER).contains(&len) && fits).then_some(len)
}

pub fn parse_safetensors_header(buf: &[u8]) -> Option<Vec<Tensor>> {
    let v: serde_json::Value = serde_json::from_slice(buf).ok()?;
    let obj = v.as_object()?;
    Some(
        obj.iter()
            .filter(|(k, _)| k.as_str() != "__metadata__")
            .map(|(k, t)| Tensor {
                name: k.clone(),
                shape: t
                    .get("shape")
                    .and_then(|s| s.as_array())
                    .map(|a| a.iter().filter_map(|d| d.as_u64()).collect())
                    .unwrap_or_default(),
            })
            .collect(),
    )
}

/// Builds a safetensors file: one tensor per entry, data zero-filled. Used for the SDXL hint file
/// and by tests.
pub fn build_safetensors(tensors: &[(&str, &str, &[u64])]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, dtype, shape) in tensors {
        let elem = match *dtype {
            "F32" | "I32" => 4,
            "F16" | "BF16" => 2,
            _ => 1,
        };
        let bytes = shape.iter().product::<u64>() * elem;
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut json = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap_or_default();
    while json.len() % 8 != 0 {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + offset as usize);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.resize(out.len() + offset as usize, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safetensors_and_gguf_shapes_in_torch_order() {
        let dir = tempfile::tempdir().unwrap();
        let st = dir.path().join("a.safetensors");
        std::fs::write(
            &st,
            build_safetensors(&[("txt_in.weight", "F16", &[128, 192])]),
        )
        .unwrap();
        let t = read_tensors(&st).unwrap();
        assert_eq!(
            t,
            vec![Tensor {
                name: "txt_in.weight".into(),
                shape: vec![128, 192]
            }]
        );

        let gg = dir.path().join("b.gguf");
        let info = crate::gguf::TensorInfo {
            name: "token_embd.weight".into(),
            dims: vec![64, 151936],
            ggml_type: 1,
            offset: 0,
        };
        let mut bytes = crate::gguf::reader::encode_header(&[], &[info]);
        bytes.resize(bytes.len() + 64, 0);
        std::fs::write(&gg, bytes).unwrap();
        let t = read_tensors(&gg).unwrap();
        assert_eq!(t[0].shape, vec![151936, 64]);

        let junk = dir.path().join("c.bin");
        std::fs::write(&junk, b"not a model file at all").unwrap();
        assert!(read_tensors(&junk).is_none());
    }
}
