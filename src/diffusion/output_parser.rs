//! Parsing what sd-cli / sd-server print. Progress bars are `\r`-separated updates ending in
//! `\033[K`, and a newline comes only when a bar completes, so the splitter cuts on `\r` and `\n`
//! and strips ANSI sequences. Messages are matched on the text after ` - `, because the
//! `file:line` prefix changes between sd.cpp versions.

pub use crate::supervisor::lines::{strip_ansi, LineSplitter};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarKind {
    /// `=` bar with `it/s` or `s/it`: sampling steps (or VAE tiles).
    Step,
    /// Bar with a byte rate: tensors being loaded.
    Bytes,
}

/// What one segment of output means to the supervisor.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Progress {
        current: u32,
        total: u32,
        kind: BarKind,
    },
    /// A tagged log line `[LEVEL] file:line - message`, classified by its message.
    Log {
        level: Level,
        message: String,
        event: Event,
    },
    /// Anything else (usage text, C++ runtime aborts, GGML asserts).
    Other { text: String, event: Event },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    None,
    /// `loading <component> from '<path>'`.
    LoadingComponent {
        component: String,
        path: String,
    },
    /// `loading <component> from '<path>' failed`.
    ComponentFailed {
        component: String,
        path: String,
    },
    /// `file <p> not found` / `unknown format <p>`.
    FileProblem,
    /// `<Module> tensor '<name>' has wrong shape ...` / `... not in model metadata`.
    TensorProblem {
        module: String,
    },
    /// `model metadata validation failed`, `get sd version from file failed`, `new_sd_ctx_t failed`.
    ContextFailed,
    /// `Version: <name>`.
    Version(String),
    /// `listening on: <url>`.
    Listening(String),
    /// `sampling using ...`: the sampler is about to run (the first bar after this may still be a
    /// lazy tensor load).
    Sampling,
    /// `generating image: i/N - seed S`.
    ImageStart {
        index: u32,
        count: u32,
        seed: i64,
    },
    /// `decoding N latents`.
    Decoding,
    /// `decode_first_stage completed`.
    Decoded,
    /// `generate_image completed in ...`.
    GenerationDone,
    /// `sampling for image ... failed`, `generate failed`, `Diffusion model sampling failed`.
    GenerationFailed,
    /// `save result image <i> to '<path>' (success|failure)`.
    Saved {
        index: u32,
        path: String,
        ok: bool,
    },
    /// `GGML_ASSERT(...) failed`, `terminate called ...`, `what(): ...`.
    Fatal,
}

pub fn parse_line(segment: &str) -> Line {
    if let Some(p) = parse_bar(segment) {
        return p;
    }
    if let Some((level, message)) = split_tagged(segment) {
        let event = classify_message(message);
        return Line::Log {
            level,
            message: message.to_string(),
            event,
        };
    }
    let t = segment.trim();
    let event = if t.contains("GGML_ASSERT")
        || t.starts_with("terminate called")
        || t.starts_with("what():")
        || t.contains("Segmentation fault")
    {
        Event::Fatal
    } else {
        Event::None
    };
    Line::Other {
        text: t.to_string(),
        event,
    }
}

/// `  |=====>    | 3/20 - 1.21it/s` or `  |####   | 20/280 - 841.50MB/s`.
fn parse_bar(s: &str) -> Option<Line> {
    let t = s.trim_start();
    let rest = t.strip_prefix('|')?;
    let close = rest.find('|')?;
    let bar = &rest[..close];
    if !bar
        .chars()
        .all(|c| c == '=' || c == '>' || c == '#' || c == ' ')
    {
        return None;
    }
    let after = rest[close + 1..].trim();
    let (counts, rate) = after.split_once(" - ")?;
    let (cur, tot) = counts.trim().split_once('/')?;
    let current: u32 = cur.trim().parse().ok()?;
    let total: u32 = tot.trim().parse().ok()?;
    let rate = rate.trim();
    let kind = if rate.ends_with("it/s") || rate.ends_with("s/it") {
        BarKind::Step
    } else if rate.ends_with("B/s") {
        BarKind::Bytes
    } else {
        return None;
    };
    Some(Line::Progress {
        current,
        total,
        kind,
    })
}

