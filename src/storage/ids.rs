//! Model ids and on-disk filenames, derived exactly as genai-electron does so that records
//! written by either library name the same files.

/// `generateModelId`: lower-case, whitespace runs to `-`, drop everything outside `[a-z0-9-]`,
/// collapse `-` runs, trim `-`. Also used to sanitise `modelDirectory`.
pub fn generate_model_id(name: &str) -> String {
    let lower = name.to_lowercase();
    let mut spaced = String::with_capacity(lower.len());
    let mut in_ws = false;
    for c in lower.chars() {
        if c.is_whitespace() {
            if !in_ws {
                spaced.push('-');
            }
            in_ws = true;
        } else {
            spaced.push(c);
            in_ws = false;
        }
    }
    let mut out = String::with_capacity(spaced.len());
    for c in spaced.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if c == '-' && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// `sanitizeFilename`: removes `< > : " / \ | ? *` and control characters, collapses whitespace
/// runs to one space and trims.
pub fn sanitize_filename(name: &str) -> String {
    let kept: String = name
        .chars()
        .filter(|c| {
            !matches!(c, '<' | '>' | ':' | '"' | '/' | '\\' | '|' | '?' | '*') && !c.is_control()
        })
        .collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// True when `id` can name a metadata file without escaping its directory.
pub fn is_safe_id(id: &str) -> bool {
    !id.contains(['/', '\\', '\0']) && id != "." && id != ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_contract_examples() {
        assert_eq!(generate_model_id("Llama 2 7B"), "llama-2-7b");
        assert_eq!(generate_model_id("Flux 2 Klein Q8_0"), "flux-2-klein-q80");
        assert_eq!(generate_model_id("Qwen3 235B Q4_K_M"), "qwen3-235b-q4km");
        assert_eq!(generate_model_id("  --A  - B-- "), "a-b");
        assert_eq!(generate_model_id("日本"), "");
    }

    #[test]
    fn filenames_are_sanitized() {
        assert_eq!(
            sanitize_filename("split_files/vae/flux2-vae.safetensors"),
            "split_filesvaeflux2-vae.safetensors"
        );
        assert_eq!(sanitize_filename(" a  b\t.gguf "), "a b.gguf");
        assert_eq!(sanitize_filename("a \u{3000} b.gguf"), "a b.gguf");
        assert_eq!(sanitize_filename("x\u{0}y"), "xy");
        assert!(!is_safe_id("../x"));
        assert!(is_safe_id("flux-2"));
    }
}
