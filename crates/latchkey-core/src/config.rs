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

use crate::AppIdentity;
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
    "store",
    "git_hosts",
    "git_username",
    "flow",
    "par",
    "dpop",
    "app_redirect",
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
    // Chosen by the flow and the redirect (query, fragment or form_post), and checked on return.
    "response_mode",
];

/// Where a desktop app built on the core receives the redirect (key `app_redirect`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AppRedirect {
    /// `<scheme>:/callback`, the app's private-use URI scheme (RFC 8252 §7.1).
    #[default]
    Scheme,
    /// The CLI's loopback listener on 127.0.0.1 (RFC 8252 §7.3), for providers that refuse
    /// private-use schemes for desktop clients (Google).
    Loopback,
}

impl AppRedirect {
    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "scheme" => Ok(AppRedirect::Scheme),
            "loopback" => Ok(AppRedirect::Loopback),
            other => Err(format!(
                "`{other}` is not a redirect; use scheme or loopback"
            )),
        }
    }
}

/// Which keychain keeps the sessions (key `store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StoreChoice {
    /// The OS keychain; on Linux the Secret Service when the session bus has one, else the kernel
    /// keyring.
    #[default]
    Auto,
    /// Linux: the freedesktop Secret Service only; fail rather than fall back.
    SecretService,
    /// Linux: the kernel's persistent keyring (keyutils): memory only, lost at reboot.
    KernelKeyring,
}

impl StoreChoice {
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let choice = match text {
            "auto" => StoreChoice::Auto,
            "secret-service" => StoreChoice::SecretService,
            "kernel-keyring" => StoreChoice::KernelKeyring,
            other => {
                return Err(format!(
                    "`{}` is not a store; use auto, secret-service or kernel-keyring",
                    other.escape_debug()
                ));
            }
        };
        if choice != StoreChoice::Auto && !cfg!(target_os = "linux") {
            return Err(format!(
                "`{text}` exists only on Linux; use auto, the OS keychain"
            ));
        }
        Ok(choice)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StoreChoice::Auto => "auto",
            StoreChoice::SecretService => "secret-service",
            StoreChoice::KernelKeyring => "kernel-keyring",
        }
    }
}

/// Which sign-in flow `login` runs (key `flow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FlowChoice {
    /// Authorization code with PKCE through the browser (RFC 6749 §4.1, RFC 7636, RFC 8252).
    #[default]
    Code,
    /// `code id_token` (OIDC Core §3.3).
    Hybrid,
    /// `id_token` with `response_mode=form_post` (OIDC Core §3.2): sign-in only.
    Implicit,
    /// The device authorization grant (RFC 8628): a code to type on another device.
    Device,
}

impl FlowChoice {
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        Ok(match text {
            "code" => FlowChoice::Code,
            "hybrid" => FlowChoice::Hybrid,
            "implicit" => FlowChoice::Implicit,
            "device" => FlowChoice::Device,
            other => {
                return Err(format!(
                    "`{}` is not a flow; use code, hybrid, implicit or device",
                    other.escape_debug()
                ));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FlowChoice::Code => "code",
            FlowChoice::Hybrid => "hybrid",
            FlowChoice::Implicit => "implicit",
            FlowChoice::Device => "device",
        }
    }
}

/// Whether a protocol extension is used (keys `par` and `dpop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UseChoice {
    /// When the provider's metadata offers it (and always when it requires it).
    #[default]
    Auto,
    /// Always; a provider without it is an error before any browser opens.
    Always,
    /// Never; a provider that requires it is an error before any browser opens.
    Never,
}

