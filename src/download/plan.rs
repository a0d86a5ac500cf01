//! The plan: one item per file (URL, destination, expected hash, record fields), and the layout
//! that decides the destinations. Built from a checked request without touching disk or network.

use crate::error::{Error, Result};
use crate::storage::ids::generate_model_id;
use crate::storage::model_info::{ModelSource, ModelType};
use crate::storage::paths::normalize_lexically;
use crate::storage::Paths;
use serde_json::{json, Value};
use std::path::PathBuf;
use url::Url;

use super::config::{DownloadRequest, SourceSpec};
use super::source::{disk_name, resolve, shard_siblings, ShardName};

#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    /// One file directly in `models/<type>/`.
    Single,
    /// Several roles in `models/<type>/<dir>/` (`dir` may be shared between variants).
    MultiComponent,
    /// `…-0000N-of-0000M.gguf` files in `models/<type>/<id>/`.
    Sharded,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Component role (`diffusion_model` for the primary of a multi-component model).
    pub role: Option<String>,
    /// 1-based shard number.
    pub shard: Option<u32>,
    pub url: Url,
    pub source: ModelSource,
    pub repo: Option<String>,
    pub filename: String,
    pub dest: PathBuf,
    /// The caller's checksum (lower-case hex).
    pub user_checksum: Option<String>,
    pub provenance: Option<Value>,
}

