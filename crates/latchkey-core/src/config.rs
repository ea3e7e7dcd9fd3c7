//! Configuration: keys, sources, precedence and locking.
//!
//! Sources, strongest first:
//! 1. command-line flags,
//! 2. `LATCHKEY_*` environment variables,
//! 3. the user file `<config dir>/latchkey/config.toml`,
//! 4. the system-wide managed file (`/etc/latchkey/config.toml` and per-OS equivalents).
//!
//! The managed file may list keys in `locked = [..]`. A locked key takes the managed value, and a
//! stronger source that sets a *different* value is an error naming both places, so an IT
//! department can pin its provider and a user learns why their override does nothing.
//!
//! Each file may also hold `[profiles.<name>]` tables, which override that file's top-level keys
//! for the selected profile.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::error::{Error, Result};

/// Scopes requested when none are configured.
pub const DEFAULT_SCOPES: &str = "openid profile email offline_access";
/// How long a browser sign-in may take.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(300);
/// The loopback redirect used by the CLI when none is configured (RFC 8252 §7.3). Port 0 means an
/// ephemeral port chosen at sign-in.
pub const DEFAULT_LOOPBACK_REDIRECT: &str = "http://127.0.0.1/callback";
/// The profile used when none is named.
pub const DEFAULT_PROFILE: &str = "default";

/// Every key the files, environment and flags understand.
pub const KEYS: &[&str] = &[
    "issuer",
    "client_id",
    "scopes",
    "redirect_uri",
    "client_secret",
    "profile",
    "login_timeout",
    "extra_auth_params",
    "post_logout_redirect_uri",
    "scope_descriptions",
];

/// Parameters the core sets itself; configuring them would break the protocol.
const RESERVED_AUTH_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "request",
    "request_uri",
];

/// A validated configuration, ready to sign in with.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    pub issuer: String,
    pub client_id: String,
    /// Requested scopes, `openid` first, without duplicates.
    pub scopes: Vec<String>,
    /// The loopback redirect the CLI listens on.
    pub redirect_uri: Url,
    pub client_secret: Option<ClientSecret>,
    pub profile: String,
    pub login_timeout: Duration,
    pub extra_auth_params: BTreeMap<String, String>,
    pub post_logout_redirect_uri: Option<Url>,
    /// Human descriptions for custom scopes, shown by the app.
    pub scope_descriptions: BTreeMap<String, String>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("redirect_uri", &self.redirect_uri.as_str())
            .field("client_secret", &self.client_secret)
            .field("profile", &self.profile)
            .field("login_timeout", &self.login_timeout)
            .field("extra_auth_params", &self.extra_auth_params)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Whether the refresh-token scope is requested, which needs `prompt=consent` (OIDC Core §11).
    pub fn wants_offline_access(&self) -> bool {
        self.scopes.iter().any(|s| s == "offline_access")
    }
}

/// An "installed app" client secret (e.g. Google's). Not confidential, but still kept out of logs.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    pub fn new(secret: String) -> Self {
        Self(secret)
    }
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

/// Where a value came from, for error messages and for the app's read-only fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env(&'static str),
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

/// The keys as one source states them; every field optional. This is also the TOML schema.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub scopes: Option<Scopes>,
    pub redirect_uri: Option<String>,
    pub client_secret: Option<String>,
    pub profile: Option<String>,
    pub login_timeout: Option<Seconds>,
    pub extra_auth_params: Option<BTreeMap<String, String>>,
    pub post_logout_redirect_uri: Option<String>,
    pub scope_descriptions: Option<BTreeMap<String, String>>,
}

/// Scopes as a space/comma separated string or a TOML array.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Scopes {
    List(Vec<String>),
    Text(String),
}

impl Scopes {
    fn into_vec(self) -> Vec<String> {
        match self {
            Scopes::List(v) => v,
            Scopes::Text(s) => split_scopes(&s),
        }
    }
}

/// A duration as whole seconds or a string like `"90s"`, `"5m"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Seconds {
    Number(u64),
    Text(String),
}

