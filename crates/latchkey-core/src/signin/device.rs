//! The device authorization grant (RFC 8628): for a terminal with no browser of its own. The
//! user enters a short code at the provider's page on any other device; meanwhile this process
//! polls the token endpoint. No browser is opened and nothing listens on a port.
//!
//! Same shape as the code flow: [`begin_device`] asks for the codes (§3.1-3.2),
//! [`resume_device`] polls until the user approves or refuses, or the code expires
//! (§3.4-3.5), then verifies the ID token (without a nonce: none is sent) and stores the session.
//! The requests and the polling loop are `oauth2`'s.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use openidconnect::core::{CoreAuthPrompt, CoreDeviceAuthorizationResponse};
use openidconnect::{DeviceAuthorizationUrl, DeviceCodeErrorResponseType, Scope};
use url::Url;

use super::loopback::{self, SignInTurn};
use super::{LoginNotice, policy};
use crate::config::FlowChoice;
use crate::context::Context;
use crate::discovery::Provider;
use crate::error::{Error, ErrorKind, Result, sanitize};
use crate::oauth::token::{token_error, token_error_with};
use crate::oauth::userinfo;
use crate::session::build::{self, Origin};
use crate::session::{Identity, repo};
use crate::util::oauth_code;
use crate::verify::NonceCheck;
/// A device code lives at most this long here, whatever the provider's `expires_in` says.
const MAX_DEVICE_CODE_LIFETIME: Duration = Duration::from_secs(3600);
/// A longer `interval` is refused: the user would wait for nothing, and `oauth2` adds 5 s per
/// `slow_down` to it without checking for overflow.
const MAX_INTERVAL: Duration = Duration::from_secs(300);
/// The shortest wait between polls, whatever the provider says: RFC 8628 §3.5's default. A
/// provider's `interval: 0` (or a 5xx, whose backoff doubles the interval) would otherwise make
/// a loop without delay for the code's whole lifetime.
const MIN_INTERVAL: Duration = Duration::from_secs(5);
/// The longest wait after a connection error or 5xx, as the interval doubles (§3.5 asks for an
/// exponential backoff on those).
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(30);
/// The longest `user_code` shown; real ones are 8-10 characters (RFC 8628 §6.1).
const MAX_USER_CODE: usize = 64;

/// A device sign-in waiting for the user (RFC 8628 §3.2). Show `user_code` and
/// `verification_uri`; `verification_uri_complete` already carries the code (§3.3.1).
#[non_exhaustive]
pub struct DeviceSignIn {
    pub user_code: String,
    pub verification_uri: Url,
    pub verification_uri_complete: Option<Url>,
    /// The provider's `expires_in` from now, at most an hour.
    pub expires_at: DateTime<Utc>,
    /// Between polls: the provider's `interval`, at least 5 s, and 5 s when it sends none (§3.2).
    pub interval: Duration,
    lifetime: Duration,
    /// Holds the device code, a secret: never shown or logged.
    response: CoreDeviceAuthorizationResponse,
    provider: Arc<Provider>,
    /// The DPoP key every poll's proof is signed with (RFC 9449 §5).
    dpop: Option<crate::dpop::DpopKey>,
}

impl std::fmt::Debug for DeviceSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSignIn")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri.as_str())
            .field("expires_at", &self.expires_at)
            .field("interval", &self.interval)
            .field("dpop", &self.dpop)
            .finish_non_exhaustive()
    }
}

