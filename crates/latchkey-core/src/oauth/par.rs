//! Pushed authorization requests (RFC 9126): the authorization parameters go to the provider
//! over the back channel, and the browser's URL carries only `client_id` and the `request_uri`
//! the provider answered with. Nothing of the request (PKCE challenge, `state`, `nonce`,
//! `redirect_uri`, scopes, …) can then be read or altered in the browser, its history or a proxy.
//!
//! `oauth2` builds the request as usual; [`push`] moves every parameter of that URL into the
//! pushed request, so whatever the flows add (`response_mode`, `dpop_jkt`, extra parameters)
//! travels the same way without being listed here.

use chrono::{DateTime, Utc};
use openidconnect::http::StatusCode;
use url::Url;

use super::client_auth::ClientAuth;
use super::form;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result, sanitize};
use crate::http::HttpClient;

/// The longest `request_uri` accepted: the provider's own value goes into a URL the browser
/// opens, so an absurd one is refused rather than passed on.
const MAX_REQUEST_URI: usize = 2048;

/// What a push gave: the URL for the browser, and until when its `request_uri` is good.
#[derive(Debug, Clone)]
pub(crate) struct Pushed {
    pub url: Url,
    /// `now + expires_in` (§2.2). `None` when the provider left it out (it is REQUIRED there):
    /// then the request counts as used up once opened, and opening it again pushes anew.
    pub expires_at: Option<DateTime<Utc>>,
}

/// RFC 9126 §2: POSTs every parameter of `authorization_url` to `endpoint`, with the client's
/// authentication, and returns the URL for the browser: the authorization endpoint with only
/// `client_id` and `request_uri` (§4).
pub(crate) async fn push(
    http: &HttpClient,
    endpoint: &str,
    auth: ClientAuth,
    config: &Config,
    authorization_endpoint: &Url,
    authorization_url: &Url,
    now: DateTime<Utc>,
) -> Result<Pushed> {
    // Every parameter oauth2 put in the URL, but client_id, which the authentication carries.
    let fields: Vec<(String, String)> = authorization_url
        .query_pairs()
        .filter(|(k, _)| k != "client_id")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let response = form::post(
        http,
        endpoint,
        (
            "pushed authorization request endpoint",
            "pushing the authorization request",
        ),
        auth,
        config,
        &fields,
    )
    .await?;
    answer(&response, config, authorization_endpoint, now)
}

/// The provider's answer to a push (§2.2, §2.3): the URL for the browser and its lifetime.
fn answer(
    response: &openidconnect::HttpResponse,
    config: &Config,
    authorization_endpoint: &Url,
    now: DateTime<Utc>,
) -> Result<Pushed> {
    let refused = |code: &str, description: Option<&str>| {
        Error::oauth(
            ErrorKind::ProviderError,
            format!(
                "the provider refused the pushed authorization request (RFC 9126) with `{}`",
                sanitize(code)
            ),
            code,
            description,
        )
    };
    let json: Option<serde_json::Value> = serde_json::from_slice(response.body()).ok();
    let field = |k: &str| {
        json.as_ref()
            .and_then(|v| v.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    // §2.2: a positive integer of seconds; a day at most, whatever the provider says.
    let expires_at = json
        .as_ref()
        .and_then(|v| v.get("expires_in"))
        .and_then(serde_json::Value::as_u64)
        .filter(|s| *s > 0)
        .map(|s| now + chrono::Duration::seconds(s.min(86_400) as i64));
    // §2.2: 201 Created; 200 is tolerated. §2.3: errors are RFC 6749 §5.2 JSON.
    if !matches!(response.status(), StatusCode::CREATED | StatusCode::OK) {
        return Err(match field("error") {
            Some(code) => refused(&code, field("error_description").as_deref()),
            None => Error::new(
                ErrorKind::ProviderError,
                format!(
                    "the provider refused the pushed authorization request (RFC 9126) with HTTP {}",
                    response.status().as_u16()
                ),
            ),
        });
    }
    let request_uri = field("request_uri")
        .filter(|u| !u.is_empty() && u.len() <= MAX_REQUEST_URI)
        .filter(|u| !u.chars().any(|c| c.is_control() || c.is_whitespace()))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::ProviderInvalid,
                "the provider's answer to the pushed authorization request has no usable request_uri (RFC 9126 §2.2)",
            )
        })?;
    // §4: the endpoint as the metadata names it (its own query, which RFC 6749 §3.1 allows,
    // included), plus only these two.
    let mut url = authorization_endpoint.clone();
    url.query_pairs_mut()
        .append_pair("client_id", &config.client_id)
        .append_pair("request_uri", &request_uri);
    Ok(Pushed { url, expires_at })
}
