//! Other systems: no known way to register a URL scheme.

use super::Handler;

/// Nothing to tune: the system webview's defaults are fine here.
/// Nothing to set up front here.
pub fn before_threads() {}

pub fn tune_webview<R: tauri::Runtime>(_window: &tauri::Webview<R>) {}

pub fn scheme_handler(_scheme: &str) -> Result<Handler, String> {
    Err("URL scheme registration is not supported on this system".into())
}
