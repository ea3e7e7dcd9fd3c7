//! `latchkey`: sign in through the system browser and hand tokens to scripts.
//!
//! A thin adapter over `latchkey-core`. The contract other tools depend on:
//!
//! | command | success | not signed in | other failure |
//! |---|---|---|---|
//! | `login [--json]` | 0, identity on stdout | – | 2 |
//! | `status [--json]` | 0, identity on stdout | 1 | 2 |
//! | `token` | 0, the access token alone on stdout | 1 (also: an implicit sign-in, no access token) | 2 |
//! | `headers --url URL` | 0, the header lines for calling URL with the token | 1 | 2 |
//! | `logout` | 0 | 0 | 2 |
//! | `accounts [--json]` | 0, every profile with a stored session | 0 (none) | 2 |
//! | `exec-credential` | 0, an ExecCredential on stdout | 1 (non-interactive) | 2 |
//! | `git-credential get` | 0, the credential (nothing for other hosts) | 1 | 2 |
//! | `doctor [--json]` | 0, all checks pass | – | 2 |
//!
//! Errors are one line on stderr: `latchkey: <cause and what to do>`.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

/// `eprintln!` that never panics: a closed stderr must not turn into a crash.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `println!` that never panics (e.g. `latchkey token | head -c 10`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
use latchkey_core::config::{self, Paths, Settings, Sources};
use latchkey_core::{Error, ErrorKind, Latchkey, Ports, Remedy};
use latchkey_identity::LATCHKEY;

mod commands;
mod doctor;
mod git;
mod kube;
mod output;
mod signin;

