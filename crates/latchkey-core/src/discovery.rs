//! OpenID Provider metadata (OIDC Discovery 1.0) and the provider's signing keys, cached.
//!
//! Metadata and JWKS are cached in memory and on disk (they are public, non-secret documents) for
//! [`CACHE_TTL`], so a `latchkey token` that needs a refresh does not pay two extra round trips.
//! An ID token signed with a key we don't know triggers a JWKS refetch: the first one at once,
//! later ones at most once per [`JWKS_REFETCH_INTERVAL`]. That follows a provider's key rotation
//! without letting forged tokens with random `kid`s hammer the provider.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{AsyncHttpClient, ProviderMetadata};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result, sanitize};
use crate::http::{HttpClient, HttpError};

pub const CACHE_TTL: Duration = Duration::hours(1);
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::seconds(60);

/// Metadata fields beyond OIDC Discovery that Latchkey uses.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtraMetadata {
    /// RFC 7009 / RFC 8414.
    pub revocation_endpoint: Option<String>,
    /// OIDC RP-Initiated Logout 1.0.
    pub end_session_endpoint: Option<String>,
    /// RFC 9207 §3.
    pub authorization_response_iss_parameter_supported: Option<bool>,
    /// RFC 8414 §2.
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// RFC 8628 §4.
    pub device_authorization_endpoint: Option<String>,
    /// RFC 9126 §5.
    pub pushed_authorization_request_endpoint: Option<String>,
    /// RFC 9126 §5: the provider accepts authorization requests only through PAR.
    pub require_pushed_authorization_requests: Option<bool>,
    /// RFC 9449 §5.1: the JWS algorithms the provider accepts in DPoP proofs.
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
}
impl openidconnect::AdditionalProviderMetadata for ExtraMetadata {}

pub(crate) type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// A provider's validated metadata with its keys.
#[derive(Debug, Clone)]
pub(crate) struct Provider {
    /// Metadata with the JWKS filled in.
    pub metadata: Metadata,
    pub fetched_at: DateTime<Utc>,
    pub jwks_fetched_at: DateTime<Utc>,
    /// When the JWKS was last fetched because of an unknown key.
    pub jwks_refetched_at: Option<DateTime<Utc>>,
    raw_metadata: serde_json::Value,
    raw_jwks: serde_json::Value,
}

impl Provider {
    pub(crate) fn extra(&self) -> &ExtraMetadata {
        self.metadata.additional_metadata()
    }

    /// The endpoints a session's secrets go to, as this metadata names them.
    pub(crate) fn endpoints(&self) -> Endpoints {
        Endpoints {
            // validate_metadata refuses metadata without one.
            token: self
                .metadata
                .token_endpoint()
                .map(|u| u.as_str().to_owned())
                .unwrap_or_default(),
            revocation: self.extra().revocation_endpoint.clone(),
            end_session: self.extra().end_session_endpoint.clone(),
            userinfo: self
                .metadata
                .userinfo_endpoint()
                .map(|u| u.url().as_str().to_owned()),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    issuer: String,
    fetched_at: DateTime<Utc>,
    jwks_fetched_at: DateTime<Utc>,
    #[serde(default)]
    jwks_refetched_at: Option<DateTime<Utc>>,
    metadata: serde_json::Value,
    jwks: serde_json::Value,
}

/// The provider endpoints that receive a session's secrets: the token endpoint (the refresh
/// token, RFC 6749 §6), the revocation endpoint (RFC 7009 §2.1) and the end-session endpoint
/// (the ID token as `id_token_hint`, OIDC RP-Initiated Logout §2). Kept with the session in the
/// keychain because the discovery cache on disk is writable by any process of this user,
/// including one that cannot read the keychain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Endpoints {
    pub token: String,
    #[serde(default)]
    pub revocation: Option<String>,
    #[serde(default)]
    pub end_session: Option<String>,
    /// The userinfo endpoint, which gets the access token. `None` in sessions stored before it
    /// was recorded, and for a provider without one.
    #[serde(default)]
    pub userinfo: Option<String>,
}

/// Fetches and caches one issuer's metadata.
#[derive(Debug)]
pub(crate) struct Discovery {
    issuer: String,
    cache_file: Option<PathBuf>,
    current: tokio::sync::Mutex<Option<Arc<Provider>>>,
}

fn unreachable(what: &str, e: HttpError) -> Error {
    // A certificate that does not verify says what to do itself; retrying will not help.
    let advice = match e {
        HttpError::Tls { .. } => "",
        _ => "; check your network and try again",
    };
    Error::new(
        ErrorKind::ProviderUnreachable,
        format!("{what}: {e}{advice}"),
    )
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::ProviderInvalid, message)
}

