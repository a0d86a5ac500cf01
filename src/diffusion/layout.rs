//! From a model record to the files sd.cpp gets, checked before anything is spawned: every file
//! exists, the component set is one sd.cpp can load, and known-bad layouts are refused with a
//! reason instead of sd.cpp's misleading one-liners.
//!
//! SDXL split (UNet + CLIP-L + CLIP-G + VAE via `--diffusion-model --clip_l --clip_g --vae`) does
//! not load in sd.cpp master-827: version detection never sees the second text encoder and fails
//! with `get sd version from file failed: ''` (spec/sdxl-split.md, case a1). Adding
//! `-m <98-byte hint file>` whose one tensor is named `cond_stage_model.1.sdxl_hint` makes the
//! detection say SDXL, with the users' unmodified files (cases b4/b5/b7). A diffusers-named UNet
//! never works in this layout (b6), so it is refused up front.

use crate::diffusion::tensors::{build_safetensors, read_tensors};
use crate::error::{Error, Result};
use crate::storage::model_info::ComponentInfo;
use crate::storage::{ModelInfo, ModelType, Paths};
use serde_json::json;
use std::path::{Path, PathBuf};

/// `DIFFUSION_COMPONENT_ORDER` with each role's sd.cpp flag.
pub const COMPONENT_FLAGS: &[(&str, &str)] = &[
    ("diffusion_model", "--diffusion-model"),
    ("clip_l", "--clip_l"),
    ("clip_g", "--clip_g"),
    ("t5xxl", "--t5xxl"),
    ("llm", "--llm"),
    ("llm_vision", "--llm_vision"),
    ("vae", "--vae"),
];

pub const SDXL_HINT_TENSOR: &str = "cond_stage_model.1.sdxl_hint";
pub const SDXL_HINT_FILE: &str = "sdxl-hint.safetensors";

