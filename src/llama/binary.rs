//! Where llama-server is: `config.binaryPath` (the program or its folder), else the folder in
//! `GENAI_ELECTRON_LLAMA_BINARY_DIR`, else `<userData>/binaries/llama/` (where genai-electron
//! installs it). This one function is where provisioning plugs in. A miss is a `BinaryError`
//! listing every place that was looked at.

use crate::error::{Error, Result};
use crate::supervisor::process::is_executable;
use serde_json::json;
use std::path::{Path, PathBuf};

pub const BINARY_DIR_ENV: &str = "GENAI_ELECTRON_LLAMA_BINARY_DIR";

pub fn program_name() -> String {
    format!("llama-server{}", std::env::consts::EXE_SUFFIX)
}

/// `explicit` is `config.binaryPath`, `env_dir` the environment variable's value, `default_dir`
/// `<userData>/binaries/llama`.
pub fn resolve(
    explicit: Option<&Path>,
    env_dir: Option<&str>,
    default_dir: &Path,
) -> Result<PathBuf> {
    let name = program_name();
    let mut looked: Vec<String> = Vec::new();
    if let Some(p) = explicit {
        let candidate = if p.is_dir() {
            p.join(&name)
        } else {
            p.to_path_buf()
        };
        if is_executable(&candidate) {
            return Ok(candidate);
        }
        looked.push(candidate.display().to_string());
        return Err(not_found(&looked, "config.binaryPath"));
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = env_dir.filter(|d| !d.trim().is_empty()) {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(default_dir.to_path_buf());
    for d in dirs {
        let p = d.join(&name);
        if is_executable(&p) {
            return Ok(p);
        }
        looked.push(p.display().to_string());
    }
    Err(not_found(&looked, "search"))
}

fn not_found(looked: &[String], source: &str) -> Error {
    Error::binary(
        format!(
            "llama-server not found (or not executable). Looked at: {}",
            looked.join(", ")
        ),
        json!({
            "searched": looked,
            "source": source,
            "suggestion": format!(
                "Install a llama.cpp release and point config.binaryPath at llama-server or its folder, set {BINARY_DIR_ENV}, or copy it into <userData>/binaries/llama/."
            ),
        }),
    )
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn exe(p: &Path) {
        std::fs::write(p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn explicit_then_env_then_default_and_misses_listed() {
        let d = tempfile::tempdir().unwrap();
        let (a, b, def) = (d.path().join("a"), d.path().join("b"), d.path().join("def"));
        for x in [&a, &b, &def] {
            std::fs::create_dir_all(x).unwrap();
        }
        let e = resolve(None, b.to_str(), &def).unwrap_err();
        assert_eq!(e.code(), "BINARY_ERROR");
        let m = e.to_string();
        assert!(
            m.contains(&b.join("llama-server").display().to_string()),
            "{m}"
        );
        assert!(
            m.contains(&def.join("llama-server").display().to_string()),
            "{m}"
        );
        exe(&def.join("llama-server"));
        assert_eq!(resolve(None, None, &def).unwrap(), def.join("llama-server"));
        exe(&b.join("llama-server"));
        assert_eq!(
            resolve(None, b.to_str(), &def).unwrap(),
            b.join("llama-server")
        );
        exe(&a.join("custom"));
        assert_eq!(
            resolve(Some(&a.join("custom")), b.to_str(), &def).unwrap(),
            a.join("custom")
        );
        // An explicit path that misses does not fall back to the others.
        assert!(resolve(Some(&a), b.to_str(), &def).is_err());
    }
}
