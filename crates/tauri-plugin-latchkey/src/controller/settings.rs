//! What the window may change in the configuration, and the one place that writes the user file:
//! the first-run form, "add account" and "use a local address instead" all go through
//! [`UserFile`]. The managed file is never written, and keys it locks are left out.

use std::collections::BTreeSet;
use std::path::Path;

use latchkey_core::Latchkey;
use latchkey_core::config::{self, Config, Scopes, Settings, Sources};
use tauri::{AppHandle, Runtime};

use super::AppState;
use crate::error::UiError;
use crate::models::{FORM_KEYS, Phase, SetupView, ViewModel};

/// The first-run form's fields.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SettingsForm {
    pub issuer: String,
    pub client_id: String,
    pub scopes: String,
    /// `scheme` or `loopback`; absent keeps what is configured.
    #[serde(default)]
    pub app_redirect: Option<String>,
}

/// The user's own configuration file, the only one the app writes.
pub(super) struct UserFile<'a>(&'a Path);

impl<'a> UserFile<'a> {
    pub(super) fn of(sources: &'a Sources) -> Result<Self, UiError> {
        sources
            .user_file()
            .map(Self)
            .ok_or_else(|| UiError::config("There is no user configuration directory to save to"))
    }

    /// An account's provider (and, when given, how it sends the browser back: `scheme` or
    /// `loopback`): in `[profiles.<profile>]`, or at the top level for the first run, so that no
    /// existing account is repointed. `skip` are keys the organization locks.
    pub(super) fn save_account(
        &self,
        profile: Option<&str>,
        config: &Config,
        app_redirect: Option<String>,
        skip: &[&str],
    ) -> Result<(), UiError> {
        let values = Settings {
            issuer: Some(config.issuer.clone()),
            client_id: Some(config.client_id.clone()),
            scopes: Some(Scopes::List(config.scopes.clone())),
            app_redirect,
            ..Settings::default()
        };
        config::save_user_settings(self.0, profile, &values, skip)?;
        Ok(())
    }

    /// `app_redirect = "loopback"` for `profile` (the default profile's is the top level).
    pub(super) fn use_loopback(&self, profile: &str) -> Result<(), UiError> {
        let table = (profile != config::DEFAULT_PROFILE).then_some(profile);
        let values = Settings {
            app_redirect: Some("loopback".into()),
            ..Settings::default()
        };
        config::save_user_settings(self.0, table, &values, &[])?;
        Ok(())
    }
}

/// The form as settings, leaving out what the form shows read-only; `adding` is the new
/// account's profile. Empty required fields are refused here, before any network.
fn form_settings(
    form: &SettingsForm,
    read_only: &BTreeSet<&str>,
    redirect_read_only: bool,
    adding: Option<String>,
    product: &str,
) -> Result<Settings, UiError> {
    let editable =
        |key: &str, value: &str| (!read_only.contains(key)).then(|| value.trim().to_owned());
    let flags = Settings {
        issuer: editable("issuer", &form.issuer),
        client_id: editable("client_id", &form.client_id),
        scopes: editable("scopes", &form.scopes).map(Scopes::Text),
        app_redirect: form
            .app_redirect
            .as_deref()
            .filter(|_| !redirect_read_only)
            .map(|v| v.trim().to_owned()),
        profile: adding,
        ..Settings::default()
    };
    if flags.issuer.as_deref() == Some("") {
        return Err(UiError::config(
            "Enter the issuer: the address of your sign-in provider",
        ));
    }
    if flags.client_id.as_deref() == Some("") {
        return Err(UiError::config(format!(
            "Enter the client ID your provider registered for {product}"
        )));
    }
    Ok(flags)
}

impl AppState {
    /// The first-run form: validated by fetching the provider's discovery document before
    /// anything is saved.
    pub(crate) async fn save_settings<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        form: SettingsForm,
    ) -> Result<ViewModel, UiError> {
        // Issue 8, finding 13: only the first-run form saves settings. Once set up, a page that
        // was made to call this could otherwise repoint a signed-in app at another provider.
        if self.lock().view.phase != Phase::Setup {
            return Err(UiError::config(
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
        let adding = self.lock().adding.clone();
        let flags = form_settings(
            &form,
            &read_only,
            current.app_redirect.read_only,
            adding.clone(),
            self.identity.product_name,
        )?;
        let app_redirect = flags.app_redirect.clone();
        let candidate = self.load_with(flags)?.resolve()?;
        Latchkey::new(candidate.clone(), self.ports.clone())
            .check_provider()
            .await?;
        let file = UserFile::of(&sources)?;
        let skip: Vec<&str> = read_only.into_iter().collect();
        file.save_account(adding.as_deref(), &candidate, app_redirect, &skip)?;
        self.update(|i| {
            i.view.error = None;
            if let Some(name) = i.adding.take() {
                i.profile = Some(name);
            }
        });
        Ok(self.startup(app).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(issuer: &str, client_id: &str) -> SettingsForm {
        SettingsForm {
            issuer: issuer.into(),
            client_id: client_id.into(),
            scopes: " openid email ".into(),
            app_redirect: Some(" loopback ".into()),
        }
    }

    #[test]
    fn the_form_is_trimmed_and_read_only_fields_are_left_out() {
        let locked = BTreeSet::from(["client_id"]);
        let s = form_settings(
            &form(" https://id.example ", ""),
            &locked,
            true,
            None,
            "Acme",
        )
        .expect("valid");
        assert_eq!(s.issuer.as_deref(), Some("https://id.example"));
        assert_eq!(s.client_id, None, "locked: not taken from the form");
        assert!(matches!(s.scopes, Some(Scopes::Text(ref t)) if t == "openid email"));
        assert_eq!(s.app_redirect, None, "read-only: not taken from the form");

        let s = form_settings(
            &form("https://id.example", "app"),
            &BTreeSet::new(),
            false,
            Some("account-2".into()),
            "Acme",
        )
        .expect("valid");
        assert_eq!(s.app_redirect.as_deref(), Some("loopback"));
        assert_eq!(s.profile.as_deref(), Some("account-2"));
    }

    #[test]
    fn empty_required_fields_are_config_errors() {
        let none = BTreeSet::new();
        let e = form_settings(&form("  ", "app"), &none, false, None, "Acme").expect_err("issuer");
        assert_eq!(e.kind, crate::error::UiErrorKind::Config);
        assert!(e.message.starts_with("Enter the issuer"));
        let e = form_settings(&form("https://id.example", " "), &none, false, None, "Acme")
            .expect_err("client");
        assert_eq!(e.kind, crate::error::UiErrorKind::Config);
        assert!(e.message.ends_with("registered for Acme"), "{}", e.message);
    }
}
