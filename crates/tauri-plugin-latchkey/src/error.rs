//! The error every command returns: `{ kind, message }` in JSON, the message one line and
//! token-free, worded for a window.

use latchkey_core::{Error, ErrorKind};
use serde::{Serialize, Serializer};

use crate::models::app_message;

/// An error returned by a command; serializes as `{ kind, message }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UiError {
    pub kind: UiErrorKind,
    pub message: String,
}

/// What went wrong, for the window to switch on: the core's kinds, and the controller's own.
/// Serialized as the snake_case names `ui/app.js` and the tests compare with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UiErrorKind {
    Config,
    ProviderUnreachable,
    ProviderInvalid,
    ProviderError,
    AccessDenied,
    ForeignCallback,
    TimedOut,
    Cancelled,
    NotSignedIn,
    NoAccessToken,
    SessionExpired,
    Keychain,
    Browser,
    Internal,
    /// Asked to sign in while signed in.
    Busy,
    /// "Open the browser again" with no sign-in in progress.
    NotSigningIn,
}

impl UiErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::ProviderUnreachable => "provider_unreachable",
            Self::ProviderInvalid => "provider_invalid",
            Self::ProviderError => "provider_error",
            Self::AccessDenied => "access_denied",
            Self::ForeignCallback => "foreign_callback",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
            Self::NotSignedIn => "not_signed_in",
            Self::NoAccessToken => "no_access_token",
            Self::SessionExpired => "session_expired",
            Self::Keychain => "keychain",
            Self::Browser => "browser",
            Self::Internal => "internal",
            Self::Busy => "busy",
            Self::NotSigningIn => "not_signing_in",
        }
    }
}

impl From<ErrorKind> for UiErrorKind {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::Config => Self::Config,
            ErrorKind::ProviderUnreachable => Self::ProviderUnreachable,
            ErrorKind::ProviderInvalid => Self::ProviderInvalid,
            ErrorKind::ProviderError => Self::ProviderError,
            ErrorKind::AccessDenied => Self::AccessDenied,
            ErrorKind::ForeignCallback => Self::ForeignCallback,
            ErrorKind::TimedOut => Self::TimedOut,
            ErrorKind::Cancelled => Self::Cancelled,
            ErrorKind::NotSignedIn => Self::NotSignedIn,
            ErrorKind::NoAccessToken => Self::NoAccessToken,
            ErrorKind::SessionExpired => Self::SessionExpired,
            ErrorKind::Keychain => Self::Keychain,
            ErrorKind::Browser => Self::Browser,
            // The core's kinds are non-exhaustive: one added later reads as "internal" until it
            // is named here (the test below lists every kind known today).
            _ => Self::Internal,
        }
    }
}

impl Serialize for UiErrorKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for UiErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl UiError {
    pub fn new(kind: UiErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The settings can't be read, saved or used as asked.
    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::new(UiErrorKind::Config, message)
    }
}

impl From<Error> for UiError {
    fn from(e: Error) -> Self {
        let message = match e.description() {
            Some(d) => format!("{} (the provider says: {d})", app_message(&e)),
            None => app_message(&e),
        };
        Self::new(e.kind().into(), message)
    }
}

impl std::fmt::Display for UiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for UiError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::kind_name;

    #[test]
    fn every_core_kind_keeps_the_name_the_core_gives_it() {
        for kind in [
            ErrorKind::Config,
            ErrorKind::ProviderUnreachable,
            ErrorKind::ProviderInvalid,
            ErrorKind::ProviderError,
            ErrorKind::AccessDenied,
            ErrorKind::ForeignCallback,
            ErrorKind::TimedOut,
            ErrorKind::Cancelled,
            ErrorKind::NotSignedIn,
            ErrorKind::NoAccessToken,
            ErrorKind::SessionExpired,
            ErrorKind::Keychain,
            ErrorKind::Browser,
            ErrorKind::Internal,
        ] {
            assert_eq!(
                UiErrorKind::from(kind).as_str(),
                kind_name(kind),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn serializes_as_kind_and_message_strings() {
        let json = |e: UiError| serde_json::to_value(e).expect("json");
        assert_eq!(
            json(UiError::new(UiErrorKind::Busy, "Already signed in")),
            serde_json::json!({"kind": "busy", "message": "Already signed in"})
        );
        assert_eq!(
            json(UiError::new(UiErrorKind::NotSigningIn, "No sign-in"))["kind"],
            "not_signing_in"
        );
        assert_eq!(json(UiError::config("x"))["kind"], "config");
        let e = UiError::from(Error::new(ErrorKind::ProviderUnreachable, "down"));
        assert_eq!(json(e.clone())["kind"], "provider_unreachable");
        assert_eq!(
            e.to_string(),
            format!("provider_unreachable: {}", e.message)
        );
    }
}
