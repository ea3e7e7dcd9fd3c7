//! One error type for the whole core, with a stable [`ErrorKind`] that the CLI maps to exit codes
//! and the app maps to its error banner.
//!
//! Messages are one line, name the cause and say what to do. They never contain a token: every
//! variant is built from our own words plus provider-supplied strings (`error`,
//! `error_description`, issuers, URLs, claim values), which never carry credentials. Each
//! provider string goes through [`sanitize`] before it is quoted, and every message is cleaned
//! again as a whole, so nothing a provider sends can drive the user's terminal.

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
    /// The session has no access token: the implicit flow signs in only.
    NoAccessToken,
    /// The stored session was rejected by the provider (`invalid_grant`) and has been forgotten.
    SessionExpired,
    /// The OS keychain is unavailable, locked or not answering. Transient.
    Keychain,
    /// The system browser could not be started.
    Browser,
    /// Anything else: a local I/O failure or a bug.
    Internal,
}

/// What the user has to do about an error, when it is something only they can do. The core's
/// messages say what happened; each front end says what to do in its own words (the CLI names
/// its command, a window shows a button), because the core cannot know which front end it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Remedy {
    /// Sign in (again).
    SignIn,
    /// Sign out, which forgets what is stored, then sign in again.
    SignOutAndIn,
    /// No browser can be opened here, and the provider offers the device flow (RFC 8628): sign in
    /// with a code on another device.
    UseDevice,
}

