//! The pinned releases: one table (`pins.json`, genai-electron 0.26's `BINARY_VERSIONS` plus the
//! program names each archive holds), or the user's own table from
//! `GENAI_ELECTRON_BINARY_MANIFEST`, in the same shape and validated field by field, so a newer
//! release or a private build can be adopted without a new version of this package. A mirror base
//! URL replaces the scheme and host of every archive URL.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The built-in table. Same checksums as genai-electron 0.26, so its installs are recognised.
pub const BUILTIN: &str = include_str!("pins.json");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Llama,
    Diffusion,
}

impl Kind {
    pub fn parse(s: &str) -> Result<Kind> {
        match s {
            "llama" => Ok(Kind::Llama),
            "diffusion" => Ok(Kind::Diffusion),
            other => Err(Error::binary(
                format!("Unknown binary type {other:?} (expected \"llama\" or \"diffusion\")"),
                json!({}),
            )),
        }
    }

    /// The directory name under `<userData>/binaries/` (genai-electron's).
    pub fn dir_name(self) -> &'static str {
        match self {
            Kind::Llama => "llama",
            Kind::Diffusion => "diffusion",
        }
    }

    /// The key in the pins table.
    pub fn table_key(self) -> &'static str {
        match self {
            Kind::Llama => "llamaServer",
            Kind::Diffusion => "diffusionCpp",
        }
    }

    pub fn project(self) -> &'static str {
        match self {
            Kind::Llama => "llama.cpp",
            Kind::Diffusion => "stable-diffusion.cpp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    pub url: String,
    pub checksum: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    /// SHA-256 of the archive.
    pub checksum: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
    /// Program names in this archive, when they differ from the release's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binaries: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub version: String,
    /// Programs every archive must hold (without `.exe`); the first is the one validated.
    pub binaries: Vec<String>,
    /// Platform key (`linux-x64`, `win32-x64`, `darwin-arm64`, ...) -> variants in try order.
    pub variants: BTreeMap<String, Vec<Variant>>,
}

impl Release {
    /// The program names for `variant` (its own list, else the release's).
    pub fn programs<'a>(&'a self, variant: &'a Variant) -> &'a [String] {
        variant.binaries.as_deref().unwrap_or(&self.binaries)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Manifest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llama_server: Option<Release>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diffusion_cpp: Option<Release>,
}

impl Manifest {
    pub fn builtin() -> Manifest {
        serde_json::from_str(BUILTIN).expect("pins.json is valid (checked by a unit test)")
    }

    pub fn release(&self, kind: Kind) -> Option<&Release> {
        match kind {
            Kind::Llama => self.llama_server.as_ref(),
            Kind::Diffusion => self.diffusion_cpp.as_ref(),
        }
    }

    /// The pins for `kind`: the user's manifest (when given and it names `kind`), else built-in.
    pub fn load(kind: Kind, manifest_file: Option<&Path>) -> Result<Release> {
        if let Some(file) = manifest_file {
            let user = load_file(file)?;
            if let Some(r) = user.release(kind) {
                return Ok(r.clone());
            }
        }
        Ok(Manifest::builtin()
            .release(kind)
            .cloned()
            .expect("the built-in table has both programs"))
    }

    /// genai-electron 0.26's `BINARY_VERSIONS` (without the program names it does not have).
    pub fn binary_versions_json() -> Value {
        let mut v = serde_json::to_value(Manifest::builtin()).expect("serialisable");
        for key in ["llamaServer", "diffusionCpp"] {
            if let Some(o) = v.get_mut(key).and_then(Value::as_object_mut) {
                o.remove("binaries");
            }
        }
        v
    }
}

fn manifest_error(file: &Path, what: String) -> Error {
    Error::binary(
        format!("Invalid binary manifest {}: {what}", file.display()),
        json!({
            "manifest": file.display().to_string(),
            "suggestion": "Fix the file (its shape is the one documented in the README under \"Binaries\"), or unset GENAI_ELECTRON_BINARY_MANIFEST to use the built-in pins.",
        }),
    )
}

/// Reads and validates a user manifest.
pub fn load_file(file: &Path) -> Result<Manifest> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| manifest_error(file, format!("cannot be read: {e}")))?;
    parse(&text).map_err(|what| manifest_error(file, what))
}

