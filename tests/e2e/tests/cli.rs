//! The `latchkey` CLI against the real dev provider, headless Chromium and the Secret Service.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use latchkey_e2e::*;

fn short_lived() -> Provider {
    Provider::start(&[("DEV_ACCESS_TOKEN_TTL", "4")])
}

#[test]
fn login_status_token_and_the_keychain() {
    let provider = Provider::start(&[]);
    let sb = Sandbox::new(&provider.issuer);

    let id = sb.login();
    assert_eq!(id["issuer"], provider.issuer.as_str());
    assert_eq!(id["subject"], "alice");
    assert_eq!(id["name"], "Alice Example");
    assert_eq!(id["email"], "alice@example.com");
    let scopes = strings(&id["scopes"]);
    assert_eq!(
        scopes,
        ["openid", "profile", "email", "offline_access", "api:read"]
    );
    chrono::DateTime::parse_from_rfc3339(id["expires_at"].as_str().unwrap())
        .expect("expires_at is RFC 3339");
    assert_eq!(sb.launches(), 1);

    // The authorization request, as the provider received it (RFC 7636, RFC 8252, OIDC Core §11).
    let requests = provider.get("/__dev/authorization_requests");
    let req = &requests.as_array().unwrap()[0];
    assert_eq!(req["response_type"], "code");
    assert_eq!(req["code_challenge_method"], "S256");
    assert_eq!(req["code_challenge"].as_str().unwrap().len(), 43);
    assert_eq!(req["prompt"], "consent");
    assert!(
        req["state"].as_str().unwrap().len() >= 22,
        "state carries >= 128 bits"
    );
    assert!(
        req["nonce"].as_str().unwrap().len() >= 22,
        "nonce carries >= 128 bits"
    );
    let redirect = url::Url::parse(req["redirect_uri"].as_str().unwrap()).unwrap();
    assert_eq!(redirect.host_str(), Some("127.0.0.1"));
    assert_eq!(redirect.path(), "/callback");

    // status: same identity, no browser.
    let r = sb.run(&["status", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["subject"], "alice");
    let human = sb.run(&["status"]);
    assert!(
        human
            .stdout
            .contains("Signed in as Alice Example <alice@example.com>"),
        "{}",
        human.stdout
    );

    // token: exactly the stored access token, and the provider considers it live.
    let r = sb.run(&["token"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let session = sb
        .stored_session("default")
        .expect("session in the Secret Service");
    assert_eq!(
        r.stdout,
        format!("{}\n", session["access_token"].as_str().unwrap())
    );
    assert!(provider.is_active(r.stdout.trim()));
    assert_eq!(sb.launches(), 1, "status and token never open a browser");
    assert_eq!(
        provider.refreshes(),
        0,
        "a valid cached token needs no refresh"
    );

    // The refresh token really sits in the Secret Service...
    let rt = session["refresh_token"]
        .as_str()
        .expect("refresh token issued");
    assert!(provider.is_active(rt));
    assert_eq!(secret_search(&provider.issuer), [sb.entry_name("default")]);
    // ...and nowhere under $HOME.
    assert_eq!(
        files_containing(&sb.home(), rt),
        Vec::<std::path::PathBuf>::new()
    );
    assert!(files_containing(&sb.home(), session["access_token"].as_str().unwrap()).is_empty());
}

#[test]
fn expired_access_token_is_refreshed_with_rotation() {
    let provider = short_lived();
    let sb = Sandbox::new(&provider.issuer);
    let id = sb.login();
    let before = sb.stored_session("default").unwrap();
    sleep_until(id["expires_at"].as_str().unwrap());

    let r = sb.run(&["token"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let after = sb.stored_session("default").unwrap();
    assert_ne!(after["access_token"], before["access_token"]);
    assert_eq!(r.stdout.trim(), after["access_token"].as_str().unwrap());
    assert_eq!(provider.refreshes(), 1);
    // Rotation: the new refresh token was saved, the old one is dead.
    assert_ne!(after["refresh_token"], before["refresh_token"]);
    assert!(!provider.is_active(before["refresh_token"].as_str().unwrap()));
    assert!(provider.is_active(after["refresh_token"].as_str().unwrap()));
    // status after refresh shows a later expiry without another refresh.
    let s = sb.run(&["status", "--json"]).json();
    assert!(s["expires_at"].as_str().unwrap() > id["expires_at"].as_str().unwrap());
    assert_eq!(provider.refreshes(), 1);
    assert_eq!(sb.launches(), 1);
}

#[test]
fn eight_concurrent_token_processes_refresh_once() {
    let provider = short_lived();
    let sb = Sandbox::new(&provider.issuer);
    let id = sb.login();
    sleep_until(id["expires_at"].as_str().unwrap());

    let children: Vec<_> = (0..8)
        .map(|_| {
            sb.command(&["token"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for o in &outputs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let tokens: std::collections::BTreeSet<_> = outputs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .collect();
    assert_eq!(tokens.len(), 1, "every process got the same fresh token");
    let stats = provider.stats();
    assert_eq!(stats["token_requests"]["refresh_token"], 1, "{stats}");
    assert_eq!(
        stats["token_errors"],
        serde_json::json!({}),
        "no rotated refresh token was reused: {stats}"
    );
    let session = sb.stored_session("default").unwrap();
    assert!(provider.is_active(session["refresh_token"].as_str().unwrap()));
}

#[test]
fn logout_revokes_at_the_provider_and_forgets() {
    let provider = Provider::start(&[]);
    let sb = Sandbox::new(&provider.issuer);
    sb.login();
    let rt = sb.stored_session("default").unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(provider.is_active(&rt));

    let r = sb.run(&["logout"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("revoked at the provider"), "{}", r.stderr);
    assert_eq!(provider.stats()["revocations"], 1);
    assert!(
        !provider.is_active(&rt),
        "the provider no longer honours the refresh token"
    );
    assert!(
        secret_search(&provider.issuer).is_empty(),
        "the keychain entry is gone"
    );

    let r = sb.run(&["status"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.error_line().contains("not signed in"), "{}", r.stderr);
    assert_eq!(sb.run(&["token"]).code, 1);
    let r = sb.run(&["logout"]);
    assert_eq!(r.code, 0, "logout when signed out is not an error");
}

#[test]
fn logout_forgets_even_when_the_provider_is_down() {
    let mut provider = Provider::start(&[]);
    let sb = Sandbox::new(&provider.issuer);
    sb.login();
    provider.stop();
    // Discovery is cached, so this reaches the revocation call and fails there.
    let r = sb.run(&["logout"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("the provider was not told"),
        "{}",
        r.stderr
    );
    assert!(secret_search(&provider.issuer).is_empty());
}

/// Reads the loopback redirect URI from the sign-in link `login` prints; the rest of stderr is
/// collected by a thread and returned when it ends.
fn redirect_from_stderr(
    child: &mut std::process::Child,
) -> (url::Url, std::thread::JoinHandle<String>) {
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    loop {
        assert!(Instant::now() < deadline, "no sign-in link printed: {seen}");
        let n = stderr.read(&mut buf).unwrap();
        assert!(n > 0, "login exited early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        if let Some(link) = seen
            .split_whitespace()
            .find(|w| w.starts_with("http") && w.contains("/auth?"))
        {
            let link = url::Url::parse(link).unwrap();
            let redirect = link
                .query_pairs()
                .find(|(k, _)| k == "redirect_uri")
                .unwrap()
                .1
                .into_owned();
            let rest = std::thread::spawn(move || {
                let mut rest = String::new();
                let _ = stderr.read_to_string(&mut rest);
                rest
            });
            return (url::Url::parse(&redirect).unwrap(), rest);
        }
    }
}

fn raw_get(url: &url::Url) -> String {
    let mut s = TcpStream::connect((url.host_str().unwrap(), url.port().unwrap())).unwrap();
    let target = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn forged_callback_on_the_loopback_listener_is_never_redeemed() {
    let provider = Provider::start(&[]);
    let mut sb = Sandbox::new(&provider.issuer);
    // The browser opens the page and never signs in, as if the user walked away.
    sb.set("DRIVER_ACTION", "none")
        .set("DRIVER_HOLD_MS", "15000");
    let mut child = sb
        .command(&["login", "--login-timeout", "12"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (redirect, stderr) = redirect_from_stderr(&mut child);

    let mut forged = redirect.clone();
    forged.set_query(Some(&format!(
        "code=attacker-code&state=wrong-state&iss={}",
        provider.issuer
    )));
    let answer = raw_get(&forged);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("does not belong"), "{answer}");
    // A second forged request is refused the same way: the listener kept waiting.
    let answer = raw_get(&forged);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    let status = child.wait().unwrap();
    let stderr = stderr.join().unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no sign-in completed within 12 s"),
        "{stderr}"
    );
    assert_eq!(
        provider.code_redemptions(),
        0,
        "the forged code never reached the token endpoint"
    );
    assert!(secret_search(&provider.issuer).is_empty());
}

#[test]
fn access_denied_and_narrowed_grants() {
    let provider = Provider::start(&[]);
    let mut sb = Sandbox::new(&provider.issuer);
    sb.set("DRIVER_ACTION", "deny");
    let r = sb.run(&["login"]);
    assert_eq!(r.code, 2);
    let line = r.error_line();
    assert!(
        line.contains("declined")
            && line.contains("(access_denied)")
            && line.contains("provider says:"),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1);
    assert!(
        secret_search(&provider.issuer).is_empty(),
        "nothing stored on failure"
    );
    assert_eq!(provider.code_redemptions(), 0);

    sb.set("DRIVER_ACTION", "approve")
        .set("DRIVER_UNCHECK", "api:read");
    let id = sb.login();
    let granted = strings(&id["scopes"]);
    assert!(!granted.contains(&"api:read"), "{granted:?}");
    assert!(granted.contains(&"email"));
    assert!(strings(&id["requested_scopes"]).contains(&"api:read"));
    let human = sb.run(&["status"]);
    assert!(
        human.stdout.contains("denied:   api:read"),
        "{}",
        human.stdout
    );
}

#[test]
fn provider_down_fails_fast_before_any_browser_opens() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sb = Sandbox::new(&format!("http://127.0.0.1:{port}"));
    let r = sb.run(&["login"]);
    assert_eq!(r.code, 2);
    assert!(r.error_line().contains("cannot connect"), "{}", r.stderr);
    assert!(r.elapsed < Duration::from_secs(10));
    assert_eq!(sb.launches(), 0);
}

#[test]
fn provider_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept connections and hold them open without a byte of answer.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let sb = Sandbox::new(&format!("http://127.0.0.1:{port}"));
    let r = sb.run(&["login"]);
    assert_eq!(r.code, 2);
    assert!(
        r.error_line().contains("did not answer within 30 s"),
        "{}",
        r.stderr
    );
    assert!(r.elapsed < Duration::from_secs(45), "{:?}", r.elapsed);
    assert_eq!(sb.launches(), 0);
}

#[test]
fn invalid_grant_on_refresh_signs_out() {
    let provider = short_lived();
    let sb = Sandbox::new(&provider.issuer);
    let id = sb.login();
    provider.post(
        "/__dev/revoke_grants",
        serde_json::json!({ "sub": "alice" }),
    );
    sleep_until(id["expires_at"].as_str().unwrap());

    let r = sb.run(&["token"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.error_line().contains("invalid_grant"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(
        secret_search(&provider.issuer).is_empty(),
        "invalid_grant ends the session"
    );
    assert_eq!(sb.run(&["status"]).code, 1);
}

#[test]
fn transient_failures_on_refresh_keep_the_session() {
    let mut provider = short_lived();
    let sb = Sandbox::new(&provider.issuer);
    let id = sb.login();
    sleep_until(id["expires_at"].as_str().unwrap());

    provider.post(
        "/__dev/fault",
        serde_json::json!({ "path": "/token", "status": 503, "count": 1 }),
    );
    let r = sb.run(&["token"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.error_line().contains("503") && r.error_line().contains("still signed in"),
        "{}",
        r.stderr
    );
    assert!(sb.stored_session("default").is_some());

    // status with a 5xx: exit 2 (not "signed out").
    provider.post(
        "/__dev/fault",
        serde_json::json!({ "path": "/token", "status": 500, "count": 1 }),
    );
    assert_eq!(sb.run(&["status"]).code, 2);

    // Once the provider recovers, the same session refreshes.
    let r = sb.run(&["token"]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    // Provider gone entirely: still a transient failure, session kept.
    let status = sb.run(&["status", "--json"]).json();
    sleep_until(status["expires_at"].as_str().unwrap());
    provider.stop();
    let r = sb.run(&["token"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(sb.stored_session("default").is_some());
}

#[test]
fn keychain_unavailable_or_frozen_is_a_clear_error() {
    let provider = Provider::start(&[]);
    let mut sb = Sandbox::new(&provider.issuer);
    sb.login();

    // No session bus, and `store` says it must be the Secret Service.
    sb.set("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    sb.set("LATCHKEY_STORE", "secret-service");
    let r = sb.run(&["status"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.error_line().contains("keychain is not available"),
        "{}",
        r.stderr
    );
    assert_eq!(r.error_line().lines().count(), 1);
    // A sign-in that could not be stored fails before the browser opens.
    let r = sb.run(&["login"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.error_line().contains("before signing in"), "{}", r.stderr);
    assert_eq!(
        sb.launches(),
        1,
        "only the first, successful login opened a browser"
    );
    // With `store = auto` that machine has the kernel keyring, where this session is not: it is
    // never moved there behind the user's back (and the cached token is not consulted by status).
    sb.unset("LATCHKEY_STORE");
    let r = sb.run(&["status"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.error_line().contains("not signed in"), "{}", r.stderr);
    assert!(sb.kernel_entry("default").is_none());

    // A bus that accepts the connection and never answers: zbus has no timeout, ours fires.
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("frozen.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    sb.set(
        "DBUS_SESSION_BUS_ADDRESS",
        &format!("unix:path={}", sock.display()),
    );
    sb.set("LATCHKEY_KEYCHAIN_TIMEOUT_MS", "1500");
    // The token cache would answer `token` without D-Bus (tests/e2e/tests/keyring.rs).
    sb.set("LATCHKEY_TOKEN_CACHE", "off");
    for cmd in ["token", "status"] {
        let r = sb.run(&[cmd]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.error_line().contains("did not answer"), "{}", r.stderr);
        assert!(r.elapsed < Duration::from_secs(10), "{:?}", r.elapsed);
    }
    // Nothing was lost.
    assert!(secret_search(&provider.issuer).contains(&sb.entry_name("default")));
}

#[test]
fn large_sessions_are_chunked_across_keychain_entries() {
    let provider = Provider::start(&[]);
    let mut sb = Sandbox::new(&provider.issuer);
    // Debug builds only: Windows-sized (and smaller) entries, to exercise chunking for real.
    sb.set("LATCHKEY_KEYCHAIN_CHUNK", "300");
    sb.login();
    let items = secret_search(&provider.issuer);
    assert!(items.len() >= 3, "{items:?}");
    let session = sb.stored_session("default").unwrap();
    let r = sb.run(&["token"]);
    assert_eq!(r.stdout.trim(), session["access_token"].as_str().unwrap());
    assert_eq!(sb.run(&["logout"]).code, 0);
    assert!(
        secret_search(&provider.issuer).is_empty(),
        "every chunk is deleted"
    );
}

#[test]
fn profiles_are_separate_sessions() {
    let provider = Provider::start(&[]);
    let mut sb = Sandbox::new(&provider.issuer);
    sb.login();
    sb.set("DRIVER_USER", "bob");
    let r = sb.run(&["login", "--json", "--profile", "work"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["subject"], "bob");
    assert_eq!(sb.run(&["status", "--json"]).json()["subject"], "alice");
    assert_eq!(
        sb.run(&["status", "--json", "--profile", "work"]).json()["subject"],
        "bob"
    );
    sb.set("LATCHKEY_PROFILE", "work");
    assert_eq!(sb.run(&["status", "--json"]).json()["subject"], "bob");
}

#[test]
fn every_id_token_algorithm_is_verified() {
    for alg in ["ES256", "PS256", "EdDSA"] {
        let provider = Provider::start(&[("DEV_ID_TOKEN_ALG", alg)]);
        let sb = Sandbox::new(&provider.issuer);
        let id = sb.login();
        assert_eq!(id["subject"], "alice", "{alg}");
        let session = sb.stored_session("default").unwrap();
        let header = session["id_token"]
            .as_str()
            .unwrap()
            .split('.')
            .next()
            .unwrap()
            .to_owned();
        let header = String::from_utf8(base64url(&header)).unwrap();
        assert!(header.contains(&format!("\"alg\":\"{alg}\"")), "{header}");
    }
}

#[test]
fn key_rotation_is_followed_by_one_jwks_refetch() {
    let provider = short_lived();
    let sb = Sandbox::new(&provider.issuer);
    let id = sb.login();
    let jwks_before = provider.stats()["jwks_requests"].as_u64().unwrap();
    provider.post("/__dev/rotate_keys", serde_json::json!({}));
    sleep_until(id["expires_at"].as_str().unwrap());
    let r = sb.run(&["token"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        provider.stats()["jwks_requests"].as_u64().unwrap(),
        jwks_before + 1
    );
}

#[test]
fn managed_config_locks_the_issuer() {
    let sb_dir = tempfile::tempdir().unwrap();
    let system = sb_dir.path().join("system.toml");
    std::fs::write(
        &system,
        "issuer = \"https://corp.example\"\nclient_id = \"corp-app\"\nlocked = [\"issuer\"]\n",
    )
    .unwrap();
    let mut sb = Sandbox::new("https://elsewhere.example");
    sb.set("LATCHKEY_SYSTEM_CONFIG", system.to_str().unwrap());
    let r = sb.run(&["status"]);
    assert_eq!(r.code, 2);
    let line = r.error_line();
    assert!(
        line.contains("`issuer` is managed by your organization")
            && line.contains("$LATCHKEY_ISSUER"),
        "{line}"
    );
}

#[test]
fn bad_input_gets_one_line_errors_not_panics() {
    let sb = Sandbox::new("http://id.example.com");
    let r = sb.run(&["status"]);
    assert_eq!(r.code, 2);
    assert!(r.error_line().contains("only https"), "{}", r.stderr);

    let mut sb = Sandbox::new("https://id.example.com");
    for (key, value, expect) in [
        ("LATCHKEY_SCOPES", "openid bad\"scope", "RFC 6749"),
        ("LATCHKEY_LOGIN_TIMEOUT", "soon", "login_timeout"),
        (
            "LATCHKEY_REDIRECT_URI",
            "https://evil.example/cb",
            "loopback",
        ),
        (
            "LATCHKEY_EXTRA_AUTH_PARAMS",
            "state=x",
            "set by the app itself",
        ),
        ("LATCHKEY_PROFILE", "../../etc", "profile"),
    ] {
        sb.set(key, value);
        let r = sb.run(&["token"]);
        assert_eq!(r.code, 2, "{key}: {}", r.stderr);
        assert!(r.error_line().contains(expect), "{key}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
        sb.set(key, "");
    }
    let config = sb.dir.path().join("bad.toml");
    std::fs::write(&config, "issuer = [").unwrap();
    let r = sb.run(&["status", "--config", config.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.error_line().contains("bad.toml"), "{}", r.stderr);
}

/// A JSON array of strings.
fn strings(v: &serde_json::Value) -> Vec<&str> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|s| s.as_str().expect("a string"))
        .collect()
}

fn base64url(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}
