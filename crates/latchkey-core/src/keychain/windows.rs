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

/// The vault over the real Credential Manager: run under Wine by `make test`
/// (tests/cross/run), and on a Windows machine by `cargo test`.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::MAX_SECRET_LEN;
    use crate::store::{KeyringStore, SecretStore, Stored, Vault, chunk_name, parse_header};

    /// A service of its own per test, so parallel tests and earlier runs never meet.
    fn store(test: &str) -> KeyringStore {
        let service = crate::AppIdentity::TEST.keychain_service;
        KeyringStore::new(&format!("{service}-{test}-{}", std::process::id()))
    }

    fn vault(store: KeyringStore) -> Vault {
        Vault::new(std::sync::Arc::new(store), Duration::from_secs(10))
    }

    #[tokio::test]
    async fn a_session_round_trips_through_the_credential_manager() {
        let raw = store("small");
        assert_eq!(raw.max_secret_len(), MAX_SECRET_LEN);
        raw.set("direct", b"secret bytes").expect("CredWriteW");
        assert_eq!(
            raw.get("direct").expect("read"),
            Some(b"secret bytes".to_vec())
        );
        assert!(raw.delete("direct").expect("CredDeleteW"));
        assert_eq!(raw.get("direct").expect("read"), None);
        assert!(!raw.delete("direct").expect("second delete"));

        let v = vault(store("small"));
        v.save("alice", br#"{"refresh_token":"r"}"#.to_vec())
            .await
            .expect("save");
        assert!(
            matches!(v.read("alice").await, Ok(Stored::Present(d)) if d == br#"{"refresh_token":"r"}"#)
        );
        assert!(v.delete("alice").await.expect("delete"));
        assert!(matches!(v.read("alice").await, Ok(Stored::Missing)));
    }

    /// A session larger than one credential's 2,560-byte blob is split into chunks, read back
    /// whole, and every chunk is gone after a delete.
    #[tokio::test]
    async fn a_session_larger_than_one_blob_is_chunked() {
        let raw = store("large");
        let data: Vec<u8> = (0..9000).map(|i| b'a' + (i % 26) as u8).collect();
        let v = vault(store("large"));
        v.save("big", data.clone()).await.expect("save");
        let header =
            parse_header(&raw.get("big").expect("read").expect("primary")).expect("header");
        assert_eq!(
            header.count, 4,
            "9,000 bytes need four entries of at most 2,560"
        );
        for i in 1..header.count {
            let chunk = raw
                .get(&chunk_name("big", &header.generation, i))
                .expect("read");
            assert!(
                chunk.is_some_and(|c| c.len() <= MAX_SECRET_LEN),
                "chunk {i}"
            );
        }
        assert!(matches!(v.read("big").await, Ok(Stored::Present(d)) if d == data));
        assert!(v.delete("big").await.expect("delete"));
        for i in 1..header.count {
            let left = raw
                .get(&chunk_name("big", &header.generation, i))
                .expect("read");
            assert_eq!(left, None, "chunk {i} left behind");
        }
    }

    /// A missing or damaged chunk makes the session Damaged (sign in again), never a panic or a
    /// keychain outage, and deleting it clears what is left.
    #[tokio::test]
    async fn a_damaged_chunk_is_reported_and_cleared() {
        let raw = store("damaged");
        let v = vault(store("damaged"));
        v.save("s", vec![b'x'; 6000]).await.expect("save");
        let header = parse_header(&raw.get("s").expect("read").expect("primary")).expect("header");
        assert!(
            raw.delete(&chunk_name("s", &header.generation, 2))
                .expect("delete chunk")
        );
        assert!(matches!(v.read("s").await, Ok(Stored::Damaged(_))));
        assert!(v.delete("s").await.expect("delete"));
        assert_eq!(
            raw.get(&chunk_name("s", &header.generation, 1))
                .expect("read"),
            None
        );
        // A primary entry that is not the vault's format.
        raw.set("s", b"not a header").expect("write");
        assert!(matches!(v.read("s").await, Ok(Stored::Damaged(_))));
        assert!(v.delete("s").await.expect("delete"));
        assert!(matches!(v.read("s").await, Ok(Stored::Missing)));
    }
}
