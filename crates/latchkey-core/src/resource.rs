//! A protected API by its URL: where it signs in (RFC 9728 Protected Resource Metadata) and
//! what that authorization server publishes (RFC 8414, then OpenID Connect Discovery).
//!
//! Every document is checked against what asked for it before anything is used: the resource
//! document's `resource` must be the API's URL (RFC 9728 §3.3), and the server's `issuer` must
//! be the identifier it was fetched for (RFC 8414 §3.3). Either mismatch stops the sign-in before
//! any browser opens; a hostile API can name a server, but not pass off another API's document.

use openidconnect::AsyncHttpClient as _;
use openidconnect::http::{Method, Request, StatusCode, header};
use url::Url;

use crate::config::is_loopback_host;
use crate::discovery::get_json;
use crate::error::{Error, ErrorKind, Result, sanitize};
use crate::http::{HttpClient, HttpError};
use crate::oauth::challenge;

/// What a protected resource says about itself (RFC 9728 §2), and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProtectedResource {
    pub resource: Url,
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
    /// The `scope` of the resource's `401` challenge, when it sent one (RFC 6750 §3).
    pub challenge_scope: Option<String>,
    /// Where the document came from.
    pub metadata_url: Url,
}

/// An https URL, or http on a loopback host (the dev setup), as for an issuer.
pub(crate) fn check_url(url: &Url, what: &str) -> Result<()> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(url) => Ok(()),
        _ => Err(Error::new(
            ErrorKind::ProviderInvalid,
            format!(
                "{what} `{}` is not https (plain http only on 127.0.0.1, ::1 or localhost)",
                sanitize(url.as_str())
            ),
        )),
    }
}

/// RFC 9728 §3.1 and RFC 8414 §3.1: `/.well-known/<suffix>` inserted between the host and the
/// path, any terminating slash after the host removed.
pub(crate) fn well_known(url: &Url, suffix: &str) -> Url {
    let mut out = url.clone();
    let path = url.path().trim_end_matches('/');
    out.set_path(&format!("/.well-known/{suffix}{path}"));
    out.set_fragment(None);
    out
}

/// Finds the resource's metadata: from its `401` challenge's `resource_metadata` (RFC 9728
/// §5.1), else at the well-known location with the path (§3.1), else at the host's root.
pub(crate) async fn discover(http: &HttpClient, resource: &Url) -> Result<ProtectedResource> {
    check_url(resource, "the resource")?;
    let (pointer, challenge_scope) = probe(http, resource).await?;
    let mut candidates = Vec::new();
    if let Some(url) = pointer {
        candidates.push(url);
    } else {
        candidates.push(well_known(resource, "oauth-protected-resource"));
        let mut root = resource.clone();
        root.set_path("/");
        root.set_query(None);
        candidates.push(well_known(&root, "oauth-protected-resource"));
        candidates.dedup();
    }
    let mut last = None;
    for url in candidates {
        match get_json(http, url.as_str(), "the resource's metadata (RFC 9728)").await {
            Ok(doc) => return parse(resource, &doc, url, challenge_scope),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::internal("no metadata location")))
}

/// GETs the resource without credentials: a `401` may point at its metadata and name a scope.
async fn probe(http: &HttpClient, resource: &Url) -> Result<(Option<Url>, Option<String>)> {
    let request = get(resource)?;
    let response = match http.call(request).await {
        Ok(r) => r,
        Err(
            e @ (HttpError::Timeout { .. } | HttpError::Connect { .. } | HttpError::Tls { .. }),
        ) => {
            return Err(Error::new(
                ErrorKind::ProviderUnreachable,
                format!("the resource: {e}"),
            ));
        }
        // A server error or a redirect: no challenge to read; the well-known location may
        // still answer.
        Err(_) => return Ok((None, None)),
    };
    if response.status() != StatusCode::UNAUTHORIZED {
        return Ok((None, None));
    }
    let values = response
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let challenges = challenge::parse(values);
    let Some(c) = challenges
        .iter()
        .find(|c| c.scheme == "bearer" || c.scheme == "dpop")
    else {
        return Ok((None, None));
    };
    let pointer = match c.param("resource_metadata") {
        Some(u) => {
            let url = Url::parse(u).map_err(|_| {
                invalid(format!(
                    "the resource's challenge names resource_metadata `{}`, which is not a URL",
                    sanitize(u)
                ))
            })?;
            check_url(&url, "the resource's resource_metadata")?;
            Some(url)
        }
        None => None,
    };
    Ok((pointer, c.param("scope").map(str::to_owned)))
}

