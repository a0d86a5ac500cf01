//! Where the stable-diffusion.cpp programs are. There is no network provisioning in this library:
//! the binary comes from `config.binaryPath` (the program or its folder), else the folder in
//! `GENAI_ELECTRON_SD_BINARY_DIR`, else `<userData>/binaries/diffusion/` (where genai-electron
//! installs it). A miss is a `BinaryError` listing every place that was looked at.

use crate::diffusion::config::Backend;
use crate::error::{Error, Result};
use crate::supervisor::process::is_executable;
use serde_json::json;
use std::path::{Path, PathBuf};

pub const BINARY_DIR_ENV: &str = "GENAI_ELECTRON_SD_BINARY_DIR";

/// Program names for a backend, in preference order (`sd` is sd-cli's name before 2025-12).
pub fn program_names(backend: Backend) -> Vec<String> {
    let base: &[&str] = match backend {
        Backend::Server => &["sd-server"],
        Backend::Cli => &["sd-cli", "sd"],
    };
    base.iter()
        .map(|n| format!("{n}{}", std::env::consts::EXE_SUFFIX))
        .collect()
}

/// Resolves the program for `backend`. `explicit` is `config.binaryPath`, `env_dir` the
/// environment variable's value, `default_dir` `<userData>/binaries/diffusion`.
pub fn resolve(
    backend: Backend,
    explicit: Option<&Path>,
    env_dir: Option<&str>,
    default_dir: &Path,
) -> Result<PathBuf> {
    let names = program_names(backend);
    let mut looked: Vec<String> = Vec::new();
    let search_dir = |dir: &Path, looked: &mut Vec<String>| -> Option<PathBuf> {
        for n in &names {
            let p = dir.join(n);
            if is_executable(&p) {
                return Some(p);
            }
            looked.push(p.display().to_string());
        }
        None
    };
    if let Some(p) = explicit {
        if p.is_dir() {
            if let Some(found) = search_dir(p, &mut looked) {
                return Ok(found);
            }
        } else if is_executable(p) {
            return Ok(p.to_path_buf());
        } else {
            looked.push(p.display().to_string());
        }
        return Err(not_found(backend, &looked, "config.binaryPath"));
    }
    if let Some(d) = env_dir.filter(|d| !d.trim().is_empty()) {
        if let Some(found) = search_dir(Path::new(d), &mut looked) {
            return Ok(found);
        }
    }
    if let Some(found) = search_dir(default_dir, &mut looked) {
        return Ok(found);
    }
    Err(not_found(backend, &looked, "search"))
}

fn not_found(backend: Backend, looked: &[String], source: &str) -> Error {
    let program = program_names(backend).remove(0);
    Error::binary(
        format!(
            "stable-diffusion.cpp program {program} not found (or not executable). Looked at: {}",
            looked.join(", ")
        ),
        json!({
            "backend": backend.as_str(),
            "searched": looked,
            "source": source,
            "suggestion": format!(
                "Install a stable-diffusion.cpp release (master-827 or later) and point config.binaryPath at {program} or its folder, set {BINARY_DIR_ENV}, or copy it into <userData>/binaries/diffusion/."
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
    fn explicit_then_env_then_default() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        let b = d.path().join("b");
        let def = d.path().join("def");
        for x in [&a, &b, &def] {
            std::fs::create_dir_all(x).unwrap();
        }
        exe(&def.join("sd-server"));
        assert_eq!(
            resolve(Backend::Server, None, None, &def).unwrap(),
            def.join("sd-server")
        );
        exe(&b.join("sd-server"));
        assert_eq!(
            resolve(Backend::Server, None, b.to_str(), &def).unwrap(),
            b.join("sd-server")
        );
        exe(&a.join("custom-server"));
        assert_eq!(
            resolve(
                Backend::Server,
                Some(&a.join("custom-server")),
                b.to_str(),
                &def
            )
            .unwrap(),
            a.join("custom-server")
        );
        // cli falls back to the old name `sd`.
        exe(&a.join("sd"));
        assert_eq!(
            resolve(Backend::Cli, Some(&a), None, &def).unwrap(),
            a.join("sd")
        );
    }

    #[test]
    fn miss_lists_every_place() {
        let d = tempfile::tempdir().unwrap();
        let plain = d.path().join("sd-server");
        std::fs::write(&plain, "not executable").unwrap();
        let e = resolve(Backend::Server, None, Some("/nowhere"), d.path()).unwrap_err();
        assert_eq!(e.code(), "BINARY_ERROR");
        let m = e.to_string();
        assert!(
            m.contains("/nowhere/sd-server") && m.contains(&plain.display().to_string()),
            "{m}"
        );
    }
}
