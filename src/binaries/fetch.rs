//! One archive through the download engine (resume from `.partial`, retries with backoff, sha256
//! computed while streaming, rename only when verified). This is the only place provisioning
//! touches `download`, so changes to the engine's internals stay here.

use crate::download::config::TransferOptions;
use crate::download::net::Net;
use crate::download::plan::Item;
use crate::download::progress::{Phase, Tracker};
use crate::download::{preflight, transfer, CancelToken};
use crate::error::{Error, Result};
use crate::http::Auth;
use crate::storage::model_info::ModelSource;
use serde_json::{json, Map};
use std::path::Path;
use std::time::Duration;

/// Bytes on disk and the expected total (0 when the server does not say).
pub type OnBytes<'a> = &'a mut (dyn FnMut(u64, u64) + Send);

pub async fn fetch_archive(
    url: &str,
    dest: &Path,
    sha256: &str,
    cancel: CancelToken,
    on_bytes: OnBytes<'_>,
) -> Result<()> {
    let parsed = url::Url::parse(url)
        .map_err(|e| Error::binary(format!("Invalid archive URL {url}: {e}"), json!({})))?;
    let filename = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let item = Item {
        role: None,
        shard: None,
        url: parsed,
        source: ModelSource {
            source_type: "url".into(),
            url: url.into(),
            repo: None,
            file: None,
            revision: None,
            extra: Map::new(),
        },
        repo: None,
        filename: filename.clone(),
        dest: dest.to_path_buf(),
        user_checksum: Some(sha256.to_ascii_lowercase()),
        provenance: None,
    };
    let opts = TransferOptions::default();
    // Release archives are hundreds of MB: they get the same ranged connections as models.
    let net = Net::new(Auth::new("", None), String::new(), opts, cancel);
    let probe = preflight::probe(&net, &item).await?;
    if let (Some(size), Some(dir)) = (probe.size, dest.parent()) {
        // The archive plus its extracted copy (release archives expand about 3x).
        let need = size.saturating_mul(4);
        if let Ok(free) = preflight::available_space(dir) {
            if free < need {
                return Err(super::no_space(
                    dir,
                    &format!(
                        "{} free, about {} needed",
                        preflight::format_bytes(free),
                        preflight::format_bytes(need)
                    ),
                ));
            }
        }
    }
    let tracker = Tracker::new();
    tracker.set_total(probe.size.unwrap_or(0));
    let item_tracker = tracker.start_item(None, filename, Phase::Downloading, probe.size);
    let fut = transfer::fetch(
        &net,
        transfer::Job {
            item: &item,
            probe: &probe,
            expected: transfer::expected_hash(&item, &probe),
            tracker: item_tracker,
            size_counted: probe.size.is_some(),
        },
    );
    tokio::pin!(fut);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let result = loop {
        tokio::select! {
            r = &mut fut => break r,
            _ = tick.tick() => {
                let s = tracker.snapshot();
                on_bytes(s.downloaded, s.total);
            }
        }
    };
    match result {
        Ok(f) => {
            on_bytes(f.size, f.size);
            Ok(())
        }
        Err(Error::InsufficientResources { message, .. }) => Err(super::no_space(dest, &message)),
        Err(e) => {
            let mismatch = match &e {
                Error::Download { details, .. } => details
                    .get("expected")
                    .zip(details.get("actual"))
                    .map(|(a, b)| (a.clone(), b.clone())),
                _ => None,
            };
            if let Some((exp, act)) = mismatch {
                return Err(Error::binary(
                    format!(
                        "Archive checksum verification failed for {url}: expected {exp}, got {act}"
                    ),
                    json!({
                        "code": "BINARY_CHECKSUM_MISMATCH",
                        "url": url,
                        "expected": exp,
                        "actual": act,
                        "suggestion": "The download was corrupted or the server (or mirror) serves a different file. Try again; if it persists, check GENAI_ELECTRON_BINARY_MIRROR or the manifest's checksum.",
                    }),
                ));
            }
            Err(e)
        }
    }
}
