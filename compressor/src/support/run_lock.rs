//! One writer per run directory: an advisory lock that `train`, `compress`, `sweep`, `export`,
//! `diagnose` and `demo` take before they touch a run.
//!
//! Two processes writing one run would interleave checkpoints, `report.json` rows and method
//! directories without either noticing. The lock is an OS file lock (`flock` on Unix,
//! `LockFileEx` on Windows) on `RUN/.fq-lock`, so the kernel releases it when its holder dies,
//! however it dies: a lock left by a killed process is never stale in effect, only its file
//! remains, and the next process takes it over and says so. The holder writes its pid, command and
//! start time into the file so that a second process can name who is using the run.
//!
//! A shared lock lets several cooperating processes (the cells of a cluster sweep) use one run at
//! once, each writing only its own method directory under an exclusive lock of that directory,
//! while an exclusive lock (e.g. `train`) still waits for none of them and fails instead.

use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The lock file's name inside a locked directory.
pub const LOCK_FILE: &str = ".fq-lock";

/// Whether other processes may hold the lock at the same time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// The only process using the directory.
    Exclusive,
    /// One of several cooperating processes (sweep cells); excludes exclusive holders.
    Shared,
}

/// A held lock; released when dropped (or when the process ends, however it ends).
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
    kind: LockKind,
}

/// What a holder wrote into the lock file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Holder {
    pid: u32,
    command: String,
    started: u64,
}

impl Holder {
    fn parse(text: &str) -> Option<Holder> {
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::trim)
        };
        Some(Holder {
            pid: field("pid")?.parse().ok()?,
            command: field("command").unwrap_or("").to_string(),
            started: field("started").and_then(|s| s.parse().ok()).unwrap_or(0),
        })
    }

    fn describe(&self) -> String {
        let age = now_secs().saturating_sub(self.started);
        format!("pid {} (`{}`, started {age} s ago)", self.pid, self.command)
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl RunLock {
    /// Takes the exclusive lock of `dir` (created if missing) for `command`, or fails at once
    /// naming the process that holds it.
    pub fn exclusive(dir: &Path, command: &str) -> Result<RunLock> {
        Self::acquire(dir, command, LockKind::Exclusive)
    }

    /// Takes a shared lock of `dir` (see [`LockKind::Shared`]).
    pub fn shared(dir: &Path, command: &str) -> Result<RunLock> {
        Self::acquire(dir, command, LockKind::Shared)
    }

    pub fn acquire(dir: &Path, command: &str, kind: LockKind) -> Result<RunLock> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create directory", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("{}: cannot open the lock file", path.display()))?;
        let attempt = match kind {
            LockKind::Exclusive => file.try_lock(),
            LockKind::Shared => file.try_lock_shared(),
        };
        let previous = read_holder(&mut file);
        match attempt {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let who = previous.map_or_else(
                    || "other fq-compress processes (sweep cells)".to_string(),
                    |h| h.describe(),
                );
                bail!(
                    "{}: in use by {who}; wait for it to finish or stop it, then run this again (lock: {})",
                    dir.display(),
                    path.display()
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("{}: cannot lock", path.display()))
            }
        }
        if kind == LockKind::Exclusive {
            if let Some(h) = previous.filter(|h| h.pid != std::process::id()) {
                eprintln!(
                    "note: {}: taking over the lock left by {}, which ended without releasing it (killed?)",
                    dir.display(),
                    h.describe()
                );
            }
            let text = format!(
                "pid={}\ncommand={command}\nstarted={}\n",
                std::process::id(),
                now_secs()
            );
            file.set_len(0)
                .and_then(|()| file.seek(SeekFrom::Start(0)))
                .and_then(|_| file.write_all(text.as_bytes()))
                .and_then(|()| file.flush())
                .with_context(|| format!("{}: cannot write the lock file", path.display()))?;
        }
        Ok(RunLock { file, path, kind })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    /// A clean exit empties the file, so that only a holder that died leaves its pid behind.
    fn drop(&mut self) {
        if self.kind == LockKind::Exclusive {
            let _ = self.file.set_len(0);
        }
        let _ = self.file.unlock();
    }
}