/// Parses and validates manifest text; the error names the offending field.
pub fn parse(text: &str) -> std::result::Result<Manifest, String> {
    let m: Manifest = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if m.llama_server.is_none() && m.diffusion_cpp.is_none() {
        return Err("it names neither \"llamaServer\" nor \"diffusionCpp\"".into());
    }
    for kind in [Kind::Llama, Kind::Diffusion] {
        if let Some(r) = m.release(kind) {
            check_release(kind.table_key(), r)?;
        }
    }
    Ok(m)
}

fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s != "."
        && s != ".."
}

fn check_release(key: &str, r: &Release) -> std::result::Result<(), String> {
    if !is_plain_name(&r.version) {
        return Err(format!(
            "{key}.version must be a non-empty tag of letters, digits, '-', '_' or '.'"
        ));
    }
    check_programs(&format!("{key}.binaries"), &r.binaries)?;
    for (platform, variants) in &r.variants {
        let (os, arch) = platform.split_once('-').unwrap_or(("", ""));
        if !matches!(os, "linux" | "darwin" | "win32") || !matches!(arch, "x64" | "arm64") {
            return Err(format!(
                "{key}.variants has an unknown platform key {platform:?} (expected <linux|darwin|win32>-<x64|arm64>)"
            ));
        }
        for (i, v) in variants.iter().enumerate() {
            let at = format!("{key}.variants.{platform}[{i}]");
            if !is_plain_name(&v.kind) {
                return Err(format!("{at}.type must be a short name such as \"cuda\", \"vulkan\", \"metal\" or \"cpu\""));
            }
            if variants[..i].iter().any(|o| o.kind == v.kind) {
                return Err(format!(
                    "{at}.type {:?} appears twice for {platform}",
                    v.kind
                ));
            }
            check_archive(&at, &v.url, &v.checksum)?;
            if let Some(b) = &v.binaries {
                check_programs(&format!("{at}.binaries"), b)?;
            }
            for (j, d) in v.dependencies.iter().enumerate() {
                check_archive(&format!("{at}.dependencies[{j}]"), &d.url, &d.checksum)?;
            }
        }
    }
    Ok(())
}

fn check_programs(at: &str, names: &[String]) -> std::result::Result<(), String> {
    if names.is_empty() {
        return Err(format!("{at} must list at least one program name"));
    }
    for n in names {
        if !is_plain_name(n) {
            return Err(format!(
                "{at} has {n:?}: a program name is a plain file name (no folder, no '.exe')"
            ));
        }
    }
    Ok(())
}

fn check_archive(at: &str, url: &str, checksum: &str) -> std::result::Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{at}.url {url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{at}.url must be http(s), got {url:?}"));
    }
    if ArchiveFormat::of(url).is_none() {
        return Err(format!(
            "{at}.url must name a .zip, .tar.gz or .tgz archive, got {url:?}"
        ));
    }
    if checksum.len() != 64 || !checksum.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{at}.checksum must be the archive's SHA-256 as 64 hex digits"
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    Zip,
    TarGz,
}

impl ArchiveFormat {
    /// From the URL's path (query and fragment ignored).
    pub fn of(url: &str) -> Option<ArchiveFormat> {
        ArchiveFormat::of_path(url::Url::parse(url).ok()?.path())
    }

    /// From a file name or path.
    pub fn of_path(path: &str) -> Option<ArchiveFormat> {
        let path = path.to_ascii_lowercase();
        if path.ends_with(".zip") {
            Some(ArchiveFormat::Zip)
        } else if path.ends_with(".tar.gz") || path.ends_with(".tgz") {
            Some(ArchiveFormat::TarGz)
        } else {
            None
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ArchiveFormat::Zip => ".zip",
            ArchiveFormat::TarGz => ".tar.gz",
        }
    }
}

