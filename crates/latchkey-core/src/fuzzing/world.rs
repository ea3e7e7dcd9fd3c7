//! The session layer's side of [`crate::fuzzing`]: a signed-in world with no network, keychain
//! or real clock, and the real token, userinfo and ID token code run over a fake HTTP answer.
//! It drives the crate's own protocol functions (`pub(crate)`) directly.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use openidconnect::http::{HeaderValue, StatusCode, header};
use openidconnect::{
    AccessToken, AuthorizationCode, HttpRequest, HttpResponse, Nonce, PkceCodeVerifier,
    SubjectIdentifier,
};
use url::Url;

use crate::browser::BrowserLauncher;
use crate::clock::Clock;
use crate::config::{Config, FlowChoice};
use crate::context::Client;
use crate::discovery::Provider;
use crate::dpop::DpopKey;
use crate::flow::ResponseMode;
use crate::http::{HttpError, HttpTransport};
use crate::oauth::client_auth::ClientAuth;
use crate::oauth::token::redeem_with;
use crate::oauth::userinfo::{Profile, UserInfo, userinfo_error};
use crate::session::build::{Origin, merge_profile, session_from_response};
use crate::session::{Claims, Session};
use crate::signin::{hybrid, policy};
use crate::store::MemoryStore;
use crate::util::jwt_payload;
use crate::verify::{self, NonceCheck};
use crate::{AppIdentity, Latchkey, Ports};

/// The HTTP answer the fuzzer chose, whatever the request was.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl<'c> openidconnect::AsyncHttpClient<'c> for Answer {
    type Error = HttpError;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, _request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let mut response = HttpResponse::new(self.body.clone());
            *response.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
            if let Some(v) = self
                .content_type
                .as_deref()
                .and_then(|t| HeaderValue::from_str(t).ok())
            {
                response.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            Ok(response)
        })
    }
}

