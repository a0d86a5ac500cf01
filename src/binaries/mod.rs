//! Provisioning llama.cpp and stable-diffusion.cpp builds (genai-electron 0.26's BinaryManager):
//! a directory override wins and downloads nothing; otherwise an install whose `.validation.json`
//! matches the pinned version and the program's sha256 is used as is (no test). Anything else is
//! validated, and if it fails (or nothing is there) each variant of this platform is tried in
//! order: CUDA only with an NVIDIA GPU, then Vulkan, then CPU (Metal on Apple Silicon). A variant
//! is downloaded (resumable, sha256 checked), extracted safely, validated in a candidate folder
//! and only then swapped in.

pub mod extract;
pub mod fetch;
pub mod install;
pub mod pins;
pub mod validate;

use crate::download::CancelToken;
use crate::error::{Error, Result};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc::UnboundedSender;

use install::{DepEntry, InstallLock, ValidationRecord};
use pins::{ArchiveFormat, Kind, Release, Variant};

/// What `start()` hands in. Environment variables are read by the caller (JS thread).
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub kind: Option<Kind>,
    pub user_data: PathBuf,
    pub force_validation: bool,
    /// An NVIDIA GPU with CUDA was detected (CUDA variants are tried only then).
    pub cuda: bool,
    /// Model arguments for phase 2 (`-m <file>` or component flags); none skips phase 2.
    pub model_args: Option<Vec<String>>,
    /// `binaryPath` / `GENAI_ELECTRON_*_BINARY_DIR`: use this folder, download nothing.
    pub override_dir: Option<PathBuf>,
    /// `GENAI_ELECTRON_BINARY_MANIFEST`.
    pub manifest_file: Option<PathBuf>,
    /// `GENAI_ELECTRON_BINARY_MIRROR`.
    pub mirror: Option<String>,
}

/// Where the usable build is and how it was obtained.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub dir: PathBuf,
    pub variant: Option<String>,
    /// `override`, `cached` (no test), `validated` (existing install tested) or `installed`.
    pub action: &'static str,
}

impl Outcome {
    pub fn to_json(&self) -> Value {
        json!({ "dir": self.dir.display().to_string(), "variant": self.variant, "action": self.action })
    }
}

/// `binary-log` and `binary-progress` events, as JSON for the JS side.
#[derive(Clone, Default)]
pub struct Sink(pub Option<UnboundedSender<Value>>);

impl Sink {
    pub fn log(&self, level: &str, message: impl Into<String>) {
        if let Some(tx) = &self.0 {
            let _ =
                tx.send(json!({ "type": "binary-log", "level": level, "message": message.into() }));
        }
    }

    pub fn progress(&self, phase: &str, file: &str, extra: Value) {
        if let Some(tx) = &self.0 {
            let mut ev = Map::new();
            ev.insert("type".into(), json!("binary-progress"));
            ev.insert("phase".into(), json!(phase));
            ev.insert("file".into(), json!(file));
            if let Value::Object(m) = extra {
                ev.extend(m);
            }
            let _ = tx.send(Value::Object(ev));
        }
    }
}

/// The disk filled up (or will not hold the archive): a BinaryError that says so.
pub fn no_space(path: &Path, why: &str) -> Error {
    Error::binary(
        format!("Not enough disk space to install the binary ({why})"),
        json!({
            "code": "BINARY_NO_DISK_SPACE",
            "path": path.display().to_string(),
            "suggestion": "Free some space on this volume (a release needs a few hundred MB while it installs), then start again.",
        }),
    )
}

fn is_fatal(e: &Error) -> bool {
    matches!(e, Error::Binary { details, .. }
        if details.get("code").and_then(Value::as_str) == Some("BINARY_NO_DISK_SPACE"))
}

