//! Whether the files of a diffusion model can work together, decided from their headers (tensor
//! names and shapes) alone: before a byte of them is downloaded (headers read over Range) and
//! before sd.cpp is spawned (headers read from disk). sd.cpp itself accepts some wrong pairs and
//! fails mid-image (a text encoder of the wrong width) or with a misleading line (a VAE of another
//! family), so these checks name both files and say what fits instead.
//!
//! Checks:
//! - the VAE's latent channels against the diffusion model's (Flux 2 = 32, Flux 1 = 16,
//!   SD 1.x/2.x/SDXL = 4);
//! - the text encoder's output width against the DiT's `txt_in` (Flux 2 Klein 4B needs Qwen3-4B,
//!   Klein 9B needs Qwen3-8B);
//! - an SDXL split whose UNet has diffusers tensor names, which sd.cpp cannot load that way.
//!
//! A file whose header cannot be read is not judged: sd.cpp reports what it makes of it.

use crate::diffusion::tensors::{self, Tensor};
use crate::http::Auth;
use std::path::Path;

/// One file of a model: its role, a name for messages, its tensors (when the header was read).
pub struct Part {
    pub role: String,
    pub file: String,
    pub tensors: Option<Vec<Tensor>>,
}

/// Two files that cannot work together.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    pub message: String,
    /// The roles and files involved, the diffusion model first.
    pub roles: Vec<String>,
    pub files: Vec<String>,
}

/// The error code both the download and the server start report a mismatch with.
pub const CODE: &str = "INCOMPATIBLE_COMPONENTS";

fn find<'a>(t: &'a [Tensor], suffix: &str, dims: usize) -> Option<&'a Tensor> {
    t.iter()
        .find(|x| x.name.ends_with(suffix) && x.shape.len() == dims)
}

/// Latent channels a VAE encodes to: the input width of its decoder's first convolution.
pub fn vae_latent_channels(t: &[Tensor]) -> Option<u64> {
    find(t, "decoder.conv_in.weight", 4).map(|x| x.shape[1])
}

/// Latent channels a diffusion model works in.
pub fn dit_latent_channels(t: &[Tensor]) -> Option<u64> {
    // Flux 1/2: patches of 2x2 latents feed `img_in` (diffusers: `x_embedder`).
    if let Some(x) = find(t, "img_in.weight", 2).or_else(|| find(t, "x_embedder.weight", 2)) {
        return Some(x.shape[1] / 4);
    }
    // SD3: a patch-embedding convolution.
    if let Some(x) = find(t, "x_embedder.proj.weight", 4) {
        return Some(x.shape[1]);
    }
    // UNets (SD 1.x/2.x/SDXL) work in 4 channels (inpainting models take 9 inputs, still 4 latent).
    let unet = t
        .iter()
        .any(|x| x.name.contains("input_blocks.0.0.weight") || x.name.contains("down_blocks."));
    unet.then_some(4)
}

fn family(channels: u64) -> &'static str {
    match channels {
        32 => "Flux 2",
        16 => "Flux 1 or SD3",
        4 => "SD 1.x/2.x or SDXL",
        _ => "an unknown family",
    }
}

/// A diffusers UNet (`down_blocks.*`) with no original-named blocks.
pub fn is_diffusers_unet(tensors: &[Tensor]) -> bool {
    let has = |pat: &str| tensors.iter().any(|t| t.name.contains(pat));
    !has("input_blocks.") && (has("down_blocks.") || has("up_blocks."))
}

