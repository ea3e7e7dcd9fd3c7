//! The app's loopback redirect (`app_redirect = "loopback"`): for providers that refuse
//! private-use URI schemes for desktop clients (Google), the app listens on 127.0.0.1 like the
//! CLI (RFC 8252 §7.3), through the core's `login_loopback_to`. The window's waiting screen,
//! cancel, reopen, copy link and timeout work as for the scheme; the browser's last page sends
//! the user back to the app, and the window comes to the front.

use std::sync::Arc;

use latchkey_core::config::AppRedirect;
use latchkey_core::{Identity, Latchkey, LoginNotice, SignIn};
use tauri::{AppHandle, Manager, Runtime};

use super::AppState;
use super::settings::UserFile;
use crate::error::UiError;
use crate::links::focus_main;
use crate::models::{Phase, ViewModel, app_message};

impl AppState {
    /// "The provider refused this app's link": saves `app_redirect = "loopback"` for the shown
    /// account and starts the sign-in again on a local address.
    pub(crate) async fn use_loopback<R: Runtime>(
        &self,
        app: &AppHandle<R>,
    ) -> Result<ViewModel, UiError> {
        let lk = self.latchkey()?;
        if lk.config().app_redirect == AppRedirect::Loopback {
            return Ok(self.view());
        }
        let sources = self.load_sources()?;
        if sources.locked_keys().contains("app_redirect") {
            return Err(UiError::config(
                "Your organization manages how the provider sends you back to the app",
            ));
        }
        let file = UserFile::of(&sources)?;
        if self.lock().view.phase == Phase::Waiting {
            self.cancel_sign_in();
        }
        file.use_loopback(&lk.config().profile)?;
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
        self.update(|i| i.loopback_task.set(task))
    }

    /// The listener is up and the browser was asked to open the authorization request.
    fn loopback_opened<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        attempt: u64,
        sign_in: &SignIn,
        problem: Option<&latchkey_core::Error>,
    ) {
        let problem = problem.map(app_message);
        let mut current = false;
        self.update(|i| {
            current = i.on_loopback_opened(attempt, &sign_in.url, sign_in.expires_at, problem);
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
        result: latchkey_core::Result<Identity>,
    ) {
        if self.lock().attempt != attempt {
            return; // cancelled or timed out meanwhile: the window has moved on
        }
        self.update(|i| {
            // This task is the caller: letting go of it must not stop it.
            i.loopback_task.done();
            i.beginning = false;
        });
        match result {
            Ok(id) => {
                focus_main(app);
                self.signed_in(app, lk, &id);
            }
            Err(e) => {
                self.update(|i| i.signed_out_by(&e));
            }
        }
    }
}
