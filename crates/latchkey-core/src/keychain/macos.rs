//! macOS: the login keychain (generic passwords), through the `keychain` module of
//! apple-native-keyring-store (the file-based "legacy" keychain; its `protected` store needs an
//! app signed with a provisioning profile). Each vault entry is one generic password: service =
//! the identity's `keychain_service`, account = the entry's name. Keychain Access lists it under
//! Passwords, with Name and Where both showing the service.

use std::sync::Arc;
use std::time::Duration;

use keyring_core::CredentialStore;

use crate::store::StoreKind;

/// Generic-password items hold far more; chunking still applies above this.
pub const MAX_SECRET_LEN: usize = 64 * 1024;

/// How long one keychain call may take here (`store::KEYCHAIN_TIMEOUT`; elsewhere 10 s, meant
/// for a Secret Service daemon that stopped answering). On macOS a call can be waiting for a
/// person: an item's access control list trusts the program that created it, so another program
/// (the `latchkey` CLI reading the app's session, or the app itself once an update changed its
/// code signature) gets the "wants to use your confidential information stored in … in your
/// keychain" prompt (Always Allow / Deny / Allow), and the read blocks until it is answered
/// (Apple, "Access Control Lists",
/// <https://developer.apple.com/documentation/security/access-control-lists>). Unlocking a
/// locked login keychain is the same wait. Typing the login password for "Always Allow" often
/// takes longer than 10 s, and a read that timed out reports an error even when the user then
/// allows it. Where no prompt can be shown (an ssh session) the call fails at once, so nothing
/// waits there.
pub const KEYCHAIN_TIMEOUT: Duration = Duration::from_secs(120);

pub fn open() -> keyring_core::Result<Arc<CredentialStore>> {
    Ok(apple_native_keyring_store::keychain::Store::new()?)
}

/// What `store = "auto"` resolves to.
pub const NATIVE: StoreKind = StoreKind::MacosKeychain;
