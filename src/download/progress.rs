//! Progress: the transfer bumps atomic counters on every chunk (cheap, never blocks), and a
//! reporter samples them every 100 ms and emits an event only when something changed. So the
//! callback rate is bounded at the source whatever the chunk rate, and the values it sees only
//! grow (a restart from zero does not make a progress bar jump back).

use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

pub const INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// HEAD requests, disk-space check, remote GGUF header.
    Preflight,
    /// Hashing bytes already on disk (a partial being resumed, a shared file being reused).
    Verifying,
    Downloading,
    Done,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Preflight => "preflight",
            Phase::Verifying => "verifying",
            Phase::Downloading => "downloading",
            Phase::Done => "done",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProgressEvent {
    pub downloaded: u64,
    pub total: u64,
    pub bytes_per_second: f64,
    pub eta_seconds: Option<f64>,
    pub component: Option<String>,
    pub file: Option<String>,
    pub phase: Phase,
    /// Every file of the download, each with its own figures.
    pub items: Vec<ItemSnapshot>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Progress(ProgressEvent),
    /// `onComponentStart({ role, filename, index, total })`, multi-component downloads only.
    ComponentStart {
        role: String,
        filename: String,
        index: usize,
        total: usize,
    },
}

impl Event {
    /// The object the JS dispatcher receives.
    pub fn to_json(&self) -> Value {
        match self {
            Event::Progress(p) => json!({
                "kind": "progress",
                "downloaded": p.downloaded as f64,
                "total": p.total as f64,
                "bytesPerSecond": p.bytes_per_second,
                "etaSeconds": p.eta_seconds,
                "component": p.component,
                "file": p.file,
                "phase": p.phase.as_str(),
                "components": p.items.iter().map(|i| json!({
                    "component": i.component,
                    "file": i.file,
                    "downloaded": i.downloaded as f64,
                    "total": i.total as f64,
                    "phase": i.phase.as_str(),
                })).collect::<Vec<_>>(),
            }),
            Event::ComponentStart {
                role,
                filename,
                index,
                total,
            } => json!({
                "kind": "componentStart",
                "role": role,
                "filename": filename,
                "index": index,
                "total": total,
            }),
        }
    }
}

/// Where events go (the napi layer forwards them to JS). Sending never blocks or fails.
#[derive(Clone, Default)]
pub struct Events(Option<UnboundedSender<Event>>);

impl Events {
    pub fn new(tx: UnboundedSender<Event>) -> Self {
        Events(Some(tx))
    }
    pub fn none() -> Self {
        Events(None)
    }
    pub fn send(&self, e: Event) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(e);
        }
    }
}

/// Counters every item of one download adds into.
#[derive(Debug, Default)]
struct Shared {
    total: AtomicU64,
    /// Bytes received from the network in this run (for the speed).
    received: AtomicU64,
}

/// Progress of one file. Files of a model download concurrently, each with its own counters; the
/// download's progress is their sum.
#[derive(Debug)]
pub struct ItemTracker {
    shared: Arc<Shared>,
    component: Option<String>,
    file: String,
    /// Bytes of this file present on disk (resumed bytes included).
    current: AtomicU64,
    /// Its size when known (0 otherwise).
    size: AtomicU64,
    phase: Mutex<Phase>,
    finished: AtomicBool,
}

impl ItemTracker {
    /// Counters attached to no download (hashing a file outside one).
    pub fn detached() -> Arc<Self> {
        Arc::new(Self::new(
            Arc::default(),
            None,
            String::new(),
            Phase::Verifying,
        ))
    }

    fn new(shared: Arc<Shared>, component: Option<String>, file: String, phase: Phase) -> Self {
        ItemTracker {
            shared,
            component,
            file,
            current: AtomicU64::new(0),
            size: AtomicU64::new(0),
            phase: Mutex::new(phase),
            finished: AtomicBool::new(false),
        }
    }

    pub fn set_phase(&self, phase: Phase) {
        *self.phase.lock().unwrap() = phase;
    }

    /// Bytes of this file now on disk (after a resume or restart).
    pub fn set_current(&self, bytes: u64) {
        self.current.store(bytes, Ordering::Relaxed);
    }

    /// A chunk arrived from the network and is counted as present.
    pub fn add_received(&self, bytes: u64) {
        self.current.fetch_add(bytes, Ordering::Relaxed);
        self.count_received(bytes);
    }