/// The 98-byte hint file: one F16 tensor of shape `[1]`.
pub fn sdxl_hint_bytes() -> Vec<u8> {
    build_safetensors(&[(SDXL_HINT_TENSOR, "F16", &[1])])
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelFiles {
    /// `-m` file: the single-file model, or the SDXL hint.
    pub model: Option<PathBuf>,
    /// `(flag, path)` in canonical order.
    pub components: Vec<(String, PathBuf)>,
    pub roles: Vec<String>,
    pub sdxl_split: bool,
    /// Aggregate size of the record (for the VRAM rules).
    pub size: u64,
    pub has_llm: bool,
    /// Problems found in headers that sd.cpp only discovers mid-generation (logged at start,
    /// quoted if the run then dies).
    pub warnings: Vec<String>,
}

impl ModelFiles {
    /// The model arguments: `-m` first (if any), then the component flags in canonical order.
    pub fn args(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(m) = &self.model {
            out.push("-m".to_string());
            out.push(m.display().to_string());
        }
        for (flag, p) in &self.components {
            out.push(flag.clone());
            out.push(p.display().to_string());
        }
        out
    }
}

fn missing_file(model: &ModelInfo, role: &str, path: &str) -> Error {
    Error::fs(
        format!("Model file missing for {} ({role}): {path}", model.id),
        json!({
            "modelId": model.id,
            "role": role,
            "path": path,
            "suggestion": "The file was moved or deleted. Run modelManager.verifyModel(id), or delete the model and download it again.",
        }),
    )
}

/// Resolves and checks the record's files. `paths` locates the library-owned hint file.
pub fn resolve(model: &ModelInfo, paths: &Paths) -> Result<ModelFiles> {
    if model.model_type != ModelType::Diffusion {
        return Err(Error::model_not_found(format!(
            "Model {} is not a diffusion model (type: {})",
            model.id,
            model.model_type.as_str()
        )));
    }
    let mut files = ModelFiles {
        model: None,
        components: Vec::new(),
        roles: Vec::new(),
        sdxl_split: false,
        size: model.size,
        has_llm: false,
        warnings: Vec::new(),
    };
    if !model.is_multi_component() {
        if !Path::new(&model.path).is_file() {
            return Err(missing_file(model, "model", &model.path));
        }
        files.model = Some(PathBuf::from(&model.path));
        return Ok(files);
    }
    let list = model.component_list();
    let by_role = |role: &str| list.iter().find(|(r, _)| r == role).map(|(_, c)| c);
    if by_role("diffusion_model").is_none() {
        return Err(Error::server(
            "Multi-component model is missing required diffusion_model component",
            json!({ "modelId": model.id, "roles": list.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>() }),
        ));
    }
    for (role, flag) in COMPONENT_FLAGS {
        if let Some(c) = by_role(role) {
            if !Path::new(&c.path).is_file() {
                return Err(missing_file(model, role, &c.path));
            }
            files
                .components
                .push((flag.to_string(), PathBuf::from(&c.path)));
            files.roles.push(role.to_string());
        }
    }
    for (role, _) in &list {
        if !COMPONENT_FLAGS.iter().any(|(r, _)| r == role) {
            files.warnings.push(format!(
                "component role {role:?} is not known to this version and is not passed to sd.cpp"
            ));
        }
    }
    let has = |r: &str| files.roles.iter().any(|x| x == r);
    files.has_llm = has("llm");
    files.sdxl_split = has("clip_l") && has("clip_g") && !has("t5xxl") && !has("llm");
    if files.sdxl_split {
        let unet = by_role("diffusion_model")
            .map(|c| c.path.clone())
            .unwrap_or_default();
        if let Some(tensors) = read_tensors(Path::new(&unet)) {
            if crate::compat::is_diffusers_unet(&tensors) {
                return Err(Error::server(
                    format!(
                        "SDXL split model {} uses a diffusers-named UNet ({unet}), which stable-diffusion.cpp cannot load with --diffusion-model",
                        model.id
                    ),
                    json!({
                        "modelId": model.id,
                        "role": "diffusion_model",
                        "path": unet,
                        "code": "UNSUPPORTED_LAYOUT",
                        "suggestion": "Use a UNet with original (LDM) tensor names (input_blocks.*, e.g. extracted from sd_xl_base_1.0.safetensors or a GGUF UNet), or the single-file checkpoint sd_xl_base_1.0.safetensors.",
                    }),
                ));
            }
        }
        files.model = Some(ensure_sdxl_hint(paths)?);
    }
    incompatible(model, &list)?;
    Ok(files)
}

/// The header checks shared with the download preflight (`crate::compat`): a mismatch fails the
/// start, naming both files, instead of sd.cpp aborting mid-image.
fn incompatible(model: &ModelInfo, list: &[(String, ComponentInfo)]) -> Result<()> {
    let files: Vec<(String, &Path)> = list
        .iter()
        .map(|(r, c)| (r.clone(), Path::new(c.path.as_str())))
        .collect();
    match crate::compat::check_local(&files) {
        None => Ok(()),
        Some(m) => Err(Error::server(
            m.message,
            json!({ "modelId": model.id, "code": crate::compat::CODE, "roles": m.roles, "files": m.files }),
        )),
    }
}

/// Writes the hint file once (atomically) and returns its path. Rewritten if its bytes differ.
pub fn ensure_sdxl_hint(paths: &Paths) -> Result<PathBuf> {
    let path = paths.config().join(SDXL_HINT_FILE);
    let want = sdxl_hint_bytes();
    if std::fs::read(&path).ok().as_deref() != Some(&want[..]) {
        crate::storage::atomic::write_atomic(&path, &want)?;
    }
    Ok(path)
}

/// The Flux 2 text-encoder width check on two files (see `crate::compat::text_encoder_mismatch`).
pub fn text_encoder_mismatch(dit: &Path, llm: &Path) -> Option<String> {
    crate::compat::text_encoder_mismatch(&read_tensors(dit)?, &read_tensors(llm)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(root: &Path, comps: &[(&str, &str, Vec<u8>)]) -> ModelInfo {
        let mut c = serde_json::Map::new();
        let mut size = 0;
        for (role, file, bytes) in comps {
            let p = root.join(file);
            std::fs::write(&p, bytes).unwrap();
            size += bytes.len();
            c.insert(
                role.to_string(),
                json!({"path": p.display().to_string(), "size": bytes.len()}),
            );
        }
        let primary = c["diffusion_model"]["path"].clone();
        serde_json::from_value(json!({
            "id": "m", "name": "M", "type": "diffusion", "size": size, "path": primary,
            "downloadedAt": "", "components": c
        }))
        .unwrap()
    }

    #[test]
    fn hint_file_is_98_bytes_with_the_sdxl_tensor() {
        let b = sdxl_hint_bytes();
        assert_eq!(b.len(), 98);
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path()).unwrap();
        let p = ensure_sdxl_hint(&paths).unwrap();
        let t = read_tensors(&p).unwrap();
        assert_eq!(t.len(), 1);
        // A literal, not the constant: sd.cpp detects SDXL only through a name containing
        // `cond_stage_model.1` (sdxl-split probe, 98-byte file with this one F16 [1] tensor).
        assert_eq!(t[0].name, "cond_stage_model.1.sdxl_hint");
        assert_eq!(t[0].shape, vec![1]);
        let header_len = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&b[8..8 + header_len]).unwrap();
        assert_eq!(
            header["cond_stage_model.1.sdxl_hint"],
            json!({"dtype": "F16", "shape": [1], "data_offsets": [0, 2]})
        );
        assert_eq!(std::fs::read(&p).unwrap(), b);
    }

    #[test]
    fn sdxl_split_gets_the_hint_first_and_canonical_order() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path()).unwrap();
        let unet =
            build_safetensors(&[("model.diffusion_model.input_blocks.0.0.weight", "F16", &[4])]);
        let m = record(
            dir.path(),
            &[
                ("vae", "vae.safetensors", b"v".to_vec()),
                ("clip_g", "clip_g.safetensors", b"g".to_vec()),
                ("diffusion_model", "unet.safetensors", unet),
                ("clip_l", "clip_l.safetensors", b"l".to_vec()),
            ],
        );
        let f = resolve(&m, &paths).unwrap();
        assert!(f.sdxl_split);
        let d = dir.path().display();
        assert_eq!(
            f.args(),
            vec![
                "-m".to_string(),
                format!("{d}/config/sdxl-hint.safetensors"),
                "--diffusion-model".into(),
                format!("{d}/unet.safetensors"),
                "--clip_l".into(),
                format!("{d}/clip_l.safetensors"),
                "--clip_g".into(),
                format!("{d}/clip_g.safetensors"),
                "--vae".into(),
                format!("{d}/vae.safetensors"),
            ]
        );
    }

    #[test]
    fn diffusers_unet_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path()).unwrap();
        let unet = build_safetensors(&[("down_blocks.0.resnets.0.conv1.weight", "F16", &[4])]);
        let m = record(
            dir.path(),
            &[
                ("diffusion_model", "unet.safetensors", unet),
                ("clip_l", "l", b"l".to_vec()),
                ("clip_g", "g", b"g".to_vec()),
            ],
        );
        let e = resolve(&m, &paths).unwrap_err();
        assert!(e.to_string().contains("diffusers-named UNet"), "{e}");
    }

    #[test]
    fn missing_component_is_named_and_flux2_order_is_canonical() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path()).unwrap();
        let m = record(
            dir.path(),
            &[
                ("vae", "vae.safetensors", b"v".to_vec()),
                ("llm", "qwen.gguf", b"q".to_vec()),
                ("diffusion_model", "dit.gguf", b"d".to_vec()),
            ],
        );
        let f = resolve(&m, &paths).unwrap();
        assert!(!f.sdxl_split && f.has_llm && f.model.is_none());
        let flags: Vec<&str> = f.components.iter().map(|(fl, _)| fl.as_str()).collect();
        assert_eq!(flags, vec!["--diffusion-model", "--llm", "--vae"]);
        std::fs::remove_file(dir.path().join("qwen.gguf")).unwrap();
        let e = resolve(&m, &paths).unwrap_err();
        assert_eq!(e.code(), "FILE_SYSTEM_ERROR");
        assert!(e.to_string().contains("(llm)"), "{e}");
    }

    #[test]
    fn klein_text_encoder_width_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let dit = dir.path().join("dit.safetensors");
        std::fs::write(
            &dit,
            build_safetensors(&[("txt_in.weight", "F16", &[128, 192])]),
        )
        .unwrap();
        let good = dir.path().join("good.safetensors");
        let layers: Vec<String> = (0..36)
            .map(|i| format!("model.layers.{i}.mlp.gate_proj.weight"))
            .collect();
        let mut t: Vec<(&str, &str, &[u64])> =
            vec![("model.embed_tokens.weight", "F16", &[10, 64])];
        for l in &layers {
            t.push((l.as_str(), "F16", &[1]));
        }
        std::fs::write(&good, build_safetensors(&t)).unwrap();
        assert_eq!(text_encoder_mismatch(&dit, &good), None);
        let wide = dir.path().join("wide.safetensors");
        t[0] = ("model.embed_tokens.weight", "F16", &[10, 96]);
        std::fs::write(&wide, build_safetensors(&t)).unwrap();
        let w = text_encoder_mismatch(&dit, &wide).unwrap();
        assert!(w.contains("288-wide") && w.contains("expects 192"), "{w}");
    }

    #[test]
    fn llm_model_is_refused_as_not_diffusion() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path()).unwrap();
        let m: ModelInfo =
            serde_json::from_value(json!({"id": "l", "type": "llm", "path": "/x", "size": 1}))
                .unwrap();
        let e = resolve(&m, &paths).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Model not found: Model l is not a diffusion model (type: llm)"
        );
    }
}
