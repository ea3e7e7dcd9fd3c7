//! The ports: everything the core needs from the world (keychain, browser, clock, HTTP, token
//! cache, folders), passed in so tests and other front ends can swap each one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::AppIdentity;
use crate::browser::{BrowserLauncher, SystemBrowser};
use crate::clock::{Clock, SystemClock};
use crate::http::{HttpTransport, SystemHttp};
use crate::store::{KEYCHAIN_TIMEOUT, SecretStore, SystemStore};
use crate::token_cache::TokenCache;

/// The world as the core sees it.
#[derive(Debug, Clone)]
pub struct Ports {
    pub store: Arc<dyn SecretStore>,
    pub browser: Arc<dyn BrowserLauncher>,
    pub clock: Arc<dyn Clock>,
    /// Every call to the provider (discovery, token, userinfo, PAR, revocation, device). The
    /// profile picture alone goes to the network directly, pinned to the addresses it checked.
    pub http: Arc<dyn HttpTransport>,
    /// Where discovery documents and lock files go; `None` uses the OS cache directory.
    pub cache_dir: Option<PathBuf>,
    pub keychain_timeout: Duration,
    /// Where the current access token is also kept for the hot path (`None`: no cache).
    pub token_cache: Option<Arc<dyn TokenCache>>,
    /// The app the core works for: its user agent, and its folder for locks.
    pub identity: AppIdentity,
}

impl Ports {
    /// The real OS keychain (under `identity`'s service), system browser, clock and network. The keychain
    /// follows each configuration's `store` key; `<PREFIX>_TOKEN_CACHE=off` turns the
    /// access-token cache's reads and writes off, never its clearing: a token another process
    /// cached must not outlive a logout, `invalid_grant` or a refused token in this one.
    pub fn system(identity: &AppIdentity) -> Self {
        let env = |name: &str| std::env::var(identity.var(name));
        let service = identity.keychain_service;
        let mut store = SystemStore::new(service, crate::config::StoreChoice::Auto);
        // Debug builds only: force small keychain entries to exercise chunking on any OS.
        if cfg!(debug_assertions)
            && let Some(n) = env("KEYCHAIN_CHUNK").ok().and_then(|v| v.parse().ok())
        {
            store = store.with_max_secret_len(n);
        }
        let keychain_timeout = env("KEYCHAIN_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(KEYCHAIN_TIMEOUT);
        Self {
            store: Arc::new(store),
            browser: Arc::new(SystemBrowser::from_env()),
            clock: Arc::new(SystemClock),
            http: Arc::new(SystemHttp::new(identity.user_agent)),
            cache_dir: identity.cache_dir(),
            keychain_timeout,
            token_cache: match env("TOKEN_CACHE").as_deref() {
                Ok("off" | "0" | "false" | "no") => {
                    crate::token_cache::system(service).map(crate::token_cache::clear_only)
                }
                _ => crate::token_cache::system(service),
            },
            identity: *identity,
        }
    }
}
