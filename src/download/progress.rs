//! Progress: the transfer bumps atomic counters on every chunk (cheap, never blocks), and a
//! reporter samples them every 100 ms and emits an event only when something changed. So the
//! callback rate is bounded at the source whatever the chunk rate, and the values it sees only
//! grow (a restart from zero does not make a progress bar jump back).

use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
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

#[derive(Debug, Default)]
struct Labels {
    phase: Option<Phase>,
    component: Option<String>,
    file: Option<String>,
}

/// Shared counters for one download (all items).
#[derive(Debug, Default)]
pub struct Tracker {
    /// Bytes of items already finished in this run.
    done: AtomicU64,
    /// Bytes of the current item present on disk (resumed bytes included).
    current: AtomicU64,
    total: AtomicU64,
    /// Bytes received from the network in this run (for the speed).
    received: AtomicU64,
    labels: Mutex<Labels>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub downloaded: u64,
    pub total: u64,
    pub received: u64,
    pub phase: Phase,
    pub component: Option<String>,
    pub file: Option<String>,
}

impl Tracker {
    pub fn new() -> Arc<Self> {
        Arc::new(Tracker::default())
    }

    pub fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
    }

    /// An item's size turned out larger than planned (unknown at HEAD time).
    pub fn grow_total(&self, by: u64) {
        self.total.fetch_add(by, Ordering::Relaxed);
    }

    pub fn start_item(&self, component: Option<String>, file: String, phase: Phase) {
        self.current.store(0, Ordering::Relaxed);
        let mut l = self.labels.lock().unwrap();
        l.component = component;
        l.file = Some(file);
        l.phase = Some(phase);
    }

    pub fn set_phase(&self, phase: Phase) {
        self.labels.lock().unwrap().phase = Some(phase);
    }

    /// Bytes of the current item now on disk (after a resume or restart).
    pub fn set_current(&self, bytes: u64) {
        self.current.store(bytes, Ordering::Relaxed);
    }

    /// A chunk arrived from the network.
    pub fn add_received(&self, bytes: u64) {
        self.current.fetch_add(bytes, Ordering::Relaxed);
        self.received.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The current item is complete; `counted` is what it contributes to the total.
    pub fn finish_item(&self, counted: u64) {
        self.done.fetch_add(counted, Ordering::Relaxed);
        self.current.store(0, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let l = self.labels.lock().unwrap();
        Snapshot {
            downloaded: self.done.load(Ordering::Relaxed) + self.current.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            phase: l.phase.unwrap_or(Phase::Preflight),
            component: l.component.clone(),
            file: l.file.clone(),
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
    fn tracker_adds_items_up() {
        let t = Tracker::new();
        t.set_total(300);
        t.start_item(Some("llm".into()), "q.gguf".into(), Phase::Downloading);
        t.set_current(50);
        t.add_received(50);
        assert_eq!(t.snapshot().downloaded, 100);
        t.finish_item(100);
        t.start_item(Some("vae".into()), "v".into(), Phase::Downloading);
        t.add_received(20);
        let s = t.snapshot();
        assert_eq!(
            (s.downloaded, s.received, s.component.as_deref()),
            (120, 70, Some("vae"))
        );
        let ev = Event::Progress(Emitter::new(INTERVAL).finish(Instant::now(), &s)).to_json();
        assert_eq!(ev["kind"], "progress");
        assert_eq!(ev["phase"], "done");
        assert_eq!(ev["downloaded"], 300.0);
    }

    #[tokio::test]
    async fn reporter_ends_with_total_total_only_on_success() {
        for success in [true, false] {
            let t = Tracker::new();
            t.set_total(10);
            t.start_item(None, "f".into(), Phase::Downloading);
            t.add_received(4);
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
