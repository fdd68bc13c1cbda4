//! The process environment the GPU drivers expect, set up before any adapter is opened.
//!
//! Why: when wgpu creates an instance, Mesa's drivers (lavapipe included) look up the per-user
//! runtime directory `XDG_RUNTIME_DIR` and, when it is unset or not an absolute path, print
//! `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` on stderr — twice, on a
//! user's terminal, about nothing FairQuant does wrong (servers, containers and `sudo` shells often
//! have no such variable). [`prepare`] points the variable at a private directory (created with
//! mode 0700, as the XDG spec requires) when it is missing or unusable, so the drivers stay quiet.
//! Only Linux has Mesa's drivers; elsewhere it does nothing.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The variable the drivers read.
pub const VAR: &str = "XDG_RUNTIME_DIR";

/// What [`prepare`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// The variable already named a usable directory; left as it was.
    Kept,
    /// The variable now names this private directory.
    Set(PathBuf),
    /// Left alone, with the reason (no private directory could be made, or not Linux); the
    /// drivers may print their warning, nothing else changes.
    Skipped(String),
}

/// Whether the variable's value is what the drivers accept: an absolute path to a directory.
pub fn usable(value: Option<&OsStr>) -> bool {
    value.is_some_and(|v| {
        let p = Path::new(v);
        p.is_absolute() && p.is_dir()
    })
}

/// `tmp/fq-runtime-<uid>`, created with mode 0700 if absent. An existing one is used only if it
/// is a real directory (not a symlink) owned by `uid` with no access for others, so another user
/// cannot plant it; our own with looser bits is tightened to 0700.
#[cfg(target_os = "linux")]
pub fn private_dir(tmp: &Path, uid: u32) -> Result<PathBuf, String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let dir = tmp.join(format!("fq-runtime-{uid}"));
    let shown = dir.display();
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {shown}: {e}")),
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| format!("{shown}: {e}"))?;
    if !meta.file_type().is_dir() {
        return Err(format!("{shown} exists and is not a directory"));
    }
    if meta.uid() != uid {
        return Err(format!("{shown} belongs to user {}, not {uid}", meta.uid()));
    }
    if meta.mode() & 0o777 != 0o700 {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make {shown} private: {e}"))?;
    }
    Ok(dir)
}

/// Points [`VAR`] at a private directory when it is unset or unusable (see the module doc).
///
/// # Safety
///
/// It changes the process environment (`std::env::set_var`), which is only sound while no other
/// thread can read or write the environment concurrently: C code such as the GPU drivers calls
/// `getenv` without Rust's environment lock. Call it at the start of `main`, before any thread
/// (rayon's pool, a progress bar, wgpu) exists — then there is no other thread to race with.
pub unsafe fn prepare() -> Prepared {
    if usable(std::env::var_os(VAR).as_deref()) {
        return Prepared::Kept;
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        // The process's own user: the owner of its /proc entry (no libc call needed).
        let uid = match std::fs::metadata("/proc/self") {
            Ok(m) => m.uid(),
            Err(e) => return Prepared::Skipped(format!("cannot read /proc/self: {e}")),
        };
        match private_dir(&std::env::temp_dir(), uid) {
            Ok(dir) => {
                // Sound per this function's contract: no other thread exists yet.
                std::env::set_var(VAR, &dir);
                Prepared::Set(dir)
            }
            Err(e) => Prepared::Skipped(e),
        }
    }
    #[cfg(not(target_os = "linux"))]
    Prepared::Skipped("only Linux's Mesa drivers need it".into())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn my_uid() -> u32 {
        std::fs::metadata("/proc/self").unwrap().uid()
    }

    #[test]
    fn only_absolute_existing_directories_are_usable() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(usable(Some(tmp.path().as_os_str())));
        assert!(!usable(None));
        assert!(!usable(Some(OsStr::new(""))));
        assert!(!usable(Some(OsStr::new("relative/dir"))));
        assert!(!usable(Some(tmp.path().join("absent").as_os_str())));
    }

    #[test]
    fn private_dir_is_created_0700_and_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let uid = my_uid();
        let dir = private_dir(tmp.path(), uid).unwrap();
        assert_eq!(dir, tmp.path().join(format!("fq-runtime-{uid}")));
        let mode = |d: &Path| std::fs::metadata(d).unwrap().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        // Ours with loose bits: tightened.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(private_dir(tmp.path(), uid).unwrap(), dir);
        assert_eq!(mode(&dir), 0o700);
        // Another user's (as far as the check knows): refused.
        let e = private_dir(tmp.path(), uid + 1).unwrap_err();
        assert!(e.contains("belongs to user"), "{e}");
        // A file or a symlink in its place: refused, never followed.
        let other = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(
            other.path(),
            tmp.path().join(format!("fq-runtime-{}", uid + 2)),
        )
        .unwrap();
        let e = private_dir(tmp.path(), uid + 2).unwrap_err();
        assert!(e.contains("is not a directory"), "{e}");
    }
}
