//! Harness for the end-to-end tests: starts the dev provider, runs the real `latchkey` binary in
//! a sandboxed HOME with the headless-Chromium driver as `$BROWSER`, and reads the real Secret
//! Service with `secret-tool`.
//!
//! The tests expect to run inside `tests/scripts/with-keyring` (a private D-Bus session with an
//! unlocked gnome-keyring) after `npm ci` in `tests/`; `tests/run` does all of that.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

pub use serde_json::Value;

mod lemon;
pub use lemon::{LEMON_EMAIL, LEMON_NAME, LEMON_USER, Lemon, LemonOptions, shown};
mod running;
pub use running::{Running, approve_device};

pub const CLIENT_ID: &str = "latchkey-desktop";
pub const SCOPES: &str = "openid profile email offline_access api:read";

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The CLI under test: `$LATCHKEY_BIN`, or the workspace's debug build.
pub fn latchkey_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LATCHKEY_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let bin = target.join("debug").join("latchkey");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p latchkey-cli` (tests/run does)",
        bin.display()
    );
    bin
}

/// Fails early, with the fix, when the environment isn't the test one.
pub fn require_environment() {
    assert!(
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
            && std::env::var_os("LATCHKEY_IN_KEYRING").is_some(),
        "end-to-end tests need the private keyring session: run them through tests/run"
    );
    assert!(
        root().join("tests/node_modules/oidc-provider").exists(),
        "tests/node_modules is missing: run `npm ci` in tests/ (tests/run does)"
    );
}

/// A running dev provider. Killed on drop.
#[derive(Debug)]
pub struct Provider {
    child: Child,
    pub issuer: String,
    pub port: u16,
    pub log: PathBuf,
    /// The CA the admin API's HTTPS is checked against, for a provider started with TLS.
    ca: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Provider {
    /// The provider over HTTPS with `ca`'s server certificate: issuer `https://127.0.0.1:<port>`.
    pub fn start_tls(env: &[(&str, &str)], ca: &PrivateCa) -> Self {
        let (cert, key) = (ca.cert_file(), ca.key_file());
        let mut env = env.to_vec();
        env.push(("DEV_TLS_CERT", cert.to_str().unwrap()));
        env.push(("DEV_TLS_KEY", key.to_str().unwrap()));
        let mut provider = Self::start(&env);
        assert!(
            provider.issuer.starts_with("https://"),
            "{}",
            provider.issuer
        );
        provider.ca = Some(ca.ca_file());
        provider
    }

    pub fn start(env: &[(&str, &str)]) -> Self {
        require_environment();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("provider.log");
        let mut cmd = Command::new("node");
        cmd.arg(root().join("tests/provider/server.mjs"))
            .args(["--port", "0"])
            .env("DEV_QUIET", "1")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (child, issuer) = spawn_ready(cmd, &log, "the dev provider");
        let port = issuer.rsplit(':').next().unwrap().parse().unwrap();
        Self {
            child,
            issuer,
            port,
            log,
            ca: None,
            _dir: dir,
        }
    }

    pub fn get(&self, path: &str) -> Value {
        self.admin("GET", path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> Value {
        self.admin("POST", path, Some(body))
    }

    fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        match &self.ca {
            None => http_json(self.port, method, path, body),
            Some(ca) => https_json(&self.issuer, ca, method, path, body),
        }
    }

    /// `/__dev/requests`: `(method, path, peer address)` of each request outside `/__dev/`.
    pub fn requests(&self) -> Vec<(String, String, String)> {
        let text = |v: &Value, k: &str| v[k].as_str().unwrap().to_owned();
        self.get("/__dev/requests")
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (text(r, "method"), text(r, "path"), text(r, "peer")))
            .collect()
    }

    pub fn stats(&self) -> Value {
        self.get("/__dev/stats")
    }

    pub fn refreshes(&self) -> u64 {
        self.stats()["token_requests"]["refresh_token"]
            .as_u64()
            .unwrap_or(0)
    }

    pub fn code_redemptions(&self) -> u64 {
        self.stats()["token_requests"]["authorization_code"]
            .as_u64()
            .unwrap_or(0)
    }

    pub fn is_active(&self, token: &str) -> bool {
        self.post("/__dev/introspect", serde_json::json!({ "token": token }))["active"]
            == Value::Bool(true)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts a test server (stdout piped, stderr to `log`) and waits for its `READY <url>` line.
///
/// A start takes about half a second. CI once saw two starts print nothing for 60 s while the
/// rest of the suite ran normally, so a start that stalls for 30 s is diagnosed on stderr (the
/// server's start-up stamps, its process state and the load) and tried once more; a second stall
/// fails the test with the same diagnosis.
pub(crate) fn spawn_ready(mut cmd: Command, log: &Path, what: &str) -> (Child, String) {
    const STALL: Duration = Duration::from_secs(30);
    let mut diagnosis = String::new();
    for attempt in 1..=2 {
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        match rx.recv_timeout(STALL) {
            Ok(line) => {
                let url = line
                    .strip_prefix("READY ")
                    .expect("READY line")
                    .trim()
                    .to_owned();
                return (child, url);
            }
            Err(e) => {
                let state = process_state(child.id());
                // Not left running: an orphaned server outlives the test run. SIGTERM first, so
                // a server with children of its own (LemonLDAP::NG's nginx) stops them too.
                terminate(&mut child);
                let status = child.wait();
                // The log lives in a temporary directory a panic removes: print it, not its path.
                let stderr = std::fs::read_to_string(log).unwrap_or_default();
                let why = match e {
                    std::sync::mpsc::RecvTimeoutError::Timeout => {
                        format!("printed no READY line in {} s", STALL.as_secs())
                    }
                    std::sync::mpsc::RecvTimeoutError::Disconnected => {
                        format!("exited before READY ({status:?})")
                    }
                };
                diagnosis = format!(
                    "{what} {why} (attempt {attempt}; {state}; load {}); its stderr:\n{stderr}",
                    std::fs::read_to_string("/proc/loadavg")
                        .unwrap_or_default()
                        .trim()
                );
                eprintln!("{diagnosis}");
                if matches!(e, std::sync::mpsc::RecvTimeoutError::Disconnected) {
                    break;
                }
            }
        }
    }
    panic!("{diagnosis}");
}

/// SIGTERM, up to 10 s to exit, then SIGKILL.
pub(crate) fn terminate(child: &mut Child) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A stalled child's scheduler state, kernel wait channel and CPU time, from /proc.
fn process_state(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    // Fields after the parenthesised command name: state is the 1st, utime and stime the 12th
    // and 13th (clock ticks, usually 100 per second).
    let rest: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| rest.get(i).copied().unwrap_or("?");
    format!(
        "state {} wchan {} utime {} stime {} ticks",
        field(0),
        if wchan.is_empty() { "?" } else { &wchan },
        field(11),
        field(12)
    )
}

/// A minimal HTTP/1.1 client for the provider's admin API.
pub fn http_json(port: u16, method: &str, path: &str, body: Option<Value>) -> Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (_, body) = out.split_once("\r\n\r\n").unwrap();
    // Tolerate chunked encoding: take the JSON between the first '{'/'[' and the last '}'/']'.
    let start = body.find(['{', '[']).unwrap_or(0);
    let end = body.rfind(['}', ']']).map(|i| i + 1).unwrap_or(body.len());
    serde_json::from_str(&body[start..end])
        .unwrap_or_else(|e| panic!("bad JSON from {path}: {e}: {body}"))
}

