//! Sign-ins in flight and the authorization response (RFC 6749 §4.1.2).
//!
//! [`Pending`] holds the secrets of one sign-in this process started: `state`, `nonce` and the
//! PKCE verifier. A redirect is accepted only by [`PendingSet::take`], which finds its sign-in by
//! `state` in constant time, removes it (single use), and checks its deadline. Anything else is a
//! [`ErrorKind::ForeignCallback`] and never reaches the token endpoint.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use openidconnect::{CsrfToken, Nonce, PkceCodeVerifier};
use subtle::ConstantTimeEq;
use url::Url;

use crate::error::{Error, ErrorKind, Result};

/// The authorization response's parameters.
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl std::fmt::Debug for CallbackParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackParams")
            .field("code", &self.code.as_ref().map(|_| "[redacted]"))
            .field("state", &self.state.as_ref().map(|_| "[redacted]"))
            .field("iss", &self.iss)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

fn foreign(message: &str) -> Error {
    Error::new(ErrorKind::ForeignCallback, message)
}

/// Parses a redirect URL. Repeated parameters are rejected (RFC 6749 §3.1: parameters MUST NOT be
/// included more than once), as is anything that isn't a URL.
pub(crate) fn parse_callback(url: &str) -> Result<(Url, CallbackParams)> {
    if url.len() > 16 * 1024 {
        return Err(foreign(
            "the sign-in link is too long to be genuine; please sign in again",
        ));
    }
    let url = Url::parse(url.trim())
        .map_err(|_| foreign("the sign-in link is malformed; please sign in again"))?;
    let mut p = CallbackParams::default();
    for (k, v) in url.query_pairs() {
        let slot = match k.as_ref() {
            "code" => &mut p.code,
            "state" => &mut p.state,
            "iss" => &mut p.iss,
            "error" => &mut p.error,
            "error_description" => &mut p.error_description,
            _ => continue,
        };
        if slot.is_some() {
            return Err(foreign(
                "the sign-in link repeats a parameter, so it was not accepted; please sign in again",
            ));
        }
        *slot = Some(v.into_owned());
    }
    Ok((url, p))
}

/// Whether a redirect arrived at the redirect URI the sign-in used (ignoring the query).
pub(crate) fn same_endpoint(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path() == b.path()
}

/// One sign-in this process started.
pub(crate) struct Pending {
    pub state: CsrfToken,
    pub nonce: Nonce,
    pub verifier: PkceCodeVerifier,
    pub redirect_uri: Url,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("redirect_uri", &self.redirect_uri.as_str())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
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
        entries.retain(|e| e.expires_at > now);
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
        self.lock().iter().any(|e| e.expires_at > now)
    }

    /// Finds and removes the sign-in this `state` belongs to.
    pub(crate) fn take(&self, state: Option<&str>, now: DateTime<Utc>) -> Result<Pending> {
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
            let eq: bool = e.state.secret().as_bytes().ct_eq(state.as_bytes()).into();
            if eq {
                found = Some(i);
            }
        }
        let Some(i) = found else {
            return Err(foreign(
                "this sign-in link does not belong to the sign-in in progress; it was ignored",
            ));
        };
        let pending = entries.remove(i);
        if now >= pending.expires_at {
            return Err(Error::new(
                ErrorKind::TimedOut,
                "this sign-in link arrived after the sign-in timed out; please sign in again",
            ));
        }
        Ok(pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn pending(state: &str, expires_at: DateTime<Utc>) -> Pending {
        Pending {
            state: CsrfToken::new(state.into()),
            nonce: Nonce::new("n".into()),
            verifier: PkceCodeVerifier::new("v".repeat(43)),
            redirect_uri: Url::parse("com.example.latchkey:/callback").expect("url"),
            expires_at,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).expect("ts")
    }

    #[test]
    fn parses_code_state_iss() {
        let (url, p) = parse_callback(
            "com.example.latchkey:/callback?code=abc&state=xyz&iss=https%3A%2F%2Fid.example",
        )
        .expect("ok");
        assert_eq!(url.scheme(), "com.example.latchkey");
        assert_eq!(p.code.as_deref(), Some("abc"));
        assert_eq!(p.state.as_deref(), Some("xyz"));
        assert_eq!(p.iss.as_deref(), Some("https://id.example"));
    }

    #[test]
    fn parses_error_response() {
        let (_, p) = parse_callback(
            "http://127.0.0.1:5000/callback?error=access_denied&error_description=User+said+no&state=s",
        )
        .expect("ok");
        assert_eq!(p.error.as_deref(), Some("access_denied"));
        assert_eq!(p.error_description.as_deref(), Some("User said no"));
    }

    #[test]
    fn rejects_repeated_parameters_and_garbage() {
        let e = parse_callback("com.example.latchkey:/callback?code=a&code=b&state=s")
            .expect_err("dup");
        assert_eq!(e.kind(), ErrorKind::ForeignCallback);
        assert!(parse_callback("not a url at all").is_err());
        assert!(parse_callback(&format!("x:/c?code={}", "a".repeat(20_000))).is_err());
        assert!(parse_callback("").is_err());
    }

    #[test]
    fn debug_redacts_code_and_state() {
        let (_, p) = parse_callback("x:/c?code=SECRETCODE&state=SECRETSTATE").expect("ok");
        let d = format!("{p:?}");
        assert!(
            !d.contains("SECRETCODE") && !d.contains("SECRETSTATE"),
            "{d}"
        );
    }

    #[test]
    fn state_must_match_and_is_single_use() {
        let set = PendingSet::default();
        set.insert(pending("good-state", now() + Duration::minutes(5)), now());
        let e = set.take(Some("bad-state"), now()).expect_err("forged");
        assert_eq!(e.kind(), ErrorKind::ForeignCallback);
        assert!(
            set.is_waiting(now()),
            "a forged callback must not cancel the real sign-in"
        );
        assert!(set.take(Some("good-state"), now()).is_ok());
        let e = set.take(Some("good-state"), now()).expect_err("replay");
        assert_eq!(e.kind(), ErrorKind::ForeignCallback);
        assert!(e.message().contains("earlier window"), "{e}");
    }

    #[test]
    fn missing_state_is_rejected() {
        let set = PendingSet::default();
        set.insert(pending("s", now() + Duration::minutes(5)), now());
        assert_eq!(
            set.take(None, now()).expect_err("none").kind(),
            ErrorKind::ForeignCallback
        );
    }

    #[test]
    fn late_callbacks_are_rejected_and_consumed() {
        let set = PendingSet::default();
        set.insert(pending("s", now() + Duration::minutes(5)), now());
        let later = now() + Duration::minutes(6);
        assert_eq!(
            set.take(Some("s"), later).expect_err("late").kind(),
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
        assert!(set.take(Some("s0"), now()).is_err());
        assert!(set.take(Some(&format!("s{MAX_PENDING}")), now()).is_ok());
    }

    #[test]
    fn endpoint_comparison_ignores_query_only() {
        let a = Url::parse("http://127.0.0.1:5000/callback?x=1").expect("url");
        let b = Url::parse("http://127.0.0.1:5000/callback").expect("url");
        let c = Url::parse("http://127.0.0.1:5001/callback").expect("url");
        assert!(same_endpoint(&a, &b));
        assert!(!same_endpoint(&a, &c));
    }
}
