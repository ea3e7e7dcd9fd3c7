//! The session's current access token (and ID token) kept in the token cache for the hot path
//! (`latchkey token` with no keychain call), exactly as long as each counts as valid.

use chrono::{DateTime, Utc};

use super::Session;
use crate::context::Context;
use crate::dpop::DpopKey;
use crate::error::{Error, ErrorKind, Result};
use crate::token_cache::CachedToken;
use crate::util::{jwt_payload, short_hash};

/// `DPoP` for a token bound to the session's key (RFC 9449), else `Bearer` (RFC 6750).
pub(crate) fn token_type_of(session: &Session) -> &'static str {
    match (&session.token_type, &session.dpop_key) {
        (Some(t), Some(_)) if t.eq_ignore_ascii_case("dpop") => "DPoP",
        _ => "Bearer",
    }
}

/// The stored ID token with its `exp`, and until when it counts as valid: the same margin rule as
/// access tokens (a quarter of its lifetime, at most 30 s), so it is not sent and then rejected in
/// flight. It was verified when it was received (OIDC Core §3.1.3.7); `exp` is only read here.
pub(crate) fn id_token_times(session: &Session) -> Option<(&str, DateTime<Utc>, DateTime<Utc>)> {
    let token = session.id_token.as_deref()?;
    let claims = jwt_payload(token)?;
    let exp = claims.get("exp")?.as_i64()?;
    let iat = claims.get("iat").and_then(|v| v.as_i64()).unwrap_or(exp);
    let margin =
        (exp.saturating_sub(iat) / 4).clamp(0, crate::session::EXPIRY_MARGIN.num_seconds());
    Some((
        token,
        DateTime::from_timestamp(exp, 0)?,
        DateTime::from_timestamp(exp.saturating_sub(margin), 0)?,
    ))
}

pub(crate) fn cache_key(ctx: &Context) -> String {
    short_hash(&ctx.session_name, 16)
}

pub(crate) fn cached_entry(ctx: &Context) -> Option<CachedToken> {
    let cache = ctx.ports.token_cache.as_ref()?;
    CachedToken::parse(&cache.get(&cache_key(ctx))?)
}

/// Keeps the cache exact after every save: the session's current access token (and ID token),
/// each for exactly as long as it counts as valid. Failing to cache only costs speed.
pub(crate) fn cache_token(ctx: &Context, session: &Session) {
    let Some(cache) = &ctx.ports.token_cache else {
        return;
    };
    // No access token to serve (the implicit flow): nothing is cached, so `token` always
    // reads the session and says why there is none.
    if session.access_token.is_empty() {
        if let Err(e) = cache.remove(&cache_key(ctx)) {
            tracing::debug!("token cache not updated: {e}");
        }
        return;
    }
    let Some(fresh_until) = session
        .expires_at
        .checked_sub_signed(session.refresh_margin())
    else {
        return;
    };
    let id = id_token_times(session);
    let now = ctx.now().timestamp();
    let ttl = fresh_until
        .timestamp()
        .max(id.map_or(0, |(_, _, f)| f.timestamp()))
        .saturating_sub(now);
    let result = if ttl <= 0 {
        cache.remove(&cache_key(ctx))
    } else {
        let entry = CachedToken {
            v: 1,
            access_token: session.access_token.clone(),
            token_type: token_type_of(session).into(),
            expires_at: session.expires_at,
            fresh_until,
            id_token: id.map(|(t, _, _)| t.to_owned()),
            id_expires_at: id.map(|(_, e, _)| e),
            id_fresh_until: id.map(|(_, _, f)| f),
            dpop_key: session
                .dpop_key
                .as_ref()
                .filter(|_| token_type_of(session) == "DPoP")
                .map(DpopKey::secret),
        };
        cache.put(&cache_key(ctx), &entry.to_bytes(), ttl.unsigned_abs())
    };
    if let Err(e) = result {
        tracing::debug!("token cache not updated: {e}");
    }
}

/// [`cache_token`] for a session read without the session lock (the token cache's miss path):
/// under the lock, and only while the keychain still holds that session. Otherwise a logout,
/// `invalid_grant` or git `erase` between the read and the write would be undone by a token
/// cached after it (issue 18, L1). A lock or keychain failure only skips the cache.
pub(crate) async fn cache_if_current(ctx: &Context, session: &Session) {
    if ctx.ports.token_cache.is_none() {
        return;
    }
    let Ok(_lock) = super::repo::exclusive(ctx).await else {
        return;
    };
    match super::repo::load(ctx).await {
        Ok(Some(stored)) if stored.access_token == session.access_token => {
            cache_token(ctx, &stored);
        }
        _ => tracing::debug!("token cache not filled: the session changed meanwhile"),
    }
}

/// Forgets the cached token, before the session itself goes: a token that outlived its
/// session would be served after a logout.
pub(crate) fn uncache_token(ctx: &Context) -> Result<()> {
    let Some(cache) = &ctx.ports.token_cache else {
        return Ok(());
    };
    cache.remove(&cache_key(ctx)).map_err(|e| {
        Error::new(
            ErrorKind::Keychain,
            format!("cannot remove the cached access token from the kernel keyring ({e})"),
        )
    })
}
