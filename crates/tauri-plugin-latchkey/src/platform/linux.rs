//! Linux: the scheme handler is whatever `xdg-mime` says is the default for
//! `x-scheme-handler/<scheme>` (mimeapps.list); its desktop file's `Exec` names the program.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::Handler;

/// Environment for WebKitGTK and its JavaScript engine, set before any thread exists (see
/// [`super::before_threads`]). A value the user set wins. Measured in `tests/bench/app.sh`:
///
/// - `WEBKIT_DISABLE_DMABUF_RENDERER=1`: with compositing off (below) the DMA-BUF renderer has
///   nothing to share, yet it still sets up buffers in both processes, about 9 MB PSS. It is also
///   the usual cure for blank windows on some GPU drivers.
/// - `JSC_useJIT=false`: the page is our own few kilobytes of script, which the interpreter runs
///   fast enough; the JIT's executable memory costs about 3 MB and is attack surface we don't need.
#[allow(unsafe_code)]
pub fn before_threads() {
    for (var, value) in [
        ("WEBKIT_DISABLE_DMABUF_RENDERER", "1"),
        ("JSC_useJIT", "false"),
    ] {
        if std::env::var_os(var).is_none() {
            // SAFETY: called first thing in `main`, before the app, GTK or any runtime has started
            // a thread, so nothing can read the environment concurrently.
            unsafe { std::env::set_var(var, value) };
        }
    }
}

/// No GPU compositing: WebKitGTK's accelerated mode keeps a GL context and its buffers in the
/// web process, about 60 MB PSS here for a one-page local UI that needs none of it (measured in
/// `tests/bench/app.sh`; the cache model and page cache made no measurable difference). It also
/// sidesteps the GPU-driver problems that leave WebKitGTK windows blank on some systems.
pub fn tune_webview<R: tauri::Runtime>(window: &tauri::Webview<R>) {
    let result = window.with_webview(|webview| {
        use webkit2gtk::{HardwareAccelerationPolicy, SettingsExt, WebViewExt};
        if let Some(settings) = WebViewExt::settings(&webview.inner()) {
            settings.set_hardware_acceleration_policy(HardwareAccelerationPolicy::Never);
        }
    });
    if let Err(e) = result {
        tracing::debug!("webview settings not applied: {e}");
    }
}

/// Who handles `scheme` now.
pub fn scheme_handler(scheme: &str) -> Result<Handler, String> {
    let out = Command::new("xdg-mime")
        .args(["query", "default", &format!("x-scheme-handler/{scheme}")])
        .output()
        .map_err(|e| format!("cannot run xdg-mime (install xdg-utils): {e}"))?;
    // xdg-utils exits with 4 ("action failed") when there is no default.
    if !out.status.success() && out.status.code() != Some(4) {
        return Err(format!("xdg-mime failed: {}", out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let id = stdout.lines().next().map(str::trim).unwrap_or_default();
    if id.is_empty() {
        return Ok(Handler::None);
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    match find_desktop_file(id).and_then(|p| std::fs::read_to_string(p).ok()) {
        Some(text) if exec_program(&text).is_some_and(|p| same_file(&p, &exe)) => {
            Ok(Handler::ThisApp)
        }
        _ => Ok(Handler::Other(id.to_owned())),
    }
}

/// Desktop files live in `applications/` under `$XDG_DATA_HOME` and each of `$XDG_DATA_DIRS`.
fn find_desktop_file(id: &str) -> Option<PathBuf> {
    if id.contains('/') || id.starts_with('.') {
        return None;
    }
    let home = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")));
    let dirs = std::env::var("XDG_DATA_DIRS")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "/usr/local/share:/usr/share".into());
    home.into_iter()
        .chain(dirs.split(':').filter(|d| !d.is_empty()).map(PathBuf::from))
        .map(|d| d.join("applications").join(id))
        .find(|p| p.is_file())
}

/// The program of the `Exec` key of the `[Desktop Entry]` group, quotes removed.
fn exec_program(desktop: &str) -> Option<String> {
    let mut in_entry = false;
    for line in desktop.lines().map(str::trim) {
        if line.starts_with('[') {
            in_entry = line == "[Desktop Entry]";
        } else if in_entry && let Some(exec) = line.strip_prefix("Exec=") {
            let exec = exec.trim_start();
            return Some(match exec.strip_prefix('"') {
                Some(rest) => rest.split('"').next()?.to_owned(),
                None => exec.split_whitespace().next()?.to_owned(),
            });
        }
    }
    None
}

fn same_file(a: &str, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_program_handles_quotes_and_groups() {
        let f = "[Desktop Entry]\nName=X\nExec=\"/opt/my app/bin\" %u\n[Desktop Action new]\nExec=other\n";
        assert_eq!(exec_program(f).as_deref(), Some("/opt/my app/bin"));
        assert_eq!(
            exec_program("[Desktop Entry]\nExec=latchkey-app %u\n").as_deref(),
            Some("latchkey-app")
        );
        assert_eq!(exec_program("[Other]\nExec=x\n"), None);
    }
}
