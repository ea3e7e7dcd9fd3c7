//! [`Latchkey`]: one account's sign-in and session, as the CLI, the plugin and other front ends
//! see it. A facade: each method hands over to the use case that does the work —
//!
//! - `signin`: [`begin`](Latchkey::begin) → browser → [`resume`](Latchkey::resume) (state,
//!   RFC 9207 iss, then the flow's own module: code, hybrid, implicit), the loopback listener and
//!   the device grant;
//! - `session`: the stored session, its refresh, profile, picture, tokens for other tools, and
//!   logout;
//! - `oauth`: the stateless protocol calls all of them use.
//!
//! `ARCHITECTURE.md` at the repository root shows how a redirect travels from the OS to the
//! screen.

use url::Url;

use crate::config::Config;
use crate::context::Context;
use crate::dpop::ResourceHeaders;
use crate::error::Result;
use crate::oauth::end_session;
use crate::picture::Picture;
use crate::ports::Ports;
use crate::provider_checks;
use crate::session::logout::{self, Logout};
use crate::session::tokens::{self, TokenInfo, TokenOptions};
use crate::session::{AccessToken, Identity, picture_cache, refresh, repo};
use crate::signin::{
    FrontEnd, LoginNotice, SignIn, SignInRoute, authorize, callback, device, loopback, policy,
};
use crate::store::StoreKind;

/// One account's sign-in and session.
#[derive(Debug)]
pub struct Latchkey {
    pub(crate) ctx: Context,
}

impl Latchkey {
    pub fn new(config: Config, ports: Ports) -> Self {
        Self {
            ctx: Context::new(config, ports),
        }
    }

    pub fn config(&self) -> &Config {
        &self.ctx.config
    }

    /// Fetches the provider's metadata: checks the issuer is reachable and genuine.
    pub async fn check_provider(&self) -> Result<()> {
        self.ctx.provider().await.map(|_| ())
    }

    /// Forgets every sign-in in progress; their redirects will be rejected.
    pub fn cancel(&self) {
        self.ctx.pending.clear();
    }

    /// Whether a sign-in is waiting for its redirect.
    pub fn is_signing_in(&self) -> bool {
        self.ctx.pending.is_waiting(self.ctx.now())
    }

    /// The stored identity, without any network call. `None` when signed out.
    pub async fn current(&self) -> Result<Option<Identity>> {
        let session = repo::load(&self.ctx).await?;
        Ok(session.map(|s| repo::identity_of(&self.ctx, &s)))
    }

    /// Which keychain holds this account's session, once it has been opened (`secret-service`,
    /// `kernel-keyring`, ...).
    pub fn store_kind(&self) -> Option<StoreKind> {
        self.ctx.vault.kind()
    }

    /// How this account signs in on `front`: the one decision the CLI and the app both follow.
    pub fn sign_in_route(&self, front: FrontEnd) -> Result<SignInRoute> {
        policy::route(&self.ctx.config, front)
    }

    /// Starts a sign-in that will redirect to `redirect_uri`: discovery (and its issuer check)
    /// happens here, before any browser opens. The returned URL goes to the system browser.
    pub async fn begin(&self, redirect_uri: &Url) -> Result<SignIn> {
        authorize::begin(&self.ctx, redirect_uri).await
    }

    /// The URL to open again for the sign-in in progress whose page was `url`: the same, or
    /// for a pushed request (RFC 9126) whose `request_uri` has expired, a fresh push's.
    pub async fn url_to_reopen(&self, url: &Url) -> Result<Url> {
        authorize::url_to_reopen(&self.ctx, url).await
    }

    /// Opens a URL in the system browser (or `$BROWSER`).
    pub fn open_browser(&self, url: &Url) -> Result<()> {
        authorize::open_browser(&self.ctx, url)
    }