impl UseChoice {
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        Ok(match text {
            "auto" => UseChoice::Auto,
            "always" => UseChoice::Always,
            "never" => UseChoice::Never,
            other => {
                return Err(format!(
                    "`{}` is not a choice here; use auto, always or never",
                    other.escape_debug()
                ));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UseChoice::Auto => "auto",
            UseChoice::Always => "always",
            UseChoice::Never => "never",
        }
    }
}

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
    /// Which keychain keeps the sessions.
    pub store: StoreChoice,
    /// Hosts (`host` or `host:port`) the git credential helper answers for; none by default.
    pub git_hosts: Vec<String>,
    /// The user name the git credential helper gives with the token.
    pub git_username: String,
    /// Which sign-in flow `login` runs.
    pub flow: FlowChoice,
    /// Pushed authorization requests (RFC 9126).
    pub par: UseChoice,
    /// Sender-constrained tokens (RFC 9449).
    pub dpop: UseChoice,
    /// Where the desktop app receives the redirect; the CLI always uses loopback.
    pub app_redirect: AppRedirect,
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
            .field("store", &self.store)
            .field("git_hosts", &self.git_hosts)
            .field("git_username", &self.git_username)
            .field("flow", &self.flow)
            .field("par", &self.par)
            .field("dpop", &self.dpop)
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
    pub store: Option<String>,
    pub git_hosts: Option<Scopes>,
    pub git_username: Option<String>,
    pub flow: Option<String>,
    pub par: Option<String>,
    pub dpop: Option<String>,
    pub app_redirect: Option<String>,
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
        scope_descriptions,
        store,
        git_hosts,
        git_username,
        flow,
        par,
        dpop,
        app_redirect
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
        "store" => text(&s.store),
        "git_hosts" => s.git_hosts.clone().map(|v| Value::List(v.into_vec())),
        "git_username" => text(&s.git_username),
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

/// Reads a config file; `managed` is the identity whose OS location it is read for, when it is the
/// managed file.
fn read_file(path: Option<&Path>, managed: Option<&AppIdentity>) -> Result<Option<FileSchema>> {
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
        // Judged on the file that was opened (its metadata from the handle), so it cannot be
        // swapped between the check and the read.
        #[cfg(unix)]
        check_managed(
            path,
            &file.metadata().map_err(cannot_read)?,
            managed_owner(path, identity),
        )?;
        // TODO(windows): refuse a managed file or folder whose ACL lets anyone but
        // Administrators, SYSTEM or TrustedInstaller write (GetSecurityInfo on the handle,
        // then the DACL's write-access ACEs). It needs the `windows` crate and unsafe code,
        // like AppIdentity::managed_file; ProgramData's default ACL lets users create files but
        // not change an administrator's.
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(cannot_read)?;
    parse_file(&text, path, managed.is_some()).map(Some)
}

/// Parses a config file's text, read from `path` (for messages); `managed`: the system-wide
/// managed file, the only one whose `locked` is honoured.
fn parse_file(text: &str, path: &Path, managed: bool) -> Result<FileSchema> {
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

/// Who besides root may own the managed file and its folder: nobody for the OS's managed
/// location; the current user for another path, which only a debug build
/// (`<PREFIX>_SYSTEM_CONFIG`, for tests) or an embedder's own [`Paths`] can choose.
#[cfg(unix)]
fn managed_owner(path: &Path, identity: &AppIdentity) -> u32 {
    if identity.managed_file().as_deref() == Some(path) {
        0
    } else {
        rustix::process::geteuid().as_raw()
    }
}

/// The managed file locks keys against the user, so only root (or `owner`) may be able to change
/// it: refused when it or its folder (as named, and where symlinks lead) is owned by another
/// user or writable by group or others. Otherwise the user, or anyone in the group, could unlock
/// every key or point the sign-in at their own provider.
#[cfg(unix)]
pub(crate) fn check_managed(path: &Path, meta: &std::fs::Metadata, owner: u32) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::config(format!(
            "refusing the managed config file {}: {why}; only root may be able to change it (`chown root` and `chmod go-w`)",
            path.display()
        )))
    };
    if !meta.is_file() {
        return refuse("it is not a regular file".into());
    }
    if let Some(why) = untrusted(meta, owner) {
        return refuse(format!("it is {why}"));
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    let named = match path.parent() {
        Some(p) if p.as_os_str().is_empty() => PathBuf::from("."),
        Some(p) => p.to_path_buf(),
        None => PathBuf::from("/"),
    };
    dirs.push(named);
    if let Some(real) = std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        && !dirs.contains(&real)
    {
        dirs.push(real);
    }
    for dir in dirs {
        let dir_meta = match std::fs::metadata(&dir) {
            Ok(m) => m,
            Err(e) => return refuse(format!("cannot inspect its folder {} ({e})", dir.display())),
        };
        if let Some(why) = untrusted(&dir_meta, owner) {
            return refuse(format!("its folder {} is {why}", dir.display()));
        }
    }
    Ok(())
}

