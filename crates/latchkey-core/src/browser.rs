//! The browser launcher port (RFC 8252 §4: native apps use the *system* browser, never an
//! embedded web view, so the app never sees the user's credentials).

use std::fmt;
use std::process::{Command, Stdio};

use url::Url;

pub trait BrowserLauncher: Send + Sync + fmt::Debug {
    /// Opens `url` and returns once the browser was started (not when the user is done).
    fn open(&self, url: &Url) -> Result<(), String>;

    /// Whether a browser could be opened at all, checked before trying; `Err` says why not.
    fn usable(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The system browser: `$BROWSER` when set, else the platform opener.
///
/// `$BROWSER` follows the common convention: a list of commands separated by the platform's path
/// separator, each split on whitespace; `%s` is replaced by the URL, otherwise the URL is appended
/// as the last argument. The first command that starts wins.
#[derive(Debug, Default, Clone)]
pub struct SystemBrowser {
    browser_env: Option<String>,
    /// Linux and the BSDs: whether `DISPLAY` or `WAYLAND_DISPLAY` is set, without which
    /// `xdg-open` has no graphical browser to start (an ssh session, a container).
    has_display: bool,
}

impl SystemBrowser {
    /// Reads `$BROWSER`, `DISPLAY` and `WAYLAND_DISPLAY` now.
    pub fn from_env() -> Self {
        let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).is_some();
        Self {
            browser_env: std::env::var("BROWSER")
                .ok()
                .filter(|s| !s.trim().is_empty()),
            has_display: set("DISPLAY") || set("WAYLAND_DISPLAY"),
        }
    }

    /// Whether `$BROWSER` overrides the platform opener.
    pub fn command(&self) -> Option<&str> {
        self.browser_env.as_deref()
    }
}

/// Builds the argv for one `$BROWSER` entry.
pub(crate) fn browser_argv(entry: &str, url: &str) -> Option<Vec<String>> {
    let mut argv: Vec<String> = entry.split_whitespace().map(str::to_owned).collect();
    if argv.is_empty() {
        return None;
    }
    if argv.iter().any(|a| a.contains("%s")) {
        for a in &mut argv {
            *a = a.replace("%s", url);
        }
    } else {
        argv.push(url.to_owned());
    }
    Some(argv)
}

impl BrowserLauncher for SystemBrowser {
    fn usable(&self) -> Result<(), String> {
        // macOS and Windows always have a default browser to hand a URL to.
        let needs_display = cfg!(unix) && !cfg!(target_os = "macos");
        if self.browser_env.is_none() && needs_display && !self.has_display {
            return Err(
                "no $BROWSER is set and there is no display (DISPLAY, WAYLAND_DISPLAY)".into(),
            );
        }
        Ok(())
    }

    fn open(&self, url: &Url) -> Result<(), String> {
        let Some(list) = &self.browser_env else {
            return opener::open_browser(url.as_str()).map_err(|e| e.to_string());
        };
        let sep = if cfg!(windows) { ';' } else { ':' };
        let mut last_error = String::from("$BROWSER is empty");
        for entry in list.split(sep) {
            let Some(argv) = browser_argv(entry, url.as_str()) else {
                continue;
            };
            match Command::new(&argv[0])
                .args(&argv[1..])
                // Detach fully: the browser may outlive us, and holding our stdout/stderr open
                // would hang a script that captures them (`out=$(latchkey login 2>&1)`).
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(mut child) => {
                    // Reap it in the background so it never lingers as a zombie.
                    std::thread::spawn(move || {
                        let _ = child.wait();
                    });
                    return Ok(());
                }
                Err(e) => last_error = format!("cannot run `{}` from $BROWSER: {e}", argv[0]),
            }
        }
        Err(last_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_is_appended_or_substituted() {
        assert_eq!(
            browser_argv("node /x/driver.mjs", "https://a/b").expect("argv"),
            ["node", "/x/driver.mjs", "https://a/b"]
        );
        assert_eq!(
            browser_argv("firefox --new-window %s", "https://a").expect("argv"),
            ["firefox", "--new-window", "https://a"]
        );
        assert_eq!(browser_argv("   ", "u"), None);
    }

    #[test]
    fn without_browser_or_display_none_is_usable() {
        let none = SystemBrowser::default();
        let display = SystemBrowser {
            has_display: true,
            ..SystemBrowser::default()
        };
        let env = SystemBrowser {
            browser_env: Some("w3m".into()),
            ..SystemBrowser::default()
        };
        assert!(display.usable().is_ok() && env.usable().is_ok());
        if cfg!(unix) && !cfg!(target_os = "macos") {
            let why = none.usable().expect_err("no display");
            assert!(why.contains("DISPLAY") && why.contains("$BROWSER"), "{why}");
        }
    }

    #[test]
    fn a_missing_browser_is_an_error_not_a_panic() {
        let b = SystemBrowser {
            browser_env: Some("/nonexistent/browser-binary".into()),
            has_display: false,
        };
        let e = b
            .open(&Url::parse("https://example.com").expect("url"))
            .expect_err("fails");
        assert!(e.contains("/nonexistent/browser-binary"), "{e}");
    }
}
