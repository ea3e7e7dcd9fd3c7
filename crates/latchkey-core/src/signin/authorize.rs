//! The authorization request (RFC 6749 §4.1.1, OIDC Core §3.1.2.1): PKCE, `state` and `nonce`
//! made here, the request pushed first when PAR is on (RFC 9126), and the sign-in recorded as
//! pending until its redirect comes back.

use std::borrow::Cow;

use openidconnect::core::{CoreAuthPrompt, CoreAuthenticationFlow, CoreResponseType};
use openidconnect::{CsrfToken, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope};
use url::Url;

use super::{SignIn, policy};
use crate::config::FlowChoice;
use crate::context::{Client, Context};
use crate::discovery::Provider;
use crate::dpop::DpopKey;
use crate::error::{Error, ErrorKind, Result};
use crate::flow::{Awaiting, Opened, Pending, Push, Redemption, ResponseMode, Sent};
use crate::oauth::client_auth::ClientAuth;
use crate::oauth::par;
use crate::session::repo;

/// Starts a sign-in that will redirect to `redirect_uri`: discovery (and its issuer check)
/// happens here, before any browser opens. The returned URL goes to the system browser.
pub(crate) async fn begin(ctx: &Context, redirect_uri: &Url) -> Result<SignIn> {
    refuse_logout_return_as_redirect(ctx, redirect_uri)?;
    repo::ready_for_new_session(ctx).await?;
    let (flow, mode) = policy::browser_flow(ctx, redirect_uri)?;
    // Fresh from the issuer (OIDC Discovery §4, over TLS), not the disk cache: these endpoints
    // get the code, the verifier and any client secret, and are bound into the session.
    let provider = ctx.discovery.get_fresh(ctx.http(), ctx.now()).await?;
    policy::browser_flow_offered(&provider, flow, mode)?;
    // Decided now, so a provider that cannot honour `par` fails before any browser opens.
    let par_endpoint = policy::par_endpoint(ctx.config.par, &provider)?;
    let dpop_key = policy::dpop_key_for(ctx, &provider)?;
    // RFC 7636 §4.1: a 32-byte random verifier, S256 challenge (RFC 9700 §2.1.1).
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256_len(32);
    // 256 random bits each, above the 128 RFC 6749 §10.10 asks for.
    let state = CsrfToken::new_random_len(32);
    let nonce = Nonce::new_random_len(32);
    let url = Request {
        flow,
        mode,
        redirect_uri,
        state: &state,
        nonce: &nonce,
        challenge,
        dpop: dpop_key.as_ref(),
    }
    .url(ctx, &ctx.client(&provider)?);
    let opened = match par_endpoint {
        Some(endpoint) => {
            let pushed = push(ctx, &provider, endpoint, &url)
                .await
                .map_err(|e| e.context("before opening the browser"))?;
            Opened {
                url: pushed.url,
                push: Some(Push {
                    endpoint: endpoint.to_owned(),
                    request: url,
                    expires_at: pushed.expires_at,
                }),
            }
        }
        None => Opened { url, push: None },
    };
    let now = ctx.now();
    let expires_at = now
        + chrono::Duration::from_std(ctx.config.login_timeout)
            .unwrap_or(chrono::Duration::minutes(5));
    let awaiting = awaiting(flow, verifier, dpop_key);
    ctx.pending.insert(
        Pending {
            sent: Sent {
                state,
                nonce,
                redirect_uri: redirect_uri.clone(),
                expires_at,
                opened: opened.clone(),
                mode,
                provider,
            },
            awaiting,
        },
        now,
    );
    Ok(SignIn {
        url: opened.url,
        redirect_uri: redirect_uri.clone(),
        expires_at,
    })
}

/// What the response to a `flow` sign-in must carry, with what redeems its code.
fn awaiting(flow: FlowChoice, verifier: PkceCodeVerifier, dpop: Option<DpopKey>) -> Awaiting {
    let redemption = Redemption { verifier, dpop };
    match flow {
        FlowChoice::Hybrid => Awaiting::Hybrid(redemption),
        FlowChoice::Implicit => Awaiting::Implicit,
        _ => Awaiting::Code(redemption),
    }
}

/// Pushes the authorization request `request` to `endpoint` (RFC 9126 §2), authenticated as
/// the client is at this provider.
async fn push(
    ctx: &Context,
    provider: &Provider,
    endpoint: &str,
    request: &Url,
) -> Result<par::Pushed> {
    par::push(
        ctx.http(),
        endpoint,
        ClientAuth::choose(&ctx.config, provider)?,
        &ctx.config,
        provider.metadata.authorization_endpoint().url(),
        request,
        ctx.now(),
    )
    .await
}