impl Item {
    /// How messages name this file.
    pub fn label(&self) -> String {
        match (&self.role, self.shard) {
            (Some(r), _) => format!("component {r}"),
            (None, Some(n)) => format!("shard {n}"),
            _ => self.filename.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub id: String,
    pub name: String,
    pub model_type: ModelType,
    pub layout: Layout,
    /// `models/<type>/`.
    pub type_dir: PathBuf,
    /// The directory holding the files (`type_dir` for single-file models).
    pub dir: PathBuf,
    pub items: Vec<Item>,
}

impl Plan {
    pub fn primary(&self) -> &Item {
        &self.items[0]
    }

    pub fn primary_is_gguf(&self) -> bool {
        self.primary()
            .filename
            .to_ascii_lowercase()
            .ends_with(".gguf")
    }
}

fn bad(message: impl Into<String>) -> Error {
    Error::download(message, json!({ "invalidConfig": true }))
}

/// `modelDirectory` as given must be a plain name: it is sanitised like an id, but a separator,
/// NUL or `..` in it means the caller expected a path, which we refuse rather than reinterpret.
fn model_directory(raw: &str) -> Result<String> {
    if raw.contains(['/', '\\', '\0']) || raw.trim() == ".." || raw.trim() == "." {
        return Err(bad(format!(
            "modelDirectory must be a plain directory name, got {raw:?}"
        )));
    }
    let dir = generate_model_id(raw);
    if dir.len() > super::config::MAX_NAME_CHARS {
        return Err(bad(format!(
            "modelDirectory is too long ({} characters): at most {} are allowed",
            raw.chars().count(),
            super::config::MAX_NAME_CHARS
        )));
    }
    if dir.is_empty() {
        return Err(bad(format!(
            "modelDirectory {raw:?} has no ASCII letter or digit to name a directory with"
        )));
    }
    Ok(dir)
}

/// Builds the plan. `endpoint` is the Hugging Face endpoint URLs are resolved against.
pub fn build(req: &DownloadRequest, paths: &Paths, endpoint: &str) -> Result<Plan> {
    let id = generate_model_id(&req.name);
    if id.is_empty() {
        return Err(bad(format!(
            "Model name {:?} has no ASCII letter or digit to derive an id from",
            req.name
        )));
    }
    let type_dir = paths.models_of(req.model_type);

    let (layout, dir, sources): (Layout, PathBuf, Vec<(Option<String>, &SourceSpec)>);
    let siblings;
    if !req.components.is_empty() {
        let d = match &req.model_directory {
            Some(raw) => model_directory(raw)?,
            None => id.clone(),
        };
        layout = Layout::MultiComponent;
        dir = type_dir.join(d);
        let mut s = vec![(Some("diffusion_model".to_string()), &req.source)];
        s.extend(
            req.components
                .iter()
                .map(|c| (Some(c.role.clone()), &c.source)),
        );
        sources = s;
    } else {
        siblings = shard_siblings(&req.source, &req.shard_files)?;
        if siblings.is_empty() {
            layout = Layout::Single;
            dir = type_dir.clone();
            sources = vec![(None, &req.source)];
        } else {
            layout = Layout::Sharded;
            dir = type_dir.join(&id);
            let mut s = vec![(None, &req.source)];
            s.extend(siblings.iter().map(|sp| (None, sp)));
            sources = s;
        }
    }

    let mut items: Vec<Item> = Vec::with_capacity(sources.len());
    for (i, (role, spec)) in sources.into_iter().enumerate() {
        let r = resolve(spec, endpoint)?;
        let filename = disk_name(&r.raw_name, layout == Layout::Single)?;
        let dest = dir.join(&filename);
        // Names are sanitised, so this holds by construction; checked anyway because a file
        // outside models/<type>/ must be impossible, not merely unlikely.
        if !normalize_lexically(&dest).starts_with(&type_dir) || dest == type_dir {
            return Err(bad(format!(
                "Refusing to write outside {}",
                type_dir.display()
            )));
        }
        if let Some(prev) = items.iter().find(|it| it.dest == dest) {
            return Err(bad(format!(
                "{} and {} would both be saved as {filename:?}",
                prev.label(),
                role.as_deref()
                    .map(|r| format!("component {r}"))
                    .unwrap_or_else(|| format!("file {}", r.raw_name))
            )));
        }
        let (user_checksum, provenance) = match (&layout, &role) {
            (Layout::MultiComponent, Some(role)) if role != "diffusion_model" => {
                let c = req
                    .components
                    .iter()
                    .find(|c| &c.role == role)
                    .expect("component roles come from the request");
                (c.checksum.clone(), c.provenance.clone())
            }
            // The caller's checksum covers the primary (for shards: shard 1 only).
            _ if i == 0 => (req.checksum.clone(), req.provenance.clone()),
            _ => (None, None),
        };
        items.push(Item {
            shard: (layout == Layout::Sharded).then_some(i as u32 + 1),
            role,
            url: r.url,
            source: r.source,
            repo: r.repo,
            filename,
            dest,
            user_checksum,
            provenance,
        });
    }
    if layout == Layout::Sharded {
        // A sharded name's count must agree with what we derived (explicit shardFiles may not).
        if let Some(s) = ShardName::parse(&items[0].filename) {
            if req.shard_files.is_empty() && s.count as usize != items.len() {
                return Err(bad(
                    "Shard list does not match the shard count in the file name",
                ));
            }
        }
    }
    Ok(Plan {
        id,
        name: req.name.clone(),
        model_type: req.model_type,
        layout,
        type_dir,
        dir,
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::download::config::parse;

    fn plan(cfg: Value) -> Result<Plan> {
        let req = parse(&cfg)?;
        build(&req, &Paths::new("/ud").unwrap(), "https://huggingface.co")
    }

    #[test]
    fn single_file_goes_flat_in_the_type_dir() {
        let p = plan(
            json!({"source": "huggingface", "repo": "o/r", "file": "sub/Tiny Model.gguf",
            "name": "Tiny Llama 1.1B", "type": "llm", "checksum": "a".repeat(64)}),
        )
        .unwrap();
        assert_eq!(p.id, "tiny-llama-11b");
        assert_eq!(p.layout, Layout::Single);
        assert_eq!(p.items.len(), 1);
        assert_eq!(
            p.items[0].dest,
            PathBuf::from("/ud/models/llm/subTiny Model.gguf")
        );
        assert_eq!(p.items[0].user_checksum.as_deref(), Some(&*"a".repeat(64)));
        assert!(p.primary_is_gguf());
    }

    #[test]
    fn flux_klein_multi_component_plan() {
        let p = plan(json!({
            "source": "huggingface", "repo": "leejet/FLUX.2-klein-4B-GGUF", "file": "flux-2-klein-4b-Q8_0.gguf",
            "name": "Flux 2 Klein Q8_0", "type": "diffusion", "modelDirectory": "Flux 2 Klein",
            "provenance": {"license": "apache-2.0"},
            "components": [
                {"role": "llm", "source": "huggingface", "repo": "unsloth/Qwen3-4B-GGUF", "file": "Qwen3-4B-Q4_0.gguf", "checksum": "b".repeat(64)},
                {"role": "vae", "source": "url", "url": "https://huggingface.co/Comfy-Org/flux2-dev/resolve/main/split_files/vae/flux2-vae.safetensors"}
            ]
        }))
        .unwrap();
        assert_eq!(p.id, "flux-2-klein-q80");
        assert_eq!(p.dir, PathBuf::from("/ud/models/diffusion/flux-2-klein"));
        let roles: Vec<_> = p.items.iter().map(|i| i.role.clone().unwrap()).collect();
        assert_eq!(roles, ["diffusion_model", "llm", "vae"]);
        assert_eq!(p.items[2].filename, "flux2-vae.safetensors");
        assert_eq!(p.items[1].user_checksum.as_deref(), Some(&*"b".repeat(64)));
        assert_eq!(
            p.items[0].provenance,
            Some(json!({"license": "apache-2.0"}))
        );
        assert_eq!(p.items[1].provenance, None);
        assert_eq!(p.items[2].source.source_type, "url");
    }

    #[test]
    fn nested_component_files_are_flattened_and_collisions_refused() {
        let p = plan(json!({"source": "url", "url": "http://h/unet.safetensors", "name": "SDXL", "type": "diffusion",
            "components": [{"role": "vae", "source": "huggingface", "repo": "o/r", "file": "split_files/vae/sdxl_vae.safetensors"}]}))
        .unwrap();
        assert_eq!(p.items[1].filename, "split_filesvaesdxl_vae.safetensors");
        assert_eq!(p.dir, PathBuf::from("/ud/models/diffusion/sdxl"));
        let e = plan(json!({"source": "url", "url": "http://h/a/x.safetensors", "name": "S", "type": "diffusion",
            "components": [{"role": "vae", "source": "url", "url": "http://h/b/x.safetensors"}]}))
        .unwrap_err();
        assert!(e.to_string().contains("would both be saved"), "{e}");
    }

    #[test]
    fn bad_names_and_directories_are_refused() {
        let cfg = |name: &str, dir: Option<&str>| {
            let mut v = json!({"source": "url", "url": "http://h/d.gguf", "name": name, "type": "diffusion",
                "components": [{"role": "vae", "source": "url", "url": "http://h/v.safetensors"}]});
            if let Some(d) = dir {
                v["modelDirectory"] = json!(d);
            }
            v
        };
        assert!(plan(cfg("日本", None)).is_err());
        for d in ["../escape", "a/b", "a\\b", "..", "a\0b", "!!!"] {
            assert!(plan(cfg("ok", Some(d))).is_err(), "{d}");
        }
        assert!(
            plan(json!({"source": "url", "url": "http://h/", "name": "A", "type": "llm"})).is_err()
        );
        assert!(plan(
            json!({"source": "url", "url": "http://h/x.json", "name": "A", "type": "llm"})
        )
        .is_err());
        assert!(plan(
            json!({"source": "url", "url": "file:///etc/passwd", "name": "A", "type": "llm"})
        )
        .is_err());
    }

    #[test]
    fn sharded_models_get_their_own_directory() {
        let p = plan(
            json!({"source": "huggingface", "repo": "o/r", "file": "Q4/big-00001-of-00003.gguf",
            "name": "Big", "type": "llm", "checksum": "c".repeat(64)}),
        )
        .unwrap();
        assert_eq!(p.layout, Layout::Sharded);
        assert_eq!(p.items.len(), 3);
        assert_eq!(
            p.items[2].dest,
            PathBuf::from("/ud/models/llm/big/Q4big-00003-of-00003.gguf")
        );
        assert_eq!(p.items[2].shard, Some(3));
        assert!(p.items[0].user_checksum.is_some());
        assert!(p.items[1].user_checksum.is_none());
        let p = plan(
            json!({"source": "url", "url": "http://h/m.gguf", "name": "M", "type": "llm",
            "shardFiles": ["m2.gguf"]}),
        )
        .unwrap();
        assert_eq!(p.layout, Layout::Sharded);
        assert_eq!(p.items[1].url.as_str(), "http://h/m2.gguf");
    }
}
