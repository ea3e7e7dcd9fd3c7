//! The controller: one state machine between the core and the window.
//!
//! Every change goes through [`AppState::update`], which bumps `seq` and wakes the window's long
//! poll ([`AppState::next_view`]), which answers with the whole [`ViewModel`]. Commands return the
//! same view model. Neither carries a token: tokens stay inside `latchkey-core` and the keychain.
//!
//! A redirect travels: OS → deep-link / single-instance → [`AppState::incoming`] →
//! `Latchkey::resume` → keychain → [`IdentityView`] → window.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use latchkey_core::config::{self, Paths, Scopes, Settings, Sources};
use latchkey_core::{Error, ErrorKind, Identity, Latchkey, Ports};
use tauri::async_runtime::JoinHandle;
use tauri::{AppHandle, Manager, Runtime};
use url::Url;

use crate::error::UiError;
use crate::models::{
    ErrorView, FORM_KEYS, IdentityView, Moment, Notice, NoticeKind, Phase, ProviderView,
    RetryAction, SetupView, ViewModel, WaitingView, app_message, title,
};

mod accounts;
mod loopback;

/// The window the plugin focuses when a redirect arrives, and whose webview it tunes.
pub const MAIN_WINDOW: &str = "main";

/// How long [`AppState::next_view`] holds the window's request when nothing changes. The window
/// then asks again; bounded so that no request stays open for good.
pub const LONG_POLL: Duration = Duration::from_secs(25);

/// Reads an environment variable; injected so tests don't touch the process environment.
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Waits between automatic retries of a failed refresh.
const RETRY_DELAYS: [u64; 6] = [5, 15, 30, 60, 120, 300];

/// The first-run form's fields.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsForm {
    pub issuer: String,
    pub client_id: String,
    pub scopes: String,
    /// `scheme` or `loopback`; absent keeps what is configured.
    #[serde(default)]
    pub app_redirect: Option<String>,
}

pub struct AppState {
    identity: latchkey_core::AppIdentity,
    /// The private-use redirect scheme (RFC 8252 §7.1), from `tauri.conf.json`.
    scheme: String,
    env: Env,
    ports: Ports,
    redirect_uri: Url,
    inner: Mutex<Inner>,
    /// Serializes refreshes and sign-out: a refresh finishing after a sign-out would otherwise
    /// store the session again.
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
    refresh_timer: Option<JoinHandle<()>>,
    timeout_timer: Option<JoinHandle<()>>,
    failures: u32,
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
    loopback_task: Option<JoinHandle<()>>,
    /// The signed-in accounts that are not shown, refreshing in the background.
    accounts: std::collections::BTreeMap<String, accounts::Slot>,
}

impl Inner {
    fn signed_out(&mut self) {
        self.view.phase = Phase::SignedOut;
        self.view.identity = None;
        self.view.waiting = None;
        self.sign_in_url = None;
        if self
            .view
            .notice
            .as_ref()
            .is_some_and(|n| n.kind == NoticeKind::RefreshRetry)
        {
            self.view.notice = None;
        }
        abort(&mut self.refresh_timer);
        abort(&mut self.timeout_timer);
        abort(&mut self.loopback_task);
        self.failures = 0;
        self.picture_claim = None;
        self.picture = None;
    }

    /// The identity to show, with the fetched picture when it is the one its claims name.
    fn show_identity(&mut self, mut view: IdentityView, id: &Identity) {
        self.picture_claim = id.picture.clone();
        if view.picture.is_none()
            && let (Some(claim), Some((fetched, data))) = (&id.picture, &self.picture)
            && claim == fetched
        {
            view.picture = Some(data.clone());
        }
        self.view.identity = Some(view);
    }

    /// Whether the picture named by the claims still has to be fetched (and mark it as under way).
    fn wants_picture(&mut self) -> bool {
        let wanted = self
            .view
            .identity
            .as_ref()
            .is_some_and(|v| v.picture.is_none())
            && self.picture_claim.is_some()
            && self.picture_fetch.is_none();
        if wanted {
            self.picture_fetch = self.picture_claim.clone();
        }
        wanted
    }
}

fn abort(timer: &mut Option<JoinHandle<()>>) {
    if let Some(t) = timer.take() {
        t.abort();
    }
}

