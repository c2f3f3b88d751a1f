//! Claiming host uids for sandbox slots, so that two aha processes on one host (a training run
//! and an evaluation, say) never share one.
//!
//! A shared uid would be doubly wrong: the process limit counts per host uid, and after each run
//! the sandbox kills every process of its uid. A uid is claimed by holding an exclusive `flock`
//! on `<lock dir>/uid-N` for the claimant's life (the kernel drops it if aha dies) and is taken
//! only if no process runs as it. Candidates are tried upward from the configured base.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use super::sandbox::processes_of;
use super::SandboxError;

/// How far above the base to look before giving up.
const SEARCH: u32 = 4096;

/// Host uids held for the life of this value.
#[derive(Debug)]
pub struct ClaimedUids {
    pub uids: Vec<u32>,
    /// Holding these keeps the locks.
    _locks: Vec<File>,
}

fn lock_dir() -> PathBuf {
    let run_lock = PathBuf::from("/run/lock");
    match run_lock.is_dir() {
        true => run_lock.join("aha-sandbox"),
        false => std::env::temp_dir().join("aha-sandbox"),
    }
}

/// Claims `count` free uids at or above `base`.
pub fn claim(base: u32, count: u32) -> Result<ClaimedUids, SandboxError> {
    let dir = lock_dir();
    std::fs::create_dir_all(&dir).map_err(|e| {
        SandboxError::Config(format!(
            "creating the uid lock directory {}: {e}",
            dir.display()
        ))
    })?;
    let (mut uids, mut locks) = (Vec::new(), Vec::new());
    let end = base.saturating_add(SEARCH).min(i32::MAX as u32);
    for uid in base..end {
        if uids.len() == count as usize {
            break;
        }
        let path = dir.join(format!("uid-{uid}"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| SandboxError::Config(format!("opening {}: {e}", path.display())))?;
        // SAFETY: flock on an fd we own; LOCK_NB makes it fail rather than wait.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if locked && processes_of(uid).is_empty() {
            uids.push(uid);
            locks.push(file);
        }
    }
    if uids.len() < count as usize {
        return Err(SandboxError::Config(format!(
            "found only {} free uids in {base}..{end} for {count} sandbox slots (held by other \
             aha processes, or used by running processes); set uid_base elsewhere",
            uids.len()
        )));
    }
    Ok(ClaimedUids {
        uids,
        _locks: locks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_exclusive_and_released_on_drop() {
        let base = 2_050_000_000;
        let a = claim(base, 2).unwrap();
        assert_eq!(a.uids, [base, base + 1]);
        let b = claim(base, 2).unwrap();
        assert_eq!(b.uids, [base + 2, base + 3]);
        drop(a);
        let c = claim(base, 1).unwrap();
        assert_eq!(c.uids, [base]);
    }
}
