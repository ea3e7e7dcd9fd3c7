//! A [`Session`] from a token response (RFC 6749 §5.1, §6), built in one place: the token type,
//! the verified ID token's claims, the granted scopes, the lifetime and the bound endpoints.

use std::sync::Arc;

use openidconnect::core::{CoreIdToken, CoreTokenResponse};
use openidconnect::{OAuth2TokenResponse, TokenResponse};

use crate::config::{FlowChoice, UseChoice};
use crate::context::Context;
use crate::discovery::Provider;
use crate::dpop::DpopKey;
use crate::error::{Error, ErrorKind, Result};
use crate::oauth::id_token;
use crate::oauth::token::{access_token_expiry, check_token_type};
use crate::session::{Claims, Session};
use crate::util::jwt_exp;
use crate::verify::{self, NonceCheck, VerifyError};

/// What a token response answers: a new sign-in (by `flow`, its request pushed or not), or the
/// refresh of a stored session, whose flow, binding and history it keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Origin<'a> {
    SignIn { flow: FlowChoice, par: bool },
    Refresh(&'a Session),
}

/// Validates a token response and builds the session it describes, whole: nothing is patched
/// afterwards. `dpop` is the key the request's proof was signed with, if it had one.
pub(crate) async fn session_from_response(
    ctx: &Context,
    provider: &Arc<Provider>,
    response: &CoreTokenResponse,
    nonce: NonceCheck<'_>,
    origin: Origin<'_>,
    dpop: Option<&DpopKey>,
) -> Result<Session> {
    let previous = match origin {
        Origin::Refresh(p) => Some(p),
        Origin::SignIn { .. } => None,
    };
    let bound = check_token_type(response.token_type().as_ref(), dpop.is_some())?;
    check_access_token(response.access_token().secret())?;
    if dpop.is_some() && !bound {
        check_bearer_allowed(ctx, origin)?;
    }
    // RFC 9449 §5: a Bearer answer to a request with a proof is a plain Bearer token; the
    // key is then of no use and is not kept.
    let dpop_key = dpop.filter(|_| bound).cloned();
    let now = ctx.now();
    let access = response.access_token();
    let claims = claims_of(ctx, provider, response, nonce, previous).await?;
    let requested = previous
        .map(|p| p.requested_scopes.clone())
        .unwrap_or_else(|| ctx.config.scopes.clone());
    // RFC 6749 §5.1: no `scope` means the requested scopes were granted; §6: a refresh
    // without `scope` keeps the original grant.
    let granted = match response.scopes() {
        Some(s) => s.iter().map(|s| s.to_string()).collect(),
        None => previous
            .map(|p| p.granted_scopes.clone())
            .unwrap_or_else(|| requested.clone()),
    };
    let expires_at = access_token_expiry(now, response.expires_in(), jwt_exp(access.secret()));
    Ok(Session {
        v: 1,
        issuer: ctx.config.issuer.clone(),
        client_id: ctx.config.client_id.clone(),
        profile: ctx.config.profile.clone(),
        access_token: access.secret().clone(),
        expires_at,
        issued_at: Some(now),
        // RFC 6749 §6: the provider MAY issue a new refresh token; otherwise keep the old one.
        refresh_token: response
            .refresh_token()
            .map(|t| t.secret().clone())
            .or_else(|| previous.and_then(|p| p.refresh_token.clone())),
        id_token: response
            .id_token()
            .map(CoreIdToken::to_string)
            .or_else(|| previous.and_then(|p| p.id_token.clone())),
        requested_scopes: requested,
        granted_scopes: granted,
        claims,
        signed_in_at: previous.map(|p| p.signed_in_at).unwrap_or(now),
        // Bound at sign-in and kept through refreshes; a session stored before they were
        // recorded is refreshed with fresh metadata (provider_for) and bound to it here.
        endpoints: previous
            .and_then(|p| p.endpoints.clone())
            .or_else(|| Some(provider.endpoints())),
        // How it was signed in stays through refreshes.
        flow: match origin {
            Origin::SignIn { flow, .. } => flow,
            Origin::Refresh(p) => p.flow,
        },
        token_type: Some(if bound { "DPoP" } else { "Bearer" }.into()),
        dpop_jkt: dpop_key.as_ref().map(|k| k.thumbprint().to_owned()),
        dpop_key,
        par: match origin {
            Origin::SignIn { par, .. } => par,
            Origin::Refresh(p) => p.par,
        },
        picture: previous.and_then(|p| p.picture.clone()),
        refresh_gives_no_id_token: matches!(origin, Origin::Refresh(_))
            && response.id_token().is_none(),
    })
}

