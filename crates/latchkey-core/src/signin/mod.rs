//! Signing in: one module per flow over the shared [`Context`], all ending in [`signed_in`].

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use url::Url;

use crate::context::Context;
use crate::error::Result;
use crate::session::{Identity, Session, cache, repo};

pub(crate) mod authorize;
pub(crate) mod callback;
pub(crate) mod code;
pub(crate) mod device;
pub(crate) mod hybrid;
pub(crate) mod implicit;
pub(crate) mod loopback;
pub(crate) mod policy;

pub use device::DeviceSignIn;
pub use implicit::IMPLICIT_WARNING;
pub use policy::{FrontEnd, SignInRoute};

/// A sign-in waiting for its redirect.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SignIn {
    /// The authorization request to open in the system browser. It carries `state` and the PKCE
    /// challenge, never a token.
    pub url: Url,
    pub redirect_uri: Url,
    pub expires_at: DateTime<Utc>,
}

/// What [`Latchkey::login_loopback`](crate::Latchkey::login_loopback) tells its caller along
/// the way.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoginNotice<'a> {
    /// Another process is signing in to this profile; this one waits for it.
    Waiting,
    /// The browser was asked to open `sign_in.url`; `result` says whether it could be started.
    Opened {
        sign_in: &'a SignIn,
        result: Result<()>,
    },
    /// A device sign-in (RFC 8628) waits for the user to enter `user_code` at
    /// `verification_uri`: show both (and `verification_uri_complete`, when there is one).
    Device { sign_in: &'a DeviceSignIn },
}

/// Stores a sign-in's new session, and logs how long it took after the redirect arrived and how
/// much of that was the provider (`make bench` reads `own_ms`).
pub(crate) async fn signed_in(
    ctx: &Context,
    session: &Session,
    started: Instant,
    waited_before: Duration,
) -> Result<Identity> {
    store_new_session(ctx, session).await?;
    let total = started.elapsed();
    let provider_wait = ctx.http().waited().saturating_sub(waited_before);
    tracing::info!(
        total_ms = total.as_secs_f64() * 1e3,
        provider_ms = provider_wait.as_secs_f64() * 1e3,
        own_ms = total.saturating_sub(provider_wait).as_secs_f64() * 1e3,
        "signed in"
    );
    Ok(repo::identity_of(ctx, session))
}

/// Saves a session a sign-in just made. Under the refresh lock: a refresh of the previous
/// session still in flight must not overwrite this one with its own result afterwards.
pub(crate) async fn store_new_session(ctx: &Context, session: &Session) -> Result<()> {
    let _exclusive = repo::exclusive(ctx).await?;
    ctx.vault
        .save(&ctx.session_name, session.to_bytes())
        .await?;
    cache::cache_token(ctx, session);
    Ok(())
}
