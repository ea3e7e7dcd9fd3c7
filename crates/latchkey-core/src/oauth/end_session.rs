//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): the provider's end-session URL,
//! and recognising the provider's return to `post_logout_redirect_uri`.
//!
//! The return is matched like a sign-in redirect: only to a logout this process started, by its
//! `state` (§2, compared in constant time), once, before a deadline. A forged or stale return is
//! reported, never mistaken for a sign-in.

use openidconnect::CsrfToken;
use subtle::ConstantTimeEq;
use url::Url;

use crate::context::Context;
use crate::discovery::Provider;
use crate::error::{Error, ErrorKind, Result};
use crate::flow::PendingLogout;
use crate::flow::same_endpoint;
use crate::session::Session;
/// OIDC RP-Initiated Logout 1.0 §2: `id_token_hint`, `client_id`, and with a
/// `post_logout_redirect_uri` a fresh `state` that the return must carry.
pub(crate) fn end_session_url(
    ctx: &Context,
    provider: &Provider,
    session: &Session,
) -> Option<Url> {
    let mut url = Url::parse(provider.extra().end_session_endpoint.as_deref()?).ok()?;
    {
        let mut q = url.query_pairs_mut();
        if let Some(id_token) = &session.id_token {
            q.append_pair("id_token_hint", id_token);
        }
        q.append_pair("client_id", &ctx.config.client_id);
        if let Some(p) = &ctx.config.post_logout_redirect_uri {
            q.append_pair("post_logout_redirect_uri", p.as_str());
            let state = CsrfToken::new_random_len(32);
            q.append_pair("state", state.secret());
            *logout_slot(ctx) = Some(PendingLogout {
                state,
                expires_at: ctx.now()
                    + chrono::Duration::from_std(ctx.config.login_timeout)
                        .unwrap_or(chrono::Duration::minutes(10)),
            });
        }
    }
    Some(url)
}

/// Whether `url` is the provider's return from a logout: `None` when it is not addressed to
/// `post_logout_redirect_uri` (so it may be a sign-in redirect), `Some(Ok)` for the return of
/// the logout this process started (used up), and `Some(Err)` for any other URL addressed
/// there: no logout pending, a wrong or missing `state`, or too late.
pub(crate) fn logout_return(ctx: &Context, url: &str) -> Option<Result<()>> {
    let target = ctx.config.post_logout_redirect_uri.as_ref()?;
    let url = Url::parse(url).ok()?;
    if !same_endpoint(&url, target) {
        return None;
    }
    let ignored = |why: &str| {
        Err(Error::new(
            ErrorKind::ForeignCallback,
            format!("a sign-out link was ignored: {why}"),
        ))
    };
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned());
    let mut slot = logout_slot(ctx);
    let Some(pending) = slot.as_ref() else {
        return Some(ignored("no sign-out from the provider was started here"));
    };
    let Some(state) = state else {
        return Some(ignored("it carries no state"));
    };
    if !bool::from(state.as_bytes().ct_eq(pending.state.secret().as_bytes())) {
        return Some(ignored("it does not belong to the sign-out started here"));
    }
    let late = ctx.now() > pending.expires_at;
    *slot = None;
    if late {
        return Some(ignored("it came too late"));
    }
    Some(Ok(()))
}

pub(crate) fn logout_slot(ctx: &Context) -> std::sync::MutexGuard<'_, Option<PendingLogout>> {
    ctx.pending_logout.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    /// Finding 9 of issue 8: the provider's return from RP-initiated logout is recognised, for
    /// the logout this process started only (its `state`), once.
    #[test]
    fn the_logout_return_is_matched_by_state_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut lk = offline_with(dir.path(), ISSUER, Arc::new(MemoryStore::new(200)));
        let ret = "com.example.app:/logout";
        lk.ctx.config.post_logout_redirect_uri = Some(Url::parse(ret).expect("url"));
        let mut m = metadata(ISSUER, "token", None);
        m["end_session_endpoint"] = serde_json::json!(format!("{ISSUER}/session/end"));
        let provider = Provider::for_tests(m, openidconnect::JsonWebKeySet::new(Vec::new()));

        let back = |state: &str| lk.logout_return(&format!("{ret}?state={state}"));
        let ignored = |r: Option<Result<()>>, why: &str| {
            let e = r.expect("addressed to the logout URI").expect_err(why);
            assert_eq!(e.kind(), ErrorKind::ForeignCallback, "{e}");
            assert_eq!(e.message(), format!("a sign-out link was ignored: {why}"));
        };
        ignored(back("x"), "no sign-out from the provider was started here");
        let url =
            end_session_url(&lk.ctx, &provider, &session(Utc::now())).expect("end-session URL");
        let state = url
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .expect("state sent");
        ignored(
            back("wrong"),
            "it does not belong to the sign-out started here",
        );
        ignored(lk.logout_return(ret), "it carries no state");
        assert!(back(&state).expect("addressed").is_ok(), "the real return");
        ignored(
            back(&state),
            "no sign-out from the provider was started here",
        );
        assert!(
            lk.logout_return("com.example.app:/callback?code=a&state=b")
                .is_none(),
            "a sign-in redirect is not a logout return"
        );
    }
}