/// Why someone other than root and `owner` could change a file or folder with this metadata.
#[cfg(unix)]
fn untrusted(meta: &std::fs::Metadata, owner: u32) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    if meta.uid() != 0 && meta.uid() != owner {
        return Some(format!("owned by uid {}, not root", meta.uid()));
    }
    if meta.mode() & 0o002 != 0 {
        return Some("writable by every user".into());
    }
    if meta.mode() & 0o020 != 0 {
        return Some("writable by its group".into());
    }
    None
}

/// Merged values with their sources; what the app shows in its first-run form.
#[derive(Debug, Clone)]
pub struct Merged {
    pub profile: String,
    values: BTreeMap<&'static str, (Source, Value)>,
    locked: BTreeSet<String>,
    /// The app's variable prefix, for messages that name a variable.
    env_prefix: &'static str,
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

    /// Whether the managed file locks `key` and its value is the managed file's. A lock applies
    /// only to keys the managed file sets (see [`Sources::merged`]): another key it names keeps
    /// the value of another source, which is the user's to change.
    pub fn is_locked(&self, key: &str) -> bool {
        self.locked.contains(key)
            && matches!(self.values.get(key), Some((Source::SystemFile(_), _)))
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
            Error::config(format!(
                "no issuer configured; set ${}_ISSUER or add `issuer` to the config file",
                self.env_prefix
            ))
        })?;
        validate_issuer(&issuer).map_err(|why| err("issuer", why))?;

        let client_id = text("client_id").filter(|s| !s.is_empty()).ok_or_else(|| {
            Error::config(format!(
                "no client_id configured; set ${}_CLIENT_ID or add `client_id` to the config file",
                self.env_prefix
            ))
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
                    format!("`{k}` is set by the app itself and cannot be configured"),
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
            store: match text("store") {
                None => StoreChoice::Auto,
                Some(t) => StoreChoice::parse(&t).map_err(|why| err("store", why))?,
            },
            git_hosts: match self.values.get("git_hosts") {
                Some((_, Value::List(l))) => l
                    .iter()
                    .map(|h| validate_git_host(h))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|why| err("git_hosts", why))?,
                _ => Vec::new(),
            },
            git_username: match text("git_username") {
                None => "oauth2".into(),
                Some(u) if u.is_empty() || u.chars().any(|c| c.is_control()) => {
                    return Err(err("git_username", "must be a non-empty name".into()));
                }
                Some(u) => u,
            },
            flow: match text("flow") {
                None => FlowChoice::Code,
                Some(t) => FlowChoice::parse(&t).map_err(|why| err("flow", why))?,
            },
            par: match text("par") {
                None => UseChoice::Auto,
                Some(t) => UseChoice::parse(&t).map_err(|why| err("par", why))?,
            },
            dpop: match text("dpop") {
                None => UseChoice::Auto,
                Some(t) => UseChoice::parse(&t).map_err(|why| err("dpop", why))?,
            },
            app_redirect: match text("app_redirect") {
                None => AppRedirect::Scheme,
                Some(t) => AppRedirect::parse(&t).map_err(|why| err("app_redirect", why))?,
            },
        })
    }
}

