//! The cross-process refresh lock: one file per session, locked with the OS's advisory file lock
//! (`flock`/`LockFileEx`). Concurrent `latchkey token` processes take turns, and each re-reads the
//! session after acquiring it, so a rotated refresh token is never redeemed twice. The same
//! lock, on another file, lets only one process of a profile sign in through the browser at once.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};

/// Holds the lock until dropped.
#[derive(Debug)]
pub(crate) struct RefreshLock {
    _file: File,
}

/// Longest wait for another process's refresh: its HTTP call is capped at 30 s, plus keychain.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(60);

pub(crate) async fn acquire(path: &Path, wait: Duration) -> Result<RefreshLock> {
    acquire_or(
        path,
        wait,
        "another process has been refreshing this session for too long; try again",
    )
    .await
}

/// Takes the lock if it is free right now; `None` when another process holds it.
pub(crate) fn try_acquire(path: &Path) -> Result<Option<RefreshLock>> {
    let file = open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(RefreshLock { _file: file })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(Error::internal(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

fn open(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        private_dir(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::internal(format!("cannot open the lock file {}: {e}", path.display())))
}

/// Waits up to `wait` for the lock; `busy` is the error when it stays taken.
pub(crate) async fn acquire_or(path: &Path, wait: Duration, busy: &str) -> Result<RefreshLock> {
    let file = open(path)?;
    let started = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(RefreshLock { _file: file }),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                return Err(Error::internal(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )));
            }
        }
        if started.elapsed() >= wait {
            return Err(Error::new(ErrorKind::ProviderUnreachable, busy));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Creates the lock directory for this user only (0700) or checks that an existing one is: a
/// real directory, not a symlink, owned by us and not writable by group or others. Otherwise
/// another local user could hold our lock (stalling every refresh) or swap the lock file.
pub(crate) fn private_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
        let refuse = |why: &str| -> Result<()> {
            Err(Error::internal(format!(
                "refusing the lock directory {}: {why}",
                dir.display()
            )))
        };
        match std::fs::symlink_metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| {
                        Error::internal(format!("cannot create {}: {e}", dir.display()))
                    })?;
            }
            Err(e) => {
                return Err(Error::internal(format!(
                    "cannot inspect {}: {e}",
                    dir.display()
                )));
            }
            Ok(_) => {}
        }
        // symlink_metadata: a symlink is judged itself, never followed.
        let meta = std::fs::symlink_metadata(dir)
            .map_err(|e| Error::internal(format!("cannot inspect {}: {e}", dir.display())))?;
        if meta.file_type().is_symlink() {
            return refuse("it is a symbolic link");
        }
        if !meta.is_dir() {
            return refuse("it is not a directory");
        }
        if meta.uid() != rustix::process::geteuid().as_raw() {
            return refuse("it belongs to another user");
        }
        if meta.mode() & 0o022 != 0 {
            return refuse("other users can write to it; run `chmod go-w` on it");
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        // The per-user profile directory is already private on Windows.
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_holder_waits_then_times_out() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("x.lock");
        let held = acquire(&path, LOCK_WAIT).await.expect("first");
        let e = acquire(&path, Duration::from_millis(100))
            .await
            .expect_err("held");
        assert!(e.message().contains("too long"), "{e}");
        drop(held);
        acquire(&path, Duration::from_millis(100))
            .await
            .expect("released");
    }

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::symlink_metadata(p)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_lock_directory_is_created_private() {
        let dir = tempfile::tempdir().expect("tmp");
        let locks = dir.path().join("cache").join("locks");
        let _held = acquire(&locks.join("x.lock"), LOCK_WAIT)
            .await
            .expect("lock");
        assert_eq!(mode(&locks), 0o700);
        assert_eq!(mode(&dir.path().join("cache")), 0o700);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_symlinked_lock_directory_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let real = dir.path().join("real");
        std::fs::create_dir(&real).expect("mkdir");
        let link = dir.path().join("locks");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let e = acquire(&link.join("x.lock"), LOCK_WAIT)
            .await
            .expect_err("symlink");
        assert!(e.message().contains("symbolic link"), "{e}");
        assert!(!real.join("x.lock").exists());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_world_writable_lock_directory_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tmp");
        let locks = dir.path().join("locks");
        std::fs::create_dir(&locks).expect("mkdir");
        std::fs::set_permissions(&locks, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let e = acquire(&locks.join("x.lock"), LOCK_WAIT)
            .await
            .expect_err("0777");
        assert!(e.message().contains("other users can write"), "{e}");
        std::fs::set_permissions(&locks, std::fs::Permissions::from_mode(0o770)).expect("chmod");
        assert!(
            acquire(&locks.join("x.lock"), LOCK_WAIT).await.is_err(),
            "group-writable"
        );
        assert!(!locks.join("x.lock").exists());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_lock_directory_of_another_user_is_refused() {
        if rustix::process::geteuid().as_raw() != 0 {
            return; // only root can give a directory away
        }
        let dir = tempfile::tempdir().expect("tmp");
        let locks = dir.path().join("locks");
        std::fs::create_dir(&locks).expect("mkdir");
        std::os::unix::fs::chown(&locks, Some(65534), Some(65534)).expect("chown");
        let e = acquire(&locks.join("x.lock"), LOCK_WAIT)
            .await
            .expect_err("foreign");
        assert!(e.message().contains("another user"), "{e}");
    }
}
