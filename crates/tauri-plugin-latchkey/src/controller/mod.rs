//! The controller: one state machine between the core and the window.
//!
//! Every change goes through [`AppState::update`], which bumps `seq` and wakes the window's long
//! poll ([`AppState::next_view`]), which answers with the whole [`ViewModel`]. Commands return the
//! same view model. Neither carries a token: tokens stay inside `latchkey-core` and the keychain.
//!
//! The transitions themselves are plain functions on [`Inner`] (`view.rs`), tested without Tauri;
//! the other files are the effects around them: timers, the core's calls, the user file.
//!
//! A redirect travels: OS → deep-link / single-instance (`links.rs`) → [`AppState::incoming`] →
//! `Latchkey::resume` → keychain → `IdentityView` → window.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use latchkey_core::config::{Paths, Settings, Sources};
use latchkey_core::{Latchkey, Ports};
use tauri::{AppHandle, Runtime};
use url::Url;

use crate::error::UiError;
use crate::models::{Phase, ViewModel};

mod accounts;
mod loopback;
mod refresh;
mod schedule;
mod settings;
mod sign_in;
mod sign_out;
mod startup;
mod view;

pub(crate) use settings::SettingsForm;

/// How long [`AppState::next_view`] holds the window's request when nothing changes. The window
/// then asks again; bounded so that no request stays open for good.
pub(crate) const LONG_POLL: Duration = Duration::from_secs(25);

/// Reads an environment variable; injected so tests don't touch the process environment.
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The plugin's state, one per app: reach it with [`crate::LatchkeyExt::latchkey`].
pub struct AppState {
    identity: latchkey_core::AppIdentity,
    /// The private-use redirect scheme (RFC 8252 §7.1), from `tauri.conf.json`.
    scheme: String,
    env: Env,
    ports: Ports,
    redirect_uri: Url,
    inner: Mutex<Inner>,
    /// Orders the view updates of refreshes and sign-outs. The core already orders their
    /// keychain writes, but a refresh answered just before a sign-out could otherwise show its
    /// identity, and set its timer, after the sign-out: signed in on a forgotten session.
    session_gate: tokio::sync::Mutex<()>,
    /// The view's latest `seq`, for the window waiting in [`AppState::next_view`].
    changes: tokio::sync::watch::Sender<u64>,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("redirect_uri", &self.redirect_uri.as_str())
            .finish_non_exhaustive()
    }
}

/// Everything behind the lock: the view and what the transitions need beside it.
#[derive(Default)]
struct Inner {
    view: ViewModel,
    latchkey: Option<Arc<Latchkey>>,
    /// The authorization URL of the sign-in in progress (not a credential).
    sign_in_url: Option<Url>,
    /// Numbers sign-in attempts, so a stale timeout does nothing.
    attempt: u64,
    /// A `begin` is in flight (double clicks start one sign-in).
    beginning: bool,
    refresh_timer: schedule::Task,
    timeout_timer: schedule::Task,
    /// The shown account's failed refreshes in a row.
    backoff: schedule::Backoff,
    /// The signed-in user's `picture` claim, and the last picture fetched: (claim, `data:` URL).
    picture_claim: Option<String>,
    picture: Option<(String, String)>,
    /// A fetch of this claim is in flight.
    picture_fetch: Option<String>,
    /// The profile shown, when the user switched to one (else the configured one).
    profile: Option<String>,
    /// The new profile the "another provider" form is adding.
    adding: Option<String>,
    /// The loopback sign-in waiting for its redirect (`app_redirect = "loopback"`).
    loopback_task: schedule::Task,
    /// The signed-in accounts that are not shown, refreshing in the background.
    accounts: BTreeMap<String, accounts::Slot>,
}

