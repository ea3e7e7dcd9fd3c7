//! One error type for the whole core, with a stable [`ErrorKind`] that the CLI maps to exit codes
//! and the app maps to its error banner.
//!
//! Messages are one line, name the cause and say what to do. They never contain a token: every
//! variant is built from our own words plus provider-supplied `error`/`error_description` strings,
//! which RFC 6749 §5.2 restricts to printable ASCII and which never carry credentials.

use std::fmt;

/// What went wrong, coarse enough to switch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration is missing a key or has an invalid value.
    Config,
    /// The provider could not be reached, timed out, or answered with a server error. Transient.
    ProviderUnreachable,
    /// The provider's metadata or tokens failed validation (issuer mismatch, bad ID token…).
    ProviderInvalid,
    /// The provider answered with an OAuth error other than `invalid_grant`.
    ProviderError,
    /// The user (or the provider's policy) refused the sign-in.
    AccessDenied,
    /// A redirect did not belong to a sign-in this process started, or was replayed or late.
    ForeignCallback,
    /// The sign-in was not finished in time.
    TimedOut,
    /// The sign-in was cancelled.
    Cancelled,
    /// There is no stored session.
    NotSignedIn,
    /// The stored session was rejected by the provider (`invalid_grant`) and has been forgotten.
    SessionExpired,
    /// The OS keychain is unavailable, locked or not answering. Transient.
    Keychain,
    /// The system browser could not be started.
    Browser,
    /// Anything else: a local I/O failure or a bug.
    Internal,
}

/// The core's error: a kind plus a one-line, token-free message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    /// The provider's `error` code, when the provider sent one.
    oauth_error: Option<String>,
    /// The provider's `error_description`, when the provider sent one.
    description: Option<String>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: one_line(message.into()),
            oauth_error: None,
            description: None,
        }
    }

    pub(crate) fn oauth(
        kind: ErrorKind,
        message: impl Into<String>,
        error: &str,
        description: Option<&str>,
    ) -> Self {
        Self {
            oauth_error: Some(sanitize(error)),
            description: description.map(sanitize),
            ..Self::new(kind, message)
        }
    }

    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Prefixes the message with where it happened, like `token exchange: …`.
    pub(crate) fn context(mut self, what: &str) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message without the provider's description.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The provider's OAuth `error` code (RFC 6749 §4.1.2.1, §5.2), if any.
    pub fn oauth_error(&self) -> Option<&str> {
        self.oauth_error.as_deref()
    }

    /// The provider's `error_description`, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Whether retrying later may succeed without the user doing anything.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::ProviderUnreachable | ErrorKind::Keychain
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(description) = &self.description {
            write!(f, " (provider says: {description})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn one_line(s: String) -> String {
    if s.contains(['\n', '\r']) {
        s.split(['\n', '\r'])
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        s
    }
}

/// Provider strings are shown to people: keep them printable, one line and short (RFC 6749 §5.2
/// allows only %x20-21 / %x23-5B / %x5D-7E in `error_description` anyway).
fn sanitize(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    cleaned.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_single_line() {
        let e = Error::new(ErrorKind::Internal, "first\nsecond\r\n third");
        assert_eq!(e.to_string(), "first second third");
    }

    #[test]
    fn provider_description_is_sanitized_and_shown() {
        let e = Error::oauth(
            ErrorKind::AccessDenied,
            "the provider refused the sign-in",
            "access_denied",
            Some("user\u{7}said no\n"),
        );
        assert_eq!(e.oauth_error(), Some("access_denied"));
        assert_eq!(
            e.to_string(),
            "the provider refused the sign-in (provider says: user said no)"
        );
    }
}
