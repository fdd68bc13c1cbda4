//! An exclusive advisory lock between processes (`flock(2)`), for the shared files of a run that
//! several sweep cells may create at once (the importance cache). The kernel drops the lock when
//! the holder exits, so a killed Slurm task never leaves a stale lock behind, unlike a lock file
//! made with `O_EXCL`. `flock` works across nodes on NFSv4 and on Lustre mounted with `flock`.
//!
//! The lock only saves duplicate work: the files it guards are written atomically and are the
//! same whoever writes them, so where the file system cannot lock (`ENOSYS`, `ENOLCK`,
//! `EOPNOTSUPP`) [`Lock::acquire`] returns an unlocked guard and the caller proceeds.

use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::path::Path;

/// Held until dropped (closing the file releases the lock).
pub struct Lock {
    _file: File,
    /// Whether the file system granted the lock (false: it cannot lock; see the module doc).
    pub held: bool,
}

impl Lock {
    /// Block until this process holds the exclusive lock on `path` (created when missing).
    pub fn acquire(path: &Path) -> Result<Lock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("{}: cannot open the lock file", path.display()))?;
        let held =
            lock_exclusive(&file).with_context(|| format!("{}: cannot lock", path.display()))?;
        Ok(Lock { _file: file, held })
    }
}

/// `Ok(true)` when locked, `Ok(false)` when the file system has no locks.
#[cfg(unix)]
fn lock_exclusive(file: &File) -> std::io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    loop {
        // SAFETY: flock on a file descriptor this `File` owns for the whole call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ENOSYS | libc::ENOLCK | libc::EOPNOTSUPP) => return Ok(false),
            _ => return Err(e),
        }
    }
}

#[cfg(not(unix))]
fn lock_exclusive(_file: &File) -> std::io::Result<bool> {
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// A second holder (another open file description, as in another process) waits for the first.
    #[test]
    fn second_holder_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let first = Lock::acquire(&path).unwrap();
        assert!(first.held);
        let released = Arc::new(AtomicBool::new(false));
        let r = released.clone();
        let p = path.clone();
        let t = std::thread::spawn(move || {
            let _second = Lock::acquire(&p).unwrap();
            // Only reachable once the first lock is gone.
            assert!(
                r.load(Ordering::SeqCst),
                "acquired while the first lock was held"
            );
        });
        std::thread::sleep(Duration::from_millis(200));
        released.store(true, Ordering::SeqCst);
        drop(first);
        t.join().unwrap();
    }
}
