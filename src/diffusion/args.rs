//! Command lines for sd-server and sd-cli, and the job body for sd-server's native async API.
//! Order follows the contract (4.8): model files, generation values, `-t`, optimisation flags,
//! `-b`, then the process-specific tail. sd.cpp takes each value from the next argv element, so
//! nothing is quoted or joined.

use crate::diffusion::config::ImageRequest;
use crate::diffusion::flags::Flags;
use crate::diffusion::layout::ModelFiles;
use serde_json::{json, Map, Value};
use std::path::Path;

/// Options that shape every command line of one server instance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessOptions {
    pub threads: Option<u32>,
    pub flags: Flags,
    pub batch_size: Option<u32>,
}

fn push_common_tail(out: &mut Vec<String>, opts: &ProcessOptions) {
    if let Some(t) = opts.threads {
        out.push("-t".into());
        out.push(t.to_string());
    }
    out.extend(opts.flags.args());
}

/// sd-server: loads the model once and listens on a private loopback port. `batchSize` is not a
/// command-line flag here: it travels in each job (`server_job_body`), as in genai-electron.
pub fn server_args(
    files: &ModelFiles,
    opts: &ProcessOptions,
    listen_ip: &str,
    port: u16,
) -> Vec<String> {
    let mut out = files.args();
    push_common_tail(&mut out, opts);
    out.push("--listen-ip".into());
    out.push(listen_ip.to_string());
    out.push("--listen-port".into());
    out.push(port.to_string());
    out
}

fn fmt_float(x: f64) -> String {
    // `7.5` -> "7.5", `1.0` -> "1": what a person would type, and what std::stof reads.
    format!("{x}")
}

/// sd-cli: one process per request. `count > 1` is one run with `-b count` (seeds seed+i).
pub fn cli_args(
    files: &ModelFiles,
    req: &ImageRequest,
    opts: &ProcessOptions,
    output: &Path,
) -> Vec<String> {
    let mut out = files.args();
    out.push("-p".into());
    out.push(req.prompt.clone());
    if let Some(n) = &req.negative_prompt {
        out.push("-n".into());
        out.push(n.clone());
    }
    if let Some(w) = req.width {
        out.push("-W".into());
        out.push(w.to_string());
    }
    if let Some(h) = req.height {
        out.push("-H".into());
        out.push(h.to_string());
    }
    if let Some(s) = req.steps {
        out.push("--steps".into());
        out.push(s.to_string());
    }
    if let Some(c) = req.cfg_scale {
        out.push("--cfg-scale".into());
        out.push(fmt_float(c));
    }
    out.push("-s".into());
    out.push(req.seed.to_string());
    if let Some(s) = &req.sampler {
        out.push("--sampling-method".into());
        out.push(s.clone());
    }
    push_common_tail(&mut out, opts);
    if req.count > 1 {
        out.push("-b".into());
        out.push(req.count.to_string());
    }
    out.push("-o".into());
    out.push(output.display().to_string());
    out
}