fn split_tagged(s: &str) -> Option<(Level, &str)> {
    let t = s.trim_start();
    let rest = t.strip_prefix('[')?;
    let close = rest.find(']')?;
    let level = match rest[..close].trim() {
        "DEBUG" => Level::Debug,
        "INFO" => Level::Info,
        "WARN" => Level::Warn,
        "ERROR" => Level::Error,
        _ => return None,
    };
    let after = &rest[close + 1..];
    let message = match after.find(" - ") {
        Some(i) => &after[i + 3..],
        None => after.trim_start(),
    };
    Some((level, message.trim_end()))
}

fn quoted(s: &str) -> Option<(&str, &str)> {
    let start = s.find('\'')?;
    let end = s[start + 1..].find('\'')? + start + 1;
    Some((&s[start + 1..end], &s[end + 1..]))
}

fn classify_message(m: &str) -> Event {
    if let Some(rest) = m.strip_prefix("loading ") {
        if let Some(idx) = rest.find(" from '") {
            let component = rest[..idx].to_string();
            if let Some((path, tail)) = quoted(&rest[idx..]) {
                let path = path.to_string();
                if tail.trim() == "failed" {
                    return Event::ComponentFailed { component, path };
                }
                return Event::LoadingComponent { component, path };
            }
        }
    }
    if (m.starts_with("file ") && m.ends_with(" not found")) || m.starts_with("unknown format ") {
        return Event::FileProblem;
    }
    if let Some(idx) = m.find(" tensor '") {
        if m.contains("has wrong shape") || m.contains("not in model metadata") {
            return Event::TensorProblem {
                module: m[..idx].to_string(),
            };
        }
    }
    // Later sd.cpp versions find a shape mismatch while loading and name no module:
    // `tensor 'first_stage_model.decoder.conv_in.weight' has wrong shape in model file: ...`.
    if let Some(name) = m.strip_prefix("tensor '") {
        if m.contains("has wrong shape") {
            return Event::TensorProblem {
                module: module_of_tensor(name).to_string(),
            };
        }
    }
    if m.contains("model metadata validation failed")
        || m.starts_with("get sd version from file failed")
        || m.contains("new_sd_ctx_t failed")
    {
        return Event::ContextFailed;
    }
    if let Some(v) = m.strip_prefix("Version: ") {
        return Event::Version(v.trim().to_string());
    }
    if let Some(url) = m.strip_prefix("listening on: ") {
        return Event::Listening(url.trim().to_string());
    }
    if m.starts_with("sampling using ") {
        return Event::Sampling;
    }
    if let Some(rest) = m.strip_prefix("generating image: ") {
        // "1/2 - seed 7"
        let (counts, seed) = rest.split_once(" - seed ").unwrap_or((rest, "0"));
        if let Some((i, n)) = counts.trim().split_once('/') {
            if let (Ok(index), Ok(count)) = (i.trim().parse(), n.trim().parse()) {
                return Event::ImageStart {
                    index,
                    count,
                    seed: seed.trim().parse().unwrap_or(0),
                };
            }
        }
    }
    if m.starts_with("decoding ") && m.contains("latent") {
        return Event::Decoding;
    }
    if m.starts_with("decode_first_stage completed") {
        return Event::Decoded;
    }
    if m.starts_with("generate_image completed") {
        return Event::GenerationDone;
    }
    if (m.starts_with("sampling for image") && m.contains("failed"))
        || m.starts_with("generate failed")
        || m.contains("sampling failed")
    {
        return Event::GenerationFailed;
    }
    if let Some(rest) = m.strip_prefix("save result image ") {
        let index = rest
            .split_whitespace()
            .next()
            .and_then(|i| i.parse().ok())
            .unwrap_or(0);
        if let Some((path, tail)) = quoted(rest) {
            return Event::Saved {
                index,
                path: path.to_string(),
                ok: tail.contains("(success)"),
            };
        }
    }
    Event::None
}

