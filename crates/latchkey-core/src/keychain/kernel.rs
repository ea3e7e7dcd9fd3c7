//! Linux: the kernel key retention service (keyutils, `keyrings(7)`), for machines without a
//! Secret Service: SSH sessions, containers, WSL, minimal servers.
//!
//! Sessions live in the user's **persistent keyring** (`persistent-keyring(7)`,
//! `KEYCTL_GET_PERSISTENT`): kernel memory only, never written to disk, kept across logins, and
//! lost at reboot or once the keyring has gone unused for
//! `/proc/sys/kernel/keys/persistent_keyring_expiry` seconds (3 days by default; every open here
//! resets that timer). Each entry is a `user` key readable by its owner only.
//!
//! `keyring-core`'s own keyutils store (`linux-keyutils-keyring-store` 1.0) keeps entries in the
//! *session* keyring and only links them into the persistent one; processes started without a
//! session keyring (no `pam_keyinit`: cron, many SSH and container setups) cannot use it at all.
//! So this store is written on the `linux-keyutils` binding directly, against the persistent
//! keyring, linked into the user keyring that every process of the user has.
//!
//! keyutils calls are synchronous system calls on kernel memory: they cannot hang on a daemon the
//! way D-Bus can. The vault still runs them on its worker thread with its usual timeout.

use std::fmt;
use std::sync::OnceLock;

use linux_keyutils::{KeyError, KeyPermissionsBuilder, KeyRing, KeyRingIdentifier, Permission};

use crate::store::{SecretStore, StoreError, StoreKind};

/// A `user` key holds at most 32767 bytes; the default quota for a non-root user is 20000 bytes
/// in all (`/proc/sys/kernel/keys/maxbytes`), so entries stay well below both.
pub const MAX_SECRET_LEN: usize = 8 * 1024;

/// The kernel keyring as a [`SecretStore`]: one `user` key per entry, named `<service>:<name>`.
pub struct KernelKeyring {
    service: String,
    ring: OnceLock<Result<KeyRing, StoreError>>,
}

impl fmt::Debug for KernelKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KernelKeyring")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// Owner only: the key's user gets everything; possessor, group and others nothing
/// (`keyrings(7)`, "Permissions"). Possessor rights would go to any process that can reach the
/// key through its keyrings, whatever its uid: a process of another user that inherited this
/// user's session keyring (`sudo -u svc` on Debian keeps it) could read the session, the cached
/// token and the DPoP key. The owner still has them all through the user rights.
pub(crate) fn owner_only() -> linux_keyutils::KeyPermissions {
    KeyPermissionsBuilder::builder()
        .user(Permission::ALL)
        .build()
}

impl KernelKeyring {
    /// The store for `service`. The keyring is opened on first use.
    pub fn new(service: &str) -> Self {
        Self {
            service: service.to_owned(),
            ring: OnceLock::new(),
        }
    }

    /// Opens the persistent keyring now, to tell whether this kernel offers one.
    pub fn check(&self) -> Result<(), StoreError> {
        self.ring().map(|_| ())
    }

    fn ring(&self) -> Result<KeyRing, StoreError> {
        self.ring
            .get_or_init(|| {
                // Linked into the user keyring (@u), which exists for every process of the user,
                // unlike a session keyring.
                KeyRing::get_persistent(KeyRingIdentifier::User).map_err(map_error)
            })
            .clone()
    }

    fn description(&self, name: &str) -> String {
        format!("{}:{name}", self.service)
    }
}

impl SecretStore for KernelKeyring {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.ring()?.search(&self.description(name)) {
            Ok(key) => key.read_to_vec().map(Some).or_else(|e| match e {
                // Expired or revoked between the search and the read: gone.
                KeyError::KeyExpired | KeyError::KeyRevoked | KeyError::KeyDoesNotExist => Ok(None),
                e => Err(map_error(e)),
            }),
            Err(KeyError::KeyDoesNotExist | KeyError::KeyExpired | KeyError::KeyRevoked) => {
                Ok(None)
            }
            Err(e) => Err(map_error(e)),
        }
    }

    fn set(&self, name: &str, secret: &[u8]) -> Result<(), StoreError> {
        if secret.len() > MAX_SECRET_LEN {
            return Err(StoreError::TooLong);
        }
        // add_key replaces the payload of a key with the same description in this keyring.
        let key = self
            .ring()?
            .add_key(&self.description(name), secret)
            .map_err(map_error)?;
        key.set_perms(owner_only()).map_err(map_error)
    }

    fn delete(&self, name: &str) -> Result<bool, StoreError> {
        match self.ring()?.search(&self.description(name)) {
            // Invalidated keys are unlinked from every keyring at once (KEYCTL_INVALIDATE).
            Ok(key) => key.invalidate().map(|()| true).map_err(map_error),
            Err(KeyError::KeyDoesNotExist | KeyError::KeyExpired | KeyError::KeyRevoked) => {
                Ok(false)
            }
            Err(e) => Err(map_error(e)),
        }
    }

    fn max_secret_len(&self) -> usize {
        MAX_SECRET_LEN
    }

    fn kind(&self) -> Option<StoreKind> {
        Some(StoreKind::KernelKeyring)
    }
}

/// keyutils errors in the user's terms. They carry no payload bytes.
pub(crate) fn map_error(e: KeyError) -> StoreError {
    match e {
        KeyError::QuotaExceeded => StoreError::Other(
            "the kernel keyring quota is full (see /proc/sys/kernel/keys/maxbytes)".into(),
        ),
        KeyError::AccessDenied | KeyError::PermissionDenied => {
            StoreError::Unavailable("the kernel keyring refused access".into())
        }
        KeyError::OperationNotSupported => StoreError::Unavailable(
            "this kernel has no persistent keyrings (CONFIG_PERSISTENT_KEYRINGS)".into(),
        ),
        // ENOSYS: no keyctl at all, e.g. blocked by a container's seccomp profile.
        KeyError::Unknown(38) => StoreError::Unavailable(
            "the kernel keyring is not available here (keyctl is blocked)".into(),
        ),
        e => StoreError::Other(format!("the kernel keyring failed ({e})")),
    }
}