/// The admin API over HTTPS, with curl checking the server against `ca` and never using a proxy.
fn https_json(issuer: &str, ca: &Path, method: &str, path: &str, body: Option<Value>) -> Value {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--fail",
        "--noproxy",
        "*",
        "--max-time",
        "30",
        "-X",
        method,
    ])
    .arg("--cacert")
    .arg(ca)
    .args(["-H", "content-type: application/json"]);
    if let Some(body) = body {
        cmd.arg("--data-binary").arg(body.to_string());
    }
    let out = cmd.arg(format!("{issuer}{path}")).output().unwrap();
    assert!(
        out.status.success(),
        "curl {method} {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad JSON from {path}: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A private CA, as a company's IT runs for TLS inspection, and a server certificate it issued for
/// 127.0.0.1 (SAN `IP:127.0.0.1`), made with openssl for one test. Nothing trusts it until a test
/// says so.
#[derive(Debug)]
pub struct PrivateCa {
    pub dir: tempfile::TempDir,
}

/// The CA's subject, which its certificates name as their issuer.
pub const CA_SUBJECT: &str = "/O=Latchkey Test Corp/CN=Latchkey Test Inspection CA";

impl PrivateCa {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .stdin(Stdio::null())
                .output()
                .expect("openssl must be installed");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        // `req -x509` uses the v3_ca section: basicConstraints critical CA:TRUE.
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            CA_SUBJECT,
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ]);
        Self { dir }
    }

    /// The CA certificate (PEM): what IT hands out to be trusted.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn cert_file(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

