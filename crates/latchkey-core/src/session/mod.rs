//! What a signed-in account is: the stored [`Session`] (token-bearing, keychain only) and the
//! [`Identity`] view of it (no tokens, safe for the UI, the CLI's JSON and logs).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

pub(crate) mod build;
pub(crate) mod cache;
pub(crate) mod logout;
pub(crate) mod picture_cache;
pub(crate) mod profile;
pub(crate) mod refresh;
pub(crate) mod repo;
pub(crate) mod tokens;

use crate::config::FlowChoice;
use crate::discovery::Endpoints;
use crate::grants::{GrantSource, Grants};
use crate::picture::Picture;
use crate::util::jwt_payload;

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
    /// Where this session's tokens may be sent, as discovery said when it was signed in. `None`
    /// in sessions stored before it was recorded (the next refresh records it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
    /// The flow that signed this session in (`code`, `hybrid`, `implicit`, `device`); sessions
    /// stored before it was recorded were all `code`.
    #[serde(default)]
    pub flow: FlowChoice,
    /// The access token's type as the provider said (`Bearer`, `DPoP`); `None` for a token that
    /// came without one (implicit).
    #[serde(default)]
    pub token_type: Option<String>,
    /// The JWK thumbprint (RFC 7638) of the DPoP key the tokens are bound to (RFC 9449).
    #[serde(default)]
    pub dpop_jkt: Option<String>,
    /// The DPoP key itself (RFC 9449), for the proofs of refreshes and resource calls: kept
    /// here, in the keychain entry, and nowhere else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_key: Option<crate::dpop::DpopKey>,
    /// Whether the sign-in pushed its authorization request (RFC 9126).
    #[serde(default)]
    pub par: bool,
    /// The user's picture as last fetched, so a start-up shows it without waiting for the
    /// network. Kept only while it is the one the claims name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<CachedPicture>,
    /// The last refresh came back without an ID token (OIDC Core §12.2 allows it): asking for a
    /// fresh ID token by refreshing again would only rotate tokens for nothing, so until the
    /// next sign-in an expired ID token means "sign in again" at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refresh_gives_no_id_token: bool,
}

/// Pictures larger than this are not kept with the session: the keychain entry must stay small
/// (the kernel keyring's default quota is 20000 bytes per user in all).
pub const MAX_CACHED_PICTURE: usize = 64 * 1024;

/// A fetched picture kept in the keychain entry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CachedPicture {
    /// The `picture` claim it was fetched from.
    pub url: String,
    /// The image bytes, base64 (RFC 4648 §4).
    pub data: String,
}

impl CachedPicture {
    pub(crate) fn new(url: &str, picture: &Picture) -> Option<Self> {
        use base64::Engine as _;
        (picture.bytes().len() <= MAX_CACHED_PICTURE).then(|| Self {
            url: url.to_owned(),
            data: base64::engine::general_purpose::STANDARD.encode(picture.bytes()),
        })
    }

    /// The image, checked again like a fetched one (a damaged entry gives `None`).
    pub(crate) fn picture(&self) -> Option<Picture> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.data)
            .ok()?;
        Picture::from_bytes(bytes)
    }
}

