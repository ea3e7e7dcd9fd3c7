//! Signing in from a terminal: the route the core decides (the browser through the loopback
//! listener, or a code on another device), with every notice on stderr.

use latchkey_core::config;
use latchkey_core::store::StoreKind;
use latchkey_core::{Error, FrontEnd, Identity, Latchkey, LoginNotice, SignInRoute};

use crate::explained;

/// `--no-browser`: the link is printed by the login notice instead.
#[derive(Debug)]
pub(crate) struct NoBrowser;

impl latchkey_core::browser::BrowserLauncher for NoBrowser {
    fn open(&self, _: &url::Url) -> Result<(), String> {
        Err("--no-browser".into())
    }
}

/// The persistent keyring's idle expiry (`persistent-keyring(7)`), in days.
fn persistent_expiry_days() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/keys/persistent_keyring_expiry")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(259_200)
        / 86_400
}

/// The device sign-in's notice: the code and where to enter it, on stderr.
fn show_device_code(sign_in: &latchkey_core::DeviceSignIn) {
    let minutes = (sign_in.expires_at - chrono::Utc::now())
        .num_minutes()
        .max(1);
    say!(
        "To sign in, open {} on any device and enter the code\n\n    {}\n",
        sign_in.verification_uri,
        sign_in.user_code
    );
    if let Some(complete) = &sign_in.verification_uri_complete {
        say!("Or open this link, which carries the code:\n\n    {complete}\n");
    }
    say!("Waiting for you to approve (the code expires in about {minutes} min; Ctrl-C cancels)...");
}

/// The sign-in, browser or device, with its notices on stderr (stdout may carry a credential).
pub(crate) async fn sign_in(latchkey: &Latchkey) -> Result<Identity, Error> {
    // Read before the sign-in, to tell a first sign-in into the kernel keyring.
    let first = matches!(latchkey.current().await, Ok(None));
    let waiting = |notice: LoginNotice<'_>| {
        if let LoginNotice::Waiting = notice {
            say!(
                "Another latchkey is signing in to profile `{}`; waiting for it...",
                latchkey.config().profile
            );
        } else if let LoginNotice::Device { sign_in } = notice {
            show_device_code(sign_in);
        }
    };
    let identity = match latchkey.sign_in_route(FrontEnd::Terminal)? {
        SignInRoute::Device => latchkey.login_device(waiting).await?,
        _ => {
            if latchkey.config().flow == config::FlowChoice::Implicit {
                say!("latchkey: warning: {}", latchkey_core::IMPLICIT_WARNING);
            }
            browser_sign_in(latchkey).await?
        }
    };
    if first && identity.store == Some(StoreKind::KernelKeyring.as_str()) {
        say!(
            "latchkey: no Secret Service here, so the session is kept in the kernel keyring: in memory only, until reboot (or {} days unused)",
            persistent_expiry_days()
        );
    }
    Ok(identity)
}

/// The browser sign-in through the loopback listener.
async fn browser_sign_in(latchkey: &Latchkey) -> Result<Identity, Error> {
    latchkey
        .login_loopback(|notice| match notice {
            LoginNotice::Waiting => say!(
                "Another latchkey is signing in to profile `{}`; waiting for it...",
                latchkey.config().profile
            ),
            LoginNotice::Opened {
                sign_in,
                result: Ok(()),
            } => say!(
                "Opened your browser to sign in. If nothing appeared, open this link:\n\n    {}\n",
                sign_in.url
            ),
            LoginNotice::Opened {
                sign_in,
                result: Err(e),
            } => {
                if !e.message().contains("--no-browser") {
                    say!("latchkey: {}", explained(&e));
                }
                say!(
                    "Open this link in a browser on this computer to sign in:\n\n    {}\n",
                    sign_in.url
                );
            }
            _ => {}
        })
        .await
}
