//! The on-disk layout under userData (contract section 3). Every path the library touches is
//! derived here so the layout lives in one place.

use crate::error::{Error, Result};
use crate::storage::model_info::ModelType;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Paths {
    root: PathBuf,
}

impl Paths {
    /// `root` is the userData directory. It is made absolute so stored records carry absolute
    /// paths, as genai-electron's do.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root: PathBuf = root.into();
        if root.as_os_str().is_empty() {
            return Err(Error::InvalidArgument(
                "userDataPath must be a non-empty path".into(),
            ));
        }
        let root = if root.is_absolute() {
            root
        } else {
            std::env::current_dir()
                .map_err(|e| Error::io("Cannot resolve userData path", &root, &e))?
                .join(root)
        };
        Ok(Paths {
            root: normalize_lexically(&root),
        })
    }

    /// Per-user default when neither configuration, environment nor Electron gives a root:
    /// the platform's data directory plus `genai-electron`.
    pub fn default_root() -> PathBuf {
        dirs::data_dir()
            .or_else(dirs::home_dir)
            .unwrap_or_else(std::env::temp_dir)
            .join("genai-electron")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn models(&self) -> PathBuf {
        self.root.join("models")
    }
    pub fn models_of(&self, t: ModelType) -> PathBuf {
        self.models().join(t.as_str())
    }
    pub fn metadata_file(&self, t: ModelType, id: &str) -> PathBuf {
        self.models_of(t).join(format!("{id}.json"))
    }
    pub fn binaries(&self, kind: &str) -> PathBuf {
        self.root.join("binaries").join(kind)
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("config")
    }
    pub fn temp(&self) -> PathBuf {
        self.root.join("temp")
    }
    /// LoRA files (genai-electron 0.26's `PATHS.loras`).
    pub fn loras(&self) -> PathBuf {
        self.root.join("loras")
    }

    /// Every directory `initialize()` creates, as genai-electron does.
    pub fn all_dirs(&self) -> Vec<PathBuf> {
        vec![
            self.models_of(ModelType::Llm),
            self.models_of(ModelType::Diffusion),
            self.binaries("llama"),
            self.binaries("diffusion"),
            self.logs(),
            self.config(),
            self.temp(),
            self.loras(),
        ]
    }

    /// Creates the directory tree (idempotent).
    pub async fn initialize(&self) -> Result<()> {
        for dir in self.all_dirs() {
            tokio::fs::create_dir_all(&dir).await.map_err(|e| {
                Error::fs(
                    format!(
                        "Failed to initialize storage directories: {}: {e}",
                        dir.display()
                    ),
                    serde_json::json!({ "path": dir.display().to_string(), "error": e.to_string() }),
                )
            })?;
        }
        Ok(())
    }

    /// True when `path` (absolute, from a record) lies strictly inside `<root>/models/`, both
    /// lexically and after resolving symlinks of its parent directories. Records are plain JSON a
    /// user or another program may edit; deleting must never follow them outside.
    pub fn is_inside_models(&self, path: &Path) -> bool {
        let models = self.models();
        if !path.is_absolute() {
            return false;
        }
        let lexical = normalize_lexically(path);
        if !strictly_inside(&lexical, &models) {
            return false;
        }
        // Resolve the deepest existing ancestor, so a symlinked directory cannot smuggle the
        // path elsewhere. The file itself is not resolved: deleting a symlink removes the link.
        let canonical_models = match std::fs::canonicalize(&models) {
            Ok(p) => p,
            Err(_) => return false,
        };
        let parent = match lexical.parent() {
            Some(p) => p,
            None => return false,
        };
        let mut existing = parent.to_path_buf();
        let mut rest = Vec::new();
        while !existing.exists() {
            match (existing.file_name(), existing.parent()) {
                (Some(name), Some(up)) => {
                    rest.push(name.to_os_string());
                    existing = up.to_path_buf();
                }
                _ => return false,
            }
        }
        let mut resolved = match std::fs::canonicalize(&existing) {
            Ok(p) => p,
            Err(_) => return false,
        };
        for name in rest.into_iter().rev() {
            resolved.push(name);
        }
        if let Some(name) = lexical.file_name() {
            resolved.push(name);
        }
        strictly_inside(&resolved, &canonical_models)
    }
}

fn strictly_inside(path: &Path, dir: &Path) -> bool {
    path.starts_with(dir) && path != dir
}

/// Removes `.` and resolves `..` without touching the file system.
pub fn normalize_lexically(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for comp in path.components() {
        match comp {
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_contract() {
        let p = Paths::new("/ud").unwrap();
        assert_eq!(p.models_of(ModelType::Llm), Path::new("/ud/models/llm"));
        assert_eq!(
            p.metadata_file(ModelType::Diffusion, "x"),
            Path::new("/ud/models/diffusion/x.json")
        );
        assert_eq!(p.temp(), Path::new("/ud/temp"));
        assert_eq!(p.loras(), Path::new("/ud/loras"));
    }

    #[test]
    fn inside_models_rejects_traversal_and_symlink_escape() {
        let dir = tempfile::tempdir().unwrap();
        let p = Paths::new(dir.path()).unwrap();
        std::fs::create_dir_all(p.models_of(ModelType::Diffusion)).unwrap();
        let inside = p.models_of(ModelType::Diffusion).join("a/b.gguf");
        assert!(p.is_inside_models(&inside));
        let escape = p.models_of(ModelType::Diffusion).join("../../outside.txt");
        assert!(!p.is_inside_models(&escape));
        assert!(!p.is_inside_models(&p.models()));
        assert!(!p.is_inside_models(Path::new("relative/file")));
        #[cfg(unix)]
        {
            let outside = tempfile::tempdir().unwrap();
            let link = p.models_of(ModelType::Diffusion).join("link");
            std::os::unix::fs::symlink(outside.path(), &link).unwrap();
            assert!(!p.is_inside_models(&link.join("victim.bin")));
        }
    }
}
