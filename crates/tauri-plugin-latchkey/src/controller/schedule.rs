//! Timers and retry delays, one kind for the shown account's refresh, the background accounts'
//! refreshes and the sign-in timeout.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tauri::async_runtime::JoinHandle;

/// Waits between automatic retries of a failed refresh.
const RETRY_DELAYS: [u64; 6] = [5, 15, 30, 60, 120, 300];

/// How long the wall-clock sleep lasts at most before it looks at the clock again.
const SLICE: Duration = Duration::from_secs(30);

/// A little past `refresh_at`, so the core sees the token as due.
const PAST_DUE: chrono::Duration = chrono::Duration::milliseconds(250);

/// When to refresh a session whose core says `refresh_at`.
pub(super) fn refresh_due(refresh_at: DateTime<Utc>) -> DateTime<Utc> {
    refresh_at + PAST_DUE
}

/// A spawned task the controller can stop: a timer, or the loopback sign-in. Setting a new one
/// stops the old one; dropping it stops it too.
#[derive(Debug, Default)]
pub(super) struct Task(Option<JoinHandle<()>>);

impl Task {
    /// Runs `task` once the wall clock reaches `due`. The sleep is sliced and checked against the
    /// wall clock because a monotonic timer stops while the computer sleeps, and a refresh must
    /// not come an hour late after a suspend. `task` runs detached: a refresh cut short by a
    /// later `stop` could lose a rotated refresh token.
    pub(super) fn at<F>(&mut self, due: DateTime<Utc>, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.set(tauri::async_runtime::spawn(async move {
            while let Ok(left) = (due - Utc::now()).to_std() {
                if left.is_zero() {
                    break;
                }
                tokio::time::sleep(left.min(SLICE)).await;
            }
            tauri::async_runtime::spawn(task);
        }));
    }

    /// Runs `task` after `wait` (monotonic), in the timer's own task: the sign-in timeout, whose
    /// `task` is synchronous and so cannot be cut short.
    pub(super) fn after<F>(&mut self, wait: Duration, task: F)
    where
        F: FnOnce() + Send + 'static,
    {
        self.set(tauri::async_runtime::spawn(async move {
            tokio::time::sleep(wait).await;
            task();
        }));
    }

    /// Holds `handle`, stopping what was held.
    pub(super) fn set(&mut self, handle: JoinHandle<()>) {
        self.stop();
        self.0 = Some(handle);
    }

    pub(super) fn stop(&mut self) {
        if let Some(t) = self.0.take() {
            t.abort();
        }
    }

    /// The task has run (it is the caller): let go of it without stopping it.
    pub(super) fn done(&mut self) {
        self.0 = None;
    }

    pub(super) fn is_set(&self) -> bool {
        self.0.is_some()
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The wait before the next retry of a failing refresh: 5 s, 15 s, 30 s … 5 min, then 5 min.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Counts a failure and returns the wait before the next attempt.
    pub(super) fn next(&mut self) -> Duration {
        let i = (self.failures as usize).min(RETRY_DELAYS.len() - 1);
        self.failures += 1;
        Duration::from_secs(RETRY_DELAYS[i])
    }

    pub(super) fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_climbs_to_five_minutes_and_stays_there_until_reset() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..8).map(|_| b.next().as_secs()).collect();
        assert_eq!(waits, [5, 15, 30, 60, 120, 300, 300, 300]);
        b.reset();
        assert_eq!(b.next(), Duration::from_secs(5));
    }

    #[test]
    fn a_refresh_is_due_just_after_refresh_at() {
        let t = Utc::now();
        assert_eq!(refresh_due(t) - t, chrono::Duration::milliseconds(250));
    }

    #[test]
    fn an_empty_task_stops_and_lets_go_quietly() {
        let mut t = Task::default();
        assert!(!t.is_set());
        t.stop();
        t.done();
        assert!(!t.is_set());
    }
}
