//! [`Latchkey`]: the sign-in flow, the session and its refresh, for one configured account.
//!
//! A redirect travels one path whatever carried it (the CLI's loopback listener or the app's deep
//! link): [`Latchkey::resume`] (or [`Latchkey::resume_form_post`]) → state check → code exchange
//! → ID token validation → userinfo → keychain. The hybrid flow verifies the response's ID token
//! before the code exchange (`auth/hybrid.rs`); the implicit flow has no code and stops at its ID
//! token (`auth/implicit.rs`). The app and the CLI are thin adapters over these methods.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreIdToken,
    CoreResponseType, CoreTokenResponse,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, SubjectIdentifier, TokenResponse,
};
use url::Url;

use crate::AppIdentity;
use crate::browser::{BrowserLauncher, SystemBrowser};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, FlowChoice};
use crate::discovery::{Discovery, Provider};
use crate::dpop::{self, DpopKey, ProofClient};
use crate::error::{Error, ErrorKind, Result, sanitize};
use crate::flow::{self, CallbackParams, Pending, PendingSet, ResponseMode};
use crate::grants::{GrantSource, Grants};
use crate::http::{HttpClient, HttpError};
use crate::lock;
use crate::loopback::LoopbackServer;
use crate::picture::{MAX_PICTURE, Picture};
use crate::session::{CachedPicture, Claims, Identity, Session, jwt_payload, short_hash};
use crate::store::{KEYCHAIN_TIMEOUT, SecretStore, Stored, SystemStore, Vault};
use crate::token_cache::TokenCache;
use crate::verify::{self, NonceCheck, VerifyError};

mod checks;
mod client_auth;
mod device;
mod end_session;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing;
mod hybrid;
mod implicit;
mod par;
mod tokens;
use client_auth::ClientAuth;
pub use device::DeviceSignIn;
pub use implicit::IMPLICIT_WARNING;
use openidconnect::AsyncHttpClient as _;
pub use tokens::{TokenInfo, TokenOptions};

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

/// How long fetching the profile again (at `status`, after a refresh) may take: the session is
/// usable without it, so a slow provider must not hold up a start-up for the HTTP timeouts.
const PROFILE_TIMEOUT: Duration = Duration::from_secs(5);

/// Access tokens whose lifetime the provider does not state are treated as living this long.
const DEFAULT_ACCESS_TOKEN_LIFETIME: chrono::Duration = chrono::Duration::seconds(300);
/// Longer stated lifetimes are clamped to this: a session still refreshes at least yearly, and no
/// `expires_in` can overflow date arithmetic.
const MAX_ACCESS_TOKEN_LIFETIME: chrono::Duration = chrono::Duration::days(366);

/// The world as the core sees it.
#[derive(Debug, Clone)]
pub struct Ports {
    pub store: Arc<dyn SecretStore>,
    pub browser: Arc<dyn BrowserLauncher>,
    pub clock: Arc<dyn Clock>,
    /// Where discovery documents and lock files go; `None` uses the OS cache directory.
    pub cache_dir: Option<PathBuf>,
    pub keychain_timeout: Duration,
    /// Where the current access token is also kept for the hot path (`None`: no cache).
    pub token_cache: Option<Arc<dyn TokenCache>>,
    /// The app the core works for: its user agent, and its folder for locks.
    pub identity: AppIdentity,
}

