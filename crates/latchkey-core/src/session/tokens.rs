//! Handing tokens to other tools: [`crate::Latchkey::token`] (access token, `--min-valid`,
//! `--force-refresh`), [`crate::Latchkey::id_token`] (the Kubernetes OIDC authenticator's credential),
//! the token cache that answers both without a keychain call, and [`crate::Latchkey::reject_token`]
//! (a resource refused the token, so the next request refreshes first).

use chrono::{DateTime, Utc};

use super::cache::id_token_times;
use super::cache::{self, token_type_of};
use super::{AccessToken, Session, refresh, repo};
use crate::context::Context;
use crate::dpop::{DpopKey, ResourceHeaders};
use crate::error::{Error, ErrorKind, Result, sanitize};
use crate::signin::implicit;
use crate::util::short_hash;

/// What [`Latchkey::token`](crate::Latchkey::token) should make sure of.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct TokenOptions {
    /// The token must stay valid at least this long; a refresh happens first otherwise.
    pub min_valid: std::time::Duration,
    /// Refresh even when the current token is valid.
    pub force_refresh: bool,
}

impl TokenOptions {
    pub fn new(min_valid: std::time::Duration, force_refresh: bool) -> Self {
        Self {
            min_valid,
            force_refresh,
        }
    }
}

/// A valid token, with what a caller needs to use and schedule it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokenInfo {
    pub token: AccessToken,
    /// `Bearer` (RFC 6750) or `DPoP` (RFC 9449) for access tokens; `N_A` for an ID token, which
    /// is no access token.
    pub token_type: String,
    pub expires_at: DateTime<Utc>,
}

/// An implicit sign-in has an ID token only (OIDC Core §3.2.2.5): no access token to hand out.
pub(crate) fn has_access_token(session: &Session) -> Result<()> {
    if session.flow == crate::config::FlowChoice::Implicit {
        return Err(implicit::no_access_token());
    }
    Ok(())
}

/// RFC 6750 §2.1 (b64token): a token with spaces or control characters would end the header
/// line early and could inject other headers into the caller's request.
pub(crate) fn header_safe(token: &str) -> Result<&str> {
    if !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()) {
        return Ok(token);
    }
    Err(Error::new(
        ErrorKind::ProviderInvalid,
        "the provider's access token has characters an HTTP header cannot carry, so no headers were printed; ask the provider's administrator",
    ))
}

/// Where `headers` may send a token (RFC 6750 §5.3, RFC 9449 §4.2): an http(s) URL, https unless
/// the host is this computer, and with no user name or password, which would also end up in the
/// DPoP proof's `htu`. A refused URL is shown without its credentials.
fn check_resource_url(url: &str) -> Result<()> {
    let refused = |why: &str, parsed: Option<&url::Url>| {
        let shown = match parsed {
            Some(u) => {
                let mut u = u.clone();
                let _ = u.set_username("");
                let _ = u.set_password(None);
                u.to_string()
            }
            None => url.to_owned(),
        };
        Err(Error::config(format!(
            "the resource URL `{}` {why}",
            sanitize(&shown)
        )))
    };
    let Some(parsed) = url::Url::parse(url)
        .ok()
        .filter(|u| crate::dpop::htu(u.as_str()).is_some())
    else {
        return refused("is not an http or https URL; give its full URL", None);
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return refused(
            "carries a user name or password; give it without them",
            Some(&parsed),
        );
    }
    if parsed.scheme() == "http" && !crate::config::is_loopback_host(&parsed) {
        return refused(
            "is plain http, which would send the token in the clear; use https (plain http only to this computer)",
            Some(&parsed),
        );
    }
    Ok(())
}

/// The provider's tokens live `expires_at - issued_at`: asking for longer can never succeed.
pub(crate) fn check_lifetime(session: &Session, min_valid: chrono::Duration) -> Result<()> {
    let Some(issued) = session.issued_at else {
        return Ok(());
    };
    let lifetime = chrono::Duration::seconds(
        session
            .expires_at
            .timestamp()
            .saturating_sub(issued.timestamp()),
    );
    if lifetime <= min_valid {
        return Err(Error::new(
            ErrorKind::ProviderInvalid,
            format!(
                "the provider's access tokens live {} s, not the {} s asked for",
                lifetime.num_seconds(),
                min_valid.num_seconds()
            ),
        ));
    }
    Ok(())
}