/// The core's error: a kind plus a one-line, token-free message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    remedy: Option<Remedy>,
    /// The provider's `error` code, when the provider sent one.
    oauth_error: Option<String>,
    /// The provider's `error_description`, when the provider sent one.
    description: Option<String>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: clean(&message.into(), MAX_MESSAGE),
            remedy: None,
            oauth_error: None,
            description: None,
        }
    }

    /// An error the provider reported with an OAuth `error` code (RFC 6749 §4.1.2.1, §5.2). The
    /// message always names the code, so `message()` (the app) and `Display` (the CLI) both carry
    /// it next to the description: a caller may quote it as `` `code` `` or `(code)` in its own
    /// words, otherwise ` (code)` is appended.
    pub(crate) fn oauth(
        kind: ErrorKind,
        message: impl Into<String>,
        error: &str,
        description: Option<&str>,
    ) -> Self {
        let code = sanitize(error);
        let code = if code.is_empty() {
            "unnamed_error".to_owned()
        } else {
            code
        };
        let mut message = message.into();
        if !message.contains(&format!("`{code}`")) && !message.contains(&format!("({code})")) {
            message = format!("{message} ({code})");
        }
        Self {
            oauth_error: Some(code),
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

    /// What the user has to do, when it is up to them (see [`Remedy`]).
    pub fn remedy(&self) -> Option<Remedy> {
        self.remedy
    }

    pub(crate) fn with_remedy(mut self, remedy: Remedy) -> Self {
        self.remedy = Some(remedy);
        self
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

/// The longest provider-supplied string kept in a message.
const MAX_PROVIDER_TEXT: usize = 300;
/// The longest message: our own words plus a few provider strings.
const MAX_MESSAGE: usize = 2000;

/// Makes a provider-supplied string safe to quote in a message shown on a terminal or a page:
/// ANSI/terminal escape sequences (ESC or C1 introduced: CSI, OSC, DCS, …; ECMA-48 §5) are
/// dropped whole, every other control character (C0, DEL, C1) and bidi override becomes a
/// space, runs of spaces collapse, and the result is capped at 300 characters.
/// RFC 6749 §5.2 allows only printable ASCII in `error`/`error_description`, but nothing makes a
/// provider (or a forged redirect) comply, and the same goes for issuers, URLs and claims.
pub fn sanitize(s: &str) -> String {
    clean(s, MAX_PROVIDER_TEXT)
}

/// What a string is inside while escape sequences are being skipped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// Right after ESC.
    Start,
    /// A CSI's parameter and intermediate bytes, until its final byte (0x40-0x7E).
    Csi,
    /// ESC's intermediate bytes (0x20-0x2F), until its final byte.
    Intermediate,
    /// OSC, DCS, SOS, PM, APC: a string ended by BEL or ST (ESC \ or 0x9C).
    Str,
    /// ESC inside such a string: `\` ends it.
    StrEsc,
}

fn clean(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    let mut state = Escape::None;
    let mut kept = 0;
    let mut truncated = false;
    for c in s.chars() {
        state = match (state, c) {
            (Escape::Str | Escape::StrEsc, '\u{7}' | '\u{9c}') => Escape::None,
            (Escape::StrEsc, '\\') => Escape::None,
            (Escape::Str | Escape::StrEsc, '\u{1b}') => Escape::StrEsc,
            (Escape::Str | Escape::StrEsc, _) => Escape::Str,
            (Escape::Csi, '\u{20}'..='\u{3f}') => Escape::Csi,
            (Escape::Csi, '\u{40}'..='\u{7e}') => Escape::None,
            (Escape::Intermediate, '\u{20}'..='\u{2f}') => Escape::Intermediate,
            (Escape::Intermediate, '\u{30}'..='\u{7e}') => Escape::None,
            (Escape::Start, '[') => Escape::Csi,
            (Escape::Start, ']' | 'P' | 'X' | '^' | '_') => Escape::Str,
            (Escape::Start, '\u{20}'..='\u{2f}') => Escape::Intermediate,
            (Escape::Start, '\u{30}'..='\u{7e}') => Escape::None,
            // Not (or no longer) in a sequence: an interrupted one ends here and `c` is text.
            (_, '\u{1b}') => Escape::Start,
            (_, '\u{9b}') => Escape::Csi,
            (_, '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}') => Escape::Str,
            (_, c) => {
                if kept == max {
                    truncated = true;
                    break;
                }
                // Bidi embeddings, overrides and isolates can reorder what a terminal shows.
                let blank = c.is_control()
                    || c.is_whitespace()
                    || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
                if !blank {
                    out.push(c);
                    kept += 1;
                } else if !out.is_empty() && !out.ends_with(' ') {
                    out.push(' ');
                    kept += 1;
                }
                Escape::None
            }
        };
    }
    let mut out = out.trim_end().to_owned();
    if truncated {
        out.push('…');
    }
    out
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
            "the provider refused the sign-in (access_denied) (provider says: user said no)"
        );
    }

    #[test]
    fn provider_errors_always_name_their_code() {
        let denied = Error::oauth(
            ErrorKind::AccessDenied,
            "sign-in was declined at the provider",
            "access_denied",
            Some("User said no"),
        );
        assert_eq!(
            denied.to_string(),
            "sign-in was declined at the provider (access_denied) (provider says: User said no)"
        );
        assert!(
            denied.message().contains("access_denied"),
            "the app shows message()"
        );
        let scope = Error::oauth(
            ErrorKind::ProviderError,
            "the provider refused the sign-in",
            "invalid_scope",
            None,
        );
        assert_eq!(
            scope.to_string(),
            "the provider refused the sign-in (invalid_scope)"
        );
        // A message that already quotes the code does not repeat it.
        let grant = Error::oauth(
            ErrorKind::ProviderError,
            "the provider answered `invalid_grant`",
            "invalid_grant",
            Some("expired"),
        );
        assert_eq!(
            grant.to_string(),
            "the provider answered `invalid_grant` (provider says: expired)"
        );
        // A code made of escapes alone still shows something.
        let empty = Error::oauth(ErrorKind::ProviderError, "refused", "\u{1b}[2J", None);
        assert_eq!(empty.to_string(), "refused (unnamed_error)");
    }

    #[test]
    fn sanitize_strips_escapes_and_control_characters() {
        let dirty = "\u{1b}[31mred\u{1b}[0m bell\u{7}here \u{9b}2Jwiped\nnext\u{1b}]0;title\u{7}end \u{7f}del\u{85}nel \u{202e}rtl";
        assert_eq!(sanitize(dirty), "red bell here wiped nextend del nel rtl");
        for c in sanitize(dirty).chars() {
            assert!(!c.is_control(), "{c:?}");
        }
        // OSC 8 hyperlinks ended by ST, and a lone trailing ESC.
        assert_eq!(
            sanitize("a\u{1b}]8;;https://evil\u{1b}\\link\u{1b}]8;;\u{1b}\\ b\u{1b}"),
            "alink b"
        );
        let long = sanitize(&"x".repeat(1000));
        assert_eq!(long.chars().count(), MAX_PROVIDER_TEXT + 1);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn whole_messages_are_cleaned_too() {
        let e = Error::new(
            ErrorKind::ProviderInvalid,
            "issuer `\u{1b}[2Jx\u{9b}1;1H` bad",
        );
        assert_eq!(e.to_string(), "issuer `x` bad");
    }
}
