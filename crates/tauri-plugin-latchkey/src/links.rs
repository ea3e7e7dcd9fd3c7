//! Incoming URLs: from `tauri-plugin-deep-link` (macOS open events, and URLs single-instance
//! forwards), from a second launch's argv, and from this process's own argv at a cold start.
//! Argv is hostile input: `latchkey_core::deep_link` picks the arguments of our scheme (kept in
//! the core so it can be fuzzed without Tauri), and every URL goes to [`AppState::incoming`],
//! which accepts only the response to this process's sign-in.

use latchkey_core::AppIdentity;
use latchkey_core::deep_link::{self, MAX_URLS};
use tauri::{AppHandle, Manager, Runtime};

use crate::controller::AppState;
use crate::platform;

/// The window the plugin focuses when a redirect arrives, and whose webview it tunes.
pub(crate) const MAIN_WINDOW: &str = "main";

/// Registers `tauri-plugin-deep-link`, hands every URL it receives to [`deliver`], and returns the
/// URLs this process was started with.
pub(crate) fn wire_deep_link<R: Runtime>(
    app: &AppHandle<R>,
    identity: &AppIdentity,
    scheme: String,
) -> tauri::Result<Vec<String>> {
    app.plugin(tauri_plugin_deep_link::init())?;
    let deep_link = app.state::<tauri_plugin_deep_link::DeepLink<R>>();
    let cold = match deep_link.get_current() {
        Ok(Some(urls)) => urls.into_iter().take(MAX_URLS).map(String::from).collect(),
        _ => Vec::new(),
    };
    let handle = app.clone();
    deep_link.on_open_url(move |event| {
        for url in event.urls().into_iter().take(MAX_URLS) {
            deliver(&handle, url.into());
        }
    });
    platform::register_scheme_for_debug(app, identity, scheme);
    Ok(cold)
}

/// The URLs of our scheme in this process's own argv: the process was started by a redirect
/// while no instance was running (e.g. the window was closed during sign-in).
pub(crate) fn cold_start_urls(scheme: &str) -> Vec<String> {
    deep_link::stray_args(&std::env::args().collect::<Vec<_>>(), scheme)
}

/// The redirect scheme from `tauri.conf.json` (`plugins.deep-link.desktop.schemes[0]`), checked
/// against RFC 3986 §3.1 and RFC 8252 §7.1 (a reverse-DNS name with a dot).
pub(crate) fn scheme<R: Runtime>(app: &AppHandle<R>) -> Result<String, String> {
    let conf = app.config().plugins.0.get("deep-link");
    let desktop = conf.and_then(|c| c.get("desktop"));
    // `desktop` is one `{ "schemes": [...] }` or a list of them.
    let first = match desktop {
        Some(serde_json::Value::Array(list)) => list.first(),
        other => other,
    };
    let scheme = first
        .and_then(|d| d.pointer("/schemes/0"))
        .and_then(|v| v.as_str())
        .ok_or(
            "tauri.conf.json: plugins.deep-link.desktop.schemes[0] must name the redirect scheme",
        )?;
    deep_link::check_scheme(scheme)?;
    Ok(scheme.to_owned())
}

/// A redirect (or anything else) delivered to the running instance.
pub(crate) fn deliver<R: Runtime>(app: &AppHandle<R>, url: String) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        app.state::<AppState>().incoming(&app, url).await;
    });
}

/// Hand this to `tauri_plugin_single_instance::init`: someone started the app again. A
/// well-formed redirect was already handed to the deep-link plugin by single-instance (with its
/// `deep-link` feature); anything else that claims the scheme is handed to `resume` here, so it
/// is rejected visibly rather than silently.
pub fn on_second_instance<R: Runtime>(app: &AppHandle<R>, argv: Vec<String>, _cwd: String) {
    focus_main(app);
    let Some(state) = app.try_state::<AppState>() else {
        return;
    };
    for url in deep_link::stray_args(&argv, state.scheme()) {
        deliver(app, url);
    }
}

/// Brings the window forward when a redirect arrives, so the user sees the result.
pub(crate) fn focus_main<R: Runtime>(app: &AppHandle<R>) {
    if let Some(w) = app.get_webview_window(MAIN_WINDOW) {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
    }
}
