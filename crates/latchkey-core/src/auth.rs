//! [`Latchkey`]: the sign-in flow, the session and its refresh, for one configured account.
//!
//! A redirect travels one path whatever carried it (the CLI's loopback listener or the app's deep
//! link): [`Latchkey::resume`] → state check → code exchange → ID token validation → userinfo →
//! keychain. The app and the CLI are thin adapters over these methods.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreTokenResponse,
    CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, SubjectIdentifier, TokenResponse,
};
use url::Url;

use crate::browser::{BrowserLauncher, SystemBrowser};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::discovery::{Discovery, Provider};
use crate::error::{Error, ErrorKind, Result};
use crate::flow::{self, Pending, PendingSet};
use crate::http::{HttpClient, HttpError};
use crate::lock;
use crate::loopback::LoopbackServer;
use crate::picture::{MAX_PICTURE, Picture};
use crate::session::{AccessToken, Claims, Identity, Session, jwt_payload, short_hash};
use crate::store::{KEYCHAIN_SERVICE, KEYCHAIN_TIMEOUT, KeyringStore, SecretStore, Vault};
use crate::verify::{self, NonceCheck, VerifyError};
use openidconnect::AsyncHttpClient as _;

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;
type TokenError = RequestTokenError<
    HttpError,
    openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
>;

/// Access tokens whose lifetime the provider does not state are treated as living this long.
const DEFAULT_ACCESS_TOKEN_LIFETIME: chrono::Duration = chrono::Duration::seconds(300);

/// The world as the core sees it.
#[derive(Debug, Clone)]
pub struct Ports {
    pub store: Arc<dyn SecretStore>,
    pub browser: Arc<dyn BrowserLauncher>,
    pub clock: Arc<dyn Clock>,
    /// Where discovery documents and lock files go; `None` uses the OS cache directory.
    pub cache_dir: Option<PathBuf>,
    pub keychain_timeout: Duration,
}

impl Ports {
    /// The real OS keychain, system browser and clock.
    pub fn system() -> Self {
        let mut store = KeyringStore::new(KEYCHAIN_SERVICE);
        // Debug builds only: force small keychain entries to exercise chunking on any OS.
        if cfg!(debug_assertions)
            && let Some(n) = std::env::var("LATCHKEY_KEYCHAIN_CHUNK")
                .ok()
                .and_then(|v| v.parse().ok())
        {
            store = store.with_max_secret_len(n);
        }
        let keychain_timeout = std::env::var("LATCHKEY_KEYCHAIN_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(KEYCHAIN_TIMEOUT);
        Self {
            store: Arc::new(store),
            browser: Arc::new(SystemBrowser::from_env()),
            clock: Arc::new(SystemClock),
            cache_dir: dirs::cache_dir().map(|d| d.join("latchkey")),
            keychain_timeout,
        }
    }
}

/// A sign-in waiting for its redirect.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SignIn {
    /// The authorization request to open in the system browser. It carries `state` and the PKCE
    /// challenge, never a token.
    pub url: Url,
    pub redirect_uri: Url,
    pub expires_at: DateTime<Utc>,
}

/// What [`Latchkey::logout`] did.
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
}

/// Where the time of a sign-in went, after the redirect arrived.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct Timing {
    pub total: Duration,
    pub provider: Duration,
}

/// One account's sign-in and session.
#[derive(Debug)]
pub struct Latchkey {
    config: Config,
    ports: Ports,
    http: OnceLock<std::result::Result<HttpClient, String>>,
    vault: Vault,
    discovery: Discovery,
    pending: PendingSet,
    refresh_gate: tokio::sync::Mutex<()>,
    session_name: String,
    last_timing: std::sync::Mutex<Timing>,
}

fn transient_http(what: &str, e: &HttpError) -> Error {
    Error::new(ErrorKind::ProviderUnreachable, format!("{what}: {e}"))
}

