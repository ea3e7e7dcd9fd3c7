//! LemonLDAP::NG (Debian's 2.16) as a second real provider: `tests/lemonldap/start` runs its
//! portal behind an nginx of its own on an ephemeral port, with a generated configuration.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{Sandbox, Value, root, spawn_ready, terminate};

/// A token endpoint answer fit for a failure message: its error fields and the names of the
/// other members, never a token.
pub fn shown(body: &Value) -> String {
    match body.as_object() {
        Some(o) => o
            .iter()
            .map(|(k, v)| match k.as_str() {
                "error" | "error_description" | "token_type" | "expires_in" | "scope" => {
                    format!("{k}={v}")
                }
                _ => k.clone(),
            })
            .collect::<Vec<_>>()
            .join(" "),
        None => format!("{body}"),
    }
}

/// The Demo backend's users: the password is the login.
pub const LEMON_USER: &str = "dwho";
pub const LEMON_NAME: &str = "Doctor Who";
pub const LEMON_EMAIL: &str = "dwho@badwolf.org";

/// How to start it (flags of `tests/lemonldap/start`).
#[derive(Debug, Default, Clone)]
pub struct LemonOptions {
    /// `oidcRPMetaDataOptionsAccessTokenExpiration`, seconds.
    pub access_token_ttl: Option<u32>,
    /// A persistent SSO cookie of this lifetime, so a later browser run on the same profile is
    /// signed in.
    pub cookie_expiration: Option<u32>,
    /// `offline_access` ignored: every refresh token is tied to the SSO session.
    pub no_offline: bool,
}

/// A running LemonLDAP::NG. Stopped (SIGTERM: nginx, the FastCGI server, its directory) on drop.
#[derive(Debug)]
pub struct Lemon {
    child: Child,
    /// `http://127.0.0.1:<port>/`, with the slash LemonLDAP::NG puts at the end.
    pub issuer: String,
    pub port: u16,
    /// The loopback port registered as `http://127.0.0.1:<port>/callback` (exact match only).
    pub redirect_port: u16,
    /// Its temporary directory (configuration, sessions, logs).
    pub dir: PathBuf,
    pub log: PathBuf,
    _logdir: tempfile::TempDir,
}

impl Lemon {
    pub fn start(opts: LemonOptions) -> Self {
        crate::require_environment();
        assert!(
            std::path::Path::new("/usr/sbin/llng-fastcgi-server").exists(),
            "LemonLDAP::NG is not installed: run tests/scripts/install-deps (tests/run does)"
        );
        let logdir = tempfile::tempdir().unwrap();
        let log = logdir.path().join("lemonldap.log");
        // Bound and released: the start script registers it, Latchkey binds it at sign-in.
        let redirect_port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(root().join("tests/lemonldap/start"));
        cmd.args(["--redirect-port", &redirect_port.to_string()])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(ttl) = opts.access_token_ttl {
            cmd.args(["--access-token-ttl", &ttl.to_string()]);
        }
        if let Some(s) = opts.cookie_expiration {
            cmd.args(["--cookie-expiration", &s.to_string()]);
        }
        if opts.no_offline {
            cmd.arg("--no-offline");
        }
        let (child, issuer) = spawn_ready(cmd, &log, "LemonLDAP::NG");
        let port = issuer
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        let dir = text
            .lines()
            .find_map(|l| l.strip_prefix("[lemonldap] DIR "))
            .map(PathBuf::from)
            .expect("the start script names its directory");
        Self {
            child,
            issuer,
            port,
            redirect_port,
            dir,
            log,
            _logdir: logdir,
        }
    }