    /// A chunk arrived from the network; what is present is reported separately (`set_current`).
    pub fn count_received(&self, bytes: u64) {
        self.shared.received.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn set_size(&self, size: u64) {
        self.size.store(size, Ordering::Relaxed);
    }

    /// The file's size turned out larger than planned (unknown at HEAD time).
    pub fn grow_total(&self, by: u64) {
        self.shared.total.fetch_add(by, Ordering::Relaxed);
        self.size.store(by, Ordering::Relaxed);
    }

    /// The file is complete with `size` bytes.
    pub fn finish(&self, size: u64) {
        self.current.store(size, Ordering::Relaxed);
        self.size.store(size, Ordering::Relaxed);
        *self.phase.lock().unwrap() = Phase::Done;
        self.finished.store(true, Ordering::Release);
    }

    pub fn current(&self) -> u64 {
        self.current.load(Ordering::Relaxed)
    }
}

/// Shared counters for one download (all items).
#[derive(Debug, Default)]
pub struct Tracker {
    shared: Arc<Shared>,
    phase: Mutex<Option<Phase>>,
    items: Mutex<Vec<Arc<ItemTracker>>>,
}

/// One file's line in a progress event.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemSnapshot {
    pub component: Option<String>,
    pub file: String,
    pub downloaded: u64,
    pub total: u64,
    pub phase: Phase,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub downloaded: u64,
    pub total: u64,
    pub received: u64,
    pub phase: Phase,
    pub component: Option<String>,
    pub file: Option<String>,
    pub items: Vec<ItemSnapshot>,
}

impl Tracker {
    pub fn new() -> Arc<Self> {
        Arc::new(Tracker::default())
    }

    pub fn set_total(&self, total: u64) {
        self.shared.total.store(total, Ordering::Relaxed);
    }

    /// Counters for one file; they count towards this download until the download ends.
    pub fn start_item(
        &self,
        component: Option<String>,
        file: String,
        phase: Phase,
        size: Option<u64>,
    ) -> Arc<ItemTracker> {
        let it = Arc::new(ItemTracker::new(
            self.shared.clone(),
            component,
            file,
            phase,
        ));
        it.set_size(size.unwrap_or(0));
        let mut items = self.items.lock().unwrap();
        // A file fetched again (it vanished meanwhile) replaces its earlier line.
        items.retain(|o| !(o.file == it.file && o.component == it.component));
        items.push(it.clone());
        it
    }

    /// The phase shown while no file is being worked on (preflight).
    pub fn set_phase(&self, phase: Phase) {
        *self.phase.lock().unwrap() = Some(phase);
    }

    pub fn snapshot(&self) -> Snapshot {
        let items = self.items.lock().unwrap();
        let mut lines = Vec::with_capacity(items.len());
        let mut downloaded = 0u64;
        for it in items.iter() {
            let cur = it.current();
            downloaded += cur;
            lines.push(ItemSnapshot {
                component: it.component.clone(),
                file: it.file.clone(),
                downloaded: cur,
                total: it.size.load(Ordering::Relaxed).max(cur),
                phase: *it.phase.lock().unwrap(),
            });
        }
        // The label is the first unfinished file (plan order), preferring one that downloads.
        let open = |p: Phase| lines.iter().find(|l| l.phase == p);
        let lead = open(Phase::Downloading)
            .or_else(|| open(Phase::Verifying))
            .or_else(|| lines.last());
        let base = self.phase.lock().unwrap().unwrap_or(Phase::Preflight);
        let phase = match lead {
            Some(l) if l.phase != Phase::Done => l.phase,
            Some(_) if base == Phase::Preflight => Phase::Downloading,
            _ => base,
        };
        Snapshot {
            downloaded,
            total: self.shared.total.load(Ordering::Relaxed),
            received: self.shared.received.load(Ordering::Relaxed),
            phase,
            component: lead.and_then(|l| l.component.clone()),
            file: lead.map(|l| l.file.clone()),
            items: lines,
        }
    }
}

/// Exponentially weighted speed over samples, with a ~3 s time constant: steady enough for a UI,
/// quick to show a stall.
#[derive(Debug, Default, Clone)]
pub struct Speed {
    last: Option<(Instant, u64)>,
    rate: Option<f64>,
}

impl Speed {
    const TAU_SECS: f64 = 3.0;

    pub fn sample(&mut self, now: Instant, received: u64) -> f64 {
        if let Some((t, b)) = self.last {
            let dt = now.saturating_duration_since(t).as_secs_f64();
            if dt > 0.0 {
                let inst = received.saturating_sub(b) as f64 / dt;
                let alpha = 1.0 - (-dt / Self::TAU_SECS).exp();
                self.rate = Some(match self.rate {
                    None => inst,
                    Some(r) => r + alpha * (inst - r),
                });
                self.last = Some((now, received));
            }
        } else {
            self.last = Some((now, received));
        }
        self.rate.unwrap_or(0.0)
    }
}

/// Turns snapshots into events: monotonic values, at most one per `interval`, none when nothing
/// changed.
#[derive(Debug, Clone)]
pub struct Emitter {
    interval: Duration,
    last_at: Option<Instant>,
    last: Option<(u64, u64, Phase, Option<String>)>,
    max_downloaded: u64,
    max_total: u64,
    speed: Speed,
}