/// Makes sure a usable build of `req.kind` is installed; returns its folder.
pub async fn ensure(req: Request, sink: Sink) -> Result<Outcome> {
    let kind = req
        .kind
        .ok_or_else(|| Error::InvalidArgument("binary type missing".into()))?;
    if let Some(dir) = &req.override_dir {
        // Used as is; the program lookup (which logs the program it uses, or reports every place
        // it searched) judges the folder.
        return Ok(Outcome {
            dir: dir.clone(),
            variant: None,
            action: "override",
        });
    }
    let release = pins::Manifest::load(kind, req.manifest_file.as_deref())?;
    let platform = pins::platform_key();
    let all = release.variants.get(&platform).cloned().unwrap_or_default();
    if all.is_empty() {
        let why = if kind == Kind::Diffusion && platform == "darwin-x64" {
            " (upstream stable-diffusion.cpp publishes no Intel-macOS build)"
        } else {
            ""
        };
        return Err(Error::binary(
            format!(
                "No {} build is available for {platform}{why}",
                kind.project()
            ),
            json!({
                "code": "BINARY_NO_BUILD",
                "platform": platform,
                "suggestion": format!("Build {} from source and set binaryPath (or GENAI_ELECTRON_{}_BINARY_DIR) to its folder, or list a build for {platform} in a GENAI_ELECTRON_BINARY_MANIFEST file.", kind.project(), if kind == Kind::Llama { "LLAMA" } else { "SD" }),
            }),
        ));
    }
    let variants: Vec<Variant> = if req.cuda {
        all.clone()
    } else {
        let kept: Vec<Variant> = all.iter().filter(|v| v.kind != "cuda").cloned().collect();
        if kept.len() < all.len() {
            sink.log(
                "info",
                "Skipping CUDA variants: no NVIDIA GPU with CUDA detected",
            );
        }
        kept
    };
    if req.cuda && kind == Kind::Diffusion && !all.iter().any(|v| v.kind == "cuda") {
        sink.log("warn", format!("No CUDA build of stable-diffusion.cpp for {platform}; using the next variant (performance may be lower; build from source for CUDA)"));
    }
    if variants.is_empty() {
        return Err(Error::binary(
            format!("No usable {} build for {platform}: every variant needs CUDA and no NVIDIA GPU was found", kind.project()),
            json!({ "code": "BINARY_NO_BUILD", "platform": platform, "suggestion": "Install the NVIDIA driver, or set binaryPath to a build for this machine." }),
        ));
    }

    let root = req.user_data.join("binaries");
    std::fs::create_dir_all(&root)
        .map_err(|e| Error::io("Failed to create directory", &root, &e))?;
    let lock_path = root.join(format!(".{}.lock", kind.dir_name()));
    let _lock = InstallLock::acquire(lock_path, || {
        sink.log(
            "info",
            "Another process is installing this binary; waiting for it",
        );
    })
    .await?;

    let install_dir = root.join(kind.dir_name());
    let ctx = Ctx {
        kind,
        release: &release,
        platform: &platform,
        root: &root,
        install_dir: &install_dir,
        req: &req,
        sink: &sink,
    };
    let fallback = match ctx.check_existing().await? {
        Existing::Use(outcome) => return Ok(outcome),
        Existing::Replace(fallback) => fallback,
    };
    let mut errors: Vec<(String, Error)> = Vec::new();
    for v in &variants {
        sink.log(
            "info",
            format!("Trying {} variant for {platform}...", v.kind),
        );
        match ctx.install_variant(v).await {
            Ok(outcome) => {
                sink.log("info", format!("Successfully installed {} variant", v.kind));
                let _ = std::fs::remove_dir_all(ctx.staging());
                return Ok(outcome);
            }
            Err(e) if is_fatal(&e) => {
                if let Some(previous) = fallback {
                    sink.log("warn", format!("{e}; keeping the installed build"));
                    return Ok(previous);
                }
                return Err(e);
            }
            Err(e) => {
                sink.log("warn", format!("Failed to use {} variant: {e}", v.kind));
                errors.push((v.kind.clone(), e));
            }
        }
    }
    let summary: Vec<String> = errors.iter().map(|(k, e)| format!("{k}: {e}")).collect();
    if let Some(previous) = fallback {
        sink.log(
            "warn",
            format!(
                "Could not install {} {} ({}); keeping the installed build",
                kind.project(),
                release.version,
                summary.join("; ")
            ),
        );
        return Ok(previous);
    }
    let list: Vec<Value> = errors
        .iter()
        .map(
            |(k, e)| json!({ "variant": k, "message": e.to_string(), "details": error_details(e) }),
        )
        .collect();
    Err(Error::binary(
        format!(
            "Every {} variant for {platform} failed. {}",
            kind.project(),
            summary.join("; ")
        ),
        json!({
            "code": "BINARY_ALL_VARIANTS_FAILED",
            "platform": platform,
            "errors": summary.join("; "),
            "variants": list,
            "suggestion": "Check the GPU driver (Vulkan/CUDA) and the network, or set binaryPath to a build that runs on this machine.",
        }),
    ))
}

