//! The token store port and the vault that keeps a session in it.
//!
//! A [`SecretStore`] is a flat keychain: named byte blobs. The OS keychains cap a blob's size
//! (Windows Credential Manager: 2560 bytes), and a session with a long refresh token, ID token and
//! access token can exceed that. So the vault splits a session across entries **by design**:
//!
//! - the primary entry `<name>` holds a header `LK1 <generation> <count>\n` plus the first chunk;
//! - chunk `i` lives at `<name>#<generation>.<i>`.
//!
//! A save writes the new generation's chunks first and the primary entry last, then deletes the old
//! generation. A crash at any point leaves either the old session or the new one readable, never a
//! mix. Every call runs on its own thread with a timeout, because keychain APIs block and some
//! (zbus, with a frozen daemon) never return.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::config::StoreChoice;
use crate::error::{Error, ErrorKind, Result};

/// Default timeout of one keychain operation (`<PREFIX>_KEYCHAIN_TIMEOUT_MS` overrides it).
#[cfg(not(target_os = "macos"))]
pub const KEYCHAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Default timeout of one keychain operation: longer on macOS, where a call can be waiting for
/// the user to answer the Keychain's access prompt (see `keychain/macos.rs`).
#[cfg(target_os = "macos")]
pub const KEYCHAIN_TIMEOUT: Duration = imp::KEYCHAIN_TIMEOUT;

/// Why a keychain call failed, without any secret bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("the keychain is not available ({0})")]
    Unavailable(String),
    #[error("the keychain is locked ({0}); unlock it and try again")]
    Locked(String),
    #[error("the keychain refused an entry of this size")]
    TooLong,
    #[error("the keychain failed: {0}")]
    Other(String),
}

/// The token store port: a flat map from names to secret bytes. Implementations block.
pub trait SecretStore: Send + Sync + fmt::Debug {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn set(&self, name: &str, secret: &[u8]) -> Result<(), StoreError>;
    /// Returns whether something was deleted.
    fn delete(&self, name: &str) -> Result<bool, StoreError>;
    /// The largest blob one entry holds.
    fn max_secret_len(&self) -> usize;
    /// Which keychain this is, once known (a store that picks its backend on first use says
    /// `None` before that).
    fn kind(&self) -> Option<StoreKind> {
        None
    }
    /// The same store, switched to the configured `store` choice; `None` keeps this one. Only
    /// [`SystemStore`] follows the choice: a store a test or an embedder injects is used as is.
    fn for_choice(&self, _choice: StoreChoice) -> Option<Arc<dyn SecretStore>> {
        None
    }
}

/// Which keychain holds the sessions, as `status --json` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreKind {
    /// The freedesktop Secret Service over D-Bus (gnome-keyring, KWallet).
    SecretService,
    /// The Linux kernel's persistent keyring (keyutils).
    KernelKeyring,
    MacosKeychain,
    WindowsCredentialManager,
    /// [`MemoryStore`]: tests and embedders only.
    Memory,
    Other,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::SecretService => "secret-service",
            StoreKind::KernelKeyring => "kernel-keyring",
            StoreKind::MacosKeychain => "macos-keychain",
            StoreKind::WindowsCredentialManager => "windows-credential-manager",
            StoreKind::Memory => "memory",
            StoreKind::Other => "other",
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg_attr(target_os = "linux", path = "keychain/linux.rs")]
#[cfg_attr(target_os = "windows", path = "keychain/windows.rs")]
#[cfg_attr(target_os = "macos", path = "keychain/macos.rs")]
#[cfg_attr(
    not(any(target_os = "linux", target_os = "windows", target_os = "macos")),
    path = "keychain/unsupported.rs"
)]
pub(crate) mod imp;

/// The kernel keyring store (Linux), usable directly as a [`SecretStore`].
#[cfg(target_os = "linux")]
pub use imp::kernel::KernelKeyring;

/// The OS keychain through `keyring-core` and the platform's store crate.
pub struct KeyringStore {
    service: String,
    max_len: usize,
    store: OnceLock<Result<Arc<keyring_core::CredentialStore>, StoreError>>,
}

impl fmt::Debug for KeyringStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyringStore")
            .field("service", &self.service)
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

impl KeyringStore {
    /// The store for `service`. Nothing is opened until the first call.
    pub fn new(service: &str) -> Self {
        Self {
            service: service.to_owned(),
            max_len: imp::MAX_SECRET_LEN,
            store: OnceLock::new(),
        }
    }

