//! # tauri-plugin-latchkey
//!
//! System-browser sign-in for any Tauri 2 app, on `latchkey-core`: OAuth 2.0 authorization code
//! with PKCE and OpenID Connect (RFC 8252), the redirect caught through the app's private-use URI
//! scheme, the session in the OS keychain under the app's own name, silent refresh, and a
//! token-free view model for the window.
//!
//! ```rust,ignore
//! use tauri_plugin_latchkey::AppIdentity;
//!
//! const ACME: AppIdentity = AppIdentity {
//!     product_name: "Acme Sign-In",
//!     keychain_service: "com.acme.signin",
//!     dir_name: "acme-signin",
//!     managed_dir_name: "Acme Sign-In",
//!     env_prefix: "ACME_SIGNIN",
//!     user_agent: "acme-signin/1.0",
//! };
//!
//! fn main() {
//!     tauri_plugin_latchkey::before_threads(&ACME);
//!     tauri::Builder::default()
//!         // The app owns single-instance (Tauri wants it registered first); Latchkey gets the
//!         // second instance's argv, where Linux and Windows deliver redirects.
//!         .plugin(tauri_plugin_single_instance::init(tauri_plugin_latchkey::on_second_instance))
//!         .plugin(tauri_plugin_latchkey::Builder::new(ACME).build())
//!         .run(tauri::generate_context!())
//!         .expect("the app could not start");
//! }
//! ```
//!
//! (`tests/template` is this, compiled and tested.)
//!
//! The redirect scheme has one source of truth: `tauri.conf.json`'s
//! `plugins.deep-link.desktop.schemes[0]`, which the bundler also writes into the `.desktop`
//! file, `Info.plist` and the Windows installer. The plugin reads it at start-up.
//!
//! Rust code reaches the plugin through [`LatchkeyExt`]: `app.latchkey().view()`.
//!
//! Inside: `controller/` (the state machine: its transitions in `controller/view.rs`, the
//! effects in one file per use case), `commands.rs` (what the window may invoke;
//! `permissions/default.toml` grants them all), [`models`] (the view model; no field can hold a
//! token), `links.rs` (incoming URLs, hostile input) and `platform/` (per-OS scheme
//! registration and webview tuning).
//!
//! The window's JavaScript API is `guest-js/index.js` (plain ES, no bundler needed).

use std::sync::Arc;

use latchkey_core::Ports;
use tauri::plugin::{Builder as PluginBuilder, TauriPlugin};
use tauri::{AppHandle, Manager, Runtime};

mod browser;
mod commands;
mod controller;
mod error;
mod links;
pub mod models;
mod platform;

pub use controller::{AppState, Env};
pub use error::{UiError, UiErrorKind};
pub use latchkey_core::AppIdentity;
pub use links::on_second_instance;

/// The plugin's name: commands are `plugin:latchkey|<command>`, permissions `latchkey:<name>`.
pub const NAME: &str = "latchkey";

/// Process-wide webview settings that exist only as environment variables. Call it first thing
/// in `main`, before any thread starts; `<PREFIX>_WEBVIEW_TUNING=0` skips it.
pub fn before_threads(identity: &AppIdentity) {
    platform::before_threads(identity);
}

/// The plugin from Rust, on the app, its handle or a window (like `app.notification()` in Tauri's
/// own plugins). Panics if the plugin was not registered.
pub trait LatchkeyExt<R: Runtime> {
    fn latchkey(&self) -> &AppState;
}

impl<R: Runtime, T: Manager<R>> LatchkeyExt<R> for T {
    fn latchkey(&self) -> &AppState {
        self.state::<AppState>().inner()
    }
}

/// Configures the plugin.
pub struct Builder {
    identity: AppIdentity,
    env: Option<Env>,
    ports: Option<Ports>,
    deep_link: bool,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// The plugin for the app that `identity` names: its keychain service, folders, managed file
    /// and environment variables.
    pub fn new(identity: AppIdentity) -> Self {
        Self {
            identity,
            env: None,
            ports: None,
            deep_link: true,
        }
    }

    /// Where settings are read from instead of the process environment (tests).
    #[doc(hidden)]
    pub fn env(mut self, env: Env) -> Self {
        self.env = Some(env);
        self
    }

    /// Other keychain, browser and clock ports (tests).
    #[doc(hidden)]
    pub fn ports(mut self, ports: Ports) -> Self {
        self.ports = Some(ports);
        self
    }

    /// Leaves `tauri-plugin-deep-link` out (Tauri's mock runtime has no OS to register with).
    #[doc(hidden)]
    pub fn without_deep_link(mut self) -> Self {
        self.deep_link = false;
        self
    }

    pub fn build<R: Runtime>(self) -> TauriPlugin<R> {
        let identity = self.identity;
        PluginBuilder::<R, ()>::new(NAME)
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
                commands::switch_account,
                commands::add_account,
                commands::cancel_add_account,
                commands::sign_out_all,
                commands::use_loopback,
            ])
            .setup(move |app, _api| {
                self.setup(app)?;
                Ok(())
            })
            .on_webview_ready(move |webview| {
                if webview.label() == links::MAIN_WINDOW {
                    platform::tune_webview(&webview, &identity);
                }
            })
            .build()
    }

    fn setup<R: Runtime>(self, app: &AppHandle<R>) -> Result<(), Box<dyn std::error::Error>> {
        self.identity.validate()?;
        let scheme = links::scheme(app)?;
        let mut ports = self.ports.unwrap_or_else(|| {
            let mut ports = Ports::system(&self.identity);
            ports.browser = Arc::new(browser::AppBrowser::from_env());
            ports
        });
        // One identity for everything: the user agent and lock folder follow the app's too.
        ports.identity = self.identity;
        let env = self
            .env
            .unwrap_or_else(|| Arc::new(|k: &str| std::env::var(k).ok()));
        let state = AppState::new(self.identity, env, ports, &scheme)?;
        app.manage(state);

        // A URL in argv at cold start: the process was started by a redirect while no instance
        // was running (e.g. the window was closed during sign-in). It cannot match a sign-in of
        // this process, so `resume` rejects it and the window says so.
        let cold = links::cold_start_urls(&scheme);
        let handle = app.clone();
        let identity = self.identity;
        let deep_link = self.deep_link;
        tauri::async_runtime::spawn(async move {
            // Registered from here, not from this setup: Tauri holds its plugin registry while it
            // runs each plugin's setup, so registering another plugin there would wait forever.
            let mut cold = cold;
            if deep_link {
                match links::wire_deep_link(&handle, &identity, scheme) {
                    Ok(urls) => cold.extend(urls),
                    Err(e) => tracing::error!("deep links will not arrive: {e}"),
                }
            }
            let state = handle.latchkey();
            let started = std::time::Instant::now();
            let vm = state.startup(&handle).await;
            tracing::debug!(phase = ?vm.phase, ms = started.elapsed().as_secs_f64() * 1e3, "start-up done");
            for url in cold {
                state.incoming(&handle, url).await;
            }
        });
        Ok(())
    }
}
