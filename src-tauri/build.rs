//! Build-time glue: the command list for the capability system, and the redirect scheme.
//!
//! The private-use URI scheme (RFC 8252 §7.1) has one source of truth: `tauri.conf.json`
//! `plugins.deep-link.desktop.schemes[0]`, which the bundler also writes into the `.desktop` file,
//! the macOS `Info.plist` and the Windows installer. It reaches the code as `LATCHKEY_SCHEME`.

/// Every command the UI may invoke; `capabilities/main.json` grants exactly these.
const COMMANDS: &[&str] = &[
    "get_state",
    "next_state",
    "save_settings",
    "sign_in",
    "cancel_sign_in",
    "open_browser_again",
    "sign_out",
    "retry",
    "dismiss",
];

fn main() {
    println!("cargo:rerun-if-changed=tauri.conf.json");
    let conf = std::fs::read_to_string("tauri.conf.json").expect("read tauri.conf.json");
    let conf: serde_json::Value = serde_json::from_str(&conf).expect("tauri.conf.json is JSON");
    let scheme = conf
        .pointer("/plugins/deep-link/desktop/schemes/0")
        .and_then(|v| v.as_str())
        .expect(
            "tauri.conf.json: plugins.deep-link.desktop.schemes[0] must name the redirect scheme",
        );
    // RFC 3986 §3.1 scheme syntax; RFC 8252 §7.1 wants a reverse-DNS name with a dot.
    let valid = scheme.contains('.')
        && scheme.starts_with(|c: char| c.is_ascii_lowercase())
        && scheme
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    assert!(
        valid,
        "scheme `{scheme}` must be a lower-case reverse-DNS name like com.example.app"
    );
    println!("cargo:rustc-env=LATCHKEY_SCHEME={scheme}");

    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri-build");
}