/// A blocking exclusive lock on one file, for work that cooperating processes may start at the
/// same moment (the importance cache that concurrent sweep cells share): the second holder waits
/// for the first and then reuses what it wrote. The files it guards are written atomically and are
/// the same whoever writes them, so the lock only saves duplicate work: where the file system
/// cannot lock (some network mounts), [`WaitLock::acquire`] returns an unheld guard and the caller
/// proceeds. Like [`RunLock`], it dies with its holder (NFSv4 and Lustre mounted with `flock`
/// lock across nodes).
pub struct WaitLock {
    _file: File,
    /// Whether the file system granted the lock (false: it cannot lock).
    pub held: bool,
}

impl WaitLock {
    /// Blocks until this process holds the exclusive lock on `path` (created when missing).
    pub fn acquire(path: &Path) -> Result<WaitLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("{}: cannot open the lock file", path.display()))?;
        let held = match file.lock() {
            Ok(()) => true,
            Err(e) if cannot_lock_here(&e) => false,
            Err(e) => return Err(e).with_context(|| format!("{}: cannot lock", path.display())),
        };
        Ok(WaitLock { _file: file, held })
    }
}

/// A file system without locks (`ENOSYS`, `EOPNOTSUPP`; `ENOLCK` from an NFS mount without
/// its lock daemon).
fn cannot_lock_here(e: &std::io::Error) -> bool {
    const ENOLCK: i32 = 37;
    e.kind() == std::io::ErrorKind::Unsupported
        || (cfg!(target_os = "linux") && e.raw_os_error() == Some(ENOLCK))
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(4096).read_to_string(&mut text).ok()?;
    Holder::parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_exclusive_holder_is_refused_with_the_first_pid() {
        let tmp = tempfile::tempdir().unwrap();
        let first = RunLock::exclusive(tmp.path(), "fq-compress train").unwrap();
        let err = RunLock::exclusive(tmp.path(), "fq-compress compress")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("in use by pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("fq-compress train"), "{err}");
        drop(first);
        RunLock::exclusive(tmp.path(), "fq-compress compress").unwrap();
    }

    #[test]
    fn shared_holders_coexist_and_exclude_an_exclusive_one() {
        let tmp = tempfile::tempdir().unwrap();
        let a = RunLock::shared(tmp.path(), "cell 0").unwrap();
        let b = RunLock::shared(tmp.path(), "cell 1").unwrap();
        let err = RunLock::exclusive(tmp.path(), "train")
            .unwrap_err()
            .to_string();
        assert!(err.contains("in use by"), "{err}");
        drop((a, b));
        let x = RunLock::exclusive(tmp.path(), "train").unwrap();
        assert!(RunLock::shared(tmp.path(), "cell 2").is_err());
        drop(x);
    }

    /// A second holder (another open file description, as in another process) waits for the first.
    #[test]
    fn a_second_wait_lock_waits_for_the_first() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let first = WaitLock::acquire(&path).unwrap();
        assert!(first.held);
        let released = Arc::new(AtomicBool::new(false));
        let r = released.clone();
        let p = path.clone();
        let t = std::thread::spawn(move || {
            let _second = WaitLock::acquire(&p).unwrap();
            // Only reachable once the first lock is gone.
            assert!(
                r.load(Ordering::SeqCst),
                "acquired while the first lock was held"
            );
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        released.store(true, Ordering::SeqCst);
        drop(first);
        t.join().unwrap();
    }

    #[test]
    fn a_clean_exit_leaves_no_pid_and_a_stale_file_is_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        drop(RunLock::exclusive(tmp.path(), "export").unwrap());
        let path = tmp.path().join(LOCK_FILE);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        // What a killed holder leaves: its pid in an unlocked file.
        std::fs::write(&path, "pid=999999\ncommand=fq-compress train\nstarted=0\n").unwrap();
        let lock = RunLock::exclusive(tmp.path(), "fq-compress train --resume").unwrap();
        let text = std::fs::read_to_string(lock.path()).unwrap();
        assert_eq!(
            Holder::parse(&text).map(|h| h.pid),
            Some(std::process::id())
        );
    }
}
