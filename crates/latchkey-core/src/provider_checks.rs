//! Checks for `latchkey doctor`: facts about the provider that only a request can tell.

use chrono::{DateTime, Utc};
use openidconnect::AsyncHttpClient as _;

use crate::context::Context;
use crate::error::{Error, ErrorKind, Result};
use crate::oauth::transient_http;

/// Fetches and validates the provider's discovery document and keys from the network now,
/// bypassing the cache: whether the provider answers *today*, as `doctor` reports it.
pub(crate) async fn check_provider_live(ctx: &Context) -> Result<()> {
    ctx.discovery
        .get_fresh(ctx.http(), ctx.now())
        .await
        .map(|_| ())
}

/// How far the provider's clock is ahead of ours (negative: behind), from the `Date` header
/// (RFC 9110 §6.6.1) of its discovery document; `None` when it sends none. ID tokens carry
/// `iat` and `exp` in the provider's time, so a large skew makes valid tokens look expired or
/// not yet issued.
pub(crate) async fn provider_clock_skew(ctx: &Context) -> Result<Option<chrono::Duration>> {
    use openidconnect::http::{Method, Request, header};
    let url = format!(
        "{}/.well-known/openid-configuration",
        ctx.config.issuer.trim_end_matches('/')
    );
    let request = Request::builder()
        .method(Method::GET)
        .uri(url.as_str())
        .header(header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|e| Error::new(ErrorKind::ProviderInvalid, format!("discovery URL: {e}")))?;
    let before = ctx.now();
    let response = ctx
        .http()
        .call(request)
        .await
        .map_err(|e| transient_http("asking the provider for its time", &e))?;
    let after = ctx.now();
    let Some(date) = response
        .headers()
        .get(header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
    else {
        return Ok(None);
    };
    // Our time at the moment the provider answered, as well as we can tell.
    let ours: DateTime<Utc> = before + (after - before) / 2;
    Ok(Some(date.with_timezone(&Utc) - ours))
}
