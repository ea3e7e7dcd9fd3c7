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
    /// The folder of the managed file on Windows (`<ProgramData known folder>\<name>`) and macOS
    /// (`/Library/Application Support/<name>`); on other Unixes the managed file is
    /// `/etc/<dir_name>/config.toml`.
    pub managed_dir_name: &'static str,
    /// The prefix of every environment variable, without the underscore, e.g. `LATCHKEY` for
    /// `LATCHKEY_ISSUER`.
    pub env_prefix: &'static str,
    /// The HTTP `User-Agent` sent to providers, e.g. `latchkey/0.1.0`.
    pub user_agent: &'static str,
}

/// The system's ProgramData folder, from the known-folder API (`SHGetKnownFolderPath` with
/// `FOLDERID_ProgramData`), never from `%ProgramData%`: that is an environment variable, which
/// any user can set for their own processes to move the managed file into a folder they control,
/// and so unlock every key. `C:\ProgramData` only if the API fails.
#[cfg(windows)]
fn program_data() -> PathBuf {
    known_folders::get_known_folder_path(known_folders::KnownFolder::ProgramData)
        .unwrap_or_else(|| PathBuf::from("C:\\ProgramData"))
}

#[cfg(not(windows))]
fn program_data() -> PathBuf {
    PathBuf::from("C:\\ProgramData")
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
            Some(
                program_data()
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

    /// Windows: the user file roams (`%APPDATA%`), caches and locks stay on this machine
    /// (`%LOCALAPPDATA%`), both read from the known-folder API that sets those variables, and
    /// the managed file lives under the ProgramData known folder.
    #[cfg(windows)]
    #[test]
    fn windows_locations_follow_the_known_folders() {
        let var = |name: &str| PathBuf::from(std::env::var(name).expect(name));
        let id = AppIdentity::TEST;
        assert_eq!(
            id.user_config_file().expect("user file"),
            var("APPDATA").join("core-test").join("config.toml")
        );
        let cache = id.cache_dir().expect("cache dir");
        assert_eq!(cache, var("LOCALAPPDATA").join("core-test"));
        assert_eq!(
            id.runtime_dir(),
            None,
            "locks fall back to nothing but the cache dir"
        );
        assert_eq!(
            id.managed_file().expect("managed file"),
            program_data().join("Core Test").join("config.toml")
        );
        assert_eq!(
            program_data(),
            var("ProgramData"),
            "the variable and the known folder agree here"
        );
    }

    /// Finding 1 of issue 8: `%ProgramData%` is the user's to set, so it must not move the
    /// managed file. The variable is set for a child run of this test binary (the edition-2024
    /// `set_var` is unsafe, and this workspace forbids unsafe code), which prints its answer.
    #[cfg(windows)]
    #[test]
    fn the_program_data_variable_does_not_move_the_managed_file() {
        let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .env("ProgramData", "C:\\Users\\Public\\Mine")
            .args(["--exact", "app_identity::tests::print_managed_file"])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .output()
            .expect("child test run");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            // libtest prints the test's name on the same line first.
            .find_map(|l| {
                l.split_once("managed file: ")
                    .map(|(_, path)| path.trim_end())
            })
            .unwrap_or_else(|| {
                panic!(
                    "the child printed no managed file ({}): {text}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        let here = AppIdentity::TEST.managed_file().expect("managed file");
        assert_eq!(PathBuf::from(line), here);
        assert!(!line.starts_with("C:\\Users"), "{line}");
    }

    /// Run by the test above, in a child process with `ProgramData` set.
    #[cfg(windows)]
    #[test]
    #[ignore = "run by the_program_data_variable_does_not_move_the_managed_file"]
    fn print_managed_file() {
        let path = AppIdentity::TEST.managed_file().expect("managed file");
        println!("managed file: {}", path.display());
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