impl fmt::Debug for CachedPicture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedPicture")
            .field("url", &self.url)
            .field("base64_len", &self.data.len())
            .finish()
    }
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
    /// Roles, groups, ... from the last userinfo response (the tokens' own are read from them).
    #[serde(default, skip_serializing_if = "Grants::is_empty")]
    pub userinfo_grants: Grants,
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
            .field("endpoints", &self.endpoints)
            .field("picture", &self.picture)
            .field("token_type", &self.token_type)
            .field("dpop_jkt", &self.dpop_jkt)
            .field("dpop_key", &self.dpop_key.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// An access token this close to expiry is treated as expired, so it is not sent and then
/// rejected in flight. Short-lived tokens use a quarter of their lifetime instead.
pub const EXPIRY_MARGIN: Duration = Duration::seconds(30);

/// An access token the provider issued already expired (`expires_in: 0`, a JWT `exp` already
/// past: less than [`MIN_USABLE_LIFETIME`] to live) counts as valid for this long after
/// `issued_at`, so such a provider gets at most one refresh per interval instead of one per
/// `access_token()` call. RFC 6749 §5.1 leaves the lifetime entirely to the provider.
///
/// Tokens with a real lifetime, however short, are still refreshed once due: handing out a
/// token known to be expired for up to 10 s would only move the failure to the resource
/// server, and their refresh rate is bounded by their lifetime anyway.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::seconds(10);

/// A token issued with less than this to live is treated as issued expired.
pub const MIN_USABLE_LIFETIME: Duration = Duration::seconds(1);

impl Session {
    pub(crate) fn refresh_margin(&self) -> Duration {
        let Some(issued) = self.issued_at else {
            return EXPIRY_MARGIN;
        };
        // In milliseconds with saturating math: a damaged keychain entry may hold any dates, and
        // chrono's `DateTime - DateTime` panics when the difference overflows.
        let lifetime = self
            .expires_at
            .timestamp_millis()
            .saturating_sub(issued.timestamp_millis());
        Duration::milliseconds((lifetime / 4).clamp(0, EXPIRY_MARGIN.num_milliseconds()))
    }

    pub(crate) fn access_token_valid(&self, now: DateTime<Utc>) -> bool {
        (self.issued_expired() && self.within_refresh_floor(now))
            || now
                .checked_add_signed(self.refresh_margin())
                .is_some_and(|t| t < self.expires_at)
    }

    /// Whether `now` is less than [`MIN_REFRESH_INTERVAL`] after the token was issued. Only
    /// forward: a clock set back must not keep a token "fresh" for as long as it jumped.
    fn within_refresh_floor(&self, now: DateTime<Utc>) -> bool {
        self.issued_at.is_some_and(|issued| {
            issued <= now
                && issued
                    .checked_add_signed(MIN_REFRESH_INTERVAL)
                    .is_some_and(|until| now < until)
        })
    }

    /// The provider issued this access token already expired (`expires_in: 0`, a past `exp`).
    pub(crate) fn issued_expired(&self) -> bool {
        self.issued_at.is_some_and(|issued| {
            self.expires_at
                .timestamp_millis()
                .saturating_sub(issued.timestamp_millis())
                < MIN_USABLE_LIFETIME.num_milliseconds()
        })
    }

    /// When a refresh is due, matching [`access_token_valid`](Self::access_token_valid) so a UI
    /// that schedules its refresh for this moment does not spin: the expiry margin before
    /// `expires_at`, or the end of the refresh floor for a token issued expired.
    fn refresh_at(&self) -> DateTime<Utc> {
        let due = self
            .expires_at
            .checked_sub_signed(self.refresh_margin())
            .unwrap_or(self.expires_at);
        match self
            .issued_at
            .filter(|_| self.issued_expired())
            .and_then(|i| i.checked_add_signed(MIN_REFRESH_INTERVAL))
        {
            Some(floor) => due.max(floor),
            None => due,
        }
    }

    /// Forgets a cached picture the claims no longer name.
    pub(crate) fn drop_stale_picture(&mut self) {
        if self
            .picture
            .as_ref()
            .is_some_and(|p| Some(&p.url) != self.claims.picture.as_ref())
        {
            self.picture = None;
        }
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
            refresh_at: self.refresh_at(),
            refreshable: self.refresh_token.is_some(),
            access_token_claims: AccessTokenClaims::peek(&self.access_token),
            grants: self.grants(),
            store: None,
            flow: self.flow.as_str().into(),
            token_type: self.token_type.clone(),
            dpop_jkt: self.dpop_jkt.clone(),
            par: self.par,
        }
    }

    /// The grants of the ID token (verified when received), of the access token when it is a
    /// JWT (informational), and of the last userinfo response.
    fn grants(&self) -> Grants {
        let from_jwt = |token: Option<&str>, source| {
            token
                .and_then(jwt_payload)
                .map(|payload| Grants::read(&payload, source))
                .unwrap_or_default()
        };
        Grants::merge([
            from_jwt(self.id_token.as_deref(), GrantSource::IdToken),
            from_jwt(Some(&self.access_token), GrantSource::AccessToken),
            self.claims.userinfo_grants.clone(),
        ])
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
    /// Authorization claims read from a JWT access token, for display only. Superseded by
    /// [`grants`](Self::grants), which also reads the ID token and userinfo and knows more
    /// shapes; kept for existing callers.
    pub access_token_claims: Option<AccessTokenClaims>,
    /// Roles, groups, permissions, scopes, directory roles and entitlements from the ID token,
    /// a JWT access token (decoded without verification: informational only) and userinfo, each
    /// with its source and claim.
    pub grants: Grants,
    /// Which keychain holds the session (`secret-service`, `kernel-keyring`, ...), once known.
    pub store: Option<&'static str>,
    /// The flow that signed in: `code`, `hybrid`, `implicit` or `device`.
    pub flow: String,
    /// `Bearer`, `DPoP`, or `None` when the token came without a type (implicit).
    pub token_type: Option<String>,
    /// The DPoP key's thumbprint (RFC 9449 §6.1) when the tokens are bound to one.
    pub dpop_jkt: Option<String>,
    /// Whether the sign-in used a pushed authorization request (RFC 9126).
    pub par: bool,
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

/// Roles, groups and permissions a JWT access token claims (top-level claims only; see
/// [`Identity::grants`] for every source and shape). **Informational**: a client must not
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
            endpoints: None,
            flow: FlowChoice::Code,
            token_type: Some("Bearer".into()),
            dpop_jkt: None,
            dpop_key: None,
            par: false,
            picture: None,
            refresh_gives_no_id_token: false,
        }
    }

    #[test]
    fn sessions_stored_before_endpoints_were_recorded_still_read() {
        let mut json = serde_json::to_value(session()).expect("json");
        assert!(json.get("endpoints").is_none(), "not written when unknown");
        json.as_object_mut().expect("object").remove("endpoints");
        let old = Session::from_bytes(json.to_string().as_bytes()).expect("an old session");
        assert!(old.endpoints.is_none());
        let mut s = session();
        s.endpoints = Some(Endpoints {
            token: "https://id.example/token".into(),
            revocation: None,
            end_session: Some("https://id.example/logout".into()),
            userinfo: None,
        });
        let back = Session::from_bytes(&s.to_bytes()).expect("round trip");
        assert_eq!(back.endpoints, s.endpoints);
    }

    #[test]
    fn sessions_stored_before_the_flow_was_recorded_read_as_code() {
        let mut json = serde_json::to_value(session()).expect("json");
        let obj = json.as_object_mut().expect("object");
        for k in ["flow", "token_type", "dpop_jkt", "par"] {
            obj.remove(k);
        }
        let old = Session::from_bytes(json.to_string().as_bytes()).expect("an old session");
        let id = serde_json::to_value(old.identity()).expect("identity");
        assert_eq!(id["flow"], "code");
        assert_eq!(id["token_type"], serde_json::Value::Null);
        assert_eq!(id["dpop_jkt"], serde_json::Value::Null);
        assert_eq!(id["par"], false);
        let mut s = session();
        s.flow = FlowChoice::Device;
        s.par = true;
        let stored: serde_json::Value = serde_json::from_slice(&s.to_bytes()).expect("json");
        assert_eq!(stored["flow"], "device", "stored as the config key's value");
        let id = serde_json::to_value(s.identity()).expect("identity");
        assert_eq!((&id["flow"], &id["par"]), (&"device".into(), &true.into()));
        assert_eq!(id["token_type"], "Bearer");
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
        assert_eq!(s.identity().refresh_at, s.expires_at - Duration::seconds(2));
        // The refresh floor is for tokens issued expired only: this one is refreshed once due.
        assert!(!s.access_token_valid(s.expires_at + Duration::milliseconds(300)));
    }

    #[test]
    fn an_already_expired_token_refreshes_at_most_every_ten_seconds() {
        // What valid_session_noting_refresh() does on every access_token() call, with the provider answering
        // each refresh with expires_in: 0 (access_token_expiry gives expires_at = issued_at).
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).expect("ts");
        let mut s = session();
        s.issued_at = Some(t0 - Duration::hours(1));
        s.expires_at = t0 - Duration::hours(1);
        let mut refreshes = Vec::new();
        for step in 0..250 {
            let now = t0 + Duration::milliseconds(step * 100);
            if !s.access_token_valid(now) {
                refreshes.push(step);
                s.issued_at = Some(now);
                s.expires_at = now;
                assert!(s.issued_expired());
            }
        }
        // 25 s of calls every 100 ms: at 0 s, 10 s and 20 s, never more often.
        assert_eq!(refreshes, [0, 100, 200]);
        assert_eq!(s.identity().refresh_at, t0 + Duration::seconds(30));
    }

    #[test]
    fn the_refresh_floor_does_not_follow_a_clock_set_back() {
        let mut s = session();
        let issued = s.expires_at;
        s.issued_at = Some(issued);
        assert!(s.access_token_valid(issued));
        assert!(s.access_token_valid(issued + Duration::milliseconds(9_999)));
        assert!(!s.access_token_valid(issued + Duration::seconds(10)));
        // An exp before issue (a stored session); the clock now reads earlier than issued_at.
        s.expires_at = issued - Duration::hours(1);
        assert!(!s.access_token_valid(issued - Duration::seconds(5)));
    }

    #[test]
    fn extreme_stored_dates_cannot_panic() {
        let mut s = session();
        s.expires_at = DateTime::<Utc>::MIN_UTC;
        s.issued_at = Some(DateTime::<Utc>::MAX_UTC);
        assert!(!s.access_token_valid(DateTime::<Utc>::MAX_UTC));
        let _ = s.identity();
        s.expires_at = DateTime::<Utc>::MAX_UTC;
        s.issued_at = Some(DateTime::<Utc>::MIN_UTC);
        assert!(!s.access_token_valid(DateTime::<Utc>::MAX_UTC));
        let _ = s.identity();
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
