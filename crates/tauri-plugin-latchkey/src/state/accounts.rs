//! Several accounts: every profile with a stored session is listed, and the ones not shown
//! refresh silently in the background, each at its own time, each failing on its own.
//!
//! The shown account is the controller's foreground (`Inner::latchkey`, its timers and view).
//! The others live here as [`Slot`]s. Switching makes another profile the foreground; the one
//! that was shown becomes a slot at the next [`AppState::reload_accounts`]. The list is built the
//! way `latchkey accounts` builds it: the profiles the configuration names, each read from the
//! keychain (no network).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use latchkey_core::{ErrorKind, Identity, Latchkey};
use tauri::async_runtime::JoinHandle;
use tauri::{AppHandle, Manager, Runtime};

use super::{AppState, Inner, RETRY_DELAYS, abort};
use crate::error::UiError;
use crate::models::{AccountView, Phase, initials};

/// A signed-in account that is not the one shown.
pub(super) struct Slot {
    latchkey: Arc<Latchkey>,
    identity: Option<Identity>,
    /// What went wrong with this account alone, in plain words.
    problem: Option<String>,
    failures: u32,
    timer: Option<JoinHandle<()>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        abort(&mut self.timer);
    }
}

/// At most this many accounts are listed (and refreshed).
const MAX_ACCOUNTS: usize = 16;

impl Inner {
    /// The profile shown, once set up.
    pub(super) fn shown_profile(&self) -> Option<String> {
        self.latchkey.as_ref().map(|lk| lk.config().profile.clone())
    }

    /// The list for the window: the shown account (when signed in or signing in) and every slot.
    pub(super) fn account_views(&self) -> Vec<AccountView> {
        let shown = self.shown_profile();
        let mut list = Vec::new();
        if let (Some(profile), Some(id)) = (&shown, &self.view.identity) {
            list.push(AccountView {
                profile: profile.clone(),
                name: id.name.clone().unwrap_or_else(|| id.subject.clone()),
                initials: id.initials.clone(),
                picture: id.picture.clone(),
                issuer: id.issuer.clone(),
                selected: true,
                signed_in: true,
                problem: None,
            });
        }
        for (profile, slot) in &self.accounts {
            let Some(id) = &slot.identity else {
                if let Some(problem) = &slot.problem {
                    list.push(AccountView {
                        profile: profile.clone(),
                        name: profile.clone(),
                        initials: initials(profile),
                        picture: None,
                        issuer: slot.latchkey.config().issuer.clone(),
                        selected: false,
                        signed_in: false,
                        problem: Some(problem.clone()),
                    });
                }
                continue;
            };
            let name = id.name.clone().unwrap_or_else(|| id.subject.clone());
            list.push(AccountView {
                profile: profile.clone(),
                initials: initials(&name),
                name,
                picture: None,
                issuer: id.issuer.clone(),
                selected: false,
                signed_in: true,
                problem: slot.problem.clone(),
            });
        }
        list.sort_by(|a, b| a.profile.cmp(&b.profile));
        list
    }
}

impl AppState {
    /// Reads every configured profile's stored session (keychain only) and keeps a background
    /// slot for each signed-in one that is not shown.
    pub async fn reload_accounts<R: Runtime>(&self, app: &AppHandle<R>) {
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
        let mut schedule = Vec::new();
        self.update(|i| {
            let mut keep = std::collections::BTreeMap::new();
            for (profile, lk, stored) in found {
                let mut slot = i.accounts.remove(&profile).unwrap_or(Slot {
                    latchkey: Arc::clone(&lk),
                    identity: None,
                    problem: None,
                    failures: 0,
                    timer: None,
                });
                slot.latchkey = lk;
                match stored {
                    Ok(Some(id)) => {
                        if slot.timer.is_none() {
                            schedule.push((profile.clone(), id.refresh_at));
                        }
                        slot.identity = Some(id);
                    }
                    Ok(None) if slot.problem.is_none() => continue,
                    Ok(None) => slot.identity = None,
                    Err(e) => slot.problem = Some(crate::models::app_message(&e)),
                }
                keep.insert(profile, slot);
            }
            // Profiles no longer found (signed out elsewhere, or now shown) are dropped here,
            // which stops their timers.
            i.accounts = keep;
            i.view.accounts = i.account_views();
        });
        for (profile, at) in schedule {
            self.schedule_background(app, profile, at);
        }
    }

