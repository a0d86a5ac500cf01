//! Turns parsed sd.cpp output into the contract's progress values. sd-server has no progress API,
//! so this is the only source of step progress for both backends.
//!
//! The percentage is a fixed split of the work, not a time estimate: loading 0-10 %, sampling
//! 10-90 % (spread over the images of a batch), decoding 90-99 %. It never goes down, and 100 is
//! reported only by `finish()`, once the images are in hand.

use crate::diffusion::output_parser::{BarKind, Event, Line};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Loading,
    Diffusion,
    Decoding,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Loading => "loading",
            Stage::Diffusion => "diffusion",
            Stage::Decoding => "decoding",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub current_step: u32,
    pub total_steps: u32,
    pub stage: Stage,
    pub percentage: f64,
    /// 1-based image being worked on, and the batch size (reported only when the batch > 1).
    pub current_image: u32,
    pub total_images: u32,
}

impl Progress {
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "currentStep": self.current_step,
            "totalSteps": self.total_steps,
            "stage": self.stage.as_str(),
            "percentage": (self.percentage * 100.0).round() / 100.0,
        });
        if self.total_images > 1 {
            v["currentImage"] = json!(self.current_image);
            v["totalImages"] = json!(self.total_images);
        }
        v
    }
}

/// Minimum gap between two step updates of the same stage (the contract's 100 ms).
pub const THROTTLE: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub struct Tracker {
    count: u32,
    image: u32,
    stage: Stage,
    stepped: bool,
    step: (u32, u32),
    pct: f64,
    last_emit: Option<(Instant, Stage)>,
}

impl Tracker {
    pub fn new(count: u32) -> Self {
        Tracker {
            count: count.max(1),
            image: 1,
            stage: Stage::Loading,
            stepped: false,
            step: (0, 0),
            pct: 0.0,
            last_emit: None,
        }
    }

    pub fn current(&self) -> Progress {
        let (current_step, total_steps) = match self.stage {
            Stage::Decoding => (0, 0),
            _ => self.step,
        };
        Progress {
            current_step,
            total_steps,
            stage: self.stage,
            percentage: self.pct,
            current_image: self.image.min(self.count),
            total_images: self.count,
        }
    }

    fn raise(&mut self, pct: f64) {
        let pct = pct.clamp(0.0, 99.0);
        if pct > self.pct {
            self.pct = pct;
        }
    }

    /// Feeds one parsed line; returns an update when one is due.
    pub fn observe(&mut self, line: &Line, now: Instant) -> Option<Progress> {
        let before = self.stage;
        let mut final_step = false;
        match line {
            Line::Progress {
                current,
                total,
                kind,
            } => {
                let frac = if *total == 0 {
                    0.0
                } else {
                    (*current as f64 / *total as f64).min(1.0)
                };
                match (kind, self.stage) {
                    (_, Stage::Decoding) => self.raise(90.0 + 9.0 * frac),
                    (BarKind::Bytes, _) if !self.stepped => {
                        self.stage = Stage::Loading;
                        self.step = (*current, *total);
                        self.raise(10.0 * frac);
                    }
                    (BarKind::Bytes, _) => return None,
                    (BarKind::Step, _) => {
                        self.stage = Stage::Diffusion;
                        self.stepped = true;
                        self.step = (*current, *total);
                        final_step = current >= total;
                        let done_images = (self.image - 1) as f64 + frac;
                        self.raise(10.0 + 80.0 * done_images / self.count as f64);
                    }
                }
            }
            Line::Log { event, .. } => match event {
                Event::ImageStart { index, count, .. } => {
                    self.image = (*index).max(1);
                    if self.image > 1 {
                        self.step.0 = 0;
                    }
                    if *count > self.count {
                        self.count = *count;
                    }
                    self.raise(10.0 + 80.0 * (self.image - 1) as f64 / self.count as f64);
                }
                Event::Decoding => {
                    self.stage = Stage::Decoding;
                    self.image = self.count;
                    self.raise(90.0);
                }
                Event::Decoded | Event::GenerationDone => {
                    self.stage = Stage::Decoding;
                    self.raise(99.0);
                }
                _ => return None,
            },
            Line::Other { .. } => return None,
        }
        let due = match self.last_emit {
            None => true,
            Some((t, s)) => {
                s != self.stage
                    || before != self.stage
                    || final_step
                    || now.duration_since(t) >= THROTTLE
            }
        };
        if !due {
            return None;
        }
        self.last_emit = Some((now, self.stage));
        Some(self.current())
    }

