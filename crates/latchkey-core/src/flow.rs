//! Sign-ins in flight and the authorization response (RFC 6749 §4.1.2).
//!
//! [`Pending`] holds the secrets of one sign-in this process started: `state` and `nonce`, and
//! per flow ([`Awaiting`]) the PKCE verifier and DPoP key that redeem its code. A redirect is
//! accepted only by [`PendingSet::take`], which finds its sign-in by `state` in constant time,
//! checks that the response came the way the request asked (`response_mode`: query, fragment or
//! form POST), removes it (single use), and checks its deadline. Anything else is a
//! [`ErrorKind::ForeignCallback`] and never reaches the token endpoint.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use openidconnect::{CsrfToken, Nonce, PkceCodeVerifier};
use subtle::ConstantTimeEq;
use url::Url;

use crate::error::{Error, ErrorKind, Result};

/// How the authorization response travels back (OAuth 2.0 Multiple Response Type Encoding
/// Practices §2.1, OAuth 2.0 Form Post Response Mode §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseMode {
    /// In the redirect URI's query: the code flow's default.
    Query,
    /// In the fragment: the hybrid flow's default, used on the app's custom scheme.
    Fragment,
    /// An `application/x-www-form-urlencoded` POST to the redirect URI: the loopback listener's.
    FormPost,
}

impl ResponseMode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ResponseMode::Query => "query",
            ResponseMode::Fragment => "fragment",
            ResponseMode::FormPost => "form_post",
        }
    }

    fn described(self) -> &'static str {
        match self {
            ResponseMode::Query => "a link with a query",
            ResponseMode::Fragment => "a link with a fragment",
            ResponseMode::FormPost => "a form POST",
        }
    }
}

/// The authorization response's parameters.
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    /// The front-channel ID token of the hybrid and implicit flows (OIDC Core §3.3.2.5, §3.2.2.5).
    pub id_token: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl std::fmt::Debug for CallbackParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackParams")
            .field("code", &self.code.as_ref().map(|_| "[redacted]"))
            .field("state", &self.state.as_ref().map(|_| "[redacted]"))
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .field("iss", &self.iss)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

fn foreign(message: &str) -> Error {
    Error::new(ErrorKind::ForeignCallback, message)
}

/// The longest response accepted, in a link or a form body: an ID token is a few KiB.
pub(crate) const MAX_RESPONSE: usize = 16 * 1024;

/// Reads the response parameters from `pairs`. Repeated parameters are rejected (RFC 6749 §3.1:
/// parameters MUST NOT be included more than once). `None`: none of them is there.
fn read_params<'a>(
    pairs: impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
) -> Result<Option<CallbackParams>> {
    let mut p = CallbackParams::default();
    let mut any = false;
    for (k, v) in pairs {
        let slot = match k.as_ref() {
            "code" => &mut p.code,
            "state" => &mut p.state,
            "id_token" => &mut p.id_token,
            "iss" => &mut p.iss,
            "error" => &mut p.error,
            "error_description" => &mut p.error_description,
            _ => continue,
        };
        if slot.is_some() {
            return Err(foreign(
                "the sign-in response repeats a parameter, so it was not accepted; please sign in again",
            ));
        }
        *slot = Some(v.into_owned());
        any = true;
    }
    Ok(any.then_some(p))
}

/// Parses a redirect URL: the response in its query, or in its fragment (the hybrid flow on a
/// custom scheme). A response in both is refused, as is anything that isn't a URL.
pub(crate) fn parse_callback(url: &str) -> Result<(Url, CallbackParams, ResponseMode)> {
    if url.len() > MAX_RESPONSE {
        return Err(foreign(
            "the sign-in link is too long to be genuine; please sign in again",
        ));
    }
    let url = Url::parse(url.trim())
        .map_err(|_| foreign("the sign-in link is malformed; please sign in again"))?;
    let query = read_params(url.query_pairs())?;
    let fragment = match url.fragment() {
        Some(f) => read_params(url::form_urlencoded::parse(f.as_bytes()))?,
        None => None,
    };
    let (params, mode) = match (query, fragment) {
        (Some(_), Some(_)) => {
            return Err(foreign(
                "the sign-in link carries a response in both its query and its fragment, so it was not accepted; please sign in again",
            ));
        }
        (None, Some(p)) => (p, ResponseMode::Fragment),
        (q, None) => (q.unwrap_or_default(), ResponseMode::Query),
    };
    Ok((url, params, mode))
}