/// What one authorization request carries besides the configuration.
struct Request<'a> {
    flow: FlowChoice,
    mode: ResponseMode,
    redirect_uri: &'a Url,
    state: &'a CsrfToken,
    nonce: &'a Nonce,
    challenge: PkceCodeChallenge,
    dpop: Option<&'a DpopKey>,
}

impl Request<'_> {
    /// The authorization request URL (RFC 6749 §4.1.1, OIDC Core §3.1.2.1), built by
    /// `openidconnect` with the flow's response type and mode, scopes and extra parameters.
    fn url(self, ctx: &Context, client: &Client) -> Url {
        let authentication_flow = match self.flow {
            // OIDC Core §3.3.2.2.
            FlowChoice::Hybrid => CoreAuthenticationFlow::Hybrid(vec![
                CoreResponseType::Code,
                CoreResponseType::IdToken,
            ]),
            // §3.2.2.1: `id_token` alone, no access token.
            FlowChoice::Implicit => CoreAuthenticationFlow::Implicit(false),
            _ => CoreAuthenticationFlow::AuthorizationCode,
        };
        let (state, nonce) = (self.state.clone(), self.nonce.clone());
        let mut request = client
            .authorize_url(authentication_flow, move || state, move || nonce)
            .set_redirect_uri(Cow::Owned(RedirectUrl::from_url(self.redirect_uri.clone())));
        // PKCE protects a code (RFC 7636 §1); the implicit flow has none.
        if self.flow != FlowChoice::Implicit {
            request = request.set_pkce_challenge(self.challenge);
        }
        if self.mode != ResponseMode::Query {
            request = request.add_extra_param("response_mode", self.mode.as_str());
        }
        let scopes = match self.flow {
            FlowChoice::Implicit => policy::implicit_scopes(&ctx.config.scopes),
            _ => ctx.config.scopes.clone(),
        };
        for scope in scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        // OIDC Core §11: offline_access is honoured only with prompt=consent, unless the
        // configuration sets its own prompt.
        if self.flow != FlowChoice::Implicit
            && ctx.config.wants_offline_access()
            && !ctx.config.extra_auth_params.contains_key("prompt")
        {
            request = request.add_prompt(CoreAuthPrompt::Consent);
        }
        // RFC 9449 §10: binds the code to the DPoP key, so only its holder can redeem it. A
        // pushed request carries it too (par::push moves every parameter).
        if let Some(key) = self.dpop {
            request = request.add_extra_param("dpop_jkt", key.thumbprint().to_owned());
        }
        for (k, v) in &ctx.config.extra_auth_params {
            request = request.add_extra_param(k.clone(), v.clone());
        }
        request.url().0
    }
}

/// A `post_logout_redirect_uri` equal to the sign-in redirect would make every sign-in's answer
/// look like a sign-out's return (`end_session::logout_return` is asked first) and be ignored.
fn refuse_logout_return_as_redirect(ctx: &Context, redirect_uri: &Url) -> Result<()> {
    match &ctx.config.post_logout_redirect_uri {
        Some(back) if crate::flow::same_endpoint(back, redirect_uri) => {
            Err(Error::config(format!(
                "`post_logout_redirect_uri` is the sign-in redirect `{redirect_uri}`; give the sign-out's return a path of its own, e.g. `/signed-out`"
            )))
        }
        _ => Ok(()),
    }
}

/// The URL to open again for the waiting sign-in whose browser opened `url`: the same URL,
/// unless the request was pushed and its `request_uri` has expired or is about to (RFC 9126
/// §2.2 `expires_in`; one without it counts as used). Then the request is pushed again with the
/// same state, nonce and PKCE challenge, and the new URL replaces the old one.
pub(crate) async fn url_to_reopen(ctx: &Context, url: &Url) -> Result<Url> {
    let now = ctx.now();
    let Some((opened, provider)) = ctx.pending.opened(url, now) else {
        return Err(Error::new(
            ErrorKind::TimedOut,
            "the sign-in that opened this page is over (timed out, cancelled or done); sign in again",
        ));
    };
    let Some(push) = opened.push else {
        return Ok(opened.url);
    };
    // The time it takes the browser to open the page and the user to get through it.
    let margin = chrono::Duration::seconds(10);
    if push.expires_at.is_some_and(|t| t > now + margin) {
        return Ok(opened.url);
    }
    let pushed = self::push(ctx, &provider, &push.endpoint, &push.request)
        .await
        .map_err(|e| e.context("before opening the browser again"))?;
    ctx.pending
        .reopened(url, pushed.url.clone(), pushed.expires_at);
    Ok(pushed.url)
}

