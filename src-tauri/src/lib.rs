//! # Latchkey desktop app
//!
//! The first user of `tauri-plugin-latchkey`: the plugin signs in through the system browser,
//! catches the redirect on this app's scheme (`tauri.conf.json`), keeps the session in the
//! keychain and serves the window a token-free view model. This file only configures it, with
//! Latchkey's identity, which the `latchkey` CLI shares: both see the same session.

use latchkey_identity::LATCHKEY;

/// The app as shipped. Call it first thing in `main`: it sets WebKit's environment before any
/// thread exists.
pub fn run() {
    tauri_plugin_latchkey::before_threads(&LATCHKEY);
    init_logging();
    let app = tauri::Builder::default()
        // First: a second launch (how Linux and Windows deliver a redirect) hands its argv to the
        // running instance and exits. With the `deep-link` feature it forwards the URL to the
        // deep-link plugin, which the Latchkey plugin registers and listens to.
        .plugin(tauri_plugin_single_instance::init(
            tauri_plugin_latchkey::on_second_instance,
        ))
        .plugin(tauri_plugin_latchkey::Builder::new(LATCHKEY).build())
        .run(tauri::generate_context!());
    if let Err(e) = app {
        tracing::error!("Latchkey could not start: {e}");
        std::process::exit(1);
    }
}

fn init_logging() {
    use tracing::Level;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    // As in the CLI, `LATCHKEY_LOG` is a level for our own crates only: dependencies stay at
    // warn, since their debug output can include request details we don't control.
    let level = std::env::var(LATCHKEY.var("LOG"))
        .ok()
        .and_then(|l| l.parse::<Level>().ok())
        .unwrap_or(Level::INFO);
    let filter = Targets::new()
        .with_default(Level::WARN)
        .with_target("latchkey_app_lib", level)
        .with_target("tauri_plugin_latchkey", level)
        .with_target("latchkey_core", level);
    let _ = tracing_subscriber::fmt()
        // The builder's own ceiling is INFO; `filter` decides.
        .with_max_level(Level::TRACE)
        .with_writer(std::io::stderr)
        .finish()
        .with(filter)
        .try_init();
}