use output::{accounts, print_identity};
use signin::{NoBrowser, sign_in};

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
    /// Keychain for sessions: auto, secret-service or kernel-keyring (Linux) [env: LATCHKEY_STORE]
    #[arg(long, global = true, value_name = "STORE")]
    store: Option<String>,
    /// Sign-in flow: code, hybrid, implicit or device [env: LATCHKEY_FLOW]
    #[arg(long, global = true, value_name = "FLOW")]
    flow: Option<String>,
    /// Pushed authorization requests (RFC 9126): auto, always or never [env: LATCHKEY_PAR]
    #[arg(long, global = true, value_name = "WHEN")]
    par: Option<String>,
    /// DPoP-bound tokens (RFC 9449): auto, always or never [env: LATCHKEY_DPOP]
    #[arg(long, global = true, value_name = "WHEN")]
    dpop: Option<String>,
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
        /// Sign in on another device with a code (RFC 8628); the same as `--flow device`.
        #[arg(long)]
        device: bool,
    },
    /// Show who is signed in (refreshing silently if needed). Exit 1 when signed out.
    Status {
        /// Print the identity as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a valid access token, refreshing it if needed.
    Token {
        /// Refresh first unless the token stays valid this long, e.g. 300 or 5m.
        #[arg(long, value_name = "DURATION")]
        min_valid: Option<String>,
        /// Refresh even when the token is still valid.
        #[arg(long)]
        force_refresh: bool,
        /// Print {"access_token", "token_type", "expires_at"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the header lines for calling a resource with the access token, refreshing it if
    /// needed: `Authorization: Bearer <token>`, or for a DPoP-bound token `Authorization: DPoP
    /// <token>` and a `DPoP` proof for that method and URL. Use: curl -H @<(latchkey headers
    /// --url "$u") "$u"
    Headers {
        /// The resource's URL (the proof covers it without query and fragment).
        #[arg(long, value_name = "URL")]
        url: String,
        /// The request's method.
        #[arg(long, value_name = "METHOD", default_value = "GET")]
        method: String,
    },
    /// List every profile with a stored session (no network).
    Accounts {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// kubectl's exec credential plugin (client.authentication.k8s.io): prints an ExecCredential.
    ExecCredential {
        /// Which token kubectl sends: the ID token (what the Kubernetes OIDC authenticator
        /// verifies) or the access token.
        #[arg(long, value_enum, default_value_t = kube::Which::Id)]
        token: kube::Which,
    },
    /// git's credential helper: `get` answers for the hosts in `git_hosts`; `erase` makes the next
    /// `get` refresh; `store` does nothing.
    GitCredential {
        #[arg(value_enum)]
        operation: git::Operation,
    },
    /// Check the configuration, provider, clock, keychain and browser, and say how to fix what
    /// fails. Exit 0 when all is well, 2 otherwise.
    Doctor {
        /// Print the checks as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the man page (roff), generated from these same definitions.
    #[command(hide = true)]
    Manpage,
    /// Revoke the session at the provider and forget it.
    Logout {
        /// Also sign out of the provider: open its end-session page in the browser (OpenID
        /// Connect RP-Initiated Logout).
        #[arg(long)]
        provider: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Generated from the clap definition; they need no configuration.
    match &cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "latchkey", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Manpage => {
            let cmd = <Cli as clap::CommandFactory>::command();
            return match clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    say!("latchkey: cannot write the man page: {e}");
                    ExitCode::from(2)
                }
            };
        }
        _ => {}
    }
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
        // The builder's own ceiling is INFO: without this, debug and trace were silently dropped.
        .with_max_level(tracing::Level::TRACE)
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
        store: g.store.clone(),
        flow: g.flow.clone(),
        par: g.par.clone(),
        dpop: g.dpop.clone(),
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

fn sources(g: &Global) -> Result<Sources, Error> {
    let env = |k: &str| std::env::var(k).ok();
    let mut paths = Paths::standard(&LATCHKEY, &env);
    if let Some(p) = &g.config {
        paths.user_file = Some(p.clone());
    }
    let sources = Sources::load(settings(g)?, &paths, &env)?;
    let _ = PROFILE.set(sources.profile());
    Ok(sources)
}

/// The selected profile, for advice that names a command (set once the sources are read).
static PROFILE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The core's one-line message plus what to do about it, in this CLI's words: the core says what
/// happened and leaves the remedy to the front end ([`latchkey_core::Remedy`]).
pub(crate) fn explained(e: &Error) -> String {
    let profile = match PROFILE.get() {
        Some(p) if p != config::DEFAULT_PROFILE => format!(" --profile {p}"),
        _ => String::new(),
    };
    match e.remedy() {
        Some(Remedy::SignIn) => format!("{e}; run `latchkey login{profile}`"),
        Some(Remedy::SignOutAndIn) => {
            format!("{e}; run `latchkey logout{profile}` and sign in again")
        }
        Some(Remedy::UseDevice) => {
            format!("{e}; sign in on another device with `latchkey login --device{profile}`")
        }
        _ => e.to_string(),
    }
}

fn load(g: &Global, ports: Ports) -> Result<Latchkey, Error> {
    Ok(Latchkey::new(sources(g)?.resolve()?, ports))
}

/// `--min-valid`: whole seconds, or a number with `s`, `m` or `h`.
fn parse_min_valid(text: &str) -> Result<std::time::Duration, Error> {
    let t = text.trim();
    let (num, unit) = match t.char_indices().last() {
        Some((i, c @ ('s' | 'm' | 'h'))) => (&t[..i], c),
        _ => (t, 's'),
    };
    let n: u64 = num.trim().parse().map_err(|_| {
        Error::config(format!(
            "--min-valid: `{}` is not a duration; use seconds like 300, or 5m, 1h",
            t.escape_debug()
        ))
    })?;
    let secs = n.saturating_mul(match unit {
        'h' => 3600,
        'm' => 60,
        _ => 1,
    });
    Ok(std::time::Duration::from_secs(secs))
}

async fn run(mut cli: Cli) -> i32 {
    // `login --device` is `--flow device` (a flag, so a managed lock on `flow` still applies).
    if let Command::Login { device: true, .. } = cli.command {
        match cli.global.flow.as_deref() {
            None | Some("device") => cli.global.flow = Some("device".into()),
            Some(other) => {
                return fail(&Error::config(format!(
                    "--device and --flow {} disagree; use one of them",
                    other.escape_debug()
                )));
            }
        }
    }
    let mut ports = Ports::system(&LATCHKEY);
    if let Command::Login {
        no_browser: true, ..
    } = cli.command
    {
        ports.browser = Arc::new(NoBrowser);
    }
    if let Command::Accounts { json } = cli.command {
        return accounts(&cli.global, json).await;
    }
    if let Command::Doctor { json } = cli.command {
        return doctor::doctor(sources(&cli.global), json).await;
    }
    let latchkey = match load(&cli.global, ports) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    match cli.command {
        Command::Login { json, .. } => match sign_in(&latchkey).await {
            Ok(identity) => print_identity(&identity, json),
            Err(e) => fail(&e),
        },
        Command::ExecCredential { token } => kube::exec_credential(&latchkey, token).await,
        Command::GitCredential { operation } => git::credential(&latchkey, operation).await,
        Command::Doctor { .. } => 0, // answered above
        Command::Status { json } => match latchkey.status().await {
            Ok(identity) => print_identity(&identity, json),
            Err(e) => fail(&e),
        },
        Command::Token {
            min_valid,
            force_refresh,
            json,
        } => commands::token(&latchkey, min_valid.as_deref(), force_refresh, json).await,
        Command::Headers { url, method } => commands::headers(&latchkey, &method, &url).await,
        Command::Accounts { .. } | Command::Completions { .. } | Command::Manpage => 0,
        Command::Logout { provider } => commands::logout(&latchkey, provider).await,
    }
}

/// kubectl and git send an access token as a bearer token only: a DPoP-bound one (RFC 9449)
/// would be refused by the server, so it is not handed out.
pub(crate) fn bearer_only(info: &latchkey_core::TokenInfo, tool: &str) -> Result<(), Error> {
    if info.token_type.eq_ignore_ascii_case("dpop") {
        return Err(Error::config(format!(
            "the access token is DPoP-bound (RFC 9449), and {tool} can only send a Bearer token; set dpop = \"never\" for this profile and sign in again"
        )));
    }
    Ok(())
}

/// Prints the one-line error and picks the exit code.
fn fail(e: &Error) -> i32 {
    say!("latchkey: {}", explained(e));
    match e.kind() {
        ErrorKind::NotSignedIn | ErrorKind::SessionExpired | ErrorKind::NoAccessToken => 1,
        _ => 2,
    }
}
