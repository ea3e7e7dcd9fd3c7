//! Acme Sign-In: system-browser sign-in in a Tauri 2 app, from `tauri-plugin-latchkey` alone.
//! Everything that names the product is the identity below and `tauri.conf.json` (name,
//! identifier, redirect scheme). See TEMPLATE.md.

// No console window on Windows in release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use tauri_plugin_latchkey::AppIdentity;

/// Keychain service, folders, managed file, `ACME_SIGNIN_*` variables and user agent: none shared
/// with Latchkey or any other app.
const ACME: AppIdentity = AppIdentity {
    product_name: "Acme Sign-In",
    keychain_service: "com.acme.signin",
    dir_name: "acme-signin",
    managed_dir_name: "Acme Sign-In",
    env_prefix: "ACME_SIGNIN",
    user_agent: concat!("acme-signin/", env!("CARGO_PKG_VERSION")),
};

fn main() {
    // Before any thread: WebKitGTK reads some settings from the environment only.
    tauri_plugin_latchkey::before_threads(&ACME);
    tauri::Builder::default()
        // Tauri wants single-instance registered first; a second launch is how Linux and
        // Windows deliver the redirect, and the plugin takes it from there.
        .plugin(tauri_plugin_single_instance::init(
            tauri_plugin_latchkey::on_second_instance,
        ))
        .plugin(tauri_plugin_latchkey::Builder::new(ACME).build())
        .run(tauri::generate_context!())
        .unwrap_or_else(|e| {
            eprintln!("Acme Sign-In could not start: {e}");
            std::process::exit(1);
        });
}
