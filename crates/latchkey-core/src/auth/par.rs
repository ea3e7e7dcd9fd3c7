//! Pushed authorization requests (RFC 9126): the authorization parameters go to the provider
//! over the back channel, and the browser's URL carries only `client_id` and the `request_uri`
//! the provider answered with. Nothing of the request (PKCE challenge, `state`, `nonce`,
//! `redirect_uri`, scopes, …) can then be read or altered in the browser, its history or a proxy.
//!
//! `oauth2` builds the request as usual; [`push`] moves every parameter of that URL into the
//! pushed request, so whatever the flows add (`response_mode`, `dpop_jkt`, extra parameters)
//! travels the same way without being listed here.

use openidconnect::AsyncHttpClient as _;
use openidconnect::http::{Method, Request, StatusCode, header};
use url::Url;

use super::ClientAuth;
use crate::config::{Config, UseChoice};
use crate::discovery::Provider;
use crate::error::{Error, ErrorKind, Result, sanitize};
use crate::http::HttpClient;

/// The longest `request_uri` accepted: the provider's own value goes into a URL the browser
/// opens, so an absurd one is refused rather than passed on.
const MAX_REQUEST_URI: usize = 2048;

/// The PAR endpoint this sign-in pushes to, or `None` for a plain front-channel request. Decided
/// before any browser opens: `always` without an endpoint, and `never` (or a provider without
/// an endpoint) where the provider requires PAR, are errors.
pub(crate) fn endpoint(choice: UseChoice, provider: &Provider) -> Result<Option<&str>> {
    let extra = provider.extra();
    let endpoint = extra.pushed_authorization_request_endpoint.as_deref();
    let required = extra.require_pushed_authorization_requests == Some(true);
    match (choice, endpoint) {
        (UseChoice::Never, _) if required => Err(Error::config(
            "`par` is never, but the provider requires pushed authorization requests (require_pushed_authorization_requests); set par to auto",
        )),
        (UseChoice::Never, _) => Ok(None),
        (_, Some(e)) => Ok(Some(e)),
        (UseChoice::Always, None) => Err(Error::config(
            "`par` is always, but the provider has no pushed_authorization_request_endpoint; set par to auto",
        )),
        (_, None) if required => Err(Error::new(
            ErrorKind::ProviderInvalid,
            "the provider requires pushed authorization requests but names no pushed_authorization_request_endpoint",
        )),
        (_, None) => Ok(None),
    }
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
) -> Result<Url> {
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
    // Built in a block: the serializer is not `Send`.
    let body = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in auth.body_fields(config) {
            form.append_pair(k, &v);
        }
        for (k, v) in authorization_url.query_pairs() {
            if k != "client_id" {
                form.append_pair(&k, &v);
            }
        }
        form.finish().into_bytes()
    };
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(endpoint)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json");
    if let Some(value) = auth.header(config) {
        request = request.header(header::AUTHORIZATION, value);
    }
    let request = request.body(body).map_err(|e| {
        Error::new(
            ErrorKind::ProviderInvalid,
            format!("pushed authorization request endpoint: {e}"),
        )
    })?;
    let response = http.call(request).await.map_err(|e| {
        Error::new(
            ErrorKind::ProviderUnreachable,
            format!("pushing the authorization request: {e}"),
        )
    })?;
    let json: Option<serde_json::Value> = serde_json::from_slice(response.body()).ok();
    let field = |k: &str| {
        json.as_ref()
            .and_then(|v| v.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
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
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(extra: serde_json::Value) -> Provider {
        let mut m = crate::discovery::minimal_metadata("https://id.example");
        for (k, v) in extra.as_object().expect("object") {
            m[k] = v.clone();
        }
        Provider::for_tests(m, openidconnect::JsonWebKeySet::new(Vec::new()))
    }

    #[test]
    fn the_choice_meets_the_metadata_before_any_browser_opens() {
        let none = provider(serde_json::json!({}));
        let offered = provider(serde_json::json!({
            "pushed_authorization_request_endpoint": "https://id.example/par"
        }));
        let required = provider(serde_json::json!({
            "pushed_authorization_request_endpoint": "https://id.example/par",
            "require_pushed_authorization_requests": true
        }));
        let required_without = provider(serde_json::json!({
            "require_pushed_authorization_requests": true
        }));
        let par = Some("https://id.example/par");
        assert_eq!(endpoint(UseChoice::Auto, &none).expect("ok"), None);
        assert_eq!(endpoint(UseChoice::Auto, &offered).expect("ok"), par);
        assert_eq!(endpoint(UseChoice::Auto, &required).expect("ok"), par);
        assert_eq!(endpoint(UseChoice::Always, &offered).expect("ok"), par);
        assert_eq!(endpoint(UseChoice::Never, &offered).expect("ok"), None);
        let e = endpoint(UseChoice::Always, &none).expect_err("no endpoint");
        assert!(
            e.message()
                .contains("pushed_authorization_request_endpoint"),
            "{e}"
        );
        let e = endpoint(UseChoice::Never, &required).expect_err("required");
        assert!(
            e.message()
                .contains("require_pushed_authorization_requests"),
            "{e}"
        );
        assert!(endpoint(UseChoice::Auto, &required_without).is_err());
    }

    #[test]
    fn a_plain_http_par_endpoint_of_an_https_issuer_is_refused() {
        let mut m = crate::discovery::minimal_metadata("https://id.example");
        m["pushed_authorization_request_endpoint"] = serde_json::json!("http://id.example/par");
        let e = crate::discovery::validate_metadata("https://id.example", &m).expect_err("http");
        assert!(e.message().contains("is not https"), "{e}");
    }
}