    /// Splits sessions into chunks of at most `max_len` bytes, e.g. to exercise the Windows limit
    /// on another OS.
    pub fn with_max_secret_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len.clamp(256, imp::MAX_SECRET_LEN);
        self
    }

    fn entry(&self, name: &str) -> Result<keyring_core::Entry, StoreError> {
        let store = self
            .store
            .get_or_init(|| imp::open().map_err(map_keyring_error))
            .clone()?;
        store
            .build(&self.service, name, None)
            .map_err(map_keyring_error)
    }
}

impl SecretStore for KeyringStore {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.entry(name)?.get_secret() {
            Ok(s) => Ok(Some(s)),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(map_keyring_error(e)),
        }
    }

    fn set(&self, name: &str, secret: &[u8]) -> Result<(), StoreError> {
        self.entry(name)?
            .set_secret(secret)
            .map_err(map_keyring_error)
    }

    fn delete(&self, name: &str) -> Result<bool, StoreError> {
        match self.entry(name)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring_core::Error::NoEntry) => Ok(false),
            Err(e) => Err(map_keyring_error(e)),
        }
    }

    fn max_secret_len(&self) -> usize {
        self.max_len
    }

    fn kind(&self) -> Option<StoreKind> {
        Some(imp::NATIVE)
    }
}

/// The store `choice` names. Only Linux has a choice to make (the ladder in `keychain/linux.rs`);
/// elsewhere config validation accepts only `auto`, the OS keychain.
fn select(
    service: &str,
    choice: StoreChoice,
    max_len: Option<usize>,
) -> Result<Arc<dyn SecretStore>, StoreError> {
    #[cfg(target_os = "linux")]
    {
        imp::select(service, choice, max_len)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = choice;
        Ok(native(service, max_len))
    }
}

/// The OS keychain's own store for `service`, with entries of at most `max_len` bytes if given.
pub(crate) fn native(service: &str, max_len: Option<usize>) -> Arc<dyn SecretStore> {
    let mut s = KeyringStore::new(service);
    if let Some(n) = max_len {
        s = s.with_max_secret_len(n);
    }
    Arc::new(s)
}

/// The keychain `store` names: on Linux the Secret Service or the kernel keyring (`auto` probes
/// the session bus on first use), elsewhere the OS keychain. Nothing is opened until the first
/// call, so a process that never needs the keychain never touches D-Bus.
pub struct SystemStore {
    service: String,
    choice: StoreChoice,
    max_len: Option<usize>,
    backend: OnceLock<Result<Arc<dyn SecretStore>, StoreError>>,
}

impl fmt::Debug for SystemStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemStore")
            .field("service", &self.service)
            .field("choice", &self.choice)
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}

impl SystemStore {
    pub fn new(service: &str, choice: StoreChoice) -> Self {
        Self {
            service: service.to_owned(),
            choice,
            max_len: None,
            backend: OnceLock::new(),
        }
    }

    /// Splits sessions into chunks of at most `max_len` bytes (see
    /// [`KeyringStore::with_max_secret_len`]).
    pub fn with_max_secret_len(mut self, max_len: usize) -> Self {
        self.max_len = Some(max_len);
        self
    }

    fn backend(&self) -> Result<&Arc<dyn SecretStore>, StoreError> {
        self.backend
            .get_or_init(|| select(&self.service, self.choice, self.max_len))
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl SecretStore for SystemStore {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.backend()?.get(name)
    }
    fn set(&self, name: &str, secret: &[u8]) -> Result<(), StoreError> {
        self.backend()?.set(name, secret)
    }
    fn delete(&self, name: &str) -> Result<bool, StoreError> {
        self.backend()?.delete(name)
    }
    fn max_secret_len(&self) -> usize {
        match self.backend() {
            Ok(b) => b.max_secret_len(),
            // Every call fails the same way before this matters.
            Err(_) => 256,
        }
    }
    fn kind(&self) -> Option<StoreKind> {
        self.backend.get()?.as_ref().ok()?.kind()
    }
    fn for_choice(&self, choice: StoreChoice) -> Option<Arc<dyn SecretStore>> {
        (choice != self.choice).then(|| {
            let mut s = SystemStore::new(&self.service, choice);
            s.max_len = self.max_len;
            Arc::new(s) as Arc<dyn SecretStore>
        })
    }
}

/// Maps keyring errors to ours. Variants that carry secret bytes are reduced to a fixed message.
fn map_keyring_error(e: keyring_core::Error) -> StoreError {
    use keyring_core::Error as K;
    match e {
        K::NoStorageAccess(p) => StoreError::Locked(p.to_string()),
        K::PlatformFailure(p) => StoreError::Unavailable(p.to_string()),
        K::NoDefaultStore => StoreError::Unavailable("no keychain store".into()),
        K::NotSupportedByStore(s) => StoreError::Unavailable(s),
        K::TooLong(..) => StoreError::TooLong,
        K::BadEncoding(_) | K::BadDataFormat(..) => {
            StoreError::Other("a stored entry is not in the expected format".into())
        }
        K::Ambiguous(v) => StoreError::Other(format!("{} entries match one name", v.len())),
        K::Invalid(what, why) => StoreError::Other(format!("invalid {what}: {why}")),
        K::BadStoreFormat(s) => StoreError::Other(s),
        _ => StoreError::Other("unexpected keychain error".into()),
    }
}

/// An in-memory store for unit tests and for embedding without a keychain. Never use it to keep
/// real sessions: nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<String, Vec<u8>>>,
    max_len: usize,
}

