//! Sign-in through the app's link: begin, the browser, the timeout, cancel, and every URL the OS
//! delivers. (The loopback variant is `loopback.rs`.)

use chrono::{DateTime, Utc};
use latchkey_core::{FrontEnd, Latchkey, SignInRoute};
use tauri::{AppHandle, Manager, Runtime};
use url::Url;

use super::AppState;
use super::view::within;
use crate::error::{UiError, UiErrorKind};
use crate::links::focus_main;
use crate::models::{ErrorView, Notice, Phase, ViewModel, app_message};

impl AppState {
    pub(crate) async fn sign_in<R: Runtime>(
        &self,
        app: &AppHandle<R>,
    ) -> Result<ViewModel, UiError> {
        let lk = self.latchkey()?;
        {
            let mut i = self.lock();
            match i.view.phase {
                Phase::SignedOut if !i.beginning => i.beginning = true,
                Phase::SignedOut | Phase::Waiting => return Ok(i.view.clone()),
                Phase::SignedIn => {
                    return Err(UiError::new(
                        UiErrorKind::Busy,
                        "Already signed in; sign out first",
                    ));
                }
                Phase::Setup | Phase::Starting => return Err(self.not_set_up()),
            }
        }
        match lk.sign_in_route(FrontEnd::App) {
            Ok(SignInRoute::Loopback) => return Ok(self.sign_in_loopback(app, lk)),
            Ok(_) => {}
            Err(e) => return Ok(self.update(|i| i.on_begin_failed(&e))),
        }
        let sign_in = match lk.begin(&self.redirect_uri).await {
            Ok(s) => s,
            Err(e) => return Ok(self.update(|i| i.on_begin_failed(&e))),
        };
        // The window offers "use a local address instead" unless the organization decides.
        let can_switch = self
            .load_sources()
            .is_ok_and(|s| !s.locked_keys().contains("app_redirect"));
        let mut attempt = 0;
        self.update(|i| {
            attempt = i.on_sign_in_begun(&sign_in.url, sign_in.expires_at, can_switch);
        });
        self.schedule_timeout(app, attempt, sign_in.expires_at);
        Ok(self.open_sign_in_page(&lk, &sign_in.url))
    }

    fn open_sign_in_page(&self, lk: &Latchkey, url: &Url) -> ViewModel {
        let opened = lk.open_browser(url).map_err(|e| app_message(&e));
        self.update(|i| i.on_browser_opened(opened))
    }

    /// The same page, or for a pushed request whose `request_uri` has expired, a fresh push's
    /// (the core decides, RFC 9126 §2.2).
    pub(crate) async fn open_browser_again(&self) -> Result<ViewModel, UiError> {
        let lk = self.latchkey()?;
        let url = self.lock().sign_in_url.clone();
        let url = url
            .ok_or_else(|| UiError::new(UiErrorKind::NotSigningIn, "No sign-in is in progress"))?;
        let url = match lk.url_to_reopen(&url).await {
            Ok(url) => url,
            Err(e) => return Ok(self.update(|i| i.on_browser_opened(Err(app_message(&e))))),
        };
        self.update(|i| i.on_reopened(&url));
        Ok(self.open_sign_in_page(&lk, &url))
    }

    /// Stops sign-in `attempt` at `at`, unless it is over by then.
    pub(super) fn schedule_timeout<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        attempt: u64,
        at: DateTime<Utc>,
    ) {
        let wait = (at - Utc::now()).to_std().unwrap_or_default();
        let app = app.clone();
        self.lock().timeout_timer.after(wait, move || {
            app.state::<AppState>().sign_in_timed_out(attempt);
        });
    }

    fn sign_in_timed_out(&self, attempt: u64) {
        let Ok(lk) = self.latchkey() else { return };
        let within = within(lk.config().login_timeout);
        self.update(|i| {
            if i.on_timed_out(attempt, &within) {
                lk.cancel();
            }
        });
    }

    pub(crate) fn cancel_sign_in(&self) -> ViewModel {
        if let Ok(lk) = self.latchkey() {
            lk.cancel();
        }
        self.update(|i| i.on_cancelled())
    }

    /// Every URL the OS delivers. Only the response to this process's sign-in is accepted; the
    /// rest are explained in the banner and change nothing else.
    pub async fn incoming<R: Runtime>(&self, app: &AppHandle<R>, url: String) -> ViewModel {
        focus_main(app);
        let Ok(lk) = self.latchkey() else {
            let product = self.identity.product_name;
            return self.update(|i| i.on_link_before_setup(product));
        };
        // The provider's return from "also sign out of the provider" (RP-Initiated Logout §3),
        // matched to the sign-out this process started; any other URL there is reported.
        match lk.logout_return(&url) {
            Some(Ok(())) => {
                return self.update(|i| {
                    i.view.error = None;
                    i.view.notice = Some(Notice::info("Signed out of the provider."));
                });
            }
            Some(Err(e)) => {
                tracing::info!("logout return rejected: {e}");
                return self.update(|i| i.view.error = Some(ErrorView::from_error(&e, None)));
            }
            None => {}
        }
        self.update(|i| i.set_finishing(true));
        match lk.resume(&url).await {
            Ok(id) => {
                self.update(|i| {
                    i.view.error = None;
                    i.view.notice = None;
                });
                self.signed_in(app, &lk, &id)
            }
            Err(e) => {
                tracing::info!(kind = ?e.kind(), "redirect rejected: {e}");
                let still_waiting = lk.is_signing_in();
                self.update(|i| i.on_redirect_error(&e, still_waiting))
            }
        }
    }
}
