//! macOS: Launch Services registers the scheme from the bundle's `Info.plist`
//! (`CFBundleURLTypes`, written by the bundler from `plugins.deep-link.desktop.schemes`) when the
//! `.app` is first seen. There is no run-time registration, so debug runs need the bundle.

use super::Handler;

/// Nothing to set up front here.
pub fn before_threads() {}

/// Nothing to tune: the system webview's defaults are fine here.
pub fn tune_webview<R: tauri::Runtime>(_window: &tauri::Webview<R>) {}

/// Not asked: the deep-link plugin cannot register at run time on macOS, and Tauri's guide says
/// deep links are tested with the bundled app installed in /Applications
/// (<https://v2.tauri.app/plugin/deep-linking/>, "Testing"). This repository runs the Tauri CLI
/// through `tests/scripts/tauri-cli`, not `npx tauri`.
pub fn scheme_handler(_scheme: &str) -> Result<Handler, String> {
    Err("macOS registers URL schemes from the app bundle; build it (in src-tauri: `../tests/scripts/tauri-cli build --debug --bundles app`), copy the .app to /Applications and open it from there".into())
}
