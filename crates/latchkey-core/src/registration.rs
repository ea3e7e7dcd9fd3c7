//! A client without registering one by hand: OAuth 2.0 Dynamic Client Registration (RFC 7591)
//! as a native app (RFC 8252 §8.4: a public client, `token_endpoint_auth_method: none`), done once
//! per (authorization server, redirect URI) and kept in the keychain like a session, so a second
//! sign-in reuses it.

use chrono::{DateTime, Utc};
use openidconnect::AsyncHttpClient as _;
use openidconnect::http::{Method, Request, StatusCode, header};
use url::Url;

use crate::error::{Error, ErrorKind, Result, sanitize};
use crate::http::HttpClient;
use crate::oauth::transient_http;
use crate::store::{Stored, Vault};
use crate::util::short_hash;

/// What the server registered (RFC 7591 §3.2.1).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Registration {
    pub issuer: String,
    pub redirect_uri: String,
    pub client_id: String,
    /// Only when the server insists on one despite `token_endpoint_auth_method: none`.
    pub client_secret: Option<String>,
    /// `client_secret_expires_at` (§3.2.1; 0 there means never, `None` here).
    pub secret_expires_at: Option<i64>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("issuer", &self.issuer)
            .field("redirect_uri", &self.redirect_uri)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

impl Registration {
    /// Usable at `now`: a client secret that has expired means registering again.
    fn usable(&self, now: DateTime<Utc>) -> bool {
        self.secret_expires_at.is_none_or(|t| t > now.timestamp())
    }
}

/// The keychain entry of the registration at `issuer` for `redirect_uri`. Its own namespace, so
/// it can never be read as a session (whose names are `profile/client@issuer`).
pub(crate) fn entry_name(issuer: &str, redirect_uri: &Url) -> String {
    format!(
        "registration:{}",
        short_hash(&format!("{issuer} {redirect_uri}"), 16)
    )
}

/// The client registered at `issuer` for `redirect_uri`: the kept one, or a new registration at
/// `endpoint`, kept for next time. `client_name` is the product's name.
pub(crate) async fn client_for(
    vault: &Vault,
    http: &HttpClient,
    (issuer, endpoint): (&str, &str),
    redirect_uri: &Url,
    client_name: &str,
    now: DateTime<Utc>,
) -> Result<Registration> {
    let name = entry_name(issuer, redirect_uri);
    if let Stored::Present(bytes) = vault.read(&name).await?
        && let Ok(kept) = serde_json::from_slice::<Registration>(&bytes)
        && kept.issuer == issuer
        && kept.redirect_uri == redirect_uri.as_str()
        && kept.usable(now)
    {
        return Ok(kept);
    }
    let fresh = register(http, issuer, endpoint, redirect_uri, client_name).await?;
    let bytes = serde_json::to_vec(&fresh).map_err(|e| Error::internal(e.to_string()))?;
    vault.save(&name, bytes).await?;
    Ok(fresh)
}