/// The body of `POST /sdcpp/v1/img_gen`. Values not given are left out, so sd.cpp's defaults apply
/// exactly as with sd-cli. `batch_count` is the request's `count`, or for one image the server's
/// `batchSize` (genai-electron's `max(1, floor(batchSize))`; the first image is the result).
pub fn server_job_body(req: &ImageRequest, batch_size: Option<u32>) -> Value {
    let mut body = Map::new();
    body.insert("prompt".into(), json!(req.prompt));
    if let Some(n) = &req.negative_prompt {
        body.insert("negative_prompt".into(), json!(n));
    }
    if let Some(w) = req.width {
        body.insert("width".into(), json!(w));
    }
    if let Some(h) = req.height {
        body.insert("height".into(), json!(h));
    }
    body.insert("seed".into(), json!(req.seed));
    let batch = if req.count > 1 {
        req.count
    } else {
        batch_size.unwrap_or(1).max(1)
    };
    body.insert("batch_count".into(), json!(batch));
    let mut sample = Map::new();
    if let Some(s) = &req.sampler {
        sample.insert("sample_method".into(), json!(s));
    }
    if let Some(s) = req.steps {
        sample.insert("sample_steps".into(), json!(s));
    }
    if let Some(c) = req.cfg_scale {
        sample.insert("guidance".into(), json!({ "txt_cfg": c }));
    }
    if !sample.is_empty() {
        body.insert("sample_params".into(), Value::Object(sample));
    }
    body.insert("output_format".into(), json!("png"));
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn klein() -> ModelFiles {
        ModelFiles {
            model: None,
            components: vec![
                ("--diffusion-model".into(), PathBuf::from("/m/klein.gguf")),
                ("--llm".into(), PathBuf::from("/m/qwen.gguf")),
                ("--vae".into(), PathBuf::from("/m/vae.safetensors")),
            ],
            roles: vec!["diffusion_model".into(), "llm".into(), "vae".into()],
            sdxl_split: false,
            size: 7,
            has_llm: true,
            warnings: vec![],
        }
    }

    fn req() -> ImageRequest {
        ImageRequest {
            prompt: "a cat".into(),
            negative_prompt: None,
            width: Some(768),
            height: Some(768),
            steps: Some(4),
            cfg_scale: Some(1.0),
            seed: 123,
            sampler: Some("euler".into()),
            count: 1,
            usage_mode: None,
            flag_overrides: None,
            settle: true,
            gated: false,
        }
    }

    fn v(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn cli_args_match_the_contract_example() {
        let opts = ProcessOptions {
            threads: None,
            flags: Flags {
                offload_to_cpu: true,
                diffusion_fa: true,
                ..Flags::default()
            },
            batch_size: None,
        };
        let a = cli_args(&klein(), &req(), &opts, Path::new("/t/out.png"));
        assert_eq!(a, v("--diffusion-model /m/klein.gguf --llm /m/qwen.gguf --vae /m/vae.safetensors -p a_cat -W 768 -H 768 --steps 4 --cfg-scale 1 -s 123 --sampling-method euler --offload-to-cpu --diffusion-fa -o /t/out.png").into_iter().map(|s| if s == "a_cat" { "a cat".into() } else { s }).collect::<Vec<_>>());
    }

    #[test]
    fn cli_batch_and_threads_and_negative() {
        let mut r = req();
        r.count = 3;
        r.negative_prompt = Some("blurry".into());
        r.cfg_scale = Some(7.5);
        r.sampler = None;
        let opts = ProcessOptions {
            threads: Some(4),
            flags: Flags::default(),
            batch_size: Some(2),
        };
        let a = cli_args(&klein(), &r, &opts, Path::new("/o.png"));
        let tail: Vec<&str> = a[6..].iter().map(String::as_str).collect();
        assert_eq!(
            tail,
            vec![
                "-p",
                "a cat",
                "-n",
                "blurry",
                "-W",
                "768",
                "-H",
                "768",
                "--steps",
                "4",
                "--cfg-scale",
                "7.5",
                "-s",
                "123",
                "-t",
                "4",
                "-b",
                "3",
                "-o",
                "/o.png"
            ]
        );
    }

    #[test]
    fn server_args_end_with_listen_address() {
        let opts = ProcessOptions {
            threads: Some(8),
            flags: Flags {
                clip_on_cpu: true,
                ..Flags::default()
            },
            batch_size: Some(1),
        };
        let a = server_args(&klein(), &opts, "127.0.0.1", 40001);
        assert_eq!(a, v("--diffusion-model /m/klein.gguf --llm /m/qwen.gguf --vae /m/vae.safetensors -t 8 --clip-on-cpu --listen-ip 127.0.0.1 --listen-port 40001"));
    }

    #[test]
    fn job_body_leaves_out_what_was_not_given() {
        let r = ImageRequest {
            prompt: "x".into(),
            negative_prompt: None,
            width: None,
            height: None,
            steps: None,
            cfg_scale: None,
            seed: 5,
            sampler: None,
            count: 2,
            ..req()
        };
        assert_eq!(
            server_job_body(&r, Some(4)),
            json!({"prompt": "x", "seed": 5, "batch_count": 2, "output_format": "png"})
        );
        // One image: batchSize is the batch count, as genai-electron sends it.
        assert_eq!(server_job_body(&req(), Some(3))["batch_count"], 3);
        assert_eq!(server_job_body(&req(), None)["batch_count"], 1);
        let b = server_job_body(&req(), None);
        assert_eq!(b["sample_params"]["sample_steps"], 4);
        assert_eq!(b["sample_params"]["guidance"]["txt_cfg"], 1.0);
        assert_eq!(b["sample_params"]["sample_method"], "euler");
        assert_eq!(b["width"], 768);
    }
}
