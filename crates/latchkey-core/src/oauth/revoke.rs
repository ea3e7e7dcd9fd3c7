//! Token revocation (RFC 7009).

use crate::context::Context;
use crate::discovery::Provider;
use crate::error::{Error, ErrorKind, Result, sanitize};
use openidconnect::http::StatusCode;

use crate::oauth::{client_auth::ClientAuth, form};
use crate::session::Session;

/// RFC 7009 §2.1: revokes the session's refresh token (which revokes the grant), or its access
/// token when it has none. `Ok(false)`: the provider offers no revocation endpoint.
pub(crate) async fn revoke(ctx: &Context, provider: &Provider, session: &Session) -> Result<bool> {
    let Some(endpoint) = &provider.extra().revocation_endpoint else {
        return Ok(false);
    };
    let (token, hint) = match &session.refresh_token {
        Some(rt) => (rt.as_str(), "refresh_token"),
        None => (session.access_token.as_str(), "access_token"),
    };
    let response = form::post(
        ctx.http(),
        endpoint,
        ("revocation endpoint", "revoking"),
        ClientAuth::choose(&ctx.config, provider)?,
        &ctx.config,
        &[("token", token), ("token_type_hint", hint)],
    )
    .await?;
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
