//! Source resolution: Hugging Face resolve URLs, URL checks, and the on-disk file name of each
//! download. Everything here is pure, so the rules that decide where bytes land are unit-tested.
//!
//! File names follow genai-electron exactly (`sanitizeFilename` of the HF `file`, or of the URL
//! path's last segment, percent-escapes kept): a nested `file` such as
//! `split_files/vae/flux2-vae.safetensors` becomes `split_filesvaeflux2-vae.safetensors`. That
//! looks odd, but it is what genai-electron wrote, so a shared model directory filled by either
//! library is reused by the other, and flattening keeps every model directory one level deep.

use crate::error::{Error, Result};
use crate::storage::ids::sanitize_filename;
use crate::storage::model_info::ModelSource;
use serde_json::json;
use url::Url;

use super::config::SourceSpec;

fn bad(message: impl Into<String>) -> Error {
    Error::download(message, json!({ "invalidConfig": true }))
}

/// `encodeURIComponent`: everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )` is percent-encoded.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A repo id: `owner/name` (or a legacy single `name`), each part `[A-Za-z0-9._-]`.
pub fn validate_repo(repo: &str) -> Result<()> {
    let parts: Vec<&str> = repo.split('/').collect();
    let ok = (1..=2).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && *p != "."
                && *p != ".."
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "Invalid Hugging Face repository {repo:?}: expected \"owner/name\""
        )))
    }
}

/// A repo-relative file path: `/`-separated, no empty, `.` or `..` segment, no leading `/`, no
/// backslash or control character. Such paths could not name a file inside the repo anyway, and
/// refusing them keeps traversal tricks out of the flattened file name.
pub fn validate_repo_file(file: &str) -> Result<()> {
    let reason = if file.starts_with('/') {
        Some("it is absolute")
    } else if file.contains('\\') {
        Some("it contains a backslash")
    } else if file.chars().any(|c| c.is_control()) {
        Some("it contains a control character")
    } else if file
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        Some("it has an empty, \".\" or \"..\" segment")
    } else {
        None
    };
    match reason {
        Some(r) => Err(bad(format!("Invalid file path {file:?}: {r}"))),
        None => Ok(()),
    }
}

/// `<endpoint>/<repo>/resolve/<revision>/<file>`, the revision encoded as one component and the
/// file encoded per path segment (so nested paths keep their `/`).
pub fn hf_resolve_url(endpoint: &str, repo: &str, revision: &str, file: &str) -> Result<Url> {
    validate_repo(repo)?;
    validate_repo_file(file)?;
    let segments: Vec<String> = file.split('/').map(encode_component).collect();
    let s = format!(
        "{}/{}/resolve/{}/{}",
        endpoint.trim_end_matches('/'),
        repo,
        encode_component(revision),
        segments.join("/")
    );
    let url = Url::parse(&s)
        .map_err(|e| bad(format!("Invalid Hugging Face endpoint {endpoint:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "Invalid Hugging Face endpoint {endpoint:?}: only http and https are supported"
        )));
    }
    Ok(url)
}

