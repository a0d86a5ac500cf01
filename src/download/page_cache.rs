//! Drop-behind for a file a download streams through (Linux). Bytes that are written and hashed
//! are not needed in memory again. Left in the page cache, a 10 GB model evicts the rest of the
//! machine's cache, the kernel pays for gigabytes of fresh cache pages, and the final fsync finds
//! all of them dirty at once. So each window of the file is sent to disk as soon as it is done and,
//! one window later, waited for and dropped from the cache: the download's cache footprint stays
//! at two windows and the final fsync has almost nothing left. The cost is that the first load of
//! the model reads it from disk instead of from memory.
//!
//! Elsewhere this is a no-op and the final fsync does the writing.

use std::fs::File;

/// The bytes between two writeback requests (and the lag before a window is dropped).
#[cfg(not(test))]
pub const WINDOW: u64 = 64 << 20;
/// Small in tests, so a few MiB show the effect.
#[cfg(test)]
pub const WINDOW: u64 = 1 << 20;

/// Tracks how far a file has been sent to disk and dropped from the cache.
#[derive(Debug, Clone, Copy)]
pub struct DropBehind {
    window: u64,
    /// Writeback was requested for everything before this offset.
    started: u64,
    /// Everything before this offset was dropped (or was there before we started).
    dropped: u64,
}

impl DropBehind {
    /// For a file whose bytes before `from` are already dealt with (a resume).
    pub fn new(from: u64) -> Self {
        DropBehind::with_window(from, WINDOW)
    }

    pub fn with_window(from: u64, window: u64) -> Self {
        DropBehind {
            window: window.max(1),
            started: from,
            dropped: from,
        }
    }

    /// `upto`: every byte before it is written (or only read) and not needed in memory again.
    /// Starts writeback of the newest window and drops the one before it, which by then is
    /// usually on disk already, so the wait is short.
    pub fn advance(&mut self, file: &File, upto: u64) {
        if upto < self.started.saturating_add(self.window) {
            return;
        }
        start_writeback(file, self.started, upto - self.started);
        if self.started >= self.dropped.saturating_add(self.window) {
            wait_and_drop(file, self.dropped, self.started - self.dropped);
            self.dropped = self.started;
        }
        self.started = upto;
    }
}

/// Asks the kernel to start writing `[from, from + len)` to disk now (`len` 0: to the end).
#[cfg(target_os = "linux")]
pub fn start_writeback(file: &File, from: u64, len: u64) {
    use std::os::unix::io::AsRawFd;
    // SAFETY: a valid open descriptor; the call only schedules I/O and reports errors, which
    // the final fsync reports again.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            from as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(target_os = "linux")]
fn wait_and_drop(file: &File, from: u64, len: u64) {
    use std::os::unix::io::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: as above. Dirty pages cannot be dropped, so the range is written and waited for
    // first; a failed write stays dirty (not dropped) and the final fsync reports it.
    unsafe {
        libc::sync_file_range(
            fd,
            from as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER,
        );
        libc::posix_fadvise(
            fd,
            from as libc::off_t,
            len as libc::off_t,
            libc::POSIX_FADV_DONTNEED,
        );
    }
}

#[cfg(not(target_os = "linux"))]
pub fn start_writeback(_file: &File, _from: u64, _len: u64) {}

#[cfg(not(target_os = "linux"))]
fn wait_and_drop(_file: &File, _from: u64, _len: u64) {}

/// Test helper: how many of the pages of `[from, to)` of `path` are in the page cache, and how
/// many pages that range has. None where the cache cannot be observed (not Linux, or a
/// filesystem such as tmpfs whose pages are the file itself).
#[cfg(test)]
pub fn resident_pages(path: &std::path::Path, from: u64, to: u64) -> Option<(usize, usize)> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        let file = File::open(path).ok()?;
        // SAFETY: statfs fills the struct for an open descriptor.
        let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatfs(file.as_raw_fd(), &mut fs) } != 0 {
            return None;
        }
        // The field's type differs between targets.
        #[allow(clippy::unnecessary_cast)]
        if fs.f_type as i64 == libc::TMPFS_MAGIC as i64 {
            return None;
        }
        let page = 4096u64;
        let (from, to) = (from / page * page, to.div_ceil(page) * page);
        let len = (to - from) as usize;
        // SAFETY: a read-only shared mapping of an open file, unmapped below; mincore only
        // reports residency and does not fault pages in.
        unsafe {
            let addr = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                from as libc::off_t,
            );
            if addr == libc::MAP_FAILED {
                return None;
            }
            let mut vec = vec![0u8; len / page as usize];
            let ok = libc::mincore(addr, len, vec.as_mut_ptr()) == 0;
            libc::munmap(addr, len);
            if !ok {
                return None;
            }
            Some((vec.iter().filter(|v| *v & 1 == 1).count(), vec.len()))
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (path, from, to);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_mib(
        mib: u64,
        drop: Option<&mut DropBehind>,
    ) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let mut f = File::create(&p).unwrap();
        let block = vec![5u8; 1 << 20];
        let mut drop = drop;
        for i in 1..=mib {
            f.write_all(&block).unwrap();
            if let Some(d) = drop.as_deref_mut() {
                d.advance(&f, i << 20);
            }
        }
        (dir, p)
    }

    #[test]
    fn written_windows_leave_the_page_cache_one_window_behind() {
        let mut d = DropBehind::with_window(0, 2 << 20);
        let (_dir, p) = write_mib(16, Some(&mut d));
        let Some((resident, pages)) = resident_pages(&p, 0, 12 << 20) else {
            eprintln!("skipped: the page cache cannot be observed here");
            return;
        };
        assert!(
            resident * 10 < pages,
            "{resident} of {pages} pages still cached"
        );
        assert_eq!((d.dropped, d.started), (14 << 20, 16 << 20));
        // The newest windows stay: they may still be in flight to the disk.
        let (newest, _) = resident_pages(&p, 14 << 20, 16 << 20).unwrap();
        assert!(newest > 0);
    }

    #[test]
    fn without_it_the_written_bytes_stay_cached() {
        // The control for the test above: the residency probe does see cached pages.
        let (_dir, p) = write_mib(4, None);
        let Some((resident, pages)) = resident_pages(&p, 0, 4 << 20) else {
            return;
        };
        assert!(resident * 2 > pages, "{resident} of {pages}");
    }

    #[test]
    fn a_resume_starts_counting_at_its_offset() {
        let mut d = DropBehind::with_window(10 << 20, 2 << 20);
        let f = tempfile::tempfile().unwrap();
        d.advance(&f, 11 << 20);
        assert_eq!((d.started, d.dropped), (10 << 20, 10 << 20));
        d.advance(&f, 12 << 20);
        assert_eq!((d.started, d.dropped), (12 << 20, 10 << 20));
        d.advance(&f, 14 << 20);
        assert_eq!((d.started, d.dropped), (14 << 20, 12 << 20));
    }
}
