//! `latchkey doctor`: checks everything a sign-in depends on, and says how to fix what fails.
//!
//! Exit 0 when every check passes (warnings allowed), 2 otherwise. The configuration is shown
//! with where each value came from; `client_secret` is never printed.

use latchkey_core::config::{KEYS, Sources};
use latchkey_core::{ErrorKind, Latchkey};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug)]
struct Check {
    name: &'static str,
    status: Status,
    detail: String,
    fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }
    fn bad(name: &'static str, status: Status, detail: impl Into<String>, fix: &str) -> Self {
        Self {
            name,
            status,
            detail: detail.into(),
            fix: Some(fix.to_owned()),
        }
    }
}

/// The deep-link scheme of the desktop app: read from `tauri.conf.json`, its one source of truth.
fn app_scheme() -> Option<String> {
    let conf: serde_json::Value =
        serde_json::from_str(include_str!("../../../src-tauri/tauri.conf.json")).ok()?;
    conf.pointer("/plugins/deep-link/desktop/schemes/0")?
        .as_str()
        .map(str::to_owned)
}

fn browser_check() -> Check {
    if let Ok(b) = std::env::var("BROWSER")
        && !b.trim().is_empty()
    {
        return Check::ok("browser", format!("$BROWSER: {b}"));
    }
    if cfg!(target_os = "linux") {
        let display = ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
        if !display {
            return Check::bad(
                "browser",
                Status::Warn,
                "no $BROWSER and no display ($DISPLAY, $WAYLAND_DISPLAY)",
                "sign in with `latchkey login --no-browser` and open the link elsewhere, or set $BROWSER",
            );
        }
        return Check::ok("browser", "the desktop's default browser (xdg-open)");
    }
    Check::ok("browser", "the system's default browser")
}

fn scheme_check() -> Option<Check> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let scheme = app_scheme()?;
    let out = std::process::Command::new("xdg-mime")
        .args(["query", "default", &format!("x-scheme-handler/{scheme}")])
        .stdin(std::process::Stdio::null())
        .output();
    Some(match out {
        Ok(o) if o.status.success() && !o.stdout.trim_ascii().is_empty() => Check::ok(
            "scheme handler",
            format!(
                "{scheme}: handled by {}",
                String::from_utf8_lossy(o.stdout.trim_ascii())
            ),
        ),
        Ok(_) => Check::bad(
            "scheme handler",
            Status::Warn,
            format!("no handler for {scheme}: links (the desktop app's redirect) go nowhere"),
            "install the Latchkey desktop app (the CLI does not need it)",
        ),
        Err(_) => Check::bad(
            "scheme handler",
            Status::Warn,
            "xdg-mime is not installed; cannot tell",
            "install xdg-utils",
        ),
    })
}

fn config_failed(e: &latchkey_core::Error) -> Check {
    Check::bad(
        "configuration",
        Status::Fail,
        e.to_string(),
        "fix the value named above, where it is set",
    )
}

pub async fn doctor(sources: Result<Sources, latchkey_core::Error>, json: bool) -> i32 {
    let mut checks = Vec::new();
    let mut config_rows = Vec::new();
    let latchkey = match sources {
        Err(e) => {
            checks.push(config_failed(&e));
            None
        }
        Ok(sources) => {
            if let Ok(merged) = sources.merged() {
                for key in KEYS.iter().copied() {
                    let value = merged.text(key).map(|(v, src)| (v, src.to_string()));
                    let (value, source) = match value {
                        Some((_, src)) if key == "client_secret" => ("[set]".to_owned(), src),
                        Some(v) => v,
                        None if key == "profile" => (merged.profile.clone(), "selected".into()),
                        None => continue,
                    };
                    config_rows.push((key, value, source, merged.is_locked(key)));
                }
            }
            match sources.resolve() {
                Ok(config) => {
                    checks.push(Check::ok(
                        "configuration",
                        format!("profile `{}`, issuer {}", config.profile, config.issuer),
                    ));
                    Some(Latchkey::new(
                        config,
                        latchkey_core::Ports::system(&latchkey_identity::LATCHKEY),
                    ))
                }
                Err(e) => {
                    checks.push(config_failed(&e));
                    None
                }
            }
        }
    };
    if let Some(latchkey) = &latchkey {
        provider_checks(latchkey, &mut checks).await;
        checks.push(keychain_check(latchkey).await);
    }
    checks.push(browser_check());
    checks.extend(scheme_check());
    report(&checks, &config_rows, json)
}