fn split_scopes(s: &str) -> Vec<String> {
    s.split([' ', ',', '\t', '\n'])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A whole config file: top-level settings, profile tables and (system file only) locks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSchema {
    #[serde(flatten)]
    settings: Settings,
    #[serde(default)]
    profiles: BTreeMap<String, Settings>,
    #[serde(default)]
    locked: Vec<String>,
}

/// One source's settings, resolved for the selected profile.
#[derive(Debug, Clone)]
struct Layer {
    source: Source,
    settings: Settings,
}

/// Where the files are. The defaults follow each OS's conventions.
#[derive(Debug, Clone)]
pub struct Paths {
    pub user_file: Option<PathBuf>,
    pub system_file: Option<PathBuf>,
}

impl Paths {
    /// The standard locations. `LATCHKEY_CONFIG` replaces the user file. In debug builds only,
    /// `LATCHKEY_SYSTEM_CONFIG` replaces the managed file so tests can exercise locking; a release
    /// build always reads the real managed location.
    pub fn standard(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let user_file = env("LATCHKEY_CONFIG")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .or_else(|| dirs::config_dir().map(|d| d.join("latchkey").join("config.toml")));
        let mut system_file = system_config_path();
        if cfg!(debug_assertions)
            && let Some(p) = env("LATCHKEY_SYSTEM_CONFIG").filter(|s| !s.is_empty())
        {
            system_file = Some(PathBuf::from(p));
        }
        Self {
            user_file,
            system_file,
        }
    }
}

/// The managed, system-wide config file for this OS.
pub fn system_config_path() -> Option<PathBuf> {
    if cfg!(windows) {
        let base = std::env::var_os("ProgramData").unwrap_or_else(|| "C:\\ProgramData".into());
        Some(PathBuf::from(base).join("Latchkey").join("config.toml"))
    } else if cfg!(target_os = "macos") {
        Some(PathBuf::from(
            "/Library/Application Support/Latchkey/config.toml",
        ))
    } else {
        Some(PathBuf::from("/etc/latchkey/config.toml"))
    }
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
}

/// Env variables and the keys they set.
const ENV_KEYS: &[(&str, &str)] = &[
    ("LATCHKEY_ISSUER", "issuer"),
    ("LATCHKEY_CLIENT_ID", "client_id"),
    ("LATCHKEY_SCOPES", "scopes"),
    ("LATCHKEY_REDIRECT_URI", "redirect_uri"),
    ("LATCHKEY_CLIENT_SECRET", "client_secret"),
    ("LATCHKEY_PROFILE", "profile"),
    ("LATCHKEY_LOGIN_TIMEOUT", "login_timeout"),
    ("LATCHKEY_EXTRA_AUTH_PARAMS", "extra_auth_params"),
    (
        "LATCHKEY_POST_LOGOUT_REDIRECT_URI",
        "post_logout_redirect_uri",
    ),
];

impl Sources {
    /// Reads the files and environment. `flags` are the command line's settings.
    pub fn load(
        flags: Settings,
        paths: &Paths,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let mut env_layers = Vec::new();
        for (var, key) in ENV_KEYS {
            let Some(value) = env(var).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let mut s = Settings::default();
            set_from_text(&mut s, key, value).map_err(|e| Error::config(format!("${var}: {e}")))?;
            env_layers.push((Source::Env(var), s));
        }
        Ok(Self {
            flags,
            env: env_layers,
            user: read_file(paths.user_file.as_deref(), false)?,
            user_path: paths.user_file.clone(),
            system: read_file(paths.system_file.as_deref(), true)?,
            system_path: paths.system_file.clone(),
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
}

impl FileSchema {
    fn for_profile(&self, profile: &str) -> Settings {
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
        scope_descriptions
    );
}

/// A key's value in a comparable, displayable form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    List(Vec<String>),
    Map(BTreeMap<String, String>),
}

fn get(s: &Settings, key: &str) -> Option<Value> {
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

fn read_file(path: Option<&Path>, managed: bool) -> Result<Option<FileSchema>> {
    let Some(path) = path else { return Ok(None) };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::config(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let file: FileSchema = toml::from_str(&text).map_err(|e| {
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
    Ok(Some(file))
}

/// Merged values with their sources; what the app shows in its first-run form.
#[derive(Debug, Clone)]
pub struct Merged {
    pub profile: String,
    values: BTreeMap<&'static str, (Source, Value)>,
    locked: BTreeSet<String>,
}

impl Merged {
    /// A key's merged value as text (lists joined by spaces), with its source.
    pub fn text(&self, key: &str) -> Option<(String, &Source)> {
        self.values.get(key).map(|(src, v)| {
            let text = match v {
                Value::Text(t) => t.clone(),
                Value::List(l) => l.join(" "),
                Value::Map(m) => m
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("&"),
            };
            (text, src)
        })
    }

    pub fn is_locked(&self, key: &str) -> bool {
        self.locked.contains(key) && self.values.contains_key(key)
    }

    fn source(&self, key: &str) -> String {
        self.values
            .get(key)
            .map(|(s, _)| s.to_string())
            .unwrap_or_else(|| Source::Default.to_string())
    }

    fn validate(&self) -> Result<Config> {
        let err = |key: &str, why: String| {
            Error::config(format!("`{key}` from {}: {why}", self.source(key)))
        };
        let text = |key: &str| match self.values.get(key) {
            Some((_, Value::Text(t))) => Some(t.trim().to_owned()),
            _ => None,
        };
        let map = |key: &str| match self.values.get(key) {
            Some((_, Value::Map(m))) => m.clone(),
            _ => BTreeMap::new(),
        };

        let issuer = text("issuer").filter(|s| !s.is_empty()).ok_or_else(|| {
            Error::config(
                "no issuer configured; pass --issuer, set LATCHKEY_ISSUER, or add `issuer` to the config file",
            )
        })?;
        validate_issuer(&issuer).map_err(|why| err("issuer", why))?;

        let client_id = text("client_id").filter(|s| !s.is_empty()).ok_or_else(|| {
            Error::config(
                "no client_id configured; pass --client-id, set LATCHKEY_CLIENT_ID, or add `client_id` to the config file",
            )
        })?;
        if client_id.chars().any(|c| c.is_control()) {
            return Err(err("client_id", "contains control characters".into()));
        }

        let scopes = match self.values.get("scopes") {
            Some((_, Value::List(l))) => l.clone(),
            _ => split_scopes(DEFAULT_SCOPES),
        };
        let scopes = normalize_scopes(scopes).map_err(|why| err("scopes", why))?;

        let redirect_uri = text("redirect_uri").unwrap_or_else(|| DEFAULT_LOOPBACK_REDIRECT.into());
        let redirect_uri =
            validate_loopback_redirect(&redirect_uri).map_err(|why| err("redirect_uri", why))?;

        let profile = self.profile.trim().to_owned();
        if profile.is_empty()
            || profile.len() > 64
            || !profile
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
        {
            return Err(Error::config(format!(
                "profile `{profile}` is invalid; use 1-64 letters, digits, '-', '_', '.' or '@'"
            )));
        }

        let login_timeout = match text("login_timeout") {
            None => DEFAULT_LOGIN_TIMEOUT,
            Some(t) => parse_duration(&t).map_err(|why| err("login_timeout", why))?,
        };

        let extra_auth_params = map("extra_auth_params");
        for k in extra_auth_params.keys() {
            if RESERVED_AUTH_PARAMS.contains(&k.as_str()) {
                return Err(err(
                    "extra_auth_params",
                    format!("`{k}` is set by Latchkey itself and cannot be configured"),
                ));
            }
        }

        let post_logout_redirect_uri = match text("post_logout_redirect_uri") {
            None => None,
            Some(u) => {
                Some(Url::parse(&u).map_err(|e| err("post_logout_redirect_uri", e.to_string()))?)
            }
        };

        Ok(Config {
            issuer,
            client_id,
            scopes,
            redirect_uri,
            client_secret: text("client_secret")
                .filter(|s| !s.is_empty())
                .map(ClientSecret),
            profile,
            login_timeout,
            extra_auth_params,
            post_logout_redirect_uri,
            scope_descriptions: map("scope_descriptions"),
        })
    }
}

/// An issuer is an https URL without query or fragment; plain http only for loopback hosts, where
/// no network attacker sits between the app and the provider (RFC 8252 §8.3, OIDC Discovery §3).
pub fn validate_issuer(issuer: &str) -> Result<(), String> {
    let url = Url::parse(issuer).map_err(|e| format!("`{issuer}` is not a URL ({e})"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{issuer}` must not have a query or fragment"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(&url) => Ok(()),
        "http" => Err(format!(
            "`{issuer}` uses plain http; only https is allowed, except for 127.0.0.1, ::1 and localhost"
        )),
        other => Err(format!("`{issuer}` has scheme `{other}`; use https")),
    }
}

pub(crate) fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The CLI's redirect must be a loopback http URL (RFC 8252 §7.3); port 0 or none means ephemeral.
fn validate_loopback_redirect(uri: &str) -> Result<Url, String> {
    let url = Url::parse(uri).map_err(|e| format!("`{uri}` is not a URL ({e})"))?;
    if url.scheme() != "http" || !is_loopback_host(&url) {
        return Err(format!(
            "`{uri}` must be a loopback URL like http://127.0.0.1/callback (RFC 8252 §7.3)"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{uri}` must not have a query or fragment"));
    }
    Ok(url)
}

/// RFC 6749 §3.3: scope tokens are printable ASCII except `"` and `\`. `openid` is required.
fn normalize_scopes(scopes: Vec<String>) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = vec!["openid".into()];
    for s in scopes {
        if !s
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
        {
            return Err(format!("`{s}` is not a valid scope token (RFC 6749 §3.3)"));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

fn parse_duration(t: &str) -> Result<Duration, String> {
    let t = t.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix('m') {
        (n, 60)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1)
    } else {
        (t, 1)
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{t}` is not a duration; use seconds like 300 or \"5m\""))?;
    let secs = n.saturating_mul(mult);
    if !(10..=3600).contains(&secs) {
        return Err(format!("{secs} s is out of range; use 10 s to 60 min"));
    }
    Ok(Duration::from_secs(secs))
}

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
    for (key, value) in values {
        if !skip.contains(&key) {
            doc.insert(key.into(), value);
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::config(format!("cannot create {}: {e}", dir.display())))?;
    }
    let text = toml::to_string_pretty(&doc).map_err(|e| Error::internal(e.to_string()))?;
    std::fs::write(path, text)
        .map_err(|e| Error::config(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Fixture {
        _dir: tempfile::TempDir,
        paths: Paths,
        env: HashMap<String, String>,
    }

    fn fixture(user: Option<&str>, system: Option<&str>) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let user_path = dir.path().join("user.toml");
        let system_path = dir.path().join("system.toml");
        if let Some(u) = user {
            std::fs::write(&user_path, u).expect("write");
        }
        if let Some(s) = system {
            std::fs::write(&system_path, s).expect("write");
        }
        Fixture {
            paths: Paths {
                user_file: Some(user_path),
                system_file: Some(system_path),
            },
            _dir: dir,
            env: HashMap::new(),
        }
    }

    impl Fixture {
        fn load(&self, flags: Settings) -> Result<Sources> {
            let env = |k: &str| self.env.get(k).cloned();
            Sources::load(flags, &self.paths, &env)
        }
        fn resolve(&self, flags: Settings) -> Result<Config> {
            self.load(flags)?.resolve()
        }
    }

    fn flags_issuer(i: &str) -> Settings {
        Settings {
            issuer: Some(i.into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_apply() {
        let f = fixture(
            Some("issuer = \"https://id.example.com\"\nclient_id = \"app\"\n"),
            None,
        );
        let c = f.resolve(Settings::default()).expect("valid");
        assert_eq!(c.scopes, ["openid", "profile", "email", "offline_access"]);
        assert_eq!(c.profile, "default");
        assert_eq!(c.login_timeout, Duration::from_secs(300));
        assert_eq!(c.redirect_uri.as_str(), "http://127.0.0.1/callback");
        assert!(c.wants_offline_access());
    }

    #[test]
    fn precedence_is_flags_env_user_system() {
        let mut f = fixture(
            Some(
                "issuer = \"https://user.example\"\nclient_id = \"user\"\nscopes = \"openid email\"\n",
            ),
            Some("issuer = \"https://system.example\"\nclient_id = \"sys\"\nlogin_timeout = 60\n"),
        );
        let c = f.resolve(Settings::default()).expect("valid");
        assert_eq!(c.issuer, "https://user.example");
        assert_eq!(c.client_id, "user");
        assert_eq!(
            c.login_timeout,
            Duration::from_secs(60),
            "system fills gaps"
        );

        f.env
            .insert("LATCHKEY_ISSUER".into(), "https://env.example".into());
        f.env
            .insert("LATCHKEY_SCOPES".into(), "openid,api:read".into());
        let c = f.resolve(Settings::default()).expect("valid");
        assert_eq!(c.issuer, "https://env.example");
        assert_eq!(c.scopes, ["openid", "api:read"]);

        let c = f
            .resolve(flags_issuer("https://flag.example"))
            .expect("valid");
        assert_eq!(c.issuer, "https://flag.example");
        assert_eq!(c.client_id, "user");
    }

    #[test]
    fn locked_keys_win_and_conflicts_are_named() {
        let mut f = fixture(
            Some("client_id = \"app\"\n"),
            Some("issuer = \"https://corp.example\"\nlocked = [\"issuer\"]\n"),
        );
        let sources = f.load(Settings::default()).expect("load");
        assert!(sources.merged().expect("merge").is_locked("issuer"));
        assert_eq!(
            f.resolve(Settings::default()).expect("ok").issuer,
            "https://corp.example"
        );

        // The same value is not a conflict.
        f.resolve(flags_issuer("https://corp.example"))
            .expect("same value is fine");

        let e = f
            .resolve(flags_issuer("https://evil.example"))
            .expect_err("locked");
        assert!(e.message().contains("managed by your organization"), "{e}");
        assert!(e.message().contains("the command line"), "{e}");

        f.env
            .insert("LATCHKEY_ISSUER".into(), "https://evil.example".into());
        let e = f.resolve(Settings::default()).expect_err("locked");
        assert!(e.message().contains("$LATCHKEY_ISSUER"), "{e}");
    }

    #[test]
    fn lock_in_user_file_is_rejected() {
        let f = fixture(Some("locked = [\"issuer\"]\n"), None);
        let e = f.load(Settings::default()).expect_err("user lock");
        assert!(
            e.message().contains("only honoured in the system-wide"),
            "{e}"
        );
    }

    #[test]
    fn lock_all_keys_with_star() {
        let f = fixture(
            Some("client_id = \"mine\"\n"),
            Some("issuer = \"https://corp.example\"\nclient_id = \"corp\"\nlocked = [\"*\"]\n"),
        );
        let e = f
            .resolve(Settings::default())
            .expect_err("client_id locked");
        assert!(e.message().contains("`client_id`"), "{e}");
    }

    #[test]
    fn profiles_override_top_level_per_file() {
        let f = fixture(
            Some(
                "issuer = \"https://home.example\"\nclient_id = \"a\"\n[profiles.work]\nissuer = \"https://work.example\"\n",
            ),
            None,
        );
        let c = f.resolve(Settings::default()).expect("ok");
        assert_eq!(c.issuer, "https://home.example");
        let c = f
            .resolve(Settings {
                profile: Some("work".into()),
                ..Default::default()
            })
            .expect("ok");
        assert_eq!(c.issuer, "https://work.example");
        assert_eq!(c.client_id, "a");
        assert_eq!(c.profile, "work");
    }

    #[test]
    fn http_issuer_only_for_loopback() {
        assert!(validate_issuer("http://127.0.0.1:8080").is_ok());
        assert!(validate_issuer("http://[::1]:8080/realm").is_ok());
        assert!(validate_issuer("http://localhost:3000").is_ok());
        assert!(validate_issuer("https://id.example.com/tenant").is_ok());
        let e = validate_issuer("http://id.example.com").expect_err("plain http");
        assert!(e.contains("only https"), "{e}");
        assert!(validate_issuer("http://127.0.0.1.example.com").is_err());
        assert!(validate_issuer("https://id.example.com/?x=1").is_err());
        assert!(validate_issuer("ftp://id.example.com").is_err());
        assert!(validate_issuer("not a url").is_err());
    }

    #[test]
    fn errors_name_the_key_and_source() {
        let f = fixture(
            Some("issuer = \"http://id.example.com\"\nclient_id = \"a\"\n"),
            None,
        );
        let e = f.resolve(Settings::default()).expect_err("bad issuer");
        assert!(e.message().starts_with("`issuer` from "), "{e}");
        assert!(e.message().contains("user.toml"), "{e}");

        let f = fixture(Some("issuer = \"https://id.example\"\n"), None);
        let e = f.resolve(Settings::default()).expect_err("no client");
        assert!(e.message().contains("--client-id"), "{e}");
    }

    #[test]
    fn unknown_keys_and_bad_toml_are_clear() {
        let f = fixture(Some("isuer = \"https://id.example\"\n"), None);
        let e = f.load(Settings::default()).expect_err("typo");
        assert!(e.message().contains("isuer"), "{e}");
        let f = fixture(Some("issuer = \n"), None);
        assert!(f.load(Settings::default()).is_err());
    }

    #[test]
    fn scopes_validated_and_openid_added() {
        assert_eq!(
            normalize_scopes(vec!["email".into(), "email".into()]).expect("ok"),
            ["openid", "email"]
        );
        assert!(normalize_scopes(vec!["bad\"scope".into()]).is_err());
    }

    #[test]
    fn extra_params_parse_and_reserved_are_rejected() {
        let mut f = fixture(
            Some("issuer = \"https://id.example\"\nclient_id = \"a\"\n"),
            None,
        );
        f.env.insert(
            "LATCHKEY_EXTRA_AUTH_PARAMS".into(),
            "prompt=login&audience=https%3A%2F%2Fapi".into(),
        );
        let c = f.resolve(Settings::default()).expect("ok");
        assert_eq!(
            c.extra_auth_params.get("audience").map(String::as_str),
            Some("https://api")
        );
        f.env
            .insert("LATCHKEY_EXTRA_AUTH_PARAMS".into(), "state=x".into());
        let e = f.resolve(Settings::default()).expect_err("reserved");
        assert!(e.message().contains("`state`"), "{e}");
        assert!(parse_params("novalue").is_err());
    }

    #[test]
    fn login_timeout_forms() {
        assert_eq!(parse_duration("90").expect("n"), Duration::from_secs(90));
        assert_eq!(parse_duration("2m").expect("m"), Duration::from_secs(120));
        assert!(parse_duration("1").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn cli_redirect_must_be_loopback() {
        assert!(validate_loopback_redirect("http://127.0.0.1:8400/cb").is_ok());
        assert!(validate_loopback_redirect("com.example.latchkey:/callback").is_err());
        assert!(validate_loopback_redirect("https://app.example/cb").is_err());
    }

    #[test]
    fn client_secret_is_redacted_in_debug() {
        let f = fixture(
            Some(
                "issuer = \"https://id.example\"\nclient_id = \"a\"\nclient_secret = \"s3cr3t-value\"\n",
            ),
            None,
        );
        let c = f.resolve(Settings::default()).expect("ok");
        assert!(!format!("{c:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn save_keeps_other_keys() {
        let f = fixture(Some("login_timeout = 60\n"), None);
        let path = f.paths.user_file.clone().expect("path");
        save_user_settings(
            &path,
            "https://id.example",
            "app",
            &["openid".into(), "email".into()],
        )
        .expect("save");
        let c = f.resolve(Settings::default()).expect("ok");
        assert_eq!(c.issuer, "https://id.example");
        assert_eq!(c.login_timeout, Duration::from_secs(60));
        assert_eq!(c.scopes, ["openid", "email"]);
    }

    #[test]
    fn save_except_leaves_skipped_keys_alone() {
        let f = fixture(
            Some("client_id = \"mine\"\n"),
            Some("issuer = \"https://corp.example\"\nlocked = [\"issuer\"]\n"),
        );
        let path = f.paths.user_file.clone().expect("path");
        save_user_settings_except(
            &path,
            "https://corp.example",
            "app",
            &["openid".into()],
            &["issuer"],
        )
        .expect("save");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains("issuer"), "{text}");
        let c = f.resolve(Settings::default()).expect("ok");
        assert_eq!(
            (c.issuer.as_str(), c.client_id.as_str()),
            ("https://corp.example", "app")
        );
    }
}