impl MemoryStore {
    pub fn new(max_len: usize) -> Self {
        Self {
            entries: Mutex::default(),
            max_len,
        }
    }

    /// Names currently stored, for tests.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.lock().keys().cloned().collect();
        v.sort();
        v
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<u8>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SecretStore for MemoryStore {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().get(name).cloned())
    }
    fn set(&self, name: &str, secret: &[u8]) -> Result<(), StoreError> {
        if secret.len() > self.max_len {
            return Err(StoreError::TooLong);
        }
        self.lock().insert(name.to_owned(), secret.to_vec());
        Ok(())
    }
    fn delete(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.lock().remove(name).is_some())
    }
    fn max_secret_len(&self) -> usize {
        self.max_len
    }
    fn kind(&self) -> Option<StoreKind> {
        Some(StoreKind::Memory)
    }
}

const MAGIC: &str = "LK1";

/// Keeps one blob per name in a [`SecretStore`], chunked and with timeouts.
#[derive(Debug, Clone)]
pub(crate) struct Vault {
    store: Arc<dyn SecretStore>,
    timeout: Duration,
}

pub(crate) struct Header {
    pub generation: String,
    pub count: usize,
    body_start: usize,
}

pub(crate) fn parse_header(blob: &[u8]) -> Option<Header> {
    let end = blob.iter().position(|b| *b == b'\n')?;
    let line = std::str::from_utf8(&blob[..end]).ok()?;
    let mut parts = line.split(' ');
    if parts.next()? != MAGIC {
        return None;
    }
    let generation = parts.next()?.to_owned();
    let count: usize = parts.next()?.parse().ok()?;
    if !(1..=64).contains(&count) || parts.next().is_some() {
        return None;
    }
    Some(Header {
        generation,
        count,
        body_start: end + 1,
    })
}

pub(crate) fn chunk_name(name: &str, generation: &str, i: usize) -> String {
    format!("{name}#{generation}.{i}")
}

/// What a vault entry holds: its bytes, or (for the session layer) what they parse to.
#[derive(Debug)]
pub(crate) enum Stored<T = Vec<u8>> {
    Missing,
    Present(T),
    /// There is an entry, but it cannot be read back (unknown header, a missing chunk). Not a
    /// keychain outage: deleting or overwriting the entry is the cure.
    Damaged(Error),
}

/// [`Vault::read`] on the calling thread: the primary entry's header, then its chunks.
pub(crate) fn read_from(store: &dyn SecretStore, name: &str) -> Result<Stored> {
    let Some(primary) = store.get(name).map_err(keychain_error)? else {
        return Ok(Stored::Missing);
    };
    let Some(header) = parse_header(&primary) else {
        return Ok(damaged("the stored session is in an unknown format"));
    };
    let mut data = primary[header.body_start..].to_vec();
    for i in 1..header.count {
        let Some(chunk) = store
            .get(&chunk_name(name, &header.generation, i))
            .map_err(keychain_error)?
        else {
            return Ok(damaged("part of the stored session is missing"));
        };
        data.extend_from_slice(&chunk);
    }
    Ok(Stored::Present(data))
}

fn damaged(message: &str) -> Stored {
    Stored::Damaged(
        Error::new(ErrorKind::Keychain, message).with_remedy(crate::error::Remedy::SignOutAndIn),
    )
}

fn keychain_error(e: StoreError) -> Error {
    Error::new(ErrorKind::Keychain, e.to_string())
}

impl Vault {
    pub(crate) fn new(store: Arc<dyn SecretStore>, timeout: Duration) -> Self {
        Self { store, timeout }
    }

    /// Which keychain holds the sessions, once the store has been opened.
    pub(crate) fn kind(&self) -> Option<StoreKind> {
        self.store.kind()
    }

