//! Stage 1, the sources: where the configuration lives ([`Paths`]), the flags, the environment
//! and the two files read into [`Sources`], and their merge, strongest first, under the managed
//! file's locks. Nothing here validates a value; that is `resolve`'s stage.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

#[cfg(feature = "fuzzing")]
use super::file::parse_file;
use super::file::{FileSchema, read_file};
use super::{Config, DEFAULT_PROFILE, KEYS, Merged, Scopes, Seconds, Settings};
use crate::AppIdentity;
use crate::error::{Error, Result};

/// Where a value came from, for error messages and for the app's read-only fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env(String),
    UserFile(PathBuf),
    SystemFile(PathBuf),
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("the command line"),
            Source::Env(var) => write!(f, "${var}"),
            Source::UserFile(p) => write!(f, "{}", p.display()),
            Source::SystemFile(p) => write!(f, "{} (managed)", p.display()),
            Source::Default => f.write_str("the default"),
        }
    }
}

/// One source's settings, resolved for the selected profile.
#[derive(Debug, Clone)]
struct Layer {
    source: Source,
    settings: Settings,
}

/// Where the configuration comes from: the two files, and the app whose environment variables
/// are read. The defaults follow each OS's conventions.
#[derive(Debug, Clone)]
pub struct Paths {
    pub user_file: Option<PathBuf>,
    pub system_file: Option<PathBuf>,
    /// Names the variables (`<env_prefix>_ISSUER`, …) and the OS's managed location.
    pub identity: AppIdentity,
}

impl Paths {
    /// The standard locations for `identity`. `<PREFIX>_CONFIG` replaces the user file. In debug
    /// builds only, `<PREFIX>_SYSTEM_CONFIG` replaces the managed file so tests can exercise
    /// locking; a release build always reads the real managed location.
    pub fn standard(identity: &AppIdentity, env: &dyn Fn(&str) -> Option<String>) -> Self {
        let user_file = env(&identity.var("CONFIG"))
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .or_else(|| identity.user_config_file());
        Self {
            user_file,
            system_file: managed_path(identity, env, !cfg!(debug_assertions)),
            identity: *identity,
        }
    }
}

/// Where the managed file is read from. Only a debug build (`release` false) lets
/// `<PREFIX>_SYSTEM_CONFIG` move it: in a release build any user could otherwise point "managed"
/// at a file of their own and unlock every key.
pub(crate) fn managed_path(
    identity: &AppIdentity,
    env: &dyn Fn(&str) -> Option<String>,
    release: bool,
) -> Option<PathBuf> {
    if !release && let Some(p) = env(&identity.var("SYSTEM_CONFIG")).filter(|s| !s.is_empty()) {
        return Some(PathBuf::from(p));
    }
    identity.managed_file()
}

/// All sources, read but not yet validated. The app uses this to render its first-run form even
/// when the configuration is incomplete.
#[derive(Debug, Clone)]
pub struct Sources {
    flags: Settings,
    env: Vec<(Source, Settings)>,
    user: Option<FileSchema>,
    user_path: Option<PathBuf>,
    system: Option<FileSchema>,
    system_path: Option<PathBuf>,
    identity: AppIdentity,
}

/// Env variables (after the app's prefix and `_`) and the keys they set.
const ENV_KEYS: &[(&str, &str)] = &[
    ("ISSUER", "issuer"),
    ("CLIENT_ID", "client_id"),
    ("SCOPES", "scopes"),
    ("REDIRECT_URI", "redirect_uri"),
    ("CLIENT_SECRET", "client_secret"),
    ("PROFILE", "profile"),
    ("LOGIN_TIMEOUT", "login_timeout"),
    ("STORE", "store"),
    ("GIT_HOSTS", "git_hosts"),
    ("GIT_USERNAME", "git_username"),
    ("KUBE_SERVERS", "kube_servers"),
    ("APP_REDIRECT", "app_redirect"),
    ("EXTRA_AUTH_PARAMS", "extra_auth_params"),
    ("POST_LOGOUT_REDIRECT_URI", "post_logout_redirect_uri"),
    ("FLOW", "flow"),
    ("PAR", "par"),
    ("DPOP", "dpop"),
];

impl Sources {
    /// Reads the files and environment. `flags` are the command line's settings.
    pub fn load(
        flags: Settings,
        paths: &Paths,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        Ok(Self {
            flags,
            env: env_layers(&paths.identity, env)?,
            user: read_file(paths.user_file.as_deref(), None)?,
            user_path: paths.user_file.clone(),
            system: read_file(paths.system_file.as_deref(), Some(&paths.identity))?,
            system_path: paths.system_file.clone(),
            identity: paths.identity,
        })
    }

