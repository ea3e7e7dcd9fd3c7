//! The cross-process refresh lock: one file per session, locked with the OS's advisory file lock
//! (`flock`/`LockFileEx`). Concurrent `latchkey token` processes take turns, and each re-reads the
//! session after acquiring it, so a rotated refresh token is never redeemed twice.

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
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| {
            Error::internal(format!("cannot open the lock file {}: {e}", path.display()))
        })?;
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
            return Err(Error::new(
                ErrorKind::ProviderUnreachable,
                "another latchkey process has been refreshing this session for too long; try again",
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
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
}