/// A caller's URL: absolute, http or https, with a host.
pub fn parse_http_url(raw: &str) -> Result<Url> {
    let url = Url::parse(raw).map_err(|e| bad(format!("Invalid URL {raw:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "Unsupported URL scheme {:?} in {raw:?}: only http and https are supported",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad(format!("Invalid URL {raw:?}: no host")));
    }
    Ok(url)
}

/// The last non-empty segment of the URL path, as `path.basename(pathname)` gives it (escapes kept).
pub fn url_basename(url: &Url) -> String {
    url.path()
        .split('/')
        .rev()
        .find(|s| !s.is_empty())
        .unwrap_or("")
        .to_string()
}

/// Decodes `%XX` escapes (for checks only; names on disk keep the escapes, as genai-electron's do).
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Suffixes this library uses for its own files next to downloads.
const RESERVED_SUFFIXES: &[&str] = &[".partial", ".partial.meta", ".lock"];

/// The sanitised on-disk name for `raw` (an HF `file` or a URL basename). `in_type_dir` is true
/// for single-file models, whose file sits beside the `<id>.json` records: a `.json` name there
/// would be read as a model record, so it is refused.
pub fn disk_name(raw: &str, in_type_dir: bool) -> Result<String> {
    let decoded = String::from_utf8_lossy(&percent_decode(raw)).into_owned();
    if decoded.contains(['\\', '\0']) || decoded.split('/').any(|s| s == "..") {
        return Err(bad(format!(
            "Refusing file name {raw:?}: it contains a path separator, NUL or \"..\""
        )));
    }
    let name = sanitize_filename(raw);
    if name.is_empty() || name == "." || name == ".." {
        return Err(bad(format!(
            "Cannot derive a file name from {raw:?}: nothing is left after removing unsafe characters"
        )));
    }
    let lower = name.to_ascii_lowercase();
    if is_windows_reserved(&lower) || name.ends_with('.') {
        // Refused everywhere, so a config behaves the same on every platform: on Windows such a
        // name opens a device (bytes vanish) or loses its trailing dot.
        return Err(bad(format!(
            "Refusing file name {name:?}: Windows reserves it (device names such as NUL or COM1, or a trailing dot)"
        )));
    }
    if RESERVED_SUFFIXES.iter().any(|s| lower.ends_with(s)) {
        return Err(bad(format!(
            "Refusing file name {name:?}: the suffix is reserved for download state files"
        )));
    }
    if in_type_dir && lower.ends_with(".json") {
        return Err(bad(format!(
            "Refusing file name {name:?}: .json files in the models directory are model records"
        )));
    }
    Ok(name)
}

/// `con`, `nul.gguf`, `com1.bin`…: names Windows maps to devices whatever the extension.
fn is_windows_reserved(lower: &str) -> bool {
    let stem = lower.split('.').next().unwrap_or("").trim_end();
    matches!(stem, "con" | "prn" | "aux" | "nul")
        || ((stem.starts_with("com") || stem.starts_with("lpt"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit()
            && stem.as_bytes()[3] != b'0')
}

/// One resolved file to fetch.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub url: Url,
    /// The record's `source` (contract HEAD shape: URL sources are `{type, url}` only).
    pub source: ModelSource,
    /// The name before sanitising (HF `file` or URL basename), for messages and shard patterns.
    pub raw_name: String,
    /// `Some(repo)` for Hugging Face sources, for gated-repo messages.
    pub repo: Option<String>,
}

/// Resolves a source spec against the Hugging Face endpoint.
pub fn resolve(spec: &SourceSpec, endpoint: &str) -> Result<Resolved> {
    match spec {
        SourceSpec::Url(raw) => {
            let url = parse_http_url(raw)?;
            Ok(Resolved {
                raw_name: url_basename(&url),
                source: ModelSource {
                    source_type: "url".into(),
                    url: url.to_string(),
                    ..Default::default()
                },
                url,
                repo: None,
            })
        }
        SourceSpec::HuggingFace {
            repo,
            file,
            revision,
        } => {
            let url = hf_resolve_url(endpoint, repo, revision, file)?;
            Ok(Resolved {
                raw_name: file.clone(),
                source: ModelSource {
                    source_type: "huggingface".into(),
                    url: url.to_string(),
                    repo: Some(repo.clone()),
                    file: Some(file.clone()),
                    revision: Some(revision.clone()),
                    ..Default::default()
                },
                url,
                repo: Some(repo.clone()),
            })
        }
    }
}

/// A `<prefix>-NNNNN-of-MMMMM.gguf` name split at its numbers, so siblings keep the exact case and
/// separators of the original.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardName {
    /// Everything up to and including the `-` before the index.
    pub head: String,
    pub index: u32,
    /// `-of-` as written.
    pub middle: String,
    pub count: u32,
    /// `.gguf` as written.
    pub tail: String,
    pub width: usize,
}

impl ShardName {
    /// Recognises the pattern in a basename (case-insensitive, five-digit numbers).
    pub fn parse(basename: &str) -> Option<ShardName> {
        let lower = basename.to_ascii_lowercase();
        if !lower.ends_with(".gguf") || basename.len() < "-00001-of-00002.gguf".len() + 1 {
            return None;
        }
        let tail_at = basename.len() - 5;
        let count_at = tail_at.checked_sub(5)?;
        let middle_at = count_at.checked_sub(4)?;
        let index_at = middle_at.checked_sub(5)?;
        let dash_at = index_at.checked_sub(1)?;
        let digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
        let index = &basename.get(index_at..middle_at)?;
        let count = &basename.get(count_at..tail_at)?;
        let middle = basename.get(middle_at..count_at)?;
        if !digits(index)
            || !digits(count)
            || !middle.eq_ignore_ascii_case("-of-")
            || basename.get(dash_at..index_at)? != "-"
            || dash_at == 0
        {
            return None;
        }
        Some(ShardName {
            head: basename[..index_at].to_string(),
            index: index.parse().ok()?,
            middle: middle.to_string(),
            count: count.parse().ok()?,
            tail: basename[tail_at..].to_string(),
            width: 5,
        })
    }

    pub fn with_index(&self, index: u32) -> String {
        format!(
            "{}{:0w$}{}{:0w$}{}",
            self.head,
            index,
            self.middle,
            self.count,
            self.tail,
            w = self.width
        )
    }
}

/// Hard cap on shard counts, as genai-electron has.
pub const MAX_SHARDS: u32 = 500;

/// The shard sources after the first, derived from the primary's name (`…-00001-of-0000N.gguf`),
/// or from explicit `shardFiles` (bare names beside the primary, or full http(s) URLs).
pub fn shard_siblings(primary: &SourceSpec, shard_files: &[String]) -> Result<Vec<SourceSpec>> {
    let beside = |name: &str| -> Result<SourceSpec> {
        match primary {
            SourceSpec::HuggingFace {
                repo,
                file,
                revision,
            } => {
                let dir = file.rsplit_once('/').map(|(d, _)| d);
                Ok(SourceSpec::HuggingFace {
                    repo: repo.clone(),
                    file: match dir {
                        Some(d) => format!("{d}/{name}"),
                        None => name.to_string(),
                    },
                    revision: revision.clone(),
                })
            }
            SourceSpec::Url(raw) => {
                let base = parse_http_url(raw)?;
                let url = base
                    .join(&encode_path_segment(name))
                    .map_err(|e| bad(format!("Cannot place shard {name:?} beside {raw}: {e}")))?;
                Ok(SourceSpec::Url(url.to_string()))
            }
        }
    };
    if !shard_files.is_empty() {
        return shard_files
            .iter()
            .map(|s| {
                if s.starts_with("http://") || s.starts_with("https://") {
                    parse_http_url(s)?;
                    Ok(SourceSpec::Url(s.clone()))
                } else if s.contains('/') || s.contains('\\') || s == ".." || s == "." {
                    Err(bad(format!(
                        "shardFiles entry {s:?} must be a bare file name or an http(s) URL"
                    )))
                } else {
                    beside(s)
                }
            })
            .collect();
    }
    let basename = primary_basename(primary);
    let Some(shard) = ShardName::parse(&basename) else {
        return Ok(Vec::new());
    };
    if shard.count <= 1 {
        return Ok(Vec::new());
    }
    if shard.index != 1 {
        return Err(bad(format!(
            "{basename} is shard {} of {}: download the first shard ({})",
            shard.index,
            shard.count,
            shard.with_index(1)
        )));
    }
    if shard.count > MAX_SHARDS {
        return Err(bad(format!(
            "{basename} claims {} shards; at most {MAX_SHARDS} are supported",
            shard.count
        )));
    }
    (2..=shard.count)
        .map(|i| beside(&shard.with_index(i)))
        .collect()
}

fn encode_path_segment(name: &str) -> String {
    // Keep characters URLs allow in a path segment readable; escape the rest.
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~!$&'()*+,;=:@%".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The basename of a source as written (last segment of the HF file, or of the URL path).
pub fn primary_basename(spec: &SourceSpec) -> String {
    match spec {
        SourceSpec::HuggingFace { file, .. } => file.rsplit('/').next().unwrap_or("").to_string(),
        SourceSpec::Url(raw) => Url::parse(raw)
            .map(|u| url_basename(&u))
            .unwrap_or_default(),
    }
}

/// For an HF-endpoint URL (`/<owner>/<name>/resolve/…`), the repo it names, for error messages.
pub fn repo_from_resolve_url(url: &Url) -> Option<String> {
    let segs: Vec<&str> = url.path_segments()?.collect();
    let at = segs.iter().position(|s| *s == "resolve")?;
    (1..=2).contains(&at).then(|| segs[..at].join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_urls_keep_nested_paths_and_encode_revision() {
        let u = hf_resolve_url(
            "https://huggingface.co/",
            "Comfy-Org/flux2-dev",
            "main",
            "split_files/vae/flux2-vae.safetensors",
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "https://huggingface.co/Comfy-Org/flux2-dev/resolve/main/split_files/vae/flux2-vae.safetensors"
        );
        let u = hf_resolve_url(
            "http://127.0.0.1:9/mirror",
            "o/r",
            "refs/pr/1",
            "a b#?.gguf",
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:9/mirror/o/r/resolve/refs%2Fpr%2F1/a%20b%23%3F.gguf"
        );
        assert!(hf_resolve_url("ftp://x", "o/r", "main", "a").is_err());
        for file in [
            "../a",
            "a/../b",
            "/etc/passwd",
            "a\\b",
            "a//b",
            "a/./b",
            "a\0b",
        ] {
            assert!(
                hf_resolve_url("https://h", "o/r", "main", file).is_err(),
                "{file}"
            );
        }
        for repo in ["", "o/r/x", "../r", "o/..", "o r/x", "o/"] {
            assert!(validate_repo(repo).is_err(), "{repo}");
        }
        assert!(validate_repo("gpt2").is_ok());
    }

    #[test]
    fn disk_names_follow_genai_electron_and_refuse_traversal() {
        assert_eq!(
            disk_name("split_files/vae/flux2-vae.safetensors", false).unwrap(),
            "split_filesvaeflux2-vae.safetensors"
        );
        assert_eq!(
            disk_name("Qwen3-4B-Q4_0.gguf", true).unwrap(),
            "Qwen3-4B-Q4_0.gguf"
        );
        assert_eq!(disk_name("a%20b.gguf", true).unwrap(), "a%20b.gguf");
        for raw in [
            "..",
            "%2e%2e",
            "..%2F..%2Fetc",
            "a%5Cb",
            "a%00b",
            "",
            "???",
            "x.partial",
            "x.lock",
            "x.partial.meta",
            "NUL.gguf",
            "con",
            "com1.safetensors",
            "Lpt9.bin",
            "model.",
        ] {
            assert!(disk_name(raw, false).is_err(), "{raw}");
        }
        assert!(disk_name("other-model.json", true).is_err());
        assert!(disk_name("config.json", false).is_ok());
        for ok in [
            "console.gguf",
            "com0.bin",
            "null.gguf",
            "auxiliary.bin",
            "com10.bin",
        ] {
            assert!(disk_name(ok, true).is_ok(), "{ok}");
        }
    }

    #[test]
    fn url_basenames_match_node() {
        let b = |s: &str| url_basename(&Url::parse(s).unwrap());
        assert_eq!(b("https://h/a/b/model.gguf?download=1"), "model.gguf");
        assert_eq!(b("https://h/a/dir/"), "dir");
        assert_eq!(b("https://h/"), "");
        assert_eq!(b("https://h/a/%20x.gguf"), "%20x.gguf");
        assert!(parse_http_url("file:///etc/passwd").is_err());
        assert!(parse_http_url("ftp://h/x").is_err());
        assert!(parse_http_url("not a url").is_err());
        assert!(parse_http_url("http://h/x").is_ok());
    }

    #[test]
    fn resolved_sources_have_the_head_shape() {
        let r = resolve(
            &SourceSpec::Url("http://h/x/y.bin".into()),
            "https://huggingface.co",
        )
        .unwrap();
        assert_eq!(r.source.source_type, "url");
        assert_eq!(r.source.repo, None);
        assert_eq!(r.raw_name, "y.bin");
        let r = resolve(
            &SourceSpec::HuggingFace {
                repo: "o/r".into(),
                file: "d/y.gguf".into(),
                revision: "v1".into(),
            },
            "https://huggingface.co",
        )
        .unwrap();
        assert_eq!(r.source.revision.as_deref(), Some("v1"));
        assert_eq!(
            r.source.url,
            "https://huggingface.co/o/r/resolve/v1/d/y.gguf"
        );
        assert_eq!(repo_from_resolve_url(&r.url).as_deref(), Some("o/r"));
        assert_eq!(r.raw_name, "d/y.gguf");
    }

    #[test]
    fn shard_names_are_recognised_and_siblings_derived() {
        let s = ShardName::parse("Qwen3-235B-Q4_K_M-00001-OF-00003.GGUF").unwrap();
        assert_eq!((s.index, s.count), (1, 3));
        assert_eq!(s.with_index(2), "Qwen3-235B-Q4_K_M-00002-OF-00003.GGUF");
        assert!(ShardName::parse("model.gguf").is_none());
        assert!(ShardName::parse("m-1-of-3.gguf").is_none());
        assert!(ShardName::parse("-00001-of-00003.gguf").is_none());

        let hf = SourceSpec::HuggingFace {
            repo: "o/r".into(),
            file: "Q4/m-00001-of-00003.gguf".into(),
            revision: "abc".into(),
        };
        let sib = shard_siblings(&hf, &[]).unwrap();
        assert_eq!(sib.len(), 2);
        assert_eq!(
            sib[1],
            SourceSpec::HuggingFace {
                repo: "o/r".into(),
                file: "Q4/m-00003-of-00003.gguf".into(),
                revision: "abc".into()
            }
        );
        let url = SourceSpec::Url("http://h/x/m-00001-of-00002.gguf?t=1".into());
        assert_eq!(
            shard_siblings(&url, &[]).unwrap(),
            vec![SourceSpec::Url("http://h/x/m-00002-of-00002.gguf".into())]
        );
        let second = SourceSpec::Url("http://h/m-00002-of-00002.gguf".into());
        assert!(shard_siblings(&second, &[])
            .unwrap_err()
            .to_string()
            .contains("first shard"));
        let huge = SourceSpec::Url("http://h/m-00001-of-00501.gguf".into());
        assert!(shard_siblings(&huge, &[]).is_err());
        let single = SourceSpec::Url("http://h/m-00001-of-00001.gguf".into());
        assert!(shard_siblings(&single, &[]).unwrap().is_empty());
        let explicit = shard_siblings(
            &url,
            &["extra.gguf".into(), "https://cdn/other.gguf".into()],
        )
        .unwrap();
        assert_eq!(explicit[0], SourceSpec::Url("http://h/x/extra.gguf".into()));
        assert_eq!(
            explicit[1],
            SourceSpec::Url("https://cdn/other.gguf".into())
        );
        assert!(shard_siblings(&url, &["../x.gguf".into()]).is_err());
    }

    #[test]
    fn encode_component_matches_encode_uri_component() {
        assert_eq!(encode_component("a-b_c.d!~*'()"), "a-b_c.d!~*'()");
        assert_eq!(encode_component("a/b c"), "a%2Fb%20c");
        assert_eq!(encode_component("é"), "%C3%A9");
    }
}