impl Default for PrivateCa {
    fn default() -> Self {
        Self::new()
    }
}

/// Debian's tinyproxy on 127.0.0.1, a real HTTP proxy with a config of the test's own: it takes
/// clients from 127.0.0.1 only, allows `CONNECT` to `connect_ports` (by default it allows only
/// 443 and 563), connects out **from 127.0.0.2** (so a server sees which requests came through
/// it), and logs at Info into its own directory. Runs in the foreground (`-d`); killed on drop.
#[derive(Debug)]
pub struct Tinyproxy {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The address tinyproxy connects out from.
pub const PROXY_SOURCE: &str = "127.0.0.2";

impl Tinyproxy {
    pub fn start(connect_ports: &[u16]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("tinyproxy.log");
        // tinyproxy takes no port 0: take a free port and let it go. Another process may grab it
        // in between, so a start that fails is tried again on a new port.
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut conf = format!(
                "Port {port}\nListen 127.0.0.1\nBind {PROXY_SOURCE}\nAllow 127.0.0.1\n\
                 Timeout 30\nMaxClients 32\nLogLevel Info\nLogFile \"{}\"\n",
                log.display()
            );
            for p in connect_ports {
                conf.push_str(&format!("ConnectPort {p}\n"));
            }
            let conf_file = dir.path().join("tinyproxy.conf");
            std::fs::write(&conf_file, conf).unwrap();
            let _ = std::fs::remove_file(&log);
            let mut child = Command::new("tinyproxy")
                .arg("-d")
                .arg("-c")
                .arg(&conf_file)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
                .spawn()
                .expect("tinyproxy must be installed (tests/scripts/install-deps)");
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains("Accepting connections") {
                    return Self {
                        child,
                        port,
                        log,
                        _dir: dir,
                    };
                }
                if let Ok(Some(status)) = child.try_wait() {
                    eprintln!("tinyproxy on port {port} exited ({status}): {text}");
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("tinyproxy did not start in 15 s: {text}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("tinyproxy failed to start three times; see the messages above");
    }

    /// `http://127.0.0.1:<port>`, for `HTTPS_PROXY`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The request lines of the `CONNECT`s it handled, as logged: `CONNECT 127.0.0.1:443 HTTP/1.1`.
    pub fn connects(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                l.split_once("): CONNECT ")
                    .map(|(_, r)| format!("CONNECT {r}"))
            })
            .collect()
    }

    /// Every request line it logged (`GET http://…`, `CONNECT …`).
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("CONNECT ") && l.contains(" Request (file descriptor "))
            .filter_map(|l| l.split_once("): ").map(|(_, r)| r.to_owned()))
            .collect()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sandboxed user: its own HOME, config and cache, the provider's settings, and the browser
/// driver as `$BROWSER`.
#[derive(Debug)]
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub issuer: String,
    env: Vec<(String, String)>,
    /// What runs the CLI: empty for the Linux build, or Wine and the Windows build.
    runner: Vec<PathBuf>,
    /// When the sandbox was made, less a second: file times come from a coarse clock.
    started: SystemTime,
}

