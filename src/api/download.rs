//! napi functions behind `modelManager.downloadModel` / `cancelDownload`. The JS side creates a
//! cancel token (a number) per download, so both `cancelDownload()` and an `AbortSignal` reach the
//! core's `CancelToken` without a JS object crossing threads. Events (progress, component start)
//! are forwarded to one JS dispatcher through a ThreadsafeFunction; each call is awaited, so every
//! event has run in JS before the Promise resolves, and a throwing callback only yields an `Err`.

use super::errors::IntoNapi;
use crate::download::{self, CancelToken, Context, Event, Events};
use crate::storage::{Paths, Store};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::Status;
use napi_derive::napi;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use tokio::sync::mpsc::UnboundedReceiver;

type EventFn = ThreadsafeFunction<Value, (), Value, Status, false>;

static NEXT_TOKEN: AtomicU32 = AtomicU32::new(1);
static TOKENS: Mutex<Option<HashMap<u32, CancelToken>>> = Mutex::new(None);

fn tokens() -> std::sync::MutexGuard<'static, Option<HashMap<u32, CancelToken>>> {
    TOKENS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A new cancel token for one download; released by `downloadReleaseToken`.
#[napi(js_name = "downloadCreateToken")]
pub fn download_create_token() -> u32 {
    let id = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
    tokens()
        .get_or_insert_with(HashMap::new)
        .insert(id, CancelToken::new());
    id
}

/// Cancels the download holding this token (no-op for an unknown or released token).
#[napi(js_name = "downloadCancel")]
pub fn download_cancel(token: u32) -> bool {
    match tokens().as_ref().and_then(|m| m.get(&token)) {
        Some(t) => {
            t.cancel();
            true
        }
        None => false,
    }
}

#[napi(js_name = "downloadReleaseToken")]
pub fn download_release_token(token: u32) {
    if let Some(m) = tokens().as_mut() {
        m.remove(&token);
    }
}

/// Delivers events in order, collapsing a backlog of progress events to the latest one (if JS is
/// busy, intermediate progress is worthless, and the queue stays short).
async fn forward(mut rx: UnboundedReceiver<Event>, on_event: Option<EventFn>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(e) = rx.try_recv() {
            batch.push(e);
        }
        let mut out: Vec<Event> = Vec::with_capacity(batch.len());
        for e in batch {
            if matches!(e, Event::Progress(_)) && matches!(out.last(), Some(Event::Progress(_))) {
                out.pop();
            }
            out.push(e);
        }
        if let Some(f) = &on_event {
            for e in out {
                // An Err is a throwing callback or a closing environment: the download goes on.
                let _ = f.call_async_catch(e.to_json()).await;
            }
        }
    }
}

/// `downloadModel(config)`: `config` without functions or `signal`; resolves with the record.
#[napi(js_name = "downloadModel")]
pub async fn download_model(
    root: String,
    config: Value,
    token: u32,
    on_event: Option<EventFn>,
) -> napi::Result<Value> {
    let store = Store::new(Paths::new(root).napi()?);
    let cancel = tokens()
        .as_ref()
        .and_then(|m| m.get(&token).cloned())
        .unwrap_or_default();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let forwarder = tokio::spawn(forward(rx, on_event));
    let result = download::download_model(
        store.clone(),
        &config,
        Context {
            cancel,
            events: Events::new(tx),
        },
    )
    .await;
    // The sender was dropped with the context: the forwarder ends after the last event ran in JS.
    let _ = forwarder.await;
    let model = result.napi()?;
    super::errors::blocking(move || {
        let mut v = super::models::with_shared_size(&store, vec![model])?;
        Ok(v.pop().unwrap_or_default())
    })
    .await
}