    /// The closing update: 100 %, sent once the images are read.
    pub fn finish(&mut self) -> Progress {
        self.stage = Stage::Decoding;
        self.pct = 100.0;
        self.image = self.count;
        self.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::output_parser::{parse_line, LineSplitter};

    fn run(name: &str, count: u32, spacing: Duration) -> Vec<Progress> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("__test__/fixtures/sdcpp-output")
            .join(name);
        let bytes = std::fs::read(p).unwrap();
        let mut s = LineSplitter::new();
        let mut t = Tracker::new(count);
        let start = Instant::now();
        let mut out = Vec::new();
        for (i, seg) in s.feed(&bytes).iter().enumerate() {
            if let Some(p) = t.observe(&parse_line(seg), start + spacing * i as u32) {
                out.push(p);
            }
        }
        out.push(t.finish());
        out
    }

    #[test]
    fn monotonic_and_100_only_at_the_end() {
        for (name, count) in [("gen1.out", 1), ("batch.out", 2), ("srv.out", 1)] {
            let ups = run(name, count, Duration::from_millis(150));
            for w in ups.windows(2) {
                assert!(w[1].percentage >= w[0].percentage, "{name}: {:?}", ups);
            }
            let last = ups.last().unwrap();
            assert_eq!(last.percentage, 100.0);
            assert!(ups[..ups.len() - 1].iter().all(|p| p.percentage < 100.0));
        }
    }

    #[test]
    fn stages_in_order_with_steps() {
        let ups = run("gen1.out", 1, Duration::from_millis(150));
        let stages: Vec<Stage> = ups.iter().map(|p| p.stage).collect();
        let first_diff = stages.iter().position(|s| *s == Stage::Diffusion).unwrap();
        let first_dec = stages.iter().position(|s| *s == Stage::Decoding).unwrap();
        assert!(stages[0] == Stage::Loading && first_diff < first_dec);
        let steps: Vec<(u32, u32)> = ups
            .iter()
            .filter(|p| p.stage == Stage::Diffusion)
            .map(|p| (p.current_step, p.total_steps))
            .collect();
        assert_eq!(steps.last(), Some(&(3, 3)));
        let dec = ups.iter().find(|p| p.stage == Stage::Decoding).unwrap();
        assert_eq!((dec.current_step, dec.total_steps), (0, 0));
    }

    #[test]
    fn batch_reports_image_numbers() {
        let ups = run("batch.out", 2, Duration::from_millis(150));
        let imgs: Vec<u32> = ups
            .iter()
            .filter(|p| p.stage == Stage::Diffusion)
            .map(|p| p.current_image)
            .collect();
        assert!(imgs.windows(2).all(|w| w[0] <= w[1]), "{imgs:?}");
        assert_eq!((imgs[0], *imgs.last().unwrap()), (1, 2));
        assert_eq!(ups[0].to_json()["totalImages"], 2);
        let single = run("gen1.out", 1, Duration::from_millis(150));
        assert!(single[0].to_json().get("totalImages").is_none());
    }

    #[test]
    fn fast_steps_are_throttled_but_the_last_step_passes() {
        let mut t = Tracker::new(1);
        let now = Instant::now();
        let bar = |c: u32| Line::Progress {
            current: c,
            total: 50,
            kind: BarKind::Step,
        };
        let emitted: Vec<u32> = (1..=50)
            .filter_map(|c| t.observe(&bar(c), now).map(|p| p.current_step))
            .collect();
        assert_eq!(emitted, vec![1, 50]);
    }
}