impl Latchkey {
    pub fn new(config: Config, ports: Ports) -> Self {
        let session_name = session_name(&config);
        Self {
            vault: Vault::new(Arc::clone(&ports.store), ports.keychain_timeout),
            discovery: Discovery::new(&config.issuer, ports.cache_dir.clone()),
            config,
            ports,
            http: OnceLock::new(),
            pending: PendingSet::default(),
            refresh_gate: tokio::sync::Mutex::new(()),
            session_name,
            last_timing: std::sync::Mutex::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Built on first use: loading the OS trust store costs milliseconds that a cached
    /// `latchkey token` must not pay.
    fn http(&self) -> Result<&HttpClient> {
        self.http
            .get_or_init(|| HttpClient::new().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::internal(e.clone()))
    }

    fn now(&self) -> DateTime<Utc> {
        self.ports.clock.now()
    }

    async fn provider(&self) -> Result<Arc<Provider>> {
        self.discovery.get(self.http()?, self.now()).await
    }

    /// Fetches the provider's metadata: checks the issuer is reachable and genuine.
    pub async fn check_provider(&self) -> Result<()> {
        self.provider().await.map(|_| ())
    }

    fn client(&self, p: &Provider) -> Client {
        CoreClient::from_provider_metadata(
            p.metadata.clone(),
            ClientId::new(self.config.client_id.clone()),
            self.config
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.secret().to_owned())),
        )
    }

    // ----- sign-in --------------------------------------------------------------------------

