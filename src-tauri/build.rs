//! Build-time glue: Tauri's context (config, icons, the capability that grants the Latchkey
//! plugin's default permission set).
//!
//! The private-use redirect scheme (RFC 8252 §7.1) has one source of truth, `tauri.conf.json`'s
//! `plugins.deep-link.desktop.schemes[0]`: the bundler writes it into the `.desktop` file,
//! `Info.plist` and the Windows installer, and the plugin reads it at start-up.

fn main() {
    tauri_build::build();
}