/// The Flux 2 check sd.cpp does not do before sampling: the DiT's `txt_in.weight` input width
/// must equal the text encoder's output width (hidden states of layers 9/18/27 concatenated, so
/// 3 x the embedding width for a Qwen3 with >= 26 layers). Returns a sentence when they differ.
pub fn text_encoder_mismatch(dit: &[Tensor], llm: &[Tensor]) -> Option<String> {
    let context = find(dit, "txt_in.weight", 2)?.shape[1];
    let hidden = find(llm, "embed_tokens.weight", 2)
        .or_else(|| find(llm, "token_embd.weight", 2))?
        .shape[1];
    let layers = llm
        .iter()
        .filter_map(|t| layer_index(&t.name))
        .max()
        .map(|m| m + 1)?;
    let produced = if layers >= 26 {
        3 * hidden
    } else if layers >= 9 {
        2 * hidden
    } else {
        hidden
    };
    if produced == context {
        return None;
    }
    Some(format!(
        "the llm text encoder ({layers} layers x {hidden} wide) produces a {produced}-wide text context, but the diffusion model expects {context} (txt_in.weight). sd.cpp will abort during the first image. Flux 2 Klein 4B needs Qwen3-4B (2560 wide); Klein 9B needs Qwen3-8B (4096 wide)"
    ))
}

fn layer_index(name: &str) -> Option<u64> {
    for key in ["layers.", "blk."] {
        if let Some(i) = name.find(key) {
            let rest = &name[i + key.len()..];
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            if let Ok(n) = digits.parse() {
                return Some(n);
            }
        }
    }
    None
}

/// The first mismatch among the parts of one model, if any.
pub fn check(parts: &[Part]) -> Option<Mismatch> {
    let get = |role: &str| parts.iter().find(|p| p.role == role);
    let dit = get("diffusion_model")?;
    let dit_t = dit.tensors.as_deref()?;
    let pair = |other: &Part, message: String| Mismatch {
        message,
        roles: vec![dit.role.clone(), other.role.clone()],
        files: vec![dit.file.clone(), other.file.clone()],
    };
    if let Some(vae) = get("vae") {
        let want = dit_latent_channels(dit_t);
        let have = vae.tensors.as_deref().and_then(vae_latent_channels);
        if let (Some(want), Some(have)) = (want, have) {
            if want != have {
                return Some(pair(
                    vae,
                    format!(
                        "Incompatible components: the VAE {} has {have} latent channels ({}) but the diffusion model {} works in {want} ({}). Use the VAE made for this model's family.",
                        vae.file,
                        family(have),
                        dit.file,
                        family(want)
                    ),
                ));
            }
        }
    }
    if let Some(llm) = get("llm") {
        if let Some(why) = llm
            .tensors
            .as_deref()
            .and_then(|t| text_encoder_mismatch(dit_t, t))
        {
            return Some(pair(
                llm,
                format!(
                    "Incompatible components: {} and {}: {why}.",
                    dit.file, llm.file
                ),
            ));
        }
    }
    let has = |r: &str| get(r).is_some();
    if has("clip_l") && has("clip_g") && !has("t5xxl") && !has("llm") && is_diffusers_unet(dit_t) {
        let clip = get("clip_g")?;
        return Some(pair(
            clip,
            format!(
                "Incompatible components: the SDXL split model's UNet {} has diffusers tensor names (down_blocks.*), which stable-diffusion.cpp cannot load beside {} with --diffusion-model. Use a UNet with original (LDM) tensor names (input_blocks.*), or the single-file checkpoint sd_xl_base_1.0.safetensors.",
                dit.file, clip.file
            ),
        ));
    }
    None
}

/// Tensors of a file on disk.
pub fn read_local(path: &Path) -> Option<Vec<Tensor>> {
    tensors::read_tensors(path)
}

/// Tensors of a remote file, from its header only (a few Range requests).
pub async fn read_remote(url: &str, auth: &Auth) -> Option<Vec<Tensor>> {
    let u = url::Url::parse(url).ok()?;
    let (first, total) = crate::gguf::remote::fetch_range(&u, auth, 0, 8)
        .await
        .ok()?;
    if first.starts_with(b"GGUF") {
        let (h, _) = crate::gguf::remote::fetch_remote_header(url, auth)
            .await
            .ok()?;
        return Some(tensors::from_gguf(h));
    }
    let len = tensors::safetensors_header_len(&first, total)?;
    let (buf, _) = crate::gguf::remote::fetch_range(&u, auth, 8, 8 + len)
        .await
        .ok()?;
    if buf.first() != Some(&b'{') {
        return None;
    }
    tensors::parse_safetensors_header(&buf)
}