    /// Runs `f` on its own thread, giving up after the timeout. A thread stuck in a frozen keychain
    /// daemon is abandoned; it owns nothing the caller needs.
    async fn run<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&dyn SecretStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = Arc::clone(&self.store);
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("keychain-call".into())
            .spawn(move || {
                let _ = tx.send(f(store.as_ref()));
            })
            .map_err(|e| Error::internal(format!("cannot start keychain thread: {e}")))?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::new(
                ErrorKind::Keychain,
                format!("{what}: the keychain call failed unexpectedly"),
            )),
            Err(_) => Err(Error::new(
                ErrorKind::Keychain,
                format!(
                    "{what}: the keychain did not answer within {} s; check that it is running and unlocked",
                    self.timeout.as_secs()
                ),
            )),
        }
    }

    /// [`read`](Self::read) with a damaged entry as an error.
    #[cfg(test)]
    pub(crate) async fn load(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match self.read(name).await? {
            Stored::Missing => Ok(None),
            Stored::Present(data) => Ok(Some(data)),
            Stored::Damaged(e) => Err(e),
        }
    }

    /// Reads an entry. A damaged entry is an answer, not an error: only a keychain
    /// that cannot be reached fails.
    pub(crate) async fn read(&self, name: &str) -> Result<Stored> {
        let name = name.to_owned();
        self.run("reading the session", move |store| read_from(store, &name))
            .await
    }

    pub(crate) async fn save(&self, name: &str, data: Vec<u8>) -> Result<()> {
        let name = name.to_owned();
        self.run("saving the session", move |store| {
            save_to(store, &name, &data)
        })
        .await
    }

    /// Deletes an entry, damaged or not. The primary entry goes first: once it is gone nothing is
    /// readable, so a delete interrupted half-way leaves unreachable chunks (wasted space, as after
    /// a save), never a header pointing at missing chunks that locks the user out. Then the chunks
    /// of the generation its header names, if it parses; missing ones are skipped.
    pub(crate) async fn delete(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.run("deleting the session", move |store| {
            delete_from(store, &name)
        })
        .await
    }
}

/// [`Vault::save`] on the calling thread: the chunks of a new generation, then the primary
/// entry, then the previous generation's chunks are deleted.
pub(crate) fn save_to(store: &dyn SecretStore, name: &str, data: &[u8]) -> Result<()> {
    let old = store.get(name).map_err(keychain_error)?;
    let old_header = old.as_deref().and_then(parse_header);
    let generation = openidconnect::CsrfToken::new_random_len(9).into_secret();
    let max = store.max_secret_len();
    let head_len = MAGIC.len() + 1 + generation.len() + 4 + 1;
    if max <= head_len + 16 {
        return Err(Error::internal(
            "keychain entries are too small to hold a session",
        ));
    }
    let first_len = (max - head_len).min(data.len());
    let rest = &data[first_len..];
    let chunks: Vec<&[u8]> = rest.chunks(max).collect();
    let count = 1 + chunks.len();
    if count > 64 {
        return Err(Error::new(
            ErrorKind::Keychain,
            "the session is too large for the keychain",
        ));
    }
    for (i, chunk) in chunks.iter().enumerate() {
        store
            .set(&chunk_name(name, &generation, i + 1), chunk)
            .map_err(keychain_error)?;
    }
    let mut primary = format!("{MAGIC} {generation} {count}\n").into_bytes();
    primary.extend_from_slice(&data[..first_len]);
    store.set(name, &primary).map_err(keychain_error)?;
    if let Some(h) = old_header {
        for i in 1..h.count {
            // Leftovers of the previous generation are unreachable; failing to delete
            // them only wastes space.
            let _ = store.delete(&chunk_name(name, &h.generation, i));
        }
    }
    Ok(())
}

