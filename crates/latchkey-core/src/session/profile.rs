//! The profile fetched again from userinfo (OIDC Core §5.3) for a session already signed in, so
//! a changed name, picture or group membership shows without a new sign-in.

use std::sync::Arc;
use std::time::Duration;

use super::{Claims, Session, repo};
use crate::context::Context;
use crate::discovery::Provider;
use crate::error::{Error, ErrorKind, Result};
use crate::oauth::userinfo;
use crate::util::shown;

/// How long fetching the profile again (at `status`, after a refresh) may take: the session is
/// usable without it, so a slow provider must not hold up a start-up for the HTTP timeouts.
const PROFILE_TIMEOUT: Duration = Duration::from_secs(5);

/// [`renew_profile`] for a session as loaded, saved when it changed,
/// under the refresh lock and onto the session as stored by then (another process may have
/// refreshed it meanwhile: its tokens are kept).
pub(crate) async fn update_profile(ctx: &Context, session: Session) -> Session {
    let mut renewed = session.clone();
    if !renew_profile(ctx, &mut renewed).await {
        return session;
    }
    let saved = async {
        let _exclusive = repo::exclusive(ctx).await?;
        let Some(mut stored) = repo::load(ctx).await? else {
            return Ok(renewed.clone()); // signed out meanwhile: show, don't store
        };
        if stored.claims.sub != renewed.claims.sub || stored.signed_in_at != renewed.signed_in_at {
            return Ok(stored); // another sign-in meanwhile
        }
        stored.claims = Claims {
            // The ID token's claims as stored; the profile as just fetched.
            sub: stored.claims.sub,
            aud: stored.claims.aud,
            azp: stored.claims.azp,
            ..renewed.claims.clone()
        };
        if stored
            .endpoints
            .as_ref()
            .is_some_and(|e| e.userinfo.is_none())
        {
            stored.endpoints.clone_from(&renewed.endpoints);
        }
        stored.drop_stale_picture();
        repo::save_session(ctx, &stored).await?;
        Ok::<_, Error>(stored)
    }
    .await;
    match saved {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("the updated profile was not saved: {e}");
            renewed
        }
    }
}

/// Fetches userinfo again for a session already signed in (after a refresh, at `status`):
/// a changed name, picture or group membership shows without a new sign-in. Never fails:
/// when the provider cannot be asked, or its answer is unusable (another `sub`, invalid), the
/// claims stay as they were and the session is untouched. Returns whether claims changed.
pub(crate) async fn renew_profile(ctx: &Context, session: &mut Session) -> bool {
    let fetched = tokio::time::timeout(PROFILE_TIMEOUT, async {
        let provider = provider_for_userinfo(ctx, session).await?;
        let profile = userinfo::fetch_userinfo(ctx, &ctx.client(&provider)?, session).await?;
        Ok::<_, Error>((provider, profile))
    })
    .await;
    let (provider, profile) = match fetched {
        Ok(Ok((provider, Some(profile)))) => (provider, profile),
        Ok(Ok((_, None))) => return false, // no userinfo endpoint
        Ok(Err(e)) if e.kind() == ErrorKind::ProviderInvalid => {
            // The provider's fault (another `sub`, an invalid answer): kept visible.
            tracing::error!("your profile was not updated: {e}");
            return false;
        }
        Ok(Err(e)) => {
            tracing::info!("your profile was not updated: {e}");
            return false;
        }
        Err(_) => {
            tracing::info!(
                "your profile was not updated: the provider took longer than {} s",
                PROFILE_TIMEOUT.as_secs()
            );
            return false;
        }
    };
    if let Some(endpoints) = &mut session.endpoints
        && endpoints.userinfo.is_none()
    {
        // Sessions stored before it was recorded: bound from now on.
        endpoints.userinfo = provider.endpoints().userinfo;
    }
    let before = session.claims.clone();
    profile.apply(&mut session.claims);
    session.drop_stale_picture();
    session.claims != before
}

/// The metadata to send the access token to userinfo with, checked like
/// [`provider_for`](super::refresh::provider_for): the userinfo endpoint recorded with the session
/// decides, and a cached one that differs is fetched again from the issuer. A session
/// stored before the endpoint was recorded takes the issuer's fresh answer.
pub(crate) async fn provider_for_userinfo(
    ctx: &Context,
    session: &Session,
) -> Result<Arc<Provider>> {
    let current = ctx.provider().await?;
    let bound = session.endpoints.as_ref().and_then(|e| e.userinfo.clone());
    let cached = current.endpoints().userinfo;
    if cached.is_none() || cached == bound {
        return Ok(current);
    }
    let fresh = ctx.discovery.get_fresh(ctx.http(), ctx.now()).await?;
    let now = fresh.endpoints().userinfo;
    match bound {
        None => Ok(fresh),
        Some(b) if now.as_deref() == Some(b.as_str()) => Ok(fresh),
        Some(b) => Err(Error::new(
            ErrorKind::ProviderInvalid,
            format!(
                "the provider's userinfo endpoint is now {}, not {} as when you signed in, so no token was sent to it",
                shown(now.as_deref()),
                shown(Some(&b)),
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;

    #[test]
    fn status_renews_the_profile_and_keeps_it_when_userinfo_fails() {
        let rt = runtime();
        let stub = rt.block_on(Stub::start());
        let base = stub.base.clone();
        let dir = tempfile::tempdir().expect("tmp");
        let (_store, latchkey) = offline_at(dir.path(), &base);
        let mut s = session_at(Utc::now(), &base);
        s.claims.name = Some("Alice Example".into());
        with_userinfo_endpoint(&latchkey, &base, &mut s);
        rt.block_on(async {
            put(&latchkey, &s).await;
            stub.route(
                "/me",
                r#"{"sub":"alice","name":"Alice Renamed","groups":["staff"]}"#,
            );
            let id = latchkey.status().await.expect("status");
            assert_eq!(id.name.as_deref(), Some("Alice Renamed"));
            assert_eq!(
                groups(&id),
                [("staff".into(), crate::GrantSource::Userinfo)]
            );
            let stored = latchkey.current().await.expect("read").expect("session");
            assert_eq!(stored.name.as_deref(), Some("Alice Renamed"), "saved");

            // OIDC Core §5.3.2: an answer for another subject is not used.
            stub.route("/me", r#"{"sub":"mallory","name":"Mallory","groups":[]}"#);
            let id = latchkey.status().await.expect("still signed in");
            assert_eq!(id.name.as_deref(), Some("Alice Renamed"));
            assert_eq!(groups(&id).len(), 1);

            // A provider that fails (here: not JSON) changes nothing.
            stub.route("/me", "<html>busy</html>");
            let id = latchkey.status().await.expect("still signed in");
            assert_eq!(id.name.as_deref(), Some("Alice Renamed"));
            assert_eq!(stub.hits("/me"), 3);
            assert_eq!(stub.hits("/token"), 0, "no refresh was needed");
        });
    }
}