impl Emitter {
    pub fn new(interval: Duration) -> Self {
        Emitter {
            interval,
            last_at: None,
            last: None,
            max_downloaded: 0,
            max_total: 0,
            speed: Speed::default(),
        }
    }

    fn build(&mut self, now: Instant, s: &Snapshot) -> ProgressEvent {
        self.max_total = self.max_total.max(s.total);
        self.max_downloaded = self.max_downloaded.max(s.downloaded.min(self.max_total));
        let rate = self.speed.sample(now, s.received);
        let remaining = self.max_total.saturating_sub(self.max_downloaded);
        ProgressEvent {
            downloaded: self.max_downloaded,
            total: self.max_total,
            bytes_per_second: rate,
            eta_seconds: (rate > 0.0 && self.max_total > 0).then(|| remaining as f64 / rate),
            component: s.component.clone(),
            file: s.file.clone(),
            phase: s.phase,
            items: s.items.clone(),
        }
    }

    /// The event to emit now, if any.
    pub fn next(&mut self, now: Instant, s: &Snapshot) -> Option<ProgressEvent> {
        if let Some(t) = self.last_at {
            if now.saturating_duration_since(t) < self.interval {
                return None;
            }
        }
        if s.total == 0 && self.max_total == 0 {
            // Nothing sized yet (preflight): a (0, 0) call would only make UIs divide by zero.
            return None;
        }
        let e = self.build(now, s);
        let key = (e.downloaded, e.total, e.phase, e.component.clone());
        if self.last.as_ref() == Some(&key) && e.phase != Phase::Downloading {
            return None;
        }
        if self.last.as_ref() == Some(&key) {
            // Same bytes while downloading: a stall. Say so once per second, not every tick.
            if now.saturating_duration_since(self.last_at.unwrap_or(now)) < Duration::from_secs(1) {
                return None;
            }
        }
        self.last_at = Some(now);
        self.last = Some(key);
        Some(e)
    }

    /// The closing `(total, total)` event, sent whatever the throttle says.
    pub fn finish(&mut self, now: Instant, s: &Snapshot) -> ProgressEvent {
        let mut e = self.build(now, s);
        e.total = e.total.max(e.downloaded);
        e.downloaded = e.total;
        e.eta_seconds = Some(0.0);
        e.phase = Phase::Done;
        for it in &mut e.items {
            it.downloaded = it.total.max(it.downloaded);
            it.total = it.downloaded;
            it.phase = Phase::Done;
        }
        e
    }
}