/// A valid access token: from the token cache when it holds a fresh one (no keychain call),
/// else from the stored session, refreshed if needed.
pub(crate) async fn access_token(ctx: &Context) -> Result<AccessToken> {
    Ok(token(ctx, TokenOptions::default()).await?.token)
}

/// A valid access token with its type and expiry, as `options` asks.
pub(crate) async fn token(ctx: &Context, options: TokenOptions) -> Result<TokenInfo> {
    // `reject_token` drops the cache entry, so a hit is never a refused token: the marker
    // file is read on a miss only, keeping file I/O off the hot path.
    if !options.force_refresh
        && let Some(entry) = cache::cached_entry(ctx)
        && entry.access_fresh(ctx.now())
        && lasts(ctx, options, entry.expires_at)
    {
        tracing::debug!("access token served from the token cache");
        return Ok(TokenInfo {
            token: AccessToken::from(entry.access_token),
            token_type: entry.token_type,
            expires_at: entry.expires_at,
        });
    }
    let session = current_session(ctx, options).await?;
    Ok(TokenInfo {
        token_type: token_type_of(&session).into(),
        token: AccessToken::from(session.access_token),
        expires_at: session.expires_at,
    })
}

/// Whether a token expiring at `expires_at` stays valid as long as `options` asks. Without
/// a minimum, "valid" is what the session's own rules say (margin, refresh floor).
pub(crate) fn lasts(ctx: &Context, options: TokenOptions, expires_at: DateTime<Utc>) -> bool {
    // Checked: the minimum can be any number, and chrono's `+` panics on overflow.
    options.min_valid.is_zero()
        || chrono::Duration::from_std(options.min_valid)
            .ok()
            .and_then(|d| ctx.now().checked_add_signed(d))
            .is_some_and(|t| t < expires_at)
}

/// The token cache's miss path of [`token`]: the stored session, refreshed when
/// `options` (or a refused token) asks for it, and put back in the cache.
pub(crate) async fn current_session(ctx: &Context, options: TokenOptions) -> Result<Session> {
    let min_valid = chrono::Duration::from_std(options.min_valid).unwrap_or(chrono::Duration::MAX);
    let refused = take_refusal(ctx);
    let force = options.force_refresh || refused.is_some();
    // Whether `session` comes from a refresh, which cached it under the session lock already.
    let (session, refreshed) = if force {
        let current = repo::load(ctx)
            .await?
            .ok_or_else(|| repo::not_signed_in(ctx))?;
        has_access_token(&current)?;
        if refused.is_some_and(|r| r != short_hash(&current.access_token, 16))
            && !options.force_refresh
            && current.access_token_valid(ctx.now())
        {
            // The refused token was already replaced (by another process): use the new one.
            (current, false)
        } else {
            let refreshed = refresh::refresh_session(ctx, Some(&current.access_token)).await?;
            (refreshed, true)
        }
    } else {
        let (session, refreshed) = refresh::valid_session_noting_refresh(ctx).await?;
        has_access_token(&session)?;
        if lasts(ctx, options, session.expires_at) {
            (session, refreshed)
        } else {
            // Not worth a refresh when the provider's tokens never live that long.
            check_lifetime(&session, min_valid)?;
            let refreshed = refresh::refresh_session(ctx, Some(&session.access_token)).await?;
            (refreshed, true)
        }
    };
    if !lasts(ctx, options, session.expires_at) {
        check_lifetime(&session, min_valid)?;
    }
    // A miss (first use, a cache that was off or dropped by the kernel) fills it again, if
    // the session is still the stored one.
    if !refreshed {
        cache::cache_if_current(ctx, &session).await;
    }
    Ok(session)
}

/// The header lines for calling a resource at `url` with `method` (`latchkey headers`): the
/// current access token (refreshed first when needed, as [`token`]) as
/// `Authorization: Bearer`, or for a DPoP-bound token `Authorization: DPoP` plus a fresh
/// proof for that method and URL with `ath` (RFC 9449 §7.1). A fresh token is served from the
/// token cache, a DPoP one with its key: no keychain read.
pub(crate) async fn resource_headers(
    ctx: &Context,
    method: &str,
    url: &str,
) -> Result<ResourceHeaders> {
    if !crate::dpop::valid_method(method) {
        return Err(Error::config(format!(
            "the method `{}` is not an HTTP method; use one like GET or POST",
            sanitize(method)
        )));
    }
    check_resource_url(url)?;
    if let Some(entry) = cache::cached_entry(ctx).filter(|e| e.access_fresh(ctx.now())) {
        if entry.token_type != "DPoP" {
            tracing::debug!("access token served from the token cache");
            return headers(ctx, &entry.access_token, None, method, url);
        }
        if let Some(key) = entry.dpop_key.as_deref().and_then(DpopKey::from_secret) {
            tracing::debug!("DPoP token and key served from the token cache");
            return headers(ctx, &entry.access_token, Some(&key), method, url);
        }
    }
    // A miss: the key comes with the session from the keychain.
    let session = current_session(ctx, TokenOptions::default()).await?;
    let key = session
        .dpop_key
        .as_ref()
        .filter(|_| token_type_of(&session) == "DPoP");
    headers(ctx, &session.access_token, key, method, url)
}

