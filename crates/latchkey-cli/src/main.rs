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
use latchkey_core::store::StoreKind;
use latchkey_core::{
    Error, ErrorKind, FrontEnd, Identity, Latchkey, LoginNotice, Ports, Remedy, SignInRoute,
};
use latchkey_identity::LATCHKEY;

mod doctor;
mod git;
mod kube;

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

/// `accounts`: each configured profile's stored identity, read from the keychain only.
async fn accounts(g: &Global, json: bool) -> i32 {
    let sources = match sources(g) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let selected = sources.profile();
    let ports = Ports::system(&LATCHKEY);
    let mut rows = Vec::new();
    let mut code = 0;
    for profile in sources.profiles() {
        // A profile without a usable configuration cannot have signed in.
        let Ok(config) = sources.resolve_profile(&profile) else {
            continue;
        };
        match Latchkey::new(config, ports.clone()).current().await {
            Ok(Some(identity)) => rows.push((profile == selected, identity)),
            Ok(None) => {}
            // One unreadable profile does not hide the others.
            Err(e) => {
                say!("latchkey: profile `{profile}`: {}", explained(&e));
                code = 2;
            }
        }
    }
    if json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|(default, id)| {
                serde_json::json!({
                    "profile": id.profile,
                    "default": default,
                    "issuer": id.issuer,
                    "subject": id.subject,
                    "name": id.name,
                    "email": id.email,
                    "expires_at": id.expires_at.to_rfc3339_opts(chrono_secs(), true),
                    "refreshable": id.refreshable,
                    "store": id.store,
                })
            })
            .collect();
        match serde_json::to_string_pretty(&list) {
            Ok(s) => out!("{s}"),
            Err(e) => return fail(&Error::config(format!("cannot encode JSON: {e}"))),
        }
        return code;
    }
    if rows.is_empty() && code == 0 {
        say!("No stored sessions; sign in with `latchkey login`.");
    }
    for (default, id) in &rows {
        let who = id.name.as_deref().unwrap_or(&id.subject);
        out!(
            "{} {:<16} {who} ({}) at {}",
            if *default { "*" } else { " " },
            id.profile,
            id.subject,
            id.issuer
        );
    }
    code
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
        } => {
            let min_valid = match min_valid.as_deref().map(parse_min_valid).transpose() {
                Ok(d) => d.unwrap_or_default(),
                Err(e) => return fail(&e),
            };
            let options = latchkey_core::TokenOptions::new(min_valid, force_refresh);
            match latchkey.token(options).await {
                Ok(info) if json => {
                    out!(
                        "{}",
                        serde_json::json!({
                            "access_token": info.token.secret(),
                            "token_type": info.token_type,
                            "expires_at": info.expires_at.to_rfc3339_opts(chrono_secs(), true),
                        })
                    );
                    0
                }
                Ok(info) => {
                    out!("{}", info.token.secret());
                    0
                }
                Err(e) => fail(&e),
            }
        }
        Command::Headers { url, method } => {
            match latchkey.resource_headers(&method, &url).await {
                Ok(h) => {
                    // One write: a reader of a process substitution sees all lines or none.
                    let mut text = format!("Authorization: {}\n", h.authorization);
                    if let Some(proof) = &h.dpop {
                        text.push_str(&format!("DPoP: {proof}\n"));
                    }
                    let _ = std::io::stdout().write_all(text.as_bytes());
                    0
                }
                Err(e) => fail(&e),
            }
        }
        Command::Accounts { .. } | Command::Completions { .. } | Command::Manpage => 0,
        Command::Logout { provider } => match latchkey.logout().await {
            Ok(out) if !out.was_signed_in => {
                say!("Not signed in (profile `{}`).", latchkey.config().profile);
                0
            }
            Ok(out) if out.damaged => {
                say!("Signed out: the stored session was unreadable and has been removed.");
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
                if provider {
                    end_provider_session(&latchkey, out.end_session_url.as_ref());
                }
                0
            }
            Err(e) => fail(&e),
        },
    }
}

/// `logout --provider`: the provider's end-session URL (RP-Initiated Logout 1.0 §2, with
/// `id_token_hint` and, when configured, `post_logout_redirect_uri`) in the browser. The URL
/// carries the ID token, so it is never printed.
fn end_provider_session(latchkey: &Latchkey, url: Option<&url::Url>) {
    match url.map(|u| latchkey.open_browser(u)) {
        Some(Ok(())) => say!("Opened your browser to sign you out of the provider too."),
        Some(Err(e)) => say!("latchkey: could not sign you out of the provider: {e}"),
        None => say!(
            "The provider offers no way to sign out of it from here (no end-session endpoint)."
        ),
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
    if let Some(store) = identity.store {
        out!("  stored:   {store}");
    }
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
    print_grants(&identity.grants);
    0
}

/// The grants by kind, each value with where it was read: `  Roles: admin (access token), ...`.
fn print_grants(grants: &latchkey_core::Grants) {
    for kind in latchkey_core::GrantKind::ALL {
        let values: Vec<String> = grants
            .of_kind(kind)
            .map(|g| match &g.name {
                Some(name) => format!("{name} [{}] ({})", g.value, g.source.label()),
                None => format!("{} ({})", g.value, g.source.label()),
            })
            .collect();
        if kind == latchkey_core::GrantKind::Group && grants.groups_overage {
            out!("  {}: too many groups to list", kind.label());
        }
        if !values.is_empty() {
            out!("  {}: {}", kind.label(), values.join(", "));
        }
    }
    if grants.omitted > 0 {
        out!("  ({} more values not shown)", grants.omitted);
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

fn chrono_secs() -> chrono::SecondsFormat {
    chrono::SecondsFormat::Secs
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
async fn sign_in(latchkey: &Latchkey) -> Result<Identity, Error> {
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