impl AppState {
    /// The controller for `identity`'s app, whose redirects arrive at `<scheme>:/callback`.
    pub fn new(
        identity: latchkey_core::AppIdentity,
        env: Env,
        ports: Ports,
        scheme: &str,
    ) -> Result<Self, String> {
        crate::links::check_scheme(scheme)?;
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
        UiError::new(
            "config",
            format!("{} is not set up yet", self.identity.product_name),
        )
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

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

    // ----- start-up ------------------------------------------------------------------------

    /// Reads the configuration, then the stored session: signed in silently when there is one.
    pub async fn startup<R: Runtime>(&self, app: &AppHandle<R>) -> ViewModel {
        let loaded = self.load_sources().and_then(|s| s.merged().map(|m| (s, m)));
        let (sources, merged) = match loaded {
            Ok(v) => v,
            Err(e) => {
                return self.update(|i| {
                    i.latchkey = None;
                    i.signed_out();
                    i.view.phase = Phase::Setup;
                    i.view.setup = None;
                    i.view.error = Some(ErrorView::from_error(&e, Some(RetryAction::Startup)));
                });
            }
        };
        let setup = SetupView::from_merged(&merged, sources.user_file());
        let missing = ["issuer", "client_id"]
            .iter()
            .any(|k| merged.text(k).is_none_or(|(v, _)| v.trim().is_empty()));
        let config = if missing {
            None
        } else {
            Some(sources.resolve())
        };
        let config = match config {
            Some(Ok(c)) => c,
            other => {
                let error = other.and_then(Result::err);
                return self.update(|i| {
                    i.latchkey = None;
                    i.signed_out();
                    i.view.phase = Phase::Setup;
                    i.view.provider = None;
                    i.view.setup = Some(setup);
                    i.view.error = error.map(|e| ErrorView::from_error(&e, None));
                });
            }
        };
        let latchkey = Arc::new(Latchkey::new(config, self.ports.clone()));
        {
            let mut i = self.lock();
            i.view.provider = Some(ProviderView::from_issuer(&latchkey.config().issuer));
            i.view.setup = None;
            i.latchkey = Some(Arc::clone(&latchkey));
        }
        self.restore(app, &latchkey).await;
        self.reload_accounts(app).await;
        self.view()
    }

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

    // ----- the session while running --------------------------------------------------------

    fn signed_in<R: Runtime>(&self, app: &AppHandle<R>, lk: &Latchkey, id: &Identity) -> ViewModel {
        let view = IdentityView::new(id, &lk.config().scope_descriptions);
        let mut fetch = false;
        let vm = self.update(|i| {
            i.view.phase = Phase::SignedIn;
            i.show_identity(view, id);
            fetch = i.wants_picture();
            i.view.waiting = None;
            i.sign_in_url = None;
            i.failures = 0;
            abort(&mut i.timeout_timer);
            if i.view
                .notice
                .as_ref()
                .is_some_and(|n| n.kind == NoticeKind::RefreshRetry)
            {
                i.view.notice = None;
            }
            if i.view
                .error
                .as_ref()
                .is_some_and(|e| e.retry == Some(RetryAction::Refresh))
            {
                i.view.error = None;
            }
        });
        self.schedule_refresh(app, id.refresh_at);
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
            let Ok(Some(picture)) = fetched else {
                if let Err(e) = fetched {
                    tracing::info!("the profile picture is not shown: {e}");
                }
                state.lock().picture_fetch = None;
                return;
            };
            let data = picture.data_url();
            state.update(|i| {
                i.picture_fetch = None;
                if i.picture_claim.as_ref() == Some(&claim)
                    && let Some(view) = i.view.identity.as_mut()
                {
                    view.picture = Some(data.clone());
                }
                i.picture = Some((claim, data));
            });
        });
    }

    /// A refresh (or the start-up `status()`) failed. Only a session the provider ended signs
    /// out; anything else keeps the user signed in and retries.
    fn refresh_failed<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        lk: &Latchkey,
        e: &Error,
        stored: Option<&Identity>,
    ) -> ViewModel {
        if matches!(e.kind(), ErrorKind::SessionExpired | ErrorKind::NotSignedIn) {
            return self.update(|i| {
                i.signed_out();
                i.view.error = Some(ErrorView::from_error(e, Some(RetryAction::SignIn)));
            });
        }
        let fallback = stored.map(|id| IdentityView::new(id, &lk.config().scope_descriptions));
        let transient = e.is_transient();
        let mut delay = None;
        let vm = self.update(|i| {
            i.view.phase = Phase::SignedIn;
            if let (Some(f), Some(id)) = (fallback, stored) {
                i.show_identity(f, id);
            }
            if transient {
                let wait = Duration::from_secs(RETRY_DELAYS[(i.failures as usize).min(RETRY_DELAYS.len() - 1)]);
                i.failures += 1;
                delay = Some(wait);
                let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                i.view.notice = Some(Notice {
                    kind: NoticeKind::RefreshRetry,
                    message: format!(
                        "Couldn't refresh the session. You are still signed in; {} will try again by itself.",
                        self.identity.product_name
                    ),
                    detail: Some(app_message(e)),
                    retry_at: Some(Moment::new(at)),
                });
            } else {
                i.view.error = Some(ErrorView::from_error(e, Some(RetryAction::Refresh)));
            }
        });
        if let Some(wait) = delay {
            self.schedule_refresh_in(app, wait);
        }
        vm
    }

    fn schedule_refresh<R: Runtime>(&self, app: &AppHandle<R>, at: DateTime<Utc>) {
        // A little past `refresh_at`, so the core sees the token as due.
        self.schedule_refresh_at(app, at + chrono::Duration::milliseconds(250));
    }

    fn schedule_refresh_in<R: Runtime>(&self, app: &AppHandle<R>, wait: Duration) {
        self.schedule_refresh_at(
            app,
            Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default(),
        );
    }

    fn schedule_refresh_at<R: Runtime>(&self, app: &AppHandle<R>, at: DateTime<Utc>) {
        let app = app.clone();
        let timer = tauri::async_runtime::spawn(async move {
            // Sleep in slices against the wall clock: a monotonic timer stops while the computer
            // sleeps, and the refresh must not come an hour late after a suspend.
            while let Ok(left) = (at - Utc::now()).to_std() {
                if left.is_zero() {
                    break;
                }
                tokio::time::sleep(left.min(Duration::from_secs(30))).await;
            }
            // From here on the refresh runs to completion even if the timer is aborted: a
            // refresh cut short could lose a rotated refresh token.
            tauri::async_runtime::spawn(async move {
                app.state::<AppState>().refresh_now(&app).await;
            });
        });
        let mut i = self.lock();
        abort(&mut i.refresh_timer);
        i.refresh_timer = Some(timer);
    }

    /// `status()` refreshes when the access token is due; the window only sees a new expiry.
    pub async fn refresh_now<R: Runtime>(&self, app: &AppHandle<R>) -> ViewModel {
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

    // ----- sign-in ---------------------------------------------------------------------------

    pub async fn sign_in<R: Runtime>(&self, app: &AppHandle<R>) -> Result<ViewModel, UiError> {
        let lk = self.latchkey()?;
        {
            let mut i = self.lock();
            match i.view.phase {
                Phase::SignedOut if !i.beginning => i.beginning = true,
                Phase::SignedOut | Phase::Waiting => return Ok(i.view.clone()),
                Phase::SignedIn => {
                    return Err(UiError::new("busy", "Already signed in; sign out first"));
                }
                Phase::Setup | Phase::Starting => {
                    return Err(self.not_set_up());
                }
            }
        }
        if lk.config().app_redirect == config::AppRedirect::Loopback {
            return Ok(self.sign_in_loopback(app, lk));
        }
        let begun = lk.begin(&self.redirect_uri).await;
        let sign_in = match begun {
            Ok(s) => s,
            Err(e) => {
                return Ok(self.update(|i| {
                    i.beginning = false;
                    i.view.notice = None;
                    i.view.error = Some(ErrorView::from_error(&e, Some(RetryAction::SignIn)));
                }));
            }
        };
        let can_switch = self
            .load_sources()
            .is_ok_and(|s| !s.locked_keys().contains("app_redirect"));
        let mut attempt = 0;
        self.update(|i| {
            i.beginning = false;
            i.attempt += 1;
            attempt = i.attempt;
            i.view.phase = Phase::Waiting;
            let mut waiting = WaitingView::new(&sign_in.url, sign_in.expires_at);
            waiting.can_use_loopback = can_switch;
            i.view.waiting = Some(waiting);
            i.view.error = None;
            i.view.notice = None;
            i.sign_in_url = Some(sign_in.url.clone());
        });
        self.schedule_timeout(app, attempt, sign_in.expires_at);
        Ok(self.open_sign_in_page(&lk, &sign_in.url))
    }

    fn open_sign_in_page(&self, lk: &Latchkey, url: &Url) -> ViewModel {
        let opened = lk.open_browser(url);
        self.update(|i| {
            if let Some(w) = i.view.waiting.as_mut() {
                match &opened {
                    Ok(()) => {
                        w.browser_opened = true;
                        w.browser_problem = None;
                    }
                    Err(e) => w.browser_problem = Some(app_message(e)),
                }
            }
        })
    }

    pub fn open_browser_again(&self) -> Result<ViewModel, UiError> {
        let lk = self.latchkey()?;
        let url = self.lock().sign_in_url.clone();
        let url = url.ok_or_else(|| UiError::new("not_signing_in", "No sign-in is in progress"))?;
        Ok(self.open_sign_in_page(&lk, &url))
    }

    fn schedule_timeout<R: Runtime>(&self, app: &AppHandle<R>, attempt: u64, at: DateTime<Utc>) {
        let wait = (at - Utc::now()).to_std().unwrap_or_default();
        let app = app.clone();
        let timer = tauri::async_runtime::spawn(async move {
            tokio::time::sleep(wait).await;
            app.state::<AppState>().sign_in_timed_out(attempt);
        });
        let mut i = self.lock();
        abort(&mut i.timeout_timer);
        i.timeout_timer = Some(timer);
    }

    fn sign_in_timed_out(&self, attempt: u64) {
        let Ok(lk) = self.latchkey() else { return };
        let minutes = lk.config().login_timeout.as_secs().div_ceil(60);
        let within = if lk.config().login_timeout.as_secs() < 60 {
            format!("{} seconds", lk.config().login_timeout.as_secs())
        } else if minutes == 1 {
            "a minute".into()
        } else {
            format!("{minutes} minutes")
        };
        self.update(|i| {
            if i.attempt != attempt || i.view.phase != Phase::Waiting {
                return;
            }
            lk.cancel();
            i.timeout_timer = None;
            i.signed_out();
            i.view.error = Some(ErrorView {
                kind: "timed_out".into(),
                title: title(ErrorKind::TimedOut).into(),
                message: format!(
                    "The sign-in was not finished within {within}, so it was stopped. Start again when you're ready."
                ),
                description: None,
                retry: Some(RetryAction::SignIn),
            });
        });
    }

    pub fn cancel_sign_in(&self) -> ViewModel {
        if let Ok(lk) = self.latchkey() {
            lk.cancel();
        }
        self.update(|i| {
            if i.view.phase != Phase::Waiting {
                return;
            }
            i.attempt += 1;
            i.signed_out();
            i.view.error = None;
            i.view.notice = Some(Notice::info(
                "Sign-in cancelled. If the browser finishes that sign-in anyway, it will be ignored.",
            ));
        })
    }

    /// Every URL the OS delivers. Only the response to this process's sign-in is accepted; the
    /// rest are explained in the banner and change nothing else.
    pub async fn incoming<R: Runtime>(&self, app: &AppHandle<R>, url: String) -> ViewModel {
        focus_main(app);
        let Ok(lk) = self.latchkey() else {
            return self.update(|i| {
                i.view.error = Some(ErrorView {
                    kind: "foreign_callback".into(),
                    title: title(ErrorKind::ForeignCallback).into(),
                    message: format!(
                        "{} is not set up yet, so the sign-in link was ignored.",
                        self.identity.product_name
                    ),
                    description: None,
                    retry: None,
                });
            });
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
        self.update(|i| {
            if let Some(w) = i.view.waiting.as_mut() {
                w.finishing = true;
            }
        });
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
                self.update(|i| {
                    if let Some(w) = i.view.waiting.as_mut() {
                        w.finishing = false;
                    }
                    if i.view.phase == Phase::Waiting && !still_waiting {
                        i.signed_out();
                    }
                    let retry = (i.view.phase == Phase::SignedOut).then_some(RetryAction::SignIn);
                    i.view.error = Some(ErrorView::from_error(&e, retry));
                })
            }
        }
    }

    // ----- sign-out, settings, banner ---------------------------------------------------------

    /// Revokes and forgets the session. With `also_provider`, opens the provider's end-session
    /// page in the system browser, from here: its URL carries the ID token as `id_token_hint`
    /// and never goes to the window.
    pub async fn sign_out(&self, also_provider: bool) -> Result<ViewModel, UiError> {
        let lk = self.latchkey()?;
        let _gate = self.session_gate.lock().await;
        let out = match lk.logout().await {
            Ok(out) => out,
            Err(e) => {
                return Ok(self.update(|i| i.view.error = Some(ErrorView::from_error(&e, None))));
            }
        };
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
        if also_provider {
            match &out.end_session_url {
                Some(url) => match lk.open_browser(url) {
                    Ok(()) => {
                        message.push_str(" Your browser is signing you out of the provider too.")
                    }
                    Err(_) => message.push_str(
                        " The browser could not be opened to sign you out of the provider.",
                    ),
                },
                None => {
                    message.push_str(" The provider offers no way to sign out of it from an app.")
                }
            }
        }
        Ok(self.update(|i| {
            i.signed_out();
            i.view.error = None;
            i.view.notice = Some(Notice::info(message));
        }))
    }

    /// The first-run form: validated by fetching the provider's discovery document before
    /// anything is saved.
    pub async fn save_settings<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        form: SettingsForm,
    ) -> Result<ViewModel, UiError> {
        // Issue 8, finding 13: only the first-run form saves settings. Once set up, a page that
        // was made to call this could otherwise repoint a signed-in app at another provider.
        if self.lock().view.phase != Phase::Setup {
            return Err(UiError::new(
                "config",
                "Settings can only be changed before the app is set up",
            ));
        }
        let sources = self.load_sources()?;
        let merged = sources.merged()?;
        let current = SetupView::from_merged(&merged, sources.user_file());
        let read_only: BTreeSet<&str> = FORM_KEYS
            .iter()
            .zip([&current.issuer, &current.client_id, &current.scopes])
            .filter(|(_, f)| f.read_only)
            .map(|(k, _)| *k)
            .collect();
        let editable =
            |key: &str, value: &str| (!read_only.contains(key)).then(|| value.trim().to_owned());
        let adding = self.lock().adding.clone();
        let app_redirect = form
            .app_redirect
            .as_deref()
            .filter(|_| !current.app_redirect.read_only)
            .map(|v| v.trim().to_owned());
        let flags = Settings {
            issuer: editable("issuer", &form.issuer),
            client_id: editable("client_id", &form.client_id),
            scopes: editable("scopes", &form.scopes).map(Scopes::Text),
            app_redirect: app_redirect.clone(),
            profile: adding.clone(),
            ..Settings::default()
        };
        if flags.issuer.as_deref() == Some("") {
            return Err(UiError::new(
                "config",
                "Enter the issuer: the address of your sign-in provider",
            ));
        }
        if flags.client_id.as_deref() == Some("") {
            return Err(UiError::new(
                "config",
                format!(
                    "Enter the client ID your provider registered for {}",
                    self.identity.product_name
                ),
            ));
        }
        let candidate = self.load_with(flags)?.resolve()?;
        Latchkey::new(candidate.clone(), self.ports.clone())
            .check_provider()
            .await?;
        let path = sources.user_file().ok_or_else(|| {
            UiError::new(
                "config",
                "There is no user configuration directory to save to",
            )
        })?;
        let skip: Vec<&str> = read_only.into_iter().collect();
        // A new account goes into its own `[profiles.<name>]` table; the first run into the top
        // level. Either way no existing account is repointed.
        let values = Settings {
            issuer: Some(candidate.issuer.clone()),
            client_id: Some(candidate.client_id.clone()),
            scopes: Some(Scopes::List(candidate.scopes.clone())),
            app_redirect,
            ..Settings::default()
        };
        config::save_user_settings(path, adding.as_deref(), &values, &skip)?;
        self.update(|i| {
            i.view.error = None;
            if let Some(name) = i.adding.take() {
                i.profile = Some(name);
            }
        });
        Ok(self.startup(app).await)
    }

    /// The banner's retry: refresh when signed in, otherwise read everything again.
    pub async fn retry<R: Runtime>(&self, app: &AppHandle<R>) -> ViewModel {
        let phase = self.lock().view.phase;
        self.update(|i| i.view.error = None);
        match phase {
            Phase::SignedIn => self.refresh_now(app).await,
            Phase::Waiting => self.view(),
            _ => self.startup(app).await,
        }
    }

    pub fn dismiss(&self) -> ViewModel {
        self.update(|i| {
            i.view.error = None;
            if i.view
                .notice
                .as_ref()
                .is_some_and(|n| n.kind == NoticeKind::Info)
            {
                i.view.notice = None;
            }
        })
    }
}

/// Brings the window forward when a redirect arrives, so the user sees the result.
pub fn focus_main<R: Runtime>(app: &AppHandle<R>) {
    if let Some(w) = app.get_webview_window(MAIN_WINDOW) {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
    }
}