impl Sandbox {
    pub fn new(issuer: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let driver = root().join("tests/browser/driver.mjs");
        let mut env = vec![
            ("HOME".to_string(), home.display().to_string()),
            (
                "XDG_CONFIG_HOME".into(),
                home.join(".config").display().to_string(),
            ),
            (
                "XDG_CACHE_HOME".into(),
                home.join(".cache").display().to_string(),
            ),
            ("LATCHKEY_ISSUER".into(), issuer.to_owned()),
            ("LATCHKEY_CLIENT_ID".into(), CLIENT_ID.into()),
            ("LATCHKEY_SCOPES".into(), SCOPES.into()),
            ("BROWSER".into(), format!("node {}", driver.display())),
            (
                "DRIVER_LOG".into(),
                dir.path().join("driver.log").display().to_string(),
            ),
            (
                "DRIVER_SCREENSHOT_DIR".into(),
                dir.path().join("shots").display().to_string(),
            ),
        ];
        for var in ["PATH", "DBUS_SESSION_BUS_ADDRESS", "LATCHKEY_IN_KEYRING"] {
            if let Ok(v) = std::env::var(var) {
                env.push((var.into(), v));
            }
        }
        Self {
            dir,
            issuer: issuer.to_owned(),
            env,
            runner: Vec::new(),
            started: SystemTime::now() - Duration::from_secs(1),
        }
    }

