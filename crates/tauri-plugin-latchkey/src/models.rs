//! What the window shows: the view model and its mapping from the core's types.
//!
//! **The webview never receives a token.** Everything here is built from
//! [`latchkey_core::Identity`] (token-free by construction), the configuration and error messages
//! (token-free by the core's contract). The sign-in URL in [`WaitingView`] carries `state` and the
//! PKCE challenge, which are not credentials: the verifier never leaves the core.

use chrono::{DateTime, Local, SecondsFormat, TimeZone, Utc};
use latchkey_core::config::{self, Merged, Source};
use latchkey_core::{Error, ErrorKind, Identity, Remedy, describe_scope};
use serde::Serialize;
use std::collections::BTreeMap;

/// The window's state machine, in the order a first run walks through it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// Reading the configuration and the stored session: a light placeholder.
    #[default]
    Starting,
    /// Not configured: the first-run form.
    Setup,
    SignedOut,
    /// A sign-in is open in the browser.
    Waiting,
    SignedIn,
}

/// Everything the window renders. Sent whole on every change; `seq` orders them.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewModel {
    pub seq: u64,
    pub phase: Phase,
    pub provider: Option<ProviderView>,
    pub setup: Option<SetupView>,
    pub waiting: Option<WaitingView>,
    pub identity: Option<IdentityView>,
    /// Calm, informational: "signed out", "couldn't refresh, will retry".
    pub notice: Option<Notice>,
    /// The one error banner.
    pub error: Option<ErrorView>,
    /// Every signed-in account (the shown one `selected`), for switching in one click.
    pub accounts: Vec<AccountView>,
}

/// One signed-in account in the switcher. No token: a name, initials, the issuer, and what went
/// wrong with this account alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    /// The profile, the name `latchkey --profile <name>` uses.
    pub profile: String,
    pub name: String,
    pub initials: String,
    /// A `data:` URL, for the shown account once its picture arrived.
    pub picture: Option<String>,
    pub issuer: String,
    pub selected: bool,
    pub signed_in: bool,
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderView {
    /// A short name: the issuer's host.
    pub name: String,
    pub issuer: String,
}

impl ProviderView {
    pub fn from_issuer(issuer: &str) -> Self {
        let name = url::Url::parse(issuer)
            .ok()
            .and_then(|u| {
                u.host_str().map(|h| match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_owned(),
                })
            })
            .unwrap_or_else(|| issuer.to_owned());
        Self {
            name,
            issuer: issuer.to_owned(),
        }
    }
}

/// The first-run form.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SetupView {
    pub issuer: FieldView,
    pub client_id: FieldView,
    pub scopes: FieldView,
    /// Where the form saves.
    pub user_file: Option<String>,
    /// When the form adds an account with another provider: the new profile's name.
    pub adding: Option<String>,
    /// How the provider sends the browser back: `scheme` (the app's link) or `loopback` (a
    /// local address, for providers such as Google that refuse app links for desktop clients).
    pub app_redirect: FieldView,
}