/// Collects the lines that explain a failed start or a failed run, so the error can name the
/// component and quote sd.cpp's own words.
#[derive(Debug, Default, Clone)]
pub struct FailureNotes {
    /// `loading X from 'p' failed` (and the file problem just before it).
    pub failed_components: Vec<(String, String)>,
    /// Modules with tensor problems, in first-seen order (e.g. `VAE`).
    pub tensor_modules: Vec<String>,
    /// The quoted lines, capped.
    pub lines: Vec<String>,
    pub tensor_line_count: usize,
    /// The component being loaded most recently (`loading llm from ...`).
    pub last_loading: Option<(String, String)>,
    pub context_failed: bool,
    pub fatal: bool,
    pub version: Option<String>,
}

const MAX_NOTE_LINES: usize = 12;

impl FailureNotes {
    /// Records a parsed line if it says something about a failure.
    pub fn observe(&mut self, line: &Line) {
        let (text, event) = match line {
            Line::Log { message, event, .. } => (message.as_str(), event),
            Line::Other { text, event } => (text.as_str(), event),
            Line::Progress { .. } => return,
        };
        match event {
            Event::LoadingComponent { component, path } => {
                self.last_loading = Some((component.clone(), path.clone()));
            }
            Event::ComponentFailed { component, path } => {
                self.failed_components
                    .push((component.clone(), path.clone()));
                self.push(text);
            }
            Event::FileProblem => self.push(text),
            Event::TensorProblem { module } => {
                self.tensor_line_count += 1;
                if !self.tensor_modules.contains(module) {
                    self.tensor_modules.push(module.clone());
                }
                self.push(text);
            }
            Event::ContextFailed => {
                self.context_failed = true;
                self.push(text);
            }
            Event::Fatal | Event::GenerationFailed => {
                self.fatal = true;
                self.push(text);
            }
            Event::Version(v) => self.version = Some(v.clone()),
            _ => {}
        }
    }

