//! Signing out: the shown account, or every account.

use std::sync::Arc;

use latchkey_core::{Latchkey, Logout};
use tauri::{AppHandle, Runtime};

use super::AppState;
use crate::error::UiError;
use crate::models::{ErrorView, Notice, Phase, ViewModel};

impl AppState {
    /// Revokes and forgets the session. With `also_provider`, opens the provider's end-session
    /// page in the system browser, from here: its URL carries the ID token as `id_token_hint`
    /// and never goes to the window.
    pub(crate) async fn sign_out(&self, also_provider: bool) -> Result<ViewModel, UiError> {
        let lk = self.latchkey()?;
        let _gate = self.session_gate.lock().await;
        let out = match lk.logout().await {
            Ok(out) => out,
            Err(e) => {
                return Ok(self.update(|i| i.view.error = Some(ErrorView::from_error(&e, None))));
            }
        };
        let provider = match (&out.end_session_url, also_provider) {
            (_, false) => AtProvider::NotAsked,
            (None, true) => AtProvider::NoWay,
            (Some(url), true) => match lk.open_browser(url) {
                Ok(()) => AtProvider::Opened,
                Err(_) => AtProvider::NoBrowser,
            },
        };
        let message = signed_out_message(&out, provider);
        Ok(self.update(|i| i.on_signed_out(message)))
    }

    /// "Sign out of all accounts": every listed account, then the shown one.
    pub(crate) async fn sign_out_all<R: Runtime>(
        &self,
        app: &AppHandle<R>,
    ) -> Result<ViewModel, UiError> {
        let others: Vec<Arc<Latchkey>> = self
            .lock()
            .accounts
            .values()
            .map(|s| Arc::clone(&s.latchkey))
            .collect();
        let mut problems = 0;
        for lk in others {
            if lk.logout().await.is_err() {
                problems += 1;
            }
        }
        self.update(|i| i.accounts.clear());
        if self.lock().view.phase == Phase::SignedIn {
            self.sign_out(false).await?;
        }
        self.reload_accounts(app).await;
        Ok(self.update(|i| {
            i.view.notice = Some(Notice::info(if problems == 0 {
                "Signed out of all accounts.".to_owned()
            } else {
                format!("Signed out of all accounts; {problems} could not be reached to revoke.")
            }));
        }))
    }
}

/// "Also sign out of the provider": what came of it.
enum AtProvider {
    NotAsked,
    /// The browser opened the provider's end-session page.
    Opened,
    NoBrowser,
    /// The provider has no end-session endpoint.
    NoWay,
}

/// What a sign-out did, in words.
fn signed_out_message(out: &Logout, provider: AtProvider) -> String {
    let mut message = if out.revoked {
        "Signed out. The provider has revoked the session.".to_owned()
    } else if out.was_signed_in {
        format!(
            "Signed out on this computer. The provider could not revoke the session ({}); it will expire on its own.",
            out.revocation_problem
                .as_deref()
                .unwrap_or("no reason given")
        )
    } else {
        "Signed out.".to_owned()
    };
    message.push_str(match provider {
        AtProvider::NotAsked => "",
        AtProvider::Opened => " Your browser is signing you out of the provider too.",
        AtProvider::NoBrowser => {
            " The browser could not be opened to sign you out of the provider."
        }
        AtProvider::NoWay => " The provider offers no way to sign out of it from an app.",
    });
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logout(was_signed_in: bool, revoked: bool) -> Logout {
        let mut out = Logout::default();
        out.was_signed_in = was_signed_in;
        out.revoked = revoked;
        out
    }

    #[test]
    fn the_message_says_what_the_provider_did() {
        assert_eq!(
            signed_out_message(&logout(true, true), AtProvider::NotAsked),
            "Signed out. The provider has revoked the session."
        );
        let m = signed_out_message(&logout(true, false), AtProvider::NotAsked);
        assert!(
            m.contains("could not revoke the session (no reason given)"),
            "{m}"
        );
        assert_eq!(
            signed_out_message(&logout(false, false), AtProvider::NotAsked),
            "Signed out."
        );
    }

    #[test]
    fn the_message_says_what_came_of_also_signing_out_of_the_provider() {
        let out = logout(false, false);
        for (provider, tail) in [
            (AtProvider::Opened, "signing you out of the provider too."),
            (
                AtProvider::NoBrowser,
                "could not be opened to sign you out of the provider.",
            ),
            (
                AtProvider::NoWay,
                "offers no way to sign out of it from an app.",
            ),
        ] {
            let m = signed_out_message(&out, provider);
            assert!(m.starts_with("Signed out. ") && m.ends_with(tail), "{m}");
        }
    }
}
