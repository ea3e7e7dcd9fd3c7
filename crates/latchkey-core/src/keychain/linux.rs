//! Linux: the freedesktop Secret Service (gnome-keyring, KWallet) over D-Bus.

use std::sync::Arc;

use keyring_core::CredentialStore;

/// The Secret Service has no practical item limit; chunking still applies above this.
pub const MAX_SECRET_LEN: usize = 64 * 1024;

pub fn open() -> keyring_core::Result<Arc<CredentialStore>> {
    Ok(zbus_secret_service_keyring_store::Store::new()?)
}
