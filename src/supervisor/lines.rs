//! Splitting a child's byte stream into lines. Servers end lines with `\n`, progress bars redraw
//! with `\r`; both cut a line, ANSI sequences are removed, and a runaway line is cut rather than
//! buffered whole.

/// Splits a byte stream into segments on `\r` and `\n`, keeping an incomplete tail between feeds.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

/// Longest segment kept while waiting for a separator.
const MAX_SEGMENT: usize = 64 * 1024;

impl LineSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes and returns every completed, non-blank segment, ANSI codes removed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\r' || b == b'\n' {
                self.flush_into(&mut out);
            } else {
                self.pending.push(b);
                if self.pending.len() >= MAX_SEGMENT {
                    self.flush_into(&mut out);
                }
            }
        }
        out
    }

    /// Returns the incomplete tail (at end of stream).
    pub fn finish(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        self.flush_into(&mut out);
        out
    }

    fn flush_into(&mut self, out: &mut Vec<String>) {
        if self.pending.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        let clean = strip_ansi(&text);
        if !clean.trim().is_empty() {
            out.push(clean.trim_end().to_string());
        }
    }
}

/// Removes ANSI escape sequences (colours, erase-line).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // CSI: parameters and intermediates, then one final byte in @..~
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_cr_and_lf_keeps_partial_tail_and_strips_ansi() {
        let mut s = LineSplitter::new();
        assert_eq!(s.feed(b"a\x1b[31mb\x1b[0m\r\npart"), vec!["ab"]);
        assert_eq!(s.feed(b"ial\n\n  \nx"), vec!["partial"]);
        assert_eq!(s.finish(), vec!["x"]);
        assert!(s.finish().is_empty());
    }

    #[test]
    fn runaway_line_is_cut() {
        let mut s = LineSplitter::new();
        let long = vec![b'y'; MAX_SEGMENT + 10];
        let out = s.feed(&long);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), MAX_SEGMENT);
        assert_eq!(s.finish(), vec!["y".repeat(10)]);
    }
}
