//! A bounds-checked GGUF header parser. Every length read from the file is checked against the
//! bytes actually available (or, when the prefix is incomplete, against a hard cap) before anything
//! is allocated, so a hostile file cannot make it allocate or loop on an attacker-chosen size.

const MAGIC: &[u8; 4] = b"GGUF";
/// The header (metadata + tensor table) is never allowed to exceed this many bytes.
pub const MAX_HEADER_BYTES: u64 = 512 * 1024 * 1024;
const MAX_TENSORS: u64 = 10_000_000;
const MAX_DIMS: u32 = 8;
const MAX_ARRAY_NESTING: u32 = 4;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) if v >= 0 => Some(v as u64),
            Value::I16(v) if v >= 0 => Some(v as u64),
            Value::I32(v) if v >= 0 => Some(v as u64),
            Value::I64(v) if v >= 0 => Some(v as u64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    pub offset: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GgufHeader {
    pub version: u32,
    pub tensor_count: u64,
    pub kv_count: u64,
    /// Key/value pairs in file order.
    pub kv: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    /// Offset of the end of the tensor table (before alignment padding).
    pub header_len: u64,
}

impl GgufHeader {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.kv.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ParseError {
    /// The prefix ended early; at least this many bytes of the file are needed in total.
    NeedMore(u64),
    /// The file is not a readable GGUF file; the message says why.
    Invalid(String),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::NeedMore(n) => {
                write!(f, "GGUF header is truncated (needs at least {n} bytes)")
            }
            ParseError::Invalid(m) => write!(f, "{m}"),
        }
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Total file length when known: a length field larger than what is left is invalid, not
    /// merely truncated.
    file_len: Option<u64>,
}

type R<T> = Result<T, ParseError>;

impl<'a> Cursor<'a> {
    fn remaining_in_file(&self) -> u64 {
        match self.file_len {
            Some(len) => len.saturating_sub(self.pos as u64),
            None => MAX_HEADER_BYTES.saturating_sub(self.pos as u64),
        }
    }

    /// Checks that `n` more bytes can exist, then that they are in the buffer.
    fn need(&self, n: u64, what: &str) -> R<()> {
        if n > self.remaining_in_file() {
            return Err(ParseError::Invalid(match self.file_len {
                Some(_) => format!(
                    "Malformed GGUF: {what} needs {n} bytes at offset {} but the file ends first",
                    self.pos
                ),
                None => format!("Malformed GGUF: {what} of {n} bytes at offset {} exceeds the header size limit", self.pos),
            }));
        }
        let end = self.pos as u64 + n;
        if end > self.buf.len() as u64 {
            // Ask for the missing bytes plus some slack so remote reads are not one field at a time.
            return Err(ParseError::NeedMore(end));
        }
        Ok(())
    }

    fn take(&mut self, n: u64, what: &str) -> R<&'a [u8]> {
        self.need(n, what)?;
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.buf[start..self.pos])
    }

    fn array<const N: usize>(&mut self, what: &str) -> R<[u8; N]> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> R<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> R<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &str) -> R<String> {
        let len = self.u64(what)?;
        let bytes = self.take(len, what)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn value(&mut self, ty: u32, depth: u32) -> R<Value> {
        Ok(match ty {
            0 => Value::U8(self.array::<1>("u8")?[0]),
            1 => Value::I8(self.array::<1>("i8")?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.array("u16")?)),
            3 => Value::I16(i16::from_le_bytes(self.array("i16")?)),
            4 => Value::U32(self.u32("u32")?),
            5 => Value::I32(i32::from_le_bytes(self.array("i32")?)),
            6 => Value::F32(f32::from_le_bytes(self.array("f32")?)),
            7 => Value::Bool(self.array::<1>("bool")?[0] != 0),
            8 => Value::String(self.string("string value")?),
            9 => {
                if depth >= MAX_ARRAY_NESTING {
                    return Err(ParseError::Invalid(
                        "Malformed GGUF: arrays nested too deeply".into(),
                    ));
                }
                let elem_ty = self.u32("array type")?;
                let count = self.u64("array length")?;
                let min = min_size(elem_ty).ok_or_else(|| {
                    ParseError::Invalid(format!(
                        "Malformed GGUF: unknown array element type {elem_ty}"
                    ))
                })?;
                // Each element takes at least `min` bytes: reject impossible counts before looping.
                let least = count.checked_mul(min).ok_or_else(|| {
                    ParseError::Invalid("Malformed GGUF: array length overflows".into())
                })?;
                if least > self.remaining_in_file() {
                    return Err(ParseError::Invalid(format!(
                        "Malformed GGUF: array of {count} elements at offset {} cannot fit in the file",
                        self.pos
                    )));
                }
                let mut items = Vec::new();
                for _ in 0..count {
                    items.push(self.value(elem_ty, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64("u64")?),
            11 => Value::I64(i64::from_le_bytes(self.array("i64")?)),
            12 => Value::F64(f64::from_le_bytes(self.array("f64")?)),
            other => {
                return Err(ParseError::Invalid(format!(
                    "Malformed GGUF: unknown value type {other} at offset {}",
                    self.pos - 4
                )))
            }
        })
    }
}

/// Smallest encoded size of a value of type `ty` (strings: the 8-byte length; arrays: type + count).
fn min_size(ty: u32) -> Option<u64> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 => 8,
        9 => 12,
        10..=12 => 8,
        _ => return None,
    })
}