/// RFC 7591 §3.1: one registration request for a native public client.
async fn register(
    http: &HttpClient,
    issuer: &str,
    endpoint: &str,
    redirect_uri: &Url,
    client_name: &str,
) -> Result<Registration> {
    let body = serde_json::json!({
        "application_type": "native",
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": client_name,
        "redirect_uris": [redirect_uri.as_str()],
    });
    let request = Request::builder()
        .method(Method::POST)
        .uri(endpoint)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(body.to_string().into_bytes())
        .map_err(|e| {
            Error::new(
                ErrorKind::ProviderInvalid,
                format!("registration_endpoint `{}`: {e}", sanitize(endpoint)),
            )
        })?;
    let response = http
        .call(request)
        .await
        .map_err(|e| transient_http("registering this app with the provider", &e))?;
    let json: serde_json::Value = serde_json::from_slice(response.body()).unwrap_or_default();
    let text = |k: &str| json.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    if !matches!(response.status(), StatusCode::CREATED | StatusCode::OK) {
        // §3.2.2: the error as the server names it.
        let code = text("error").unwrap_or_else(|| format!("HTTP {}", response.status().as_u16()));
        return Err(Error::oauth(
            ErrorKind::ProviderError,
            format!(
                "the provider refused to register this app (RFC 7591) with `{}`; ask its administrator for a client_id",
                sanitize(&code)
            ),
            &code,
            text("error_description").as_deref(),
        ));
    }
    let client_id = text("client_id")
        .filter(|id| !id.is_empty() && id.len() <= 512 && !id.chars().any(char::is_control))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::ProviderInvalid,
                "the provider's registration answer has no usable client_id (RFC 7591 §3.2.1)",
            )
        })?;
    Ok(Registration {
        issuer: issuer.to_owned(),
        redirect_uri: redirect_uri.to_string(),
        client_id,
        client_secret: text("client_secret").filter(|s| !s.is_empty()),
        secret_expires_at: json
            .get("client_secret_expires_at")
            .and_then(serde_json::Value::as_i64)
            .filter(|t| *t > 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use crate::testing::{Arc, Duration, FakeHttp, now};

    const AS: &str = "https://as.example";
    const REG: &str = "https://as.example/reg";

    fn redirect() -> Url {
        Url::parse("http://127.0.0.1/callback").expect("url")
    }

    /// Registered once as a native public client, then reused from the keychain.
    #[tokio::test]
    async fn registers_once_and_reuses_the_kept_client() {
        let fake = Arc::new(FakeHttp::default());
        fake.route(
            REG,
            201,
            &[],
            r#"{"client_id":"dyn-1","client_id_issued_at":1}"#,
        );
        let vault = Vault::new(Arc::new(MemoryStore::new(200)), Duration::from_secs(5));
        let http = fake.client();
        let first = client_for(&vault, &http, (AS, REG), &redirect(), "Acme", now())
            .await
            .expect("registered");
        assert_eq!(first.client_id, "dyn-1");
        assert_eq!(first.client_secret, None);
        let again = client_for(&vault, &http, (AS, REG), &redirect(), "Acme", now())
            .await
            .expect("kept");
        assert_eq!(again, first);
        assert_eq!(fake.seen(), [REG], "one registration request");
        let sent: serde_json::Value =
            serde_json::from_slice(&fake.bodies()[0]).expect("a JSON request");
        assert_eq!(sent["application_type"], "native");
        assert_eq!(sent["token_endpoint_auth_method"], "none");
        assert_eq!(sent["redirect_uris"][0], "http://127.0.0.1/callback");
        assert_eq!(sent["grant_types"][1], "refresh_token");
        assert_eq!(sent["client_name"], "Acme");
    }

    /// Another redirect is another registration; an expired client secret registers again.
    #[tokio::test]
    async fn another_redirect_or_an_expired_secret_registers_again() {
        let fake = Arc::new(FakeHttp::default());
        let expires = now().timestamp() + 60;
        fake.route(
            REG,
            201,
            &[],
            &format!(r#"{{"client_id":"c","client_secret":"s3cret","client_secret_expires_at":{expires}}}"#),
        );
        let vault = Vault::new(Arc::new(MemoryStore::new(200)), Duration::from_secs(5));
        let http = fake.client();
        let got = client_for(&vault, &http, (AS, REG), &redirect(), "A", now())
            .await
            .expect("registered");
        assert_eq!(got.client_secret.as_deref(), Some("s3cret"));
        assert!(!format!("{got:?}").contains("s3cret"), "{got:?}");
        let scheme = Url::parse("com.example.app:/callback").expect("url");
        client_for(&vault, &http, (AS, REG), &scheme, "A", now())
            .await
            .expect("second");
        let later = now() + chrono::Duration::seconds(120);
        client_for(&vault, &http, (AS, REG), &redirect(), "A", later)
            .await
            .expect("third");
        assert_eq!(fake.seen().len(), 3);
    }

    /// §3.2.2: a refusal names the server's error code.
    #[tokio::test]
    async fn a_refused_registration_names_the_servers_error() {
        let fake = Arc::new(FakeHttp::default());
        fake.route(
            REG,
            400,
            &[],
            r#"{"error":"invalid_redirect_uri","error_description":"loopback not allowed"}"#,
        );
        let vault = Vault::new(Arc::new(MemoryStore::new(200)), Duration::from_secs(5));
        let e = client_for(&vault, &fake.client(), (AS, REG), &redirect(), "A", now())
            .await
            .expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::ProviderError);
        assert!(e.message().contains("`invalid_redirect_uri`"), "{e}");
        fake.route(REG, 201, &[], r#"{"client_id":"\u001b[2J"}"#);
        let e = client_for(&vault, &fake.client(), (AS, REG), &redirect(), "A", now())
            .await
            .expect_err("control characters");
        assert_eq!(e.kind(), ErrorKind::ProviderInvalid);
    }
}
