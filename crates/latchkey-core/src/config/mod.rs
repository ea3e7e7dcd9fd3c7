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
//!
//! The work is done in stages, one module each: `sources` reads the flags, the environment and
//! the files (each parsed by `file`, which also checks the managed file's owner) into
//! [`Sources`] and merges them under the locks; `resolve` validates the [`Merged`] values into a
//! [`Config`]; `write` is the one writer of the user file. This module holds what the stages
//! share: the keys, the choice enums, the per-source [`Settings`] schema and the resolved
//! [`Config`] the rest of the program reads.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

// Windows security descriptors: the pure decision, tested on every OS.
#[cfg(any(windows, test))]
mod acl;
mod file;
// Who may change the managed file: one whole file per OS family.
#[cfg_attr(unix, path = "managed_unix.rs")]
#[cfg_attr(windows, path = "managed_windows.rs")]
mod managed;
mod resolve;
mod sources;
mod write;

pub(crate) use resolve::is_loopback_host;
pub use resolve::{Merged, validate_issuer};
#[cfg(feature = "fuzzing")]
pub(crate) use sources::set_flag;
pub use sources::{Paths, Source, Sources, Value, parse_params};
pub use write::save_user_settings;

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
    "kube_servers",
    "git_username",
    "flow",
    "par",
    "dpop",
    "app_redirect",
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

/// Which sign-in flow `login` runs (key `flow`); a stored session records the one it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
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
    /// Kubernetes API servers `exec-credential` answers for (kubectl names the server when the
    /// kubeconfig's exec sets `provideClusterInfo`); empty: any.
    pub kube_servers: Vec<Url>,
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
            .field("kube_servers", &self.kube_servers)
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

    /// Whether `exec-credential` may answer kubectl calling the API server `server`: any with
    /// no `kube_servers`, else one listed. Compared as URLs (scheme, host, port with its
    /// default, path without a trailing `/`), so `https://k8s.example` is
    /// `https://K8S.example:443/`.
    pub fn allows_kube_server(&self, server: &str) -> bool {
        if self.kube_servers.is_empty() {
            return true;
        }
        let Ok(asked) = Url::parse(server.trim()) else {
            return false;
        };
        let key = |u: &Url| {
            (
                u.scheme().to_owned(),
                u.host_str().map(str::to_owned),
                u.port_or_known_default(),
                u.path().trim_end_matches('/').to_owned(),
                u.query().is_some() || u.fragment().is_some() || !u.username().is_empty(),
            )
        };
        let asked = key(&asked);
        self.kube_servers.iter().any(|listed| key(listed) == asked)
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
    pub kube_servers: Option<Scopes>,
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

#[cfg(test)]
mod tests;