impl Discovery {
    pub(crate) fn new(issuer: &str, cache_dir: Option<PathBuf>) -> Self {
        let name = crate::util::short_hash(issuer, 12);
        Self {
            issuer: issuer.to_owned(),
            cache_file: cache_dir.map(|d| d.join("providers").join(format!("{name}.json"))),
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// The provider's metadata and keys: from memory, the disk cache, or the network.
    pub(crate) async fn get(&self, http: &HttpClient, now: DateTime<Utc>) -> Result<Arc<Provider>> {
        let mut current = self.current.lock().await;
        if let Some(p) = current.as_ref().filter(|p| now - p.fetched_at < CACHE_TTL) {
            return Ok(Arc::clone(p));
        }
        if let Some(p) = self
            .read_cache()
            .filter(|p| now - p.fetched_at < CACHE_TTL && now >= p.fetched_at)
        {
            let p = Arc::new(p);
            *current = Some(Arc::clone(&p));
            return Ok(p);
        }
        let p = Arc::new(self.fetch(http, now).await?);
        self.write_cache(&p);
        *current = Some(Arc::clone(&p));
        Ok(p)
    }

    /// Fetches the metadata and keys from the network now, whatever is cached, and caches them.
    pub(crate) async fn get_fresh(
        &self,
        http: &HttpClient,
        now: DateTime<Utc>,
    ) -> Result<Arc<Provider>> {
        let mut current = self.current.lock().await;
        let p = Arc::new(self.fetch(http, now).await?);
        self.write_cache(&p);
        *current = Some(Arc::clone(&p));
        Ok(p)
    }

    /// Fetches the JWKS again after an unknown key was seen. Returns `None` when the last fetch
    /// was too recent.
    pub(crate) async fn refetch_jwks(
        &self,
        http: &HttpClient,
        now: DateTime<Utc>,
    ) -> Result<Option<Arc<Provider>>> {
        let mut current = self.current.lock().await;
        let Some(p) = current.as_ref() else {
            return Ok(None);
        };
        if p.jwks_refetched_at
            .is_some_and(|t| now - t < JWKS_REFETCH_INTERVAL)
        {
            return Ok(None);
        }
        let raw_jwks = get_json(
            http,
            p.metadata.jwks_uri().as_str(),
            "fetching the provider's keys",
        )
        .await?;
        let mut next = (**p).clone();
        next.metadata = next.metadata.set_jwks(parse_jwks(&raw_jwks)?);
        next.raw_jwks = raw_jwks;
        next.jwks_fetched_at = now;
        next.jwks_refetched_at = Some(now);
        let next = Arc::new(next);
        self.write_cache(&next);
        *current = Some(Arc::clone(&next));
        Ok(Some(next))
    }

    async fn fetch(&self, http: &HttpClient, now: DateTime<Utc>) -> Result<Provider> {
        // OIDC Discovery §4: the well-known path is appended after removing a trailing slash.
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let raw_metadata = get_json(http, &url, "fetching the provider's configuration").await?;
        let metadata = validate_metadata(&self.issuer, &raw_metadata)?;
        let raw_jwks = get_json(
            http,
            metadata.jwks_uri().as_str(),
            "fetching the provider's keys",
        )
        .await?;
        let metadata = metadata.set_jwks(parse_jwks(&raw_jwks)?);
        Ok(Provider {
            metadata,
            fetched_at: now,
            jwks_fetched_at: now,
            jwks_refetched_at: None,
            raw_metadata,
            raw_jwks,
        })
    }

    fn read_cache(&self) -> Option<Provider> {
        let path = self.cache_file.as_ref()?;
        let bytes = std::fs::read(path).ok()?;
        let file: CacheFile = serde_json::from_slice(&bytes).ok()?;
        if file.issuer != self.issuer {
            return None;
        }
        let metadata = validate_metadata(&self.issuer, &file.metadata).ok()?;
        let jwks = parse_jwks(&file.jwks).ok()?;
        Some(Provider {
            metadata: metadata.set_jwks(jwks),
            fetched_at: file.fetched_at,
            jwks_fetched_at: file.jwks_fetched_at,
            jwks_refetched_at: file.jwks_refetched_at,
            raw_metadata: file.metadata,
            raw_jwks: file.jwks,
        })
    }

    /// Best effort: a cache that cannot be written only costs a fetch next time.
    fn write_cache(&self, p: &Provider) {
        let Some(path) = &self.cache_file else { return };
        let file = CacheFile {
            issuer: self.issuer.clone(),
            fetched_at: p.fetched_at,
            jwks_fetched_at: p.jwks_fetched_at,
            jwks_refetched_at: p.jwks_refetched_at,
            metadata: p.raw_metadata.clone(),
            jwks: p.raw_jwks.clone(),
        };
        let result = (|| -> std::io::Result<()> {
            let dir = path.parent().ok_or(std::io::ErrorKind::NotFound)?;
            std::fs::create_dir_all(dir)?;
            let tmp = tempfile_path(path);
            std::fs::write(
                &tmp,
                serde_json::to_vec(&file).map_err(std::io::Error::other)?,
            )?;
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = result {
            tracing::debug!(error = %e, "could not write the discovery cache");
        }
    }
}

fn tempfile_path(path: &std::path::Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// GETs a JSON document. Redirects are not followed (see [`crate::http`]).
pub(crate) async fn get_json(
    http: &HttpClient,
    url: &str,
    what: &str,
) -> Result<serde_json::Value> {
    let request = openidconnect::http::Request::builder()
        .method(openidconnect::http::Method::GET)
        .uri(url)
        .header(openidconnect::http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|e| invalid(format!("{what}: invalid URL `{}`: {e}", sanitize(url))))?;
    let response = http.call(request).await.map_err(|e| unreachable(what, e))?;
    if response.status() != openidconnect::http::StatusCode::OK {
        return Err(invalid(format!(
            "{what}: {} answered HTTP {}; check the issuer URL",
            sanitize(url),
            response.status().as_u16()
        )));
    }
    serde_json::from_slice(response.body()).map_err(|e| {
        invalid(format!(
            "{what}: {} did not return JSON ({})",
            sanitize(url),
            sanitize(&e.to_string())
        ))
    })
}

pub(crate) fn parse_jwks(raw: &serde_json::Value) -> Result<CoreJsonWebKeySet> {
    serde_json::from_value(raw.clone()).map_err(|e| {
        invalid(format!(
            "the provider's key set is invalid ({})",
            sanitize(&e.to_string())
        ))
    })
}

/// Checks the metadata against OIDC Discovery §4.3 and what Latchkey needs.
pub(crate) fn validate_metadata(issuer: &str, raw: &serde_json::Value) -> Result<Metadata> {
    let metadata: Metadata = serde_json::from_value(raw.clone()).map_err(|e| {
        invalid(format!(
            "the provider's configuration is invalid ({})",
            sanitize(&e.to_string())
        ))
    })?;
    // Discovery §4.3: the returned issuer MUST be identical to the one used to fetch it; this is
    // what stops a mix-up between providers.
    if metadata.issuer().as_str() != issuer {
        return Err(invalid(format!(
            "the provider says its issuer is `{}`, but `{issuer}` is configured; set issuer to the exact value",
            sanitize(metadata.issuer().as_str())
        )));
    }
    if metadata.token_endpoint().is_none() {
        return Err(invalid(
            "the provider's configuration has no token_endpoint".into(),
        ));
    }
    // RFC 9700 §2.1.1: PKCE with S256. A provider that lists methods without S256 would ignore it.
    if let Some(methods) = &metadata
        .additional_metadata()
        .code_challenge_methods_supported
        && !methods.iter().any(|m| m == "S256")
    {
        return Err(invalid(
            "the provider does not support PKCE with S256 (code_challenge_methods_supported)"
                .into(),
        ));
    }
    // An https issuer must not hand out plain-http endpoints.
    if issuer.starts_with("https:") {
        let extra = metadata.additional_metadata();
        let endpoints = [
            Some(metadata.authorization_endpoint().as_str()),
            metadata.token_endpoint().map(|u| u.as_str()),
            metadata.userinfo_endpoint().map(|u| u.as_str()),
            Some(metadata.jwks_uri().as_str()),
            extra.revocation_endpoint.as_deref(),
            extra.end_session_endpoint.as_deref(),
            extra.device_authorization_endpoint.as_deref(),
            extra.pushed_authorization_request_endpoint.as_deref(),
        ];
        if let Some(bad) = endpoints
            .into_iter()
            .flatten()
            .find(|e| !e.starts_with("https:"))
        {
            return Err(invalid(format!(
                "the provider's endpoint `{}` is not https",
                sanitize(bad)
            )));
        }
    }
    Ok(metadata)
}

/// The smallest valid discovery document for `issuer` (endpoints under it, RS256), for unit tests
/// to extend with the keys they are about.
#[cfg(test)]
pub(crate) fn minimal_metadata(issuer: &str) -> serde_json::Value {
    serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    })
}

#[cfg(any(test, feature = "fuzzing"))]
impl Provider {
    /// A provider built from raw metadata and a key set, for unit tests and the fuzzers.
    pub(crate) fn for_tests(raw_metadata: serde_json::Value, jwks: CoreJsonWebKeySet) -> Self {
        let issuer = raw_metadata["issuer"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let metadata = match validate_metadata(&issuer, &raw_metadata) {
            Ok(m) => m.set_jwks(jwks),
            Err(e) => panic!("test metadata invalid: {e}"),
        };
        Self {
            metadata,
            fetched_at: Utc::now(),
            jwks_fetched_at: Utc::now(),
            jwks_refetched_at: None,
            raw_metadata,
            raw_jwks: serde_json::json!({"keys": []}),
        }
    }
}

#[cfg(any(test, feature = "fuzzing"))]
impl Discovery {
    /// Makes `provider` the current metadata, so tests (and the fuzzers) need no network.
    pub(crate) fn seed_for_tests(&self, provider: Provider) {
        *self.current.blocking_lock() = Some(Arc::new(provider));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(issuer: &str) -> serde_json::Value {
        serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/auth"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
            "revocation_endpoint": format!("{issuer}/revoke"),
        })
    }

    #[test]
    fn exact_issuer_match_is_required() {
        assert!(validate_metadata("https://id.example", &raw("https://id.example")).is_ok());
        let e = validate_metadata("https://id.example/", &raw("https://id.example"))
            .expect_err("slash");
        assert_eq!(e.kind(), ErrorKind::ProviderInvalid);
        assert!(e.message().contains("says its issuer is"), "{e}");
        let e = validate_metadata("https://evil.example", &raw("https://id.example"))
            .expect_err("another issuer");
        assert_eq!(e.kind(), ErrorKind::ProviderInvalid);
        assert!(e.message().contains("says its issuer is"), "{e}");
    }

    #[test]
    fn issuer_mismatch_message_is_sanitized() {
        let evil = "https://id.example/\u{1b}]8;;https://x\u{7}\u{9b}2J";
        let mut r = raw("https://id.example");
        r["issuer"] = serde_json::json!(evil);
        let e = validate_metadata("https://id.example", &r).expect_err("mismatch");
        let text = e.to_string();
        assert!(text.contains("says its issuer is"), "{text}");
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }

    #[test]
    fn https_endpoint_message_is_sanitized() {
        let mut r = raw("https://id.example");
        r["jwks_uri"] = serde_json::json!("http://id.example/\u{1b}[31mjwks");
        let e = validate_metadata("https://id.example", &r).expect_err("http");
        let text = e.to_string();
        assert!(text.contains("is not https"), "{text}");
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }

    #[test]
    fn extra_fields_are_read() {
        let m = validate_metadata("https://id.example", &raw("https://id.example")).expect("ok");
        assert_eq!(
            m.additional_metadata()
                .authorization_response_iss_parameter_supported,
            Some(true)
        );
        assert_eq!(
            m.additional_metadata().revocation_endpoint.as_deref(),
            Some("https://id.example/revoke")
        );
    }

    #[test]
    fn pkce_s256_must_be_supported() {
        let mut r = raw("https://id.example");
        r["code_challenge_methods_supported"] = serde_json::json!(["plain"]);
        let e = validate_metadata("https://id.example", &r).expect_err("plain only");
        assert!(e.message().contains("S256"), "{e}");
    }

    #[test]
    fn https_issuer_with_http_endpoint_is_rejected() {
        let mut r = raw("https://id.example");
        r["token_endpoint"] = serde_json::json!("http://id.example/token");
        let e = validate_metadata("https://id.example", &r).expect_err("http endpoint");
        assert!(e.message().contains("is not https"), "{e}");
    }

    #[test]
    fn disk_cache_round_trips() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = Discovery::new("https://id.example", Some(dir.path().to_path_buf()));
        let raw_metadata = raw("https://id.example");
        let p = Provider {
            metadata: validate_metadata("https://id.example", &raw_metadata).expect("ok"),
            fetched_at: Utc::now(),
            jwks_fetched_at: Utc::now(),
            jwks_refetched_at: None,
            raw_metadata,
            raw_jwks: serde_json::json!({"keys": []}),
        };
        d.write_cache(&p);
        let back = d.read_cache().expect("cached");
        assert_eq!(back.metadata.issuer().as_str(), "https://id.example");
        let other = Discovery::new("https://other.example", Some(dir.path().to_path_buf()));
        assert!(other.read_cache().is_none());
    }
}
