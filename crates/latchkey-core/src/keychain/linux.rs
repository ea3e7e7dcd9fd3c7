//! Linux: the freedesktop Secret Service (gnome-keyring, KWallet) over D-Bus, or the kernel
//! keyring where there is none.
//!
//! The ladder for `store = "auto"`: the Secret Service when the session bus has (or can start)
//! `org.freedesktop.secrets`; the kernel keyring when there is no session bus, or no Secret
//! Service on it. A bus that does not answer, or a locked collection, is a transient keychain
//! error, never a reason to switch: a session never moves between stores by itself.

use std::sync::Arc;

use keyring_core::CredentialStore;

use crate::config::StoreChoice;
use crate::store::{SecretStore, StoreError, StoreKind};

#[path = "kernel.rs"]
pub mod kernel;

/// The Secret Service has no practical item limit; chunking still applies above this.
pub const MAX_SECRET_LEN: usize = 64 * 1024;

/// What `store = "auto"` resolves to when nothing is said.
pub const NATIVE: StoreKind = StoreKind::SecretService;

const SECRET_SERVICE: &str = "org.freedesktop.secrets";

pub fn open() -> keyring_core::Result<Arc<CredentialStore>> {
    Ok(zbus_secret_service_keyring_store::Store::new()?)
}

/// What the session bus says about the Secret Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    NoBus,
    NoService,
    Present,
}

/// Asks the session bus whether `org.freedesktop.secrets` has an owner or can be activated.
/// Blocks: zbus has no timeout, so this runs on the vault's thread, under its timeout.
fn probe() -> Result<Probe, StoreError> {
    use zbus::Error as Z;
    let conn = match zbus::blocking::Connection::session() {
        Ok(c) => c,
        // No address, no socket, or nobody listening: there is no session bus.
        Err(Z::Address(_) | Z::InputOutput(_) | Z::Connection(..)) => return Ok(Probe::NoBus),
        Err(e) => {
            return Err(StoreError::Unavailable(format!(
                "the session bus failed: {e}"
            )));
        }
    };
    let bus = zbus::blocking::fdo::DBusProxy::new(&conn)
        .map_err(|e| StoreError::Unavailable(format!("the session bus failed: {e}")))?;
    let name = zbus::names::BusName::try_from(SECRET_SERVICE)
        .map_err(|e| StoreError::Other(e.to_string()))?;
    let owned = bus
        .name_has_owner(name)
        .map_err(|e| StoreError::Unavailable(format!("the session bus failed: {e}")))?;
    if owned {
        return Ok(Probe::Present);
    }
    // A Secret Service that D-Bus starts on first use (a `.service` file) counts as present.
    let activatable = bus
        .list_activatable_names()
        .map_err(|e| StoreError::Unavailable(format!("the session bus failed: {e}")))?;
    Ok(
        if activatable.iter().any(|n| n.as_str() == SECRET_SERVICE) {
            Probe::Present
        } else {
            Probe::NoService
        },
    )
}

/// The store `choice` names, for `service`. Runs the D-Bus probe for `auto` and for an explicit
/// `secret-service` (to say clearly why it is missing, instead of falling back).
pub fn select(
    service: &str,
    choice: StoreChoice,
    max_len: Option<usize>,
) -> Result<Arc<dyn SecretStore>, StoreError> {
    let secret_service = || crate::store::native(service, max_len);
    let kernel = || -> Result<Arc<dyn SecretStore>, StoreError> {
        let k = kernel::KernelKeyring::new(service);
        k.check()?;
        Ok(Arc::new(k))
    };
    match choice {
        StoreChoice::KernelKeyring => kernel(),
        StoreChoice::SecretService => match probe()? {
            Probe::Present => Ok(secret_service()),
            Probe::NoBus => Err(StoreError::Unavailable(
                "`store` is `secret-service`, but there is no D-Bus session bus; start a desktop \
                 session or set store = \"kernel-keyring\""
                    .into(),
            )),
            Probe::NoService => Err(StoreError::Unavailable(
                "`store` is `secret-service`, but no Secret Service runs on the session bus; \
                 start gnome-keyring or KWallet, or set store = \"kernel-keyring\""
                    .into(),
            )),
        },
        StoreChoice::Auto => match probe()? {
            Probe::Present => Ok(secret_service()),
            Probe::NoBus | Probe::NoService => kernel(),
        },
    }
}
