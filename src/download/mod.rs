//! `downloadModel(config)`: validate -> plan -> lock -> preflight (sizes, hashes, disk space,
//! existing files) -> transfer each file (resumable, verified) -> write the record last.
//!
//! The record is what makes a model exist: it is written atomically after every file is in place,
//! so a crash or a failure at any point leaves no record, only files the next attempt reuses
//! (complete files are verified and skipped, `.partial` files are resumed).

pub mod buffers;
pub mod cancel;
pub mod config;
pub mod net;
mod page_cache;
pub mod parallel;
pub mod plan;
pub mod preflight;
pub mod progress;
pub mod ranges;
pub mod resume;
pub mod retry;
mod sniff;
pub mod source;
pub mod transfer;
mod writer;

pub use cancel::CancelToken;
pub use progress::{Event, Events, Phase};

use crate::debug_log;
use crate::error::{Error, Result};
use crate::http::{hf_endpoint_from_env, hf_token_from_env, Auth};
use crate::storage::model_info::{ComponentInfo, ModelInfo, ShardInfo};
use crate::storage::paths::normalize_lexically;
use crate::storage::{blobs, lock};
use crate::storage::{Paths, Store};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use config::DownloadRequest;
use net::Net;
use plan::{Item, Layout, Plan};
use preflight::Probe;
use progress::Tracker;
use transfer::{expected_hash, Fetched, Job};

/// How long the components' remote headers may take before the compatibility check goes on
/// without them.
const REMOTE_HEADER_TIMEOUT: Duration = Duration::from_secs(15);

/// What the caller hands in besides the config.
#[derive(Clone, Default)]
pub struct Context {
    pub cancel: CancelToken,
    pub events: Events,
}

/// What happens to one planned file.
#[derive(Debug, Clone, PartialEq)]
enum Action {
    /// Already complete on disk (verified when a hash was known).
    Keep { size: u64, sha256: Option<String> },
    /// Download it; `present` bytes of a valid `.partial` are reused.
    Fetch { present: u64 },
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::fs(format!("internal task failed: {e}"), json!({})))?
}

