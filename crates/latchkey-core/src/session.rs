//! What a signed-in account is: the stored [`Session`] (token-bearing, keychain only) and the
//! [`Identity`] view of it (no tokens, safe for the UI, the CLI's JSON and logs).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// An access token. `Debug` is redacted; get the value with [`AccessToken::secret`].
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl From<String> for AccessToken {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

/// The session as stored in the keychain. Never leaves the core.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Session {
    pub v: u32,
    pub issuer: String,
    pub client_id: String,
    pub profile: String,
    pub access_token: String,
    pub expires_at: DateTime<Utc>,
    /// When the current access token was obtained; sizes the expiry margin.
    #[serde(default)]
    pub issued_at: Option<DateTime<Utc>>,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub requested_scopes: Vec<String>,
    pub granted_scopes: Vec<String>,
    pub claims: Claims,
    pub signed_in_at: DateTime<Utc>,
}

/// Identity claims kept for display and for the OIDC Core §12.2 checks after a refresh.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub sub: String,
    pub aud: Vec<String>,
    pub azp: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub picture: Option<String>,
    pub preferred_username: Option<String>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("profile", &self.profile)
            .field("access_token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .field("granted_scopes", &self.granted_scopes)
            .field("claims", &self.claims)
            .finish()
    }
}

/// An access token this close to expiry is treated as expired, so it is not sent and then
/// rejected in flight. Short-lived tokens use a quarter of their lifetime instead.
pub const EXPIRY_MARGIN: Duration = Duration::seconds(30);

impl Session {
    pub(crate) fn refresh_margin(&self) -> Duration {
        match self.issued_at {
            Some(issued) => EXPIRY_MARGIN.min((self.expires_at - issued) / 4),
            None => EXPIRY_MARGIN,
        }
    }

    pub(crate) fn access_token_valid(&self, now: DateTime<Utc>) -> bool {
        now + self.refresh_margin() < self.expires_at
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain strings and numbers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    pub(crate) fn identity(&self) -> Identity {
        Identity {
            issuer: self.issuer.clone(),
            subject: self.claims.sub.clone(),
            name: self.claims.name.clone(),
            email: self.claims.email.clone(),
            email_verified: self.claims.email_verified,
            picture: self.claims.picture.clone(),
            preferred_username: self.claims.preferred_username.clone(),
            profile: self.profile.clone(),
            scopes: self.granted_scopes.clone(),
            requested_scopes: self.requested_scopes.clone(),
            expires_at: self.expires_at,
            refresh_at: self.expires_at - self.refresh_margin(),
            refreshable: self.refresh_token.is_some(),
            access_token_claims: AccessTokenClaims::peek(&self.access_token),
        }
    }
}

/// Who is signed in and what was granted. Contains no token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub picture: Option<String>,
    pub preferred_username: Option<String>,
    pub profile: String,
    /// The scopes actually granted (RFC 6749 §5.1: the requested ones when the response omits
    /// `scope`).
    pub scopes: Vec<String>,
    pub requested_scopes: Vec<String>,
    /// When the current access token expires (RFC 3339 in JSON).
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
    /// When a refresh is due: a UI schedules its silent refresh for this moment.
    #[serde(skip)]
    pub refresh_at: DateTime<Utc>,
    /// Whether a refresh token is held, so the session renews without a browser.
    pub refreshable: bool,
    /// Authorization claims read from a JWT access token, for display only.
    pub access_token_claims: Option<AccessTokenClaims>,
}

impl Identity {
    /// Scopes that were asked for but not granted.
    pub fn denied_scopes(&self) -> Vec<String> {
        self.requested_scopes
            .iter()
            .filter(|s| !self.scopes.contains(s))
            .cloned()
            .collect()
    }
}

fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// The payload of a JWT, decoded **without verification**: only for display, and for an access
/// token's `exp` when the token response omits `expires_in`.
pub(crate) fn jwt_payload(token: &str) -> Option<serde_json::Value> {
    use base64::Engine as _;
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A short, stable, file- and keychain-safe name for `text`: hex of the first `bytes` of its
/// SHA-256.
pub(crate) fn short_hash(text: &str, bytes: usize) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())[..bytes]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Roles, groups and permissions a JWT access token claims. **Informational**: a client must not
/// validate or rely on access tokens (they are meant for the resource server), so these are
/// decoded without verification and only ever displayed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AccessTokenClaims {
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub permissions: Vec<String>,
    pub scp: Vec<String>,
    pub scope: Vec<String>,
}