/// The CLI's device sign-in: one sign-in per profile at a time (as
/// [`login_loopback_to`](super::loopback::login_loopback_to)), [`LoginNotice::Device`] with the codes to
/// show, then [`resume_device`].
pub(crate) async fn login_device(
    ctx: &Context,
    mut notify: impl FnMut(LoginNotice<'_>),
) -> Result<Identity> {
    let _one_at_a_time = match loopback::sign_in_lock(ctx, &mut notify).await? {
        SignInTurn::Ours(held) => held,
        SignInTurn::Done(identity) => return Ok(*identity),
    };
    let sign_in = begin_device(ctx).await?;
    notify(LoginNotice::Device { sign_in: &sign_in });
    resume_device(ctx, sign_in).await
}

/// RFC 8628 §3.1: asks the provider for a device code and the user code to show.
pub(crate) async fn begin_device(ctx: &Context) -> Result<DeviceSignIn> {
    policy::flow_is(ctx, FlowChoice::Device)?;
    // As in `begin`: a session that could not be stored fails before the user does anything.
    repo::ready_for_new_session(ctx).await?;
    // Fresh from the issuer, as in `begin`: the device code and every poll go to its endpoints.
    let provider = ctx.discovery.get_fresh(ctx.http(), ctx.now()).await?;
    let Some(endpoint) = provider.extra().device_authorization_endpoint.clone() else {
        return Err(Error::new(
            ErrorKind::ProviderInvalid,
            "the provider offers no device sign-in (no device_authorization_endpoint); use the code flow",
        ));
    };
    let endpoint = DeviceAuthorizationUrl::new(endpoint).map_err(|e| {
        Error::new(
            ErrorKind::ProviderInvalid,
            format!("the provider's device_authorization_endpoint is not a URL ({e})"),
        )
    })?;
    // Decided before any code is shown, like the code flow's before the browser opens.
    let dpop = policy::dpop_key_for(ctx, &provider)?;
    let client = ctx
        .client(&provider)?
        .set_device_authorization_url(endpoint);
    // `openid` is added by openidconnect.
    let mut request = client.exchange_device_code();
    for scope in ctx.config.scopes.iter().filter(|s| *s != "openid") {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    // OIDC Core §11, as in `begin`: offline_access is honoured only with prompt=consent.
    if ctx.config.wants_offline_access() && !ctx.config.extra_auth_params.contains_key("prompt") {
        let consent = oauth_code(&CoreAuthPrompt::Consent);
        request = request.add_extra_param("prompt", consent);
    }
    for (k, v) in &ctx.config.extra_auth_params {
        request = request.add_extra_param(k.clone(), v.clone());
    }
    let response: CoreDeviceAuthorizationResponse = request
        .request_async(ctx.http())
        .await
        .map_err(|e| token_error(&e).context("asking for a device code"))?;

    sign_in_from(ctx, response, provider, dpop)
}

/// RFC 8628 §3.2: the provider's answer, checked before anything of it is shown or waited on:
/// a `user_code` a terminal can show, http(s) verification URIs, a sane `interval`, and a
/// lifetime capped at [`MAX_DEVICE_CODE_LIFETIME`].
fn sign_in_from(
    ctx: &Context,
    response: CoreDeviceAuthorizationResponse,
    provider: Arc<Provider>,
    dpop: Option<crate::dpop::DpopKey>,
) -> Result<DeviceSignIn> {
    let user_code = response.user_code().secret().clone();
    if user_code.is_empty()
        || user_code.chars().count() > MAX_USER_CODE
        || user_code
            .chars()
            .any(|c| c.is_control() || invisible_format(c))
    {
        return Err(Error::new(
            ErrorKind::ProviderInvalid,
            "the provider's user_code cannot be shown (empty, too long, or with control or bidi characters)",
        ));
    }
    let verification_uri = checked_uri(ctx, response.verification_uri().url())?;
    let verification_uri_complete = response
        .verification_uri_complete()
        .map(|u| {
            Url::parse(u.secret())
                .map_err(|_| {
                    Error::new(
                        ErrorKind::ProviderInvalid,
                        "the provider's verification_uri_complete is not a URL",
                    )
                })
                .and_then(|u| checked_uri(ctx, &u))
        })
        .transpose()?;
    let interval = response.interval().max(MIN_INTERVAL);
    if interval > MAX_INTERVAL {
        return Err(Error::new(
            ErrorKind::ProviderInvalid,
            format!(
                "the provider asks to wait {} s between polls, more than {} s; sign-in refused",
                interval.as_secs(),
                MAX_INTERVAL.as_secs()
            ),
        ));
    }
    let response = with_interval(response, interval)?;
    let lifetime = response.expires_in().min(MAX_DEVICE_CODE_LIFETIME);
    let expires_at =
        ctx.now() + chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::zero());
    Ok(DeviceSignIn {
        user_code,
        verification_uri,
        verification_uri_complete,
        expires_at,
        interval,
        lifetime,
        response,
        provider,
        dpop,
    })
}

/// The response with `interval` replaced, so that oauth2's poll loop starts from the floored
/// interval and a `slow_down` adds its 5 s to that (§3.5), not to the provider's shorter one.
/// The response's fields are private; its serde form is the RFC's JSON.
fn with_interval(
    response: CoreDeviceAuthorizationResponse,
    interval: Duration,
) -> Result<CoreDeviceAuthorizationResponse> {
    let mut json = serde_json::to_value(&response)
        .map_err(|e| Error::internal(format!("cannot copy the device code response: {e}")))?;
    json["interval"] = interval.as_secs().into();
    serde_json::from_value(json)
        .map_err(|e| Error::internal(format!("cannot copy the device code response: {e}")))
}

/// RFC 8628 §3.4-3.5: polls the token endpoint every `interval`, at least 5 s (5 s more after each
/// `slow_down`), keeps going on `authorization_pending`, and stops on `access_denied`,
/// `expired_token` or once `expires_in` has passed. Then the tokens are verified and stored
/// as after any sign-in.
pub(crate) async fn resume_device(ctx: &Context, sign_in: DeviceSignIn) -> Result<Identity> {
    let provider = Arc::clone(&sign_in.provider);
    let client = ctx.client(&provider)?;
    let clock = Arc::clone(&ctx.ports.clock);
    // A little past oauth2's own deadline (taken just after this), so the wake-up after the
    // last sleep finds the code expired instead of polling once more.
    let deadline = tokio::time::Instant::now() + sign_in.lifetime + Duration::from_millis(200);
    let request = client
        .exchange_device_access_token(&sign_in.response)
        .map_err(|e| Error::new(ErrorKind::ProviderInvalid, e.to_string()))?
        .set_time_fn(move || clock.now())
        .set_max_backoff_interval(MAX_ERROR_BACKOFF);
    // One client for the whole loop, so a DPoP-Nonce from one poll is used by the next.
    let sender = ctx.proof_client(sign_in.dpop.as_ref());
    let response = request
        .request_async(
            &sender,
            // Never past the code's expiry: the loop then ends with expired_token. Never less
            // than MIN_INTERVAL: oauth2 starts from the provider's own interval.
            move |interval| {
                let wait = interval.max(MIN_INTERVAL);
                tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + wait))
            },
            Some(sign_in.lifetime),
        )
        .await
        .map_err(|e| {
            token_error_with(&e, |error, code, description| match error {
                DeviceCodeErrorResponseType::AccessDenied => Some(Error::oauth(
                    ErrorKind::AccessDenied,
                    "sign-in was declined at the provider",
                    code,
                    description,
                )),
                DeviceCodeErrorResponseType::ExpiredToken => Some(Error::oauth(
                    ErrorKind::TimedOut,
                    "the code expired before the sign-in was approved; run the command again",
                    code,
                    // Past the deadline the answer is oauth2's, not the provider's.
                    description.filter(|_| tokio::time::Instant::now() < deadline),
                )),
                _ => None,
            })
            .context("device sign-in")
        })?;
    let session = build::session_from_response(
        ctx,
        &provider,
        &response,
        NonceCheck::NotSent,
        Origin::SignIn {
            flow: FlowChoice::Device,
            par: false,
        },
        sign_in.dpop.as_ref(),
    )
    .await?;
    let session = userinfo::with_userinfo(ctx, &client, session).await?;
    super::store_new_session(ctx, &session).await?;
    Ok(repo::identity_of(ctx, &session))
}