/// `Model already exists: <id>` when a record with this id exists (either type).
async fn ensure_new(store: &Store, id: &str) -> Result<()> {
    let s = store.clone();
    let owned = id.to_string();
    match run_blocking(move || s.get(&owned)).await {
        Ok(_) => Err(Error::download(
            format!("Model already exists: {id}"),
            json!({ "modelId": id, "suggestion": "Delete the model first, or download it under another name." }),
        )),
        Err(Error::ModelNotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

fn lock_requests(plan: &Plan, paths: &Paths) -> Vec<lock::LockRequest> {
    let mut v = vec![lock::LockRequest {
        path: paths.models().join(format!(".download-{}.lock", plan.id)),
        what: format!("Model {}", plan.id),
    }];
    for it in &plan.items {
        v.push(lock::LockRequest {
            path: lock::file_lock_path(&it.dest),
            what: format!("File {}", it.dest.display()),
        });
    }
    v
}

/// Files of one model fetched at the same time (each over its own connections).
const CONCURRENT_FILES: usize = 4;

/// Transfers one item with its own progress line. `size_counted`: its size is already part of the
/// progress total (known from the probe).
async fn fetch_item(
    net: &Net,
    item: &Item,
    probe: &Probe,
    tracker: &Arc<Tracker>,
    size_counted: bool,
) -> Result<Fetched> {
    let line = tracker.start_item(
        item.role.clone(),
        item.filename.clone(),
        Phase::Downloading,
        probe.size.filter(|_| size_counted),
    );
    let job = Job {
        item,
        probe,
        expected: expected_hash(item, probe),
        tracker: line.clone(),
        size_counted,
    };
    let fetched = transfer::fetch(net, job).await?;
    line.finish(fetched.size);
    Ok(fetched)
}

async fn fetch_indexed(
    i: usize,
    net: &Net,
    item: &Item,
    probe: &Probe,
    tracker: &Arc<Tracker>,
) -> Result<(usize, Fetched)> {
    let f = fetch_item(net, item, probe, tracker, probe.size.is_some()).await?;
    Ok((i, f))
}

/// Downloads a model described by `config` (a `DownloadConfig` without callbacks) into `store`.
pub async fn download_model(store: Store, config: &Value, ctx: Context) -> Result<ModelInfo> {
    let req = config::parse(config)?;
    let endpoint = req
        .options
        .hf_endpoint
        .clone()
        .map(|e| e.trim().trim_end_matches('/').to_string())
        .unwrap_or_else(hf_endpoint_from_env);
    let auth = Auth::new(
        &endpoint,
        req.options.hf_token.clone().or_else(hf_token_from_env),
    );
    if !auth.token_is_valid() {
        // The message never quotes the token.
        return Err(Error::download(
            "hfToken (or HF_TOKEN) contains a line break or another control character, so it cannot be sent",
            json!({ "invalidConfig": true }),
        ));
    }
    let plan = plan::build(&req, store.paths(), &endpoint)?;
    if ctx.cancel.is_cancelled() {
        return Err(Error::download(
            "Download cancelled",
            json!({ "cancelled": true, "modelId": plan.id }),
        ));
    }
    ensure_new(&store, &plan.id).await?;
    store.paths().initialize().await?;

    let dir_existed = plan.dir.exists();
    let requests = lock_requests(&plan, store.paths());
    let guard = run_blocking(move || lock::acquire(&requests))
        .await
        .map_err(|e| e.with_detail("modelId", json!(plan.id)));
    let guard = match guard {
        Ok(g) => g,
        Err(e) => {
            remove_dir_if_empty(&plan, dir_existed);
            return Err(e);
        }
    };
    // Another process may have finished the same model while we waited for nothing: check again
    // now that we hold the lock.
    if let Err(e) = ensure_new(&store, &plan.id).await {
        drop(guard);
        // Our lock files may have created the directory; the other process's files keep it.
        remove_dir_if_empty(&plan, dir_existed);
        return Err(e);
    }

    let net = Net::new(auth, endpoint, req.options.clone(), ctx.cancel.clone());
    let tracker = Tracker::new();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let reporter = tokio::spawn(progress::report(
        tracker.clone(),
        ctx.events.clone(),
        stop_rx,
    ));
    let mut completed: Vec<PathBuf> = Vec::new();
    let result = run(
        &store,
        &req,
        &plan,
        &net,
        &ctx.events,
        &tracker,
        &mut completed,
    )
    .await;
    if result.is_err() && req.options.cleanup_on_failure {
        cleanup(&store, &plan, &completed).await;
    }
    // The closing (total, total) event goes out only for a download that succeeded, and is
    // delivered before this function returns.
    let _ = stop_tx.send(result.is_ok());
    let _ = reporter.await;
    drop(guard);
    if result.is_err() {
        remove_dir_if_empty(&plan, dir_existed);
    }
    result
}

fn remove_dir_if_empty(plan: &Plan, existed: bool) {
    if !existed && plan.layout != Layout::Single {
        let _ = std::fs::remove_dir(&plan.dir);
    }
}

/// `cleanupOnFailure`: drop partial state and the files this attempt completed, except files some
/// record references (a shared file re-downloaded for a mismatch still belongs to its variants).
async fn cleanup(store: &Store, plan: &Plan, completed: &[PathBuf]) {
    let s = store.clone();
    let referenced: Vec<PathBuf> = run_blocking(move || {
        Ok(s.list(None)?
            .iter()
            .flat_map(|m| m.all_files())
            .map(|p| normalize_lexically(Path::new(&p)))
            .collect())
    })
    .await
    .unwrap_or_default();
    for it in &plan.items {
        let _ = std::fs::remove_file(resume::partial_path(&it.dest));
        let _ = std::fs::remove_file(resume::sidecar_path(&it.dest));
    }
    for p in completed {
        if !referenced.contains(&normalize_lexically(p)) {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The records that name `path` as one of their files, each with the checksum it recorded for it
/// (lower-case hex), so a shared file is only ever replaced by the content its owners expect.
async fn records_using(store: &Store, path: &Path) -> Result<Vec<(String, Option<String>)>> {
    let s = store.clone();
    let want = normalize_lexically(path);
    let same = move |p: &str| normalize_lexically(Path::new(p)) == want;
    let norm = |c: &Option<String>| c.as_deref().and_then(crate::checksum::normalize);
    run_blocking(move || {
        let mut out = Vec::new();
        for m in s.list(None)? {
            let mut found: Option<Option<String>> = None;
            for (_, c) in m.component_list() {
                if found.is_none() && same(&c.path) {
                    found = Some(norm(&c.checksum));
                }
            }
            for sh in m.shards.iter().flatten() {
                if found.is_none() && same(&sh.path) {
                    found = Some(norm(&sh.checksum));
                }
            }
            if found.is_none() && same(&m.path) {
                found = Some(norm(&m.checksum));
            }
            if let Some(sum) = found {
                out.push((m.id.clone(), sum));
            }
        }
        Ok(out)
    })
    .await
}

/// Refuses to replace a file that a record uses unless every such record expects exactly
/// `replacement` (then the file on disk is damaged and downloading it again repairs that model).
/// Otherwise another model would silently end up with different content under its record.
async fn ensure_replaceable(store: &Store, item: &Item, replacement: Option<&str>) -> Result<()> {
    let owners = records_using(store, &item.dest).await?;
    if let Some((id, _)) = owners
        .iter()
        .find(|(_, sum)| replacement.is_none() || sum.as_deref() != replacement)
    {
        return Err(file_exists_error(
            item,
            &format!(
                "model {id} uses this file, and its content is not the one this download expects"
            ),
        ));
    }
    Ok(())
}

/// Removes `.partial`/`.partial.meta` left beside a complete file (a crash between the rename and
/// their removal); nothing else writes them while we hold the file's lock.
fn remove_stale_state(dest: &Path) {
    let _ = std::fs::remove_file(resume::partial_path(dest));
    let _ = std::fs::remove_file(resume::sidecar_path(dest));
}

fn file_exists_error(item: &Item, why: &str) -> Error {
    Error::download(
        format!("Model file already exists: {}", item.filename),
        json!({
            "path": item.dest.display().to_string(),
            "reason": why,
            "suggestion": "Delete the file or the model that owns it, or download under another file name.",
        }),
    )
}

/// Content with hash `want` already on this machine: a shared blob of another model, a Hugging
/// Face cache blob, or a file of the same name and size in an `importFrom` folder. The first whose
/// hash checks out is linked (or copied) to `item.dest`; returns its size.
async fn import_existing(
    store: &Store,
    net: &Net,
    item: &Item,
    probe: &Probe,
    want: &str,
) -> Result<Option<u64>> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    let blob = blobs::blob_path(store.paths(), want);
    if blob.is_file() {
        candidates.push(blob);
    }
    if let Some(hub) = &net.opts.hf_cache {
        candidates.extend(blobs::hf_cache_blob(hub, want));
    }
    if let Some(size) = probe.size {
        for dir in &net.opts.import_from {
            candidates.extend(blobs::find_in_folder(dir, &item.filename, size));
        }
    }
    for c in candidates {
        let (n, sha) = transfer::hash_existing(net, &c, progress::ItemTracker::detached()).await?;
        if sha != want {
            debug_log!("{} has another hash; not imported", c.display());
            continue;
        }
        let dest = item.dest.clone();
        let linked = run_blocking(move || {
            if let Some(d) = dest.parent() {
                std::fs::create_dir_all(d).map_err(|e| Error::io("Failed to create", d, &e))?;
            }
            blobs::link_or_copy(&c, &dest)
        })
        .await?;
        debug_log!(
            "{}: {} instead of downloading",
            item.dest.display(),
            if linked { "linked" } else { "copied" }
        );
        remove_stale_state(&item.dest);
        return Ok(Some(n));
    }
    Ok(None)
}

/// Decides what to do with each planned file given what is on disk.
async fn classify_items(
    store: &Store,
    net: &Net,
    plan: &Plan,
    probes: &[Probe],
    tracker: &Arc<Tracker>,
) -> Result<Vec<Action>> {
    let mut actions = Vec::with_capacity(plan.items.len());
    for (item, probe) in plan.items.iter().zip(probes) {
        let expected = expected_hash(item, probe);
        let existing = std::fs::metadata(&item.dest).ok();
        if existing.as_ref().is_some_and(|m| !m.is_file()) {
            // Found now rather than at the final rename, after gigabytes were fetched for nothing.
            return Err(Error::fs(
                format!(
                    "Cannot save {}: {} exists and is not a file",
                    item.label(),
                    item.dest.display()
                ),
                json!({ "path": item.dest.display().to_string() }),
            ));
        }
        let Some(meta) = existing else {
            if let Some((want, _)) = &expected {
                if let Some(size) = import_existing(store, net, item, probe, want).await? {
                    actions.push(Action::Keep {
                        size,
                        sha256: Some(want.clone()),
                    });
                    continue;
                }
            }
            let present = resume::present_bytes(
                &item.dest,
                item.url.as_str(),
                &probe.remote(),
                expected.as_ref().map(|(h, _)| h.as_str()),
            );
            actions.push(Action::Fetch { present });
            continue;
        };
        let single = plan.layout == Layout::Single;
        if single && !records_using(store, &item.dest).await?.is_empty() {
            return Err(file_exists_error(
                item,
                "another model's record uses this file",
            ));
        }
        let size = meta.len();
        let action = match &expected {
            Some((want, _)) => {
                // A reused file is trusted only after hashing it.
                tracker.set_phase(Phase::Verifying);
                let (n, sha) =
                    transfer::hash_existing(net, &item.dest, progress::ItemTracker::detached())
                        .await?;
                tracker.set_phase(Phase::Preflight);
                if &sha == want {
                    Action::Keep {
                        size: n,
                        sha256: Some(sha),
                    }
                } else if single {
                    return Err(file_exists_error(
                        item,
                        "the existing file does not match the expected checksum",
                    ));
                } else {
                    ensure_replaceable(store, item, Some(want)).await?;
                    debug_log!(
                        "{}: existing file does not match; downloading again",
                        item.dest.display()
                    );
                    Action::Fetch { present: 0 }
                }
            }
            None => match probe.size {
                Some(s) if s != size => {
                    if single {
                        return Err(file_exists_error(
                            item,
                            "the existing file has another size",
                        ));
                    }
                    ensure_replaceable(store, item, None).await?;
                    Action::Fetch { present: 0 }
                }
                // No hash to check: as genai-electron does, an existing shared file is reused. A
                // single file is adopted only when its size is known to match (an interrupted
                // earlier run of this same download); otherwise it may be someone else's.
                Some(_) => Action::Keep { size, sha256: None },
                None if single => {
                    return Err(file_exists_error(item, "it cannot be verified"));
                }
                None => Action::Keep { size, sha256: None },
            },
        };
        if matches!(action, Action::Keep { .. }) {
            remove_stale_state(&item.dest);
        }
        actions.push(action);
    }
    Ok(actions)
}

/// The components' headers (over Range, or from disk for files already there) checked against
/// each other before any byte of them is downloaded. Only models with something to compare are
/// read; a header that cannot be read is not judged.
async fn compat_preflight(
    plan: &Plan,
    net: &Net,
    actions: &[Action],
) -> Option<crate::compat::Mismatch> {
    if plan.layout != Layout::MultiComponent {
        return None;
    }
    let role = |it: &Item| it.role.clone().unwrap_or_default();
    let roles: Vec<String> = plan.items.iter().map(role).collect();
    let has = |r: &str| roles.iter().any(|x| x == r);
    if !has("diffusion_model") || !(has("vae") || has("llm") || (has("clip_l") && has("clip_g"))) {
        return None;
    }
    let reads = plan.items.iter().zip(actions).map(|(it, a)| {
        let r = role(it);
        let read = matches!(r.as_str(), "diffusion_model" | "vae" | "llm");
        let local = matches!(a, Action::Keep { .. }).then(|| it.dest.clone());
        let url = it.url.to_string();
        let auth = net.auth.clone();
        async move {
            let tensors = match (read, local) {
                (false, _) => None,
                (true, Some(p)) => {
                    tokio::task::spawn_blocking(move || crate::compat::read_local(&p))
                        .await
                        .ok()
                        .flatten()
                }
                (true, None) => tokio::time::timeout(
                    REMOTE_HEADER_TIMEOUT,
                    crate::compat::read_remote(&url, &auth),
                )
                .await
                .ok()
                .flatten(),
            };
            crate::compat::Part {
                role: r,
                file: it.filename.clone(),
                tensors,
            }
        }
    });
    let parts = futures_util::future::join_all(reads).await;
    crate::compat::check(&parts)
}

#[allow(clippy::too_many_arguments)]
async fn run(
    store: &Store,
    req: &DownloadRequest,
    plan: &Plan,
    net: &Net,
    events: &Events,
    tracker: &Arc<Tracker>,
    completed: &mut Vec<PathBuf>,
) -> Result<ModelInfo> {
    tracker.set_phase(Phase::Preflight);
    let primary = plan.primary();
    let probes =
        futures_util::future::try_join_all(plan.items.iter().map(|it| preflight::probe(net, it)))
            .await?;
    let actions = classify_items(store, net, plan, &probes, tracker).await?;

    if let Some(m) = compat_preflight(plan, net, &actions).await {
        return Err(Error::download(
            m.message,
            json!({ "code": crate::compat::CODE, "modelId": plan.id, "roles": m.roles, "files": m.files }),
        ));
    }

    // Disk space for everything still to fetch, before any byte is.
    let mut required = 0u64;
    let mut total = 0u64;
    for ((a, p), _) in actions.iter().zip(&probes).zip(&plan.items) {
        if let Action::Fetch { present } = a {
            let size = p.size.unwrap_or(0);
            required += size.saturating_sub(*present);
            total += size;
        }
    }
    let available = match req.options.test_free_disk_bytes {
        Some(b) => b,
        None => preflight::available_space(&plan.dir)?,
    };
    if let Err(e) = preflight::check_space(&plan.name, required, available, &plan.dir) {
        return Err(e.with_detail("modelId", json!(plan.id)));
    }
    tracker.set_total(total);

    let multi = plan.layout == Layout::MultiComponent;
    let n = plan.items.len();
    for (i, item) in plan.items.iter().enumerate() {
        if multi {
            events.send(Event::ComponentStart {
                role: item.role.clone().unwrap_or_default(),
                filename: item.filename.clone(),
                index: i + 1,
                total: n,
            });
        }
    }
    // The files still to fetch go at the same time, a few at once, in plan order.
    let mut fetches = Vec::new();
    for (i, ((item, probe), action)) in plan.items.iter().zip(&probes).zip(&actions).enumerate() {
        if matches!(action, Action::Fetch { .. }) {
            fetches.push(fetch_indexed(i, net, item, probe, tracker));
        }
    }
    let mut results: Vec<(u64, Option<String>)> = actions
        .iter()
        .map(|a| match a {
            Action::Keep { size, sha256 } => (*size, sha256.clone()),
            Action::Fetch { .. } => (0, None),
        })
        .collect();
    {
        use futures_util::stream::StreamExt;
        let mut stream = futures_util::stream::iter(fetches).buffer_unordered(CONCURRENT_FILES);
        // A file that fails does not stop the others: what they fetch is kept for the next
        // attempt (a cancel stops them all anyway). The first error is the one reported.
        let mut first_error = None;
        while let Some(r) = stream.next().await {
            match r {
                Ok((i, Fetched { size, sha256 })) => {
                    completed.push(plan.items[i].dest.clone());
                    results[i] = (size, Some(sha256));
                    crash_point(req, "fileComplete");
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
    }
    // A file can vanish while the others download: `deleteModel` of another variant removes the
    // files no record uses, and ours is not written yet. Such a file is fetched again rather
    // than recorded as present.
    for (i, (item, probe)) in plan.items.iter().zip(&probes).enumerate() {
        let intact =
            std::fs::metadata(&item.dest).is_ok_and(|m| m.is_file() && m.len() == results[i].0);
        if intact {
            continue;
        }
        debug_log!(
            "{} disappeared during the download; fetching it again",
            item.dest.display()
        );
        let Fetched { size, sha256 } = fetch_item(net, item, probe, tracker, false).await?;
        completed.push(item.dest.clone());
        results[i] = (size, Some(sha256));
    }

    // Every verified file becomes (or links to) the shared blob of its content.
    for (item, (_, sha)) in plan.items.iter().zip(&results) {
        if let Some(sha) = sha.clone() {
            let (p, dest) = (store.paths().clone(), item.dest.clone());
            if let Err(e) = run_blocking(move || blobs::adopt(&p, &dest, &sha)).await {
                debug_log!("{} not shared: {e}", item.dest.display());
            }
        }
    }

    // GGUF metadata of the primary, from the file just written: reading its header from disk
    // costs less than a second copy of it over the network beside the transfer (and its buffers
    // beside the transfer's). Never fatal: a .gguf that does not parse is still the file the
    // caller asked for.
    let gguf = if plan.primary_is_gguf() {
        let p = primary.dest.clone();
        run_blocking(move || {
            crate::gguf::read_local_metadata(&p).map_err(|e| Error::fs(e, json!({})))
        })
        .await
        .map_err(|e| {
            debug_log!(
                "local GGUF header of {} unreadable: {e}",
                primary.dest.display()
            )
        })
        .ok()
    } else {
        None
    };

    let info = build_record(req, plan, &results, gguf);
    let s = store.clone();
    let saved = info.clone();
    crash_point(req, "beforeRecord");
    run_blocking(move || s.save(&saved)).await?;
    crash_point(req, "afterRecord");
    Ok(info)
}

/// Test hook (`testHooks.crashAt`): the process dies here, as a crash or power cut would end it.
fn crash_point(req: &DownloadRequest, point: &str) {
    if req.options.test_crash_at.as_deref() == Some(point) {
        std::process::abort();
    }
}

fn now_iso() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `supportsReasoning`: genai-electron's filename heuristic.
fn supports_reasoning(filename: &str) -> bool {
    let f = filename.to_ascii_lowercase();
    ["qwen3", "deepseek-r1", "gpt-oss"]
        .iter()
        .any(|k| f.contains(k))
}

/// The record, in genai-electron's shape. `checksum` is the sha256 of the bytes on disk (computed
/// while streaming, or while verifying a reused file), so `verifyModel` can check every file later.
fn build_record(
    req: &DownloadRequest,
    plan: &Plan,
    results: &[(u64, Option<String>)],
    gguf: Option<Value>,
) -> ModelInfo {
    let primary = plan.primary();
    let path = |it: &Item| it.dest.display().to_string();
    let mut info = ModelInfo {
        id: plan.id.clone(),
        name: plan.name.clone(),
        model_type: plan.model_type,
        size: results.iter().map(|(s, _)| s).sum(),
        path: path(primary),
        downloaded_at: now_iso(),
        source: Some(primary.source.clone()),
        checksum: None,
        supports_reasoning: None,
        gguf_metadata: gguf,
        components: None,
        shards: None,
        provenance: req.provenance.clone(),
        extra: Map::new(),
    };
    let fmt = |s: &Option<String>| s.as_deref().map(crate::checksum::format);
    match plan.layout {
        Layout::Single => {
            info.checksum = fmt(&results[0].1);
            info.supports_reasoning = Some(supports_reasoning(&primary.filename));
        }
        Layout::Sharded => {
            info.checksum = fmt(&results[0].1);
            info.supports_reasoning = Some(supports_reasoning(&primary.filename));
            info.shards = Some(
                plan.items
                    .iter()
                    .zip(results)
                    .map(|(it, (size, sha))| ShardInfo {
                        path: path(it),
                        size: *size,
                        checksum: fmt(sha),
                        extra: Map::new(),
                    })
                    .collect(),
            );
        }
        Layout::MultiComponent => {
            let mut components = Map::new();
            for (it, (size, sha)) in plan.items.iter().zip(results) {
                let c = ComponentInfo {
                    path: path(it),
                    size: *size,
                    checksum: fmt(sha),
                    source: Some(it.source.clone()),
                    provenance: it.provenance.clone(),
                    extra: Map::new(),
                };
                components.insert(
                    it.role.clone().unwrap_or_default(),
                    serde_json::to_value(c).unwrap_or(Value::Null),
                );
            }
            info.components = Some(components);
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Paths;

    #[test]
    fn records_have_the_contract_shape() {
        let req = config::parse(&json!({
            "source": "huggingface", "repo": "o/dit", "file": "dit.gguf", "name": "Flux 2 Klein", "type": "diffusion",
            "provenance": {"license": "apache-2.0"},
            "components": [
                {"role": "llm", "source": "huggingface", "repo": "o/qwen", "file": "Qwen3-4B-Q4_0.gguf", "provenance": {"license": "x"}},
                {"role": "vae", "source": "url", "url": "http://h/split_files/vae/flux2-vae.safetensors"}
            ]
        }))
        .unwrap();
        let plan =
            plan::build(&req, &Paths::new("/ud").unwrap(), "https://huggingface.co").unwrap();
        let results = vec![
            (10, Some("a".repeat(64))),
            (20, None),
            (5, Some("b".repeat(64))),
        ];
        let info = build_record(&req, &plan, &results, None);
        let j = info.to_json();
        assert_eq!(j["size"], 35);
        assert_eq!(j["path"], j["components"]["diffusion_model"]["path"]);
        let roles: Vec<_> = j["components"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(roles, ["diffusion_model", "llm", "vae"]);
        assert_eq!(
            j["components"]["diffusion_model"]["provenance"]["license"],
            "apache-2.0"
        );
        assert_eq!(j["components"]["llm"]["provenance"]["license"], "x");
        assert!(j["components"]["llm"].get("checksum").is_none());
        assert_eq!(
            j["components"]["vae"]["checksum"],
            format!("sha256:{}", "b".repeat(64))
        );
        assert_eq!(
            j["components"]["vae"]["source"],
            json!({"type": "url", "url": "http://h/split_files/vae/flux2-vae.safetensors"})
        );
        assert_eq!(j["provenance"]["license"], "apache-2.0");
        assert!(j.get("checksum").is_none());
        assert!(j.get("supportsReasoning").is_none());
        assert!(j["downloadedAt"].as_str().unwrap().ends_with('Z'));

        let req = config::parse(
            &json!({"source": "url", "url": "http://h/Qwen3-8B.gguf", "name": "Q", "type": "llm"}),
        )
        .unwrap();
        let plan =
            plan::build(&req, &Paths::new("/ud").unwrap(), "https://huggingface.co").unwrap();
        let j = build_record(
            &req,
            &plan,
            &[(7, Some("c".repeat(64)))],
            Some(json!({"architecture": "qwen3"})),
        )
        .to_json();
        assert_eq!(j["supportsReasoning"], true);
        assert_eq!(j["checksum"], format!("sha256:{}", "c".repeat(64)));
        assert_eq!(j["ggufMetadata"]["architecture"], "qwen3");
        assert_eq!(
            j["source"],
            json!({"type": "url", "url": "http://h/Qwen3-8B.gguf"})
        );
    }
}