async fn provider_checks(latchkey: &Latchkey, checks: &mut Vec<Check>) {
    let issuer = latchkey.config().issuer.clone();
    let proxy = latchkey_core::http::proxy_for(&issuer)
        .map(|p| format!("through the proxy {p}"))
        .unwrap_or_else(|| "directly (no proxy applies)".into());
    match latchkey.check_provider_live().await {
        Ok(()) => {
            let tls = if issuer.starts_with("https:") {
                "TLS certificate verified"
            } else {
                "plain http on loopback, no TLS"
            };
            checks.push(Check::ok(
                "provider",
                format!("discovery answers {proxy}; {tls}"),
            ));
        }
        Err(e) => {
            let text = e.to_string();
            let fix = if text.contains("certificate") || text.contains("TLS") {
                "add your organization's CA to the system trust store, or point SSL_CERT_FILE at it"
            } else if e.kind() == ErrorKind::ProviderUnreachable {
                "check the network, the proxy (HTTPS_PROXY, NO_PROXY) and that the provider is up"
            } else {
                "check `issuer`: it must be exactly the issuer of the provider's discovery document"
            };
            checks.push(Check::bad(
                "provider",
                Status::Fail,
                format!("{text} ({proxy})"),
                fix,
            ));
            return;
        }
    }
    match latchkey.provider_clock_skew().await {
        Ok(Some(skew)) if skew.num_seconds().abs() > 60 => checks.push(Check::bad(
            "clock",
            Status::Fail,
            format!(
                "this computer's clock is {} s off the provider's",
                skew.num_seconds()
            ),
            "turn on time synchronisation (e.g. `timedatectl set-ntp true`)",
        )),
        Ok(Some(skew)) => checks.push(Check::ok(
            "clock",
            format!(
                "within {} s of the provider's",
                skew.num_seconds().abs().max(1)
            ),
        )),
        Ok(None) => checks.push(Check::bad(
            "clock",
            Status::Warn,
            "the provider sends no Date header; cannot compare clocks",
            "none needed",
        )),
        Err(e) => checks.push(Check::bad(
            "clock",
            Status::Warn,
            e.to_string(),
            "none needed",
        )),
    }
}

async fn keychain_check(latchkey: &Latchkey) -> Check {
    match latchkey.current().await {
        Ok(session) => {
            let store = latchkey
                .store_kind()
                .map(|k| k.as_str())
                .unwrap_or("the OS keychain");
            let who = match session {
                Some(id) => format!(
                    "signed in as {}",
                    latchkey_core::sanitize(id.name.as_deref().unwrap_or(&id.subject))
                ),
                None => "not signed in".into(),
            };
            Check::ok(
                "keychain",
                format!("{store} answers and is unlocked; {who}"),
            )
        }
        Err(e) => {
            let text = e.to_string();
            let fix = if text.contains("locked") {
                "unlock your keyring (log in to the desktop session, or `gnome-keyring-daemon --unlock`)"
            } else if text.contains("did not answer") {
                "restart the keyring daemon, or raise LATCHKEY_KEYCHAIN_TIMEOUT_MS"
            } else {
                "start a Secret Service (gnome-keyring, KWallet), or set store = \"kernel-keyring\""
            };
            Check::bad("keychain", Status::Fail, text, fix)
        }
    }
}

fn report(checks: &[Check], config: &[(&str, String, String, bool)], json: bool) -> i32 {
    let failed = checks.iter().any(|c| c.status == Status::Fail);
    let status = |s: Status| match s {
        Status::Ok => "ok",
        Status::Warn => "warn",
        Status::Fail => "fail",
    };
    if json {
        let value = json!({
            "ok": !failed,
            "checks": checks.iter().map(|c| json!({
                "name": c.name,
                "status": status(c.status),
                "detail": c.detail,
                "fix": c.fix,
            })).collect::<Vec<_>>(),
            "config": config.iter().map(|(k, v, s, l)| json!({
                "key": k, "value": v, "source": s, "locked": l,
            })).collect::<Vec<_>>(),
        });
        out!("{value:#}");
    } else {
        out!("Configuration:");
        for (key, value, source, locked) in config {
            out!(
                "  {key:<26} {value}  ({source}{})",
                if *locked { ", locked" } else { "" }
            );
        }
        out!("");
        for c in checks {
            let mark = match c.status {
                Status::Ok => "ok  ",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
            };
            out!("{mark} {:<15} {}", c.name, c.detail);
            if let Some(fix) = c.fix.as_deref().filter(|_| c.status != Status::Ok) {
                out!("     {:<15} fix: {fix}", "");
            }
        }
    }
    if failed { 2 } else { 0 }
}
