//! Signing out: revocation (RFC 7009), the provider's end-session URL (RP-Initiated Logout), and
//! the keychain entry deleted whatever the provider said.

use super::refresh::{self, Sends};
use super::{cache, repo};
use crate::config::FlowChoice;
use crate::context::Context;
use crate::error::{ErrorKind, Result};
use crate::lock;
use crate::oauth::{end_session, revoke};
use crate::store::Stored;
use url::Url;

/// What [`Latchkey::logout`](crate::Latchkey::logout) did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Logout {
    /// Whether there was a session to forget.
    pub was_signed_in: bool,
    /// Whether the provider confirmed the revocation (RFC 7009).
    pub revoked: bool,
    /// Why revocation did not happen, when it didn't.
    pub revocation_problem: Option<String>,
    /// The provider's RP-initiated logout URL, to open in the browser to also end the provider's
    /// session. It contains an `id_token_hint`: open it, don't display or log it.
    pub end_session_url: Option<Url>,
    /// Whether the stored session was unreadable (damaged or incomplete keychain entry): it was
    /// removed without revocation, since its tokens could not be read.
    pub damaged: bool,
}

/// Signs out: revokes the refresh token (RFC 7009) when the provider can, then deletes the
/// keychain entry even if revocation failed.
/// An unreadable session is deleted all the same (`damaged` says so), so a damaged keychain
/// entry can never lock the user out.
///
/// It holds the refresh lock from before reading the session to after deleting it: a
/// refresh that has already sent the old refresh token would otherwise save the rotated one
/// (RFC 9700 §4.14.2) after the delete, and the session would come back.
pub(crate) async fn logout(ctx: &Context) -> Result<Logout> {
    // First, and even when no session is left: a cached token must not outlive a logout.
    cache::uncache_token(ctx)?;
    let _gate = ctx.refresh_gate.lock().await;
    let _file = match repo::lock_path(ctx) {
        Ok(path) => match lock::acquire(&path, lock::LOCK_WAIT).await {
            Ok(held) => Some(held),
            // A lock file that cannot be opened or locked cannot be for a refresh either, so
            // none is in flight: signing out must still work.
            Err(e) if e.kind() == ErrorKind::Internal => {
                tracing::warn!("signing out without the refresh lock: {e}");
                None
            }
            Err(e) => return Err(e.context("signing out")),
        },
        Err(e) => {
            tracing::warn!("signing out without the refresh lock: {e}");
            None
        }
    };
    // Again, under the lock: a refresh that finished while we waited cached its token.
    cache::uncache_token(ctx)?;
    let session = match repo::read_session(ctx).await? {
        Stored::Missing => return Ok(Logout::default()),
        Stored::Present(session) => session,
        Stored::Damaged(why) => {
            tracing::debug!(%why, "removing an unreadable stored session");
            ctx.vault.delete(&ctx.session_name).await?;
            return Ok(Logout {
                was_signed_in: true,
                damaged: true,
                revocation_problem: Some(
                    "the stored session was unreadable, so its tokens could not be revoked".into(),
                ),
                ..Default::default()
            });
        }
    };
    let mut out = Logout {
        was_signed_in: true,
        ..Default::default()
    };
    match refresh::provider_for(ctx, &session, Sends::Logout).await {
        // The implicit flow issues no token that could be revoked (RFC 7009 §2).
        Ok(provider) if session.flow == FlowChoice::Implicit.as_str() => {
            out.end_session_url = end_session::end_session_url(ctx, &provider, &session);
        }
        Ok(provider) => {
            out.end_session_url = end_session::end_session_url(ctx, &provider, &session);
            match revoke::revoke(ctx, &provider, &session).await {
                Ok(revoked) => out.revoked = revoked,
                Err(e) => out.revocation_problem = Some(e.to_string()),
            }
            if !out.revoked && out.revocation_problem.is_none() {
                out.revocation_problem = Some("the provider offers no revocation endpoint".into());
            }
        }
        Err(e) => out.revocation_problem = Some(e.to_string()),
    }
    ctx.vault.delete(&ctx.session_name).await?;
    Ok(out)
}