/// Parses a form-post response (Form Post Response Mode §2): the parameters in the body the
/// browser POSTed to `url`, which itself must carry none.
pub(crate) fn parse_form_post(url: &str, body: &str) -> Result<(Url, CallbackParams)> {
    let (url, in_url, _) = parse_callback(url)?;
    if in_url != CallbackParams::default() {
        return Err(foreign(
            "the sign-in form was posted to a link that carries a response too, so it was not accepted; please sign in again",
        ));
    }
    if body.len() > MAX_RESPONSE {
        return Err(foreign(
            "the sign-in form is too long to be genuine; please sign in again",
        ));
    }
    let params = read_params(url::form_urlencoded::parse(body.as_bytes()))?.unwrap_or_default();
    Ok((url, params))
}

/// Whether a redirect arrived at the redirect URI the sign-in used (ignoring the query).
pub(crate) fn same_endpoint(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path() == b.path()
}

/// One sign-in this process started: the request as sent, and what its response must carry.
#[derive(Debug)]
pub(crate) struct Pending {
    pub sent: Sent,
    pub awaiting: Awaiting,
}

/// What the response must carry, per flow, with what this sign-in keeps to use it.
pub(crate) enum Awaiting {
    /// A code (RFC 6749 §4.1.2), redeemed with the PKCE verifier.
    Code(Redemption),
    /// A code and an ID token in the front channel (OIDC Core §3.3.2.5).
    Hybrid(Redemption),
    /// An ID token alone (OIDC Core §3.2.2.5): no code, so no verifier and no DPoP key.
    Implicit,
}

impl std::fmt::Debug for Awaiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Code(_) => "Code",
            Self::Hybrid(_) => "Hybrid",
            Self::Implicit => "Implicit",
        })
    }
}

/// What redeems a code: the PKCE verifier (RFC 7636 §4.5) and the DPoP key the request named
/// (`dpop_jkt`, RFC 9449 §10).
pub(crate) struct Redemption {
    pub verifier: PkceCodeVerifier,
    pub dpop: Option<crate::dpop::DpopKey>,
}

/// The authorization request as sent, for matching and checking its response.
pub(crate) struct Sent {
    pub state: CsrfToken,
    pub nonce: Nonce,
    pub redirect_uri: Url,
    pub expires_at: DateTime<Utc>,
    /// The URL the browser opens, and for a pushed request what it takes to push it again.
    pub opened: Opened,
    /// How the response must arrive.
    pub mode: ResponseMode,
    /// The provider's metadata as fetched from the issuer for this sign-in: its endpoints, not
    /// the on-disk cache's (which any process of this user can rewrite), get the code and
    /// everything after it, and are bound into the session.
    pub provider: std::sync::Arc<crate::discovery::Provider>,
}

impl Sent {
    /// Whether the request was pushed (RFC 9126), recorded with the session.
    pub(crate) fn par(&self) -> bool {
        self.opened.push.is_some()
    }
}