/// RFC 9449 §5 lets a server answer a request that carried a DPoP proof with a Bearer token. That
/// is no downgrade only when DPoP was optional: with `dpop = always`, or for the refresh of a
/// session whose tokens are bound to its key, it is refused (a refused refresh keeps the session
/// and its key as they are).
fn check_bearer_allowed(ctx: &Context, origin: Origin<'_>) -> Result<()> {
    let why = match origin {
        Origin::Refresh(p) if p.dpop_key.is_some() => {
            "the provider answered the refresh of a DPoP-bound session with a Bearer token (RFC 9449 §5), which would drop the binding; the session was kept as it was"
        }
        _ if ctx.config.dpop == UseChoice::Always => {
            "the provider answered with a Bearer token although `dpop` is always (RFC 9449 §5); set dpop to auto to accept one"
        }
        _ => return Ok(()),
    };
    Err(Error::new(ErrorKind::ProviderInvalid, why))
}

/// RFC 6750 §2.1: an access token travels as `b64token` (RFC 9449 §7.1: the same for DPoP), so
/// any other character is refused here, once, before the token reaches a header (where CR/LF
/// would end the line, or make a dependency panic), a line protocol (git's) or a terminal.
fn check_access_token(token: &str) -> Result<()> {
    let body = token.trim_end_matches('=');
    let b64token = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    if b64token {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::ProviderInvalid,
        "the provider's access_token has characters a token cannot have (RFC 6750 §2.1), so it was not used; ask the provider's administrator",
    ))
}

/// The identity claims a token response carries: its ID token verified (OIDC Core §3.1.3.7) and,
/// after a refresh, checked against the previous one (§12.2) with the profile it omits kept; a
/// refresh without an ID token keeps the previous claims (§12.2).
async fn claims_of(
    ctx: &Context,
    provider: &Arc<Provider>,
    response: &CoreTokenResponse,
    nonce: NonceCheck<'_>,
    previous: Option<&Session>,
) -> Result<Claims> {
    let now = ctx.now();
    let access = response.access_token();
    Ok(match (response.id_token(), previous) {
        (Some(id_token), _) => {
            let claims =
                id_token::verify_with_rotation(ctx, provider, id_token, access, nonce, now).await?;
            if let Some(prev) = previous {
                verify::check_refreshed(&prev.claims, &claims).map_err(VerifyError::into_error)?;
                merge_profile(claims, &prev.claims)
            } else {
                claims
            }
        }
        // §12.2: a refresh response need not carry an ID token.
        (None, Some(prev)) => prev.claims.clone(),
        (None, None) => {
            return Err(Error::new(
                ErrorKind::ProviderInvalid,
                "the provider returned no ID token; is `openid` among the scopes?",
            ));
        }
    })
}

/// Keeps profile claims a refreshed ID token omits (providers often put them only in userinfo).
pub(crate) fn merge_profile(mut fresh: Claims, previous: &Claims) -> Claims {
    fresh.name = fresh.name.or_else(|| previous.name.clone());
    fresh.email = fresh.email.or_else(|| previous.email.clone());
    fresh.email_verified = fresh.email_verified.or(previous.email_verified);
    fresh.picture = fresh.picture.or_else(|| previous.picture.clone());
    fresh.preferred_username = fresh
        .preferred_username
        .or_else(|| previous.preferred_username.clone());
    // Only userinfo carries these; the ID token's own grants are read from it.
    fresh.userinfo_grants = previous.userinfo_grants.clone();
    fresh
}