    /// [`load`](Self::load) with the files' texts given instead of read (`None`: no file), for
    /// the fuzzer: the same parsing, checks and merge, without the file system (and so without
    /// the managed file's ownership check).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn from_texts(
        flags: Settings,
        identity: &AppIdentity,
        env: &dyn Fn(&str) -> Option<String>,
        user: Option<&str>,
        system: Option<&str>,
    ) -> Result<Self> {
        let user_path = PathBuf::from("/fuzz/user.toml");
        let system_path = PathBuf::from("/fuzz/managed.toml");
        Ok(Self {
            flags,
            env: env_layers(identity, env)?,
            user: user.map(|t| parse_file(t, &user_path, false)).transpose()?,
            user_path: Some(user_path),
            system: system
                .map(|t| parse_file(t, &system_path, true))
                .transpose()?,
            system_path: Some(system_path),
            identity: *identity,
        })
    }

    /// The selected profile: flags, env, user file, system file, then `default`.
    pub fn profile(&self) -> String {
        self.flags
            .profile
            .clone()
            .or_else(|| self.env.iter().find_map(|(_, s)| s.profile.clone()))
            .or_else(|| self.user.as_ref().and_then(|f| f.settings.profile.clone()))
            .or_else(|| {
                self.system
                    .as_ref()
                    .and_then(|f| f.settings.profile.clone())
            })
            .unwrap_or_else(|| DEFAULT_PROFILE.to_owned())
    }

    /// Keys the managed file locks.
    pub fn locked_keys(&self) -> BTreeSet<String> {
        self.system
            .as_ref()
            .map(|f| {
                if f.locked.iter().any(|k| k == "*") {
                    KEYS.iter().map(|k| (*k).to_owned()).collect()
                } else {
                    f.locked.iter().cloned().collect()
                }
            })
            .unwrap_or_default()
    }

    /// The user file's path, where the app's first-run form saves.
    pub fn user_file(&self) -> Option<&Path> {
        self.user_path.as_deref()
    }

    fn layers(&self, profile: &str) -> Vec<Layer> {
        let mut layers = vec![Layer {
            source: Source::Flag,
            settings: self.flags.clone(),
        }];
        for (source, settings) in &self.env {
            layers.push(Layer {
                source: source.clone(),
                settings: settings.clone(),
            });
        }
        if let (Some(f), Some(p)) = (&self.user, &self.user_path) {
            layers.push(Layer {
                source: Source::UserFile(p.clone()),
                settings: f.for_profile(profile),
            });
        }
        if let (Some(f), Some(p)) = (&self.system, &self.system_path) {
            layers.push(Layer {
                source: Source::SystemFile(p.clone()),
                settings: f.for_profile(profile),
            });
        }
        layers
    }

    /// Merges the sources for the selected profile, enforcing locks. Values are not validated.
    pub fn merged(&self) -> Result<Merged> {
        let profile = self.profile();
        let locked = self.locked_keys();
        let layers = self.layers(&profile);
        let mut merged = Merged {
            profile: profile.clone(),
            values: BTreeMap::new(),
            locked: locked.clone(),
            env_prefix: self.identity.env_prefix,
        };
        for key in KEYS.iter().copied() {
            if key == "profile" {
                continue;
            }
            let system = layers
                .iter()
                .find(|l| matches!(l.source, Source::SystemFile(_)))
                .and_then(|l| get(&l.settings, key).map(|v| (l.source.clone(), v)));
            // A lock applies only to keys the managed file actually sets.
            if locked.contains(key)
                && let Some((sys_source, sys_value)) = &system
            {
                for layer in layers
                    .iter()
                    .filter(|l| !matches!(l.source, Source::SystemFile(_)))
                {
                    if let Some(v) = get(&layer.settings, key)
                        && v != *sys_value
                    {
                        return Err(Error::config(format!(
                            "`{key}` is managed by your organization in {sys_source} and cannot be changed by {}; remove it there",
                            layer.source
                        )));
                    }
                }
                merged
                    .values
                    .insert(key, (sys_source.clone(), sys_value.clone()));
                continue;
            }
            if let Some((source, value)) = layers
                .iter()
                .find_map(|l| get(&l.settings, key).map(|v| (l.source.clone(), v)))
            {
                merged.values.insert(key, (source, value));
            }
        }
        Ok(merged)
    }

    /// Merges and validates: the configuration to sign in with.
    pub fn resolve(&self) -> Result<Config> {
        self.merged()?.validate()
    }

    /// Every profile the sources name: the selected one, `default`, and the `[profiles.*]`
    /// tables of both files, sorted and once each. (The keychain cannot be listed, so a profile
    /// that only ever existed as a flag is not among them.)
    pub fn profiles(&self) -> Vec<String> {
        let mut names = BTreeSet::from([self.profile(), DEFAULT_PROFILE.to_owned()]);
        for file in [&self.user, &self.system].into_iter().flatten() {
            names.extend(file.profiles.keys().cloned());
        }
        names.into_iter().collect()
    }

    /// The configuration of another profile, with everything else as loaded.
    pub fn resolve_profile(&self, profile: &str) -> Result<Config> {
        self.clone().for_profile(profile).resolve()
    }

    /// The same sources with `profile` selected, as if it had been passed as a flag (so a managed
    /// file that locks `profile` still wins).
    pub fn for_profile(mut self, profile: &str) -> Self {
        self.flags.profile = Some(profile.to_owned());
        self
    }
}

