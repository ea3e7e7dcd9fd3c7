//! The session while signed in: the silent refresh at `refresh_at`, retries after a failure, and
//! the profile picture.

use latchkey_core::{Error, Identity, Latchkey};
use tauri::{AppHandle, Manager, Runtime};

use super::AppState;
use super::schedule::refresh_due;
use crate::models::{IdentityView, Phase, ViewModel};

impl AppState {
    /// Shows `id` signed in and schedules its next refresh (and fetches its picture).
    pub(super) fn signed_in<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        lk: &Latchkey,
        id: &Identity,
    ) -> ViewModel {
        let view = IdentityView::new(id, &lk.config().scope_descriptions);
        let mut fetch = false;
        let vm = self.update(|i| {
            fetch = i.on_signed_in(view, id.picture.clone());
            let app = app.clone();
            i.refresh_timer.at(refresh_due(id.refresh_at), async move {
                app.state::<AppState>().refresh_now(&app).await;
            });
        });
        if fetch {
            self.fetch_picture(app, id.clone());
        }
        vm
    }

    /// The picture is fetched by the core and shown as a `data:` URL: the window loads nothing
    /// remote (CSP `img-src 'self' data:`). Until it arrives, or if it can't be had, the window
    /// shows initials; a failure is retried at the next refresh.
    fn fetch_picture<R: Runtime>(&self, app: &AppHandle<R>, id: Identity) {
        let (Some(lk), Some(claim)) = (self.lock().latchkey.clone(), id.picture.clone()) else {
            return;
        };
        let app = app.clone();
        tauri::async_runtime::spawn(async move {
            let fetched = lk.picture(&id).await;
            let state = app.state::<AppState>();
            match fetched {
                Ok(Some(picture)) => {
                    let data = picture.data_url();
                    state.update(|i| i.on_picture(claim, data));
                }
                other => {
                    if let Err(e) = other {
                        tracing::info!("the profile picture is not shown: {e}");
                    }
                    state.lock().picture_fetch = None;
                }
            }
        });
    }

    /// A refresh (or the start-up `status()`) failed: see `Inner::on_refresh_failed`; a retry
    /// is scheduled when it says so.
    pub(super) fn refresh_failed<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        lk: &Latchkey,
        e: &Error,
        stored: Option<&Identity>,
    ) -> ViewModel {
        let stored = stored.map(|id| {
            let view = IdentityView::new(id, &lk.config().scope_descriptions);
            (view, id.picture.clone())
        });
        let product = self.identity.product_name;
        self.update(|i| {
            if let Some(wait) = i.on_refresh_failed(e, stored, product) {
                let due = chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                let app = app.clone();
                i.refresh_timer.at(due, async move {
                    app.state::<AppState>().refresh_now(&app).await;
                });
            }
        })
    }

    /// `status()` refreshes when the access token is due; the window only sees a new expiry.
    pub(crate) async fn refresh_now<R: Runtime>(&self, app: &AppHandle<R>) -> ViewModel {
        let _gate = self.session_gate.lock().await;
        let (lk, phase) = {
            let i = self.lock();
            (i.latchkey.clone(), i.view.phase)
        };
        let Some(lk) = lk.filter(|_| phase == Phase::SignedIn) else {
            return self.view();
        };
        match lk.status().await {
            Ok(id) => self.signed_in(app, &lk, &id),
            Err(e) => self.refresh_failed(app, &lk, &e, None),
        }
    }
}
