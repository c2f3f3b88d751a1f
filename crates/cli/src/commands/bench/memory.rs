//! Peak resident memory of a benchmark row, from Linux's per-process high-water mark.
//!
//! `VmHWM` in `/proc/self/status` is the peak RSS since the process started or since it was last
//! reset by writing `5` to `/proc/self/clear_refs`; [`reset_peak`] does that before each row so a
//! row's figure is its own (the allocator keeps freed pages, so it still includes what earlier
//! rows left mapped). Elsewhere both are no-ops and rows carry no memory figure.

/// Starts a new peak-RSS measurement; silently does nothing where the kernel does not allow it.
pub fn reset_peak() {
    // Best effort: an old kernel or a restricted /proc just leaves the peak since start.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak resident set size since the last [`reset_peak`], in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_grows_with_a_touched_buffer() {
        let Some(before) = peak_rss_bytes() else {
            return; // not Linux
        };
        let buf = vec![1u8; 64 << 20];
        let after = peak_rss_bytes().unwrap_or(0);
        assert!(after >= before.max(64 << 20), "{before} -> {after}");
        drop(std::hint::black_box(buf));
    }
}
