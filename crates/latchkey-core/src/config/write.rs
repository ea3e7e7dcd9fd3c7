//! The writer of the user file: the app's forms save a few keys into it (at the top level or in a
//! profile's table) and leave everything else in it as it was.

use std::path::Path;

use super::KEYS;
use crate::error::{Error, Result};

/// Writes (or updates) the user file with the given keys, keeping everything else in it. Used by
/// the app's first-run form after the issuer was checked by discovery.
pub fn save_user_settings(
    path: &Path,
    issuer: &str,
    client_id: &str,
    scopes: &[String],
) -> Result<()> {
    save_user_settings_except(path, issuer, client_id, scopes, &[])
}

/// Like [`save_user_settings`], but leaves the keys named in `skip` as the file has them: the app
/// passes the keys its form shows read-only (managed by the organization, or set by the
/// environment), so their current values are not copied into the user file.
pub fn save_user_settings_except(
    path: &Path,
    issuer: &str,
    client_id: &str,
    scopes: &[String],
    skip: &[&str],
) -> Result<()> {
    save_user_settings_in(path, None, issuer, client_id, scopes, skip)
}

/// Sets one text key in the user file (in `[profiles.<name>]` with `Some(name)`), keeping
/// everything else; the key must be one of [`KEYS`].
pub fn save_user_value(path: &Path, profile: Option<&str>, key: &str, value: &str) -> Result<()> {
    if !KEYS.contains(&key) {
        return Err(Error::internal(format!(
            "`{key}` is not a configuration key"
        )));
    }
    edit_user_file(path, profile, |table| {
        table.insert(key.into(), toml::Value::String(value.into()));
    })
}

/// [`save_user_settings_except`] for one profile: with `Some(name)` the keys go into the user
/// file's `[profiles.<name>]` table, leaving the top level and the other profiles as they are.
pub fn save_user_settings_in(
    path: &Path,
    profile: Option<&str>,
    issuer: &str,
    client_id: &str,
    scopes: &[String],
    skip: &[&str],
) -> Result<()> {
    let values = [
        ("issuer", toml::Value::String(issuer.into())),
        ("client_id", toml::Value::String(client_id.into())),
        (
            "scopes",
            toml::Value::Array(
                scopes
                    .iter()
                    .map(|s| toml::Value::String(s.clone()))
                    .collect(),
            ),
        ),
    ];
    edit_user_file(path, profile, |table| {
        for (key, value) in values {
            if !skip.contains(&key) {
                table.insert(key.into(), value);
            }
        }
    })
}

/// Reads the user file (or starts one), lets `change` edit the top level or a profile's table,
/// and writes it back.
fn edit_user_file(
    path: &Path,
    profile: Option<&str>,
    change: impl FnOnce(&mut toml::Table),
) -> Result<()> {
    let mut doc: toml::Table = match std::fs::read_to_string(path) {
        Ok(t) => toml::from_str(&t).map_err(|e| {
            Error::config(format!(
                "{}: {}; fix the file or remove it",
                path.display(),
                e.message()
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
        Err(e) => {
            return Err(Error::config(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let table = match profile {
        None => &mut doc,
        Some(name) => {
            let profiles = doc
                .entry("profiles")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(profiles) = profiles else {
                return Err(Error::config(format!(
                    "{}: `profiles` must be a table of [profiles.<name>] sections; fix the file",
                    path.display()
                )));
            };
            let entry = profiles
                .entry(name)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(entry) = entry else {
                return Err(Error::config(format!(
                    "{}: `profiles.{name}` must be a table; fix the file",
                    path.display()
                )));
            };
            entry
        }
    };
    change(table);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::config(format!("cannot create {}: {e}", dir.display())))?;
    }
    let text = toml::to_string_pretty(&doc).map_err(|e| Error::internal(e.to_string()))?;
    std::fs::write(path, text)
        .map_err(|e| Error::config(format!("cannot write {}: {e}", path.display())))
}