/// Samples `tracker` every `INTERVAL` and sends progress events until `stop` fires; then sends the
/// final `(total, total)` event. Runs as its own task so a slow disk or network never delays it.
pub async fn report(
    tracker: Arc<Tracker>,
    events: Events,
    mut stop: tokio::sync::oneshot::Receiver<bool>,
) {
    let mut emitter = Emitter::new(INTERVAL);
    // Speed is measured from the start, so the first event already has one.
    emitter
        .speed
        .sample(Instant::now(), tracker.snapshot().received);
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick fires at once; the first event should reflect some work.
    tick.tick().await;
    loop {
        tokio::select! {
            done = &mut stop => {
                if done.unwrap_or(false) {
                    let e = emitter.finish(Instant::now(), &tracker.snapshot());
                    events.send(Event::Progress(e));
                }
                return;
            }
            _ = tick.tick() => {
                if let Some(e) = emitter.next(Instant::now(), &tracker.snapshot()) {
                    events.send(Event::Progress(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(downloaded: u64, total: u64, received: u64) -> Snapshot {
        Snapshot {
            downloaded,
            total,
            received,
            phase: Phase::Downloading,
            component: Some("vae".into()),
            file: Some("v.safetensors".into()),
            items: Vec::new(),
        }
    }

    #[test]
    fn throttles_to_the_interval_and_skips_unchanged() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut e = Emitter::new(Duration::from_millis(100));
        assert!(e.next(ms(0), &snap(10, 100, 10)).is_some());
        assert!(
            e.next(ms(50), &snap(20, 100, 20)).is_none(),
            "within 100 ms"
        );
        let ev = e.next(ms(100), &snap(30, 100, 30)).unwrap();
        assert_eq!((ev.downloaded, ev.total), (30, 100));
        // Nothing moved: silent until a second has passed, then one stall report.
        assert!(e.next(ms(200), &snap(30, 100, 30)).is_none());
        assert!(e.next(ms(1050), &snap(30, 100, 30)).is_none());
        assert!(e.next(ms(1100), &snap(30, 100, 30)).is_some());
    }

    #[test]
    fn nothing_is_reported_before_sizes_are_known() {
        let t0 = Instant::now();
        let mut e = Emitter::new(Duration::from_millis(100));
        let mut s = snap(0, 0, 0);
        s.phase = Phase::Preflight;
        assert!(e.next(t0, &s).is_none());
        assert!(e.next(t0 + Duration::from_secs(2), &s).is_none());
        let fin = e.finish(t0 + Duration::from_secs(3), &s);
        assert_eq!((fin.downloaded, fin.total, fin.phase), (0, 0, Phase::Done));
        assert!(e
            .next(t0 + Duration::from_secs(4), &snap(1, 10, 1))
            .is_some());
    }

    #[test]
    fn values_never_go_backwards() {
        let t0 = Instant::now();
        let mut e = Emitter::new(Duration::from_millis(100));
        e.next(t0, &snap(60, 100, 60)).unwrap();
        // A restart from zero (the file changed) drops the real count: nothing visible changed,
        // so nothing is emitted.
        assert!(e
            .next(t0 + Duration::from_millis(200), &snap(5, 100, 65))
            .is_none());
        // Total grows when a size unknown at HEAD time is learnt; downloaded never exceeds it.
        let ev = e
            .next(t0 + Duration::from_millis(400), &snap(150, 120, 200))
            .unwrap();
        assert_eq!((ev.downloaded, ev.total), (120, 120));
        let fin = e.finish(t0 + Duration::from_millis(450), &snap(150, 120, 200));
        assert_eq!(
            (fin.downloaded, fin.total, fin.phase),
            (120, 120, Phase::Done)
        );
    }

    #[test]
    fn speed_and_eta() {
        let t0 = Instant::now();
        let mut e = Emitter::new(Duration::from_millis(100));
        e.next(t0, &snap(0, 1000, 0));
        let ev = e
            .next(t0 + Duration::from_secs(1), &snap(100, 1000, 100))
            .unwrap();
        assert!(
            (ev.bytes_per_second - 100.0).abs() < 1e-6,
            "{}",
            ev.bytes_per_second
        );
        assert!((ev.eta_seconds.unwrap() - 9.0).abs() < 1e-6);
        let mut s = Speed::default();
        s.sample(t0, 0);
        s.sample(t0 + Duration::from_secs(1), 1000);
        let r = s.sample(t0 + Duration::from_secs(2), 1000);
        assert!(r < 1000.0 && r > 0.0, "decays towards zero in a stall: {r}");
    }

    #[test]
    fn tracker_adds_concurrent_items_up() {
        let t = Tracker::new();
        t.set_total(300);
        let llm = t.start_item(
            Some("llm".into()),
            "q.gguf".into(),
            Phase::Downloading,
            Some(100),
        );
        let vae = t.start_item(Some("vae".into()), "v".into(), Phase::Verifying, Some(200));
        llm.set_current(50);
        llm.add_received(50);
        vae.set_current(30);
        let s = t.snapshot();
        assert_eq!((s.downloaded, s.received), (130, 50));
        assert_eq!(
            (s.phase, s.component.as_deref()),
            (Phase::Downloading, Some("llm"))
        );
        llm.finish(100);
        vae.set_phase(Phase::Downloading);
        vae.add_received(20);
        let s = t.snapshot();
        assert_eq!(
            (s.downloaded, s.received, s.component.as_deref()),
            (150, 70, Some("vae"))
        );
        assert_eq!(s.items.len(), 2);
        assert_eq!(
            (s.items[0].downloaded, s.items[0].total, s.items[0].phase),
            (100, 100, Phase::Done)
        );
        assert_eq!((s.items[1].downloaded, s.items[1].total), (50, 200));
        let ev = Event::Progress(Emitter::new(INTERVAL).finish(Instant::now(), &s)).to_json();
        assert_eq!(ev["kind"], "progress");
        assert_eq!(ev["phase"], "done");
        assert_eq!(ev["downloaded"], 300.0);
        assert_eq!(ev["components"][1]["component"], "vae");
        assert_eq!(ev["components"][1]["downloaded"], 200.0);
        assert_eq!(ev["components"][1]["phase"], "done");
    }

    #[tokio::test]
    async fn reporter_ends_with_total_total_only_on_success() {
        for success in [true, false] {
            let t = Tracker::new();
            t.set_total(10);
            t.start_item(None, "f".into(), Phase::Downloading, Some(10))
                .add_received(4);
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
            let h = tokio::spawn(report(t.clone(), Events::new(tx), stop_rx));
            stop_tx.send(success).unwrap();
            h.await.unwrap();
            let mut last = None;
            while let Ok(Event::Progress(p)) = rx.try_recv() {
                last = Some(p);
            }
            if success {
                let last = last.expect("a final event");
                assert_eq!(
                    (last.downloaded, last.total, last.phase),
                    (10, 10, Phase::Done)
                );
            } else {
                assert!(last.is_none_or(|p| p.phase != Phase::Done));
            }
        }
    }
}