fn get(url: &Url) -> Result<openidconnect::HttpRequest> {
    Request::builder()
        .method(Method::GET)
        .uri(url.as_str())
        .header(header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|e| invalid(format!("invalid URL `{}`: {e}", sanitize(url.as_str()))))
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::ProviderInvalid, message)
}

/// RFC 9728 §2 and §3.3: the document, which must be about `resource`.
fn parse(
    resource: &Url,
    doc: &serde_json::Value,
    metadata_url: Url,
    challenge_scope: Option<String>,
) -> Result<ProtectedResource> {
    let named = doc.get("resource").and_then(|v| v.as_str()).unwrap_or("");
    if Url::parse(named).ok().as_ref() != Some(resource) {
        return Err(invalid(format!(
            "the resource metadata at {} is for `{}`, not for `{}` (RFC 9728 §3.3); nothing was sent",
            sanitize(metadata_url.as_str()),
            sanitize(named),
            sanitize(resource.as_str())
        )));
    }
    let strings = |key: &str| -> Vec<String> {
        doc.get(key)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str())
                    .take(64)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let authorization_servers = strings("authorization_servers");
    if authorization_servers.is_empty() {
        return Err(invalid(format!(
            "the resource metadata at {} names no authorization_servers (RFC 9728 §2)",
            sanitize(metadata_url.as_str())
        )));
    }
    Ok(ProtectedResource {
        resource: resource.clone(),
        authorization_servers,
        scopes_supported: strings("scopes_supported"),
        challenge_scope,
        metadata_url,
    })
}

/// The authorization server to sign in with: the configured `issuer` when the resource lists it,
/// else the first the resource lists.
pub(crate) fn authorization_server(
    found: &ProtectedResource,
    configured: Option<&str>,
) -> Result<String> {
    match configured {
        Some(issuer) if found.authorization_servers.iter().any(|s| s == issuer) => {
            Ok(issuer.to_owned())
        }
        Some(issuer) => Err(Error::config(format!(
            "issuer `{issuer}` is not one of the authorization servers the resource names ({}); remove issuer or set one of them",
            sanitize(&found.authorization_servers.join(", "))
        ))),
        None => Ok(found.authorization_servers[0].clone()),
    }
}

/// The authorization server's metadata: RFC 8414 §3.1 first, then OpenID Connect Discovery §4;
/// its `issuer` must be `issuer` exactly (RFC 8414 §3.3). The document, and whether it is an
/// OpenID provider's.
pub(crate) async fn server_metadata(
    http: &HttpClient,
    issuer: &str,
) -> Result<(serde_json::Value, bool)> {
    let id =
        Url::parse(issuer).map_err(|_| invalid(format!("`{}` is not a URL", sanitize(issuer))))?;
    check_url(&id, "the authorization server")?;
    let oidc = Url::parse(&format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    ))
    .map_err(|_| invalid(format!("`{}` is not a URL", sanitize(issuer))))?;
    let mut last = None;
    for (url, is_oidc) in [
        (well_known(&id, "oauth-authorization-server"), false),
        (oidc, true),
    ] {
        let doc = match get_json(http, url.as_str(), "the authorization server's metadata").await {
            Ok(doc) => doc,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let named = doc.get("issuer").and_then(|v| v.as_str()).unwrap_or("");
        if named != issuer {
            return Err(invalid(format!(
                "the authorization server at {} says its issuer is `{}`, not `{}` (RFC 8414 §3.3); nothing was sent",
                sanitize(url.as_str()),
                sanitize(named),
                sanitize(issuer)
            )));
        }
        let openid = is_oidc
            || doc
                .get("scopes_supported")
                .and_then(|v| v.as_array())
                .is_some_and(|a| a.iter().any(|s| s == "openid"));
        return Ok((doc, openid));
    }
    Err(last.unwrap_or_else(|| Error::internal("no metadata location")))
}

#[cfg(test)]
mod tests;