/// Parses the header from `buf`, a prefix of the file. `file_len` is the full file length when
/// known. Returns `NeedMore(n)` when `buf` is too short but the file may hold the rest.
pub fn parse_header(buf: &[u8], file_len: Option<u64>) -> Result<GgufHeader, ParseError> {
    let mut c = Cursor {
        buf,
        pos: 0,
        file_len,
    };
    let magic = c.take(4, "magic").map_err(|e| match e {
        ParseError::Invalid(_) => {
            ParseError::Invalid("Not a GGUF file: it is shorter than the 4-byte magic".into())
        }
        other => other,
    })?;
    if magic != MAGIC {
        return Err(ParseError::Invalid(
            "Not a GGUF file: the file does not start with the GGUF magic bytes".into(),
        ));
    }
    let version = c.u32("version")?;
    match version {
        2 | 3 => {}
        1 => {
            return Err(ParseError::Invalid(
                "Unsupported GGUF version 1 (only versions 2 and 3 are supported)".into(),
            ))
        }
        v if v.swap_bytes() <= 3 => {
            return Err(ParseError::Invalid(
                "Unsupported GGUF file: big-endian GGUF is not supported".into(),
            ))
        }
        v => return Err(ParseError::Invalid(format!("Unsupported GGUF version {v}"))),
    }
    let tensor_count = c.u64("tensor count")?;
    let kv_count = c.u64("metadata count")?;
    if tensor_count > MAX_TENSORS {
        return Err(ParseError::Invalid(format!(
            "Malformed GGUF: implausible tensor count {tensor_count}"
        )));
    }
    // A key/value pair takes at least 8 (key length) + 4 (type) + 1 bytes.
    if kv_count.saturating_mul(13) > c.remaining_in_file() {
        return Err(ParseError::Invalid(format!(
            "Malformed GGUF: implausible metadata count {kv_count}"
        )));
    }
    let mut kv = Vec::new();
    for _ in 0..kv_count {
        let key = c.string("metadata key")?;
        let ty = c.u32("metadata type")?;
        let value = c.value(ty, 0)?;
        kv.push((key, value));
    }
    // A tensor info takes at least 8 (name) + 4 (dims) + 4 (type) + 8 (offset) bytes.
    if tensor_count.saturating_mul(24) > c.remaining_in_file() {
        return Err(ParseError::Invalid(format!(
            "Malformed GGUF: implausible tensor count {tensor_count}"
        )));
    }
    let mut tensors = Vec::new();
    for _ in 0..tensor_count {
        let name = c.string("tensor name")?;
        let n_dims = c.u32("tensor dimensions")?;
        if n_dims > MAX_DIMS {
            return Err(ParseError::Invalid(format!(
                "Malformed GGUF: tensor {name} has {n_dims} dimensions"
            )));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(c.u64("tensor dimension")?);
        }
        let ggml_type = c.u32("tensor type")?;
        let offset = c.u64("tensor offset")?;
        tensors.push(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
        });
    }
    Ok(GgufHeader {
        version,
        tensor_count,
        kv_count,
        kv,
        tensors,
        header_len: c.pos as u64,
    })
}