/// `Authorization: Bearer <token>`, or with the token's DPoP key `Authorization: DPoP` and
/// its proof for `method` and `url`.
pub(crate) fn headers(
    ctx: &Context,
    token: &str,
    key: Option<&DpopKey>,
    method: &str,
    url: &str,
) -> Result<ResourceHeaders> {
    let token = header_safe(token)?;
    Ok(match key {
        None => ResourceHeaders {
            authorization: format!("Bearer {token}"),
            dpop: None,
        },
        Some(key) => ResourceHeaders {
            authorization: format!("DPoP {token}"),
            dpop: Some(key.proof(method, url, Some(token), None, ctx.now())?),
        },
    })
}

/// A valid ID token, as the Kubernetes OIDC authenticator takes for a bearer token: the stored
/// one while its `exp` is ahead, else a refreshed one. A provider that answers the refresh
/// without a new ID token (OIDC Core §12.2 allows it) gets a `NotSignedIn` error that says
/// so: only a new sign-in yields a new ID token then.
pub(crate) async fn id_token(ctx: &Context) -> Result<TokenInfo> {
    let now = ctx.now();
    if let Some(entry) = cache::cached_entry(ctx)
        && let Some((token, expires_at)) = entry.fresh_id_token(now)
    {
        tracing::debug!("ID token served from the token cache");
        return Ok(TokenInfo {
            token: AccessToken::from(token),
            token_type: "N_A".into(),
            expires_at,
        });
    }
    let session = repo::load(ctx)
        .await?
        .ok_or_else(|| repo::not_signed_in(ctx))?;
    let usable = |s: &Session| {
        id_token_times(s)
            .filter(|(_, _, fresh)| ctx.now() < *fresh)
            .map(|(t, exp, _)| TokenInfo {
                token: AccessToken::from(t.to_owned()),
                token_type: "N_A".into(),
                expires_at: exp,
            })
    };
    if let Some(info) = usable(&session) {
        cache::cache_if_current(ctx, &session).await;
        return Ok(info);
    }
    let no_new_id_token = || {
        Error::new(
            ErrorKind::NotSignedIn,
            "the ID token has expired and the provider's refresh returns no new one; a new sign-in is needed",
        )
    };
    // Known from the last refresh: another one would rotate the tokens and still bring none.
    if session.refresh_gives_no_id_token {
        return Err(no_new_id_token());
    }
    // The refresh caches what it saved, under the session lock.
    let refreshed = refresh::refresh_session(ctx, Some(&session.access_token)).await?;
    usable(&refreshed).ok_or_else(no_new_id_token)
}

/// A resource server refused `token` (git's `erase`): the token cache forgets it, and the
/// next [`token`] call refreshes first, unless the session has moved on to
/// another token since. Never ends the session.
pub(crate) async fn reject_token(ctx: &Context, token: &str) -> Result<()> {
    if let Some(cache) = &ctx.ports.token_cache {
        let _ = cache.remove(&cache::cache_key(ctx));
    }
    let Some(path) = refusal_path(ctx) else {
        return Ok(());
    };
    if let Some(dir) = path.parent() {
        crate::lock::private_dir(dir)?;
    }
    // A hash, not the token: nothing secret is written outside the keychain.
    std::fs::write(&path, short_hash(token, 16)).map_err(|e| {
        Error::internal(format!(
            "cannot record the refused token in {}: {e}",
            path.display()
        ))
    })
}

pub(crate) fn refusal_path(ctx: &Context) -> Option<std::path::PathBuf> {
    let dir = ctx.ports.cache_dir.as_ref()?;
    Some(dir.join("refused").join(cache::cache_key(ctx)))
}

