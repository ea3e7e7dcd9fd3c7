//! Several accounts: every profile with a stored session is listed, and the ones not shown
//! refresh silently in the background, each at its own time, each failing on its own.
//!
//! The shown account is the controller's foreground (`Inner::latchkey`, its timers and view).
//! The others live here as [`Slot`]s. Switching makes another profile the foreground; the one
//! that was shown becomes a slot at the next [`AppState::reload_accounts`]. The list is built the
//! way `latchkey accounts` builds it: the profiles the configuration names, each read from the
//! keychain (no network).

use std::collections::BTreeMap;
use std::sync::Arc;

use latchkey_core::{ErrorKind, Identity, Latchkey};
use tauri::{AppHandle, Manager, Runtime};

use super::schedule::{Backoff, Task, refresh_due};
use super::settings::UserFile;
use super::{AppState, Inner};
use crate::error::UiError;
use crate::models::{AccountView, FORM_KEYS, Phase, SetupView, ViewModel, app_message, initials};

/// A signed-in account that is not the one shown.
pub(super) struct Slot {
    pub(super) latchkey: Arc<Latchkey>,
    identity: Option<Identity>,
    /// What went wrong with this account alone, in plain words.
    problem: Option<String>,
    backoff: Backoff,
    timer: Task,
}

/// At most this many accounts are listed (and refreshed).
const MAX_ACCOUNTS: usize = 16;

/// One line of the switcher.
fn account_view(profile: &str, name: String, initials: String, issuer: String) -> AccountView {
    AccountView {
        profile: profile.to_owned(),
        name,
        initials,
        picture: None,
        issuer,
        selected: false,
        signed_in: true,
        problem: None,
    }
}

impl Inner {
    /// The profile shown, once set up.
    fn shown_profile(&self) -> Option<String> {
        self.latchkey.as_ref().map(|lk| lk.config().profile.clone())
    }

    /// The list for the window: the shown account (when signed in) and every slot with a session
    /// or a problem.
    pub(super) fn account_views(&self) -> Vec<AccountView> {
        let mut list = Vec::new();
        if let (Some(profile), Some(id)) = (self.shown_profile(), &self.view.identity) {
            let name = id.name.clone().unwrap_or_else(|| id.subject.clone());
            list.push(AccountView {
                picture: id.picture.clone(),
                selected: true,
                ..account_view(&profile, name, id.initials.clone(), id.issuer.clone())
            });
        }
        for (profile, slot) in &self.accounts {
            let view = match (&slot.identity, &slot.problem) {
                (Some(id), problem) => {
                    let name = id.name.clone().unwrap_or_else(|| id.subject.clone());
                    AccountView {
                        problem: problem.clone(),
                        ..account_view(profile, name.clone(), initials(&name), id.issuer.clone())
                    }
                }
                (None, Some(problem)) => AccountView {
                    signed_in: false,
                    problem: Some(problem.clone()),
                    ..account_view(
                        profile,
                        profile.clone(),
                        initials(profile),
                        slot.latchkey.config().issuer.clone(),
                    )
                },
                (None, None) => continue,
            };
            list.push(view);
        }
        list.sort_by(|a, b| a.profile.cmp(&b.profile));
        list
    }
}

impl AppState {
    /// Reads every configured profile's stored session (keychain only) and keeps a background
    /// slot for each signed-in one that is not shown.
    pub(super) async fn reload_accounts<R: Runtime>(&self, app: &AppHandle<R>) {
        let Ok(sources) = self.load_sources() else {
            return;
        };
        let shown = self.lock().shown_profile();
        let mut found = Vec::new();
        for profile in sources.profiles().into_iter().take(MAX_ACCOUNTS) {
            if Some(&profile) == shown.as_ref() {
                continue;
            }
            let Ok(config) = sources.resolve_profile(&profile) else {
                continue;
            };
            // The slot's own core when it is still configured the same (its refresh lock and
            // discovery cache stay warm), a new one otherwise.
            let existing = self
                .lock()
                .accounts
                .get(&profile)
                .map(|s| Arc::clone(&s.latchkey));
            let lk = existing
                .filter(|lk| {
                    lk.config().issuer == config.issuer && lk.config().client_id == config.client_id
                })
                .unwrap_or_else(|| Arc::new(Latchkey::new(config, self.ports.clone())));
            let stored = lk.current().await;
            found.push((profile, lk, stored));
        }
        self.update(|i| {
            let mut keep = BTreeMap::new();
            for (profile, lk, stored) in found {
                let mut slot = i.accounts.remove(&profile).unwrap_or(Slot {
                    latchkey: Arc::clone(&lk),
                    identity: None,
                    problem: None,
                    backoff: Backoff::default(),
                    timer: Task::default(),
                });
                slot.latchkey = lk;
                match stored {
                    Ok(Some(id)) => {
                        if !slot.timer.is_set() {
                            schedule_background(
                                app,
                                &profile,
                                &mut slot.timer,
                                refresh_due(id.refresh_at),
                            );
                        }
                        slot.identity = Some(id);
                    }
                    Ok(None) if slot.problem.is_none() => continue,
                    Ok(None) => slot.identity = None,
                    Err(e) => slot.problem = Some(app_message(&e)),
                }
                keep.insert(profile, slot);
            }
            // Profiles no longer found (signed out elsewhere, or now shown) are dropped here,
            // which stops their timers.
            i.accounts = keep;
        });
    }

