//! The other ways to sign in, with the real CLI, dev provider, headless Chromium and keychain:
//! the device authorization grant (RFC 8628), pushed authorization requests (RFC 9126), an
//! installed-app client secret (client_secret_basic and client_secret_post), and the `flow`,
//! `par` and `dpop` configuration keys.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use latchkey_e2e::*;

const SECRET_CLIENT: &str = "latchkey-installed";
const SECRET: &str = "installed-app-secret-not-confidential";

/// When each `POST /token` reached the provider (ms), faulted ones included.
fn token_polls(provider: &Provider) -> Vec<i64> {
    provider
        .get("/__dev/requests")
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "POST" && r["path"] == "/token")
        .map(|r| r["ts"].as_i64().unwrap())
        .collect()
}

fn token_requests(provider: &Provider) -> Vec<Value> {
    provider
        .get("/__dev/token_requests")
        .as_array()
        .unwrap()
        .clone()
}

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn entry_of(client_id: &str, issuer: &str) -> String {
    format!("default/{client_id}@{issuer}")
}

#[test]
fn device_sign_in_with_the_code_typed_at_the_provider() {
    // No `interval` in the provider's answer: the RFC's 5 s applies.
    let provider = Provider::start(&[]);
    let sb = Sandbox::new(&provider.issuer);
    let mut login = Running::start(&sb, &["login", "--device", "--json"]);
    let (uri, code, complete) = login.device_codes();
    assert_eq!(uri, format!("{}/device", provider.issuer));
    assert_eq!(code.len(), 9, "XXXX-XXXX: {code}");
    assert_eq!(complete, format!("{uri}?user_code={code}"));
    login.wait_line(|l| l.starts_with("Waiting for you to approve"));
    assert_eq!(login.listening_sockets(), 0, "nothing listens on a port");

    // The person types the code at the bare verification URI.
    let (rc, err) = approve_device(&sb, &uri, &[("DRIVER_USER_CODE", &code)]);
    assert_eq!(rc, 0, "{err}");
    let run = login.finish(Duration::from_secs(30));
    assert_eq!(run.code, 0, "{}", run.stderr);
    // stdout is the identity JSON and nothing else.
    let id: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(id["subject"], "alice");
    assert_eq!(id["flow"], "device");
    assert_eq!(id["token_type"], "Bearer");
    assert_eq!(id["dpop_jkt"], Value::Null);
    assert_eq!(id["par"], false);
    assert_eq!(id["refreshable"], true, "offline_access was granted");
    assert_eq!(sb.launches(), 0, "no browser was opened by latchkey");

    // At least one authorization_pending, then the tokens; 5 s between polls.
    let polls = token_polls(&provider);
    assert!(polls.len() >= 2, "{polls:?}");
    for gap in polls.windows(2).map(|w| w[1] - w[0]) {
        assert!(gap >= 4_900, "polled {gap} ms after the previous poll");
    }
    let requests = token_requests(&provider);
    assert!(requests.iter().all(|r| r["grant_type"] == DEVICE_GRANT));
    assert_eq!(requests[0]["error"], "authorization_pending");
    assert_eq!(requests.last().unwrap()["status"], 200);
    assert_eq!(requests.last().unwrap()["client_auth"], "none");

    // The session is in the keychain, its ID token verified, and status shows the flow.
    let session = sb.stored_session("default").expect("stored");
    assert!(session["id_token"].is_string());
    assert_eq!(session["flow"], "device");
    let status = sb.run(&["status", "--json"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert_eq!(status.json()["flow"], "device");
    // The refresh token works like any other.
    let r = sb.run(&["token", "--force-refresh"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(provider.refreshes(), 1);
}

#[test]
fn device_slow_down_adds_five_seconds_to_the_interval() {
    let provider = Provider::start(&[("DEV_DEVICE_INTERVAL", "1")]);
    let sb = Sandbox::new(&provider.issuer);
    // The first poll (at once) is answered slow_down.
    provider.post(
        "/__dev/fault",
        serde_json::json!({"path": "/token", "status": 400, "body": {"error": "slow_down"}}),
    );
    let mut login = Running::start(&sb, &["login", "--flow", "device"]);
    let (_, _, complete) = login.device_codes();
    let (rc, err) = approve_device(&sb, &complete, &[]);
    assert_eq!(rc, 0, "{err}");
    let run = login.finish(Duration::from_secs(30));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(provider.stats()["faults_served"]["/token"], 1);
    let polls = token_polls(&provider);
    assert!(polls.len() >= 2, "{polls:?}");
    let gaps: Vec<i64> = polls.windows(2).map(|w| w[1] - w[0]).collect();
    // The provider's 1 s floored to 5 s, plus 5 s after slow_down, and it stays there (RFC 8628
    // §3.5).
    assert!(gaps.iter().all(|g| *g >= 9_900), "{gaps:?}");
    assert!(
        run.stdout.contains("Signed in as Alice Example"),
        "{}",
        run.stdout
    );
}

#[test]
fn device_access_denied_expired_token_and_expiry_end_with_exit_2() {
    // The person aborts at the provider: access_denied at the next poll. The provider asks for
    // no wait at all between polls (L2): latchkey waits 5 s anyway.
    let provider = Provider::start(&[("DEV_DEVICE_INTERVAL", "0")]);
    let sb = Sandbox::new(&provider.issuer);
    let mut login = Running::start(&sb, &["login", "--device"]);
    let (_, _, complete) = login.device_codes();
    let (rc, err) = approve_device(&sb, &complete, &[("DRIVER_ACTION", "deny")]);
    assert_eq!(rc, 0, "{err}");
    let run = login.finish(Duration::from_secs(20));
    assert_eq!(run.code, 2, "{}", run.stderr);
    let line = run.error_line();
    assert!(
        line.contains("declined") && line.contains("access_denied"),
        "{line}"
    );
    assert!(sb.stored_session("default").is_none());
    // The floor (5 s) between polls, not the provider's 0 s.
    let polls = token_polls(&provider);
    assert!(polls.len() >= 2, "{polls:?}");
    for gap in polls.windows(2).map(|w| w[1] - w[0]) {
        assert!((4_900..8_000).contains(&gap), "{polls:?}");
    }

    // The provider says expired_token.
    let mut login = Running::start(&sb, &["login", "--device"]);
    login.device_codes();
    provider.post(
        "/__dev/fault",
        serde_json::json!({"path": "/token", "status": 400, "count": -1,
                           "body": {"error": "expired_token", "error_description": "device code is expired"}}),
    );
    let run = login.finish(Duration::from_secs(20));
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.error_line().contains("expired_token"), "{}", run.stderr);
    provider.post("/__dev/reset", serde_json::json!({}));

    // Nobody approves, and the provider asks for 30 s between polls: latchkey stops by itself
    // once expires_in (3 s) has passed, without waiting the whole interval.
    let short = Provider::start(&[("DEV_DEVICE_CODE_TTL", "3"), ("DEV_DEVICE_INTERVAL", "30")]);
    let sb = Sandbox::new(&short.issuer);
    let started = Instant::now();
    let mut login = Running::start(&sb, &["login", "--device"]);
    login.device_codes();
    let run = login.finish(Duration::from_secs(20));
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.error_line().contains("expired_token"), "{}", run.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        token_polls(&short).len(),
        1,
        "one poll, then the code expired"
    );
}

#[test]
fn ctrl_c_ends_a_device_sign_in_cleanly() {
    let provider = Provider::start(&[("DEV_DEVICE_INTERVAL", "1")]);
    let sb = Sandbox::new(&provider.issuer);
    let mut login = Running::start(&sb, &["login", "--device"]);
    login.device_codes();
    login.wait_line(|l| l.starts_with("Waiting for you to approve"));
    let pid = login.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let run = login.finish(Duration::from_secs(10));
    assert_eq!(run.code, 130, "{}", run.stderr);
    assert!(
        run.stderr.contains("interrupted; nothing was stored"),
        "{}",
        run.stderr
    );
    assert!(sb.stored_session("default").is_none());
}

/// A code sign-in, a refresh, a device sign-in and a logout with the installed-app client; each
/// token request as the provider saw it.
fn with_secret(provider: &Provider) -> Vec<Value> {
    let mut sb = Sandbox::new(&provider.issuer);
    sb.set("LATCHKEY_CLIENT_ID", SECRET_CLIENT)
        .set("LATCHKEY_CLIENT_SECRET", SECRET);
    let id = sb.login();
    assert_eq!(id["flow"], "code");
    let r = sb.run(&["token", "--force-refresh"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut login = Running::start(&sb, &["login", "--device", "--json"]);
    let (_, _, complete) = login.device_codes();
    let (rc, err) = approve_device(&sb, &complete, &[]);
    assert_eq!(rc, 0, "{err}");
    let run = login.finish(Duration::from_secs(30));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(secret_lookup(&entry_of(SECRET_CLIENT, &provider.issuer)).is_some());
    let out = sb.run(&["logout"]);
    assert!(
        out.stderr.contains("revoked at the provider"),
        "{}",
        out.stderr
    );
    let requests = token_requests(provider);
    let grants: std::collections::BTreeSet<&str> = requests
        .iter()
        .map(|r| r["grant_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        grants,
        ["authorization_code", "refresh_token", DEVICE_GRANT].into()
    );
    requests
}

#[test]
fn an_installed_app_secret_goes_basic_or_post_as_discovery_offers() {
    // Discovery offers both: basic, and PAR authenticates the same way.
    let basic = Provider::start(&[("DEV_PAR", "on"), ("DEV_DEVICE_INTERVAL", "1")]);
    for r in with_secret(&basic) {
        assert_eq!(r["client_auth"], "client_secret_basic", "{r}");
        assert_eq!(r["has_client_secret"], true, "{r}");
        assert!(
            r["error"].is_null() || r["error"] == "authorization_pending",
            "{r}"
        );
    }
    let pars = basic.get("/__dev/par_requests");
    assert_eq!(pars[0]["client_auth"], "client_secret_basic");
    assert_eq!(pars[0]["status"], 201);

    // Only post is offered (the client is registered for it, so basic would be refused).
    let post = Provider::start(&[
        ("DEV_CLIENT_AUTH_METHODS", "client_secret_post,none"),
        ("DEV_DEVICE_INTERVAL", "1"),
    ]);
    for r in with_secret(&post) {
        assert_eq!(r["client_auth"], "client_secret_post", "{r}");
        assert!(
            r["error"].is_null() || r["error"] == "authorization_pending",
            "{r}"
        );
    }

    // Without a configured secret, none is ever sent.
    let public = Provider::start(&[]);
    let sb = Sandbox::new(&public.issuer);
    sb.login();
    let requests = token_requests(&public);
    assert!(!requests.is_empty());
    for r in requests {
        assert_eq!(r["client_auth"], "none", "{r}");
        assert_eq!(r["has_client_secret"], false, "{r}");
    }
}

#[test]
fn par_moves_every_parameter_off_the_browser_url() {
    let provider = Provider::start(&[("DEV_PAR", "on")]);
    let sb = Sandbox::new(&provider.issuer);
    let id = sb.login();
    assert_eq!(id["par"], true);
    assert_eq!(id["flow"], "code");
    // What the browser's URL carried, as the provider received it.
    let front = provider.get("/__dev/authorization_requests");
    let keys: Vec<&str> = front[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["client_id", "request_uri"]);
    assert!(
        front[0]["request_uri"]
            .as_str()
            .unwrap()
            .starts_with("urn:ietf:params:oauth:request_uri:")
    );
    // What went over the back channel.
    let pushed = &provider.get("/__dev/par_requests")[0];
    assert_eq!(pushed["status"], 201);
    let p = &pushed["params"];
    for key in [
        "code_challenge",
        "state",
        "nonce",
        "redirect_uri",
        "scope",
        "response_type",
        "prompt",
    ] {
        assert!(
            p[key].is_string(),
            "{key} missing from the pushed request: {p}"
        );
    }
    assert_eq!(p["code_challenge_method"], "S256");
    assert_eq!(p["client_id"], CLIENT_ID);

    // par = never on the same provider: the classic front-channel request.
    provider.post("/__dev/reset", serde_json::json!({}));
    let r = sb.run(&["login", "--json", "--par", "never"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["par"], false);
    let front = provider.get("/__dev/authorization_requests");
    assert_eq!(front[0]["response_type"], "code");
    assert!(front[0]["code_challenge"].is_string());
    assert_eq!(provider.get("/__dev/par_requests"), serde_json::json!([]));

    // A provider without PAR: auto does without it.
    let plain = Provider::start(&[]);
    let sb = Sandbox::new(&plain.issuer);
    assert_eq!(sb.login()["par"], false);
    assert_eq!(plain.stats()["par_requests"], 0);
}

#[test]
fn par_problems_fail_before_any_browser_opens() {
    let check = |sb: &Sandbox, args: &[&str], needles: &[&str]| {
        let r = sb.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        let line = r.error_line();
        assert_eq!(line.lines().count(), 1, "{line}");
        for n in needles {
            assert!(line.contains(n), "{args:?}: `{n}` not in: {line}");
        }
        assert_eq!(sb.launches(), 0, "{args:?} opened a browser");
    };
    // always, but no endpoint.
    let plain = Provider::start(&[]);
    check(
        &Sandbox::new(&plain.issuer),
        &["login", "--par", "always"],
        &["`par` is always", "pushed_authorization_request_endpoint"],
    );
    // never, but required.
    let required = Provider::start(&[("DEV_PAR", "required")]);
    let sb = Sandbox::new(&required.issuer);
    check(
        &sb,
        &["login", "--par", "never"],
        &["`par` is never", "require_pushed_authorization_requests"],
    );
    // ...while auto follows the requirement.
    assert_eq!(sb.login()["par"], true);

    // The PAR endpoint refuses: its own check of a parameter, and an injected invalid_client.
    let on = Provider::start(&[("DEV_PAR", "on")]);
    let sb = Sandbox::new(&on.issuer);
    check(
        &sb,
        &["login", "--auth-param", "max_age=soon"],
        &[
            "pushed authorization request",
            "`invalid_request`",
            "max_age",
        ],
    );
    on.post(
        "/__dev/fault",
        serde_json::json!({"path": "/request", "status": 401,
                           "body": {"error": "invalid_client", "error_description": "client authentication failed"}}),
    );
    check(
        &sb,
        &["login"],
        &["`invalid_client`", "before opening the browser"],
    );
    assert_eq!(on.stats()["authorization_requests"], 0);
}

#[test]
fn flow_par_and_dpop_values_are_checked_and_lockable() {
    let provider = Provider::start(&[]);
    let mut sb = Sandbox::new(&provider.issuer);
    let bad = |sb: &Sandbox, args: &[&str], expected: &str| {
        let r = sb.run(args);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert_eq!(r.error_line(), format!("latchkey: {expected}"));
        assert_eq!(sb.launches(), 0);
    };
    bad(
        &sb,
        &["login", "--par", "sometimes"],
        "`par` from the command line: `sometimes` is not a choice here; use auto, always or never",
    );
    sb.set("LATCHKEY_FLOW", "pkce");
    bad(
        &sb,
        &["status"],
        "`flow` from $LATCHKEY_FLOW: `pkce` is not a flow; use code, hybrid, implicit or device",
    );
    sb.unset("LATCHKEY_FLOW");
    let config = sb.dir.path().join("config.toml");
    std::fs::write(&config, "dpop = \"maybe\"\n").unwrap();
    sb.set("LATCHKEY_CONFIG", config.to_str().unwrap());
    bad(
        &sb,
        &["login"],
        &format!(
            "`dpop` from {}: `maybe` is not a choice here; use auto, always or never",
            config.display()
        ),
    );
    sb.unset("LATCHKEY_CONFIG");
    // Hybrid and implicit are built (tests/e2e/tests/hybrid.rs); --device still names the clash.
    let r = sb.run(&["login", "--device", "--flow", "implicit"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.error_line()
            .contains("--device and --flow implicit disagree"),
        "{}",
        r.stderr
    );
    assert_eq!(sb.launches(), 0);
    let r = sb.run(&["login", "--device", "--flow", "code"]);
    assert_eq!(r.code, 2);
    assert!(
        r.error_line().contains("--device and --flow code disagree"),
        "{}",
        r.stderr
    );

    // An organization pins the code flow: --device names the lock and where it is.
    let managed = sb.dir.path().join("managed.toml");
    std::fs::write(&managed, "flow = \"code\"\nlocked = [\"flow\"]\n").unwrap();
    sb.set("LATCHKEY_SYSTEM_CONFIG", managed.to_str().unwrap());
    bad(
        &sb,
        &["login", "--device"],
        &format!(
            "`flow` is managed by your organization in {} (managed) and cannot be changed by the command line; remove it there",
            managed.display()
        ),
    );
    // A managed dpop = always: a provider without DPoP is refused before any browser opens, and
    // the user cannot turn it off.
    std::fs::write(&managed, "dpop = \"always\"\nlocked = [\"dpop\"]\n").unwrap();
    bad(
        &sb,
        &["login"],
        "`dpop` is always, but the provider offers no DPoP (no dpop_signing_alg_values_supported); set dpop to auto or never",
    );
    let r = sb.run(&["login", "--dpop", "never"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.error_line()
            .contains("`dpop` is managed by your organization"),
        "{}",
        r.stderr
    );
    assert_eq!(sb.launches(), 0);
}

#[test]
fn a_code_login_without_any_browser_suggests_the_device_flow() {
    let provider = Provider::start(&[]);
    let mut sb = Sandbox::new(&provider.issuer);
    // No $BROWSER, and the sandbox passes no DISPLAY or WAYLAND_DISPLAY.
    sb.unset("BROWSER");
    let mut login = Running::start(&sb, &["login"]);
    let line = login.wait_line(|l| l.starts_with("latchkey: "));
    assert_eq!(
        line,
        "latchkey: cannot open a browser: no $BROWSER is set and there is no display (DISPLAY, WAYLAND_DISPLAY); sign in on another device with `latchkey login --device`"
    );
    let link = login.wait_line(|l| l.trim_start().starts_with("http"));
    assert!(link.contains("/auth?"), "{link}");
    let _ = login.child.kill();
    let _ = login.child.wait();
}

#[test]
fn dpop_rides_along_a_pushed_request_and_every_device_poll() {
    // PAR (RFC 9126) with DPoP (RFC 9449 §10): dpop_jkt is pushed, not in the browser's URL.
    let provider = Provider::start(&[("DEV_PAR", "on"), ("DEV_DPOP", "on")]);
    let sb = Sandbox::new(&provider.issuer);
    let id = sb.login();
    assert_eq!(
        (id["par"].as_bool(), id["token_type"].as_str()),
        (Some(true), Some("DPoP"))
    );
    let jkt = id["dpop_jkt"].as_str().unwrap();
    assert_eq!(
        provider.get("/__dev/par_requests")[0]["params"]["dpop_jkt"],
        jkt
    );
    let front = provider.get("/__dev/authorization_requests");
    assert!(front[0].get("dpop_jkt").is_none(), "{front}");
    assert!(token_requests(&provider)[0]["dpop"]["claims"]["jti"].is_string());
    assert_eq!(sb.run(&["logout"]).code, 0);

    // The device grant: each poll (authorization_pending ones too) carries its own proof, and
    // the tokens are bound to the key.
    let provider = Provider::start(&[("DEV_DPOP", "on")]);
    let sb = Sandbox::new(&provider.issuer);
    let mut login = Running::start(&sb, &["login", "--device", "--json"]);
    let (_, _, complete) = login.device_codes();
    login.wait_line(|l| l.starts_with("Waiting for you to approve"));
    let (rc, err) = approve_device(&sb, &complete, &[]);
    assert_eq!(rc, 0, "{err}");
    let run = login.finish(Duration::from_secs(30));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let id: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        (id["flow"].as_str(), id["token_type"].as_str()),
        (Some("device"), Some("DPoP"))
    );
    let polls: Vec<Value> = token_requests(&provider)
        .into_iter()
        .filter(|r| r["grant_type"] == DEVICE_GRANT)
        .collect();
    assert!(
        polls.len() >= 2,
        "a pending poll, then the tokens: {polls:?}"
    );
    let mut jtis: Vec<&str> = polls
        .iter()
        .map(|p| {
            assert_eq!(p["dpop"]["header"]["alg"], "ES256", "{p}");
            assert_eq!(
                p["dpop"]["claims"]["htu"],
                format!("{}/token", provider.issuer)
            );
            p["dpop"]["claims"]["jti"].as_str().unwrap()
        })
        .collect();
    jtis.dedup();
    assert_eq!(jtis.len(), polls.len(), "one jti per poll");
    let access = sb.stored_session("default").unwrap()["access_token"].clone();
    let found = provider.post("/__dev/introspect", serde_json::json!({ "token": access }));
    assert_eq!(found["jkt"], id["dpop_jkt"]);
    assert_eq!(sb.run(&["logout"]).code, 0);
}