/// `url` with its scheme and host replaced by `mirror` (path, query kept).
pub fn apply_mirror(url: &str, mirror: Option<&str>) -> Result<String> {
    let Some(base) = mirror.map(str::trim).filter(|m| !m.is_empty()) else {
        return Ok(url.to_string());
    };
    let bad = |why: String| {
        Error::binary(
            format!("GENAI_ELECTRON_BINARY_MIRROR {base:?} is not usable: {why}"),
            json!({ "mirror": base, "suggestion": "Set it to an http(s) base URL such as https://mirror.example.com/github, or unset it." }),
        )
    };
    let b = url::Url::parse(base).map_err(|e| bad(e.to_string()))?;
    if !matches!(b.scheme(), "http" | "https") {
        return Err(bad("it must be an http(s) URL".into()));
    }
    let u = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    let mut out = base.trim_end_matches('/').to_string();
    out.push_str(u.path());
    if let Some(q) = u.query() {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

/// This machine's platform key, as genai-electron names them.
pub fn platform_key() -> String {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        "windows" => "win32",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("{os}-{arch}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_is_valid_and_matches_genai_electron() {
        let m = parse(BUILTIN).unwrap();
        let d = m.diffusion_cpp.as_ref().unwrap();
        assert_eq!(d.version, "master-782-b290693");
        let linux: Vec<&str> = d.variants["linux-x64"]
            .iter()
            .map(|v| v.kind.as_str())
            .collect();
        assert_eq!(linux, ["vulkan", "cpu"]);
        assert!(d.variants["darwin-x64"].is_empty());
        let l = m.llama_server.as_ref().unwrap();
        assert_eq!(l.version, "b9860");
        let win: Vec<&str> = l.variants["win32-x64"]
            .iter()
            .map(|v| v.kind.as_str())
            .collect();
        assert_eq!(win, ["cuda", "vulkan", "cpu"]);
        assert_eq!(l.variants["win32-x64"][0].dependencies.len(), 1);
        let bv = Manifest::binary_versions_json();
        assert!(bv["llamaServer"].get("binaries").is_none());
        assert_eq!(bv["diffusionCpp"]["version"], "master-782-b290693");
    }

    #[test]
    fn manifest_errors_name_the_field() {
        let ok = r#"{"diffusionCpp":{"version":"v1","binaries":["sd-server"],"variants":{"linux-x64":[{"type":"cpu","url":"https://h/x.zip","checksum":"CHK"}]}}}"#;
        let good = ok.replace("CHK", &"a".repeat(64));
        assert!(parse(&good).is_ok());
        let e = parse(&ok.replace("CHK", "abc")).unwrap_err();
        assert!(
            e.contains("diffusionCpp.variants.linux-x64[0].checksum"),
            "{e}"
        );
        let e = parse(&good.replace("x.zip", "x.rar")).unwrap_err();
        assert!(e.contains(".url must name a .zip"), "{e}");
        let e = parse(&good.replace("linux-x64", "beos-x64")).unwrap_err();
        assert!(e.contains("unknown platform key"), "{e}");
        let e = parse(&good.replace("\"sd-server\"", "\"../sd\"")).unwrap_err();
        assert!(e.contains("plain file name"), "{e}");
        let e = parse(&good.replace("\"version\"", "\"versio\"")).unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
        assert!(parse("{}").unwrap_err().contains("neither"));
    }

    #[test]
    fn mirror_keeps_the_path() {
        let u = "https://github.com/leejet/stable-diffusion.cpp/releases/download/t/a.zip";
        assert_eq!(
            apply_mirror(u, Some("http://127.0.0.1:9/m/")).unwrap(),
            "http://127.0.0.1:9/m/leejet/stable-diffusion.cpp/releases/download/t/a.zip"
        );
        assert_eq!(apply_mirror(u, None).unwrap(), u);
        assert!(apply_mirror(u, Some("ftp://x")).is_err());
    }
}