/// Checks the files of a record on disk (before sd.cpp is spawned): `(role, path)` pairs.
pub fn check_local(files: &[(String, &Path)]) -> Option<Mismatch> {
    let wanted = ["diffusion_model", "vae", "llm", "clip_l", "clip_g", "t5xxl"];
    let parts: Vec<Part> = files
        .iter()
        .filter(|(r, _)| wanted.contains(&r.as_str()))
        .map(|(role, p)| Part {
            role: role.clone(),
            file: p.display().to_string(),
            // Only the files a check reads are opened.
            tensors: matches!(role.as_str(), "diffusion_model" | "vae" | "llm")
                .then(|| read_local(p))
                .flatten(),
        })
        .collect();
    check(&parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, shape: &[u64]) -> Tensor {
        Tensor {
            name: name.into(),
            shape: shape.to_vec(),
        }
    }

    fn part(role: &str, tensors: Vec<Tensor>) -> Part {
        Part {
            role: role.into(),
            file: format!("{role}.bin"),
            tensors: Some(tensors),
        }
    }

    fn qwen(width: u64) -> Vec<Tensor> {
        let mut v = vec![t("model.embed_tokens.weight", &[151936, width])];
        v.extend((0..36).map(|i| t(&format!("model.layers.{i}.mlp.up_proj.weight"), &[1])));
        v
    }

    #[test]
    fn vae_channels_must_match_the_dit() {
        let flux2 = part("diffusion_model", vec![t("img_in.weight", &[3072, 128])]);
        let vae = |c| part("vae", vec![t("decoder.conv_in.weight", &[512, c, 3, 3])]);
        assert_eq!(check(&[part("diffusion_model", vec![]), vae(16)]), None);
        let good = [
            part("diffusion_model", vec![t("img_in.weight", &[3072, 128])]),
            vae(32),
        ];
        assert_eq!(check(&good), None);
        let m = check(&[flux2, vae(16)]).unwrap();
        assert!(
            m.message.contains("has 16 latent channels (Flux 1 or SD3)"),
            "{}",
            m.message
        );
        assert!(m.message.contains("works in 32 (Flux 2)"), "{}", m.message);
        assert_eq!(m.files, ["diffusion_model.bin", "vae.bin"]);
        let sdxl = part(
            "diffusion_model",
            vec![t(
                "model.diffusion_model.input_blocks.0.0.weight",
                &[320, 4, 3, 3],
            )],
        );
        let m = check(&[sdxl, vae(16)]).unwrap();
        assert!(
            m.message.contains("works in 4 (SD 1.x/2.x or SDXL)"),
            "{}",
            m.message
        );
    }

    #[test]
    fn text_encoder_width_must_match_txt_in() {
        let klein4b = || part("diffusion_model", vec![t("txt_in.weight", &[3072, 7680])]);
        assert_eq!(check(&[klein4b(), part("llm", qwen(2560))]), None);
        let m = check(&[klein4b(), part("llm", qwen(4096))]).unwrap();
        assert!(m.message.contains("(36 layers x 4096 wide) produces a 12288-wide text context, but the diffusion model expects 7680"), "{}", m.message);
        assert_eq!(m.roles, ["diffusion_model", "llm"]);
        // An unreadable encoder is not judged.
        let blind = Part {
            role: "llm".into(),
            file: "x".into(),
            tensors: None,
        };
        assert_eq!(check(&[klein4b(), blind]), None);
    }

    #[test]
    fn a_diffusers_unet_in_an_sdxl_split_is_refused() {
        let unet = || {
            part(
                "diffusion_model",
                vec![t("down_blocks.0.resnets.0.conv1.weight", &[320, 320, 3, 3])],
            )
        };
        let m = check(&[unet(), part("clip_l", vec![]), part("clip_g", vec![])]).unwrap();
        assert!(
            m.message.contains("diffusers tensor names"),
            "{}",
            m.message
        );
        assert_eq!(m.files, ["diffusion_model.bin", "clip_g.bin"]);
        // Not a split: nothing to say.
        assert_eq!(check(&[unet(), part("clip_l", vec![])]), None);
    }
}