impl Ports {
    /// The real OS keychain (under `identity`'s service), system browser and clock. The keychain
    /// follows each configuration's `store` key; `<PREFIX>_TOKEN_CACHE=off` turns the
    /// access-token cache off.
    pub fn system(identity: &AppIdentity) -> Self {
        let env = |name: &str| std::env::var(identity.var(name));
        let service = identity.keychain_service;
        let mut store = SystemStore::new(service, crate::config::StoreChoice::Auto);
        // Debug builds only: force small keychain entries to exercise chunking on any OS.
        if cfg!(debug_assertions)
            && let Some(n) = env("KEYCHAIN_CHUNK").ok().and_then(|v| v.parse().ok())
        {
            store = store.with_max_secret_len(n);
        }
        let keychain_timeout = env("KEYCHAIN_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(KEYCHAIN_TIMEOUT);
        Self {
            store: Arc::new(store),
            browser: Arc::new(SystemBrowser::from_env()),
            clock: Arc::new(SystemClock),
            cache_dir: identity.cache_dir(),
            keychain_timeout,
            token_cache: match env("TOKEN_CACHE").as_deref() {
                Ok("off" | "0" | "false" | "no") => None,
                _ => crate::token_cache::system(service),
            },
            identity: *identity,
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

/// What [`Latchkey::login_loopback`] tells its caller along the way.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoginNotice<'a> {
    /// Another process is signing in to this profile; this one waits for it.
    Waiting,
    /// The browser was asked to open `sign_in.url`; `result` says whether it could be started.
    Opened {
        sign_in: &'a SignIn,
        result: Result<()>,
    },
    /// A device sign-in (RFC 8628) waits for the user to enter `user_code` at
    /// `verification_uri`: show both (and `verification_uri_complete`, when there is one).
    Device { sign_in: &'a DeviceSignIn },
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
    /// Whether the stored session was unreadable (damaged or incomplete keychain entry): it was
    /// removed without revocation, since its tokens could not be read.
    pub damaged: bool,
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
    /// The RP-initiated logout this process started, awaiting the provider's return.
    pending_logout: std::sync::Mutex<Option<end_session::PendingLogout>>,
    refresh_gate: tokio::sync::Mutex<()>,
    session_name: String,
    last_timing: std::sync::Mutex<Timing>,
}

fn transient_http(what: &str, e: &HttpError) -> Error {
    // A server that keeps asking for a DPoP nonce was reached: it is not a network problem.
    let kind = match e {
        HttpError::DpopNonce { .. } => ErrorKind::ProviderError,
        _ => ErrorKind::ProviderUnreachable,
    };
    Error::new(kind, format!("{what}: {e}"))
}

impl Latchkey {
    pub fn new(config: Config, ports: Ports) -> Self {
        let session_name = session_name(&config);
        let store = ports
            .store
            .for_choice(config.store)
            .unwrap_or_else(|| Arc::clone(&ports.store));
        Self {
            vault: Vault::new(store, ports.keychain_timeout),
            discovery: Discovery::new(&config.issuer, ports.cache_dir.clone()),
            config,
            ports,
            http: OnceLock::new(),
            pending: PendingSet::default(),
            pending_logout: std::sync::Mutex::default(),
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
            .get_or_init(|| {
                HttpClient::new(self.ports.identity.user_agent).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| Error::internal(e.clone()))
    }

    fn now(&self) -> DateTime<Utc> {
        self.ports.clock.now()
    }

    /// The client for token requests and userinfo: with a DPoP proof on each request when the
    /// sign-in or session has a key (RFC 9449).
    fn proof_client<'a>(&'a self, key: Option<&'a DpopKey>) -> Result<ProofClient<'a>> {
        Ok(ProofClient::new(
            self.http()?,
            key,
            Arc::clone(&self.ports.clock),
        ))
    }

    /// A fresh DPoP key for a sign-in when `dpop` and the provider say so, decided before any
    /// browser opens or code is shown.
    fn dpop_key_for(&self, provider: &Provider) -> Result<Option<DpopKey>> {
        if dpop::wanted(self.config.dpop, provider)? {
            Ok(Some(DpopKey::generate()?))
        } else {
            Ok(None)
        }
    }

    async fn provider(&self) -> Result<Arc<Provider>> {
        self.discovery.get(self.http()?, self.now()).await
    }

    /// Fetches the provider's metadata: checks the issuer is reachable and genuine.
    pub async fn check_provider(&self) -> Result<()> {
        self.provider().await.map(|_| ())
    }

    /// The provider's client for this configuration, authenticating as [`ClientAuth::choose`]
    /// says.
    fn client(&self, p: &Provider) -> Result<Client> {
        let auth = ClientAuth::choose(&self.config, p)?;
        Ok(CoreClient::from_provider_metadata(
            p.metadata.clone(),
            ClientId::new(self.config.client_id.clone()),
            self.config
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.secret().to_owned())),
        )
        .set_auth_type(auth.auth_type()))
    }

    // ----- sign-in --------------------------------------------------------------------------

    /// Starts a sign-in that will redirect to `redirect_uri`: discovery (and its issuer check)
    /// happens here, before any browser opens. The returned URL goes to the system browser.
    pub async fn begin(&self, redirect_uri: &Url) -> Result<SignIn> {
        // Fail before the browser opens if the session could not be stored anyway; this also
        // opens the keychain connection so saving after the redirect is fast. A damaged entry is
        // no obstacle: the new session replaces it.
        if let Stored::Damaged(why) = self
            .vault
            .read(&self.session_name)
            .await
            .map_err(|e| e.context("before signing in"))?
        {
            tracing::debug!(%why, "a new sign-in will replace the unreadable stored session");
        }
        let (flow, mode) = self.browser_flow(redirect_uri)?;
        let provider = self.provider().await?;
        browser_flow_offered(&provider, flow, mode)?;
        let client = self.client(&provider)?;
        // Decided now, so a provider that cannot honour `par` fails before any browser opens.
        let par_endpoint = par::endpoint(self.config.par, &provider)?;
        let dpop_key = self.dpop_key_for(&provider)?;
        let redirect = RedirectUrl::from_url(redirect_uri.clone());
        // RFC 7636 §4.1: a 32-byte random verifier, S256 challenge (RFC 9700 §2.1.1).
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256_len(32);
        // 256 random bits each, above the 128 RFC 6749 §10.10 asks for.
        let state = CsrfToken::new_random_len(32);
        let nonce = Nonce::new_random_len(32);
        let authentication_flow = match flow {
            // OIDC Core §3.3.2.2.
            FlowChoice::Hybrid => CoreAuthenticationFlow::Hybrid(vec![
                CoreResponseType::Code,
                CoreResponseType::IdToken,
            ]),
            // §3.2.2.1: `id_token` alone, no access token.
            FlowChoice::Implicit => CoreAuthenticationFlow::Implicit(false),
            _ => CoreAuthenticationFlow::AuthorizationCode,
        };
        let mut request = client
            .authorize_url(
                authentication_flow,
                {
                    let s = state.clone();
                    move || s
                },
                {
                    let n = nonce.clone();
                    move || n
                },
            )
            .set_redirect_uri(Cow::Owned(redirect));
        // PKCE protects a code (RFC 7636 §1); the implicit flow has none.
        if flow != FlowChoice::Implicit {
            request = request.set_pkce_challenge(challenge);
        }
        if mode != ResponseMode::Query {
            request = request.add_extra_param("response_mode", mode.as_str());
        }
        let scopes = match flow {
            FlowChoice::Implicit => implicit::implicit_scopes(&self.config.scopes),
            _ => self.config.scopes.clone(),
        };
        for scope in scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        // OIDC Core §11: offline_access is honoured only with prompt=consent, unless the
        // configuration sets its own prompt.
        if flow != FlowChoice::Implicit
            && self.config.wants_offline_access()
            && !self.config.extra_auth_params.contains_key("prompt")
        {
            request = request.add_prompt(CoreAuthPrompt::Consent);
        }
        // RFC 9449 §10: binds the code to the DPoP key, so only its holder can redeem it. A
        // pushed request carries it too (par::push moves every parameter).
        if let Some(key) = &dpop_key {
            request = request.add_extra_param("dpop_jkt", key.thumbprint().to_owned());
        }
        for (k, v) in &self.config.extra_auth_params {
            request = request.add_extra_param(k.clone(), v.clone());
        }
        let (url, _, _) = request.url();
        let url = match par_endpoint {
            Some(endpoint) => par::push(
                self.http()?,
                endpoint,
                ClientAuth::choose(&self.config, &provider)?,
                &self.config,
                provider.metadata.authorization_endpoint().url(),
                &url,
            )
            .await
            .map_err(|e| e.context("before opening the browser"))?,
            None => url,
        };
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
                par: par_endpoint.is_some(),
                flow,
                mode,
                dpop: dpop_key,
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

    /// No browser can be opened here: says so, and when the provider has the device flow
    /// (RFC 8628), that it is the way to sign in from this terminal.
    async fn no_browser(&self, why: &str) -> Error {
        let error = Error::new(ErrorKind::Browser, format!("cannot open a browser: {why}"));
        match self.provider().await {
            Ok(p) if p.extra().device_authorization_endpoint.is_some() => {
                error.with_remedy(crate::Remedy::UseDevice)
            }
            _ => error,
        }
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
    /// started, once, in time; then redeems the code and stores the session. The response is
    /// read from the link's query, or from its fragment (the hybrid flow on a custom scheme).
    pub async fn resume(&self, callback_url: &str) -> Result<Identity> {
        let (url, params, mode) = flow::parse_callback(callback_url)?;
        self.resume_params(url, params, mode).await
    }

    /// [`resume`](Self::resume) for a response the browser POSTed to `callback_url` as the
    /// `application/x-www-form-urlencoded` `body` (Form Post Response Mode §2): the loopback
    /// listener's hybrid and implicit sign-ins.
    pub async fn resume_form_post(&self, callback_url: &str, body: &str) -> Result<Identity> {
        let (url, params) = flow::parse_form_post(callback_url, body)?;
        self.resume_params(url, params, ResponseMode::FormPost)
            .await
    }

    async fn resume_params(
        &self,
        url: Url,
        params: CallbackParams,
        mode: ResponseMode,
    ) -> Result<Identity> {
        let started = Instant::now();
        let waited_before = self
            .http
            .get()
            .and_then(|h| h.as_ref().ok())
            .map(HttpClient::waited);
        let pending = self
            .pending
            .take(params.state.as_deref(), mode, self.now())?;
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
            // RFC 9207 §2.4: with an ID token in the response its (verified) iss claim stands in.
            None if params.id_token.is_none()
                && provider
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
            // Error::oauth appends the code (`access_denied`, `invalid_scope`, …).
            let (kind, message) = if error == "access_denied" {
                (
                    ErrorKind::AccessDenied,
                    "sign-in was declined at the provider",
                )
            } else {
                (ErrorKind::ProviderError, "the provider refused the sign-in")
            };
            return Err(Error::oauth(
                kind,
                message,
                error,
                params.error_description.as_deref(),
            ));
        }
        match pending.flow {
            FlowChoice::Hybrid => {
                let session = self.hybrid_session(&provider, pending, params).await?;
                return self.signed_in(&session, started, waited_before).await;
            }
            FlowChoice::Implicit => {
                let session = self.implicit_session(&provider, pending, params).await?;
                return self.signed_in(&session, started, waited_before).await;
            }
            _ => {}
        }
        let Some(code) = params.code else {
            return Err(Error::new(
                ErrorKind::ForeignCallback,
                "the sign-in response has no code; please sign in again",
            ));
        };

        let client = self.client(&provider)?;
        let response = self
            .redeem(
                &client,
                AuthorizationCode::new(code),
                pending.verifier,
                &pending.redirect_uri,
                pending.dpop.as_ref(),
            )
            .await?;
        let dpop_key = pending.dpop;

        let mut session = self
            .session_from_response(
                &provider,
                &response,
                NonceCheck::Equals(&pending.nonce),
                None,
                dpop_key.as_ref(),
            )
            .await?;
        session.par = pending.par;
        let session = self.with_userinfo(&client, session).await?;
        self.signed_in(&session, started, waited_before).await
    }

    /// RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.5): the code for tokens.
    async fn redeem(
        &self,
        client: &Client,
        code: AuthorizationCode,
        verifier: openidconnect::PkceCodeVerifier,
        redirect_uri: &Url,
        dpop: Option<&crate::dpop::DpopKey>,
    ) -> Result<CoreTokenResponse> {
        // With DPoP, the redemption carries a proof of the key the request named (RFC 9449 §5).
        redeem_with(
            client,
            code,
            verifier,
            redirect_uri,
            &self.proof_client(dpop)?,
        )
        .await
    }

    /// Stores a sign-in's new session and records how long it took.
    async fn signed_in(
        &self,
        session: &Session,
        started: Instant,
        waited_before: Option<Duration>,
    ) -> Result<Identity> {
        self.store_new_session(session).await?;
        let total = started.elapsed();
        let provider_wait = self
            .http()?
            .waited()
            .saturating_sub(waited_before.unwrap_or_default());
        *self.last_timing.lock().unwrap_or_else(|p| p.into_inner()) = Timing {
            total,
            provider: provider_wait,
        };
        tracing::info!(
            total_ms = total.as_secs_f64() * 1e3,
            provider_ms = provider_wait.as_secs_f64() * 1e3,
            own_ms = total.saturating_sub(provider_wait).as_secs_f64() * 1e3,
            "signed in"
        );
        Ok(self.identity_of(session))
    }

    /// Saves a session a sign-in just made. Under the refresh lock: a refresh of the previous
    /// session still in flight must not overwrite this one with its own result afterwards.
    async fn store_new_session(&self, session: &Session) -> Result<()> {
        let _exclusive = self.exclusive().await?;
        self.vault
            .save(&self.session_name, session.to_bytes())
            .await?;
        self.cache_token(session);
        Ok(())
    }

    /// Refuses a sign-in of another flow than `flow` configured: each flow has its own entry
    /// point ([`begin`](Self::begin) for `code`, [`login_device`](Self::login_device)).
    fn flow_is(&self, flow: FlowChoice) -> Result<()> {
        let configured = self.config.flow;
        if configured == flow {
            return Ok(());
        }
        Err(Error::config(match configured {
            FlowChoice::Device => {
                "`flow = device` signs in with a code on another device, which this front end does not offer; set flow to code".into()
            }
            _ => format!(
                "`flow = {}` does not sign in this way; set flow to {}",
                configured.as_str(),
                flow.as_str()
            ),
        }))
    }

    /// The browser flow `begin` runs for `redirect_uri`, and how its response comes back: the
    /// query for `code`; a form POST to a loopback listener, or the fragment of a custom-scheme
    /// link (which cannot take a POST), for `hybrid`; a form POST only, for `implicit`.
    fn browser_flow(&self, redirect_uri: &Url) -> Result<(FlowChoice, ResponseMode)> {
        let web = matches!(redirect_uri.scheme(), "http" | "https");
        match self.config.flow {
            FlowChoice::Hybrid if web => Ok((FlowChoice::Hybrid, ResponseMode::FormPost)),
            FlowChoice::Hybrid => Ok((FlowChoice::Hybrid, ResponseMode::Fragment)),
            FlowChoice::Implicit if web => Ok((FlowChoice::Implicit, ResponseMode::FormPost)),
            FlowChoice::Implicit => Err(Error::config(
                "`flow = implicit` works only with the loopback redirect (the CLI), as its response is a form POST that an app's custom scheme cannot receive; set flow to code or hybrid",
            )),
            FlowChoice::Code => Ok((FlowChoice::Code, ResponseMode::Query)),
            _ => self
                .flow_is(FlowChoice::Code)
                .map(|()| (FlowChoice::Code, ResponseMode::Query)),
        }
    }

    /// How long the last [`resume`](Self::resume) took, and how much of it was the provider.
    pub fn last_timing(&self) -> Timing {
        *self.last_timing.lock().unwrap_or_else(|p| p.into_inner())
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
        self.login_loopback_to("the terminal", notify).await
    }

    /// [`Self::login_loopback`] for a front end other than a terminal: the browser's last page
    /// tells the user to return to `return_to` (say, the app's name).
    pub async fn login_loopback_to(
        &self,
        return_to: &str,
        mut notify: impl FnMut(LoginNotice<'_>),
    ) -> Result<Identity> {
        let _one_at_a_time = match self.sign_in_lock(&mut notify).await? {
            SignInTurn::Ours(held) => held,
            SignInTurn::Done(identity) => return Ok(*identity),
        };
        let server = LoopbackServer::bind(&self.config.redirect_uri).await?;
        let sign_in = self.begin(server.redirect_uri()).await?;
        let result = match self.ports.browser.usable() {
            Ok(()) => self.open_browser(&sign_in.url),
            Err(why) => Err(self.no_browser(&why).await),
        };
        notify(LoginNotice::Opened {
            sign_in: &sign_in,
            result,
        });
        let deadline = tokio::time::Instant::now() + self.config.login_timeout;
        loop {
            let request = match tokio::time::timeout_at(deadline, server.next()).await {
                Ok(r) => r?,
                Err(_) => {
                    self.cancel();
                    return Err(Error::new(
                        ErrorKind::TimedOut,
                        format!(
                            "no sign-in completed within {} s",
                            self.config.login_timeout.as_secs()
                        ),
                    )
                    .with_remedy(crate::Remedy::SignIn));
                }
            };
            let result = match &request.form {
                Some(body) => self.resume_form_post(&request.url, body).await,
                None => self.resume(&request.url).await,
            };
            match result {
                Ok(identity) => {
                    let who = identity
                        .name
                        .clone()
                        .or(identity.email.clone())
                        .unwrap_or(identity.subject.clone());
                    request
                        .finish(true, "Signed in", &format!("Signed in as {who}. You can close this tab and return to {return_to}."))
                        .await;
                    return Ok(identity);
                }
                Err(e) if e.kind() == ErrorKind::ForeignCallback && self.is_signing_in() => {
                    tracing::warn!("ignored a redirect that does not belong to this sign-in: {e}");
                    request.finish(false, "Not accepted", &e.to_string()).await;
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

    /// One interactive sign-in per profile at a time, across processes (see
    /// [`login_loopback`](Self::login_loopback)): our turn, or the identity another process just
    /// signed in while this one waited.
    async fn sign_in_lock(&self, notify: &mut impl FnMut(LoginNotice<'_>)) -> Result<SignInTurn> {
        let started = self.now();
        let path = self.lock_file("login")?;
        if let Some(held) = lock::try_acquire(&path)? {
            return Ok(SignInTurn::Ours(held));
        }
        notify(LoginNotice::Waiting);
        let held = lock::acquire_or(
            &path,
            self.config.login_timeout + Duration::from_secs(5),
            "another sign-in to this profile did not finish in time; try again",
        )
        .await?;
        if let Some(session) = self.load().await?
            && session.signed_in_at >= started
        {
            return Ok(SignInTurn::Done(Box::new(self.identity_of(&session))));
        }
        Ok(SignInTurn::Ours(held)) // the other sign-in failed or was cancelled: our turn
    }

    /// Validates a token response and builds the session it describes. `dpop` is the key the
    /// request's proof was signed with, if it had one.
    async fn session_from_response(
        &self,
        provider: &Arc<Provider>,
        response: &CoreTokenResponse,
        nonce: NonceCheck<'_>,
        previous: Option<&Session>,
        dpop: Option<&DpopKey>,
    ) -> Result<Session> {
        let bound = check_token_type(response.token_type().as_ref(), dpop.is_some())?;
        // RFC 9449 §5: a Bearer answer to a request with a proof is a plain Bearer token; the
        // key is then of no use and is not kept.
        let dpop_key = dpop.filter(|_| bound).cloned();
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
        let expires_at = access_token_expiry(now, response.expires_in(), jwt_exp(access.secret()));
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
            // Bound at sign-in and kept through refreshes; a session stored before they were
            // recorded is refreshed with fresh metadata (provider_for) and bound to it here.
            endpoints: previous
                .and_then(|p| p.endpoints.clone())
                .or_else(|| Some(provider.endpoints())),
            // How it was signed in stays through refreshes; a new sign-in sets its own.
            flow: previous
                .map(|p| p.flow.clone())
                .unwrap_or_else(|| "code".into()),
            token_type: Some(if bound { "DPoP" } else { "Bearer" }.into()),
            dpop_jkt: dpop_key.as_ref().map(|k| k.thumbprint().to_owned()),
            dpop_key,
            par: previous.is_some_and(|p| p.par),
            picture: previous.and_then(|p| p.picture.clone()),
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
    /// the ID token's. At sign-in any failure fails the sign-in.
    /// A DPoP-bound token is presented as `DPoP` with a proof (RFC 9449 §7).
    async fn with_userinfo(&self, client: &Client, mut session: Session) -> Result<Session> {
        if let Some(profile) = self.fetch_userinfo(client, &session).await? {
            profile.apply(&mut session.claims);
        }
        Ok(session)
    }

    /// The userinfo response for the session's access token; `None` when the provider has no
    /// userinfo endpoint. A response for another `sub` is an error (§5.3.2: the claims "MUST
    /// NOT be used"), and so is one that fails validation.
    async fn fetch_userinfo(&self, client: &Client, session: &Session) -> Result<Option<Profile>> {
        let Ok(request) = client.user_info(
            openidconnect::AccessToken::new(session.access_token.clone()),
            Some(SubjectIdentifier::new(session.claims.sub.clone())),
        ) else {
            return Ok(None); // no userinfo endpoint
        };
        let token = session.access_token.clone();
        let sender = self
            .proof_client(session.dpop_key.as_ref())?
            .presenting(&token);
        let info: UserInfo = request
            .request_async(&sender)
            .await
            .map_err(userinfo_error)?;
        Ok(Some(Profile::from_userinfo(&info)))
    }

    /// Fetches userinfo again for a session already signed in (after a refresh, at `status`):
    /// a changed name, picture or group membership shows without a new sign-in. Never fails:
    /// when the provider cannot be asked, or its answer is unusable (another `sub`, invalid), the
    /// claims stay as they were and the session is untouched. Returns whether claims changed.
    async fn renew_profile(&self, session: &mut Session) -> bool {
        let fetched = tokio::time::timeout(PROFILE_TIMEOUT, async {
            let provider = self.provider_for_userinfo(session).await?;
            let profile = self
                .fetch_userinfo(&self.client(&provider)?, session)
                .await?;
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
    /// [`provider_for`](Self::provider_for): the userinfo endpoint recorded with the session
    /// decides, and a cached one that differs is fetched again from the issuer. A session
    /// stored before the endpoint was recorded takes the issuer's fresh answer.
    async fn provider_for_userinfo(&self, session: &Session) -> Result<Arc<Provider>> {
        let current = self.provider().await?;
        let bound = session.endpoints.as_ref().and_then(|e| e.userinfo.clone());
        let cached = current.endpoints().userinfo;
        if cached.is_none() || cached == bound {
            return Ok(current);
        }
        let fresh = self.discovery.get_fresh(self.http()?, self.now()).await?;
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

    // ----- the stored session ---------------------------------------------------------------

    async fn load(&self) -> Result<Option<Session>> {
        match self.read_session().await? {
            Stored::Missing => Ok(None),
            Stored::Present(session) => Ok(Some(session)),
            Stored::Damaged(e) => Err(e),
        }
    }

    /// The stored session, telling a damaged entry (unknown format, missing chunk, unparsable
    /// session) apart from a keychain that cannot be reached, which is the only error.
    async fn read_session(&self) -> Result<Stored<Session>> {
        Ok(match self.vault.read(&self.session_name).await? {
            Stored::Missing => Stored::Missing,
            Stored::Damaged(e) => Stored::Damaged(e),
            Stored::Present(bytes) => match Session::from_bytes(&bytes) {
                Some(session) => Stored::Present(session),
                None => Stored::Damaged(
                    Error::new(ErrorKind::Keychain, "the stored session is unreadable")
                        .with_remedy(crate::Remedy::SignOutAndIn),
                ),
            },
        })
    }

    fn not_signed_in(&self) -> Error {
        Error::new(
            ErrorKind::NotSignedIn,
            format!("not signed in (profile `{}`)", self.config.profile),
        )
        .with_remedy(crate::Remedy::SignIn)
    }

    /// The stored identity, without any network call. `None` when signed out.
    pub async fn current(&self) -> Result<Option<Identity>> {
        Ok(self.load().await?.map(|s| self.identity_of(&s)))
    }

    /// The identity, refreshing the session first when its access token has expired, with the
    /// profile fetched again from userinfo (OIDC Core §5.3) so a changed name or picture shows.
    /// Userinfo failures never fail this: the stored claims are used.
    pub async fn status(&self) -> Result<Identity> {
        let (session, refreshed) = self.valid_session_noting_refresh().await?;
        if refreshed {
            // The refresh fetched userinfo already.
            return Ok(self.identity_of(&session));
        }
        Ok(self.identity_of(&self.update_profile(session).await))
    }

    /// [`renew_profile`](Self::renew_profile) for a session as loaded, saved when it changed,
    /// under the refresh lock and onto the session as stored by then (another process may have
    /// refreshed it meanwhile: its tokens are kept).
    async fn update_profile(&self, session: Session) -> Session {
        let mut renewed = session.clone();
        if !self.renew_profile(&mut renewed).await {
            return session;
        }
        let saved = async {
            let _exclusive = self.exclusive().await?;
            let Some(mut stored) = self.load().await? else {
                return Ok(renewed.clone()); // signed out meanwhile: show, don't store
            };
            if stored.claims.sub != renewed.claims.sub
                || stored.signed_in_at != renewed.signed_in_at
            {
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
            self.save_session(&stored).await?;
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

    /// Saves the session. A keychain that refuses the entry with its cached picture (the kernel
    /// keyring's small quota) gets it without the picture: the picture is only a cache.
    async fn save_session(&self, session: &Session) -> Result<()> {
        match self
            .vault
            .save(&self.session_name, session.to_bytes())
            .await
        {
            Err(e) if session.picture.is_some() => {
                tracing::info!("saving the session without its cached picture: {e}");
                let mut without = session.clone();
                without.picture = None;
                self.vault
                    .save(&self.session_name, without.to_bytes())
                    .await
            }
            other => other,
        }
    }

    fn identity_of(&self, session: &Session) -> Identity {
        let mut identity = session.identity();
        identity.store = self.vault.kind().map(|k| k.as_str());
        identity
    }

    /// Which keychain holds this account's session, once it has been opened (`secret-service`,
    /// `kernel-keyring`, ...).
    pub fn store_kind(&self) -> Option<crate::store::StoreKind> {
        self.vault.kind()
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
        let Some(claim) = identity.picture.as_deref() else {
            return Ok(None);
        };
        if let Some(cached) = self.cached_picture_of(claim).await {
            return Ok(Some(cached));
        }
        self.fetch_picture(identity).await
    }

    /// [`picture`](Self::picture) from the network now, whatever is kept (and keeps the new
    /// one): for a UI that offers to reload it, and for tests of the fetch itself.
    pub async fn fetch_picture(&self, identity: &Identity) -> Result<Option<Picture>> {
        let Some(claim) = identity.picture.as_deref() else {
            return Ok(None);
        };
        let picture = self.download_picture(claim).await?;
        self.cache_picture(claim, &picture).await;
        Ok(Some(picture))
    }

    /// The picture stored with the session, without any network call: `None` when there is
    /// none, or when it is not the one the claims name now.
    pub async fn cached_picture(&self) -> Result<Option<Picture>> {
        let Some(session) = self.load().await? else {
            return Ok(None);
        };
        Ok(session.picture.as_ref().and_then(|p| {
            (Some(&p.url) == session.claims.picture.as_ref())
                .then(|| p.picture())
                .flatten()
        }))
    }

    async fn cached_picture_of(&self, claim: &str) -> Option<Picture> {
        let session = self.load().await.ok()??;
        let cached = session.picture.as_ref().filter(|p| p.url == claim)?;
        cached.picture()
    }

    /// Keeps a fetched picture with the session, when the session still names it. Best effort.
    async fn cache_picture(&self, claim: &str, picture: &Picture) {
        let Some(cached) = CachedPicture::new(claim, picture) else {
            tracing::debug!("the picture is too large to keep with the session");
            return;
        };
        let result = async {
            let _exclusive = self.exclusive().await?;
            let Some(mut session) = self.load().await? else {
                return Ok(());
            };
            if session.claims.picture.as_deref() != Some(claim)
                || session.picture.as_ref() == Some(&cached)
            {
                return Ok(());
            }
            session.picture = Some(cached);
            self.vault
                .save(&self.session_name, session.to_bytes())
                .await
        }
        .await;
        if let Err(e) = result {
            tracing::info!("the picture was not kept with the session: {e}");
        }
    }

    async fn download_picture(&self, claim: &str) -> Result<Picture> {
        use openidconnect::http::{Method, Request, StatusCode, header};
        let allow_loopback = cfg!(debug_assertions);
        let url = crate::picture::picture_url(claim, allow_loopback).map_err(|why| {
            Error::new(
                ErrorKind::ProviderInvalid,
                format!("picture: {}", sanitize(&why)),
            )
        })?;
        let addrs = crate::picture::resolve(&url, allow_loopback).await?;
        let host = url.host_str().unwrap_or_default();
        let http = HttpClient::pinned(self.ports.identity.user_agent, host, &addrs)
            .map_err(|e| Error::internal(format!("picture: {e}")))?;
        let request = Request::builder()
            .method(Method::GET)
            .uri(url.as_str())
            .header(
                header::ACCEPT,
                "image/png, image/jpeg, image/gif, image/webp",
            )
            .body(Vec::new())
            .map_err(|e| Error::new(ErrorKind::ProviderInvalid, format!("picture: {e}")))?;
        let response = http
            .call(request)
            .await
            .map_err(|e| transient_http("fetching the picture", &e))?;
        if response.status() != StatusCode::OK {
            return Err(Error::new(
                ErrorKind::ProviderError,
                format!("picture: HTTP {}", response.status().as_u16()),
            ));
        }
        Picture::from_bytes(response.into_body()).ok_or_else(|| {
            Error::new(
                ErrorKind::ProviderInvalid,
                format!(
                    "picture: not a PNG, JPEG, GIF or WebP image of at most {MAX_PICTURE} bytes"
                ),
            )
        })
    }

    /// Refreshes now, even if the access token is still valid.
    pub async fn refresh(&self) -> Result<Identity> {
        let session = self.load().await?.ok_or_else(|| self.not_signed_in())?;
        let refreshed = self.refresh_session(Some(&session.access_token)).await?;
        Ok(self.identity_of(&refreshed))
    }

    async fn valid_session(&self) -> Result<Session> {
        Ok(self.valid_session_noting_refresh().await?.0)
    }

    /// The valid session, and whether getting it took a refresh (here or in another process).
    async fn valid_session_noting_refresh(&self) -> Result<(Session, bool)> {
        let session = self.load().await?.ok_or_else(|| self.not_signed_in())?;
        if session.access_token_valid(self.now()) {
            return Ok((session, false));
        }
        Ok((self.refresh_session(None).await?, true))
    }

    /// Refreshes under the in-process gate and the cross-process file lock. After taking both it
    /// re-reads the session: if another task or process already refreshed, that result is used,
    /// so a rotated refresh token is never sent twice (RFC 9700 §4.14.2).
    async fn refresh_session(&self, force_replacing: Option<&str>) -> Result<Session> {
        // Held to the end, the invalid_grant delete included (which must not call `logout`: it
        // would wait for these very locks).
        let _exclusive = self.exclusive().await?;
        let session = self.load().await?.ok_or_else(|| self.not_signed_in())?;
        let already_fresh = match force_replacing {
            Some(old) => session.access_token != old,
            None => session.access_token_valid(self.now()),
        };
        if already_fresh {
            return Ok(session);
        }
        let Some(refresh_token) = session.refresh_token.clone() else {
            if session.flow == FlowChoice::Implicit.as_str() {
                // Kept until its ID token's exp, then forgotten: nothing can renew it.
                self.uncache_token()?;
                self.vault.delete(&self.session_name).await?;
                return Err(Error::new(
                    ErrorKind::NotSignedIn,
                    "the implicit sign-in ended when its ID token expired, so it was forgotten",
                )
                .with_remedy(crate::Remedy::SignIn));
            }
            return Err(Error::new(
                ErrorKind::NotSignedIn,
                "the session has expired and the provider issued no refresh token",
            )
            .with_remedy(crate::Remedy::SignIn));
        };
        let provider = self
            .provider_for(&session, Sends::RefreshToken)
            .await
            .map_err(|e| e.context("refreshing the session"))?;
        let client = self.client(&provider)?;
        let result = client
            .exchange_refresh_token(&RefreshToken::new(refresh_token))
            .map_err(|e| Error::new(ErrorKind::ProviderInvalid, e.to_string()))?
            // RFC 9449 §5: a public client's refresh token is bound to the key; a proof each time.
            .request_async(&self.proof_client(session.dpop_key.as_ref())?)
            .await;
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                let error = token_error(&e);
                if error.oauth_error() == Some("invalid_grant") {
                    // The only failure that ends a session: the grant is gone at the provider.
                    self.uncache_token()?;
                    self.vault.delete(&self.session_name).await?;
                    return Err(Error::oauth(
                        ErrorKind::SessionExpired,
                        "the provider ended the session (invalid_grant), so it was signed out",
                        "invalid_grant",
                        error.description(),
                    )
                    .with_remedy(crate::Remedy::SignIn));
                }
                // Any other OAuth error answer (RFC 6749 §5.2) comes again on every retry. The
                // session is kept, since only invalid_grant says the grant is gone, but signing
                // in again is the way out (LemonLDAP::NG answers invalid_request for a refresh
                // token it no longer knows).
                if error.kind() == ErrorKind::ProviderError {
                    return Err(error
                        .context("refreshing the session (still signed in)")
                        .with_remedy(crate::Remedy::SignIn));
                }
                return Err(error.context("refreshing the session (still signed in)"));
            }
        };
        let mut refreshed = self
            .session_from_response(
                &provider,
                &response,
                NonceCheck::Refresh,
                Some(&session),
                session.dpop_key.as_ref(),
            )
            .await?;
        // OIDC Core §5.3 with the new access token; a failure keeps the claims as they were.
        self.renew_profile(&mut refreshed).await;
        if refreshed.issued_expired() {
            // Used as is: the refresh floor keeps it for MIN_REFRESH_INTERVAL instead of
            // refreshing on every call.
            tracing::warn!(
                "the provider issued an access token that has already expired (expires_in 0 or a past exp); it will be refreshed again in {} s at the earliest; check the provider's token lifetime and this computer's clock",
                crate::session::MIN_REFRESH_INTERVAL.num_seconds()
            );
        }
        // Saved before anyone can use it: with rotation the old refresh token is now dead.
        self.save_session(&refreshed)
            .await
            .map_err(|e| e.context("saving the refreshed session"))?;
        self.cache_token(&refreshed);
        tracing::debug!("session refreshed");
        Ok(refreshed)
    }

    /// The provider metadata to send this session's secrets with. The discovery cache on disk can
    /// be rewritten by any process of this user, including one that cannot read the keychain, so
    /// the endpoints recorded with the session decide: when the cached metadata names others,
    /// it is fetched again from the issuer (OIDC Discovery §4, over TLS) and used only if that
    /// agrees with the session. Otherwise nothing is sent.
    async fn provider_for(&self, session: &Session, sends: Sends) -> Result<Arc<Provider>> {
        let current = self.provider().await?;
        if let Some(bound) = &session.endpoints
            && sends.differs(bound, &current.endpoints()).is_none()
        {
            return Ok(current);
        }
        tracing::info!(
            "the cached provider metadata does not match the session's endpoints; fetching it again"
        );
        let fresh = self.discovery.get_fresh(self.http()?, self.now()).await?;
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

    /// The in-process gate, then the cross-process refresh lock: what every change to the stored
    /// session (refresh, sign-in, logout) holds, always taken in this order so that no two holders
    /// wait on each other.
    async fn exclusive(&self) -> Result<(tokio::sync::MutexGuard<'_, ()>, lock::RefreshLock)> {
        let gate = self.refresh_gate.lock().await;
        let file = lock::acquire(&self.lock_path()?, lock::LOCK_WAIT).await?;
        Ok((gate, file))
    }

    /// The refresh lock lives in a per-user directory: the cache directory, else the runtime
    /// directory. Never a shared path like /tmp, where another user could create it first.
    fn lock_path(&self) -> Result<PathBuf> {
        self.lock_file("refresh")
    }

    /// `<dir>/<session hash>.lock` for the refresh lock (the name it always had), and
    /// `<session hash>.<what>.lock` for others.
    fn lock_file(&self, what: &str) -> Result<PathBuf> {
        let name = match what {
            "refresh" => short_hash(&self.session_name, 12),
            other => format!("{}.{other}", short_hash(&self.session_name, 12)),
        };
        let dir = self
            .ports
            .cache_dir
            .as_ref()
            .map(|d| d.join("locks"))
            .or_else(|| self.ports.identity.runtime_dir().map(|d| d.join("locks")))
            .ok_or_else(|| {
                Error::internal(
                    "there is no per-user cache or runtime directory for the refresh lock; set HOME (or XDG_CACHE_HOME)",
                )
            })?;
        Ok(dir.join(format!("{name}.lock")))
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
        // First, and even when no session is left: a cached token must not outlive a logout.
        self.uncache_token()?;
        let _gate = self.refresh_gate.lock().await;
        let _file = match self.lock_path() {
            Ok(path) => match lock::acquire(&path, lock::LOCK_WAIT).await {
                Ok(held) => Some(held),
                // A lock file that cannot be opened or locked cannot be for a refresh either, so
                // none is in flight: signing out must still work.
                Err(e) if e.kind() == ErrorKind::Internal => {
                    tracing::warn!("signing out without the refresh lock: {e}");
                    None
                }
                Err(e) => return Err(e.context("signing out")),
            },
            Err(e) => {
                tracing::warn!("signing out without the refresh lock: {e}");
                None
            }
        };
        // Again, under the lock: a refresh that finished while we waited cached its token.
        self.uncache_token()?;
        let session = match self.read_session().await? {
            Stored::Missing => return Ok(Logout::default()),
            Stored::Present(session) => session,
            Stored::Damaged(why) => {
                tracing::debug!(%why, "removing an unreadable stored session");
                self.vault.delete(&self.session_name).await?;
                return Ok(Logout {
                    was_signed_in: true,
                    damaged: true,
                    revocation_problem: Some(
                        "the stored session was unreadable, so its tokens could not be revoked"
                            .into(),
                    ),
                    ..Default::default()
                });
            }
        };
        let mut out = Logout {
            was_signed_in: true,
            ..Default::default()
        };
        match self.provider_for(&session, Sends::Logout).await {
            // The implicit flow issues no token that could be revoked (RFC 7009 §2).
            Ok(provider) if session.flow == FlowChoice::Implicit.as_str() => {
                out.end_session_url = self.end_session_url(&provider, &session);
            }
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
        use openidconnect::http::{Method, Request, StatusCode, header};
        let Some(endpoint) = &provider.extra().revocation_endpoint else {
            return Ok(false);
        };
        // Revoking the refresh token revokes the grant (§2.1); with none, revoke the access token.
        let (token, hint) = match &session.refresh_token {
            Some(rt) => (rt.as_str(), "refresh_token"),
            None => (session.access_token.as_str(), "access_token"),
        };
        let auth = ClientAuth::choose(&self.config, provider)?;
        // The serializer is not `Send`: it lives in this block only, so `logout()` stays `Send`
        // (the app awaits it on a multi-threaded runtime).
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", token)
                .append_pair("token_type_hint", hint);
            // The client authenticates as at the token endpoint (RFC 7009 §2.1).
            for (k, v) in auth.body_fields(&self.config) {
                form.append_pair(k, &v);
            }
            form.finish().into_bytes()
        };
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(endpoint.as_str())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json");
        if let Some(value) = auth.header(&self.config) {
            request = request.header(header::AUTHORIZATION, value);
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
            format!("revoking: the provider answered {}", sanitize(&code)),
        ))
    }
}

/// Refuses, before any browser opens, a flow whose `response_type` the provider does not list
/// (OIDC Discovery §3, `response_types_supported`), or a response mode it lists without
/// (`response_modes_supported`; many providers omit the list, which is not taken as a no).
fn browser_flow_offered(provider: &Provider, flow: FlowChoice, mode: ResponseMode) -> Result<()> {
    let wanted: &[&str] = match flow {
        FlowChoice::Hybrid => &["code", "id_token"],
        FlowChoice::Implicit => &["id_token"],
        _ => return Ok(()),
    };
    let offered = provider
        .metadata
        .response_types_supported()
        .iter()
        .any(|types| {
            let mut names: Vec<String> = types.iter().map(oauth_code).collect();
            names.sort();
            names == wanted
        });
    if !offered {
        return Err(Error::new(
            ErrorKind::ProviderInvalid,
            format!(
                "the provider does not offer response_type `{}` (response_types_supported), which `flow = {}` needs; set flow to code",
                wanted.join(" "),
                flow.as_str()
            ),
        ));
    }
    if let Some(modes) = provider.metadata.response_modes_supported()
        && !modes.iter().any(|m| oauth_code(m) == mode.as_str())
    {
        return Err(Error::new(
            ErrorKind::ProviderInvalid,
            format!(
                "the provider does not offer response_mode `{}` (response_modes_supported), which `flow = {}` needs here; set flow to code",
                mode.as_str(),
                flow.as_str()
            ),
        ));
    }
    Ok(())
}

/// What [`Latchkey::sign_in_lock`] found.
enum SignInTurn {
    /// This process holds the lock and signs in.
    Ours(lock::RefreshLock),
    /// Another process signed in while this one waited.
    Done(Box<Identity>),
}

/// Which of a session's endpoints an operation sends secrets to.
#[derive(Debug, Clone, Copy)]
enum Sends {
    /// The refresh token, to the token endpoint.
    RefreshToken,
    /// The refresh token to the revocation endpoint, the ID token to the end-session endpoint.
    Logout,
}

impl Sends {
    /// The first endpoint that `now` names differently from `bound`: its name, then both values.
    fn differs<'a>(
        self,
        bound: &'a crate::session::Endpoints,
        now: &'a crate::session::Endpoints,
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

/// [`Latchkey::redeem`] over `http`: oauth2's request and its parsing of the answer, with the
/// errors mapped by [`token_error`]. The fuzzer (`tests/fuzz`) gives it a fake HTTP client.
async fn redeem_with<'c, C>(
    client: &'c Client,
    code: AuthorizationCode,
    verifier: openidconnect::PkceCodeVerifier,
    redirect_uri: &Url,
    http: &'c C,
) -> Result<CoreTokenResponse>
where
    C: openidconnect::AsyncHttpClient<'c, Error = HttpError>,
{
    client
        .exchange_code(code)
        .map_err(|e| Error::new(ErrorKind::ProviderInvalid, e.to_string()))?
        .set_pkce_verifier(verifier)
        .set_redirect_uri(Cow::Owned(RedirectUrl::from_url(redirect_uri.clone())))
        .request_async(http)
        .await
        .map_err(|e| token_error(&e).context("redeeming the sign-in code"))
}

fn shown(endpoint: Option<&str>) -> String {
    match endpoint {
        Some(e) => format!("`{}`", sanitize(e)),
        None => "none".into(),
    }
}

/// A failed userinfo request or response (OIDC Core §5.3), as [`Latchkey::fetch_userinfo`]
/// reports it.
fn userinfo_error(e: openidconnect::UserInfoError<HttpError>) -> Error {
    use openidconnect::UserInfoError as U;
    match e {
        U::Request(h) => transient_http("fetching your profile", &h),
        U::ClaimsVerification(openidconnect::ClaimsVerificationError::InvalidSubject(_)) => {
            Error::new(
                ErrorKind::ProviderInvalid,
                "the provider's profile answer is for a different user than the ID token (OIDC Core 5.3.2); it was not used",
            )
        }
        U::ClaimsVerification(c) => Error::new(
            ErrorKind::ProviderInvalid,
            format!(
                "the provider's profile answer failed validation ({}); sign-in rejected",
                sanitize(&c.to_string())
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
    // Only userinfo carries these; the ID token's own grants are read from it.
    fresh.userinfo_grants = previous.userinfo_grants.clone();
    fresh
}

/// Every claim of a userinfo response beyond the standard ones, kept for [`Grants::read`].
#[derive(Default, serde::Deserialize, serde::Serialize)]
struct OtherClaims {
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Debug for OtherClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.rest.keys()).finish()
    }
}

impl openidconnect::AdditionalClaims for OtherClaims {}

type UserInfo = openidconnect::UserInfoClaims<OtherClaims, CoreGenderClaim>;

/// What a userinfo response says about the user: the profile Latchkey shows, and the grants.
#[derive(Debug)]
struct Profile {
    name: Option<String>,
    email: Option<String>,
    email_verified: Option<bool>,
    picture: Option<String>,
    preferred_username: Option<String>,
    grants: Grants,
}

impl Profile {
    fn from_userinfo(info: &UserInfo) -> Self {
        Self {
            name: info.name().and_then(|n| n.get(None)).map(|n| n.to_string()),
            email: info.email().map(|e| e.to_string()),
            email_verified: info.email_verified(),
            picture: info
                .picture()
                .and_then(|p| p.get(None))
                .map(|p| p.to_string()),
            preferred_username: info.preferred_username().map(|u| u.to_string()),
            grants: Grants::read(
                &serde_json::Value::Object(info.additional_claims().rest.clone()),
                GrantSource::Userinfo,
            ),
        }
    }

    /// A claim the response carries replaces the stored one; one it omits is kept (the ID token
    /// may have it). The grants are replaced whole: a group left is gone.
    fn apply(&self, c: &mut Claims) {
        if let Some(n) = &self.name {
            c.name = Some(n.clone());
        }
        if let Some(e) = &self.email {
            c.email = Some(e.clone());
        }
        if let Some(v) = self.email_verified {
            c.email_verified = Some(v);
        }
        if let Some(p) = &self.picture {
            c.picture = Some(p.clone());
        }
        if let Some(u) = &self.preferred_username {
            c.preferred_username = Some(u.clone());
        }
        c.userinfo_grants = self.grants.clone();
    }
}

/// When an access token expires: `now + expires_in` (RFC 6749 §5.1), else the JWT's `exp`, else
/// [`DEFAULT_ACCESS_TOKEN_LIFETIME`]. The lifetime is clamped to `0..=MAX_ACCESS_TOKEN_LIFETIME`
/// with checked arithmetic: `expires_in` is an arbitrary provider-chosen number, and chrono's
/// `Add` panics on overflow.
fn access_token_expiry(
    now: DateTime<Utc>,
    expires_in: Option<Duration>,
    jwt_exp: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    let lifetime = match (expires_in, jwt_exp) {
        // Too large for chrono means far beyond the clamp anyway.
        (Some(d), _) => chrono::Duration::from_std(d).unwrap_or(MAX_ACCESS_TOKEN_LIFETIME),
        (None, Some(exp)) => exp.signed_duration_since(now),
        (None, None) => DEFAULT_ACCESS_TOKEN_LIFETIME,
    };
    let lifetime = lifetime.clamp(chrono::Duration::zero(), MAX_ACCESS_TOKEN_LIFETIME);
    now.checked_add_signed(lifetime).unwrap_or(now)
}

/// RFC 6749 §7.1: Bearer (RFC 6750), or DPoP (RFC 9449 §5) when the request carried a proof;
/// types are case-insensitive. Whether the token is DPoP-bound.
fn check_token_type(token_type: &str, proof_sent: bool) -> Result<bool> {
    if token_type.eq_ignore_ascii_case("bearer") {
        return Ok(false);
    }
    if token_type.eq_ignore_ascii_case("dpop") {
        if proof_sent {
            return Ok(true);
        }
        return Err(Error::new(
            ErrorKind::ProviderInvalid,
            "the provider issued a DPoP token to a request without a DPoP proof (RFC 9449 §5), so it cannot be used; sign in again, or set dpop to always",
        ));
    }
    Err(Error::new(
        ErrorKind::ProviderInvalid,
        format!(
            "the provider issued a `{}` token; only Bearer and DPoP are supported",
            sanitize(token_type)
        ),
    ))
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
                format!("the provider answered `{}`", sanitize(&code)),
                &code,
                r.error_description().map(String::as_str),
            )
        }
        RequestTokenError::Request(h @ HttpError::DpopNonce { .. }) => {
            transient_http("the token request was refused", h)
        }
        RequestTokenError::Request(h) => transient_http("the provider could not be reached", h),
        RequestTokenError::Parse(p, _) => Error::new(
            ErrorKind::ProviderInvalid,
            format!(
                "the provider's token response is malformed (at `{}`)",
                sanitize(&p.path().to_string())
            ),
        ),
        RequestTokenError::Other(s) => Error::new(
            ErrorKind::ProviderInvalid,
            format!("the provider's token response is invalid: {}", sanitize(s)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, StoreError};

    const ISSUER: &str = "https://id.example";

    #[derive(Debug)]
    struct NoBrowser;
    impl BrowserLauncher for NoBrowser {
        fn open(&self, _: &Url) -> std::result::Result<(), String> {
            Err("no browser in tests".into())
        }
    }

    /// A Latchkey over a MemoryStore whose small entries force chunking, with the provider's
    /// metadata seeded so nothing touches the network.
    fn offline(cache: &std::path::Path) -> (Arc<MemoryStore>, Latchkey) {
        offline_at(cache, ISSUER)
    }

    fn offline_at(cache: &std::path::Path, issuer: &str) -> (Arc<MemoryStore>, Latchkey) {
        let store = Arc::new(MemoryStore::new(200));
        let latchkey = offline_with(cache, issuer, store.clone());
        (store, latchkey)
    }

    fn offline_with(
        cache: &std::path::Path,
        issuer: &str,
        store: Arc<dyn SecretStore>,
    ) -> Latchkey {
        let config = Config {
            issuer: issuer.into(),
            client_id: "app".into(),
            scopes: vec!["openid".into(), "email".into()],
            redirect_uri: Url::parse("http://127.0.0.1/callback").expect("url"),
            client_secret: None,
            profile: crate::config::DEFAULT_PROFILE.into(),
            login_timeout: Duration::from_secs(300),
            extra_auth_params: Default::default(),
            post_logout_redirect_uri: None,
            scope_descriptions: Default::default(),
            store: crate::config::StoreChoice::Auto,
            git_hosts: Vec::new(),
            git_username: "oauth2".into(),
            flow: crate::config::FlowChoice::Code,
            par: crate::config::UseChoice::Auto,
            dpop: crate::config::UseChoice::Auto,
            app_redirect: Default::default(),
        };
        let ports = Ports {
            store,
            browser: Arc::new(NoBrowser),
            clock: Arc::new(SystemClock),
            cache_dir: Some(cache.to_path_buf()),
            keychain_timeout: Duration::from_secs(5),
            token_cache: None,
            identity: AppIdentity::TEST,
        };
        let latchkey = Latchkey::new(config, ports);
        seed(&latchkey, metadata(issuer, "token", None));
        latchkey
    }

    /// Finding 9 of issue 8: the provider's return from RP-initiated logout is recognised, for
    /// the logout this process started only (its `state`), once.
    #[test]
    fn the_logout_return_is_matched_by_state_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut lk = offline_with(dir.path(), ISSUER, Arc::new(MemoryStore::new(200)));
        let ret = "com.example.app:/logout";
        lk.config.post_logout_redirect_uri = Some(Url::parse(ret).expect("url"));
        let mut m = metadata(ISSUER, "token", None);
        m["end_session_endpoint"] = serde_json::json!(format!("{ISSUER}/session/end"));
        let provider = Provider::for_tests(m, openidconnect::JsonWebKeySet::new(Vec::new()));

        let back = |state: &str| lk.logout_return(&format!("{ret}?state={state}"));
        assert!(
            back("x").expect("addressed to the logout URI").is_err(),
            "none started"
        );
        let url = lk
            .end_session_url(&provider, &session(Utc::now()))
            .expect("end-session URL");
        let state = url
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .expect("state sent");
        assert!(back("wrong").expect("addressed").is_err(), "forged state");
        assert!(
            lk.logout_return(ret).expect("addressed").is_err(),
            "no state"
        );
        assert!(back(&state).expect("addressed").is_ok(), "the real return");
        assert!(back(&state).expect("addressed").is_err(), "replayed");
        assert!(
            lk.logout_return("com.example.app:/callback?code=a&state=b")
                .is_none(),
            "a sign-in redirect is not a logout return"
        );
    }

    /// Provider metadata with the token endpoint at `{issuer}/{token}`, and the revocation
    /// endpoint at `{issuer}/{revocation}` when given.
    fn metadata(issuer: &str, token: &str, revocation: Option<&str>) -> serde_json::Value {
        let mut m = serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/auth"),
            "token_endpoint": format!("{issuer}/{token}"),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        if let Some(r) = revocation {
            m["revocation_endpoint"] = serde_json::json!(format!("{issuer}/{r}"));
        }
        m
    }

    /// Makes `metadata` the provider's current (as if cached) metadata. Outside a runtime.
    fn seed(latchkey: &Latchkey, metadata: serde_json::Value) {
        latchkey.discovery.seed_for_tests(Provider::for_tests(
            metadata,
            openidconnect::JsonWebKeySet::new(Vec::new()),
        ));
    }

    fn session(now: DateTime<Utc>) -> Session {
        session_at(now, ISSUER)
    }

    /// A session signed in at `issuer`, bound to the endpoints [`offline_at`] seeds.
    fn session_at(now: DateTime<Utc>, issuer: &str) -> Session {
        Session {
            v: 1,
            issuer: issuer.into(),
            client_id: "app".into(),
            profile: crate::config::DEFAULT_PROFILE.into(),
            access_token: "AT".repeat(200),
            expires_at: now + chrono::Duration::hours(1),
            issued_at: Some(now),
            refresh_token: Some("RT".repeat(100)),
            id_token: None,
            requested_scopes: vec!["openid".into()],
            granted_scopes: vec!["openid".into()],
            claims: Claims {
                sub: "alice".into(),
                ..Default::default()
            },
            signed_in_at: now,
            endpoints: Some(crate::session::Endpoints {
                token: format!("{issuer}/token"),
                ..Default::default()
            }),
            flow: "code".into(),
            token_type: Some("Bearer".into()),
            dpop_jkt: None,
            dpop_key: None,
            par: false,
            picture: None,
        }
    }

    /// Saves a chunked session, then removes one of its chunks.
    async fn damage(store: &MemoryStore, latchkey: &Latchkey) {
        latchkey
            .vault
            .save(&latchkey.session_name, session(Utc::now()).to_bytes())
            .await
            .expect("save");
        let chunks: Vec<String> = store
            .names()
            .into_iter()
            .filter(|n| n.contains('#'))
            .collect();
        assert!(chunks.len() > 1, "chunked: {chunks:?}");
        store.delete(&chunks[0]).expect("delete");
        let e = latchkey.current().await.expect_err("damaged");
        assert!(e.message().contains("missing"), "{e}");
    }

    #[test]
    fn a_damaged_session_does_not_lock_the_user_out() {
        let dir = tempfile::tempdir().expect("tmp");
        let (store, latchkey) = offline(dir.path());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
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
                .vault
                .save(&latchkey.session_name, vec![b'{'; 700])
                .await
                .expect("save");
            let e = latchkey.current().await.expect_err("unparsable");
            assert!(e.message().contains("unreadable"), "{e}");
            latchkey.begin(&redirect).await.expect("begin over garbage");
            assert!(latchkey.logout().await.expect("logout").damaged);
            assert!(store.names().is_empty(), "{:?}", store.names());
        });
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).expect("ts")
    }

    #[test]
    fn huge_expires_in_is_clamped_not_a_panic() {
        for secs in [10_000_000_000_000, u64::MAX / 1000, u64::MAX] {
            let at = access_token_expiry(now(), Some(Duration::from_secs(secs)), None);
            assert_eq!(at, now() + MAX_ACCESS_TOKEN_LIFETIME, "{secs}");
        }
        let at = access_token_expiry(now(), Some(Duration::from_secs(3600)), None);
        assert_eq!(at, now() + chrono::Duration::hours(1));
    }

    #[test]
    fn token_type_error_quotes_the_type_sanitized() {
        assert!(!check_token_type("bearer", false).expect("bearer"));
        assert!(!check_token_type("Bearer", true).expect("bearer with a proof"));
        let e = check_token_type("DPoP\u{1b}[2J\u{9b}1;1H\u{7}\nx", true).expect_err("not bearer");
        assert_eq!(
            e.to_string(),
            "the provider issued a `DPoP x` token; only Bearer and DPoP are supported"
        );
    }

    #[test]
    fn a_dpop_token_is_accepted_only_after_a_proof() {
        assert!(check_token_type("DPoP", true).expect("dpop"));
        assert!(check_token_type("dpop", true).expect("case-insensitive"));
        let e = check_token_type("DPoP", false).expect_err("no proof was sent");
        assert!(e.message().contains("without a DPoP proof"), "{e}");
    }

    #[test]
    fn jwt_exp_is_clamped_too() {
        let far = DateTime::from_timestamp(253_402_300_799, 0).expect("year 9999");
        assert_eq!(
            access_token_expiry(now(), None, Some(far)),
            now() + MAX_ACCESS_TOKEN_LIFETIME
        );
        let past = now() - chrono::Duration::days(1);
        assert_eq!(access_token_expiry(now(), None, Some(past)), now());
        assert_eq!(
            access_token_expiry(now(), None, None),
            now() + DEFAULT_ACCESS_TOKEN_LIFETIME
        );
    }

    /// Reads one request's head and form body; returns the head.
    async fn read_request(stream: &mut tokio::net::TcpStream) -> String {
        use tokio::io::AsyncReadExt as _;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while let Ok(read) = stream.read(&mut chunk).await {
            buf.extend_from_slice(&chunk[..read]);
            let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length {
                    return text[..end].to_owned();
                }
            }
            if read == 0 {
                break;
            }
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    async fn answer(stream: &mut tokio::net::TcpStream, status: &str, body: &[u8]) {
        use tokio::io::AsyncWriteExt as _;
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(body).await;
        let _ = stream.shutdown().await;
    }

    /// A token endpoint that answers every request with a fresh access token that is already
    /// expired (`expires_in: 0`), counting the requests.
    async fn expired_token_endpoint() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("addr"));
        let count = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&count);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                read_request(&mut stream).await;
                let body =
                    format!(r#"{{"access_token":"AT-{n}","token_type":"Bearer","expires_in":0}}"#);
                answer(&mut stream, "200 OK", body.as_bytes()).await;
            }
        });
        (issuer, count)
    }

    /// A small HTTP server on 127.0.0.1: each path in `routes` is answered 200 with its body,
    /// anything else 404; every request's path is recorded in `hits`.
    #[derive(Clone)]
    struct Stub {
        base: String,
        routes: Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>>,
        hits: Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl Stub {
        async fn start() -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let stub = Stub {
                base: format!("http://{}", listener.local_addr().expect("addr")),
                routes: Arc::default(),
                hits: Arc::default(),
            };
            let server = stub.clone();
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let head = read_request(&mut stream).await;
                    let path = head
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_owned();
                    server.hits.lock().expect("hits").push(path.clone());
                    let body = server.routes.lock().expect("routes").get(&path).cloned();
                    match body {
                        Some(b) => answer(&mut stream, "200 OK", &b).await,
                        None => answer(&mut stream, "404 Not Found", b"{}").await,
                    }
                }
            });
            stub
        }

        fn route(&self, path: &str, body: impl Into<Vec<u8>>) {
            self.routes
                .lock()
                .expect("routes")
                .insert(path.into(), body.into());
        }

        fn hits(&self, path: &str) -> usize {
            self.hits
                .lock()
                .expect("hits")
                .iter()
                .filter(|p| *p == path)
                .count()
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn the_picture_is_fetched_from_a_checked_address() {
        const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let rt = runtime();
        let stub = rt.block_on(Stub::start());
        stub.route("/a.png", PNG);
        let dir = tempfile::tempdir().expect("tmp");
        let (_store, latchkey) = offline(dir.path());
        let port = stub.base.rsplit(':').next().expect("port").to_owned();
        let mut s = session(Utc::now());
        rt.block_on(async {
            // An address literal, and a name the pinned client must connect by: this debug
            // build allows loopback (the dev provider); a release build refuses both.
            for url in [
                format!("{}/a.png", stub.base),
                format!("http://localhost:{port}/a.png"),
            ] {
                s.claims.picture = Some(url.clone());
                let picture = latchkey.picture(&s.identity()).await.expect(&url);
                assert_eq!(picture.map(|p| p.media_type()), Some("image/png"), "{url}");
            }
            assert_eq!(stub.hits("/a.png"), 2);
            s.claims.picture = Some("https://10.0.0.1/a.png".into());
            let e = latchkey.picture(&s.identity()).await.expect_err("private");
            assert_eq!(e.kind(), ErrorKind::ProviderInvalid);
        });
    }

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
            latchkey
                .vault
                .save(&latchkey.session_name, expired.to_bytes())
                .await
                .expect("save");
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

    /// A token endpoint that answers every request with HTTP 400 and `body`.
    async fn failing_token_endpoint(body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                read_request(&mut stream).await;
                answer(&mut stream, "400 Bad Request", body.as_bytes()).await;
            }
        });
        issuer
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

    type Pause = (
        tokio::sync::oneshot::Sender<()>,
        std::sync::mpsc::Receiver<()>,
    );

    /// A MemoryStore whose next `set`, once armed, says it was reached and then waits to be
    /// released: a refresh stopped in the middle of saving its rotated tokens.
    #[derive(Debug)]
    struct PausingStore {
        inner: MemoryStore,
        pause: std::sync::Mutex<Option<Pause>>,
    }

    impl SecretStore for PausingStore {
        fn get(&self, name: &str) -> std::result::Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(name)
        }
        fn set(&self, name: &str, secret: &[u8]) -> std::result::Result<(), StoreError> {
            let pause = self.pause.lock().expect("pause").take();
            if let Some((reached, release)) = pause {
                let _ = reached.send(());
                let _ = release.recv_timeout(Duration::from_secs(20));
            }
            self.inner.set(name, secret)
        }
        fn delete(&self, name: &str) -> std::result::Result<bool, StoreError> {
            self.inner.delete(name)
        }
        fn max_secret_len(&self) -> usize {
            self.inner.max_secret_len()
        }
    }

    const ROTATED: &str = r#"{"access_token":"AT-new","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-new"}"#;

    #[test]
    fn a_logout_during_a_refresh_is_not_undone_by_its_save() {
        let rt = runtime();
        let stub = rt.block_on(Stub::start());
        stub.route("/token", ROTATED);
        let dir = tempfile::tempdir().expect("tmp");
        let store = Arc::new(PausingStore {
            inner: MemoryStore::new(200),
            pause: std::sync::Mutex::new(None),
        });
        let latchkey = offline_with(dir.path(), &stub.base, store.clone());
        rt.block_on(async {
            let expired = session_at(Utc::now() - chrono::Duration::hours(2), &stub.base);
            latchkey
                .vault
                .save(&latchkey.session_name, expired.to_bytes())
                .await
                .expect("save");
            let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
            let (release_tx, release_rx) = std::sync::mpsc::channel();
            *store.pause.lock().expect("pause") = Some((reached_tx, release_rx));

            // The refresh has sent the old refresh token and is saving the rotated one when the
            // logout starts; the save goes on a moment later.
            let refresh = latchkey.access_token();
            let logout = async {
                reached_rx.await.expect("the refresh reached its save");
                let release = async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
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

    async fn put(latchkey: &Latchkey, s: &Session) {
        latchkey
            .vault
            .save(&latchkey.session_name, s.to_bytes())
            .await
            .expect("save");
    }

    const DISCOVERY: &str = "/.well-known/openid-configuration";

    /// An expired session bound to `{base}/token-a`, while the cached metadata says
    /// `{base}/token-b` (a same-user process rewrote the discovery cache).
    fn bound_to_a(base: &str) -> Session {
        let mut s = session_at(Utc::now() - chrono::Duration::hours(2), base);
        s.endpoints = Some(crate::session::Endpoints {
            token: format!("{base}/token-a"),
            ..Default::default()
        });
        s
    }

    #[test]
    fn a_rewritten_cached_token_endpoint_gets_no_refresh_token() {
        let rt = runtime();
        let stub = rt.block_on(Stub::start());
        let base = stub.base.clone();
        for path in ["/token-a", "/token-b"] {
            stub.route(path, ROTATED);
        }
        stub.route("/jwks", r#"{"keys":[]}"#);
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
            let saved = latchkey.load().await.expect("load").expect("session");
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
        let stub = rt.block_on(Stub::start());
        let base = stub.base.clone();
        for path in ["/token-a", "/token-b"] {
            stub.route(path, ROTATED);
        }
        stub.route("/jwks", r#"{"keys":[]}"#);
        stub.route(DISCOVERY, metadata(&base, "token-a", None).to_string());
        let dir = tempfile::tempdir().expect("tmp");
        let (_store, latchkey) = offline_at(dir.path(), &base);
        seed(&latchkey, metadata(&base, "token-b", None));
        rt.block_on(async {
            let mut old = bound_to_a(&base);
            old.endpoints = None; // stored by an earlier version
            latchkey
                .vault
                .save(&latchkey.session_name, old.to_bytes())
                .await
                .expect("save");
            latchkey.access_token().await.expect("refreshed");
            assert_eq!((stub.hits("/token-a"), stub.hits("/token-b")), (1, 0));
            let saved = latchkey.load().await.expect("load").expect("session");
            assert_eq!(
                saved.endpoints.map(|e| e.token),
                Some(format!("{base}/token-a")),
                "bound from now on"
            );
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
        s.endpoints = Some(crate::session::Endpoints {
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

    /// [`offline_at`] with a userinfo endpoint at `{base}/me`, and a session bound to it.
    fn with_userinfo_endpoint(latchkey: &Latchkey, base: &str, s: &mut Session) {
        let mut m = metadata(base, "token", None);
        m["userinfo_endpoint"] = serde_json::json!(format!("{base}/me"));
        seed(latchkey, m);
        if let Some(e) = s.endpoints.as_mut() {
            e.userinfo = Some(format!("{base}/me"));
        }
    }

    fn groups(id: &Identity) -> Vec<(String, crate::GrantSource)> {
        id.grants
            .of_kind(crate::GrantKind::Group)
            .map(|g| (g.value.clone(), g.source))
            .collect()
    }

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

    #[test]
    fn the_picture_is_kept_with_the_session() {
        const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let rt = runtime();
        let stub = rt.block_on(Stub::start());
        stub.route("/a.png", PNG);
        stub.route("/b.png", PNG);
        let dir = tempfile::tempdir().expect("tmp");
        let (_store, latchkey) = offline(dir.path());
        let mut s = session(Utc::now());
        s.claims.picture = Some(format!("{}/a.png", stub.base));
        rt.block_on(async {
            put(&latchkey, &s).await;
            assert!(latchkey.cached_picture().await.expect("read").is_none());
            let id = latchkey.current().await.expect("read").expect("session");
            for _ in 0..3 {
                let p = latchkey.picture(&id).await.expect("picture").expect("some");
                assert_eq!(p.bytes(), PNG);
            }
            assert_eq!(
                stub.hits("/a.png"),
                1,
                "fetched once, then from the keychain"
            );
            let cached = latchkey.cached_picture().await.expect("read");
            assert_eq!(cached.map(|p| p.media_type()), Some("image/png"));

            // A new picture URL: the old one is not shown for it, and the new one is fetched.
            let mut stored = latchkey.load().await.expect("load").expect("session");
            assert!(stored.picture.is_some());
            stored.claims.picture = Some(format!("{}/b.png", stub.base));
            put(&latchkey, &stored).await;
            assert!(latchkey.cached_picture().await.expect("read").is_none());
            let id = latchkey.current().await.expect("read").expect("session");
            latchkey.picture(&id).await.expect("picture");
            assert_eq!(stub.hits("/b.png"), 1);
            let debug = format!("{:?}", latchkey.load().await.expect("load"));
            assert!(
                debug.contains("base64_len") && !debug.contains("iVBOR"),
                "{debug}"
            );
        });
    }
}
