//! The one writer of the user file: the app's forms save a few keys into it (at the top level or
//! in a profile's table) and leave everything else in it as it was.

use std::path::Path;

use super::sources::get;
use super::{KEYS, Seconds, Settings, Value};
use crate::error::{Error, Result};

/// Writes the keys `values` sets into the user file at `path`, keeping everything else in it:
/// at the top level, or with `Some(name)` in its `[profiles.<name>]` table, leaving the top level
/// and the other profiles as they are. Keys named in `skip` are not written even when set: the
/// app passes the keys its form shows read-only (managed by the organization, or set by the
/// environment), so their current values are not copied into the user file.
pub fn save_user_settings(
    path: &Path,
    profile: Option<&str>,
    values: &Settings,
    skip: &[&str],
) -> Result<()> {
    let entries: Vec<(&str, toml::Value)> = KEYS
        .iter()
        .filter(|key| !skip.contains(key))
        .filter_map(|&key| Some((key, toml_value(values, key)?)))
        .collect();
    edit_user_file(path, profile, |table| {
        for (key, value) in entries {
            table.insert(key.into(), value);
        }
    })
}

/// A key's value as the file states it: lists (scopes, git hosts) as arrays, parameters as a
/// table, a duration given in seconds as a number; `None` when `values` leaves the key unset.
fn toml_value(values: &Settings, key: &str) -> Option<toml::Value> {
    if key == "login_timeout"
        && let Some(Seconds::Number(n)) = values.login_timeout
        && let Ok(n) = i64::try_from(n)
    {
        return Some(toml::Value::Integer(n));
    }
    let text = toml::Value::String;
    Some(match get(values, key)? {
        Value::Text(t) => text(t),
        Value::List(list) => toml::Value::Array(list.into_iter().map(text).collect()),
        Value::Map(map) => toml::Value::Table(map.into_iter().map(|(k, v)| (k, text(v))).collect()),
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
    write_private(path, &text)
        .map_err(|e| Error::config(format!("cannot write {}: {e}", path.display())))
}

/// Replaces `path` with `text`, readable by its owner only (0600 on Unix: the file names the
/// user's providers and accounts), atomically: a new file beside it, then a rename, so a crash
/// leaves the old file or the new one.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        options.mode(0o600);
        // A leftover of an earlier crash keeps its own mode when opened: set it again.
        if tmp.exists() {
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    let mut file = options.open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::tests::fixture;
    use crate::config::{AppRedirect, DEFAULT_LOGIN_TIMEOUT, Scopes};

    /// What the app's forms save: the provider and the scopes.
    fn provider(issuer: &str, client_id: &str, scopes: Vec<String>) -> Settings {
        Settings {
            issuer: Some(issuer.into()),
            client_id: Some(client_id.into()),
            scopes: Some(Scopes::List(scopes)),
            ..Settings::default()
        }
    }

    #[test]
    fn a_profile_is_saved_in_its_own_table_and_read_back() {
        let f = fixture(
            Some("issuer = \"https://a.example\"\nclient_id = \"a\"\n"),
            None,
        );
        let path = f.paths.user_file.clone().expect("user file");
        let scopes = vec!["openid".to_owned(), "email".to_owned()];
        let values = provider("https://b.example", "b", scopes);
        save_user_settings(&path, Some("work"), &values, &[]).expect("save");
        let sources = f.load(Settings::default()).expect("load");
        assert!(sources.profiles().contains(&"work".to_owned()));
        let work = sources.resolve_profile("work").expect("work");
        assert_eq!(
            (work.issuer.as_str(), work.client_id.as_str()),
            ("https://b.example", "b")
        );
        assert_eq!(work.profile, "work");
        let default = sources.resolve().expect("default");
        assert_eq!(
            default.issuer, "https://a.example",
            "the top level is untouched"
        );
        assert_eq!(
            sources
                .for_profile("work")
                .resolve()
                .expect("selected")
                .issuer,
            "https://b.example"
        );
    }

    #[test]
    fn save_keeps_other_keys() {
        let f = fixture(Some("login_timeout = 60\n"), None);
        let path = f.paths.user_file.clone().expect("path");
        let values = provider(
            "https://id.example",
            "app",
            vec!["openid".into(), "email".into()],
        );
        save_user_settings(&path, None, &values, &[]).expect("save");
        let c = f.resolve(Settings::default()).expect("ok");
        assert_eq!(c.issuer, "https://id.example");
        assert_eq!(c.login_timeout, Duration::from_secs(60));
        assert_eq!(c.scopes, ["openid", "email"]);
        let text = std::fs::read_to_string(&path).expect("read");
        let file: toml::Table = toml::from_str(&text).expect("TOML");
        assert!(
            file["scopes"].is_array(),
            "scopes are saved as a list: {text}"
        );
    }

    /// The app's "use a local address" button and its first-run form set `app_redirect` for one
    /// profile; a duration given as a number stays one.
    #[test]
    fn save_sets_any_key_in_a_profile_and_only_the_keys_given() {
        let f = fixture(
            Some(
                "issuer = \"https://a.example\"\nclient_id = \"a\"\n[profiles.work]\nclient_id = \"w\"\n",
            ),
            None,
        );
        let path = f.paths.user_file.clone().expect("path");
        let values = Settings {
            app_redirect: Some("loopback".into()),
            login_timeout: Some(Seconds::Number(90)),
            ..Settings::default()
        };
        save_user_settings(&path, Some("work"), &values, &[]).expect("save");
        let text = std::fs::read_to_string(&path).expect("read");
        let file: toml::Table = toml::from_str(&text).expect("TOML");
        assert_eq!(
            file["profiles"]["work"]["login_timeout"].as_integer(),
            Some(90),
            "{text}"
        );
        let sources = f.load(Settings::default()).expect("load");
        let work = sources.resolve_profile("work").expect("work");
        assert_eq!(
            (
                work.client_id.as_str(),
                work.app_redirect,
                work.login_timeout
            ),
            ("w", AppRedirect::Loopback, Duration::from_secs(90))
        );
        let default = sources.resolve().expect("default");
        assert_eq!(
            (default.app_redirect, default.login_timeout),
            (AppRedirect::Scheme, DEFAULT_LOGIN_TIMEOUT),
            "the top level is untouched"
        );
    }

    #[test]
    fn save_refuses_a_profiles_key_that_is_not_a_table() {
        let f = fixture(Some("profiles = 1\n"), None);
        let path = f.paths.user_file.clone().expect("path");
        let values = provider("https://id.example", "app", vec![]);
        let e = save_user_settings(&path, Some("work"), &values, &[]).expect_err("not a table");
        assert!(
            e.message().ends_with(
                ": `profiles` must be a table of [profiles.<name>] sections; fix the file"
            ),
            "{e}"
        );
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "profiles = 1\n"
        );
    }

    #[test]
    fn save_except_leaves_skipped_keys_alone() {
        let f = fixture(
            Some("client_id = \"mine\"\n"),
            Some("issuer = \"https://corp.example\"\nlocked = [\"issuer\"]\n"),
        );
        let path = f.paths.user_file.clone().expect("path");
        let values = provider("https://corp.example", "app", vec!["openid".into()]);
        save_user_settings(&path, None, &values, &["issuer"]).expect("save");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains("issuer"), "{text}");
        let c = f.resolve(Settings::default()).expect("ok");
        assert_eq!(
            (c.issuer.as_str(), c.client_id.as_str()),
            ("https://corp.example", "app")
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_user_file_is_written_for_its_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.toml");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        let values = Settings {
            issuer: Some("https://id.example".into()),
            ..Settings::default()
        };
        save_user_settings(&path, None, &values, &[]).expect("new file");
        assert_eq!(mode(&path), 0o600);
        // A file the user made readable by others is narrowed at the next save.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        save_user_settings(&path, Some("work"), &values, &[]).expect("existing file");
        assert_eq!(mode(&path), 0o600);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("[profiles.work]"), "{text}");
        assert!(!dir.path().join("config.toml.tmp").exists(), "no leftover");
    }
}
