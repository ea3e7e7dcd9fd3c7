//! The one door for redirects, whatever carried them (the CLI's loopback listener or the app's
//! deep link): the pending sign-in is taken by `state` (once, in time), the address and the
//! issuer (RFC 9207) are checked, then the flow's own module finishes it.

use std::sync::Arc;
use std::time::Instant;

use url::Url;

use super::{code, hybrid, implicit, signed_in};
use crate::context::Context;
use crate::discovery::Provider;
use crate::error::{Error, ErrorKind, Result};
use crate::flow::{self, Awaiting, CallbackParams, Pending, ResponseMode};
use crate::session::Identity;

/// The single entry point for redirects: accepts only a response to a sign-in this process
/// started, once, in time; then redeems the code and stores the session. The response is
/// read from the link's query (a fragment is refused: no sign-in asks for one).
pub(crate) async fn resume(ctx: &Context, callback_url: &str) -> Result<Identity> {
    let (url, params, mode) = flow::parse_callback(callback_url)?;
    resume_params(ctx, url, params, mode).await
}

/// [`resume`] for a response the browser POSTed to `callback_url` as the
/// `application/x-www-form-urlencoded` `body` (Form Post Response Mode §2): the loopback
/// listener's hybrid and implicit sign-ins.
pub(crate) async fn resume_form_post(
    ctx: &Context,
    callback_url: &str,
    body: &str,
) -> Result<Identity> {
    let (url, params) = flow::parse_form_post(callback_url, body)?;
    resume_params(ctx, url, params, ResponseMode::FormPost).await
}

/// The pending sign-in `params` answers (by its `state`, once, in time, at its own address),
/// checked and finished by its flow's module, then stored.
pub(crate) async fn resume_params(
    ctx: &Context,
    url: Url,
    params: CallbackParams,
    mode: ResponseMode,
) -> Result<Identity> {
    let started = Instant::now();
    let waited_before = ctx.http().waited();
    let Pending { sent, awaiting } = ctx.pending.take(params.state.as_deref(), mode, ctx.now())?;
    if !flow::same_endpoint(&url, &sent.redirect_uri) {
        return Err(Error::new(
            ErrorKind::ForeignCallback,
            "the sign-in response arrived at an unexpected address; please sign in again",
        ));
    }
    // The metadata this sign-in began with, fetched fresh then: never the disk cache's.
    let provider = Arc::clone(&sent.provider);
    check_response(&provider, &params)?;
    let session = match awaiting {
        Awaiting::Code(r) => code::code_session(ctx, &provider, &sent, r, params).await?,
        Awaiting::Hybrid(r) => hybrid::hybrid_session(ctx, &provider, &sent, r, params).await?,
        Awaiting::Implicit => implicit::implicit_session(ctx, &provider, &sent, params).await?,
    };
    signed_in(ctx, &session, started, waited_before).await
}

/// What every authorization response must pass before its contents are used: the issuer
/// (RFC 9207 §2.4, against mix-up attacks), and no `error` (RFC 6749 §4.1.2.1).
fn check_response(provider: &Provider, params: &CallbackParams) -> Result<()> {
    match &params.iss {
        Some(iss) if iss != provider.metadata.issuer().as_str() => {
            return Err(Error::new(
                ErrorKind::ForeignCallback,
                "the sign-in response came from a different provider (iss mismatch); please sign in again",
            ));
        }
        // A provider that promises iss must send it; with an ID token in the response its
        // (verified) iss claim stands in.
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
    let Some(error) = &params.error else {
        return Ok(());
    };
    // Error::oauth appends the code (`access_denied`, `invalid_scope`, …).
    let (kind, message) = if error == "access_denied" {
        (
            ErrorKind::AccessDenied,
            "sign-in was declined at the provider",
        )
    } else {
        (ErrorKind::ProviderError, "the provider refused the sign-in")
    };
    Err(Error::oauth(
        kind,
        message,
        error,
        params.error_description.as_deref(),
    ))
}
