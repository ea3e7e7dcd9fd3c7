//! The app's loopback redirect (`app_redirect = "loopback"`): for providers that refuse
//! private-use URI schemes for desktop clients (Google), the app listens on 127.0.0.1 like the
//! CLI (RFC 8252 §7.3), through the core's `login_loopback_to`. The window's waiting screen,
//! cancel, reopen, copy link and timeout work as for the scheme; the browser's last page sends
//! the user back to the app, and the window comes to the front.

use std::sync::Arc;

use latchkey_core::{Latchkey, LoginNotice};
use tauri::{AppHandle, Manager, Runtime};

use super::{AppState, abort, focus_main};
use crate::models::{ErrorView, Phase, RetryAction, ViewModel, WaitingView};

impl AppState {
    /// "The provider refused this app's link": saves `app_redirect = "loopback"` for the shown
    /// account and starts the sign-in again on a local address.
    pub async fn use_loopback<R: Runtime>(
        &self,
        app: &AppHandle<R>,
    ) -> Result<ViewModel, crate::error::UiError> {
        let lk = self.latchkey()?;
        if lk.config().app_redirect == latchkey_core::config::AppRedirect::Loopback {
            return Ok(self.view());
        }
        let sources = self.load_sources()?;
        if sources.locked_keys().contains("app_redirect") {
            return Err(crate::error::UiError::new(
                "config",
                "Your organization manages how the provider sends you back to the app",
            ));
        }
        let path = sources.user_file().ok_or_else(|| {
            crate::error::UiError::new(
                "config",
                "There is no user configuration directory to save to",
            )
        })?;
        let profile = lk.config().profile.clone();
        let table = (profile != latchkey_core::config::DEFAULT_PROFILE).then_some(profile.as_str());
        if self.lock().view.phase == Phase::Waiting {
            self.cancel_sign_in();
        }
        let values = latchkey_core::config::Settings {
            app_redirect: Some("loopback".into()),
            ..Default::default()
        };
        latchkey_core::config::save_user_settings(path, table, &values, &[])?;
        self.update(|i| i.view.notice = None);
        self.startup(app).await;
        self.sign_in(app).await
    }

    /// Starts a loopback sign-in; the window follows it through the view model.
    pub(super) fn sign_in_loopback<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        lk: Arc<Latchkey>,
    ) -> ViewModel {
        let mut attempt = 0;
        self.update(|i| {
            i.attempt += 1;
            attempt = i.attempt;
            i.view.error = None;
            i.view.notice = None;
        });
        let handle = app.clone();
        let product = self.identity.product_name;
        let task = tauri::async_runtime::spawn(async move {
            let state = handle.state::<AppState>();
            let result = lk
                .login_loopback_to(product, |notice| {
                    if let LoginNotice::Opened { sign_in, result } = notice {
                        state.loopback_opened(&handle, attempt, sign_in, result.as_ref().err());
                    }
                })
                .await;
            state.loopback_finished(&handle, &lk, attempt, result);
        });
        self.update(|i| {
            abort(&mut i.loopback_task);
            i.loopback_task = Some(task);
        })
    }

    /// The listener is up and the browser was asked to open the authorization request.
    fn loopback_opened<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        attempt: u64,
        sign_in: &latchkey_core::SignIn,
        problem: Option<&latchkey_core::Error>,
    ) {
        let mut current = false;
        self.update(|i| {
            i.beginning = false;
            if i.attempt != attempt {
                return;
            }
            current = true;
            i.view.phase = Phase::Waiting;
            let mut waiting = WaitingView::new(&sign_in.url, sign_in.expires_at);
            match problem {
                None => waiting.browser_opened = true,
                Some(e) => waiting.browser_problem = Some(crate::models::app_message(e)),
            }
            i.view.waiting = Some(waiting);
            i.sign_in_url = Some(sign_in.url.clone());
        });
        if current {
            self.schedule_timeout(app, attempt, sign_in.expires_at);
        }
    }

    fn loopback_finished<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        lk: &Latchkey,
        attempt: u64,
        result: latchkey_core::Result<latchkey_core::Identity>,
    ) {
        if self.lock().attempt != attempt {
            return; // cancelled or timed out meanwhile: the window has moved on
        }
        self.update(|i| {
            i.loopback_task = None;
            i.beginning = false;
        });
        match result {
            Ok(id) => {
                focus_main(app);
                self.signed_in(app, lk, &id);
            }
            Err(e) => {
                self.update(|i| {
                    i.signed_out();
                    i.view.error = Some(ErrorView::from_error(&e, Some(RetryAction::SignIn)));
                });
            }
        }
    }
}
