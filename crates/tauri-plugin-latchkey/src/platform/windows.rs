//! Windows: the scheme handler is the `shell\open\command` of the scheme's key under
//! `HKEY_CLASSES_ROOT` (per-user `HKCU\Software\Classes` merged over per-machine).

use super::Handler;

/// Nothing to tune: the system webview's defaults are fine here.
/// Nothing to set up front here.
pub fn before_threads() {}

pub fn tune_webview<R: tauri::Runtime>(_window: &tauri::Webview<R>) {}

pub fn scheme_handler(scheme: &str) -> Result<Handler, String> {
    let Ok(key) = windows_registry::CLASSES_ROOT.open(format!("{scheme}\\shell\\open\\command"))
    else {
        return Ok(Handler::None);
    };
    let command = key.get_string("").map_err(|e| e.to_string())?;
    let program = match command.trim_start().strip_prefix('"') {
        Some(rest) => rest.split('"').next().unwrap_or_default().to_owned(),
        None => command
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned(),
    };
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let exe = exe.display().to_string();
    let exe = exe.strip_prefix(r"\\?\").unwrap_or(&exe);
    if program.eq_ignore_ascii_case(exe) {
        Ok(Handler::ThisApp)
    } else {
        Ok(Handler::Other(program))
    }
}
