//! Shared by the test files that drive the core in-process next to the CLI.

use latchkey_core::config::{Paths, Settings, Sources};
use latchkey_core::{Latchkey, Ports};
use latchkey_e2e::{CLIENT_ID, SCOPES, Sandbox};
use latchkey_identity::LATCHKEY;

/// The core, configured as the sandbox's CLI is (no config files), with the real system ports
/// and the sandbox's cache directory, so it shares the CLI's locks and discovery cache.
#[allow(dead_code)] // corpnet.rs uses only core_at
pub fn core_for(sb: &Sandbox) -> Latchkey {
    core_at(&sb.issuer, &sb.home())
}

/// [`core_for`] from a sandbox's issuer and HOME, for a child process of a test.
pub fn core_at(issuer: &str, home: &std::path::Path) -> Latchkey {
    let flags = Settings {
        issuer: Some(issuer.to_owned()),
        client_id: Some(CLIENT_ID.into()),
        scopes: Some(latchkey_core::config::Scopes::Text(SCOPES.into())),
        ..Settings::default()
    };
    let no_files = Paths {
        user_file: None,
        system_file: None,
        identity: LATCHKEY,
    };
    let config = Sources::load(flags, &no_files, &|_| None)
        .expect("config")
        .resolve()
        .expect("config");
    let mut ports = Ports::system(&LATCHKEY);
    ports.cache_dir = Some(home.join(".cache/latchkey"));
    Latchkey::new(config, ports)
}