/// The session of an implicit sign-in (OIDC Core §3.2): its verified ID token alone, kept until
/// its `exp`. No access or refresh token: `id_token` issues none (§3.2.2.5).
pub(crate) fn implicit_session(
    ctx: &Context,
    provider: &Provider,
    id_token: String,
    claims: Claims,
    expires_at: chrono::DateTime<chrono::Utc>,
    par: bool,
) -> Session {
    let now = ctx.now();
    let scopes = crate::signin::policy::implicit_scopes(&ctx.config.scopes);
    Session {
        v: 1,
        issuer: ctx.config.issuer.clone(),
        client_id: ctx.config.client_id.clone(),
        profile: ctx.config.profile.clone(),
        access_token: String::new(),
        expires_at,
        issued_at: Some(now),
        refresh_token: None,
        id_token: Some(id_token),
        requested_scopes: scopes.clone(),
        // No `scope` comes back: what was asked is what the ID token's claims reflect.
        granted_scopes: scopes,
        claims,
        signed_in_at: now,
        endpoints: Some(provider.endpoints()),
        flow: FlowChoice::Implicit,
        token_type: None,
        dpop_jkt: None,
        dpop_key: None,
        par,
        picture: None,
        refresh_gives_no_id_token: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token response to a request that carried a DPoP proof, answered with a Bearer token.
    fn bearer_answer() -> CoreTokenResponse {
        serde_json::from_str(r#"{"access_token":"AT-new","token_type":"Bearer","expires_in":60}"#)
            .expect("a token response")
    }

    #[test]
    fn a_bearer_answer_never_silently_drops_a_dpop_binding() {
        use crate::testing::*;
        let dir = tempfile::tempdir().expect("tmp");
        let (_store, mut lk) = offline(dir.path());
        let rt = runtime();
        let provider = rt.block_on(lk.ctx.provider()).expect("seeded metadata");
        let key = DpopKey::generate().expect("a key");
        let mut bound = session(Utc::now());
        bound.token_type = Some("DPoP".into());
        bound.dpop_key = Some(key.clone());
        let build = |lk: &crate::Latchkey, origin| {
            rt.block_on(session_from_response(
                &lk.ctx,
                &provider,
                &bearer_answer(),
                NonceCheck::Refresh,
                origin,
                Some(&key),
            ))
        };
        // The refresh of a bound session: refused, whatever `dpop` says.
        let e = build(&lk, Origin::Refresh(&bound)).expect_err("a downgrade");
        assert_eq!(e.kind(), ErrorKind::ProviderInvalid);
        assert!(
            e.message()
                .contains("DPoP-bound session with a Bearer token"),
            "{e}"
        );
        // An unbound session with `dpop = auto`: a Bearer answer is simply Bearer (§5).
        let plain = session(Utc::now());
        let s = build(&lk, Origin::Refresh(&plain)).expect("bearer is fine");
        assert!(s.dpop_key.is_none());
        // With `dpop = always`, a Bearer answer is refused even there.
        lk.ctx.config.dpop = UseChoice::Always;
        let e = build(&lk, Origin::Refresh(&plain)).expect_err("dpop is always");
        assert!(e.message().contains("`dpop` is always"), "{e}");
    }

    #[test]
    fn only_b64token_access_tokens_are_taken() {
        for good in [
            "eyJ.a-b_c~+/",
            "abc==",
            "gho_16C7e42F292c6912E7710c838347Ae178B4a",
        ] {
            assert!(check_access_token(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "=",
            "a b",
            "a\r\nX-Evil: 1",
            "a\tb",
            "t\u{7f}",
            "é",
            "a=b",
            "a;b",
        ] {
            let e = check_access_token(bad).expect_err(bad);
            assert_eq!(e.kind(), ErrorKind::ProviderInvalid, "{bad:?}");
            assert!(e.message().contains("access_token"), "{e}");
        }
    }
}