/// The hash of a token a resource refused, once: reading it removes it.
pub(crate) fn take_refusal(ctx: &Context) -> Option<String> {
    let path = refusal_path(ctx)?;
    let hash = std::fs::read_to_string(&path).ok()?;
    let _ = std::fs::remove_file(&path);
    Some(hash.trim().to_owned())
}
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;

    use super::{check_resource_url, header_safe};
    use crate::store::MemoryStore;
    use crate::testing::{
        ISSUER, MemoryCache, PausingStore, offline_with_cache, put, runtime, session_at,
    };

    /// L1: a `token` that read the session before a logout does not cache its token after it.
    /// The read is held (its keychain call has returned but not been delivered) until the
    /// logout is done; then the cache must still be empty.
    #[test]
    fn a_token_read_before_a_logout_is_not_cached_after_it() {
        let rt = runtime();
        let dir = tempfile::tempdir().expect("tmp");
        // One entry per session, so the held read is the whole read.
        let store = Arc::new(PausingStore {
            inner: MemoryStore::new(64 * 1024),
            pause: std::sync::Mutex::new(None),
            pause_get: std::sync::Mutex::new(None),
            deleted: std::sync::Mutex::new(None),
        });
        let cache = Arc::new(MemoryCache::default());
        let latchkey = offline_with_cache(dir.path(), ISSUER, store.clone(), Some(cache.clone()));
        rt.block_on(async {
            put(&latchkey, &session_at(Utc::now(), ISSUER)).await;
            let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
            let (release_tx, release_rx) = std::sync::mpsc::channel();
            *store.pause_get.lock().expect("pause") = Some((reached_tx, release_rx));
            let token = latchkey.access_token();
            let logout = async {
                reached_rx.await.expect("the token read the session");
                let out = latchkey.logout().await;
                release_tx.send(()).expect("release");
                out
            };
            let (token, out) = tokio::join!(token, logout);
            assert!(
                token.is_ok(),
                "the token was valid when it was read: {token:?}"
            );
            out.expect("logged out");
        });
        assert!(cache.is_empty(), "a token was cached after the logout");
    }

    /// Issue 18, point 13: a refresh that brings no ID token is remembered, so the next
    /// `exec-credential` with the expired ID token does not refresh (and rotate) again.
    #[test]
    fn a_refresh_without_an_id_token_is_not_repeated_for_one() {
        use base64::Engine as _;
        let rt = runtime();
        let stub = rt.block_on(crate::testing::Stub::start());
        stub.route("/token", crate::testing::ROTATED);
        let dir = tempfile::tempdir().expect("tmp");
        let latchkey = crate::testing::offline_at(dir.path(), &stub.base).1;
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let past = Utc::now().timestamp() - 600;
        let mut session = session_at(Utc::now() - chrono::Duration::hours(2), &stub.base);
        session.id_token = Some(format!(
            "{}.{}.sig",
            b64(serde_json::json!({"alg": "RS256"})),
            b64(serde_json::json!({"exp": past, "iat": past - 3600}))
        ));
        rt.block_on(async {
            put(&latchkey, &session).await;
            for _ in 0..2 {
                let e = super::id_token(&latchkey.ctx)
                    .await
                    .expect_err("no fresh ID token");
                assert_eq!(e.kind(), crate::ErrorKind::NotSignedIn, "{e}");
            }
        });
        assert_eq!(
            stub.hits("/token"),
            1,
            "one refresh, then the answer is known"
        );
    }

    #[test]
    fn tokens_go_only_to_https_or_this_computer_without_credentials() {
        for ok in [
            "https://api.example.com/v1?x=1",
            "http://127.0.0.1:8080/me",
            "http://[::1]/me",
            "http://localhost/me",
        ] {
            assert!(check_resource_url(ok).is_ok(), "{ok}");
        }
        let why = |url: &str| check_resource_url(url).expect_err(url).message().to_owned();
        assert!(why("ftp://x/y").contains("is not an http or https URL"));
        assert!(why("not a url").contains("is not an http or https URL"));
        assert!(why("http://api.example.com/v1").contains("is plain http"));
        let e = why("https://me:s3cret@api.example.com/v1");
        assert!(e.contains("carries a user name or password"), "{e}");
        assert!(
            !e.contains("s3cret") && !e.contains("me:"),
            "credentials shown: {e}"
        );
    }

    #[test]
    fn a_token_that_could_end_a_header_line_is_not_printed() {
        assert_eq!(header_safe("eyJ.a-b_c~+/=").ok(), Some("eyJ.a-b_c~+/="));
        for bad in ["", "a b", "a\r\nX-Evil: 1", "a\tb", "t\u{7f}"] {
            assert!(header_safe(bad).is_err(), "{bad:?}");
        }
    }
}
