//! Signing out: revocation (RFC 7009), the provider's end-session URL (RP-Initiated Logout), and
//! the keychain entry deleted whatever the provider said.

use super::refresh::{self, Sends};
use super::{cache, repo};
use crate::config::FlowChoice;
use crate::context::Context;
use crate::error::Result;
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
    let _exclusive = repo::exclusive_for_logout(ctx)
        .await
        .map_err(|e| e.context("signing out"))?;
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
        Ok(provider) if session.flow == FlowChoice::Implicit => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn a_damaged_session_does_not_lock_the_user_out() {
        let dir = tempfile::tempdir().expect("tmp");
        let rt = runtime();
        // A sign-in fetches the metadata fresh from the issuer: a local one serves it.
        let stub = rt.block_on(Stub::start());
        stub.route(DISCOVERY, metadata(&stub.base, "token", None).to_string());
        stub.route("/jwks", r#"{"keys":[]}"#);
        let (store, latchkey) = offline_at(dir.path(), &stub.base);
        rt.block_on(async {
            damage(&store, &latchkey).await;
            // A new sign-in starts over an unreadable entry (and will replace it).
            let redirect = Url::parse("http://127.0.0.1:5000/callback").expect("url");
            latchkey.begin(&redirect).await.expect("begin over damage");

            let out = latchkey.logout().await.expect("logout over damage");
            assert!(out.was_signed_in && out.damaged && !out.revoked, "{out:?}");
            assert!(store.names().is_empty(), "{:?}", store.names());
            assert!(latchkey.current().await.expect("readable").is_none());
            let again = latchkey.logout().await.expect("second logout");
            assert!(!again.was_signed_in && !again.damaged);
            latchkey.begin(&redirect).await.expect("begin after logout");

            // A complete entry whose bytes are not a session.
            latchkey
                .ctx
                .vault
                .save(&latchkey.ctx.session_name, vec![b'{'; 700])
                .await
                .expect("save");
            let e = latchkey.current().await.expect_err("unparsable");
            assert!(e.message().contains("unreadable"), "{e}");
            latchkey.begin(&redirect).await.expect("begin over garbage");
            assert!(latchkey.logout().await.expect("logout").damaged);
            assert!(store.names().is_empty(), "{:?}", store.names());
        });
    }

    #[test]
    fn a_logout_during_a_refresh_is_not_undone_by_its_save() {
        let rt = runtime();
        let stub = rt.block_on(Stub::start());
        stub.route("/token", ROTATED);
        let dir = tempfile::tempdir().expect("tmp");
        let store = Arc::new(PausingStore {
            inner: MemoryStore::new(200),
            pause: std::sync::Mutex::new(None),
            pause_get: std::sync::Mutex::new(None),
            deleted: std::sync::Mutex::new(None),
        });
        let signal = Arc::new(RemovalSignal::default());
        let latchkey =
            offline_with_cache(dir.path(), &stub.base, store.clone(), Some(signal.clone()));
        rt.block_on(async {
            let expired = session_at(Utc::now() - chrono::Duration::hours(2), &stub.base);
            put(&latchkey, &expired).await;
            let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
            let (release_tx, release_rx) = std::sync::mpsc::channel();
            *store.pause.lock().expect("pause") = Some((reached_tx, release_rx));
            let (removed_tx, removed_rx) = tokio::sync::oneshot::channel();
            *signal.removed.lock().expect("signal") = Some(removed_tx);
            let (deleted_tx, deleted_rx) = tokio::sync::oneshot::channel();
            *store.deleted.lock().expect("deleted") = Some(deleted_tx);

            // The refresh has sent the old refresh token and is saving the rotated one when the
            // logout starts; the save goes on only once the logout waits for the session lock.
            let refresh = latchkey.access_token();
            let logout = async {
                reached_rx.await.expect("the refresh reached its save");
                let release = async {
                    // The logout drops the cached token right before it waits for the lock the
                    // refresh holds, in the same poll: once that is seen, it is waiting.
                    removed_rx.await.expect("the logout started");
                    // Without that lock it would read the old session and delete it before the
                    // save goes on, and the save would bring the session back: the delete is
                    // the event awaited here. The deadline stands for "it does not come", which
                    // is what the lock guarantees.
                    let _ = tokio::time::timeout(Duration::from_secs(2), deleted_rx).await;
                    release_tx.send(()).expect("release");
                };
                tokio::join!(latchkey.logout(), release).0
            };
            let (token, out) = tokio::join!(refresh, logout);
            assert_eq!(token.expect("refreshed").secret(), "AT-new");
            assert!(out.expect("logout").was_signed_in);
            assert_eq!(stub.hits("/token"), 1);
            assert!(
                store.inner.names().is_empty(),
                "the session came back: {:?}",
                store.inner.names()
            );
            assert!(latchkey.current().await.expect("readable").is_none());
        });
    }

    #[test]
    fn a_rewritten_cached_revocation_endpoint_gets_no_token() {
        let rt = runtime();
        let stub = rt.block_on(Stub::start());
        let base = stub.base.clone();
        for path in ["/revoke-a", "/revoke-b"] {
            stub.route(path, "{}");
        }
        stub.route("/jwks", r#"{"keys":[]}"#);
        let dir = tempfile::tempdir().expect("tmp");
        let (store, latchkey) = offline_at(dir.path(), &base);
        let mut s = session_at(Utc::now(), &base);
        s.endpoints = Some(crate::discovery::Endpoints {
            token: format!("{base}/token"),
            revocation: Some(format!("{base}/revoke-a")),
            end_session: None,
            userinfo: None,
        });

        // The issuer confirms B: no revocation, the session is still removed.
        seed(&latchkey, metadata(&base, "token", Some("revoke-b")));
        stub.route(
            DISCOVERY,
            metadata(&base, "token", Some("revoke-b")).to_string(),
        );
        rt.block_on(async {
            put(&latchkey, &s).await;
            let out = latchkey.logout().await.expect("logout");
            assert!(out.was_signed_in && !out.revoked, "{out:?}");
            let problem = out.revocation_problem.unwrap_or_default();
            assert!(problem.contains("revocation endpoint"), "{problem}");
            assert_eq!((stub.hits("/revoke-a"), stub.hits("/revoke-b")), (0, 0));
            assert!(store.names().is_empty());
        });

        // The issuer still says A: revoked there.
        seed(&latchkey, metadata(&base, "token", Some("revoke-b")));
        stub.route(
            DISCOVERY,
            metadata(&base, "token", Some("revoke-a")).to_string(),
        );
        rt.block_on(async {
            put(&latchkey, &s).await;
            let out = latchkey.logout().await.expect("logout");
            assert!(out.revoked, "{out:?}");
            assert_eq!((stub.hits("/revoke-a"), stub.hits("/revoke-b")), (1, 0));
            assert!(store.names().is_empty());
        });
    }
}
