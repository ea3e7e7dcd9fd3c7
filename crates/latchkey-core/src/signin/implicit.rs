//! The implicit flow with form post (OIDC Core §3.2, `response_type=id_token`,
//! `response_mode=form_post`): sign-in only. The browser POSTs a verified-here ID token to the
//! loopback listener; there is no code, no access token and no refresh token, so nothing can be
//! refreshed, handed to a resource or revoked. RFC 9700 §2.1.2 discourages the implicit grant
//! (its tokens travel the front channel); without an access token its main risks (token leakage
//! and injection) shrink to the ID token, which is bound to this sign-in by its `nonce`.
//!
//! The session keeps the ID token in the keychain until its `exp`, then it is gone: a new
//! sign-in is the only way on. A custom scheme cannot receive a form POST, so the app refuses
//! this flow in [`begin`](super::authorize::begin).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::hybrid::front_channel_id_token;
use crate::context::Context;
use crate::discovery::Provider;
use crate::error::{Error, ErrorKind, Result};
use crate::flow::{CallbackParams, Sent};
use crate::oauth::id_token;
use crate::session::{Session, build};
use crate::util::jwt_payload;

/// The line a CLI prints at each implicit sign-in.
pub const IMPLICIT_WARNING: &str = "the implicit flow is discouraged by RFC 9700 §2.1.2 (OAuth 2.0 Security BCP); it signs you in only, with no access or refresh token; prefer flow = code or hybrid";

/// §3.2.2.11: verifies the response's ID token (`nonce` required) and makes a session of it.
pub(crate) async fn implicit_session(
    ctx: &Context,
    provider: &Arc<Provider>,
    sent: &Sent,
    params: CallbackParams,
) -> Result<Session> {
    let Some(raw) = params.id_token.filter(|_| params.code.is_none()) else {
        return Err(Error::new(
            ErrorKind::ForeignCallback,
            "the sign-in response is not the ID token alone that `id_token` returns (OIDC Core §3.2.2.5); please sign in again",
        ));
    };
    let id_token = front_channel_id_token(&raw)?;
    let claims = id_token::verify_front(ctx, provider, &id_token, sent, None)
        .await
        .map_err(|e| e.context("the sign-in response was refused"))?;
    // Verified just above; only `exp` is read again here.
    let expires_at = jwt_payload(&raw)
        .and_then(|c| c.get("exp")?.as_i64())
        .and_then(|exp| DateTime::<Utc>::from_timestamp(exp, 0))
        .ok_or_else(|| Error::new(ErrorKind::ProviderInvalid, "the ID token has no exp"))?;
    Ok(build::implicit_session(
        ctx,
        provider,
        raw,
        claims,
        expires_at,
        sent.par(),
    ))
}

/// The error `token` gives for an implicit session.
pub(crate) fn no_access_token() -> Error {
    Error::new(
        ErrorKind::NoAccessToken,
        "this session was signed in with the implicit flow, which gives no access token (sign-in only); set flow to code or hybrid and sign in again for one",
    )
}