impl AppState {
    /// The controller for `identity`'s app, whose redirects arrive at `<scheme>:/callback`.
    pub(crate) fn new(
        identity: latchkey_core::AppIdentity,
        env: Env,
        ports: Ports,
        scheme: &str,
    ) -> Result<Self, String> {
        latchkey_core::deep_link::check_scheme(scheme)?;
        // `<scheme>:/callback`: one slash, as RFC 8252 §7.1 shows for private-use schemes.
        let redirect_uri = Url::parse(&format!("{scheme}:/callback"))
            .map_err(|e| format!("redirect scheme `{scheme}`: {e}"))?;
        Ok(Self {
            identity,
            scheme: scheme.to_owned(),
            env,
            ports,
            redirect_uri,
            inner: Mutex::new(Inner::default()),
            session_gate: tokio::sync::Mutex::new(()),
            changes: tokio::sync::watch::Sender::new(0),
        })
    }

    /// The redirect scheme this app registered.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The identity of the app the plugin works for.
    pub fn identity(&self) -> &latchkey_core::AppIdentity {
        &self.identity
    }

    fn not_set_up(&self) -> UiError {
        UiError::config(format!("{} is not set up yet", self.identity.product_name))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the window shows now.
    pub fn view(&self) -> ViewModel {
        self.lock().view.clone()
    }

    /// Applies a change and wakes the window's long poll.
    fn update(&self, f: impl FnOnce(&mut Inner)) -> ViewModel {
        let mut inner = self.lock();
        f(&mut inner);
        inner.view.accounts = inner.account_views();
        inner.view.seq += 1;
        // Sent under the lock, so that the watched `seq` never goes backwards.
        self.changes.send_replace(inner.view.seq);
        inner.view.clone()
    }

    /// The view once its `seq` is past `after`: at once if it already is (or there is no
    /// `after`), else at the next change, or unchanged after `wait`.
    ///
    /// This is how the window hears of changes, rather than through events: each Tauri event is a
    /// script the UI process evaluates in the page, and the first one makes WebKitGTK start a
    /// JavaScript engine in the UI process as well, about 2.4 MB PSS (`tests/bench/app.sh`).
    /// With no listener, Tauri evaluates nothing.
    pub async fn next_view(&self, after: Option<u64>, wait: Duration) -> ViewModel {
        let mut changes = self.changes.subscribe();
        let past = |seq: &u64| after.is_none_or(|after| *seq > after);
        // Timed out or not, the answer is the view as it is now.
        let _ = tokio::time::timeout(wait, changes.wait_for(past)).await;
        self.view()
    }

    /// How many long polls are waiting in [`AppState::next_view`] now: lets a test change the
    /// view only once its poll is listening, instead of sleeping and hoping.
    #[doc(hidden)]
    pub fn waiting_polls(&self) -> usize {
        self.changes.receiver_count()
    }

    fn latchkey(&self) -> Result<Arc<Latchkey>, UiError> {
        self.lock()
            .latchkey
            .clone()
            .ok_or_else(|| self.not_set_up())
    }

    /// The sources, with the shown profile selected when the user switched to one.
    fn load_sources(&self) -> latchkey_core::Result<Sources> {
        let (profile, adding) = {
            let i = self.lock();
            (i.profile.clone(), i.adding.clone())
        };
        let sources = self.load_with(Settings::default())?;
        Ok(match adding.or(profile) {
            Some(p) => sources.for_profile(&p),
            None => sources,
        })
    }

    /// The same loader as the CLI: `<PREFIX>_*` env, the user file, the managed file.
    fn load_with(&self, flags: Settings) -> latchkey_core::Result<Sources> {
        let env = |k: &str| (self.env)(k);
        Sources::load(flags, &Paths::standard(&self.identity, &env), &env)
    }

    /// The banner's retry: refresh when signed in, otherwise read everything again.
    pub(crate) async fn retry<R: Runtime>(&self, app: &AppHandle<R>) -> ViewModel {
        let phase = self.lock().view.phase;
        self.update(|i| i.view.error = None);
        match phase {
            Phase::SignedIn => self.refresh_now(app).await,
            Phase::Waiting => self.view(),
            _ => self.startup(app).await,
        }
    }

    pub(crate) fn dismiss(&self) -> ViewModel {
        self.update(Inner::dismiss)
    }
}
