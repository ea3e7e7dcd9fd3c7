//! Start-up: the configuration, then the stored session, signed in silently when there is one.

use std::sync::Arc;

use latchkey_core::Latchkey;
use tauri::{AppHandle, Runtime};

use super::{AppState, Inner};
use crate::models::{ErrorView, RetryAction, SetupView, ViewModel};

impl AppState {
    /// Reads the configuration, then the stored session: signed in silently when there is one.
    /// Also what every "read everything again" does (retry, saved settings, switched account).
    pub(crate) async fn startup<R: Runtime>(&self, app: &AppHandle<R>) -> ViewModel {
        let loaded = self.load_sources().and_then(|s| s.merged().map(|m| (s, m)));
        let (sources, merged) = match loaded {
            Ok(v) => v,
            Err(e) => return self.update(|i| i.on_unreadable_config(&e)),
        };
        let missing = ["issuer", "client_id"]
            .iter()
            .any(|k| merged.text(k).is_none_or(|(v, _)| v.trim().is_empty()));
        let config = if missing {
            Err(None)
        } else {
            sources.resolve().map_err(Some)
        };
        let config = match config {
            Ok(c) => c,
            Err(error) => {
                let setup = SetupView::from_merged(&merged, sources.user_file());
                return self.update(|i| i.on_needs_setup(setup, error.as_ref()));
            }
        };
        let latchkey = Arc::new(Latchkey::new(config, self.ports.clone()));
        {
            let mut i = self.lock();
            i.on_set_up(&latchkey.config().issuer);
            i.latchkey = Some(Arc::clone(&latchkey));
        }
        self.restore(app, &latchkey).await;
        self.reload_accounts(app).await;
        self.view()
    }

    /// The stored session, checked with the provider (refreshed when due).
    async fn restore<R: Runtime>(&self, app: &AppHandle<R>, lk: &Arc<Latchkey>) -> ViewModel {
        match lk.current().await {
            Err(e) => self.update(|i| {
                i.signed_out();
                i.view.error = Some(ErrorView::from_error(&e, Some(RetryAction::Startup)));
            }),
            Ok(None) => self.update(Inner::signed_out),
            Ok(Some(stored)) => {
                let _gate = self.session_gate.lock().await;
                match lk.status().await {
                    Ok(id) => self.signed_in(app, lk, &id),
                    Err(e) => self.refresh_failed(app, lk, &e, Some(&stored)),
                }
            }
        }
    }
}