/// Test and fixture helper: encodes a GGUF v3 header (metadata + tensor infos, no tensor data).
pub fn encode_header(kv: &[(&str, Value)], tensors: &[TensorInfo]) -> Vec<u8> {
    fn put_str(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    fn type_of(v: &Value) -> u32 {
        match v {
            Value::U8(_) => 0,
            Value::I8(_) => 1,
            Value::U16(_) => 2,
            Value::I16(_) => 3,
            Value::U32(_) => 4,
            Value::I32(_) => 5,
            Value::F32(_) => 6,
            Value::Bool(_) => 7,
            Value::String(_) => 8,
            Value::Array(_) => 9,
            Value::U64(_) => 10,
            Value::I64(_) => 11,
            Value::F64(_) => 12,
        }
    }
    fn put_val(out: &mut Vec<u8>, v: &Value) {
        match v {
            Value::U8(x) => out.push(*x),
            Value::I8(x) => out.push(*x as u8),
            Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::Bool(x) => out.push(*x as u8),
            Value::String(s) => put_str(out, s),
            Value::Array(items) => {
                let et = items.first().map(type_of).unwrap_or(4);
                out.extend_from_slice(&et.to_le_bytes());
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for i in items {
                    put_val(out, i);
                }
            }
            Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
            Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        }
    }
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(kv.len() as u64).to_le_bytes());
    for (k, v) in kv {
        put_str(&mut out, k);
        out.extend_from_slice(&type_of(v).to_le_bytes());
        put_val(&mut out, v);
    }
    for t in tensors {
        put_str(&mut out, &t.name);
        out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&t.ggml_type.to_le_bytes());
        out.extend_from_slice(&t.offset.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        encode_header(
            &[
                ("general.architecture", Value::String("llama".into())),
                ("llama.block_count", Value::U32(32)),
                (
                    "tokenizer.ggml.tokens",
                    Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
                ),
                ("x.f", Value::F64(0.5)),
                ("x.i", Value::I64(-3)),
            ],
            &[TensorInfo {
                name: "t".into(),
                dims: vec![4, 2],
                ggml_type: 0,
                offset: 0,
            }],
        )
    }

    #[test]
    fn parses_all_value_types() {
        let bytes = sample();
        let h = parse_header(&bytes, Some(bytes.len() as u64)).unwrap();
        assert_eq!(h.version, 3);
        assert_eq!(h.kv_count, 5);
        assert_eq!(h.get("llama.block_count"), Some(&Value::U32(32)));
        assert_eq!(h.tensors[0].dims, vec![4, 2]);
        assert_eq!(h.header_len, bytes.len() as u64);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = sample();
        for cut in 0..bytes.len() {
            // Unknown file length: asks for more.
            match parse_header(&bytes[..cut], None) {
                Err(ParseError::NeedMore(n)) => assert!(n as usize > cut),
                other => panic!("cut {cut}: {other:?}"),
            }
            // Known (short) file length: invalid, never a panic.
            assert!(matches!(
                parse_header(&bytes[..cut], Some(cut as u64)),
                Err(ParseError::Invalid(_))
            ));
        }
    }

    #[test]
    fn hostile_lengths_are_rejected_without_allocating() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"GGUF");
        bytes.extend_from_slice(&3u32.to_le_bytes());
        bytes.extend_from_slice(&0u64.to_le_bytes());
        bytes.extend_from_slice(&1u64.to_le_bytes());
        bytes.extend_from_slice(&1u64.to_le_bytes());
        bytes.push(b'k');
        bytes.extend_from_slice(&9u32.to_le_bytes()); // array
        bytes.extend_from_slice(&8u32.to_le_bytes()); // of strings
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        let err = parse_header(&bytes, None).unwrap_err();
        assert!(matches!(err, ParseError::Invalid(_)), "{err:?}");
        // A string claiming 2^60 bytes.
        let mut s = bytes[..24].to_vec();
        s.extend_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(matches!(
            parse_header(&s, Some(s.len() as u64)),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn garbage_and_versions() {
        assert!(matches!(
            parse_header(b"PK\x03\x04 not gguf", None),
            Err(ParseError::Invalid(_))
        ));
        let mut v1 = b"GGUF".to_vec();
        v1.extend_from_slice(&1u32.to_le_bytes());
        assert!(
            matches!(parse_header(&v1, None), Err(ParseError::Invalid(m)) if m.contains("version 1"))
        );
        let mut be = b"GGUF".to_vec();
        be.extend_from_slice(&3u32.to_be_bytes());
        assert!(
            matches!(parse_header(&be, None), Err(ParseError::Invalid(m)) if m.contains("big-endian"))
        );
    }
}