    fn push(&mut self, text: &str) {
        if self.lines.len() < MAX_NOTE_LINES {
            self.lines.push(text.to_string());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// Maps an sd.cpp component name (`diffusion model`, `llm`, `vae`, `clip_l`) or tensor module
/// (`VAE`, `Conditioner model`, `Diffusion model`) to the record's role name.
/// The module name sd.cpp's validation lines use, from a tensor's converted name.
fn module_of_tensor(name: &str) -> &'static str {
    if name.starts_with("first_stage_model.") || name.starts_with("vae.") {
        "VAE"
    } else if name.starts_with("tae.") {
        "TAE"
    } else if name.starts_with("model.diffusion_model.") {
        "Diffusion model"
    } else if name.starts_with("cond_stage_model") || name.starts_with("text_encoders.") {
        "Conditioner model"
    } else {
        "model"
    }
}

pub fn role_of(sd_name: &str) -> Option<&'static str> {
    let n = sd_name.to_ascii_lowercase();
    let n = n.trim();
    Some(match n {
        "diffusion model" => "diffusion_model",
        "llm" => "llm",
        "llm vision" => "llm_vision",
        "vae" | "tae" => "vae",
        "clip_l" => "clip_l",
        "clip_g" => "clip_g",
        "t5xxl" => "t5xxl",
        "model" => "model",
        _ if n.starts_with("vae") || n.starts_with("tae") => "vae",
        _ if n.starts_with("diffusion") => "diffusion_model",
        _ if n.starts_with("conditioner") || n.starts_with("text encoder") => "text encoder",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("__test__/fixtures/sdcpp-output")
            .join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn parse_all(bytes: &[u8]) -> Vec<Line> {
        let mut s = LineSplitter::new();
        let mut segs = s.feed(bytes);
        segs.extend(s.finish());
        segs.iter().map(|l| parse_line(l)).collect()
    }

    #[test]
    fn splitter_cuts_on_cr_and_lf_and_strips_erase_codes() {
        let mut s = LineSplitter::new();
        let a = s.feed(b"\r  |====>   | 1/3 - 2.88s/it\x1b[K\r  |=====");
        assert_eq!(a, vec!["  |====>   | 1/3 - 2.88s/it".to_string()]);
        let b = s.feed(b"===| 3/3 - 3.60s/it\x1b[K\n[INFO ] x.cpp:1 - hi\n");
        assert_eq!(b.len(), 2);
        assert_eq!(
            parse_line(&b[0]),
            Line::Progress {
                current: 3,
                total: 3,
                kind: BarKind::Step
            }
        );
        assert!(s.finish().is_empty());
    }

    #[test]
    fn colour_codes_are_removed() {
        assert_eq!(
            strip_ansi("\x1b[34;1m[INFO ]\x1b[0m main.cpp:1 - x"),
            "[INFO ] main.cpp:1 - x"
        );
    }

    #[test]
    fn server_output_gives_steps_bytes_and_stages() {
        let lines = parse_all(&golden("srv.out"));
        let steps: Vec<(u32, u32)> = lines
            .iter()
            .filter_map(|l| match l {
                Line::Progress {
                    current,
                    total,
                    kind: BarKind::Step,
                } => Some((*current, *total)),
                _ => None,
            })
            .collect();
        assert_eq!(
            steps,
            vec![(1, 2), (2, 2), (1, 3), (2, 3), (3, 3), (1, 2), (2, 2)]
        );
        let bytes = lines
            .iter()
            .filter(|l| {
                matches!(
                    l,
                    Line::Progress {
                        kind: BarKind::Bytes,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(bytes, 7);
        let events: Vec<&Event> = lines
            .iter()
            .filter_map(|l| match l {
                Line::Log { event, .. } if *event != Event::None => Some(event),
                _ => None,
            })
            .collect();
        assert!(events.contains(&&Event::Listening("http://127.0.0.1:18234".into())));
        assert!(events.contains(&&Event::Version("SDXS (512-DS)".into())));
        assert_eq!(
            events
                .iter()
                .filter(|e| ***e == Event::GenerationDone)
                .count(),
            3
        );
        assert!(events.contains(&&Event::ImageStart {
            index: 1,
            count: 1,
            seed: 5
        }));
    }

    #[test]
    fn saved_paths_come_from_the_save_lines() {
        let saved = |name: &str| -> Vec<(u32, String, bool)> {
            parse_all(&golden(name))
                .into_iter()
                .filter_map(|l| match l {
                    Line::Log {
                        event: Event::Saved { index, path, ok },
                        ..
                    } => Some((index, path, ok)),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(
            saved("gen1.out"),
            vec![(0, "/out/gen1.png".to_string(), true)]
        );
        assert_eq!(
            saved("e1.out"),
            vec![(0, "/out/ext/noext.png".to_string(), true)]
        );
        assert_eq!(
            saved("e3.out"),
            vec![
                (0, "/out/ext/seq_000.png".to_string(), true),
                (1, "/out/ext/seq_001.png".to_string(), true)
            ]
        );
        assert_eq!(
            saved("sysfail.out"),
            vec![(0, "/sys/out.png".to_string(), false)]
        );
    }

    #[test]
    fn batch_output_restarts_steps_per_image() {
        let lines = parse_all(&golden("batch.out"));
        let starts: Vec<(u32, u32, i64)> = lines
            .iter()
            .filter_map(|l| match l {
                Line::Log {
                    event: Event::ImageStart { index, count, seed },
                    ..
                } => Some((*index, *count, *seed)),
                _ => None,
            })
            .collect();
        assert_eq!(starts, vec![(1, 2, 7), (2, 2, 8)]);
    }

    #[test]
    fn missing_flux2_components_are_named() {
        let mut notes = FailureNotes::default();
        for l in parse_all(&golden("flux2.out"))
            .iter()
            .chain(parse_all(&golden("flux2.err")).iter())
        {
            notes.observe(l);
        }
        let roles: Vec<_> = notes
            .failed_components
            .iter()
            .map(|(c, _)| role_of(c).unwrap())
            .collect();
        assert_eq!(roles, vec!["diffusion_model", "llm", "vae"]);
        assert!(notes.context_failed);
        assert!(notes.lines.iter().any(|l| l == "file x.gguf not found"));
        assert!(notes
            .lines
            .iter()
            .any(|l| l.starts_with("get sd version from file failed")));
    }

    #[test]
    fn garbage_files_and_wrong_shapes_are_noted() {
        let mut notes = FailureNotes::default();
        for l in parse_all(&golden("garb.out")) {
            notes.observe(&l);
        }
        assert_eq!(notes.failed_components.len(), 2);
        assert!(notes.lines[0].starts_with("unknown format /models/garbage.gguf"));

        let mut notes = FailureNotes::default();
        for l in parse_all(&golden("badtae.out"))
            .iter()
            .chain(parse_all(&golden("badtae.err")).iter())
        {
            notes.observe(l);
        }
        assert_eq!(notes.tensor_modules, vec!["VAE".to_string()]);
        assert_eq!(role_of("VAE"), Some("vae"));
        assert_eq!(notes.last_loading.as_ref().unwrap().0, "tae");
        assert!(notes
            .lines
            .iter()
            .any(|l| l.contains("has wrong shape in model metadata: got [3, 3, 16, 64]")));
        assert!(notes.context_failed);
    }

    #[test]
    fn load_time_shape_error_of_later_versions_names_the_vae() {
        // sd-cli of stable-diffusion-cpp-python 0.4.7 given a Flux 1 VAE for Flux 2 Klein.
        let mut notes = FailureNotes::default();
        for l in parse_all(&golden("flux1vae-0.4.7.out"))
            .iter()
            .chain(parse_all(&golden("flux1vae-0.4.7.err")).iter())
        {
            notes.observe(l);
        }
        assert_eq!(notes.tensor_modules, vec!["VAE".to_string()]);
        assert_eq!(notes.tensor_line_count, 1);
        assert!(notes.context_failed);
    }

    #[test]
    fn server_start_failure_is_recognised() {
        let mut notes = FailureNotes::default();
        for l in parse_all(&golden("srvfail.out"))
            .iter()
            .chain(parse_all(&golden("srvfail.err")).iter())
        {
            notes.observe(l);
        }
        assert_eq!(notes.failed_components.len(), 2);
        assert!(notes.context_failed);
        assert!(notes.lines.iter().any(|l| l == "new_sd_ctx_t failed"));
    }

    #[test]
    fn aborts_are_fatal() {
        for text in [
            "ggml.c:3286: GGML_ASSERT(ggml_can_mul_mat(a, b)) failed",
            "terminate called after throwing an instance of 'std::invalid_argument'",
        ] {
            let mut notes = FailureNotes::default();
            notes.observe(&parse_line(text));
            assert!(notes.fatal, "{text}");
        }
        assert!(matches!(
            parse_line("usage: sd-cli [options]"),
            Line::Other {
                event: Event::None,
                ..
            }
        ));
    }

    #[test]
    fn killed_run_has_no_save_line() {
        let lines = parse_all(&golden("sig.out"));
        assert!(!lines.iter().any(|l| matches!(
            l,
            Line::Log {
                event: Event::Saved { .. },
                ..
            }
        )));
    }
}
