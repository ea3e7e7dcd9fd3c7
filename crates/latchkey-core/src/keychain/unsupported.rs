//! Platforms without a supported keychain: every call fails with a clear message.

use std::sync::Arc;

use keyring_core::CredentialStore;

use crate::store::StoreKind;

pub const MAX_SECRET_LEN: usize = 2560;

pub fn open() -> keyring_core::Result<Arc<CredentialStore>> {
    Err(keyring_core::Error::NotSupportedByStore(
        "no OS keychain is supported on this platform".into(),
    ))
}

/// What `store = "auto"` resolves to.
pub const NATIVE: StoreKind = StoreKind::Other;
