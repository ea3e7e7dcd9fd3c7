//! The one authenticated form POST to a provider endpoint other than the token endpoint: the
//! pushed authorization request (RFC 9126 §2.1) and revocation (RFC 7009 §2.1) both send
//! `application/x-www-form-urlencoded` fields with the client authenticated as at the token
//! endpoint (RFC 6749 §2.3). Built by hand because `oauth2` has no request type for either and
//! insists on https, where a loopback dev provider is plain http (config validation already
//! limits http to loopback).

use openidconnect::AsyncHttpClient as _;
use openidconnect::HttpResponse;
use openidconnect::http::{Method, Request, header};

use super::client_auth::ClientAuth;
use super::transient_http;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::http::HttpClient;

/// POSTs `fields` and the client's authentication to `endpoint` (called `name` in errors;
/// `doing` names the step when the provider cannot be reached). Any status is returned: each
/// endpoint reads its own answer.
pub(crate) async fn post(
    http: &HttpClient,
    endpoint: &str,
    (name, doing): (&str, &str),
    auth: ClientAuth,
    config: &Config,
    fields: &[(&str, &str)],
) -> Result<HttpResponse> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(endpoint)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json");
    if let Some(value) = auth.header(config) {
        request = request.header(header::AUTHORIZATION, value);
    }
    let request = request
        .body(body(auth, config, fields))
        .map_err(|e| Error::new(ErrorKind::ProviderInvalid, format!("{name}: {e}")))?;
    http.call(request)
        .await
        .map_err(|e| transient_http(doing, &e))
}

/// The form body. A plain function: the serializer is not `Send`, and the futures that await
/// [`post`] must be.
fn body(auth: ClientAuth, config: &Config, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in auth.body_fields(config) {
        form.append_pair(k, &v);
    }
    for (k, v) in fields {
        form.append_pair(k, v);
    }
    form.finish().into_bytes()
}
