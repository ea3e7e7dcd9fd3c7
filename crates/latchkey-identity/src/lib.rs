//! # latchkey-identity
//!
//! The Latchkey product's [`AppIdentity`], in one place. The `latchkey` CLI and the Latchkey
//! desktop app both use it, which is what makes them share one keychain session, one config file
//! and one managed file; an app built on `tauri-plugin-latchkey` declares its own instead (see
//! TEMPLATE.md) and shares nothing with Latchkey.

pub use latchkey_core::AppIdentity;

/// Latchkey: keychain service `latchkey`, `~/.config/latchkey/config.toml`,
/// `/etc/latchkey/config.toml` (`%ProgramData%\Latchkey`, `/Library/Application Support/Latchkey`),
/// `LATCHKEY_*` variables.
pub const LATCHKEY: AppIdentity = AppIdentity {
    product_name: "Latchkey",
    keychain_service: "latchkey",
    dir_name: "latchkey",
    managed_dir_name: "Latchkey",
    env_prefix: "LATCHKEY",
    user_agent: concat!("latchkey/", env!("CARGO_PKG_VERSION")),
};

#[cfg(test)]
mod tests {
    #[test]
    fn the_identity_is_valid() {
        super::LATCHKEY.validate().expect("valid");
        assert_eq!(super::LATCHKEY.var("ISSUER"), "LATCHKEY_ISSUER");
    }
}