impl AccessTokenClaims {
    /// Reads the claims of a JWT access token. Opaque tokens, and JWTs with none of the claims,
    /// give `None`.
    pub(crate) fn peek(token: &str) -> Option<Self> {
        let value = jwt_payload(token)?;
        let list = |key: &str| -> Vec<String> {
            match value.get(key) {
                Some(serde_json::Value::String(s)) => s
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
                Some(serde_json::Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            }
        };
        let claims = Self {
            roles: list("roles"),
            groups: list("groups"),
            permissions: list("permissions"),
            scp: list("scp"),
            scope: list("scope"),
        };
        (claims != Self::default()).then_some(claims)
    }
}

/// Scope descriptions: built in for the OIDC standard scopes (OIDC Core §5.4, §11), extendable by
/// configuration for custom ones.
pub fn describe_scope(scope: &str, custom: &BTreeMap<String, String>) -> Option<String> {
    if let Some(d) = custom.get(scope) {
        return Some(d.clone());
    }
    let builtin = match scope {
        "openid" => "Sign you in and confirm who you are",
        "profile" => "See your name, picture and basic profile",
        "email" => "See your email address",
        "address" => "See your postal address",
        "phone" => "See your phone number",
        "offline_access" => "Stay signed in when you are not using the app",
        _ => return None,
    };
    Some(builtin.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            v: 1,
            issuer: "https://id.example".into(),
            client_id: "app".into(),
            profile: "default".into(),
            access_token: "AT-SECRET-VALUE".into(),
            expires_at: DateTime::from_timestamp(2_000_000_000, 0).expect("ts"),
            issued_at: None,
            refresh_token: Some("RT-SECRET-VALUE".into()),
            id_token: Some("ID-SECRET-VALUE".into()),
            requested_scopes: vec!["openid".into(), "email".into(), "api:read".into()],
            granted_scopes: vec!["openid".into(), "email".into()],
            claims: Claims {
                sub: "alice".into(),
                ..Default::default()
            },
            signed_in_at: DateTime::from_timestamp(1_999_999_000, 0).expect("ts"),
        }
    }

    #[test]
    fn debug_and_identity_never_show_tokens() {
        let s = session();
        let debug = format!("{s:?}");
        let identity = serde_json::to_string(&s.identity()).expect("json");
        for secret in ["AT-SECRET-VALUE", "RT-SECRET-VALUE", "ID-SECRET-VALUE"] {
            assert!(!debug.contains(secret), "{debug}");
            assert!(!identity.contains(secret), "{identity}");
        }
        assert!(
            identity.contains("\"expires_at\":\"2033-05-18T03:33:20Z\""),
            "{identity}"
        );
    }

    #[test]
    fn denied_scopes_are_requested_minus_granted() {
        assert_eq!(session().identity().denied_scopes(), ["api:read"]);
    }

    #[test]
    fn expiry_margin_applies() {
        let s = session();
        assert!(s.access_token_valid(s.expires_at - Duration::seconds(31)));
        assert!(!s.access_token_valid(s.expires_at - Duration::seconds(29)));
    }

    #[test]
    fn short_lived_tokens_use_a_quarter_of_their_lifetime() {
        let mut s = session();
        s.issued_at = Some(s.expires_at - Duration::seconds(8));
        assert!(s.access_token_valid(s.expires_at - Duration::seconds(3)));
        assert!(!s.access_token_valid(s.expires_at - Duration::seconds(1)));
    }

    #[test]
    fn jwt_access_token_claims_are_read_for_display() {
        use base64::Engine as _;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"roles":["admin"],"scope":"api:read api:write","groups":"staff"}"#);
        let c = AccessTokenClaims::peek(&format!("e30.{payload}.sig")).expect("claims");
        assert_eq!(c.roles, ["admin"]);
        assert_eq!(c.scope, ["api:read", "api:write"]);
        assert_eq!(c.groups, ["staff"]);
        assert_eq!(AccessTokenClaims::peek("opaque-token"), None);
        assert_eq!(AccessTokenClaims::peek("a.b.c"), None);
    }

    #[test]
    fn scope_descriptions() {
        let mut custom = BTreeMap::new();
        custom.insert("api:read".to_string(), "Read your data".to_string());
        assert_eq!(
            describe_scope("api:read", &custom).as_deref(),
            Some("Read your data")
        );
        assert!(describe_scope("email", &custom).is_some());
        assert_eq!(describe_scope("unknown", &custom), None);
    }
}
