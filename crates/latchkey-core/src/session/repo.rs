//! The stored session: reading it (telling a damaged entry from an unreachable keychain), saving
//! it, and the locks every change to it holds.

use std::path::PathBuf;

use super::{Identity, Session};
use crate::context::Context;
use crate::error::{Error, ErrorKind, Result};
use crate::lock;
use crate::store::Stored;
use crate::util::short_hash;

pub(crate) async fn load(ctx: &Context) -> Result<Option<Session>> {
    match read_session(ctx).await? {
        Stored::Missing => Ok(None),
        Stored::Present(session) => Ok(Some(session)),
        Stored::Damaged(e) => Err(e),
    }
}

/// The stored session, telling a damaged entry (unknown format, missing chunk, unparsable
/// session) apart from a keychain that cannot be reached, which is the only error.
pub(crate) async fn read_session(ctx: &Context) -> Result<Stored<Session>> {
    Ok(match ctx.vault.read(&ctx.session_name).await? {
        Stored::Missing => Stored::Missing,
        Stored::Damaged(e) => Stored::Damaged(e),
        Stored::Present(bytes) => match Session::from_bytes(&bytes) {
            Some(session) => Stored::Present(session),
            None => Stored::Damaged(
                Error::new(ErrorKind::Keychain, "the stored session is unreadable")
                    .with_remedy(crate::Remedy::SignOutAndIn),
            ),
        },
    })
}

pub(crate) fn not_signed_in(ctx: &Context) -> Error {
    Error::new(
        ErrorKind::NotSignedIn,
        format!("not signed in (profile `{}`)", ctx.config.profile),
    )
    .with_remedy(crate::Remedy::SignIn)
}

/// Fails before a sign-in shows anything when its session could not be stored anyway; this also
/// opens the keychain connection, so the save after the redirect is fast. A damaged entry is no
/// obstacle: the new session replaces it.
pub(crate) async fn ready_for_new_session(ctx: &Context) -> Result<()> {
    let stored = ctx
        .vault
        .read(&ctx.session_name)
        .await
        .map_err(|e| e.context("before signing in"))?;
    if let Stored::Damaged(why) = stored {
        tracing::debug!(%why, "a new sign-in will replace the unreadable stored session");
    }
    Ok(())
}

/// Saves the session. A keychain that refuses the entry with its cached picture (the kernel
/// keyring's small quota) gets it without the picture: the picture is only a cache.
pub(crate) async fn save_session(ctx: &Context, session: &Session) -> Result<()> {
    match ctx.vault.save(&ctx.session_name, session.to_bytes()).await {
        Err(e) if session.picture.is_some() => {
            tracing::info!("saving the session without its cached picture: {e}");
            let mut without = session.clone();
            without.picture = None;
            ctx.vault.save(&ctx.session_name, without.to_bytes()).await
        }
        other => other,
    }
}

pub(crate) fn identity_of(ctx: &Context, session: &Session) -> Identity {
    let mut identity = session.identity();
    identity.store = ctx.vault.kind().map(|k| k.as_str());
    identity
}

/// The session lock: the in-process gate, then the cross-process refresh lock. Every change to
/// the stored session (refresh, sign-in, profile, picture, logout) holds it, always taken in this
/// order so that no two holders wait on each other.
pub(crate) struct SessionLock<'a> {
    _gate: tokio::sync::MutexGuard<'a, ()>,
    _file: Option<lock::RefreshLock>,
}

/// Takes the [`SessionLock`].
pub(crate) async fn exclusive(ctx: &Context) -> Result<SessionLock<'_>> {
    let gate = ctx.refresh_gate.lock().await;
    let file = lock::acquire(&lock_path(ctx)?, lock::LOCK_WAIT).await?;
    Ok(SessionLock {
        _gate: gate,
        _file: Some(file),
    })
}

/// [`exclusive`] for signing out, which must work even when the lock file cannot be opened or
/// locked (no per-user directory, a full disk): such a lock cannot be held by a refresh either,
/// so none is in flight, and the gate alone is held.
pub(crate) async fn exclusive_for_logout(ctx: &Context) -> Result<SessionLock<'_>> {
    let gate = ctx.refresh_gate.lock().await;
    let file = match lock_path(ctx) {
        Ok(path) => lock::acquire(&path, lock::LOCK_WAIT).await,
        Err(e) => Err(e),
    };
    let file = match file {
        Ok(held) => Some(held),
        Err(e) if e.kind() == ErrorKind::Internal => {
            tracing::warn!("signing out without the refresh lock: {e}");
            None
        }
        Err(e) => return Err(e),
    };
    Ok(SessionLock {
        _gate: gate,
        _file: file,
    })
}

/// The refresh lock lives in a per-user directory: the cache directory, else the runtime
/// directory. Never a shared path like /tmp, where another user could create it first.
pub(crate) fn lock_path(ctx: &Context) -> Result<PathBuf> {
    lock_file(ctx, "refresh")
}

/// `<dir>/<session hash>.lock` for the refresh lock (the name it always had), and
/// `<session hash>.<what>.lock` for others.
pub(crate) fn lock_file(ctx: &Context, what: &str) -> Result<PathBuf> {
    let name = match what {
        "refresh" => short_hash(&ctx.session_name, 12),
        other => format!("{}.{other}", short_hash(&ctx.session_name, 12)),
    };
    let dir = ctx
        .ports
        .cache_dir
        .as_ref()
        .map(|d| d.join("locks"))
        .or_else(|| ctx.ports.identity.runtime_dir().map(|d| d.join("locks")))
        .ok_or_else(|| {
            Error::internal(
                "there is no per-user cache or runtime directory for the refresh lock; set HOME (or XDG_CACHE_HOME)",
            )
        })?;
    Ok(dir.join(format!("{name}.lock")))
}
