//! The browser port for the app: `$BROWSER` when set (exactly as the core and the CLI read it),
//! otherwise the platform's default browser through `tauri-plugin-opener`.

use latchkey_core::browser::{BrowserLauncher, SystemBrowser};
use url::Url;

#[derive(Debug, Clone)]
pub struct AppBrowser {
    env: SystemBrowser,
}

impl AppBrowser {
    /// Reads `$BROWSER` now.
    pub fn from_env() -> Self {
        Self {
            env: SystemBrowser::from_env(),
        }
    }
}

impl BrowserLauncher for AppBrowser {
    fn open(&self, url: &Url) -> Result<(), String> {
        if self.env.command().is_some() {
            return self.env.open(url);
        }
        tauri_plugin_opener::open_url(url.as_str(), None::<&str>).map_err(|e| e.to_string())
    }
}
