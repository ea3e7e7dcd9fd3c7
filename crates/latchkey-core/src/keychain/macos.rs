//! macOS: the login keychain (generic passwords).

use std::sync::Arc;

use keyring_core::CredentialStore;

use crate::store::StoreKind;

/// Generic-password items hold far more; chunking still applies above this.
pub const MAX_SECRET_LEN: usize = 64 * 1024;

pub fn open() -> keyring_core::Result<Arc<CredentialStore>> {
    Ok(apple_native_keyring_store::keychain::Store::new()?)
}

/// What `store = "auto"` resolves to.
pub const NATIVE: StoreKind = StoreKind::MacosKeychain;
