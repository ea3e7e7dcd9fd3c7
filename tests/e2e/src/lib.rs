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
use std::time::{Duration, Instant};

pub use serde_json::Value;

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
    _dir: tempfile::TempDir,
}

impl Provider {
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
        let mut child = cmd.spawn().expect("node must be installed");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        // Generous: a start takes about a second, but CI machines have been seen far slower.
        let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else {
            // Not left running: an orphaned provider outlives the test run.
            let _ = child.kill();
            let _ = child.wait();
            // The log lives in `dir`, which the panic removes: print it instead of its path.
            let stderr = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("the dev provider did not start in 60 s; its stderr:\n{stderr}");
        };
        let issuer = line
            .strip_prefix("READY ")
            .expect("READY line")
            .trim()
            .to_owned();
        let port = issuer.rsplit(':').next().unwrap().parse().unwrap();
        Self {
            child,
            issuer,
            port,
            log,
            _dir: dir,
        }
    }

    pub fn get(&self, path: &str) -> Value {
        http_json(self.port, "GET", path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> Value {
        http_json(self.port, "POST", path, Some(body))
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

/// A sandboxed user: its own HOME, config and cache, the provider's settings, and the browser
/// driver as `$BROWSER`.
#[derive(Debug)]
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub issuer: String,
    env: Vec<(String, String)>,
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
        }
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

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(latchkey_bin());
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

    /// The stored session, read from the real Secret Service with `secret-tool`.
    pub fn stored_session(&self, profile: &str) -> Option<Value> {
        let name = self.entry_name(profile);
        let primary = secret_lookup(&name)?;
        let (header, first) = primary.split_once('\n').expect("header");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts[0], "LK1");
        let count: usize = parts[2].parse().unwrap();
        let mut json = first.to_owned();
        for i in 1..count {
            json.push_str(&secret_lookup(&format!("{name}#{}.{i}", parts[1])).expect("chunk"));
        }
        Some(serde_json::from_str(&json).expect("session JSON"))
    }
}

pub fn secret_lookup(username: &str) -> Option<String> {
    let out = Command::new("secret-tool")
        .args(["lookup", "service", "latchkey", "username", username])
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
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
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
