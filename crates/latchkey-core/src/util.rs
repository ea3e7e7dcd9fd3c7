//! Small helpers every layer uses: reading a JWT's payload without verifying it, short hashes for
//! file and key names, and showing protocol values in messages.

use chrono::{DateTime, Utc};

use crate::error::sanitize;

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

/// `exp` of a JWT access token, used only when the response omits `expires_in`.
pub(crate) fn jwt_exp(token: &str) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(jwt_payload(token)?.get("exp")?.as_i64()?, 0)
}

pub(crate) fn oauth_code<T: serde::Serialize>(t: &T) -> String {
    match serde_json::to_value(t) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "an error".into(),
    }
}

pub(crate) fn shown(endpoint: Option<&str>) -> String {
    match endpoint {
        Some(e) => format!("`{}`", sanitize(e)),
        None => "none".into(),
    }
}
