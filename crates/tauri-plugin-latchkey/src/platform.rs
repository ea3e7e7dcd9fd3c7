//! Per-OS code, one whole file per OS.
//!
//! ## Platform-specific
//!
//! - **Linux**: the scheme is registered by the `.deb`/`.rpm` desktop file
//!   (`MimeType=x-scheme-handler/<scheme>;`, `Exec=... %u`). Debug builds register it at run time
//!   in `~/.local/share/applications` so `cargo run` receives its redirects.
//! - **Windows**: the MSI/NSIS installer writes `HKCU\Software\Classes\<scheme>`. Debug builds
//!   register at run time.
//! - **macOS**: the bundle's `Info.plist` declares the scheme; no run-time registration exists.
//!
//! Run-time registration only happens when nothing handles the scheme yet (or this executable
//! already does): a debug build must not take the scheme away from an installed copy.

use latchkey_core::AppIdentity;
use tauri::{AppHandle, Runtime};
use tauri_plugin_deep_link::DeepLinkExt;

#[cfg_attr(target_os = "linux", path = "platform/linux.rs")]
#[cfg_attr(target_os = "windows", path = "platform/windows.rs")]
#[cfg_attr(target_os = "macos", path = "platform/macos.rs")]
#[cfg_attr(
    not(any(target_os = "linux", target_os = "windows", target_os = "macos")),
    path = "platform/other.rs"
)]
mod imp;

/// Who opens `<scheme>:` URLs today.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    target_os = "macos",
    allow(
        dead_code,
        reason = "macOS cannot tell: its scheme_handler always explains why"
    )
)]
pub enum Handler {
    None,
    ThisApp,
    /// Another program (desktop file id or command).
    Other(String),
}

pub use imp::scheme_handler;

/// Process-wide webview settings that only exist as environment variables. Must run before any
/// thread is started (the environment is not thread-safe); `<PREFIX>_WEBVIEW_TUNING=0` skips it.
pub fn before_threads(identity: &AppIdentity) {
    if !tuning_off(identity) {
        imp::before_threads();
    }
}

fn tuning_off(identity: &AppIdentity) -> bool {
    std::env::var(identity.var("WEBVIEW_TUNING")).is_ok_and(|v| v == "0")
}

/// Lighter webview settings for a small local UI (`<PREFIX>_WEBVIEW_TUNING=0` keeps WebKit's
/// defaults, for measuring).
pub fn tune_webview<R: Runtime>(webview: &tauri::Webview<R>, identity: &AppIdentity) {
    if !tuning_off(identity) {
        imp::tune_webview(webview);
    }
}

/// Debug builds: registers the redirect scheme for this executable, unless another program
/// handles it. Runs on its own thread: it spawns `xdg-mime` and must not delay the window.
/// `<PREFIX>_NO_REGISTER` skips it.
pub fn register_scheme_for_debug<R: Runtime>(
    app: &AppHandle<R>,
    identity: &AppIdentity,
    scheme: String,
) {
    if !cfg!(debug_assertions) || std::env::var_os(identity.var("NO_REGISTER")).is_some() {
        return;
    }
    let app = app.clone();
    std::thread::spawn(move || match scheme_handler(&scheme) {
        Ok(Handler::ThisApp) => tracing::debug!("{scheme}: already registered to this executable"),
        Ok(Handler::None) => match app.deep_link().register_all() {
            Ok(()) => tracing::info!("{scheme}: registered to this debug build"),
            Err(e) => tracing::warn!("{scheme}: could not register: {e}"),
        },
        Ok(Handler::Other(other)) => tracing::warn!(
            "{scheme}: handled by {other}; not registering this debug build (unregister the other one to test redirects here)"
        ),
        Err(why) => tracing::info!("{scheme}: not registered: {why}"),
    });
}