/// Opens a URL in the system browser (or `$BROWSER`).
pub(crate) fn open_browser(ctx: &Context, url: &Url) -> Result<()> {
    ctx.ports
        .browser
        .open(url)
        .map_err(|e| Error::new(ErrorKind::Browser, format!("cannot open the browser: {e}")))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::clock::SystemClock;
    use crate::testing::{self, ISSUER, NoBrowser};
    use crate::{AppIdentity, Latchkey, Ports};

    /// In-memory keychain, no browser, the network, and `clock`.
    fn ports(clock: Arc<dyn crate::clock::Clock>, cache: &std::path::Path) -> Ports {
        Ports {
            store: Arc::new(crate::store::MemoryStore::new(200)),
            browser: Arc::new(NoBrowser),
            clock,
            http: Arc::new(crate::http::SystemHttp::new(AppIdentity::TEST.user_agent)),
            cache_dir: Some(cache.to_path_buf()),
            keychain_timeout: Duration::from_secs(5),
            token_cache: None,
            identity: AppIdentity::TEST,
        }
    }

    /// I12: the sign-out's return may not be the sign-in redirect, on the app's scheme as on
    /// loopback; the check comes before any keychain or network call.
    #[tokio::test]
    async fn a_logout_return_equal_to_the_redirect_is_refused() {
        let cache = tempfile::tempdir().expect("tmp");
        let redirect = Url::parse("com.example.app:/callback").expect("url");
        let mut config = testing::config(ISSUER);
        config.post_logout_redirect_uri = Some(redirect.clone());
        let ports = ports(Arc::new(SystemClock), cache.path());
        let latchkey = Latchkey::new(config, ports);
        let e = latchkey.begin(&redirect).await.expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(
            e.message()
                .contains("`post_logout_redirect_uri` is the sign-in redirect"),
            "{e}"
        );
    }

    /// RFC 9126 §2.2: a pushed request's `request_uri` expires. Opening the page again pushes
    /// the request anew once it has (10 s margin), not before, and the new URL is the sign-in's.
    #[tokio::test]
    async fn opening_again_pushes_anew_once_the_request_uri_expired() {
        let stub = testing::Stub::start().await;
        let issuer = stub.base.clone();
        let mut metadata = testing::metadata(&issuer, "token", None);
        metadata["pushed_authorization_request_endpoint"] =
            serde_json::json!(format!("{issuer}/par"));
        stub.route("/.well-known/openid-configuration", metadata.to_string());
        stub.route("/jwks", r#"{"keys":[]}"#);
        let push = |n: &str| format!(r#"{{"request_uri":"urn:example:{n}","expires_in":60}}"#);
        stub.route("/par", push("one"));
        let cache = tempfile::tempdir().expect("tmp");
        let clock = Arc::new(testing::ManualClock::new(testing::now()));
        let mut config = testing::config(&issuer);
        config.par = crate::config::UseChoice::Always;
        let ports = ports(clock.clone(), cache.path());
        let latchkey = Latchkey::new(config, ports);
        let redirect = Url::parse("http://127.0.0.1:5000/callback").expect("url");
        let first = latchkey.begin(&redirect).await.expect("begin").url;
        assert!(first.as_str().contains("urn%3Aexample%3Aone"), "{first}");
        assert_eq!(stub.hits("/par"), 1);

        // 45 s on, 15 s are left: the same page.
        clock.advance(45);
        let same = latchkey.url_to_reopen(&first).await.expect("reopen");
        assert_eq!(same, first);
        assert_eq!(stub.hits("/par"), 1, "not pushed again");

        // 55 s on, within the margin: pushed again, and that URL is the sign-in's now.
        stub.route("/par", push("two"));
        clock.advance(10);
        let again = latchkey.url_to_reopen(&first).await.expect("reopen");
        assert!(again.as_str().contains("urn%3Aexample%3Atwo"), "{again}");
        assert_eq!(stub.hits("/par"), 2);
        assert_eq!(latchkey.url_to_reopen(&again).await.expect("reopen"), again);
        assert_eq!(stub.hits("/par"), 2);
        let old = latchkey.url_to_reopen(&first).await.expect_err("replaced");
        assert_eq!(old.kind(), crate::ErrorKind::TimedOut);
    }
}
