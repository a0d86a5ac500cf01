//! A file downloaded with no known checksum is at least checked to be what its name says. A
//! captive portal, a proxy error page or an expired link often answers 200 with an HTML page; with
//! no hash to compare, only its content shows it is not the model.

use std::io::Read;
use std::path::Path;

/// Upper bound for a safetensors JSON header (real ones are a few MiB at most).
const MAX_SAFETENSORS_HEADER: u64 = 100 * 1024 * 1024;

/// `Err(reason)` when the file at `path` cannot be the kind of file `name` says it is.
pub fn check(path: &Path, name: &str) -> Result<(), String> {
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut head = Vec::with_capacity(64);
    (&mut file)
        .take(64)
        .read_to_end(&mut head)
        .map_err(|e| e.to_string())?;
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".gguf") {
        let version = head
            .get(4..8)
            .map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]]));
        if !head.starts_with(b"GGUF") || !matches!(version, Some(1..=3)) {
            return Err(format!("it is not a GGUF file ({})", describe(&head)));
        }
    } else if lower.ends_with(".safetensors") {
        let n = head
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
        let json_start = head
            .get(8..)
            .and_then(|rest| rest.iter().find(|b| !b.is_ascii_whitespace()));
        let plausible = n.is_some_and(|n| {
            (2..=MAX_SAFETENSORS_HEADER).contains(&n) && n <= len.saturating_sub(8)
        });
        if !plausible || json_start != Some(&b'{') {
            return Err(format!(
                "it is not a safetensors file ({})",
                describe(&head)
            ));
        }
    } else if looks_like_html(&head) {
        return Err(format!(
            "it is a web page, not a model file ({})",
            describe(&head)
        ));
    }
    Ok(())
}

fn looks_like_html(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head)
        .trim_start()
        .to_ascii_lowercase();
    text.starts_with("<!doctype html") || text.starts_with("<html") || text.starts_with("<?xml")
}

/// How the file starts, for the message: text quoted, binary as a byte count.
fn describe(head: &[u8]) -> String {
    if head.is_empty() {
        return "it is empty".into();
    }
    let printable = head
        .iter()
        .take(24)
        .all(|b| b.is_ascii_graphic() || *b == b' ' || b.is_ascii_whitespace());
    if printable {
        let text: String = String::from_utf8_lossy(&head[..head.len().min(24)])
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        format!("it starts with \"{text}\"")
    } else {
        "its first bytes are not the format's header".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn real_headers_pass_and_pages_do_not() {
        let d = tempfile::tempdir().unwrap();
        let mut gguf = b"GGUF".to_vec();
        gguf.extend_from_slice(&3u32.to_le_bytes());
        gguf.extend_from_slice(&[0; 16]);
        assert!(check(&write(d.path(), "m.gguf", &gguf), "m.gguf").is_ok());
        let json = br#"{"t":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}"#;
        let mut st = (json.len() as u64).to_le_bytes().to_vec();
        st.extend_from_slice(json);
        st.extend_from_slice(&[0, 0]);
        assert!(check(&write(d.path(), "v.safetensors", &st), "v.safetensors").is_ok());

        let page = b"<!DOCTYPE html><html><body>Sign in to the Wi-Fi</body></html>";
        let e = check(&write(d.path(), "p.gguf", page), "p.gguf").unwrap_err();
        assert!(
            e.contains("not a GGUF file") && e.contains("<!DOCTYPE html>"),
            "{e}"
        );
        assert!(check(&write(d.path(), "p.safetensors", page), "p.safetensors").is_err());
        assert!(check(&write(d.path(), "p.bin", page), "p.bin")
            .unwrap_err()
            .contains("web page"));
        assert!(check(&write(d.path(), "e.gguf", b""), "e.gguf")
            .unwrap_err()
            .contains("empty"));
        // A safetensors header length pointing past the end of the file.
        let mut bad = 1000u64.to_le_bytes().to_vec();
        bad.extend_from_slice(b"{}");
        assert!(check(&write(d.path(), "b.safetensors", &bad), "b.safetensors").is_err());
        // Other binary files are not second-guessed.
        assert!(check(&write(d.path(), "x.bin", &[7u8; 100]), "x.bin").is_ok());
    }
}
