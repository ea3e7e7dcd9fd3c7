//! The hot path: the current access token, cached where reading it costs no D-Bus round trip.
//!
//! kubectl and git call their credential helper on every command, and a Secret Service read is
//! most of a `latchkey token` process's time. So next to the session, the core keeps **only the
//! access token and its expiry** (with the ID token, and for a DPoP-bound token the key it is
//! bound to) in a [`TokenCache`]; on Linux that is the kernel's user keyring
//! ([`KernelTokenCache`]): one `user` key per session, readable by its owner only, with a kernel
//! timeout equal to the token's remaining validity, so the kernel forgets it when it would be
//! refreshed anyway. The refresh token is never cached.
//!
//! The DPoP key is cached because a DPoP token is useless without it (RFC 9449 §7.1: every
//! request carries a proof signed by the key), so `latchkey headers` would otherwise read the
//! Secret Service on every call. Beside its token, in the same owner-only kernel key, it is no
//! more exposed than the token it protects, and the kernel drops both at the token's expiry.
//!
//! The cache is kept exact by the core: every save of a session (sign-in, refresh, from the CLI or
//! the app) rewrites it, and logout and `invalid_grant` remove it. A miss, or anything unreadable,
//! simply falls back to the keychain.
//!
//! ## Platform-specific
//! - **Linux:** the kernel user keyring (`keyrings(7)`), in kernel memory only.
//! - **macOS, Windows:** no cache. The keychain is a local API call there (no bus daemon in the
//!   way), and there is no per-user store that is both memory-only and as well protected as the
//!   keychain itself; a file would be a plaintext token on disk.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where the access token is cached. Implementations must be fast and must not block: they are
/// called on the async runtime, on the hot path.
pub trait TokenCache: Send + Sync + fmt::Debug {
    /// The cached value for `key`, if any; any failure is a miss.
    fn get(&self, key: &str) -> Option<Vec<u8>>;
    /// Caches `value` for `key`, to be forgotten after `ttl_secs` seconds.
    fn put(&self, key: &str, value: &[u8], ttl_secs: u64) -> Result<(), String>;
    /// Forgets `key`. Succeeds when there was nothing to forget.
    fn remove(&self, key: &str) -> Result<(), String>;
}

/// What one cache entry holds: the access token and when it stops being served.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct CachedToken {
    pub v: u32,
    pub access_token: String,
    pub token_type: String,
    pub expires_at: DateTime<Utc>,
    /// `expires_at` less the session's refresh margin: after this the keychain path refreshes.
    pub fresh_until: DateTime<Utc>,
    /// The session's ID token, for `exec-credential` (kubectl), with the same two instants.
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub id_expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub id_fresh_until: Option<DateTime<Utc>>,
    /// For a DPoP-bound access token, the private key it is bound to, as
    /// [`DpopKey::secret`](crate::dpop::DpopKey) writes it: `latchkey headers` signs its proof
    /// with it.
    #[serde(default)]
    pub dpop_key: Option<String>,
}

