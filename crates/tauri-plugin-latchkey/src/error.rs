//! The error every command returns: `{ kind, message }` in JSON, the message one line and
//! token-free, worded for a window.

use latchkey_core::Error;
use serde::Serialize;

use crate::models::{app_message, kind_name};

/// An error returned by a command; serializes as `{ kind, message }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UiError {
    pub kind: String,
    pub message: String,
}

impl UiError {
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        Self {
            kind: kind.to_owned(),
            message: message.into(),
        }
    }
}

impl From<Error> for UiError {
    fn from(e: Error) -> Self {
        let message = match e.description() {
            Some(d) => format!("{} (the provider says: {d})", app_message(&e)),
            None => app_message(&e),
        };
        Self {
            kind: kind_name(e.kind()),
            message,
        }
    }
}

impl std::fmt::Display for UiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for UiError {}
