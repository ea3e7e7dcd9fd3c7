//! `latchkey`: sign in through the system browser and hand tokens to scripts.
//!
//! A thin adapter over `latchkey-core`. The contract other tools depend on:
//!
//! | command | success | not signed in | other failure |
//! |---|---|---|---|
//! | `login [--json]` | 0, identity on stdout | – | 2 |
//! | `status [--json]` | 0, identity on stdout | 1 | 2 |
//! | `token` | 0, the access token alone on stdout | 1 | 2 |
//! | `logout` | 0 | 0 | 2 |
//!
//! Errors are one line on stderr: `latchkey: <cause and what to do>`.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

/// `eprintln!` that never panics: a closed stderr must not turn into a crash.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `println!` that never panics (e.g. `latchkey token | head -c 10`).
macro_rules! out {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
use latchkey_core::config::{self, Paths, Settings, Sources};
use latchkey_core::{Error, ErrorKind, Identity, Latchkey, Ports};

#[derive(Parser, Debug)]
#[command(
    name = "latchkey",
    version,
    about = "Sign in with OpenID Connect through your browser; tokens stay in the OS keychain."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: Global,
}

#[derive(Args, Debug, Default)]
struct Global {
    /// Account name; several can be signed in at once [env: LATCHKEY_PROFILE]
    #[arg(long, global = true, value_name = "NAME")]
    profile: Option<String>,
    /// OpenID Provider issuer URL [env: LATCHKEY_ISSUER]
    #[arg(long, global = true, value_name = "URL")]
    issuer: Option<String>,
    /// OAuth client ID [env: LATCHKEY_CLIENT_ID]
    #[arg(long, global = true, value_name = "ID")]
    client_id: Option<String>,
    /// Scopes to request, space or comma separated [env: LATCHKEY_SCOPES]
    #[arg(long, global = true, value_name = "SCOPES")]
    scopes: Option<String>,
    /// Loopback redirect URI to listen on [env: LATCHKEY_REDIRECT_URI]
    #[arg(long, global = true, value_name = "URL")]
    redirect_uri: Option<String>,
    /// Seconds (or "5m") to wait for the browser sign-in [env: LATCHKEY_LOGIN_TIMEOUT]
    #[arg(long, global = true, value_name = "DURATION")]
    login_timeout: Option<String>,
    /// Extra authorization request parameter, e.g. audience=api (repeatable) [env: LATCHKEY_EXTRA_AUTH_PARAMS]
    #[arg(long = "auth-param", global = true, value_name = "KEY=VALUE")]
    auth_params: Vec<String>,
    /// User config file [env: LATCHKEY_CONFIG; default: <config dir>/latchkey/config.toml]
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<std::path::PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Sign in through the browser and store the session in the OS keychain.
    Login {
        /// Print the identity as JSON.
        #[arg(long)]
        json: bool,
        /// Don't open a browser; print the sign-in link instead.
        #[arg(long)]
        no_browser: bool,
    },
    /// Show who is signed in (refreshing silently if needed). Exit 1 when signed out.
    Status {
        /// Print the identity as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a valid access token, refreshing it if needed.
    Token,
    /// Revoke the session at the provider and forget it.
    Logout,
}

/// `--no-browser`: the link is printed by the login notice instead.
#[derive(Debug)]
struct NoBrowser;
impl latchkey_core::browser::BrowserLauncher for NoBrowser {
    fn open(&self, _: &url::Url) -> Result<(), String> {
        Err("--no-browser".into())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say!("latchkey: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(async {
        tokio::select! {
            code = run(cli) => code,
            _ = tokio::signal::ctrl_c() => {
                say!("latchkey: interrupted; nothing was stored");
                130
            }
        }
    });
    let _ = std::io::stdout().flush();
    // Exit without waiting for a keychain thread that may be stuck in a frozen daemon.
    std::process::exit(code)
}

fn init_logging() {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    // Only our own crates log, and only when asked: dependencies' debug output can include
    // request details we don't control.
    let Some(level) = std::env::var("LATCHKEY_LOG").ok().filter(|l| !l.is_empty()) else {
        return;
    };
    let level = level.parse().unwrap_or(tracing::Level::WARN);
    let filter = Targets::new()
        .with_default(tracing::Level::WARN)
        .with_target("latchkey", level)
        .with_target("latchkey_core", level);
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .finish()
        .with(filter)
        .init();
}

fn settings(g: &Global) -> Result<Settings, Error> {
    let mut s = Settings {
        issuer: g.issuer.clone(),
        client_id: g.client_id.clone(),
        scopes: g.scopes.clone().map(config::Scopes::Text),
        redirect_uri: g.redirect_uri.clone(),
        profile: g.profile.clone(),
        login_timeout: g.login_timeout.clone().map(config::Seconds::Text),
        ..Settings::default()
    };
    if !g.auth_params.is_empty() {
        let joined = g.auth_params.join("&");
        s.extra_auth_params = Some(
            config::parse_params(&joined)
                .map_err(|e| Error::config(format!("--auth-param: {e}")))?,
        );
    }
    Ok(s)
}

fn load(g: &Global, ports: Ports) -> Result<Latchkey, Error> {
    let env = |k: &str| std::env::var(k).ok();
    let mut paths = Paths::standard(&env);
    if let Some(p) = &g.config {
        paths.user_file = Some(p.clone());
    }
    let config = Sources::load(settings(g)?, &paths, &env)?.resolve()?;
    Ok(Latchkey::new(config, ports))
}

async fn run(cli: Cli) -> i32 {
    let mut ports = Ports::system();
    if let Command::Login {
        no_browser: true, ..
    } = cli.command
    {
        ports.browser = Arc::new(NoBrowser);
    }
    let latchkey = match load(&cli.global, ports) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    match cli.command {
        Command::Login { json, .. } => {
            let result = latchkey
                .login_loopback(|sign_in, opened| match opened {
                    Ok(()) => say!(
                        "Opened your browser to sign in. If nothing appeared, open this link:\n\n    {}\n",
                        sign_in.url
                    ),
                    Err(e) => {
                        if !e.message().contains("--no-browser") {
                            say!("latchkey: {e}");
                        }
                        say!("Open this link in a browser on this computer to sign in:\n\n    {}\n", sign_in.url);
                    }
                })
                .await;
            match result {
                Ok(identity) => print_identity(&identity, json),
                Err(e) => fail(&e),
            }
        }
        Command::Status { json } => match latchkey.status().await {
            Ok(identity) => print_identity(&identity, json),
            Err(e) => fail(&e),
        },
        Command::Token => match latchkey.access_token().await {
            Ok(token) => {
                out!("{}", token.secret());
                0
            }
            Err(e) => fail(&e),
        },
        Command::Logout => match latchkey.logout().await {
            Ok(out) if !out.was_signed_in => {
                say!("Not signed in (profile `{}`).", latchkey.config().profile);
                0
            }
            Ok(out) => {
                match (&out.revoked, &out.revocation_problem) {
                    (true, _) => say!("Signed out; the session was revoked at the provider."),
                    (false, Some(p)) => {
                        say!("Signed out on this computer, but the provider was not told: {p}")
                    }
                    (false, None) => say!("Signed out on this computer."),
                }
                0
            }
            Err(e) => fail(&e),
        },
    }
}

fn print_identity(identity: &Identity, json: bool) -> i32 {
    if json {
        match serde_json::to_string_pretty(identity) {
            Ok(s) => out!("{s}"),
            Err(e) => return fail(&Error::config(format!("cannot encode JSON: {e}"))),
        }
        return 0;
    }
    let who = match (&identity.name, &identity.email) {
        (Some(n), Some(e)) => format!("{n} <{e}>"),
        (Some(n), None) => n.clone(),
        (None, Some(e)) => e.clone(),
        (None, None) => identity.subject.clone(),
    };
    out!("Signed in as {who}");
    out!("  issuer:   {}", identity.issuer);
    out!("  subject:  {}", identity.subject);
    out!("  profile:  {}", identity.profile);
    out!("  granted:  {}", identity.scopes.join(" "));
    let denied = identity.denied_scopes();
    if !denied.is_empty() {
        out!("  denied:   {}", denied.join(" "));
    }
    out!(
        "  expires:  {}{}",
        identity.expires_at.to_rfc3339_opts(chrono_secs(), true),
        if identity.refreshable {
            " (refreshes automatically)"
        } else {
            ""
        }
    );
    0
}

fn chrono_secs() -> chrono::SecondsFormat {
    chrono::SecondsFormat::Secs
}

/// Prints the one-line error and picks the exit code.
fn fail(e: &Error) -> i32 {
    say!("latchkey: {e}");
    match e.kind() {
        ErrorKind::NotSignedIn | ErrorKind::SessionExpired => 1,
        _ => 2,
    }
}