/// [`Vault::delete`] on the calling thread.
pub(crate) fn delete_from(store: &dyn SecretStore, name: &str) -> Result<bool> {
    let header = store
        .get(name)
        .map_err(keychain_error)?
        .as_deref()
        .and_then(parse_header);
    let deleted = store.delete(name).map_err(keychain_error)?;
    if let Some(h) = &header {
        for i in 1..h.count {
            // Unreachable now; failing to delete one only wastes space.
            let _ = store.delete(&chunk_name(name, &h.generation, i));
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(max: usize) -> (Arc<MemoryStore>, Vault) {
        let store = Arc::new(MemoryStore::new(max));
        let vault = Vault::new(store.clone(), Duration::from_secs(5));
        (store, vault)
    }

    #[tokio::test]
    async fn sixteen_kib_round_trips_through_windows_sized_entries() {
        let (store, vault) = vault(2560);
        let data: Vec<u8> = (0..16 * 1024).map(|i| (i % 251) as u8).collect();
        vault.save("s", data.clone()).await.expect("save");
        assert_eq!(vault.load("s").await.expect("load"), Some(data));
        assert_eq!(
            store.names().len(),
            7,
            "16 KiB needs 7 entries of 2560 bytes"
        );
    }

    #[tokio::test]
    async fn resave_replaces_generation_and_deletes_old_chunks() {
        let (store, vault) = vault(300);
        vault.save("s", vec![b'a'; 1000]).await.expect("save");
        let first = store.names();
        vault.save("s", vec![b'b'; 700]).await.expect("save");
        let second = store.names();
        assert!(
            first
                .iter()
                .filter(|n| *n != "s")
                .all(|n| !second.contains(n))
        );
        assert_eq!(vault.load("s").await.expect("load"), Some(vec![b'b'; 700]));
        assert!(vault.delete("s").await.expect("delete"));
        assert!(store.names().is_empty());
        assert_eq!(vault.load("s").await.expect("load"), None);
        assert!(!vault.delete("s").await.expect("delete"));
    }

    #[tokio::test]
    async fn small_sessions_use_one_entry() {
        let (store, vault) = vault(64 * 1024);
        vault.save("s", b"{}".to_vec()).await.expect("save");
        assert_eq!(store.names(), ["s"]);
    }

    #[tokio::test]
    async fn missing_chunk_is_an_error_not_a_panic() {
        let (store, vault) = vault(300);
        vault.save("s", vec![b'a'; 1000]).await.expect("save");
        let chunk = store.names().into_iter().find(|n| n != "s").expect("chunk");
        store.delete(&chunk).expect("delete");
        let e = vault.load("s").await.expect_err("corrupt");
        assert_eq!(e.kind(), ErrorKind::Keychain);
    }

    #[tokio::test]
    async fn a_damaged_entry_is_deleted_whole() {
        // A missing chunk.
        let (store, vault) = vault(300);
        vault.save("s", vec![b'a'; 1000]).await.expect("save");
        let chunk = store.names().into_iter().find(|n| n != "s").expect("chunk");
        store.delete(&chunk).expect("delete");
        assert!(matches!(vault.read("s").await, Ok(Stored::Damaged(_))));
        assert!(vault.delete("s").await.expect("delete"));
        assert!(store.names().is_empty(), "{:?}", store.names());
        assert!(matches!(vault.read("s").await, Ok(Stored::Missing)));

        // A primary entry in an unknown format.
        store.set("s", b"garbage").expect("set");
        assert!(matches!(vault.read("s").await, Ok(Stored::Damaged(_))));
        assert!(vault.delete("s").await.expect("delete"));
        assert!(store.names().is_empty());
    }

    /// A store whose chunk deletions fail, like a keychain dying half-way through.
    #[derive(Debug)]
    struct ChunksUndeletable(MemoryStore);
    impl SecretStore for ChunksUndeletable {
        fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.0.get(name)
        }
        fn set(&self, name: &str, secret: &[u8]) -> Result<(), StoreError> {
            self.0.set(name, secret)
        }
        fn delete(&self, name: &str) -> Result<bool, StoreError> {
            if name.contains('#') {
                return Err(StoreError::Other("gone away".into()));
            }
            self.0.delete(name)
        }
        fn max_secret_len(&self) -> usize {
            self.0.max_secret_len()
        }
    }

    #[tokio::test]
    async fn an_interrupted_delete_leaves_nothing_readable() {
        let vault = Vault::new(
            Arc::new(ChunksUndeletable(MemoryStore::new(300))),
            Duration::from_secs(5),
        );
        vault.save("s", vec![b'a'; 1000]).await.expect("save");
        assert!(vault.delete("s").await.expect("delete"));
        assert_eq!(
            vault.load("s").await.expect("signed out, not damaged"),
            None
        );
    }

    #[derive(Debug)]
    struct Frozen;
    impl SecretStore for Frozen {
        fn get(&self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
            std::thread::sleep(Duration::from_secs(30));
            Ok(None)
        }
        fn set(&self, _: &str, _: &[u8]) -> Result<(), StoreError> {
            Ok(())
        }
        fn delete(&self, _: &str) -> Result<bool, StoreError> {
            Ok(false)
        }
        fn max_secret_len(&self) -> usize {
            1024
        }
    }

    #[tokio::test]
    async fn a_frozen_keychain_times_out() {
        let vault = Vault::new(Arc::new(Frozen), Duration::from_millis(100));
        let e = vault.load("s").await.expect_err("timeout");
        assert_eq!(e.kind(), ErrorKind::Keychain);
        assert!(e.message().contains("did not answer"), "{e}");
    }
}
