//! Who is embedding the core: the one value that names the product.
//!
//! The core never names a product itself. The `latchkey` CLI, the Latchkey app and any other app
//! built on the Tauri plugin each pass their own [`AppIdentity`], and everything a user or an
//! administrator can see follows from it: the keychain service its sessions are stored under, its
//! folders, the managed file IT deploys, the environment variables it reads and the user agent
//! providers log. Two products on one machine therefore never share a session, a lock or a
//! setting.

use std::path::PathBuf;

/// Everything that names a product built on the core. All fields are plain text so an app can
/// declare its identity as a `const`.
///
/// ```
/// use latchkey_core::AppIdentity;
///
/// const ACME: AppIdentity = AppIdentity {
///     product_name: "Acme Sign-In",
///     keychain_service: "com.acme.signin",
///     dir_name: "acme-signin",
///     managed_dir_name: "Acme Sign-In",
///     env_prefix: "ACME_SIGNIN",
///     user_agent: "acme-signin/1.0",
/// };
/// assert_eq!(ACME.var("ISSUER"), "ACME_SIGNIN_ISSUER");
/// assert!(ACME.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppIdentity {
    /// The name people see in messages and windows, e.g. `Latchkey`.
    pub product_name: &'static str,
    /// The keychain service sessions are stored under (Secret Service `service` attribute, macOS
    /// generic-password service, Windows credential target prefix, kernel key description prefix).
    pub keychain_service: &'static str,
    /// The folder name under the user's config, cache and runtime directories, e.g. `latchkey`
    /// gives `~/.config/latchkey/config.toml` on Linux.
    pub dir_name: &'static str,
    /// The folder of the managed file on Windows (`%ProgramData%\<name>`) and macOS
    /// (`/Library/Application Support/<name>`); on other Unixes the managed file is
    /// `/etc/<dir_name>/config.toml`.
    pub managed_dir_name: &'static str,
    /// The prefix of every environment variable, without the underscore, e.g. `LATCHKEY` for
    /// `LATCHKEY_ISSUER`.
    pub env_prefix: &'static str,
    /// The HTTP `User-Agent` sent to providers, e.g. `latchkey/0.1.0`.
    pub user_agent: &'static str,
}

impl AppIdentity {
    /// The environment variable `<prefix>_<name>`.
    pub fn var(&self, name: &str) -> String {
        format!("{}_{name}", self.env_prefix)
    }

    /// The user's own config file: `<config dir>/<dir_name>/config.toml`.
    pub fn user_config_file(&self) -> Option<PathBuf> {
        dirs::config_dir().map(|d| d.join(self.dir_name).join("config.toml"))
    }

    /// Where discovery documents and locks go: `<cache dir>/<dir_name>`.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        dirs::cache_dir().map(|d| d.join(self.dir_name))
    }

    /// The fallback folder for locks when there is no cache directory: `<runtime dir>/<dir_name>`.
    pub fn runtime_dir(&self) -> Option<PathBuf> {
        dirs::runtime_dir().map(|d| d.join(self.dir_name))
    }

    /// The managed, system-wide config file for this OS.
    pub fn managed_file(&self) -> Option<PathBuf> {
        if cfg!(windows) {
            // TODO(windows): %ProgramData% is an environment variable, which a user can set for
            // their own processes and so move the managed file to a folder they control. The
            // system's own answer is the known-folder API, SHGetKnownFolderPath(FOLDERID_ProgramData,
            // KF_FLAG_DEFAULT, None) then CoTaskMemFree on the returned string. Calling it needs
            // the `windows` (or `windows-sys`) crate as a direct dependency (features
            // Win32_UI_Shell, Win32_System_Com) and an `unsafe` block, which this workspace
            // forbids (`unsafe_code = "forbid"`); so it waits for a decision on both. Until then
            // a release build on Windows trusts %ProgramData%, falling back to C:\ProgramData.
            let base = std::env::var_os("ProgramData").unwrap_or_else(|| "C:\\ProgramData".into());
            Some(
                PathBuf::from(base)
                    .join(self.managed_dir_name)
                    .join("config.toml"),
            )
        } else if cfg!(target_os = "macos") {
            Some(
                PathBuf::from("/Library/Application Support")
                    .join(self.managed_dir_name)
                    .join("config.toml"),
            )
        } else {
            Some(
                PathBuf::from("/etc")
                    .join(self.dir_name)
                    .join("config.toml"),
            )
        }
    }

    /// Checks that every name can be used where it goes: non-empty, no path separators or `..`
    /// in folder names, an upper-case `[A-Z0-9_]` variable prefix.
    pub fn validate(&self) -> Result<(), String> {
        let fields = [
            ("product_name", self.product_name),
            ("keychain_service", self.keychain_service),
            ("dir_name", self.dir_name),
            ("managed_dir_name", self.managed_dir_name),
            ("env_prefix", self.env_prefix),
            ("user_agent", self.user_agent),
        ];
        for (name, value) in fields {
            if value.trim().is_empty() || value.chars().any(char::is_control) {
                return Err(format!(
                    "app identity: `{name}` must be non-empty text without control characters"
                ));
            }
        }
        for (name, value) in [
            ("dir_name", self.dir_name),
            ("managed_dir_name", self.managed_dir_name),
        ] {
            if value.contains(['/', '\\']) || value == "." || value == ".." {
                return Err(format!(
                    "app identity: `{name}` must be one folder name, not `{value}`"
                ));
            }
        }
        let prefix_ok = self
            .env_prefix
            .starts_with(|c: char| c.is_ascii_uppercase())
            && self
                .env_prefix
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !prefix_ok {
            return Err(format!(
                "app identity: `env_prefix` must be upper-case letters, digits and `_`, not `{}`",
                self.env_prefix
            ));
        }
        Ok(())
    }

    /// An identity for the core's own tests and fuzzers.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) const TEST: AppIdentity = AppIdentity {
        product_name: "Core Test",
        keychain_service: "core-test",
        dir_name: "core-test",
        managed_dir_name: "Core Test",
        env_prefix: "CORE_TEST",
        user_agent: "core-test/0",
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_identity() {
        let id = AppIdentity::TEST;
        assert_eq!(id.var("ISSUER"), "CORE_TEST_ISSUER");
        let managed = id.managed_file().expect("managed file");
        assert!(managed.ends_with("config.toml"), "{}", managed.display());
        if cfg!(target_os = "linux") {
            assert_eq!(managed, PathBuf::from("/etc/core-test/config.toml"));
        }
        if let Some(user) = id.user_config_file() {
            assert!(
                user.ends_with("core-test/config.toml"),
                "{}",
                user.display()
            );
        }
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(AppIdentity::TEST.validate().is_ok());
        let cases = [
            AppIdentity {
                dir_name: "../etc",
                ..AppIdentity::TEST
            },
            AppIdentity {
                env_prefix: "lower",
                ..AppIdentity::TEST
            },
            AppIdentity {
                product_name: " ",
                ..AppIdentity::TEST
            },
            AppIdentity {
                user_agent: "a\u{1b}[31m",
                ..AppIdentity::TEST
            },
        ];
        for id in cases {
            assert!(id.validate().is_err(), "{id:?}");
        }
    }
}