    /// The background refresh of one account at `at`.
    fn schedule_background<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        profile: String,
        at: DateTime<Utc>,
    ) {
        let app = app.clone();
        let name = profile.clone();
        let timer = tauri::async_runtime::spawn(async move {
            while let Ok(left) = (at + chrono::Duration::milliseconds(250) - Utc::now()).to_std() {
                if left.is_zero() {
                    break;
                }
                tokio::time::sleep(left.min(Duration::from_secs(30))).await;
            }
            // Detached, like the foreground refresh: cut short, it could lose a rotated token.
            tauri::async_runtime::spawn(async move {
                app.state::<AppState>()
                    .refresh_background(&app, &name)
                    .await;
            });
        });
        let mut i = self.lock();
        match i.accounts.get_mut(&profile) {
            Some(slot) => {
                abort(&mut slot.timer);
                slot.timer = Some(timer);
            }
            None => timer.abort(),
        }
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
        let mut next = None;
        self.update(|i| {
            let Some(slot) = i.accounts.get_mut(profile) else {
                return;
            };
            slot.timer = None;
            match &result {
                Ok(id) => {
                    slot.identity = Some(id.clone());
                    slot.problem = None;
                    slot.failures = 0;
                    next = Some(id.refresh_at);
                }
                Err(e)
                    if matches!(e.kind(), ErrorKind::SessionExpired | ErrorKind::NotSignedIn) =>
                {
                    slot.identity = None;
                    slot.problem = Some(crate::models::app_message(e));
                }
                Err(e) => {
                    let wait = RETRY_DELAYS[(slot.failures as usize).min(RETRY_DELAYS.len() - 1)];
                    slot.failures += 1;
                    slot.problem = Some(format!(
                        "Couldn't refresh this account; trying again in {wait} s. {}",
                        crate::models::app_message(e)
                    ));
                    next = Some(Utc::now() + chrono::Duration::seconds(wait as i64 - 1));
                }
            }
            i.view.accounts = i.account_views();
        });
        if let Some(at) = next {
            self.schedule_background(app, profile.to_owned(), at);
        }
    }

    /// Shows another account: silently, from the keychain, no browser.
    pub async fn switch_account<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        profile: String,
    ) -> Result<crate::models::ViewModel, UiError> {
        let known = self.load_sources()?.profiles().contains(&profile);
        if !known {
            return Err(UiError::new(
                "config",
                format!("There is no account `{profile}`"),
            ));
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
    pub(super) async fn show_profile<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        profile: Option<String>,
    ) {
        self.update(|i| {
            i.profile = profile;
            i.adding = None;
            i.signed_out();
            i.view.error = None;
            i.view.notice = None;
        });
        self.startup(app).await;
    }

    /// "Sign out of all accounts": every listed account, then the shown one.
    pub async fn sign_out_all<R: Runtime>(
        &self,
        app: &AppHandle<R>,
    ) -> Result<crate::models::ViewModel, UiError> {
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
            i.view.notice = Some(crate::models::Notice::info(if problems == 0 {
                "Signed out of all accounts.".to_owned()
            } else {
                format!("Signed out of all accounts; {problems} could not be reached to revoke.")
            }));
        }))
    }
}

impl AppState {
    /// "Add account". With the same provider: a new `[profiles.account-N]` in the user file with
    /// the shown account's issuer, client and scopes, shown and signing in at once. With another
    /// provider: the first-run form for the new profile, validated by discovery when saved.
    pub async fn add_account<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        other_provider: bool,
    ) -> Result<crate::models::ViewModel, UiError> {
        let sources = self.load_sources()?;
        let names = sources.profiles();
        let name = (2..)
            .map(|n| format!("account-{n}"))
            .find(|n| !names.contains(n))
            .unwrap_or_else(|| "account".into());
        if names.len() >= MAX_ACCOUNTS {
            return Err(UiError::new(
                "config",
                format!("At most {MAX_ACCOUNTS} accounts can be added"),
            ));
        }
        if other_provider {
            let merged = sources.clone().for_profile(&name).merged()?;
            let mut setup = crate::models::SetupView::from_merged(&merged, sources.user_file());
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
        let config = current.config();
        let path = sources.user_file().ok_or_else(|| {
            UiError::new(
                "config",
                "There is no user configuration directory to save to",
            )
        })?;
        // Keys the organization locks stay locked for every profile: they are not written.
        let locked = sources.locked_keys();
        let skip: Vec<&str> = crate::models::FORM_KEYS
            .iter()
            .copied()
            .filter(|k| locked.contains(*k))
            .collect();
        let values = latchkey_core::config::Settings {
            issuer: Some(config.issuer.clone()),
            client_id: Some(config.client_id.clone()),
            scopes: Some(latchkey_core::config::Scopes::List(config.scopes.clone())),
            ..Default::default()
        };
        latchkey_core::config::save_user_settings(path, Some(&name), &values, &skip)?;
        self.show_profile(app, Some(name)).await;
        self.sign_in(app).await
    }

    /// Leaves the "another provider" form without adding anything.
    pub async fn cancel_add_account<R: Runtime>(
        &self,
        app: &AppHandle<R>,
    ) -> crate::models::ViewModel {
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
