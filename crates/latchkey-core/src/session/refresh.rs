//! Keeping the session valid: the refresh (RFC 6749 §6) under the in-process gate and the
//! cross-process lock, with rotation handled once (RFC 9700 §4.14.2), and the endpoints bound at
//! sign-in deciding where a refresh token may be sent.

use std::sync::Arc;

use openidconnect::RefreshToken;

use super::build::{self, Origin};
use super::{Identity, Session, cache, profile, repo};
use crate::config::FlowChoice;
use crate::context::Context;
use crate::discovery::{Endpoints, Provider};
use crate::error::{Error, ErrorKind, Result};
use crate::oauth::token::token_error;
use crate::util::shown;
use crate::verify::NonceCheck;

/// The identity, refreshing the session first when its access token has expired, with the
/// profile fetched again from userinfo (OIDC Core §5.3) so a changed name or picture shows.
/// Userinfo failures never fail this: the stored claims are used.
pub(crate) async fn status(ctx: &Context) -> Result<Identity> {
    let (session, refreshed) = valid_session_noting_refresh(ctx).await?;
    if refreshed {
        // The refresh fetched userinfo already.
        return Ok(repo::identity_of(ctx, &session));
    }
    Ok(repo::identity_of(
        ctx,
        &profile::update_profile(ctx, session).await,
    ))
}

/// Refreshes now, even if the access token is still valid.
pub(crate) async fn refresh(ctx: &Context) -> Result<Identity> {
    let session = repo::load(ctx)
        .await?
        .ok_or_else(|| repo::not_signed_in(ctx))?;
    let refreshed = refresh_session(ctx, Some(&session.access_token)).await?;
    Ok(repo::identity_of(ctx, &refreshed))
}

/// The valid session, and whether getting it took a refresh (here or in another process).
pub(crate) async fn valid_session_noting_refresh(ctx: &Context) -> Result<(Session, bool)> {
    let session = repo::load(ctx)
        .await?
        .ok_or_else(|| repo::not_signed_in(ctx))?;
    if session.access_token_valid(ctx.now()) {
        return Ok((session, false));
    }
    Ok((refresh_session(ctx, None).await?, true))
}

/// Refreshes under the in-process gate and the cross-process file lock. After taking both it
/// re-reads the session: if another task or process already refreshed, that result is used,
/// so a rotated refresh token is never sent twice (RFC 9700 §4.14.2). Either way the token
/// cache holds what is returned, written under the lock: callers need not cache it again.
pub(crate) async fn refresh_session(
    ctx: &Context,
    force_replacing: Option<&str>,
) -> Result<Session> {
    // Held to the end, the invalid_grant delete included (which must not call `logout`: it
    // would wait for these very locks).
    let _exclusive = repo::exclusive(ctx).await?;
    let session = repo::load(ctx)
        .await?
        .ok_or_else(|| repo::not_signed_in(ctx))?;
    let already_fresh = match force_replacing {
        Some(old) => session.access_token != old,
        None => session.access_token_valid(ctx.now()),
    };
    if already_fresh {
        // Read under the lock, so it is the stored session: the cache may follow it (a process
        // with the cache off may have done the refresh).
        cache::cache_token(ctx, &session);
        return Ok(session);
    }
    let Some(refresh_token) = session.refresh_token.clone() else {
        return Err(no_refresh_token(ctx, &session).await);
    };
    let provider = provider_for(ctx, &session, Sends::RefreshToken)
        .await
        .map_err(|e| e.context("refreshing the session"))?;
    let client = ctx.client(&provider)?;
    let result = client
        .exchange_refresh_token(&RefreshToken::new(refresh_token))
        .map_err(|e| Error::new(ErrorKind::ProviderInvalid, e.to_string()))?
        // RFC 9449 §5: a public client's refresh token is bound to the key; a proof each time.
        .request_async(&ctx.proof_client(session.dpop_key.as_ref()))
        .await;
    let response = match result {
        Ok(r) => r,
        Err(e) => return Err(refused(ctx, token_error(&e)).await),
    };
    let mut refreshed = build::session_from_response(
        ctx,
        &provider,
        &response,
        NonceCheck::Refresh,
        Origin::Refresh(&session),
        session.dpop_key.as_ref(),
    )
    .await?;
    // OIDC Core §5.3 with the new access token; a failure keeps the claims as they were.
    profile::renew_profile(ctx, &mut refreshed).await;
    if refreshed.issued_expired() {
        // Used as is: the refresh floor keeps it for MIN_REFRESH_INTERVAL instead of
        // refreshing on every call.
        tracing::warn!(
            "the provider issued an access token that has already expired (expires_in 0 or a past exp); it will be refreshed again in {} s at the earliest; check the provider's token lifetime and this computer's clock",
            crate::session::MIN_REFRESH_INTERVAL.num_seconds()
        );
    }
    // Saved before anyone can use it: with rotation the old refresh token is now dead.
    repo::save_session(ctx, &refreshed)
        .await
        .map_err(|e| e.context("saving the refreshed session"))?;
    cache::cache_token(ctx, &refreshed);
    tracing::debug!("session refreshed");
    Ok(refreshed)
}