impl fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedToken")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expires_at)
            .field("fresh_until", &self.fresh_until)
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .field("id_fresh_until", &self.id_fresh_until)
            .field("dpop_key", &self.dpop_key.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl CachedToken {
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The entry, if it parses and is of this format.
    pub(crate) fn parse(bytes: &[u8]) -> Option<Self> {
        let entry: Self = serde_json::from_slice(bytes).ok()?;
        (entry.v == 1).then_some(entry)
    }

    /// Whether the access token may be served at `now`.
    pub(crate) fn access_fresh(&self, now: DateTime<Utc>) -> bool {
        now < self.fresh_until && !self.access_token.is_empty()
    }

    /// The ID token and its `exp`, if it may be served at `now`.
    pub(crate) fn fresh_id_token(&self, now: DateTime<Utc>) -> Option<(String, DateTime<Utc>)> {
        let token = self.id_token.clone().filter(|t| !t.is_empty())?;
        (now < self.id_fresh_until?).then_some((token, self.id_expires_at?))
    }
}

#[cfg(target_os = "linux")]
pub use linux::KernelTokenCache;

#[cfg(target_os = "linux")]
mod linux {
    use linux_keyutils::{KeyError, KeyRing, KeyRingIdentifier};

    use super::TokenCache;
    use crate::store::imp::kernel::owner_only;

    /// The kernel user keyring (`@u`) as a [`TokenCache`]: keys named `<service>:token:<key>`.
    #[derive(Debug)]
    pub struct KernelTokenCache {
        service: String,
    }

    impl KernelTokenCache {
        pub fn new(service: &str) -> Self {
            Self {
                service: service.to_owned(),
            }
        }

        fn description(&self, key: &str) -> String {
            format!("{}:token:{key}", self.service)
        }

        fn ring(create: bool) -> Result<KeyRing, KeyError> {
            KeyRing::from_special_id(KeyRingIdentifier::User, create)
        }
    }

    impl TokenCache for KernelTokenCache {
        fn get(&self, key: &str) -> Option<Vec<u8>> {
            let key = Self::ring(false)
                .ok()?
                .search(&self.description(key))
                .ok()?;
            key.read_to_vec().ok()
        }

        fn put(&self, key: &str, value: &[u8], ttl_secs: u64) -> Result<(), String> {
            let ring = Self::ring(true).map_err(|e| format!("user keyring: {e}"))?;
            // add_key replaces the payload of the key with this description in @u.
            let k = ring
                .add_key(&self.description(key), value)
                .map_err(|e| format!("add_key: {e}"))?;
            let secured = k
                .set_perms(owner_only())
                .map_err(|e| format!("setperm: {e}"))
                .and_then(|()| {
                    k.set_timeout(usize::try_from(ttl_secs.max(1)).unwrap_or(usize::MAX))
                        .map_err(|e| format!("set_timeout: {e}"))
                });
            if let Err(e) = secured {
                // Never leave a token cached without its owner-only permissions or its expiry.
                let _ = k.invalidate();
                return Err(e);
            }
            Ok(())
        }

        fn remove(&self, key: &str) -> Result<(), String> {
            let Ok(ring) = Self::ring(false) else {
                return Ok(()); // no user keyring: nothing cached
            };
            match ring.search(&self.description(key)) {
                Ok(k) => k.invalidate().map_err(|e| format!("invalidate: {e}")),
                Err(KeyError::KeyDoesNotExist | KeyError::KeyExpired | KeyError::KeyRevoked) => {
                    Ok(())
                }
                Err(e) => Err(format!("search: {e}")),
            }
        }
    }
}

/// The cache `Ports::system()` uses: the kernel user keyring on Linux, none elsewhere.
pub fn system(service: &str) -> Option<std::sync::Arc<dyn TokenCache>> {
    #[cfg(target_os = "linux")]
    {
        Some(std::sync::Arc::new(KernelTokenCache::new(service)))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = service;
        None
    }
}

/// `cache` with its reads and writes turned off but its clearing kept (`TOKEN_CACHE=off`).
pub(crate) fn clear_only(cache: std::sync::Arc<dyn TokenCache>) -> std::sync::Arc<dyn TokenCache> {
    std::sync::Arc::new(ClearOnly(cache))
}

#[derive(Debug)]
struct ClearOnly(std::sync::Arc<dyn TokenCache>);

impl TokenCache for ClearOnly {
    fn get(&self, _: &str) -> Option<Vec<u8>> {
        None
    }
    fn put(&self, _: &str, _: &[u8], _: u64) -> Result<(), String> {
        Ok(())
    }
    fn remove(&self, key: &str) -> Result<(), String> {
        self.0.remove(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fresh_for: i64) -> (CachedToken, DateTime<Utc>) {
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        (
            CachedToken {
                v: 1,
                access_token: "at-secret".into(),
                token_type: "Bearer".into(),
                expires_at: now + chrono::Duration::seconds(fresh_for + 30),
                fresh_until: now + chrono::Duration::seconds(fresh_for),
                id_token: Some("id-secret".into()),
                id_expires_at: Some(now + chrono::Duration::seconds(fresh_for * 2)),
                id_fresh_until: Some(now + chrono::Duration::seconds(fresh_for * 2 - 30)),
                dpop_key: Some("key-secret".into()),
            },
            now,
        )
    }

    #[test]
    fn fresh_entries_are_served_and_stale_ones_are_not() {
        let (e, now) = entry(60);
        let parsed = CachedToken::parse(&e.to_bytes()).expect("parses");
        assert!(parsed.access_fresh(now));
        assert!(!parsed.access_fresh(now + chrono::Duration::seconds(60)));
        // The ID token has its own lifetime: still served after the access token's.
        assert_eq!(
            parsed
                .fresh_id_token(now + chrono::Duration::seconds(60))
                .map(|(t, _)| t),
            Some("id-secret".to_owned())
        );
        assert!(
            parsed
                .fresh_id_token(now + chrono::Duration::seconds(90))
                .is_none()
        );
        assert!(CachedToken::parse(b"not json").is_none());
        let (mut other, _) = entry(60);
        other.v = 2;
        assert!(CachedToken::parse(&other.to_bytes()).is_none());
        // An entry of the first format (no ID token) still reads.
        let old = br#"{"v":1,"access_token":"a","token_type":"Bearer","expires_at":"2027-01-01T00:00:00Z","fresh_until":"2027-01-01T00:00:00Z"}"#;
        assert!(CachedToken::parse(old).expect("old").id_token.is_none());
    }

    #[test]
    fn debug_hides_the_token_and_the_key() {
        let (e, _) = entry(60);
        let debug = format!("{e:?}");
        for secret in ["at-secret", "id-secret", "key-secret"] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }

    #[test]
    fn a_cache_turned_off_still_clears_what_another_process_cached() {
        let shared = std::sync::Arc::new(crate::testing::MemoryCache::default());
        shared.put("k", b"cached elsewhere", 60).expect("put");
        let off = clear_only(shared.clone());
        assert_eq!(off.get("k"), None, "no reads");
        off.put("j", b"x", 60).expect("put");
        assert_eq!(shared.get("j"), None, "no writes");
        off.remove("k").expect("remove");
        assert_eq!(shared.get("k"), None, "the clearing still happens");
    }
}
