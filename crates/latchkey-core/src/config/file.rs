//! Reading one file: its text parsed into the [`FileSchema`] (top-level keys, profile tables and
//! locks), a profile's view of it, and for the managed file the ownership checks that make its
//! locks worth anything.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{KEYS, Settings};
use crate::AppIdentity;
use crate::error::{Error, Result};

/// A whole config file: top-level settings, profile tables and (system file only) locks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSchema {
    #[serde(flatten)]
    pub(super) settings: Settings,
    #[serde(default)]
    pub(super) profiles: BTreeMap<String, Settings>,
    #[serde(default)]
    pub(super) locked: Vec<String>,
}

impl FileSchema {
    pub(super) fn for_profile(&self, profile: &str) -> Settings {
        let mut s = self.settings.clone();
        if let Some(p) = self.profiles.get(profile) {
            overlay(&mut s, p.clone());
        }
        s
    }
}

fn overlay(base: &mut Settings, top: Settings) {
    macro_rules! take {
        ($($f:ident),*) => { $( if top.$f.is_some() { base.$f = top.$f; } )* };
    }
    take!(
        issuer,
        client_id,
        scopes,
        redirect_uri,
        client_secret,
        profile,
        login_timeout,
        extra_auth_params,
        post_logout_redirect_uri,
        scope_descriptions,
        store,
        git_hosts,
        git_username,
        kube_servers,
        flow,
        par,
        dpop,
        app_redirect
    );
}

/// Reads a config file; `managed` is the identity whose OS location it is read for, when it is the
/// managed file.
pub(super) fn read_file(
    path: Option<&Path>,
    managed: Option<&AppIdentity>,
) -> Result<Option<FileSchema>> {
    use std::io::Read as _;
    let Some(path) = path else { return Ok(None) };
    let cannot_read =
        |e: std::io::Error| Error::config(format!("cannot read {}: {e}", path.display()));
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(cannot_read(e)),
    };
    if let Some(identity) = managed {
        // Judged on the file that was opened, so it cannot be swapped between the check and
        // the read.
        super::managed::check(path, &file, identity)?;
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(cannot_read)?;
    parse_file(&text, path, managed.is_some()).map(Some)
}

/// Parses a config file's text, read from `path` (for messages); `managed`: the system-wide
/// managed file, the only one whose `locked` is honoured.
pub(super) fn parse_file(text: &str, path: &Path, managed: bool) -> Result<FileSchema> {
    let file: FileSchema = toml::from_str(text).map_err(|e| {
        Error::config(format!(
            "{}: {}; fix the file or remove it",
            path.display(),
            e.message()
        ))
    })?;
    if !managed && !file.locked.is_empty() {
        return Err(Error::config(format!(
            "{}: `locked` is only honoured in the system-wide managed file; remove it",
            path.display()
        )));
    }
    for key in &file.locked {
        if key != "*" && !KEYS.contains(&key.as_str()) {
            return Err(Error::config(format!(
                "{}: `locked` names unknown key `{key}`; known keys: {}",
                path.display(),
                KEYS.join(", ")
            )));
        }
    }
    Ok(file)
}