    /// The single entry point for redirects: accepts only a response to a sign-in this process
    /// started, once, in time; then redeems the code and stores the session. The response is
    /// read from the link's query; a fragment is refused, as no sign-in asks for one.
    pub async fn resume(&self, callback_url: &str) -> Result<Identity> {
        callback::resume(&self.ctx, callback_url).await
    }

    /// The CLI's sign-in: a loopback listener, the browser, and [`resume`](Self::resume) for each
    /// request that arrives. A request for another sign-in (forged or stale) is answered with an
    /// error page and ignored; the real one can still arrive until the timeout.
    ///
    /// One browser sign-in per profile at a time, across processes: parallel kubectl calls, or an
    /// IDE and a terminal, must not open a tab each. A process that finds another signing in
    /// says [`LoginNotice::Waiting`], waits for it (at most `login_timeout`), and then uses the
    /// session it stored. The lock is a file lock, so a crashed holder frees it.
    pub async fn login_loopback(&self, notify: impl FnMut(LoginNotice<'_>)) -> Result<Identity> {
        loopback::login_loopback_to(&self.ctx, "the terminal", notify).await
    }

    /// [`Self::login_loopback`] for a front end other than a terminal: the browser's last page
    /// tells the user to return to `return_to` (say, the app's name).
    pub async fn login_loopback_to(
        &self,
        return_to: &str,
        notify: impl FnMut(LoginNotice<'_>),
    ) -> Result<Identity> {
        loopback::login_loopback_to(&self.ctx, return_to, notify).await
    }

    /// The CLI's device sign-in: one sign-in per profile at a time (as
    /// [`login_loopback`](Self::login_loopback)), [`LoginNotice::Device`] with the codes to
    /// show, then [`resume_device`](Self::resume_device).
    pub async fn login_device(&self, notify: impl FnMut(LoginNotice<'_>)) -> Result<Identity> {
        device::login_device(&self.ctx, notify).await
    }

    /// The identity, refreshing the session first when its access token has expired, with the
    /// profile fetched again from userinfo (OIDC Core §5.3) so a changed name or picture shows.
    /// Userinfo failures never fail this: the stored claims are used.
    pub async fn status(&self) -> Result<Identity> {
        refresh::status(&self.ctx).await
    }

    /// Refreshes now, even if the access token is still valid.
    pub async fn refresh(&self) -> Result<Identity> {
        refresh::refresh(&self.ctx).await
    }

    /// Fetches the user's picture when their claims name one (OIDC Core §5.1), so a UI can show
    /// it without loading remote content. A plain GET with no credentials, with the provider
    /// calls' limits (timeouts, no redirects, size cap). The URL comes from the provider, so a
    /// release build fetches only https from a host whose every address is public, and connects
    /// only to those checked addresses, or through `HTTPS_PROXY` when one applies (see
    /// [`HttpClient::pinned`]); a debug build also allows loopback, for the dev provider.
    /// `Ok(None)`: no `picture`.
    ///
    /// The picture last fetched is kept with the session in the keychain (up to
    /// [`MAX_CACHED_PICTURE`](crate::MAX_CACHED_PICTURE) bytes) and answered from there
    /// while the claims name the same URL, so a start-up shows it without waiting for the
    /// network.
    pub async fn picture(&self, identity: &Identity) -> Result<Option<Picture>> {
        picture_cache::picture(&self.ctx, identity).await
    }

    /// [`picture`](Self::picture) from the network now, whatever is kept (and keeps the new
    /// one): for a UI that offers to reload it, and for tests of the fetch itself.
    pub async fn fetch_picture(&self, identity: &Identity) -> Result<Option<Picture>> {
        picture_cache::fetch_picture(&self.ctx, identity).await
    }

    /// Signs out: revokes the refresh token (RFC 7009) when the provider can, then deletes the
    /// keychain entry even if revocation failed.
    /// An unreadable session is deleted all the same (`damaged` says so), so a damaged keychain
    /// entry can never lock the user out.
    ///
    /// It holds the refresh lock from before reading the session to after deleting it: a
    /// refresh that has already sent the old refresh token would otherwise save the rotated one
    /// (RFC 9700 §4.14.2) after the delete, and the session would come back.
    pub async fn logout(&self) -> Result<Logout> {
        logout::logout(&self.ctx).await
    }

    /// Whether `url` is the provider's return from a logout: `None` when it is not addressed to
    /// `post_logout_redirect_uri` (so it may be a sign-in redirect), `Some(Ok)` for the return of
    /// the logout this process started (used up), and `Some(Err)` for any other URL addressed
    /// there: no logout pending, a wrong or missing `state`, or too late.
    pub fn logout_return(&self, url: &str) -> Option<Result<()>> {
        end_session::logout_return(&self.ctx, url)
    }

    /// A valid access token: from the token cache when it holds a fresh one (no keychain call),
    /// else from the stored session, refreshed if needed.
    pub async fn access_token(&self) -> Result<AccessToken> {
        tokens::access_token(&self.ctx).await
    }

    /// A valid access token with its type and expiry, as `options` asks.
    pub async fn token(&self, options: TokenOptions) -> Result<TokenInfo> {
        tokens::token(&self.ctx, options).await
    }

    /// The header lines for calling a resource at `url` with `method` (`latchkey headers`): the
    /// current access token (refreshed first when needed, as [`token`](Self::token)) as
    /// `Authorization: Bearer`, or for a DPoP-bound token `Authorization: DPoP` plus a fresh
    /// proof for that method and URL with `ath` (RFC 9449 §7.1). A fresh token is served from the
    /// token cache, a DPoP one with its key: no keychain read.
    pub async fn resource_headers(&self, method: &str, url: &str) -> Result<ResourceHeaders> {
        tokens::resource_headers(&self.ctx, method, url).await
    }

    /// A valid ID token, as the Kubernetes OIDC authenticator takes for a bearer token: the stored
    /// one while its `exp` is ahead, else a refreshed one. A provider that answers the refresh
    /// without a new ID token (OIDC Core §12.2 allows it) gets a `NotSignedIn` error that says
    /// so: only a new sign-in yields a new ID token then.
    pub async fn id_token(&self) -> Result<TokenInfo> {
        tokens::id_token(&self.ctx).await
    }

    /// A resource server refused `token` (git's `erase`): the token cache forgets it, and the
    /// next [`token`](Self::token) call refreshes first, unless the session has moved on to
    /// another token since. Never ends the session.
    pub async fn reject_token(&self, token: &str) -> Result<()> {
        tokens::reject_token(&self.ctx, token).await
    }

    /// Fetches and validates the provider's discovery document and keys from the network now,
    /// bypassing the cache: whether the provider answers *today*, as `doctor` reports it.
    pub async fn check_provider_live(&self) -> Result<()> {
        provider_checks::check_provider_live(&self.ctx).await
    }

    /// How far the provider's clock is ahead of ours (negative: behind), from the `Date` header
    /// (RFC 9110 §6.6.1) of its discovery document; `None` when it sends none. ID tokens carry
    /// `iat` and `exp` in the provider's time, so a large skew makes valid tokens look expired or
    /// not yet issued.
    pub async fn provider_clock_skew(&self) -> Result<Option<chrono::Duration>> {
        provider_checks::provider_clock_skew(&self.ctx).await
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;

    /// The app awaits these on a multi-threaded runtime: holding the refresh lock across the
    /// keychain and network calls must keep them `Send`.
    #[test]
    fn session_changing_futures_are_send() {
        fn send<T: Send>(_: &T) {}
        let dir = tempfile::tempdir().expect("tmp");
        let (_store, latchkey) = offline(dir.path());
        send(&latchkey.logout());
        send(&latchkey.resume("http://127.0.0.1/callback"));
        send(&latchkey.refresh());
    }
}