    /// Starts a sign-in that will redirect to `redirect_uri`: discovery (and its issuer check)
    /// happens here, before any browser opens. The returned URL goes to the system browser.
    pub async fn begin(&self, redirect_uri: &Url) -> Result<SignIn> {
        // Fail before the browser opens if the session could not be stored anyway; this also
        // opens the keychain connection so saving after the redirect is fast.
        self.vault
            .load(&self.session_name)
            .await
            .map_err(|e| e.context("before signing in"))?;
        let provider = self.provider().await?;
        let client = self.client(&provider);
        let redirect = RedirectUrl::from_url(redirect_uri.clone());
        // RFC 7636 §4.1: a 32-byte random verifier, S256 challenge (RFC 9700 §2.1.1).
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256_len(32);
        // 256 random bits each, above the 128 RFC 6749 §10.10 asks for.
        let state = CsrfToken::new_random_len(32);
        let nonce = Nonce::new_random_len(32);
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                {
                    let s = state.clone();
                    move || s
                },
                {
                    let n = nonce.clone();
                    move || n
                },
            )
            .set_pkce_challenge(challenge)
            .set_redirect_uri(Cow::Owned(redirect));
        for scope in self.config.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        // OIDC Core §11: offline_access is honoured only with prompt=consent, unless the
        // configuration sets its own prompt.
        if self.config.wants_offline_access()
            && !self.config.extra_auth_params.contains_key("prompt")
        {
            request = request.add_prompt(CoreAuthPrompt::Consent);
        }
        for (k, v) in &self.config.extra_auth_params {
            request = request.add_extra_param(k.clone(), v.clone());
        }
        let (url, _, _) = request.url();
        let now = self.now();
        let expires_at = now
            + chrono::Duration::from_std(self.config.login_timeout)
                .unwrap_or(chrono::Duration::minutes(5));
        self.pending.insert(
            Pending {
                state,
                nonce,
                verifier,
                redirect_uri: redirect_uri.clone(),
                expires_at,
            },
            now,
        );
        Ok(SignIn {
            url,
            redirect_uri: redirect_uri.clone(),
            expires_at,
        })
    }

    /// Opens a URL in the system browser (or `$BROWSER`).
    pub fn open_browser(&self, url: &Url) -> Result<()> {
        self.ports
            .browser
            .open(url)
            .map_err(|e| Error::new(ErrorKind::Browser, format!("cannot open the browser: {e}")))
    }

    /// Forgets every sign-in in progress; their redirects will be rejected.
    pub fn cancel(&self) {
        self.pending.clear();
    }

    /// Whether a sign-in is waiting for its redirect.
    pub fn is_signing_in(&self) -> bool {
        self.pending.is_waiting(self.now())
    }

    /// The single entry point for redirects: accepts only a response to a sign-in this process
    /// started, once, in time; then redeems the code and stores the session.
    pub async fn resume(&self, callback_url: &str) -> Result<Identity> {
        let started = Instant::now();
        let waited_before = self
            .http
            .get()
            .and_then(|h| h.as_ref().ok())
            .map(HttpClient::waited);
        let (url, params) = flow::parse_callback(callback_url)?;
        let pending = self.pending.take(params.state.as_deref(), self.now())?;
        if !flow::same_endpoint(&url, &pending.redirect_uri) {
            return Err(Error::new(
                ErrorKind::ForeignCallback,
                "the sign-in response arrived at an unexpected address; please sign in again",
            ));
        }
        let provider = self.provider().await?;
        // RFC 9207 §2.4: a present iss must be the issuer; a provider that promises iss must
        // send it. This defends against mix-up attacks.
        match &params.iss {
            Some(iss) if iss != provider.metadata.issuer().as_str() => {
                return Err(Error::new(
                    ErrorKind::ForeignCallback,
                    "the sign-in response came from a different provider (iss mismatch); please sign in again",
                ));
            }
            None if provider
                .extra()
                .authorization_response_iss_parameter_supported
                == Some(true) =>
            {
                return Err(Error::new(
                    ErrorKind::ForeignCallback,
                    "the sign-in response lacks the iss parameter the provider promises (RFC 9207); please sign in again",
                ));
            }
            _ => {}
        }
        // RFC 6749 §4.1.2.1.
        if let Some(error) = &params.error {
            let (kind, message) = if error == "access_denied" {
                (
                    ErrorKind::AccessDenied,
                    "sign-in was declined at the provider".to_owned(),
                )
            } else {
                (
                    ErrorKind::ProviderError,
                    format!("the provider refused the sign-in ({error})"),
                )
            };
            return Err(Error::oauth(
                kind,
                message,
                error,
                params.error_description.as_deref(),
            ));
        }
        let Some(code) = params.code else {
            return Err(Error::new(
                ErrorKind::ForeignCallback,
                "the sign-in response has no code; please sign in again",
            ));
        };

        let client = self.client(&provider);
        let http = self.http()?;
        let response = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| Error::new(ErrorKind::ProviderInvalid, e.to_string()))?
            .set_pkce_verifier(pending.verifier)
            .set_redirect_uri(Cow::Owned(RedirectUrl::from_url(
                pending.redirect_uri.clone(),
            )))
            .request_async(http)
            .await
            .map_err(|e| token_error(&e).context("redeeming the sign-in code"))?;

        let session = self
            .session_from_response(
                &provider,
                &response,
                NonceCheck::Equals(&pending.nonce),
                None,
            )
            .await?;
        let session = self.with_userinfo(&client, session).await?;
        self.vault
            .save(&self.session_name, session.to_bytes())
            .await?;

        let total = started.elapsed();
        let provider_wait = http
            .waited()
            .saturating_sub(waited_before.unwrap_or_default());
        *self.last_timing.lock().unwrap_or_else(|p| p.into_inner()) = Timing {
            total,
            provider: provider_wait,
        };
        tracing::info!(
            target: "latchkey::timing",
            total_ms = total.as_secs_f64() * 1e3,
            provider_ms = provider_wait.as_secs_f64() * 1e3,
            own_ms = total.saturating_sub(provider_wait).as_secs_f64() * 1e3,
            "signed in"
        );
        Ok(session.identity())
    }

    /// How long the last [`resume`](Self::resume) took, and how much of it was the provider.
    pub fn last_timing(&self) -> Timing {
        *self.last_timing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The CLI's sign-in: a loopback listener, the browser, and [`resume`](Self::resume) for each
    /// request that arrives. A request for another sign-in (forged or stale) is answered with an
    /// error page and ignored; the real one can still arrive until the timeout.
    pub async fn login_loopback(
        &self,
        notify: impl FnOnce(&SignIn, Result<()>),
    ) -> Result<Identity> {
        let server = LoopbackServer::bind(&self.config.redirect_uri).await?;
        let sign_in = self.begin(server.redirect_uri()).await?;
        notify(&sign_in, self.open_browser(&sign_in.url));
        let deadline = tokio::time::Instant::now() + self.config.login_timeout;
        loop {
            let request = match tokio::time::timeout_at(deadline, server.next()).await {
                Ok(r) => r?,
                Err(_) => {
                    self.cancel();
                    return Err(Error::new(
                        ErrorKind::TimedOut,
                        format!(
                            "no sign-in completed within {} s; run the command again",
                            self.config.login_timeout.as_secs()
                        ),
                    ));
                }
            };
            match self.resume(&request.url).await {
                Ok(identity) => {
                    let who = identity
                        .name
                        .clone()
                        .or(identity.email.clone())
                        .unwrap_or(identity.subject.clone());
                    request
                        .finish(true, "Signed in", &format!("Signed in as {who}. You can close this tab and return to the terminal."))
                        .await;
                    return Ok(identity);
                }
                Err(e) if e.kind() == ErrorKind::ForeignCallback && self.is_signing_in() => {
                    tracing::warn!("ignored a redirect that does not belong to this sign-in");
                    request
                        .finish(false, "Not accepted", "This response does not belong to the sign-in in progress and was ignored.")
                        .await;
                }
                Err(e) => {
                    request
                        .finish(false, "Sign-in failed", &e.to_string())
                        .await;
                    return Err(e);
                }
            }
        }
    }

    /// Validates a token response and builds the session it describes.
    async fn session_from_response(
        &self,
        provider: &Arc<Provider>,
        response: &CoreTokenResponse,
        nonce: NonceCheck<'_>,
        previous: Option<&Session>,
    ) -> Result<Session> {
        // RFC 6749 §7.1 / RFC 6750: only Bearer tokens are understood; the type is
        // case-insensitive.
        if !response
            .token_type()
            .as_ref()
            .eq_ignore_ascii_case("bearer")
        {
            return Err(Error::new(
                ErrorKind::ProviderInvalid,
                format!(
                    "the provider issued a `{}` token; only Bearer is supported",
                    response.token_type().as_ref()
                ),
            ));
        }
        let now = self.now();
        let access = response.access_token();
        let claims = match (response.id_token(), previous) {
            (Some(id_token), _) => {
                let claims = self
                    .verify_with_rotation(provider, id_token, access, nonce, now)
                    .await?;
                if let Some(prev) = previous {
                    verify::check_refreshed(&prev.claims, &claims)
                        .map_err(VerifyError::into_error)?;
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
        };
        let requested = previous
            .map(|p| p.requested_scopes.clone())
            .unwrap_or_else(|| self.config.scopes.clone());
        // RFC 6749 §5.1: no `scope` means the requested scopes were granted; §6: a refresh
        // without `scope` keeps the original grant.
        let granted = match response.scopes() {
            Some(s) => s.iter().map(|s| s.to_string()).collect(),
            None => previous
                .map(|p| p.granted_scopes.clone())
                .unwrap_or_else(|| requested.clone()),
        };
        let expires_at = match response.expires_in() {
            Some(d) => now + chrono::Duration::from_std(d).unwrap_or(DEFAULT_ACCESS_TOKEN_LIFETIME),
            None => jwt_exp(access.secret()).unwrap_or(now + DEFAULT_ACCESS_TOKEN_LIFETIME),
        };
        Ok(Session {
            v: 1,
            issuer: self.config.issuer.clone(),
            client_id: self.config.client_id.clone(),
            profile: self.config.profile.clone(),
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
        })
    }

    /// ID token validation, with one JWKS refetch when the key is unknown (key rotation).
    async fn verify_with_rotation(
        &self,
        provider: &Arc<Provider>,
        id_token: &CoreIdToken,
        access: &openidconnect::AccessToken,
        nonce: NonceCheck<'_>,
        now: DateTime<Utc>,
    ) -> Result<Claims> {
        match verify::verify_id_token(
            provider,
            &self.config.client_id,
            id_token,
            access,
            nonce,
            now,
        ) {
            Err(VerifyError::UnknownKey) => {
                let Some(fresh) = self.discovery.refetch_jwks(self.http()?, now).await? else {
                    return Err(VerifyError::UnknownKey.into_error());
                };
                verify::verify_id_token(
                    &fresh,
                    &self.config.client_id,
                    id_token,
                    access,
                    nonce,
                    now,
                )
                .map_err(VerifyError::into_error)
            }
            other => other.map_err(VerifyError::into_error),
        }
    }

    /// OIDC Core §5.3: profile and email usually come from userinfo; §5.3.2: its `sub` must be
    /// the ID token's.
    async fn with_userinfo(&self, client: &Client, mut session: Session) -> Result<Session> {
        let Ok(request) = client.user_info(
            openidconnect::AccessToken::new(session.access_token.clone()),
            Some(SubjectIdentifier::new(session.claims.sub.clone())),
        ) else {
            return Ok(session); // no userinfo endpoint
        };
        let info: CoreUserInfoClaims = request.request_async(self.http()?).await.map_err(|e| {
            use openidconnect::UserInfoError as U;
            match e {
                U::Request(h) => transient_http("fetching your profile", &h),
                U::ClaimsVerification(c) => Error::new(
                    ErrorKind::ProviderInvalid,
                    format!(
                        "the provider's profile answer failed validation ({c}); sign-in rejected"
                    ),
                ),
                U::Response(status, _, _) => Error::new(
                    ErrorKind::ProviderInvalid,
                    format!(
                        "fetching your profile: the provider answered HTTP {}",
                        status.as_u16()
                    ),
                ),
                _ => Error::new(
                    ErrorKind::ProviderInvalid,
                    "fetching your profile: the provider's answer is invalid",
                ),
            }
        })?;
        let c = &mut session.claims;
        if let Some(n) = info.name().and_then(|n| n.get(None)) {
            c.name = Some(n.to_string());
        }
        if let Some(e) = info.email() {
            c.email = Some(e.to_string());
        }
        if let Some(v) = info.email_verified() {
            c.email_verified = Some(v);
        }
        if let Some(p) = info.picture().and_then(|p| p.get(None)) {
            c.picture = Some(p.to_string());
        }
        if let Some(u) = info.preferred_username() {
            c.preferred_username = Some(u.to_string());
        }
        Ok(session)
    }

    // ----- the stored session ---------------------------------------------------------------

    async fn load(&self) -> Result<Option<Session>> {
        let Some(bytes) = self.vault.load(&self.session_name).await? else {
            return Ok(None);
        };
        let session = Session::from_bytes(&bytes).ok_or_else(|| {
            Error::new(
                ErrorKind::Keychain,
                "the stored session is unreadable; run `latchkey logout` and sign in again",
            )
        })?;
        Ok(Some(session))
    }

    fn not_signed_in(&self) -> Error {
        Error::new(
            ErrorKind::NotSignedIn,
            format!(
                "not signed in (profile `{}`); run `latchkey login`",
                self.config.profile
            ),
        )
    }

    /// The stored identity, without any network call. `None` when signed out.
    pub async fn current(&self) -> Result<Option<Identity>> {
        Ok(self.load().await?.map(|s| s.identity()))
    }

    /// The identity, refreshing the session first when its access token has expired.
    pub async fn status(&self) -> Result<Identity> {
        Ok(self.valid_session().await?.identity())
    }
    /// Fetches the user's picture when their claims name one (OIDC Core §5.1), so a UI can show
    /// it without loading remote content. A plain GET with no credentials, through the same
    /// client as provider calls (timeouts, no redirects, size cap). `Ok(None)`: no `picture`.
    pub async fn picture(&self, identity: &Identity) -> Result<Option<Picture>> {
        use openidconnect::http::{Method, Request, StatusCode, header};
        let Some(claim) = identity.picture.as_deref() else {
            return Ok(None);
        };
        let url = crate::picture::picture_url(claim)
            .map_err(|why| Error::new(ErrorKind::ProviderInvalid, format!("picture: {why}")))?;
        let request = Request::builder()
            .method(Method::GET)
            .uri(url.as_str())
            .header(
                header::ACCEPT,
                "image/png, image/jpeg, image/gif, image/webp",
            )
            .body(Vec::new())
            .map_err(|e| Error::new(ErrorKind::ProviderInvalid, format!("picture: {e}")))?;
        let response = self
            .http()?
            .call(request)
            .await
            .map_err(|e| transient_http("fetching the picture", &e))?;
        if response.status() != StatusCode::OK {
            return Err(Error::new(
                ErrorKind::ProviderError,
                format!("picture: HTTP {}", response.status().as_u16()),
            ));
        }
        Picture::from_bytes(response.into_body())
            .map(Some)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::ProviderInvalid,
                    format!(
                        "picture: not a PNG, JPEG, GIF or WebP image of at most {MAX_PICTURE} bytes"
                    ),
                )
            })
    }

    /// A valid access token: the cached one, or a refreshed one.
    pub async fn access_token(&self) -> Result<AccessToken> {
        Ok(AccessToken::from(self.valid_session().await?.access_token))
    }

    /// Refreshes now, even if the access token is still valid.
    pub async fn refresh(&self) -> Result<Identity> {
        let session = self.load().await?.ok_or_else(|| self.not_signed_in())?;
        Ok(self
            .refresh_session(Some(&session.access_token))
            .await?
            .identity())
    }

    async fn valid_session(&self) -> Result<Session> {
        let session = self.load().await?.ok_or_else(|| self.not_signed_in())?;
        if session.access_token_valid(self.now()) {
            return Ok(session);
        }
        self.refresh_session(None).await
    }

    /// Refreshes under the in-process gate and the cross-process file lock. After taking both it
    /// re-reads the session: if another task or process already refreshed, that result is used,
    /// so a rotated refresh token is never sent twice (RFC 9700 §4.14.2).
    async fn refresh_session(&self, force_replacing: Option<&str>) -> Result<Session> {
        let _gate = self.refresh_gate.lock().await;
        let _file = lock::acquire(&self.lock_path(), lock::LOCK_WAIT).await?;
        let session = self.load().await?.ok_or_else(|| self.not_signed_in())?;
        let already_fresh = match force_replacing {
            Some(old) => session.access_token != old,
            None => session.access_token_valid(self.now()),
        };
        if already_fresh {
            return Ok(session);
        }
        let Some(refresh_token) = session.refresh_token.clone() else {
            return Err(Error::new(
                ErrorKind::NotSignedIn,
                "the session has expired and the provider issued no refresh token; run `latchkey login`",
            ));
        };
        let provider = self
            .provider()
            .await
            .map_err(|e| e.context("refreshing the session"))?;
        let client = self.client(&provider);
        let result = client
            .exchange_refresh_token(&RefreshToken::new(refresh_token))
            .map_err(|e| Error::new(ErrorKind::ProviderInvalid, e.to_string()))?
            .request_async(self.http()?)
            .await;
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                let error = token_error(&e);
                if error.oauth_error() == Some("invalid_grant") {
                    // The only failure that ends a session: the grant is gone at the provider.
                    self.vault.delete(&self.session_name).await?;
                    return Err(Error::oauth(
                        ErrorKind::SessionExpired,
                        format!(
                            "the provider ended the session (invalid_grant), so it was signed out; run `latchkey login`{}",
                            if self.config.profile == crate::config::DEFAULT_PROFILE {
                                String::new()
                            } else {
                                format!(" --profile {}", self.config.profile)
                            }
                        ),
                        "invalid_grant",
                        error.description(),
                    ));
                }
                return Err(error.context("refreshing the session (still signed in)"));
            }
        };
        let refreshed = self
            .session_from_response(&provider, &response, NonceCheck::Refresh, Some(&session))
            .await?;
        // Saved before anyone can use it: with rotation the old refresh token is now dead.
        self.vault
            .save(&self.session_name, refreshed.to_bytes())
            .await
            .map_err(|e| e.context("saving the refreshed session"))?;
        tracing::debug!("session refreshed");
        Ok(refreshed)
    }

    fn lock_path(&self) -> PathBuf {
        let name = short_hash(&self.session_name, 12);
        self.ports
            .cache_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("latchkey"))
            .join("locks")
            .join(format!("{name}.lock"))
    }

    /// Signs out: revokes the refresh token (RFC 7009) when the provider can, then deletes the
    /// keychain entry even if revocation failed.
    pub async fn logout(&self) -> Result<Logout> {
        let Some(session) = self.load().await? else {
            return Ok(Logout::default());
        };
        let mut out = Logout {
            was_signed_in: true,
            ..Default::default()
        };
        match self.provider().await {
            Ok(provider) => {
                out.end_session_url = self.end_session_url(&provider, &session);
                match self.revoke(&provider, &session).await {
                    Ok(revoked) => out.revoked = revoked,
                    Err(e) => out.revocation_problem = Some(e.to_string()),
                }
                if !out.revoked && out.revocation_problem.is_none() {
                    out.revocation_problem =
                        Some("the provider offers no revocation endpoint".into());
                }
            }
            Err(e) => out.revocation_problem = Some(e.to_string()),
        }
        self.vault.delete(&self.session_name).await?;
        Ok(out)
    }

    /// RFC 7009 §2.1. Built by hand because `oauth2` insists on an https endpoint, and a
    /// loopback dev provider is plain http (already limited to loopback by config validation).
    async fn revoke(&self, provider: &Provider, session: &Session) -> Result<bool> {
        use base64::Engine as _;
        use openidconnect::http::{Method, Request, StatusCode, header};
        let Some(endpoint) = &provider.extra().revocation_endpoint else {
            return Ok(false);
        };
        // Revoking the refresh token revokes the grant (§2.1); with none, revoke the access token.
        let (token, hint) = match &session.refresh_token {
            Some(rt) => (rt.as_str(), "refresh_token"),
            None => (session.access_token.as_str(), "access_token"),
        };
        // The serializer is not `Send`: it lives in this block only, so `logout()` stays `Send`
        // (the app awaits it on a multi-threaded runtime).
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", token)
                .append_pair("token_type_hint", hint);
            if self.config.client_secret.is_none() {
                // A public client identifies itself in the body (RFC 6749 §2.3).
                form.append_pair("client_id", &self.config.client_id);
            }
            form.finish().into_bytes()
        };
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(endpoint.as_str())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json");
        // RFC 6749 §2.3.1, as the token endpoint is called.
        if let Some(secret) = &self.config.client_secret {
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                enc(&self.config.client_id),
                enc(secret.secret())
            ));
            request = request.header(header::AUTHORIZATION, format!("Basic {basic}"));
        }
        let request = request.body(body).map_err(|e| {
            Error::new(
                ErrorKind::ProviderInvalid,
                format!("revocation endpoint: {e}"),
            )
        })?;
        let response = self
            .http()?
            .call(request)
            .await
            .map_err(|e| transient_http("revoking", &e))?;
        if response.status() == StatusCode::OK {
            return Ok(true);
        }
        let code = serde_json::from_slice::<serde_json::Value>(response.body())
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| format!("HTTP {}", response.status().as_u16()));
        Err(Error::new(
            ErrorKind::ProviderError,
            format!("revoking: the provider answered {code}"),
        ))
    }

    /// OIDC RP-Initiated Logout 1.0 §2.
    fn end_session_url(&self, provider: &Provider, session: &Session) -> Option<Url> {
        let mut url = Url::parse(provider.extra().end_session_endpoint.as_deref()?).ok()?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(id_token) = &session.id_token {
                q.append_pair("id_token_hint", id_token);
            }
            q.append_pair("client_id", &self.config.client_id);
            if let Some(p) = &self.config.post_logout_redirect_uri {
                q.append_pair("post_logout_redirect_uri", p.as_str());
            }
        }
        Some(url)
    }
}

