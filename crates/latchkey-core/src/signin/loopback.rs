//! The CLI's sign-in: a loopback listener (RFC 8252 §7.3), the browser, and the callback door for
//! each request that arrives; one interactive sign-in per profile at a time, across processes.

use std::time::Duration;

use super::{LoginNotice, authorize, callback};
use crate::context::Context;
use crate::error::{Error, ErrorKind, Result};
use crate::lock;
use crate::loopback::LoopbackServer;
use crate::session::{Identity, repo};

/// [`Latchkey::login_loopback`](crate::Latchkey::login_loopback) for a front end other than a terminal: the browser's last page
/// tells the user to return to `return_to` (say, the app's name).
pub(crate) async fn login_loopback_to(
    ctx: &Context,
    return_to: &str,
    mut notify: impl FnMut(LoginNotice<'_>),
) -> Result<Identity> {
    let _one_at_a_time = match sign_in_lock(ctx, &mut notify).await? {
        SignInTurn::Ours(held) => held,
        SignInTurn::Done(identity) => return Ok(*identity),
    };
    let server = LoopbackServer::bind(&ctx.config.redirect_uri).await?;
    let sign_in = authorize::begin(ctx, server.redirect_uri()).await?;
    let result = match ctx.ports.browser.usable() {
        Ok(()) => authorize::open_browser(ctx, &sign_in.url),
        Err(why) => Err(no_browser(ctx, &why).await),
    };
    notify(LoginNotice::Opened {
        sign_in: &sign_in,
        result,
    });
    let deadline = tokio::time::Instant::now() + ctx.config.login_timeout;
    loop {
        let request = match tokio::time::timeout_at(deadline, server.next()).await {
            Ok(r) => r?,
            Err(_) => {
                ctx.pending.clear();
                return Err(Error::new(
                    ErrorKind::TimedOut,
                    format!(
                        "no sign-in completed within {} s",
                        ctx.config.login_timeout.as_secs()
                    ),
                )
                .with_remedy(crate::Remedy::SignIn));
            }
        };
        let result = match &request.form {
            Some(body) => callback::resume_form_post(ctx, &request.url, body).await,
            None => callback::resume(ctx, &request.url).await,
        };
        match result {
            Ok(identity) => {
                let who = identity
                    .name
                    .clone()
                    .or(identity.email.clone())
                    .unwrap_or(identity.subject.clone());
                request
                    .finish(
                        true,
                        "Signed in",
                        &format!(
                            "Signed in as {who}. You can close this tab and return to {return_to}."
                        ),
                    )
                    .await;
                return Ok(identity);
            }
            Err(e)
                if e.kind() == ErrorKind::ForeignCallback && ctx.pending.is_waiting(ctx.now()) =>
            {
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
/// [`login_loopback_to`]): our turn, or the identity another process just
/// signed in while this one waited.
pub(crate) async fn sign_in_lock(
    ctx: &Context,
    notify: &mut impl FnMut(LoginNotice<'_>),
) -> Result<SignInTurn> {
    let started = ctx.now();
    let path = repo::lock_file(ctx, "login")?;
    if let Some(held) = lock::try_acquire(&path)? {
        return Ok(SignInTurn::Ours(held));
    }
    notify(LoginNotice::Waiting);
    let held = lock::acquire_or(
        &path,
        ctx.config.login_timeout + Duration::from_secs(5),
        "another sign-in to this profile did not finish in time; try again",
    )
    .await?;
    if let Some(session) = repo::load(ctx).await?
        && session.signed_in_at >= started
    {
        return Ok(SignInTurn::Done(Box::new(repo::identity_of(ctx, &session))));
    }
    Ok(SignInTurn::Ours(held)) // the other sign-in failed or was cancelled: our turn
}

/// No browser can be opened here: says so, and when the provider has the device flow
/// (RFC 8628), that it is the way to sign in from this terminal.
pub(crate) async fn no_browser(ctx: &Context, why: &str) -> Error {
    let error = Error::new(ErrorKind::Browser, format!("cannot open a browser: {why}"));
    match ctx.provider().await {
        Ok(p) if p.extra().device_authorization_endpoint.is_some() => {
            error.with_remedy(crate::Remedy::UseDevice)
        }
        _ => error,
    }
}

/// What [`sign_in_lock`] found.
pub(crate) enum SignInTurn {
    /// This process holds the lock and signs in.
    Ours(lock::RefreshLock),
    /// Another process signed in while this one waited.
    Done(Box<Identity>),
}