/// An expired session with no refresh token: an implicit one (its ID token's `exp` passed) is
/// forgotten, since nothing can renew it; any other is kept for the user to sign in again.
async fn no_refresh_token(ctx: &Context, session: &Session) -> Error {
    if session.flow != FlowChoice::Implicit {
        return Error::new(
            ErrorKind::NotSignedIn,
            "the session has expired and the provider issued no refresh token",
        )
        .with_remedy(crate::Remedy::SignIn);
    }
    if let Err(e) = forget(ctx).await {
        return e;
    }
    Error::new(
        ErrorKind::NotSignedIn,
        "the implicit sign-in ended when its ID token expired, so it was forgotten",
    )
    .with_remedy(crate::Remedy::SignIn)
}

/// A refresh the token endpoint refused. Only `invalid_grant` ends the session: the grant is
/// gone at the provider (RFC 6749 §5.2). Any other answer comes again on every retry, so the
/// session is kept but signing in again is the way out (LemonLDAP::NG answers invalid_request
/// for a refresh token it no longer knows); network failures stay transient.
async fn refused(ctx: &Context, error: Error) -> Error {
    if error.oauth_error() == Some("invalid_grant") {
        if let Err(e) = forget(ctx).await {
            return e;
        }
        return Error::oauth(
            ErrorKind::SessionExpired,
            "the provider ended the session (invalid_grant), so it was signed out",
            "invalid_grant",
            error.description(),
        )
        .with_remedy(crate::Remedy::SignIn);
    }
    let still = error.context("refreshing the session (still signed in)");
    if still.kind() == ErrorKind::ProviderError {
        return still.with_remedy(crate::Remedy::SignIn);
    }
    still
}

/// Deletes the session and its cached token, under the caller's session lock (never through
/// `logout`, which would wait for that very lock).
async fn forget(ctx: &Context) -> Result<()> {
    cache::uncache_token(ctx)?;
    ctx.vault.delete(&ctx.session_name).await.map(|_| ())
}

/// The provider metadata to send this session's secrets with. The discovery cache on disk can
/// be rewritten by any process of this user, including one that cannot read the keychain, so
/// the endpoints recorded with the session decide: when the cached metadata names others,
/// it is fetched again from the issuer (OIDC Discovery §4, over TLS) and used only if that
/// agrees with the session. Otherwise nothing is sent.
pub(crate) async fn provider_for(
    ctx: &Context,
    session: &Session,
    sends: Sends,
) -> Result<Arc<Provider>> {
    let current = ctx.provider().await?;
    if let Some(bound) = &session.endpoints
        && sends.differs(bound, &current.endpoints()).is_none()
    {
        return Ok(current);
    }
    tracing::info!(
        "the cached provider metadata does not match the session's endpoints; fetching it again"
    );
    let fresh = ctx.discovery.get_fresh(ctx.http(), ctx.now()).await?;
    let Some(bound) = &session.endpoints else {
        // Stored before the endpoints were recorded: the issuer's own answer is used (and
        // recorded with the refreshed session).
        return Ok(fresh);
    };
    match sends.differs(bound, &fresh.endpoints()) {
        None => Ok(fresh),
        Some((what, at_sign_in, now)) => Err(Error::new(
            ErrorKind::ProviderInvalid,
            format!(
                "the provider's {what} is now {}, not {} as when you signed in, so no token was sent to it",
                shown(now),
                shown(at_sign_in),
            ),
        )
        .with_remedy(crate::Remedy::SignIn)),
    }
}