#[derive(Debug)]
struct FixedClock(DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

#[derive(Debug)]
struct NoBrowser;

impl BrowserLauncher for NoBrowser {
    fn open(&self, _: &Url) -> std::result::Result<(), String> {
        Err("no browser while fuzzing".into())
    }
}

/// The account every fuzzed world is configured with: the code flow, PAR and DPoP on auto.
pub(crate) fn config(issuer: &str, client_id: &str) -> Config {
    Config {
        issuer: issuer.to_owned(),
        client_id: client_id.into(),
        scopes: vec!["openid".into(), "profile".into(), "email".into()],
        redirect_uri: Url::parse("http://127.0.0.1/callback").expect("fixed URL"),
        client_secret: None,
        profile: crate::config::DEFAULT_PROFILE.into(),
        login_timeout: Duration::from_secs(300),
        extra_auth_params: Default::default(),
        post_logout_redirect_uri: None,
        scope_descriptions: Default::default(),
        store: crate::config::StoreChoice::Auto,
        git_hosts: Vec::new(),
        git_username: "oauth2".into(),
        kube_servers: Vec::new(),
        flow: FlowChoice::Code,
        par: crate::config::UseChoice::Auto,
        dpop: crate::config::UseChoice::Auto,
        app_redirect: Default::default(),
    }
}

/// In-memory keychain, no browser, the clock stopped at `now`, `http` as the network.
pub(crate) fn ports(
    now: DateTime<Utc>,
    http: Arc<dyn HttpTransport>,
    cache_dir: Option<std::path::PathBuf>,
) -> Ports {
    Ports {
        store: Arc::new(MemoryStore::new(2000)),
        browser: Arc::new(NoBrowser),
        clock: Arc::new(FixedClock(now)),
        http,
        cache_dir,
        keychain_timeout: Duration::from_secs(5),
        token_cache: None,
        identity: AppIdentity::TEST,
    }
}

/// A configured Latchkey with its provider seeded (its JWKS never refetched), a signed-in
/// session to refresh, and the sign-in's secrets.
#[derive(Debug)]
pub(crate) struct World {
    latchkey: Latchkey,
    provider: Arc<Provider>,
    client: Client,
    previous: Session,
    nonce: Nonce,
    code: AuthorizationCode,
    access_token: AccessToken,
    dpop: DpopKey,
    now: DateTime<Utc>,
}

impl World {
    /// Outside any runtime (the discovery seed takes a blocking lock). `http` is the provider
    /// behind the HTTP port, for the calls a use case makes on its own (discovery is seeded).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        mut provider: Provider,
        http: Arc<dyn HttpTransport>,
        client_id: &str,
        now: DateTime<Utc>,
        nonce: &str,
        code: &str,
        access_token: &str,
        scheme: &str,
    ) -> Self {
        // An unknown `kid` must not send the fuzzer to the network for a fresh JWKS.
        provider.jwks_refetched_at = Some(now);
        let issuer = provider.metadata.issuer().as_str().to_owned();
        let mut config = config(&issuer, client_id);
        config.post_logout_redirect_uri = Url::parse(&format!("{scheme}:/logout")).ok();
        let ports = ports(now, http, None);
        let latchkey = Latchkey::new(config, ports);
        latchkey.ctx.discovery.seed_for_tests(provider.clone());
        let client = latchkey
            .ctx
            .client(&provider)
            .expect("the fixture's client");
        let previous = signed_in(issuer, client_id, access_token, now, &provider);
        Self {
            latchkey,
            provider: Arc::new(provider),
            client,
            previous,
            nonce: Nonce::new(nonce.into()),
            code: AuthorizationCode::new(code.into()),
            access_token: AccessToken::new(access_token.into()),
            dpop: DpopKey::generate().expect("a DPoP key"),
            now,
        }
    }

    /// A token endpoint answer to a code redemption (`refresh`: to a refresh), with or without
    /// a DPoP proof sent: oauth2's parsing, then the core's checks and the session they build,
    /// which must read back from its stored form.
    pub(crate) async fn token_response(&self, answer: &Answer, refresh: bool, dpop: bool) {
        let verifier = PkceCodeVerifier::new("v".repeat(43));
        let redirect_uri = Url::parse("http://127.0.0.1:5000/callback").expect("fixed URL");
        let response = match redeem_with(
            &self.client,
            self.code.clone(),
            verifier,
            &redirect_uri,
            answer,
        )
        .await
        {
            Ok(r) => r,
            Err(e) => {
                // What the refresh path looks at in an error.
                let _ = (e.oauth_error(), e.description(), e.to_string());
                return;
            }
        };
        let (nonce, origin) = if refresh {
            (NonceCheck::Refresh, Origin::Refresh(&self.previous))
        } else {
            let flow = FlowChoice::Code;
            (
                NonceCheck::Equals(&self.nonce),
                Origin::SignIn { flow, par: false },
            )
        };
        let dpop = dpop.then_some(&self.dpop);
        let Ok(session) = session_from_response(
            &self.latchkey.ctx,
            &self.provider,
            &response,
            nonce,
            origin,
            dpop,
        )
        .await
        else {
            return;
        };
        self.check_session(&session);
    }

    /// A userinfo answer for the signed-in session: openidconnect's parsing (JSON, or a signed
    /// JWT) and `sub` check, then the profile applied to the session.
    pub(crate) async fn userinfo(&self, answer: &Answer) {
        let Ok(request) = self.client.user_info(
            AccessToken::new(self.previous.access_token.clone()),
            Some(SubjectIdentifier::new(self.previous.claims.sub.clone())),
        ) else {
            return;
        };
        let info: UserInfo = match request.request_async(answer).await.map_err(userinfo_error) {
            Ok(info) => info,
            Err(e) => {
                let _ = e.to_string();
                return;
            }
        };
        let mut session = self.previous.clone();
        Profile::from_userinfo(&info).apply(&mut session.claims);
        session.drop_stale_picture();
        self.check_session(&session);
    }

    /// An ID token as a text (from a redirect or a token response): at the token endpoint, in
    /// the front channel with or without a code (hybrid, implicit), then the refresh rules.
    pub(crate) fn id_token(&self, text: &str, front: bool, with_code: bool) {
        let _ = jwt_payload(text);
        let Ok(token) = hybrid::front_channel_id_token(text) else {
            return;
        };
        let client_id = &self.latchkey.ctx.config.client_id;
        let claims = if front {
            let code = with_code.then_some(&self.code);
            verify::verify_front_channel(
                &self.provider,
                client_id,
                &token,
                &self.nonce,
                code,
                self.now,
            )
        } else {
            let nonce = if with_code {
                NonceCheck::Equals(&self.nonce)
            } else {
                NonceCheck::Refresh
            };
            verify::verify_id_token(
                &self.provider,
                client_id,
                &token,
                &self.access_token,
                nonce,
                self.now,
            )
        };
        match claims {
            Ok(claims) => {
                let _ = verify::check_refreshed(&self.previous.claims, &claims);
                let merged = merge_profile(claims, &self.previous.claims);
                let mut session = self.previous.clone();
                session.claims = merged;
                session.id_token = Some(text.to_owned());
                self.check_session(&session);
            }
            Err(e) => {
                let _ = e.into_error().to_string();
            }
        }
    }

    /// A redirect URL as an app receives it: `resume` (no sign-in is waiting, so it goes no
    /// further than the state check) and the logout return.
    pub(crate) async fn redirect(&self, url: &str) {
        let _ = self.latchkey.resume(url).await;
        let _ = self.latchkey.logout_return(url);
    }

    /// What the rest of the core asks of validated provider metadata.
    pub(crate) fn provider_checks(&self, provider: &Provider) {
        let _ = provider.endpoints();
        for flow in [FlowChoice::Code, FlowChoice::Hybrid, FlowChoice::Implicit] {
            for mode in [
                ResponseMode::Query,
                ResponseMode::Fragment,
                ResponseMode::FormPost,
            ] {
                let _ = policy::browser_flow_offered(provider, flow, mode);
            }
        }
        let _ = ClientAuth::choose(&self.latchkey.ctx.config, provider);
        for choice in [
            crate::config::UseChoice::Auto,
            crate::config::UseChoice::Always,
            crate::config::UseChoice::Never,
        ] {
            let _ = policy::dpop_wanted(choice, provider);
        }
        let _ = self.latchkey.ctx.client(provider);
    }

    /// A session the core built must survive the keychain: stored, read back, shown.
    fn check_session(&self, session: &Session) {
        let back = Session::from_bytes(&session.to_bytes());
        assert!(
            back.is_some(),
            "a session the core built does not read back from its stored form"
        );
        let _ = session.identity();
        let _ = session.access_token_valid(self.now);
        let _ = session.issued_expired();
    }
}

/// The session the world is signed in with: a code-flow session an hour old, due for refresh.
fn signed_in(
    issuer: String,
    client_id: &str,
    access_token: &str,
    now: DateTime<Utc>,
    provider: &Provider,
) -> Session {
    Session {
        v: 1,
        issuer,
        client_id: client_id.into(),
        profile: crate::config::DEFAULT_PROFILE.into(),
        access_token: access_token.into(),
        expires_at: now,
        issued_at: Some(now - chrono::Duration::hours(1)),
        refresh_token: Some("fuzz-refresh-token".into()),
        id_token: None,
        requested_scopes: vec!["openid".into(), "profile".into()],
        granted_scopes: vec!["openid".into(), "profile".into()],
        claims: Claims {
            sub: "alice".into(),
            aud: vec![client_id.into()],
            ..Default::default()
        },
        signed_in_at: now - chrono::Duration::hours(1),
        endpoints: Some(provider.endpoints()),
        flow: FlowChoice::Code,
        token_type: Some("Bearer".into()),
        dpop_jkt: None,
        dpop_key: None,
        par: false,
        picture: None,
        refresh_gives_no_id_token: false,
    }
}