/// A git host as git names it in the credential protocol: `host` or `host:port`, lower-cased.
fn validate_git_host(host: &str) -> std::result::Result<String, String> {
    let h = host.trim().to_ascii_lowercase();
    let valid = !h.is_empty()
        && h.len() <= 255
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !valid {
        return Err(format!(
            "`{}` is not a host; use a name like git.example.com or git.example.com:8443",
            host.escape_debug()
        ));
    }
    Ok(h)
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
                identity: crate::AppIdentity::TEST,
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
            .insert("CORE_TEST_ISSUER".into(), "https://env.example".into());
        f.env
            .insert("CORE_TEST_SCOPES".into(), "openid,api:read".into());
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
            .insert("CORE_TEST_ISSUER".into(), "https://evil.example".into());
        let e = f.resolve(Settings::default()).expect_err("locked");
        assert!(e.message().contains("$CORE_TEST_ISSUER"), "{e}");
    }

    /// Regression (fuzz target `config`): a key the managed file locks but does not set takes
    /// the user's value, so it is not shown as managed (doctor, the app's form) either.
    #[test]
    fn a_locked_key_the_managed_file_does_not_set_is_not_shown_as_locked() {
        let f = fixture(
            Some("client_id = \"other\"\n"),
            Some("issuer = \"https://corp.example\"\nlocked = [\"issuer\", \"client_id\"]\n"),
        );
        let merged = f
            .load(Settings::default())
            .expect("load")
            .merged()
            .expect("merge");
        assert!(merged.is_locked("issuer"));
        let (value, source) = merged.text("client_id").expect("client_id");
        let user = f.paths.user_file.clone().expect("user file");
        assert_eq!(
            (value.as_str(), source.clone()),
            ("other", Source::UserFile(user))
        );
        assert!(
            !merged.is_locked("client_id"),
            "the user's value is shown as managed"
        );
        assert_eq!(
            f.resolve(Settings::default()).expect("ok").client_id,
            "other"
        );
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

    /// Documented in the README: `*` (or naming `profile`) never locks the profile; locks apply
    /// to whichever profile is selected.
    #[test]
    fn lock_all_does_not_lock_the_profile() {
        let managed = "issuer = \"https://corp.example\"\nclient_id = \"corp\"\nprofile = \"work\"\nlocked = [\"*\", \"profile\"]\n";
        let home = || Settings {
            profile: Some("home".into()),
            ..Default::default()
        };
        let f = fixture(Some("[profiles.home]\nlogin_timeout = 60\n"), Some(managed));
        let sources = f.load(home()).expect("load");
        assert!(!sources.merged().expect("merge").is_locked("profile"));
        let c = sources.resolve().expect("another profile");
        assert_eq!((c.profile.as_str(), c.client_id.as_str()), ("home", "corp"));
        let f = fixture(
            Some("[profiles.home]\nclient_id = \"mine\"\n"),
            Some(managed),
        );
        let e = f.resolve(home()).expect_err("still locked there");
        assert!(e.message().contains("`client_id`"), "{e}");
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
    fn app_redirect_is_scheme_or_loopback() {
        let base = "issuer = \"https://id.example\"\nclient_id = \"a\"\n";
        let f = fixture(Some(base), None);
        assert_eq!(
            f.resolve(Settings::default())
                .expect("default")
                .app_redirect,
            AppRedirect::Scheme
        );
        let f = fixture(Some(&format!("{base}app_redirect = \"loopback\"\n")), None);
        assert_eq!(
            f.resolve(Settings::default())
                .expect("loopback")
                .app_redirect,
            AppRedirect::Loopback
        );
        let mut f = fixture(Some(base), None);
        f.env
            .insert("CORE_TEST_APP_REDIRECT".into(), "https".into());
        let e = f.resolve(Settings::default()).expect_err("bad");
        assert!(
            e.message()
                .contains("`app_redirect` from $CORE_TEST_APP_REDIRECT"),
            "{e}"
        );
    }

    #[test]
    fn a_profile_is_saved_in_its_own_table_and_read_back() {
        let f = fixture(
            Some("issuer = \"https://a.example\"\nclient_id = \"a\"\n"),
            None,
        );
        let path = f.paths.user_file.clone().expect("user file");
        let scopes = vec!["openid".to_owned(), "email".to_owned()];
        save_user_settings_in(&path, Some("work"), "https://b.example", "b", &scopes, &[])
            .expect("save");
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
        assert!(e.message().contains("$CORE_TEST_CLIENT_ID"), "{e}");
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
            "CORE_TEST_EXTRA_AUTH_PARAMS".into(),
            "prompt=login&audience=https%3A%2F%2Fapi".into(),
        );
        let c = f.resolve(Settings::default()).expect("ok");
        assert_eq!(
            c.extra_auth_params.get("audience").map(String::as_str),
            Some("https://api")
        );
        f.env
            .insert("CORE_TEST_EXTRA_AUTH_PARAMS".into(), "state=x".into());
        let e = f.resolve(Settings::default()).expect_err("reserved");
        assert!(e.message().contains("`state`"), "{e}");
        // The flow picks the response mode, and the response is checked against it.
        f.env.insert(
            "CORE_TEST_EXTRA_AUTH_PARAMS".into(),
            "response_mode=query".into(),
        );
        let e = f.resolve(Settings::default()).expect_err("reserved");
        assert!(e.message().contains("`response_mode`"), "{e}");
        assert!(parse_params("novalue").is_err());
    }

    #[test]
    fn store_key_is_validated_and_lockable() {
        let base = "issuer = \"https://id.example\"\nclient_id = \"a\"\n";
        let f = fixture(Some(base), None);
        assert_eq!(
            f.resolve(Settings::default()).expect("default").store,
            StoreChoice::Auto
        );
        let f = fixture(Some(&format!("{base}store = \"kernel-keyring\"\n")), None);
        assert_eq!(
            f.resolve(Settings::default()).expect("kernel").store,
            StoreChoice::KernelKeyring
        );
        let f = fixture(Some(&format!("{base}store = \"file\"\n")), None);
        let e = f.resolve(Settings::default()).expect_err("bad store");
        assert!(e.message().starts_with("`store` from "), "{e}");
        assert!(e.message().contains("secret-service"), "{e}");
        // IT can pin the store: the managed value wins over the user's flag.
        let f = fixture(
            Some(base),
            Some("store = \"secret-service\"\nlocked = [\"store\"]\n"),
        );
        let flags = Settings {
            store: Some("kernel-keyring".into()),
            ..Settings::default()
        };
        let e = f.resolve(flags).expect_err("locked");
        assert!(e.message().contains("managed by your organization"), "{e}");
        assert_eq!(
            f.resolve(Settings::default()).expect("managed").store,
            StoreChoice::SecretService
        );
    }

    #[test]
    fn flow_par_and_dpop_are_validated_with_key_and_source() {
        let base = "issuer = \"https://id.example\"\nclient_id = \"a\"\n";
        let f = fixture(Some(base), None);
        let c = f.resolve(Settings::default()).expect("defaults");
        assert_eq!(
            (c.flow, c.par, c.dpop),
            (FlowChoice::Code, UseChoice::Auto, UseChoice::Auto)
        );
        let f = fixture(
            Some(&format!(
                "{base}flow = \"device\"\npar = \"never\"\ndpop = \"always\"\n"
            )),
            None,
        );
        let c = f.resolve(Settings::default()).expect("set");
        assert_eq!(
            (c.flow, c.par, c.dpop),
            (FlowChoice::Device, UseChoice::Never, UseChoice::Always)
        );
        for flow in ["code", "hybrid", "implicit", "device"] {
            assert_eq!(FlowChoice::parse(flow).expect("valid").as_str(), flow);
        }

        // Each source is named: the file, the variable, the flag.
        let f = fixture(Some(&format!("{base}par = \"sometimes\"\n")), None);
        let e = f.resolve(Settings::default()).expect_err("bad par");
        let user = f.paths.user_file.clone().expect("user file");
        assert_eq!(
            e.message(),
            format!(
                "`par` from {}: `sometimes` is not a choice here; use auto, always or never",
                user.display()
            )
        );
        let mut f = fixture(Some(base), None);
        f.env.insert("CORE_TEST_FLOW".into(), "pkce".into());
        let e = f.resolve(Settings::default()).expect_err("bad flow");
        assert_eq!(
            e.message(),
            "`flow` from $CORE_TEST_FLOW: `pkce` is not a flow; use code, hybrid, implicit or device"
        );
        let flags = Settings {
            dpop: Some("yes".into()),
            ..Settings::default()
        };
        let e = fixture(Some(base), None)
            .resolve(flags)
            .expect_err("bad dpop");
        assert!(
            e.message()
                .starts_with("`dpop` from the command line: `yes`"),
            "{e}"
        );
        assert!(!e.message().contains('\n'), "one line: {e}");
    }

    #[test]
    fn the_managed_file_can_lock_the_flow_and_require_dpop() {
        let base = "issuer = \"https://id.example\"\nclient_id = \"a\"\n";
        let f = fixture(
            Some(base),
            Some("flow = \"code\"\ndpop = \"always\"\nlocked = [\"flow\", \"dpop\"]\n"),
        );
        let c = f.resolve(Settings::default()).expect("managed");
        assert_eq!((c.flow, c.dpop), (FlowChoice::Code, UseChoice::Always));
        let flags = Settings {
            flow: Some("implicit".into()),
            ..Settings::default()
        };
        let e = f.resolve(flags).expect_err("locked flow");
        assert!(
            e.message()
                .starts_with("`flow` is managed by your organization in "),
            "{e}"
        );
        assert!(e.message().contains("the command line"), "{e}");
        let mut f2 = fixture(Some(base), Some("dpop = \"always\"\nlocked = [\"dpop\"]\n"));
        f2.env.insert("CORE_TEST_DPOP".into(), "never".into());
        let e = f2.resolve(Settings::default()).expect_err("locked dpop");
        assert!(e.message().contains("$CORE_TEST_DPOP"), "{e}");
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
        assert!(validate_loopback_redirect("com.example.app:/callback").is_err());
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

    #[cfg(unix)]
    fn chmod(p: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[cfg(unix)]
    #[test]
    fn a_managed_file_others_can_change_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "issuer = \"https://corp.example\"\nlocked = [\"issuer\"]\n",
        )
        .expect("write");
        let me = rustix::process::geteuid().as_raw();
        let check = |owner: u32| {
            let meta = std::fs::metadata(&path).expect("meta");
            check_managed(&path, &meta, owner)
        };
        chmod(dir.path(), 0o755);
        chmod(&path, 0o644);
        check(me).expect("0644 in a 0755 folder, owned as expected");
        for (mode, why) in [
            (0o666, "writable by every user"),
            (0o664, "writable by its group"),
        ] {
            chmod(&path, mode);
            let e = check(me).expect_err("writable by others");
            assert!(e.message().contains(why), "{mode:o}: {e}");
            assert!(
                e.message().contains("refusing the managed config file"),
                "{e}"
            );
        }
        chmod(&path, 0o644);
        for mode in [0o777, 0o775, 0o1777] {
            chmod(dir.path(), mode);
            let e = check(me).expect_err("folder writable by others");
            assert!(e.message().contains("its folder"), "{mode:o}: {e}");
        }
        chmod(dir.path(), 0o755);
        if me != 0 {
            // Owned by this user, but root is required.
            let e = check(0).expect_err("not root's");
            assert!(
                e.message()
                    .contains(&format!("owned by uid {me}, not root")),
                "{e}"
            );
        } else {
            std::os::unix::fs::chown(&path, Some(65534), None).expect("chown");
            let e = check(0).expect_err("another user's");
            assert!(e.message().contains("owned by uid 65534"), "{e}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn loading_refuses_a_writable_managed_file_and_a_user_file_is_not_judged() {
        let f = fixture(
            Some("client_id = \"mine\"\n"),
            Some("issuer = \"https://corp.example\"\nlocked = [\"issuer\"]\n"),
        );
        let system = f.paths.system_file.clone().expect("path");
        let user = f.paths.user_file.clone().expect("path");
        chmod(&system, 0o666);
        let e = f.load(Settings::default()).expect_err("world-writable");
        assert_eq!(e.kind(), crate::error::ErrorKind::Config);
        assert!(e.message().contains("writable by every user"), "{e}");
        chmod(&system, 0o644);
        chmod(&user, 0o666);
        f.load(Settings::default())
            .expect("the user's own file may be anything");
    }
}