/// Keeps profile claims a refreshed ID token omits (providers often put them only in userinfo).
fn merge_profile(mut fresh: Claims, previous: &Claims) -> Claims {
    fresh.name = fresh.name.or_else(|| previous.name.clone());
    fresh.email = fresh.email.or_else(|| previous.email.clone());
    fresh.email_verified = fresh.email_verified.or(previous.email_verified);
    fresh.picture = fresh.picture.or_else(|| previous.picture.clone());
    fresh.preferred_username = fresh
        .preferred_username
        .or_else(|| previous.preferred_username.clone());
    fresh
}

/// `exp` of a JWT access token, used only when the response omits `expires_in`.
fn jwt_exp(token: &str) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(jwt_payload(token)?.get("exp")?.as_i64()?, 0)
}

fn oauth_code<T: serde::Serialize>(t: &T) -> String {
    match serde_json::to_value(t) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "an error".into(),
    }
}

/// Maps a token-endpoint failure. Only the provider's `error`/`error_description` are kept; the
/// body itself is never echoed, since a malformed success response could contain tokens.
fn token_error(e: &TokenError) -> Error {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let code = oauth_code(r.error());
            Error::oauth(
                ErrorKind::ProviderError,
                format!("the provider answered `{code}`"),
                &code,
                r.error_description().map(String::as_str),
            )
        }
        RequestTokenError::Request(h) => transient_http("the provider could not be reached", h),
        RequestTokenError::Parse(p, _) => Error::new(
            ErrorKind::ProviderInvalid,
            format!(
                "the provider's token response is malformed (at `{}`)",
                p.path()
            ),
        ),
        RequestTokenError::Other(s) => Error::new(
            ErrorKind::ProviderInvalid,
            format!("the provider's token response is invalid: {s}"),
        ),
    }
}

/// One keychain entry per (issuer, client_id, profile).
fn session_name(config: &Config) -> String {
    let name = format!("{}/{}@{}", config.profile, config.client_id, config.issuer);
    if name.len() <= 200 {
        return name;
    }
    format!("{}/{}", config.profile, short_hash(&name, 16))
}