/// Which of a session's endpoints an operation sends secrets to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sends {
    /// The refresh token, to the token endpoint.
    RefreshToken,
    /// The refresh token to the revocation endpoint, the ID token to the end-session endpoint.
    Logout,
}

impl Sends {
    /// The first endpoint that `now` names differently from `bound`: its name, then both values.
    fn differs<'a>(
        self,
        bound: &'a Endpoints,
        now: &'a Endpoints,
    ) -> Option<(&'static str, Option<&'a str>, Option<&'a str>)> {
        let pairs = match self {
            Sends::RefreshToken => vec![(
                "token endpoint",
                Some(bound.token.as_str()),
                Some(now.token.as_str()),
            )],
            Sends::Logout => vec![
                (
                    "revocation endpoint",
                    bound.revocation.as_deref(),
                    now.revocation.as_deref(),
                ),
                (
                    "end-session endpoint",
                    bound.end_session.as_deref(),
                    now.end_session.as_deref(),
                ),
            ],
        };
        pairs.into_iter().find(|(_, a, b)| a != b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn expires_in_zero_refreshes_at_most_once_per_ten_seconds() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (issuer, count) = rt.block_on(expired_token_endpoint());
        let dir = tempfile::tempdir().expect("tmp");
        let (_store, latchkey) = offline_at(dir.path(), &issuer);
        rt.block_on(async {
            let expired = session_at(Utc::now() - chrono::Duration::hours(2), &issuer);
            put(&latchkey, &expired).await;
            for _ in 0..5 {
                let token = latchkey.access_token().await.expect("token");
                assert_eq!(token.secret(), "AT-1");
            }
            assert_eq!(
                count.load(std::sync::atomic::Ordering::SeqCst),
                1,
                "one refresh, then the refresh floor holds"
            );
        });
    }

    /// LemonLDAP::NG answers `invalid_request` for a refresh token it no longer knows: the
    /// session stays (only invalid_grant ends one), and the error's remedy is to sign in again.
    #[test]
    fn an_oauth_error_other_than_invalid_grant_on_refresh_keeps_the_session_and_advises_sign_in() {
        let rt = runtime();
        let issuer = rt.block_on(failing_token_endpoint(r#"{"error":"invalid_request"}"#));
        let dir = tempfile::tempdir().expect("tmp");
        let (_store, latchkey) = offline_at(dir.path(), &issuer);
        rt.block_on(async {
            let expired = session_at(Utc::now() - chrono::Duration::hours(2), &issuer);
            put(&latchkey, &expired).await;
            let e = latchkey.access_token().await.expect_err("refused");
            assert_eq!(e.kind(), ErrorKind::ProviderError);
            assert_eq!(e.oauth_error(), Some("invalid_request"));
            assert_eq!(e.remedy(), Some(crate::Remedy::SignIn));
            assert!(e.to_string().contains("(still signed in)"), "{e}");
            assert!(
                latchkey.current().await.expect("read").is_some(),
                "the session is kept"
            );
        });
    }

    /// A provider with two token endpoints, A and B, that both rotate the tokens, and keys.
    async fn token_endpoints_a_and_b() -> (Stub, String) {
        let stub = Stub::start().await;
        for path in ["/token-a", "/token-b"] {
            stub.route(path, ROTATED);
        }
        stub.route("/jwks", r#"{"keys":[]}"#);
        let base = stub.base.clone();
        (stub, base)
    }

    #[test]
    fn a_rewritten_cached_token_endpoint_gets_no_refresh_token() {
        let rt = runtime();
        let (stub, base) = rt.block_on(token_endpoints_a_and_b());
        let dir = tempfile::tempdir().expect("tmp");
        let (_store, latchkey) = offline_at(dir.path(), &base);

        // The issuer itself still says A: its fresh metadata is used, and B gets nothing.
        seed(&latchkey, metadata(&base, "token-b", None));
        stub.route(DISCOVERY, metadata(&base, "token-a", None).to_string());
        rt.block_on(async {
            put(&latchkey, &bound_to_a(&base)).await;
            let token = latchkey.access_token().await.expect("refreshed at A");
            assert_eq!(token.secret(), "AT-new");
            assert_eq!((stub.hits("/token-a"), stub.hits("/token-b")), (1, 0));
            assert_eq!(stub.hits(DISCOVERY), 1);
            let saved = repo::load(&latchkey.ctx)
                .await
                .expect("load")
                .expect("session");
            assert_eq!(
                saved.endpoints.map(|e| e.token),
                Some(format!("{base}/token-a"))
            );
        });

        // The issuer says B too: the endpoint changed since sign-in, and nothing is sent.
        seed(&latchkey, metadata(&base, "token-b", None));
        stub.route(DISCOVERY, metadata(&base, "token-b", None).to_string());
        rt.block_on(async {
            put(&latchkey, &bound_to_a(&base)).await;
            let e = latchkey.access_token().await.expect_err("endpoint changed");
            assert_eq!(e.kind(), ErrorKind::ProviderInvalid);
            assert!(
                e.message().contains("token endpoint") && e.message().contains("no token was sent"),
                "{e}"
            );
            assert_eq!((stub.hits("/token-a"), stub.hits("/token-b")), (1, 0));
            assert!(
                latchkey.current().await.expect("read").is_some(),
                "still signed in"
            );
        });
    }

    #[test]
    fn a_session_without_recorded_endpoints_refreshes_with_fresh_metadata() {
        let rt = runtime();
        let (stub, base) = rt.block_on(token_endpoints_a_and_b());
        stub.route(DISCOVERY, metadata(&base, "token-a", None).to_string());
        let dir = tempfile::tempdir().expect("tmp");
        let (_store, latchkey) = offline_at(dir.path(), &base);
        seed(&latchkey, metadata(&base, "token-b", None));
        rt.block_on(async {
            let mut old = bound_to_a(&base);
            old.endpoints = None; // stored by an earlier version
            put(&latchkey, &old).await;
            latchkey.access_token().await.expect("refreshed");
            assert_eq!((stub.hits("/token-a"), stub.hits("/token-b")), (1, 0));
            let saved = repo::load(&latchkey.ctx)
                .await
                .expect("load")
                .expect("session");
            assert_eq!(
                saved.endpoints.map(|e| e.token),
                Some(format!("{base}/token-a")),
                "bound from now on"
            );
        });
    }

    #[test]
    fn a_refresh_renews_the_profile_and_survives_a_userinfo_failure() {
        let rt = runtime();
        let stub = rt.block_on(Stub::start());
        let base = stub.base.clone();
        stub.route("/token", ROTATED);
        stub.route("/jwks", r#"{"keys":[]}"#);
        let dir = tempfile::tempdir().expect("tmp");
        let (_store, latchkey) = offline_at(dir.path(), &base);
        let mut s = session_at(Utc::now() - chrono::Duration::hours(2), &base);
        s.claims.name = Some("Alice Example".into());
        with_userinfo_endpoint(&latchkey, &base, &mut s);
        rt.block_on(async {
            // No /me route: the provider answers 404. The refresh still succeeds.
            put(&latchkey, &s).await;
            let token = latchkey.access_token().await.expect("refreshed");
            assert_eq!(token.secret(), "AT-new");
            let id = latchkey.current().await.expect("read").expect("session");
            assert_eq!(id.name.as_deref(), Some("Alice Example"));
            assert_eq!(stub.hits("/me"), 1);

            stub.route("/me", r#"{"sub":"alice","name":"Alice Renamed"}"#);
            put(&latchkey, &s).await;
            latchkey.access_token().await.expect("refreshed");
            let id = latchkey.current().await.expect("read").expect("session");
            assert_eq!(id.name.as_deref(), Some("Alice Renamed"));
            assert_eq!((stub.hits("/token"), stub.hits("/me")), (2, 2));
        });
    }
}
