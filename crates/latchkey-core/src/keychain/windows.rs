//! Windows: Credential Manager.

use std::sync::Arc;

use keyring_core::CredentialStore;

use crate::store::StoreKind;

/// `CRED_MAX_CREDENTIAL_BLOB_SIZE`: larger sessions are split across entries by the vault.
pub const MAX_SECRET_LEN: usize = 2560;

pub fn open() -> keyring_core::Result<Arc<CredentialStore>> {
    Ok(windows_native_keyring_store::Store::new()?)
}

/// What `store = "auto"` resolves to.
pub const NATIVE: StoreKind = StoreKind::WindowsCredentialManager;