fn error_details(e: &Error) -> Value {
    match e {
        Error::Binary { details, .. }
        | Error::Download { details, .. }
        | Error::FileSystem { details, .. } => Value::Object(details.clone()),
        _ => Value::Null,
    }
}

/// What to do with the install already in place.
enum Existing {
    /// Usable as is.
    Use(Outcome),
    /// Missing, broken or outdated; an outdated but intact one is the fallback.
    Replace(Option<Outcome>),
}

struct Ctx<'a> {
    kind: Kind,
    release: &'a Release,
    platform: &'a str,
    root: &'a Path,
    install_dir: &'a Path,
    req: &'a Request,
    sink: &'a Sink,
}

fn sha256(p: &Path) -> Result<String> {
    crate::checksum::sha256_file(p).map_err(|e| Error::io("Failed to read", p, &e))
}

async fn sha256_async(p: PathBuf) -> Result<String> {
    tokio::task::spawn_blocking(move || sha256(&p))
        .await
        .map_err(|e| Error::fs(format!("internal task failed: {e}"), json!({})))?
}

impl Ctx<'_> {
    fn program(&self, v: Option<&Variant>) -> String {
        match v {
            Some(v) => self.release.programs(v)[0].clone(),
            None => self.release.binaries[0].clone(),
        }
    }

    /// Archives (and their `.partial`s) wait here between attempts, so a download resumes.
    fn staging(&self) -> PathBuf {
        self.root
            .join(format!(".{}.downloads", self.kind.dir_name()))
    }

    /// Runs phase 1, and phase 2 when a model was given.
    async fn test(&self, program: &Path) -> std::result::Result<bool, validate::Failure> {
        self.sink
            .log("info", "Phase 1: Testing binary basic validation...");
        let flag = validate::phase1(self.kind, program)
            .await
            .inspect_err(|f| {
                self.sink
                    .log("error", format!("Phase 1: ✗ Basic validation failed: {f}"));
            })?;
        self.sink.log(
            "info",
            format!("Phase 1: ✓ Binary validation passed ({flag})"),
        );
        let Some(args) = self.req.model_args.as_ref().filter(|a| !a.is_empty()) else {
            self.sink.log(
                "info",
                "No test model provided, skipping Phase 2 (GPU functionality test)",
            );
            return Ok(false);
        };
        self.sink.log(
            "info",
            "Phase 2: Testing GPU functionality with real inference...",
        );
        validate::phase2(self.kind, program, args)
            .await
            .inspect_err(|f| {
                self.sink.log(
                    "warn",
                    format!("Phase 2: ✗ Real functionality test failed: {f}"),
                );
            })?;
        self.sink
            .log("info", "Phase 2: ✓ GPU functionality test passed");
        Ok(true)
    }

    fn record(&self, variant: String, checksum: String, phase2: bool) -> ValidationRecord {
        ValidationRecord {
            variant,
            checksum,
            validated_at: install::now_iso(),
            phase1_passed: true,
            phase2_passed: phase2.then_some(true),
            version: Some(self.release.version.clone()),
            extra: Map::new(),
        }
    }

    /// An existing install: used as is when its record matches, tested otherwise.
    async fn check_existing(&self) -> Result<Existing> {
        let name = self.program(None);
        let Some(program) = Some(
            self.install_dir
                .join(format!("{name}{}", std::env::consts::EXE_SUFFIX)),
        )
        .filter(|p| p.is_file()) else {
            return Ok(Existing::Replace(None));
        };
        let cache = install::read_validation(self.install_dir);
        let force = self.req.force_validation;
        if let Some(c) = &cache {
            if !force && c.version.as_deref() != Some(self.release.version.as_str()) {
                self.sink.log(
                    "info",
                    format!(
                        "Binary version changed ({} → {}), re-downloading...",
                        c.version.as_deref().unwrap_or("unknown"),
                        self.release.version
                    ),
                );
                // Still intact: kept as the fallback should the new release fail to install.
                let intact = sha256_async(program.clone())
                    .await
                    .is_ok_and(|sum| c.checksum.eq_ignore_ascii_case(&sum));
                return Ok(Existing::Replace(intact.then(|| Outcome {
                    dir: self.install_dir.to_path_buf(),
                    variant: Some(c.variant.clone()),
                    action: "cached",
                })));
            }
        }
        if force {
            self.sink
                .log("info", "Force validation requested, re-running tests...");
        }
        let checksum = sha256_async(program.clone()).await?;
        if let Some(c) = cache.as_ref().filter(|_| !force) {
            if c.checksum.eq_ignore_ascii_case(&checksum) {
                self.sink
                    .log("info", "Using cached validation result (binary verified)");
                self.sink
                    .log("info", format!("Last validated: {}", c.validated_at));
                return Ok(Existing::Use(Outcome {
                    dir: self.install_dir.to_path_buf(),
                    variant: Some(c.variant.clone()),
                    action: "cached",
                }));
            }
            self.sink
                .log("warn", "Binary checksum mismatch, re-validating...");
        }
        install::make_executable(&program);
        match self.test(&program).await {
            Ok(phase2) => {
                let variant = cache
                    .as_ref()
                    .map(|c| c.variant.clone())
                    .or_else(|| install::read_variant(self.install_dir))
                    .unwrap_or_else(|| "unknown".into());
                let mut rec = self.record(variant.clone(), checksum, phase2);
                if let Some(c) = cache {
                    rec.extra = c.extra;
                }
                install::write_validation(self.install_dir, &rec)?;
                self.sink.log("info", "Binary validated successfully");
                Ok(Existing::Use(Outcome {
                    dir: self.install_dir.to_path_buf(),
                    variant: Some(variant),
                    action: "validated",
                }))
            }
            Err(_) => {
                self.sink
                    .log("warn", "Existing binary not working, re-downloading...");
                Ok(Existing::Replace(None))
            }
        }
    }

    /// Downloads `url` into the staging folder (reusing a verified copy), with progress.
    async fn archive(
        &self,
        url: &str,
        checksum: &str,
        label: &str,
        log_label: &str,
    ) -> Result<PathBuf> {
        let url = pins::apply_mirror(url, self.req.mirror.as_deref())?;
        let fmt = ArchiveFormat::of(&url).ok_or_else(|| {
            Error::binary(format!("{url} is not a .zip or .tar.gz archive"), json!({}))
        })?;
        let staging = self.staging();
        std::fs::create_dir_all(&staging)
            .map_err(|e| Error::io("Failed to create directory", &staging, &e))?;
        let dest = staging.join(format!(
            "{}{}",
            &checksum[..16.min(checksum.len())].to_ascii_lowercase(),
            fmt.extension()
        ));
        if dest.is_file() {
            self.sink.progress("verifying", label, json!({}));
            if sha256_async(dest.clone())
                .await?
                .eq_ignore_ascii_case(checksum)
            {
                self.sink
                    .log("info", format!("Reusing verified {log_label} archive"));
                return Ok(dest);
            }
            self.sink.log(
                "warn",
                format!("Discarding checksum-mismatched {log_label} archive"),
            );
            let _ = std::fs::remove_file(&dest);
        }
        self.sink.log("info", format!("Downloading {log_label}..."));
        let mut last_pct: i64 = -1;
        let mut last_logged: i64 = -10;
        let sink = self.sink.clone();
        let (label_s, log_s) = (label.to_string(), log_label.to_string());
        let mut on_bytes = move |done: u64, total: u64| {
            let pct = if total > 0 {
                ((done as f64 / total as f64) * 100.0).floor() as i64
            } else {
                0
            };
            if pct != last_pct && total > 0 {
                last_pct = pct;
                sink.progress(
                    "downloading",
                    &label_s,
                    json!({ "downloaded": done as f64, "total": total as f64, "percent": pct }),
                );
                if pct >= last_logged + 10 {
                    last_logged = pct;
                    sink.log(
                        "info",
                        format!(
                            "Downloading {log_s}: {:.1}%",
                            done as f64 / total as f64 * 100.0
                        ),
                    );
                }
            }
        };
        fetch::fetch_archive(&url, &dest, checksum, CancelToken::new(), &mut on_bytes).await?;
        self.sink.progress("verifying", label, json!({}));
        Ok(dest)
    }

    /// Extracts with progress events, on a blocking thread.
    async fn unpack(&self, archive: PathBuf, into: PathBuf, label: &str) -> Result<Vec<String>> {
        let fmt = ArchiveFormat::of_path(&archive.to_string_lossy()).unwrap_or(ArchiveFormat::Zip);
        self.sink.progress("extracting", label, json!({}));
        let sink = self.sink.clone();
        let label_s = label.to_string();
        let files = tokio::task::spawn_blocking(move || {
            let mut last = -1i64;
            extract::extract(&archive, fmt, &into, extract::Limits::default(), &mut |p| {
                let pct = p
                    .written_bytes
                    .saturating_mul(100)
                    .checked_div(p.total_uncompressed_bytes)
                    .or_else(|| (p.completed_entries * 100).checked_div(p.total_entries))
                    .unwrap_or(0)
                    .min(100) as i64;
                if pct != last || p.completed_entries == p.total_entries {
                    last = pct;
                    sink.progress(
                        "extracting",
                        &label_s,
                        json!({
                            "completedEntries": p.completed_entries as f64,
                            "totalEntries": p.total_entries as f64,
                            "writtenBytes": p.written_bytes as f64,
                            "totalUncompressedBytes": p.total_uncompressed_bytes as f64,
                            "percent": pct,
                        }),
                    );
                }
            })
        })
        .await
        .map_err(|e| Error::fs(format!("internal task failed: {e}"), json!({})))??;
        self.sink.progress("finalizing", label, json!({}));
        Ok(files)
    }

    async fn install_variant(&self, v: &Variant) -> Result<Outcome> {
        let tag = format!("{}-{}-{}", std::process::id(), fastrand::u32(..), v.kind);
        let work = self
            .root
            .join(format!(".{}.work-{tag}", self.kind.dir_name()));
        let candidate = self
            .root
            .join(format!(".{}.candidate-{tag}", self.kind.dir_name()));
        let result = self.assemble(v, &work, &candidate).await;
        let _ = std::fs::remove_dir_all(&work);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&candidate);
        }
        result
    }

    async fn assemble(&self, v: &Variant, work: &Path, candidate: &Path) -> Result<Outcome> {
        // Dependencies (the CUDA runtime on Windows): an installed copy with the same checksum
        // is reused, else the archive is downloaded and extracted.
        let installed_deps = install::read_deps(self.install_dir);
        let deps_dir = work.join("deps");
        let mut dep_entries: Vec<DepEntry> = Vec::new();
        let mut dep_sources: Vec<(PathBuf, String)> = Vec::new();
        for (i, d) in v.dependencies.iter().enumerate() {
            let label = d
                .description
                .clone()
                .unwrap_or_else(|| format!("Dependency {}", i + 1));
            let reuse = installed_deps.iter().find(|e| {
                e.checksum.eq_ignore_ascii_case(&d.checksum)
                    && !e.files.is_empty()
                    && e.files.iter().all(|f| {
                        extract::safe_relative(f).ok().flatten().is_some()
                            && self.install_dir.join(f).is_file()
                    })
            });
            let files = if let Some(e) = reuse {
                self.sink
                    .log("info", format!("Using installed {label} (checksum match)"));
                for f in &e.files {
                    dep_sources.push((self.install_dir.join(f), f.clone()));
                }
                e.files.clone()
            } else {
                let archive = self.archive(&d.url, &d.checksum, &label, &label).await?;
                let into = deps_dir.join(i.to_string());
                let files = self.unpack(archive, into.clone(), &label).await?;
                if files.is_empty() {
                    return Err(Error::binary(
                        format!("Dependency archive {} holds no files", d.url),
                        json!({ "dependency": d.url }),
                    ));
                }
                for f in &files {
                    dep_sources.push((into.join(f), f.clone()));
                }
                files
            };
            dep_entries.push(DepEntry {
                url: d.url.clone(),
                checksum: d.checksum.to_ascii_lowercase(),
                files,
            });
        }

        let archive = self
            .archive(&v.url, &v.checksum, "binary", &format!("{} binary", v.kind))
            .await?;
        let main = work.join("main");
        let files = self.unpack(archive.clone(), main.clone(), "binary").await?;
        let name = self.program(Some(v));
        let Some(found) = install::find_program(&main, &name) else {
            return Err(Error::binary(
                format!("The {} archive holds no {name} program", v.kind),
                json!({ "url": v.url, "files": files.iter().take(50).collect::<Vec<_>>(), "suggestion": "Check the manifest's \"binaries\" names for this archive." }),
            ));
        };
        // The folder holding the program becomes the install, plus the archive's top-level files.
        let bin_dir = found.parent().unwrap_or(&main).to_path_buf();
        if bin_dir != main {
            if let Ok(rd) = std::fs::read_dir(&main) {
                for e in rd.flatten() {
                    let to = bin_dir.join(e.file_name());
                    if e.file_type().map(|t| t.is_file()).unwrap_or(false) && !to.exists() {
                        let _ = std::fs::rename(e.path(), to);
                    }
                }
            }
        }
        std::fs::rename(&bin_dir, candidate)
            .map_err(|e| Error::io("Failed to stage the new install", candidate, &e))?;
        let program = candidate.join(found.file_name().expect("a file"));
        for p in self.release.programs(v) {
            match install::find_program(candidate, p) {
                Some(path) if path.parent() == Some(candidate) => install::make_executable(&path),
                _ => {
                    return Err(Error::binary(
                        format!("The {} archive holds no {p} beside {name}", v.kind),
                        json!({ "url": v.url, "suggestion": "Check the manifest's \"binaries\" names for this archive." }),
                    ))
                }
            }
        }
        for (src, rel) in &dep_sources {
            let to = candidate.join(rel);
            if to.exists() {
                return Err(Error::binary(
                    format!("The {} archive and its dependency both hold {rel}", v.kind),
                    json!({ "file": rel, "suggestion": "Use binary and dependency archives with disjoint file paths." }),
                ));
            }
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io("Failed to create directory", parent, &e))?;
            }
            std::fs::copy(src, &to).map_err(|e| Error::io("Failed to copy", src, &e))?;
        }

        self.sink.progress("testing", "binary", json!({}));
        let phase2 = match self.test(&program).await {
            Ok(p2) => p2,
            Err(f) => {
                // The archive is fine but the build does not run here: no use keeping it.
                let _ = std::fs::remove_file(&archive);
                return Err(Error::binary(
                    format!("Validation of the {} build failed: {}", v.kind, f.reason),
                    json!({
                        "code": "BINARY_VALIDATION_FAILED",
                        "variant": v.kind,
                        "reason": f.reason,
                        "outputTail": f.tail,
                        "suggestion": "This build does not run on this machine (driver or GPU support missing); the next variant is tried.",
                    }),
                ));
            }
        };
        self.sink.progress("installing", "binary", json!({}));
        install::write_deps(candidate, &dep_entries)?;
        install::write_variant(candidate, &v.kind, self.platform)?;
        let checksum = sha256_async(program.clone()).await?;
        install::write_validation(candidate, &self.record(v.kind.clone(), checksum, phase2))?;
        install::swap_in(candidate, self.install_dir)?;
        Ok(Outcome {
            dir: self.install_dir.to_path_buf(),
            variant: Some(v.kind.clone()),
            action: "installed",
        })
    }
}