    /// A sandbox whose CLI is the Windows build under Wine (`tests/cross/run e2e` sets
    /// `LATCHKEY_WINDOWS_EXE` and `LATCHKEY_WINE`), in a Wine prefix of its own: its Credential
    /// Manager, `%APPDATA%` and `%LOCALAPPDATA%`. `$BROWSER` is the same Linux driver, which Wine
    /// starts as a Unix program (a `Z:` path).
    pub fn windows(issuer: &str) -> Self {
        let var = |name: &str| {
            PathBuf::from(std::env::var_os(name).unwrap_or_else(|| {
                panic!("{name} is not set: run the Windows tests through tests/cross/run e2e")
            }))
        };
        let (exe, wine) = (var("LATCHKEY_WINDOWS_EXE"), var("LATCHKEY_WINE"));
        let mut sb = Self::new(issuer);
        let prefix = sb.dir.path().join("wine");
        sb.set("WINEPREFIX", &prefix.display().to_string())
            .set("WINEDEBUG", "-all");
        let boot = Command::new(&wine)
            .args(["wineboot", "--init"])
            .env("WINEPREFIX", &prefix)
            .env("WINEDEBUG", "-all")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("wineboot");
        sb.wine_settle();
        assert!(prefix.join("system.reg").exists(), "wineboot: {boot}");
        let node = String::from_utf8(
            Command::new("sh")
                .args(["-c", "command -v node"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let driver = root().join("tests/browser/driver.mjs");
        sb.set(
            "BROWSER",
            &format!("Z:{} {}", node.trim(), driver.display()),
        );
        sb.runner = vec![wine, exe];
        sb
    }

    /// Waits until the Wine prefix's server has exited, which writes its registry (where the
    /// Credential Manager lives) to disk.
    pub fn wine_settle(&self) {
        let server = std::env::var_os("LATCHKEY_WINESERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/lib/wine/wineserver64"));
        let prefix = self.wine_prefix();
        let status = Command::new(server)
            .arg("-w")
            .env("WINEPREFIX", &prefix)
            .status()
            .expect("wineserver -w");
        assert!(status.success(), "wineserver -w: {status}");
    }

    /// The Wine prefix of a [`windows`](Self::windows) sandbox.
    pub fn wine_prefix(&self) -> PathBuf {
        self.dir.path().join("wine")
    }

    /// The targets of the generic credentials in the prefix's Credential Manager, read from the
    /// registry file Wine keeps them in (`HKCU\Software\Wine\Credential Manager`; the secrets
    /// themselves are encrypted there). Call [`wine_settle`](Self::wine_settle) first.
    pub fn wine_credentials(&self) -> Vec<String> {
        let reg = std::fs::read_to_string(self.wine_prefix().join("user.reg")).unwrap_or_default();
        let key = "[Software\\\\Wine\\\\Credential Manager\\\\";
        reg.lines()
            .filter_map(|l| l.strip_prefix(key))
            .filter_map(|l| l.split_once(']'))
            .map(|(name, _)| name.replace("\\\\", "\\"))
            .collect()
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Sets (or replaces) an environment variable for later commands.
    pub fn set(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    /// Removes an environment variable for later commands.
    pub fn unset(&mut self, key: &str) -> &mut Self {
        self.env.retain(|(k, _)| k != key);
        self
    }

    /// The kernel keyring key that holds an entry of the session (`persistent-keyring(7)`).
    pub fn kernel_entry(&self, profile: &str) -> Option<KernelKey> {
        KernelKey::find(&format!("latchkey:{}", self.entry_name(profile)))
    }

    /// The stored session, read from the kernel keyring with `keyctl`.
    pub fn kernel_session(&self, profile: &str) -> Option<Value> {
        read_vault(&self.entry_name(profile), |name| {
            KernelKey::find(&format!("latchkey:{name}")).map(|k| k.payload())
        })
    }

    /// The cached access token's key in the kernel user keyring.
    pub fn token_cache_entry(&self, profile: &str) -> Option<KernelKey> {
        let out = Command::new("sh")
            .args(["-c", "printf %s \"$1\" | sha256sum | cut -c1-32", "sh"])
            .arg(self.entry_name(profile))
            .output()
            .unwrap();
        let hash = String::from_utf8(out.stdout).unwrap();
        KernelKey::find(&format!("latchkey:token:{}", hash.trim()))
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = match self.runner.split_first() {
            Some((program, first_args)) => {
                let mut c = Command::new(program);
                c.args(first_args);
                c
            }
            None => Command::new(latchkey_bin()),
        };
        cmd.args(args).env_clear().stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let started = Instant::now();
        let out = self.command(args).output().unwrap();
        Run::new(out, started.elapsed())
    }

    /// `login --json` that must succeed.
    pub fn login(&self) -> Value {
        let r = self.run(&["login", "--json"]);
        assert_eq!(r.code, 0, "login failed: {}", r.stderr);
        r.json()
    }

    /// How many times a browser was launched.
    pub fn launches(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("driver.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"event\":\"launch\""))
            .count()
    }

    /// The keychain entry name of the default profile.
    pub fn entry_name(&self, profile: &str) -> String {
        format!("{profile}/{CLIENT_ID}@{}", self.issuer)
    }

    /// The stored session, read from the real Secret Service with `secret-tool`, on the
    /// sandbox's session bus.
    pub fn stored_session(&self, profile: &str) -> Option<Value> {
        self.stored_session_of(CLIENT_ID, profile)
    }

    /// [`stored_session`](Self::stored_session) of another client of the same issuer.
    pub fn stored_session_of(&self, client_id: &str, profile: &str) -> Option<Value> {
        let bus = self
            .env
            .iter()
            .find(|(k, _)| k == "DBUS_SESSION_BUS_ADDRESS")
            .map(|(_, v)| v.as_str());
        read_vault(&format!("{profile}/{client_id}@{}", self.issuer), |name| {
            secret_lookup_on(bus, name)
        })
    }
}

/// A session as the vault stores it (`store.rs`): the primary entry `name` holds
/// `LK1 <generation> <count>\n` and the first chunk; chunk `i` is `name#<generation>.<i>`.
fn read_vault(name: &str, get: impl Fn(&str) -> Option<String>) -> Option<Value> {
    let primary = get(name)?;
    let (header, first) = primary.split_once('\n').expect("header");
    let parts: Vec<&str> = header.split(' ').collect();
    assert_eq!(parts[0], "LK1");
    let count: usize = parts[2].parse().unwrap();
    let mut json = first.to_owned();
    for i in 1..count {
        json.push_str(&get(&format!("{name}#{}.{i}", parts[1])).expect("chunk"));
    }
    Some(serde_json::from_str(&json).expect("session JSON"))
}

pub fn secret_lookup(username: &str) -> Option<String> {
    secret_lookup_on(None, username)
}

/// `secret_lookup` on another session bus than this process's.
pub fn secret_lookup_on(bus: Option<&str>, username: &str) -> Option<String> {
    let mut cmd = Command::new("secret-tool");
    cmd.args(["lookup", "service", "latchkey", "username", username]);
    if let Some(bus) = bus {
        cmd.env("DBUS_SESSION_BUS_ADDRESS", bus);
    }
    let out = cmd
        .output()
        .expect("secret-tool (libsecret-tools) must be installed");
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap())
}

/// Every item under the `latchkey` service whose username mentions `needle`.
pub fn secret_search(needle: &str) -> Vec<String> {
    let out = Command::new("secret-tool")
        .args(["search", "--all", "service", "latchkey"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines()
        .filter_map(|l| l.strip_prefix("attribute.username = "))
        .filter(|u| u.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// A `user` key in the kernel keyring, found and read with the real `keyctl` (keyutils).
#[derive(Debug, Clone)]
pub struct KernelKey {
    pub id: String,
    pub description: String,
}

impl KernelKey {
    /// Searches the user keyring (and the persistent keyring linked into it) for `description`.
    pub fn find(description: &str) -> Option<Self> {
        let out = Command::new("keyctl")
            .args(["search", "@u", "user", description])
            .output()
            .expect("keyctl (Debian's keyutils) must be installed");
        out.status.success().then(|| Self {
            id: String::from_utf8(out.stdout).unwrap().trim().to_owned(),
            description: description.to_owned(),
        })
    }

    pub fn payload(&self) -> String {
        let out = Command::new("keyctl")
            .args(["pipe", &self.id])
            .output()
            .unwrap();
        assert!(out.status.success(), "keyctl pipe {}", self.id);
        String::from_utf8(out.stdout).unwrap()
    }

    /// `keyctl describe`'s permission mask, e.g. `alswrvalswrv------------` (possessor, user,
    /// group, other).
    pub fn permissions(&self) -> String {
        let out = Command::new("keyctl")
            .args(["rdescribe", &self.id])
            .output()
            .unwrap();
        // type;uid;gid;perm(hex);description
        let text = String::from_utf8(out.stdout).unwrap();
        text.split(';').nth(3).unwrap_or_default().to_owned()
    }

    /// Seconds until the kernel drops the key, from `/proc/keys` (`perm` column's neighbour).
    pub fn timeout(&self) -> Option<String> {
        let id = format!("{:08x}", self.id.parse::<u32>().ok()?);
        let keys = std::fs::read_to_string("/proc/keys").ok()?;
        keys.lines()
            .find(|l| l.starts_with(&id))
            .and_then(|l| l.split_whitespace().nth(3).map(str::to_owned))
    }
}

/// A finished command.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn new(out: Output, elapsed: Duration) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    /// The `latchkey: ...` error line.
    pub fn error_line(&self) -> String {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("latchkey: "))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Every file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    scan_files(dir, needle, None)
}

/// Every file under `dir` whose bytes contain `needle`, of those modified at or after `since`.
/// For a shared directory such as /tmp: what a test's CLI wrote there is newer than the test,
/// and the gigabytes other programs left there need not be read (a full scan of a busy /tmp
/// took minutes per secret).
pub fn files_since_containing(dir: &Path, needle: &str, since: SystemTime) -> Vec<PathBuf> {
    scan_files(dir, needle, Some(since))
}

fn scan_files(dir: &Path, needle: &str, since: Option<SystemTime>) -> Vec<PathBuf> {
    // Where a scan of /tmp must not go: the checkout (CI may clone under /tmp) and its multi-GB
    // target directory hold build artefacts, not anything Latchkey writes.
    let skip: Vec<PathBuf> = [
        Some(root()),
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from),
    ]
    .into_iter()
    .flatten()
    .collect();
    // A token would sit in a small file; larger ones are caches and logs of other programs.
    const MAX_FILE: u64 = 8 * 1024 * 1024;
    let finder = memchr::memmem::Finder::new(needle.as_bytes());
    let wanted = |m: &std::fs::Metadata| {
        m.len() <= MAX_FILE
            && since.is_none_or(|t| m.modified().is_ok_and(|modified| modified >= t))
    };
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            // DirEntry::file_type does not follow symlinks, so a link cycle cannot trap the scan.
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                if !skip.iter().any(|s| p.starts_with(s)) {
                    stack.push(p);
                }
            } else if kind.is_file()
                && e.metadata().is_ok_and(|m| wanted(&m))
                && let Ok(bytes) = std::fs::read(&p)
                && finder.find(&bytes).is_some()
            {
                hits.push(p);
            }
        }
    }
    hits
}

/// Sleeps until an RFC 3339 instant has passed (plus a little).
pub fn sleep_until(rfc3339: &str) {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).expect("RFC 3339");
    let wait = (t.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds() + 300;
    if wait > 0 {
        std::thread::sleep(Duration::from_millis(wait as u64));
    }
}

/// A Secret Service of a test's own: a private `dbus-daemon` with an unlocked gnome-keyring, so
/// a test can lock or stop it without touching the suite's shared one. Stopped on drop.
#[derive(Debug)]
pub struct PrivateKeyring {
    bus: Child,
    pub address: String,
    _dir: tempfile::TempDir,
}

impl PrivateKeyring {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (data, runtime) = (dir.path().join("data"), dir.path().join("runtime"));
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(&runtime).unwrap();
        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (Debian's dbus) must be installed");
        let mut line = String::new();
        BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line.trim().to_owned();
        let env = |c: &mut Command| {
            c.env("DBUS_SESSION_BUS_ADDRESS", &address)
                .env("XDG_DATA_HOME", &data)
                .env("XDG_RUNTIME_DIR", &runtime)
                .env_remove("DISPLAY");
        };
        let mut daemon = Command::new("gnome-keyring-daemon");
        daemon
            .args(["--unlock", "--components=secrets"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        env(&mut daemon);
        let mut child = daemon.spawn().expect("gnome-keyring-daemon");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"latchkey-test")
            .unwrap();
        let _ = child.wait();
        let keyring = Self {
            bus,
            address,
            _dir: dir,
        };
        // --unlock returns before the daemon owns its name (shared/notes/keyring.md).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !keyring.has_secret_service() {
            assert!(Instant::now() < deadline, "gnome-keyring did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        keyring
    }

    fn dbus_send(&self, args: &[&str]) -> String {
        let out = Command::new("dbus-send")
            .args(["--session", "--print-reply"])
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn has_secret_service(&self) -> bool {
        self.dbus_send(&[
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            "string:org.freedesktop.secrets",
        ])
        .contains("boolean true")
    }

    /// Locks the default collection, as a screen lock or `secret-tool lock` would.
    pub fn lock(&self) {
        let reply = self.dbus_send(&[
            "--dest=org.freedesktop.secrets",
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service.Lock",
            "array:objpath:/org/freedesktop/secrets/collection/login",
        ]);
        assert!(reply.contains("collection/login"), "lock: {reply}");
    }
}

impl Drop for PrivateKeyring {
    fn drop(&mut self) {
        // gnome-keyring-daemon exits when its bus goes away.
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}

/// One of the test servers in `tests/tools` (the Kubernetes API stand-in, the git server),
/// started on 127.0.0.1 with a directory of its own (its certificate, its request log). Killed on
/// drop.
#[derive(Debug)]
pub struct Tool {
    child: Child,
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl Tool {
    pub fn start(script: &str, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stderr.log");
        let mut cmd = Command::new("node");
        cmd.arg(root().join("tests/tools").join(script))
            .args(args)
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let (child, url) = spawn_ready(cmd, &log, script);
        Self { child, url, dir }
    }

    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// The server's self-signed certificate, which is also its CA.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// Its request log: one JSON object per request (never a token).
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("requests.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sandbox {
    /// Files in /tmp written since this sandbox was made that contain `needle`.
    pub fn tmp_files_containing(&self, needle: &str) -> Vec<PathBuf> {
        files_since_containing(Path::new("/tmp"), needle, self.started)
    }

    /// Another program (kubectl, git) in the sandbox's environment, stdin closed.
    pub fn tool(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args).env_clear().stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs the git credential helper as git does: `request` on stdin.
    pub fn git_credential(&self, op: &str, request: &str) -> Run {
        let started = Instant::now();
        let mut child = self
            .command(&["git-credential", op])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(request.as_bytes())
            .unwrap();
        Run::new(child.wait_with_output().unwrap(), started.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan that proves no token reached a file finds one in a nested file, and the /tmp
    /// variant skips only files older than its start.
    #[test]
    fn the_file_scan_finds_a_secret_and_skips_only_older_files() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        let secret = "eyJ-a-token-that-must-not-be-here";
        std::fs::write(nested.join("f"), format!("x{secret}y")).unwrap();
        std::fs::write(dir.path().join("g"), "nothing").unwrap();
        assert_eq!(files_containing(dir.path(), secret), vec![nested.join("f")]);
        let before = SystemTime::now() - Duration::from_secs(5);
        assert_eq!(files_since_containing(dir.path(), secret, before).len(), 1);
        let after = SystemTime::now() + Duration::from_secs(5);
        assert!(files_since_containing(dir.path(), secret, after).is_empty());
    }
}
