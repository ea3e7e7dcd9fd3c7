//! # Latchkey desktop app
//!
//! A thin Tauri shell over `latchkey-core`: the core signs in (authorization code + PKCE, OpenID
//! Connect) through the system browser and keeps the session in the OS keychain; this crate
//! carries redirects from the OS to `Latchkey::resume` and a token-free view model to the window.
//!
//! - [`state`]: the controller (window states, timers, silent refresh).
//! - [`commands`]: what the window may invoke.
//! - [`view`]: the view model; no field can hold a token.
//! - [`links`]: incoming URLs from argv (hostile input).
//! - [`platform`]: per-OS scheme registration.

use std::sync::Arc;

use latchkey_core::Ports;
use tauri::{AppHandle, Builder, Context, Manager, Runtime};
use url::Url;

mod browser;
pub mod commands;
pub mod links;
mod platform;
pub mod state;
pub mod view;

#[cfg(test)]
mod tests;

pub use state::{AppState, Env, LONG_POLL};

/// The private-use URI scheme (RFC 8252 §7.1), from `tauri.conf.json` via `build.rs`.
pub const SCHEME: &str = env!("LATCHKEY_SCHEME");

/// `<scheme>:/callback`: one slash, as RFC 8252 §7.1 shows for private-use schemes.
pub fn redirect_uri() -> Url {
    Url::parse(&format!("{SCHEME}:/callback")).expect("LATCHKEY_SCHEME is validated by build.rs")
}

/// The app as shipped: real keychain, system browser, process environment. Call it first thing in
/// `main`: it sets WebKit's environment before any thread exists.
pub fn run() {
    platform::before_threads();
    init_logging();
    let builder = tauri::Builder::default()
        // First: a second launch (how Linux and Windows deliver a redirect) hands its argv to the
        // running instance and exits. With the `deep-link` feature it forwards the URL to the
        // deep-link plugin, whose `on_open_url` handler below takes it.
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            on_second_instance(app, &argv);
        }))
        .plugin(tauri_plugin_deep_link::init());
    let mut ports = Ports::system();
    ports.browser = Arc::new(browser::AppBrowser::from_env());
    let state = AppState::new(
        Arc::new(|k: &str| std::env::var(k).ok()),
        ports,
        redirect_uri(),
    );
    run_app(builder, state, tauri::generate_context!());
}

/// Runs the app on any runtime, so `tauri::test::mock_builder()` can drive the same glue.
pub fn run_app<R: Runtime>(builder: Builder<R>, state: AppState, context: Context<R>) {
    if let Err(e) = app(builder, state).run(context) {
        tracing::error!("Latchkey could not start: {e}");
        std::process::exit(1);
    }
}

/// Everything but the plugins that need a real desktop (single-instance).
pub fn app<R: Runtime>(builder: Builder<R>, state: AppState) -> Builder<R> {
    builder
        .manage(state)
        .invoke_handler(tauri::generate_handler![
            commands::get_state,
            commands::next_state,
            commands::save_settings,
            commands::sign_in,
            commands::cancel_sign_in,
            commands::open_browser_again,
            commands::sign_out,
            commands::retry,
            commands::dismiss,
        ])
        .setup(|app| {
            setup(app.handle());
            Ok(())
        })
}

fn setup<R: Runtime>(app: &AppHandle<R>) {
    platform::tune_webview(app);
    // A URL in argv at cold start: the process was started by a redirect while no instance was
    // running (e.g. the window was closed during sign-in). It cannot match a sign-in of this
    // process, so `resume` rejects it and the window says so.
    let mut cold = links::stray_args(&std::env::args().collect::<Vec<_>>(), SCHEME);
    if let Some(deep_link) = app.try_state::<tauri_plugin_deep_link::DeepLink<R>>() {
        if let Ok(Some(urls)) = deep_link.get_current() {
            cold.extend(urls.into_iter().take(links::MAX_URLS).map(String::from));
        }
        let handle = app.clone();
        deep_link.on_open_url(move |event| {
            for url in event.urls().into_iter().take(links::MAX_URLS) {
                deliver(&handle, url.into());
            }
        });
        platform::register_scheme_for_debug(app, SCHEME);
    }
    let handle = app.clone();
    tauri::async_runtime::spawn(async move {
        let state = handle.state::<AppState>();
        let started = std::time::Instant::now();
        let vm = state.startup(&handle).await;
        tracing::debug!(phase = ?vm.phase, ms = started.elapsed().as_secs_f64() * 1e3, "start-up done");
        for url in cold {
            state.incoming(&handle, url).await;
        }
    });
}

/// A redirect (or anything else) delivered to the running instance.
pub fn deliver<R: Runtime>(app: &AppHandle<R>, url: String) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        app.state::<AppState>().incoming(&app, url).await;
    });
}

/// Someone started the app again. A well-formed redirect was already handed to `on_open_url` by
/// the single-instance plugin; anything else that claims our scheme is handed to `resume` here,
/// so it is rejected visibly rather than silently.
fn on_second_instance<R: Runtime>(app: &AppHandle<R>, argv: &[String]) {
    state::focus_main(app);
    for url in links::stray_args(argv, SCHEME) {
        deliver(app, url);
    }
}

fn init_logging() {
    use tracing::Level;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    // As in the CLI, `LATCHKEY_LOG` is a level for our own crates only: dependencies stay at
    // warn, since their debug output can include request details we don't control.
    let level = std::env::var("LATCHKEY_LOG")
        .ok()
        .and_then(|l| l.parse::<Level>().ok())
        .unwrap_or(Level::INFO);
    let filter = Targets::new()
        .with_default(Level::WARN)
        .with_target("latchkey_app_lib", level)
        .with_target("latchkey_core", level);
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .finish()
        .with(filter)
        .try_init();
}