/// Whether an issuer is one that refuses private-use schemes for desktop clients (Google's
/// "Desktop app" clients take loopback redirects only), so the form suggests loopback.
pub fn refuses_app_links(issuer: &str) -> bool {
    url::Url::parse(issuer)
        .ok()
        .and_then(|u| u.host_str().map(|h| h == "accounts.google.com"))
        .unwrap_or(false)
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldView {
    pub value: String,
    /// Read-only in the form: the organization manages it, or the environment sets it.
    pub read_only: bool,
    /// Why it is read-only, in plain words.
    pub note: Option<String>,
}

/// The keys the form edits, as `(config key, ...)`.
pub const FORM_KEYS: [&str; 3] = ["issuer", "client_id", "scopes"];

impl SetupView {
    pub fn from_merged(merged: &Merged, user_file: Option<&std::path::Path>) -> Self {
        let field = |key: &str, default: &str| {
            let (value, source) = match merged.text(key) {
                Some((v, s)) => (v, Some(s.clone())),
                None => (default.to_owned(), None),
            };
            let note = if merged.is_locked(key) {
                Some("Managed by your organization".to_owned())
            } else {
                match source {
                    Some(Source::Env(var)) => {
                        Some(format!("Set by the environment variable {var}"))
                    }
                    Some(Source::Flag) => Some("Set on the command line".to_owned()),
                    _ => None,
                }
            };
            FieldView {
                value,
                read_only: note.is_some(),
                note,
            }
        };
        Self {
            issuer: field("issuer", ""),
            client_id: field("client_id", ""),
            scopes: field("scopes", config::DEFAULT_SCOPES),
            user_file: user_file.map(|p| p.display().to_string()),
            adding: None,
            app_redirect: field("app_redirect", "scheme"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitingView {
    /// The authorization request, for "Copy sign-in link". Not a credential.
    pub sign_in_url: String,
    pub expires_at: Moment,
    pub browser_opened: bool,
    /// Why the browser didn't open, when it didn't.
    pub browser_problem: Option<String>,
    /// A redirect arrived and is being redeemed.
    pub finishing: bool,
    /// The sign-in uses the app's link and may switch to a local address ("the provider refused
    /// the redirect").
    pub can_use_loopback: bool,
}

impl WaitingView {
    pub fn new(url: &url::Url, expires_at: DateTime<Utc>) -> Self {
        Self {
            sign_in_url: url.to_string(),
            expires_at: Moment::new(expires_at),
            browser_opened: false,
            browser_problem: None,
            finishing: false,
            can_use_loopback: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeView {
    pub scope: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessClaimsView {
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub permissions: Vec<String>,
}

/// One kind of grant ("Roles", "Groups", ...) with each value and where it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantGroupView {
    pub kind: String,
    pub label: String,
    pub values: Vec<GrantValueView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GrantValueView {
    pub value: String,
    /// A plain name for a well-known value (an Entra directory role's name).
    pub name: Option<String>,
    /// "ID token", "access token" or "userinfo".
    pub source: String,
    /// The claim's path, e.g. `realm_access.roles`.
    pub claim: String,
}

/// Every grant by kind, in the order the core lists kinds; empty kinds left out.
pub fn grant_groups(grants: &latchkey_core::Grants) -> Vec<GrantGroupView> {
    latchkey_core::GrantKind::ALL
        .iter()
        .filter_map(|kind| {
            let values: Vec<GrantValueView> = grants
                .of_kind(*kind)
                .map(|g| GrantValueView {
                    value: g.value.clone(),
                    name: g.name.clone(),
                    source: g.source.label().to_owned(),
                    claim: g.claim.clone(),
                })
                .collect();
            (!values.is_empty()).then(|| GrantGroupView {
                kind: serde_json::to_value(kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                label: kind.label().to_owned(),
                values,
            })
        })
        .collect()
}

/// Who is signed in and what was granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityView {
    pub name: Option<String>,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    /// Only `data:` image URLs, since the CSP allows no remote content: one the provider sent
    /// inline, or the `picture` URL fetched by the core (`AppState` fills it in when it arrives).
    pub picture: Option<String>,
    pub initials: String,
    pub subject: String,
    pub issuer: String,
    pub preferred_username: Option<String>,
    pub profile: String,
    pub granted: Vec<ScopeView>,
    /// Requested but not granted.
    pub not_granted: Vec<ScopeView>,
    /// From a JWT access token; informational only.
    pub access_claims: Option<AccessClaimsView>,
    /// Roles, groups, permissions, scopes, directory roles and entitlements from the ID token,
    /// a JWT access token (informational) and userinfo, each with its source (issue 12).
    pub grants: Vec<GrantGroupView>,
    /// Entra ID left the groups out: "too many groups to list".
    pub groups_overage: bool,
    pub expires_at: Moment,
    pub refreshable: bool,
    /// How the person signed in, in plain words: the flow, PKCE, a pushed request (PAR), a
    /// device-bound token (DPoP, with a short key thumbprint). Issue 7.
    pub obtained: String,
}

/// The Session card's "how you signed in" line.
pub fn obtained(id: &Identity) -> String {
    let mut parts = vec![match id.flow.as_str() {
        "hybrid" => "Signed in through your browser (hybrid flow, with PKCE)".to_owned(),
        "implicit" => "Signed in through your browser (implicit flow with form post: sign-in only, no access token)".to_owned(),
        "device" => "Signed in with a code on another device (device authorization)".to_owned(),
        _ => "Signed in through your browser (authorization code with PKCE)".to_owned(),
    }];
    if id.par {
        parts.push("with a pushed request (PAR)".into());
    }
    if let Some(jkt) = &id.dpop_jkt {
        let short: String = jkt.chars().take(8).collect();
        parts.push(format!("bound to this device (DPoP, key {short}…)"));
    }
    let mut text = parts.join(", ");
    text.push('.');
    text
}

impl IdentityView {
    pub fn new(id: &Identity, descriptions: &BTreeMap<String, String>) -> Self {
        let scope = |s: &String| ScopeView {
            scope: s.clone(),
            description: describe_scope(s, descriptions),
        };
        let access_claims = id.access_token_claims.as_ref().and_then(|c| {
            let v = AccessClaimsView {
                roles: c.roles.clone(),
                groups: c.groups.clone(),
                permissions: c.permissions.clone(),
            };
            (!(v.roles.is_empty() && v.groups.is_empty() && v.permissions.is_empty())).then_some(v)
        });
        Self {
            name: id.name.clone(),
            email: id.email.clone(),
            email_verified: id.email_verified,
            picture: id.picture.clone().filter(|p| is_data_image(p)),
            initials: initials(
                id.name
                    .as_deref()
                    .or(id.email.as_deref())
                    .unwrap_or(&id.subject),
            ),
            subject: id.subject.clone(),
            issuer: id.issuer.clone(),
            preferred_username: id.preferred_username.clone(),
            profile: id.profile.clone(),
            granted: id.scopes.iter().map(scope).collect(),
            not_granted: id.denied_scopes().iter().map(scope).collect(),
            access_claims,
            grants: grant_groups(&id.grants),
            groups_overage: id.grants.groups_overage,
            expires_at: Moment::new(id.expires_at),
            refreshable: id.refreshable,
            obtained: obtained(id),
        }
    }
}

fn is_data_image(p: &str) -> bool {
    let lower = p.get(..16).unwrap_or(p).to_ascii_lowercase();
    lower.starts_with("data:image/")
        && !lower.starts_with("data:image/svg")
        && p.len() <= 256 * 1024
}

/// Up to two letters for the avatar.
pub fn initials(name: &str) -> String {
    let words: Vec<&str> = name
        .split(|c: char| c.is_whitespace() || c == '@' || c == '.')
        .filter(|w| w.chars().next().is_some_and(char::is_alphanumeric))
        .collect();
    let first = |w: &str| {
        w.chars()
            .next()
            .map(|c| c.to_uppercase().collect::<String>())
            .unwrap_or_default()
    };
    match words.as_slice() {
        [] => "?".into(),
        [one] => first(one),
        [a, .., b] if name.contains(char::is_whitespace) => first(a) + &first(b),
        [a, ..] => first(a),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    pub kind: NoticeKind,
    pub message: String,
    /// The technical cause, when there is one.
    pub detail: Option<String>,
    /// For `refreshRetry`: when the next attempt is due.
    pub retry_at: Option<Moment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum NoticeKind {
    Info,
    /// Signed in, but the last refresh failed; a retry is scheduled.
    RefreshRetry,
}

impl Notice {
    pub fn info(message: impl Into<String>) -> Self {
        Self {
            kind: NoticeKind::Info,
            message: message.into(),
            detail: None,
            retry_at: None,
        }
    }
}

/// What the banner's retry button does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RetryAction {
    /// Start a sign-in again.
    SignIn,
    /// Read the configuration and the stored session again.
    Startup,
    /// Refresh the session now.
    Refresh,
}

/// The error banner: the cause in plain words, the provider's own description where there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorView {
    /// `ErrorKind` in snake_case, for the UI to switch on.
    pub kind: String,
    pub title: String,
    pub message: String,
    /// The provider's `error_description`.
    pub description: Option<String>,
    pub retry: Option<RetryAction>,
}

impl ErrorView {
    pub fn from_error(e: &Error, retry: Option<RetryAction>) -> Self {
        Self {
            kind: kind_name(e.kind()),
            title: title(e.kind()).to_owned(),
            message: app_message(e),
            description: e.description().map(str::to_owned),
            retry,
        }
    }
}

pub fn kind_name(kind: ErrorKind) -> String {
    match serde_json::to_value(kind) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "internal".into(),
    }
}

/// The banner's headline for each kind of failure.
pub fn title(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Config => "The configuration is invalid",
        ErrorKind::ProviderUnreachable => "Can't reach the sign-in provider",
        ErrorKind::ProviderInvalid => "The sign-in provider's answer was not accepted",
        ErrorKind::ProviderError => "The sign-in provider reported a problem",
        ErrorKind::AccessDenied => "Sign-in was declined",
        ErrorKind::ForeignCallback => "A sign-in link was ignored",
        ErrorKind::TimedOut => "The sign-in took too long",
        ErrorKind::Cancelled => "Sign-in cancelled",
        ErrorKind::NotSignedIn => "You are signed out",
        ErrorKind::SessionExpired => "Your session has ended",
        ErrorKind::Keychain => "The system keychain is not available",
        ErrorKind::Browser => "The browser could not be opened",
        _ => "Something went wrong",
    }
}

/// The core's message, capitalized, with what to do in a window's words (the core leaves the
/// remedy to each front end).
pub fn app_message(e: &Error) -> String {
    let m = match e.remedy() {
        Some(Remedy::SignIn) => format!("{}; please sign in again", e.message()),
        Some(Remedy::SignOutAndIn) => format!("{}; sign out and sign in again", e.message()),
        _ => e.message().to_owned(),
    };
    let mut chars = m.chars();
    let mut m = match chars.next() {
        Some(c) => c.to_uppercase().collect::<String>() + chars.as_str(),
        None => return m,
    };
    if !m.ends_with(['.', '!', '?', ')']) {
        m.push('.');
    }
    m
}

/// A time for the window: RFC 3339 for scripts and tests, and the local wall-clock text to show,
/// 24-hour, with the date (ISO 8601) when it is not today. Formatted here rather than in the page:
/// JavaScript's local-time functions make WebKit load ICU's time-zone and locale data into the web
/// process, about 2 MB PSS (`tests/bench/app.sh`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Moment {
    pub at: String,
    pub text: String,
}

impl Moment {
    pub fn new(t: DateTime<Utc>) -> Self {
        Self::in_zone(t, Utc::now(), &Local)
    }

    fn in_zone<Tz: TimeZone>(t: DateTime<Utc>, now: DateTime<Utc>, zone: &Tz) -> Self
    where
        Tz::Offset: std::fmt::Display,
    {
        let local = t.with_timezone(zone);
        let format = if local.date_naive() == now.with_timezone(zone).date_naive() {
            "%H:%M:%S"
        } else {
            "%Y-%m-%d %H:%M:%S"
        };
        Self {
            at: t.to_rfc3339_opts(SecondsFormat::Secs, true),
            text: local.format(format).to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_are_local_wall_clock_with_the_date_when_not_today() {
        let utc = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc));
        let (Ok(now), Ok(t)) = (utc("2026-11-22T22:30:00Z"), utc("2026-11-22T23:15:09Z")) else {
            panic!("bad test times");
        };
        let east = chrono::FixedOffset::east_opt(2 * 3600).expect("offset");
        let m = Moment::in_zone(t, now, &Utc);
        assert_eq!(m.at, "2026-11-22T23:15:09Z");
        assert_eq!(m.text, "23:15:09");
        // Two hours east, both fall on the 23rd: still the same day.
        assert_eq!(Moment::in_zone(t, now, &east).text, "01:15:09");
        // An hour later: the next day in UTC, the same day in the east.
        let later = t + chrono::Duration::hours(1);
        assert_eq!(
            Moment::in_zone(later, now, &Utc).text,
            "2026-11-23 00:15:09"
        );
        assert_eq!(Moment::in_zone(later, now, &east).text, "02:15:09");
    }

    #[test]
    fn initials_of_names_and_emails() {
        assert_eq!(initials("Alice Example"), "AE");
        assert_eq!(initials("alice@example.com"), "A");
        assert_eq!(initials("Bob"), "B");
        assert_eq!(initials("  "), "?");
        assert_eq!(initials("Jean-Luc de la Tour"), "JT");
    }

    #[test]
    fn only_raster_data_pictures_are_passed_on() {
        assert!(is_data_image("data:image/png;base64,AAAA"));
        assert!(!is_data_image("https://cdn.example/p.png"));
        assert!(!is_data_image("data:image/svg+xml,<svg onload=alert(1)>"));
        assert!(!is_data_image("javascript:alert(1)"));
    }

    #[test]
    fn provider_name_is_the_issuer_host() {
        assert_eq!(
            ProviderView::from_issuer("https://id.example.com/tenant").name,
            "id.example.com"
        );
        assert_eq!(
            ProviderView::from_issuer("http://127.0.0.1:4000").name,
            "127.0.0.1:4000"
        );
    }

    #[test]
    fn every_kind_has_a_title_and_a_stable_name() {
        for (kind, name) in [
            (ErrorKind::ProviderUnreachable, "provider_unreachable"),
            (ErrorKind::AccessDenied, "access_denied"),
            (ErrorKind::Keychain, "keychain"),
            (ErrorKind::ForeignCallback, "foreign_callback"),
            (ErrorKind::Config, "config"),
            (ErrorKind::SessionExpired, "session_expired"),
        ] {
            assert_eq!(kind_name(kind), name);
            assert_ne!(title(kind), "Something went wrong");
        }
    }
}