    async fn refresh_background<R: Runtime>(&self, app: &AppHandle<R>, profile: &str) {
        let Some(lk) = self
            .lock()
            .accounts
            .get(profile)
            .map(|s| Arc::clone(&s.latchkey))
        else {
            return;
        };
        let result = lk.status().await;
        self.update(|i| {
            let Some(slot) = i.accounts.get_mut(profile) else {
                return;
            };
            // This refresh is the timer's work: the timer has run.
            slot.timer.done();
            let next = match &result {
                Ok(id) => {
                    slot.identity = Some(id.clone());
                    slot.problem = None;
                    slot.backoff.reset();
                    Some(refresh_due(id.refresh_at))
                }
                Err(e)
                    if matches!(e.kind(), ErrorKind::SessionExpired | ErrorKind::NotSignedIn) =>
                {
                    slot.identity = None;
                    slot.problem = Some(app_message(e));
                    None
                }
                Err(e) => {
                    let wait = slot.backoff.next();
                    slot.problem = Some(format!(
                        "Couldn't refresh this account; trying again in {} s. {}",
                        wait.as_secs(),
                        app_message(e)
                    ));
                    Some(chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default())
                }
            };
            if let Some(due) = next {
                schedule_background(app, profile, &mut slot.timer, due);
            }
        });
    }

    /// Shows another account: silently, from the keychain, no browser.
    pub(crate) async fn switch_account<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        profile: String,
    ) -> Result<ViewModel, UiError> {
        let known = self.load_sources()?.profiles().contains(&profile);
        if !known {
            return Err(UiError::config(format!("There is no account `{profile}`")));
        }
        if self.lock().shown_profile().as_deref() == Some(profile.as_str()) {
            return Ok(self.view());
        }
        if self.lock().view.phase == Phase::Waiting {
            self.cancel_sign_in();
        }
        self.show_profile(app, Some(profile)).await;
        Ok(self.view())
    }

    /// Makes `profile` (or the configured one) the shown account and lists the others.
    async fn show_profile<R: Runtime>(&self, app: &AppHandle<R>, profile: Option<String>) {
        self.update(|i| {
            i.profile = profile;
            i.adding = None;
            i.signed_out();
            i.view.error = None;
            i.view.notice = None;
        });
        self.startup(app).await;
    }

    /// "Add account". With the same provider: a new `[profiles.account-N]` in the user file with
    /// the shown account's issuer, client and scopes, shown and signing in at once. With another
    /// provider: the first-run form for the new profile, validated by discovery when saved.
    pub(crate) async fn add_account<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        other_provider: bool,
    ) -> Result<ViewModel, UiError> {
        let sources = self.load_sources()?;
        let names = sources.profiles();
        let name = (2..)
            .map(|n| format!("account-{n}"))
            .find(|n| !names.contains(n))
            .unwrap_or_else(|| "account".into());
        if names.len() >= MAX_ACCOUNTS {
            return Err(UiError::config(format!(
                "At most {MAX_ACCOUNTS} accounts can be added"
            )));
        }
        if other_provider {
            let merged = sources.clone().for_profile(&name).merged()?;
            let mut setup = SetupView::from_merged(&merged, sources.user_file());
            setup.adding = Some(name.clone());
            return Ok(self.update(|i| {
                if i.view.phase == Phase::Waiting
                    && let Some(lk) = &i.latchkey
                {
                    lk.cancel();
                }
                i.adding = Some(name);
                i.signed_out();
                i.view.phase = Phase::Setup;
                i.view.setup = Some(setup);
                i.view.error = None;
                i.view.notice = None;
            }));
        }
        let current = self.latchkey()?;
        let file = UserFile::of(&sources)?;
        // Keys the organization locks stay locked for every profile: they are not written.
        let locked = sources.locked_keys();
        let skip: Vec<&str> = FORM_KEYS
            .iter()
            .copied()
            .filter(|k| locked.contains(*k))
            .collect();
        file.save_account(Some(&name), current.config(), None, &skip)?;
        self.show_profile(app, Some(name)).await;
        self.sign_in(app).await
    }

    /// Leaves the "another provider" form without adding anything.
    pub(crate) async fn cancel_add_account<R: Runtime>(&self, app: &AppHandle<R>) -> ViewModel {
        let (adding, profile) = {
            let i = self.lock();
            (i.adding.is_some(), i.profile.clone())
        };
        if adding {
            self.show_profile(app, profile).await;
        }
        self.view()
    }
}

/// The background refresh of `profile` at `due`, in its slot's timer.
fn schedule_background<R: Runtime>(
    app: &AppHandle<R>,
    profile: &str,
    timer: &mut Task,
    due: chrono::DateTime<chrono::Utc>,
) {
    let app = app.clone();
    let profile = profile.to_owned();
    timer.at(due, async move {
        app.state::<AppState>()
            .refresh_background(&app, &profile)
            .await;
    });
}