impl std::fmt::Debug for Sent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sent")
            .field("redirect_uri", &self.redirect_uri.as_str())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The URL a sign-in's browser opens. A pushed request's `request_uri` expires (RFC 9126 §2.2
/// `expires_in`), so the request as built and the endpoint it went to are kept: opening the
/// page again after that pushes it anew (same state, nonce and PKCE challenge).
#[derive(Debug, Clone)]
pub(crate) struct Opened {
    pub url: Url,
    pub push: Option<Push>,
}

#[derive(Debug, Clone)]
pub(crate) struct Push {
    pub endpoint: String,
    /// The authorization request before its parameters moved to the back channel.
    pub request: Url,
    pub expires_at: Option<DateTime<Utc>>,
}

/// At most this many sign-ins wait at once; starting another drops the oldest.
const MAX_PENDING: usize = 4;

#[derive(Debug, Default)]
pub(crate) struct PendingSet {
    entries: Mutex<Vec<Pending>>,
}

impl PendingSet {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn insert(&self, p: Pending, now: DateTime<Utc>) {
        let mut entries = self.lock();
        entries.retain(|e| e.sent.expires_at > now);
        if entries.len() >= MAX_PENDING {
            entries.remove(0);
        }
        entries.push(p);
    }

    pub(crate) fn clear(&self) -> usize {
        let mut entries = self.lock();
        let n = entries.len();
        entries.clear();
        n
    }

    pub(crate) fn is_waiting(&self, now: DateTime<Utc>) -> bool {
        self.lock().iter().any(|e| e.sent.expires_at > now)
    }

    /// The waiting sign-in whose browser opened `url`: how it was opened, and its provider.
    pub(crate) fn opened(
        &self,
        url: &Url,
        now: DateTime<Utc>,
    ) -> Option<(Opened, std::sync::Arc<crate::discovery::Provider>)> {
        self.lock()
            .iter()
            .find(|e| e.sent.expires_at > now && e.sent.opened.url == *url)
            .map(|e| {
                (
                    e.sent.opened.clone(),
                    std::sync::Arc::clone(&e.sent.provider),
                )
            })
    }

    /// The sign-in that opened `old` opens `url` from now on, its push good until `expires_at`.
    pub(crate) fn reopened(&self, old: &Url, url: Url, expires_at: Option<DateTime<Utc>>) {
        if let Some(e) = self.lock().iter_mut().find(|e| e.sent.opened.url == *old) {
            e.sent.opened.url = url;
            if let Some(push) = e.sent.opened.push.as_mut() {
                push.expires_at = expires_at;
            }
        }
    }

    /// Finds and removes the sign-in this `state` belongs to, when the response came as `mode`.
    pub(crate) fn take(
        &self,
        state: Option<&str>,
        mode: ResponseMode,
        now: DateTime<Utc>,
    ) -> Result<Pending> {
        let mut entries = self.lock();
        if entries.is_empty() {
            return Err(foreign(
                "this sign-in was started by an earlier window or was already used; please sign in again",
            ));
        }
        let Some(state) = state else {
            return Err(foreign(
                "the sign-in link has no state, so it cannot be matched to your sign-in; please sign in again",
            ));
        };
        // Compare against every entry without an early exit, so timing says nothing about which
        // prefix matched (RFC 6749 §10.12, RFC 9700 §4.7).
        let mut found = None;
        for (i, e) in entries.iter().enumerate() {
            let eq: bool = e
                .sent
                .state
                .secret()
                .as_bytes()
                .ct_eq(state.as_bytes())
                .into();
            if eq {
                found = Some(i);
            }
        }
        let Some(i) = found else {
            return Err(foreign(
                "this sign-in link does not belong to the sign-in in progress; it was ignored",
            ));
        };
        // Form Post Response Mode §2: a sign-in that asked for a form POST takes nothing else (a
        // link with its code would have passed through history, logs and referrers). Not
        // consumed: the genuine response can still arrive.
        let due = entries[i].sent.mode;
        if due != mode {
            return Err(foreign(&format!(
                "the sign-in response arrived as {} where {} (response_mode={}) is due; it was ignored",
                mode.described(),
                due.described(),
                due.as_str()
            )));
        }
        let pending = entries.remove(i);
        if now >= pending.sent.expires_at {
            return Err(Error::new(
                ErrorKind::TimedOut,
                "this sign-in link arrived after the sign-in timed out; please sign in again",
            ));
        }
        Ok(pending)
    }
}

/// The RP-initiated logout this process started (OpenID Connect RP-Initiated Logout §2): its
/// return is matched by `state`, once, before the deadline, like a sign-in's redirect.
pub(crate) struct PendingLogout {
    pub(crate) state: CsrfToken,
    pub(crate) expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for PendingLogout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogout")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    const Q: ResponseMode = ResponseMode::Query;

    fn pending(state: &str, expires_at: DateTime<Utc>) -> Pending {
        Pending {
            sent: Sent {
                state: CsrfToken::new(state.into()),
                nonce: Nonce::new("n".into()),
                redirect_uri: Url::parse("com.example.app:/callback").expect("url"),
                expires_at,
                opened: Opened {
                    url: Url::parse("https://id.example/auth").expect("url"),
                    push: None,
                },
                mode: ResponseMode::Query,
                provider: std::sync::Arc::new(crate::discovery::Provider::for_tests(
                    crate::discovery::minimal_metadata("https://id.example"),
                    openidconnect::JsonWebKeySet::new(Vec::new()),
                )),
            },
            awaiting: Awaiting::Code(Redemption {
                verifier: PkceCodeVerifier::new("v".repeat(43)),
                dpop: None,
            }),
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).expect("ts")
    }

    #[test]
    fn parses_code_state_iss() {
        let (url, p, _) = parse_callback(
            "com.example.app:/callback?code=abc&state=xyz&iss=https%3A%2F%2Fid.example",
        )
        .expect("ok");
        assert_eq!(url.scheme(), "com.example.app");
        assert_eq!(p.code.as_deref(), Some("abc"));
        assert_eq!(p.state.as_deref(), Some("xyz"));
        assert_eq!(p.iss.as_deref(), Some("https://id.example"));
    }

    #[test]
    fn parses_error_response() {
        let (_, p, _) = parse_callback(
            "http://127.0.0.1:5000/callback?error=access_denied&error_description=User+said+no&state=s",
        )
        .expect("ok");
        assert_eq!(p.error.as_deref(), Some("access_denied"));
        assert_eq!(p.error_description.as_deref(), Some("User said no"));
    }

    #[test]
    fn rejects_repeated_parameters_and_garbage() {
        let e = parse_callback("com.example.app:/callback?code=a&code=b&state=s").expect_err("dup");
        assert_eq!(e.kind(), ErrorKind::ForeignCallback);
        assert!(parse_callback("not a url at all").is_err());
        assert!(parse_callback(&format!("x:/c?code={}", "a".repeat(20_000))).is_err());
        assert!(parse_callback("").is_err());
    }

    #[test]
    fn debug_redacts_code_and_state() {
        let (_, p, _) = parse_callback("x:/c?code=SECRETCODE&state=SECRETSTATE&id_token=SECRETIDT")
            .expect("ok");
        let d = format!("{p:?}");
        assert!(
            !d.contains("SECRETCODE") && !d.contains("SECRETSTATE") && !d.contains("SECRETIDT"),
            "{d}"
        );
    }

    #[test]
    fn state_must_match_and_is_single_use() {
        let set = PendingSet::default();
        set.insert(pending("good-state", now() + Duration::minutes(5)), now());
        let e = set.take(Some("bad-state"), Q, now()).expect_err("forged");
        assert_eq!(e.kind(), ErrorKind::ForeignCallback);
        assert!(
            set.is_waiting(now()),
            "a forged callback must not cancel the real sign-in"
        );
        assert!(set.take(Some("good-state"), Q, now()).is_ok());
        let e = set.take(Some("good-state"), Q, now()).expect_err("replay");
        assert_eq!(e.kind(), ErrorKind::ForeignCallback);
        assert!(e.message().contains("earlier window"), "{e}");
    }

    #[test]
    fn missing_state_is_rejected() {
        let set = PendingSet::default();
        set.insert(pending("s", now() + Duration::minutes(5)), now());
        assert_eq!(
            set.take(None, Q, now()).expect_err("none").kind(),
            ErrorKind::ForeignCallback
        );
    }

    #[test]
    fn late_callbacks_are_rejected_and_consumed() {
        let set = PendingSet::default();
        set.insert(pending("s", now() + Duration::minutes(5)), now());
        let later = now() + Duration::minutes(6);
        assert_eq!(
            set.take(Some("s"), Q, later).expect_err("late").kind(),
            ErrorKind::TimedOut
        );
        assert!(!set.is_waiting(now()));
    }

    #[test]
    fn oldest_is_dropped_beyond_capacity() {
        let set = PendingSet::default();
        for i in 0..=MAX_PENDING {
            set.insert(
                pending(&format!("s{i}"), now() + Duration::minutes(5)),
                now(),
            );
        }
        assert!(set.take(Some("s0"), Q, now()).is_err());
        assert!(set.take(Some(&format!("s{MAX_PENDING}")), Q, now()).is_ok());
    }

    #[test]
    fn endpoint_comparison_ignores_query_only() {
        let a = Url::parse("http://127.0.0.1:5000/callback?x=1").expect("url");
        let b = Url::parse("http://127.0.0.1:5000/callback").expect("url");
        let c = Url::parse("http://127.0.0.1:5001/callback").expect("url");
        assert!(same_endpoint(&a, &b));
        assert!(!same_endpoint(&a, &c));
    }

    /// The app's redirect is `com.example.app:/callback`, one slash (RFC 8252 §7.1). With
    /// two, `callback` parses as a host and the path is empty (RFC 3986 §3.2), so it is another
    /// endpoint: a provider registration with `://` does not match what the app sends, and a
    /// redirect arriving at `://callback` is refused as foreign.
    #[test]
    fn private_use_scheme_one_slash_and_two_are_different_endpoints() {
        let one = Url::parse("com.example.app:/callback").expect("url");
        let two = Url::parse("com.example.app://callback").expect("url");
        assert_eq!((one.host_str(), one.path()), (None, "/callback"));
        assert_eq!((two.host_str(), two.path()), (Some("callback"), ""));
        assert!(!same_endpoint(&one, &two));
        assert!(!same_endpoint(&two, &one));
        let with_query = Url::parse("com.example.app:/callback?code=c&state=s").expect("url");
        assert!(same_endpoint(&with_query, &one));
    }

    #[test]
    fn a_fragment_response_is_read_and_a_doubled_one_refused() {
        let (_, p, mode) =
            parse_callback("com.example.app:/callback#code=c&id_token=a.b.c&state=s").expect("ok");
        assert_eq!(mode, ResponseMode::Fragment);
        assert_eq!(
            (p.code.as_deref(), p.id_token.as_deref(), p.state.as_deref()),
            (Some("c"), Some("a.b.c"), Some("s"))
        );
        let (_, _, mode) = parse_callback("com.example.app:/callback?code=c&state=s").expect("ok");
        assert_eq!(mode, ResponseMode::Query);
        let e = parse_callback("x:/c?code=a&state=s#code=b&state=s").expect_err("both");
        assert!(
            e.message().contains("both its query and its fragment"),
            "{e}"
        );
        assert!(
            parse_callback("x:/c#code=a&code=b").is_err(),
            "repeated in the fragment"
        );
    }

    #[test]
    fn a_form_post_is_read_from_the_body_only() {
        let (_, p) = parse_form_post(
            "http://127.0.0.1:5000/callback",
            "code=c&id_token=a.b.c&state=s%2F",
        )
        .expect("ok");
        assert_eq!(p.state.as_deref(), Some("s/"));
        assert_eq!(p.id_token.as_deref(), Some("a.b.c"));
        let e = parse_form_post("http://127.0.0.1:5000/callback?code=x", "state=s")
            .expect_err("a response in the URL too");
        assert_eq!(e.kind(), ErrorKind::ForeignCallback);
        assert!(parse_form_post("http://127.0.0.1/cb", "state=a&state=b").is_err());
        assert!(parse_form_post("http://127.0.0.1/cb", &"a".repeat(MAX_RESPONSE + 1)).is_err());
    }

    #[test]
    fn a_response_in_another_mode_is_refused_and_leaves_the_sign_in_waiting() {
        let set = PendingSet::default();
        let mut p = pending("s", now() + Duration::minutes(5));
        p.sent.mode = ResponseMode::FormPost;
        set.insert(p, now());
        let e = set
            .take(Some("s"), Q, now())
            .expect_err("a GET where a POST is due");
        assert_eq!(e.kind(), ErrorKind::ForeignCallback);
        assert!(e.message().contains("response_mode=form_post"), "{e}");
        assert!(
            set.is_waiting(now()),
            "the genuine response can still arrive"
        );
        assert!(set.take(Some("s"), ResponseMode::FormPost, now()).is_ok());
    }
}
