//! The commands that hand tokens to other tools or end the session: `token`, `headers` and
//! `logout`, each printing what the contract in `main.rs` promises.

use std::io::Write as _;

use latchkey_core::Latchkey;

use crate::output::chrono_secs;
use crate::{fail, parse_min_valid};

/// `token [--min-valid D] [--force-refresh] [--json]`: the access token alone on stdout.
pub(crate) async fn token(
    latchkey: &Latchkey,
    min_valid: Option<&str>,
    force_refresh: bool,
    json: bool,
) -> i32 {
    let min_valid = match min_valid.map(parse_min_valid).transpose() {
        Ok(d) => d.unwrap_or_default(),
        Err(e) => return fail(&e),
    };
    let options = latchkey_core::TokenOptions::new(min_valid, force_refresh);
    match latchkey.token(options).await {
        Ok(info) if json => {
            out!(
                "{}",
                serde_json::json!({
                    "access_token": info.token.secret(),
                    "token_type": info.token_type,
                    "expires_at": info.expires_at.to_rfc3339_opts(chrono_secs(), true),
                })
            );
            0
        }
        Ok(info) => {
            out!("{}", info.token.secret());
            0
        }
        Err(e) => fail(&e),
    }
}

/// `headers --url URL [--method M]`: the header lines for calling URL with the token.
pub(crate) async fn headers(latchkey: &Latchkey, method: &str, url: &str) -> i32 {
    match latchkey.resource_headers(method, url).await {
        Ok(h) => {
            // One write: a reader of a process substitution sees all lines or none.
            let mut text = format!("Authorization: {}\n", h.authorization);
            if let Some(proof) = &h.dpop {
                text.push_str(&format!("DPoP: {proof}\n"));
            }
            let _ = std::io::stdout().write_all(text.as_bytes());
            0
        }
        Err(e) => fail(&e),
    }
}

/// `logout [--provider]`: revocation, the keychain entry, and with `--provider` the provider's
/// own session in the browser.
pub(crate) async fn logout(latchkey: &Latchkey, provider: bool) -> i32 {
    match latchkey.logout().await {
        Ok(out) if !out.was_signed_in => {
            say!("Not signed in (profile `{}`).", latchkey.config().profile);
            0
        }
        Ok(out) if out.damaged => {
            say!("Signed out: the stored session was unreadable and has been removed.");
            0
        }
        Ok(out) => {
            match (&out.revoked, &out.revocation_problem) {
                (true, _) => say!("Signed out; the session was revoked at the provider."),
                (false, Some(p)) => {
                    say!("Signed out on this computer, but the provider was not told: {p}")
                }
                (false, None) => say!("Signed out on this computer."),
            }
            if provider {
                end_provider_session(latchkey, out.end_session_url.as_ref());
            }
            0
        }
        Err(e) => fail(&e),
    }
}

/// `logout --provider`: the provider's end-session URL (RP-Initiated Logout 1.0 §2, with
/// `id_token_hint` and, when configured, `post_logout_redirect_uri`) in the browser. The URL
/// carries the ID token, so it is never printed.
fn end_provider_session(latchkey: &Latchkey, url: Option<&url::Url>) {
    match url.map(|u| latchkey.open_browser(u)) {
        Some(Ok(())) => say!("Opened your browser to sign you out of the provider too."),
        Some(Err(e)) => say!("latchkey: could not sign you out of the provider: {e}"),
        None => say!(
            "The provider offers no way to sign out of it from here (no end-session endpoint)."
        ),
    }
}