    /// The redirect URI Latchkey must be configured with here.
    pub fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.redirect_port)
    }

    /// A sandboxed user for this provider: the Demo user `dwho`, the registered fixed-port
    /// redirect.
    pub fn sandbox(&self) -> Sandbox {
        let mut sb = Sandbox::new(&self.issuer);
        sb.set("DRIVER_USER", LEMON_USER)
            .set("DRIVER_PASSWORD", LEMON_USER)
            .set("LATCHKEY_REDIRECT_URI", &self.redirect_uri());
        sb
    }

    /// A form POST to the token endpoint as a public client, straight from the test:
    /// `(HTTP status, JSON body)`.
    pub fn token_request(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let mut body = form_encode(form);
        body.push_str("&client_id=latchkey-desktop");
        self.request(
            "POST",
            "/oauth2/token",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &body,
        )
    }

    /// A refresh_token grant with `refresh_token`, as any client could send it.
    pub fn refresh_at_provider(&self, refresh_token: &str) -> (u16, Value) {
        self.token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
    }

    /// The userinfo endpoint with an access token.
    pub fn userinfo(&self, access_token: &str) -> (u16, Value) {
        self.request(
            "GET",
            "/oauth2/userinfo",
            &[("Authorization", &format!("Bearer {access_token}"))],
            "",
        )
    }

    pub fn discovery(&self) -> Value {
        self.request("GET", "/.well-known/openid-configuration", &[], "")
            .1
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, Value) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.port,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        write!(s, "{head}\r\n{body}").unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let out = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap();
        // nginx may answer chunked: the JSON is between the first '{' and the last '}'.
        let json = match (body.find('{'), body.rfind('}')) {
            (Some(a), Some(b)) if a < b => {
                serde_json::from_str(&body[a..=b]).unwrap_or(Value::Null)
            }
            _ => Value::Null,
        };
        (status, json)
    }

    /// Deletes sessions from the portal's store with LemonLDAP::NG's own admin tool
    /// (`lemonldap-ng-sessions delete`), as an administrator would: `ids`, or those matching
    /// `where_` (`field=value`). The portal's local session cache (Cache::FileCache, 10 min) would
    /// keep serving them, so it is emptied too.
    pub fn delete_sessions(&self, where_: Option<&str>, ids: &[&str]) {
        let mut cmd = self.sessions_tool("delete");
        if let Some(w) = where_ {
            cmd.args(["--where", w]);
        }
        cmd.args(ids);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "lemonldap-ng-sessions delete: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_dir_all(self.dir.join("cache/lemonldap-ng-sessions"));
    }

    /// The ids of the sessions matching `field=value`, from `lemonldap-ng-sessions search`.
    pub fn session_ids(&self, where_: &str) -> Vec<String> {
        let out = self
            .sessions_tool("search")
            .args(["--where", where_, "--id-only"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    /// `lemonldap-ng-sessions ACTION` on this portal's configuration. The tool switches to
    /// www-data unless told otherwise; the store belongs to whoever runs the portal (nobody when
    /// the tests run as root, see the start script).
    fn sessions_tool(&self, action: &str) -> Command {
        let mut cmd = Command::new("/usr/share/lemonldap-ng/bin/lemonldap-ng-sessions");
        let owner = std::fs::metadata(self.dir.join("sessions")).unwrap();
        if std::os::unix::fs::MetadataExt::uid(&owner) == 65534 {
            cmd.args(["-u", "nobody", "-g", "nogroup"]);
        }
        cmd.arg(action)
            .env("LLNG_DEFAULTCONFFILE", self.dir.join("lemonldap-ng.ini"))
            .env("LLNG_DEFAULTLOGGER", "Lemonldap::NG::Common::Logger::Std");
        cmd
    }

    /// The portal's own log (FastCGI server), to check for lines. Never print it whole: at
    /// warn level it names the codes and tokens it cannot find.
    pub fn portal_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("logs/fastcgi.log")).unwrap_or_default()
    }

    /// SIGTERM, so the script stops nginx and the FastCGI server it started (a SIGKILL would
    /// orphan them) and removes its directory.
    pub fn stop(&mut self) {
        terminate(&mut self.child);
    }
}

impl Drop for Lemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `application/x-www-form-urlencoded` (WHATWG URL §5.2): unreserved bytes as is, the rest %XX.
fn form_encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}