/// Characters that change how the text around them is shown without being seen: bidi marks,
/// embeddings, overrides and isolates, zero-width characters and the BOM (Unicode's format
/// characters that matter on a terminal). A user code holding one could read as another.
fn invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{061c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// A verification URI is shown to the user to open: http(s) only, and https when the issuer
/// is (as every other endpoint, [`crate::discovery`]).
pub(crate) fn checked_uri(ctx: &Context, url: &Url) -> Result<Url> {
    // `https://id.example.com@evil.example/` shows one host and opens another.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::new(
            ErrorKind::ProviderInvalid,
            format!(
                "the provider's verification URI `{}` carries a user name; sign-in refused",
                sanitize(url.as_str())
            ),
        ));
    }
    let https_issuer = ctx.config.issuer.starts_with("https:");
    match url.scheme() {
        "https" => Ok(url.clone()),
        "http" if !https_issuer => Ok(url.clone()),
        _ => Err(Error::new(
            ErrorKind::ProviderInvalid,
            format!(
                "the provider's verification URI `{}` is not https",
                sanitize(url.as_str())
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, ISSUER};

    fn answer(user_code: &str, uri: &str) -> CoreDeviceAuthorizationResponse {
        serde_json::from_value(serde_json::json!({
            "device_code": "d", "user_code": user_code, "verification_uri": uri,
            "expires_in": 600, "interval": 0,
        }))
        .expect("a device authorization response")
    }

    fn start(user_code: &str, uri: &str) -> Result<DeviceSignIn> {
        let cache = tempfile::tempdir().expect("tmp");
        let (_, latchkey) = testing::offline(cache.path());
        let provider = Arc::new(Provider::for_tests(
            testing::metadata(ISSUER, "token", None),
            openidconnect::JsonWebKeySet::new(Vec::new()),
        ));
        sign_in_from(&latchkey.ctx, answer(user_code, uri), provider, None)
    }

    /// Issue 18, point 13: a user code with bidi or zero-width characters, and a verification
    /// URI with a user name, are refused before anything is shown.
    #[test]
    fn misleading_user_codes_and_verification_uris_are_refused() {
        let ok = start("WDJB-MJHT", "https://id.example/device").expect("plain");
        assert_eq!(ok.user_code, "WDJB-MJHT");
        for code in [
            "WDJB\u{202e}TJHM",
            "WDJB\u{200b}-MJHT",
            "\u{2067}WDJB",
            "WD\u{feff}JB",
        ] {
            let e = start(code, "https://id.example/device").expect_err("refused");
            assert!(e.message().contains("bidi"), "{code:?}: {e}");
        }
        let e =
            start("WDJB-MJHT", "https://id.example.com@evil.example/device").expect_err("refused");
        assert!(e.message().contains("carries a user name"), "{e}");
    }

    /// L2: `interval: 0` becomes the 5 s floor, in what is shown and in what oauth2 polls with.
    #[test]
    fn a_zero_interval_is_raised_to_five_seconds() {
        let started = start("WDJB-MJHT", "https://id.example/device").expect("started");
        assert_eq!(started.interval, MIN_INTERVAL);
        assert_eq!(started.response.interval(), MIN_INTERVAL);
    }
}
