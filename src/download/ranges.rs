//! The byte ranges of a file that are on disk: what a ranged download has written, what its
//! sidecar records for a resume after a crash, and what is still to fetch.

use serde::{Deserialize, Serialize};

/// Sorted, disjoint, non-touching half-open ranges `[start, end)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RangeSet(Vec<(u64, u64)>);

impl RangeSet {
    pub fn new() -> Self {
        RangeSet(Vec::new())
    }

    /// A set from untrusted spans (a sidecar): empty or inverted spans are dropped, overlaps merged,
    /// everything clipped to `limit`.
    pub fn from_spans(spans: &[(u64, u64)], limit: u64) -> Self {
        let mut s = RangeSet::new();
        for &(a, b) in spans {
            s.insert(a.min(limit), b.min(limit));
        }
        s
    }

    pub fn spans(&self) -> &[(u64, u64)] {
        &self.0
    }

    /// Adds `[start, end)`; returns how many bytes were not in the set before.
    pub fn insert(&mut self, start: u64, end: u64) -> u64 {
        if start >= end {
            return 0;
        }
        let before = self.covered();
        // Ranges that touch or overlap the new one are merged into it.
        let first = self.0.partition_point(|&(_, e)| e < start);
        let mut last = first;
        let (mut a, mut b) = (start, end);
        while last < self.0.len() && self.0[last].0 <= end {
            a = a.min(self.0[last].0);
            b = b.max(self.0[last].1);
            last += 1;
        }
        self.0.splice(first..last, [(a, b)]);
        self.covered() - before
    }

    pub fn covered(&self) -> u64 {
        self.0.iter().map(|(a, b)| b - a).sum()
    }

    /// The end of the contiguous run starting at `from` (`from` itself when `from` is missing).
    pub fn contiguous_end(&self, from: u64) -> u64 {
        let i = self.0.partition_point(|&(_, e)| e <= from);
        match self.0.get(i) {
            Some(&(a, b)) if a <= from => b,
            _ => from,
        }
    }

    /// The ranges of `[0, total)` not in the set.
    pub fn gaps(&self, total: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut pos = 0;
        for &(a, b) in &self.0 {
            if a >= total {
                break;
            }
            if a > pos {
                out.push((pos, a));
            }
            pos = pos.max(b);
        }
        if pos < total {
            out.push((pos, total));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_merges_and_counts_new_bytes() {
        let mut s = RangeSet::new();
        assert_eq!(s.insert(10, 20), 10);
        assert_eq!(s.insert(30, 40), 10);
        assert_eq!(s.insert(15, 35), 10);
        assert_eq!(s.spans(), &[(10, 40)]);
        assert_eq!(s.insert(40, 50), 10, "touching ranges merge");
        assert_eq!(s.spans(), &[(10, 50)]);
        assert_eq!(s.insert(0, 5), 5);
        assert_eq!(s.insert(12, 13), 0);
        assert_eq!(s.insert(7, 7), 0);
        assert_eq!(s.spans(), &[(0, 5), (10, 50)]);
        assert_eq!(s.covered(), 45);
    }

    #[test]
    fn contiguous_runs_and_gaps() {
        let s = RangeSet::from_spans(&[(20, 30), (0, 10), (25, 28), (50, 200)], 100);
        assert_eq!(s.spans(), &[(0, 10), (20, 30), (50, 100)]);
        assert_eq!(s.contiguous_end(0), 10);
        assert_eq!(s.contiguous_end(5), 10);
        assert_eq!(s.contiguous_end(10), 10);
        assert_eq!(s.contiguous_end(20), 30);
        assert_eq!(s.gaps(100), vec![(10, 20), (30, 50)]);
        assert_eq!(RangeSet::new().gaps(7), vec![(0, 7)]);
        assert_eq!(RangeSet::from_spans(&[(9, 3)], 10).covered(), 0);
    }
}