/// A key's value in a comparable, displayable form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    List(Vec<String>),
    Map(BTreeMap<String, String>),
}

/// A key's value as `s` states it, `None` when unset.
pub(super) fn get(s: &Settings, key: &str) -> Option<Value> {
    let text = |v: &Option<String>| v.clone().map(Value::Text);
    match key {
        "issuer" => text(&s.issuer),
        "client_id" => text(&s.client_id),
        "scopes" => s.scopes.clone().map(|v| Value::List(v.into_vec())),
        "redirect_uri" => text(&s.redirect_uri),
        "client_secret" => text(&s.client_secret),
        "profile" => text(&s.profile),
        "login_timeout" => s.login_timeout.clone().map(|v| match v {
            Seconds::Number(n) => Value::Text(n.to_string()),
            Seconds::Text(t) => Value::Text(t),
        }),
        "extra_auth_params" => s.extra_auth_params.clone().map(Value::Map),
        "post_logout_redirect_uri" => text(&s.post_logout_redirect_uri),
        "scope_descriptions" => s.scope_descriptions.clone().map(Value::Map),
        "store" => text(&s.store),
        "git_hosts" => s.git_hosts.clone().map(|v| Value::List(v.into_vec())),
        "git_username" => text(&s.git_username),
        "kube_servers" => s.kube_servers.clone().map(|v| Value::List(v.into_vec())),
        "flow" => text(&s.flow),
        "par" => text(&s.par),
        "dpop" => text(&s.dpop),
        "app_redirect" => text(&s.app_redirect),
        _ => None,
    }
}

/// Sets one key from an env var or flag string.
fn set_from_text(s: &mut Settings, key: &str, value: String) -> Result<(), String> {
    match key {
        "issuer" => s.issuer = Some(value),
        "client_id" => s.client_id = Some(value),
        "scopes" => s.scopes = Some(Scopes::Text(value)),
        "redirect_uri" => s.redirect_uri = Some(value),
        "client_secret" => s.client_secret = Some(value),
        "profile" => s.profile = Some(value),
        "login_timeout" => s.login_timeout = Some(Seconds::Text(value)),
        "extra_auth_params" => s.extra_auth_params = Some(parse_params(&value)?),
        "post_logout_redirect_uri" => s.post_logout_redirect_uri = Some(value),
        "store" => s.store = Some(value),
        "git_hosts" => s.git_hosts = Some(Scopes::Text(value)),
        "git_username" => s.git_username = Some(value),
        "kube_servers" => s.kube_servers = Some(Scopes::Text(value)),
        "flow" => s.flow = Some(value),
        "par" => s.par = Some(value),
        "dpop" => s.dpop = Some(value),
        "app_redirect" => s.app_redirect = Some(value),
        _ => return Err(format!("unknown key `{key}`")),
    }
    Ok(())
}

/// Parses `k=v&k2=v2` (URL-encoded) into parameters.
pub fn parse_params(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let Some((k, _)) = pair.split_once('=') else {
            return Err(format!("expected key=value, found `{pair}`"));
        };
        if k.is_empty() {
            return Err(format!("empty parameter name in `{pair}`"));
        }
    }
    for (k, v) in url::form_urlencoded::parse(text.as_bytes()) {
        out.insert(k.into_owned(), v.into_owned());
    }
    Ok(out)
}

/// The settings the `<PREFIX>_*` variables set, one layer per variable.
fn env_layers(
    identity: &AppIdentity,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(Source, Settings)>> {
    let mut env_layers = Vec::new();
    for (suffix, key) in ENV_KEYS {
        let var = identity.var(suffix);
        let Some(value) = env(&var).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let mut s = Settings::default();
        set_from_text(&mut s, key, value).map_err(|e| Error::config(format!("${var}: {e}")))?;
        env_layers.push((Source::Env(var), s));
    }
    Ok(env_layers)
}

/// Sets one key from a flag's text, as a command line does (the fuzzer's flags).
#[cfg(feature = "fuzzing")]
pub(crate) fn set_flag(s: &mut Settings, key: &str, value: String) -> Result<(), String> {
    set_from_text(s, key, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_debug_build_lets_the_environment_move_the_managed_file() {
        const ID: crate::AppIdentity = crate::AppIdentity::TEST;
        let env =
            |k: &str| (k == "CORE_TEST_SYSTEM_CONFIG").then(|| "/home/me/mine.toml".to_owned());
        assert_eq!(managed_path(&ID, &env, true), ID.managed_file(), "release");
        assert_eq!(
            managed_path(&ID, &env, false),
            Some(PathBuf::from("/home/me/mine.toml")),
            "debug"
        );
        let empty = |k: &str| (k == "CORE_TEST_SYSTEM_CONFIG").then(String::new);
        assert_eq!(managed_path(&ID, &empty, false), ID.managed_file());
        assert_eq!(managed_path(&ID, &|_| None, false), ID.managed_file());
    }
}
