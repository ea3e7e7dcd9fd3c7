//! macOS: Launch Services registers the scheme from the bundle's `Info.plist`
//! (`CFBundleURLTypes`, written by the bundler from `plugins.deep-link.desktop.schemes`) when the
//! `.app` is first seen. There is no run-time registration, so debug runs need the bundle.

use super::Handler;

/// Nothing to tune: the system webview's defaults are fine here.
/// Nothing to set up front here.
pub fn before_threads() {}

pub fn tune_webview<R: tauri::Runtime>(_window: &tauri::Webview<R>) {}

pub fn scheme_handler(_scheme: &str) -> Result<Handler, String> {
    Err("macOS registers URL schemes from the app bundle; run the bundled .app (`npx tauri build --debug --bundles app`)".into())
}
