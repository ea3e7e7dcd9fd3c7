//! The hybrid flow (OIDC Core §3.3, `code id_token`) and the implicit flow with form post (§3.2,
//! `id_token`), with the real CLI, dev provider, headless Chromium and keychain; the app's
//! custom scheme refusing both (their response carries an ID token) with the core in-process. Hostile
//! responses are made by the dev provider itself (`/__dev/tamper`: an ID token re-signed with its
//! own key after a claim changed, or its form_post page's form changed), and in each the code
//! must never reach the token endpoint.

#![allow(clippy::unwrap_used)]

use latchkey_core::config::{Paths, Settings, Sources};
use latchkey_core::{ErrorKind, FrontEnd, Latchkey, Ports, SignInRoute};
use latchkey_e2e::*;
use latchkey_identity::LATCHKEY;

const APP_REDIRECT: &str = "com.example.latchkey:/callback";

fn flow_sandbox(provider: &Provider, flow: &str) -> Sandbox {
    let mut sb = Sandbox::new(&provider.issuer);
    sb.set("LATCHKEY_FLOW", flow);
    sb
}

/// The core as the app runs it, with `flow` configured.
fn core_with_flow(sb: &Sandbox, flow: &str) -> Latchkey {
    let flags = Settings {
        issuer: Some(sb.issuer.clone()),
        client_id: Some(CLIENT_ID.into()),
        scopes: Some(latchkey_core::config::Scopes::Text(SCOPES.into())),
        flow: Some(flow.into()),
        ..Settings::default()
    };
    let no_files = Paths {
        user_file: None,
        system_file: None,
        identity: LATCHKEY,
    };
    let config = Sources::load(flags, &no_files, &|_| None)
        .unwrap()
        .resolve()
        .unwrap();
    let mut ports = Ports::system(&LATCHKEY);
    ports.cache_dir = Some(sb.home().join(".cache/latchkey"));
    Latchkey::new(config, ports)
}

/// The last authorization request's parameters, as the provider received them.
fn last_authorization_request(provider: &Provider) -> Value {
    provider
        .get("/__dev/authorization_requests")
        .as_array()
        .unwrap()
        .first()
        .cloned()
        .unwrap()
}

/// The driver's `done` events, in order, once there is one (the browser may still be closing
/// when the CLI has exited).
fn driver_done(sb: &Sandbox) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let done: Vec<Value> = std::fs::read_to_string(sb.dir.path().join("driver.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["event"] == "done")
            .collect();
        if !done.is_empty() || std::time::Instant::now() > deadline {
            return done;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn tamper(provider: &Provider, body: Value) {
    assert_eq!(provider.post("/__dev/tamper", body)["ok"], true);
}

fn tampered(provider: &Provider, at: &str) -> u64 {
    provider.stats()["tampers_served"][at].as_u64().unwrap_or(0)
}

#[test]
fn hybrid_sign_in_through_a_form_post_to_the_loopback_listener() {
    let provider = Provider::start(&[]);
    let sb = flow_sandbox(&provider, "hybrid");
    let id = sb.login();
    assert_eq!(id["flow"], "hybrid");
    assert_eq!(id["subject"], "alice");
    assert_eq!(id["refreshable"], true);
    assert_eq!(id["token_type"], "Bearer");

    // OIDC Core §3.3.2.1: code id_token, PKCE S256, state and nonce; form_post on loopback.
    let request = last_authorization_request(&provider);
    assert_eq!(request["response_type"], "code id_token");
    assert_eq!(request["response_mode"], "form_post");
    assert_eq!(request["code_challenge_method"], "S256");
    for p in ["state", "nonce", "code_challenge"] {
        assert!(
            request[p].as_str().is_some_and(|v| v.len() >= 43),
            "{p}: {request}"
        );
    }
    // The browser POSTed the response: the listener's URL carries no code.
    let done = driver_done(&sb);
    assert_eq!(done.len(), 1);
    let redirect = done[0]["redirect"].as_str().unwrap();
    assert!(
        redirect.ends_with("/callback") && !redirect.contains("code="),
        "{redirect}"
    );
    assert!(done[0]["body"].as_str().unwrap().contains("Signed in as"));
    assert_eq!(provider.code_redemptions(), 1, "{}", provider.stats());

    let stored = sb.stored_session("default").unwrap();
    assert_eq!(stored["flow"], "hybrid");
    assert!(stored["refresh_token"].is_string());
    let status = sb.run(&["status", "--json"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert_eq!(status.json()["flow"], "hybrid");
    let token = sb.run(&["token"]);
    assert_eq!(token.code, 0, "{}", token.stderr);
    assert_eq!(
        token.stdout.trim(),
        stored["access_token"].as_str().unwrap()
    );
}

#[test]
fn hybrid_refuses_a_front_channel_id_token_without_a_matching_c_hash_or_a_nonce() {
    let provider = Provider::start(&[]);
    let cases = [
        (
            "a wrong c_hash",
            serde_json::json!({ "set": { "c_hash": "AAAAAAAAAAAAAAAAAAAAAA" } }),
            "c_hash does not match the code",
        ),
        (
            "no c_hash",
            serde_json::json!({ "unset": ["c_hash"] }),
            "no c_hash",
        ),
        (
            "no nonce",
            serde_json::json!({ "unset": ["nonce"] }),
            "nonce",
        ),
    ];
    for (what, edit, expected) in cases {
        provider.post("/__dev/reset", serde_json::json!({}));
        let sb = flow_sandbox(&provider, "hybrid");
        tamper(
            &provider,
            serde_json::json!({ "at": "authorization", "id_token": edit }),
        );
        let r = sb.run(&["login", "--json"]);
        assert_eq!(r.code, 2, "{what}: {}", r.stderr);
        assert_eq!(tampered(&provider, "authorization"), 1, "{what}");
        let line = r.error_line();
        assert!(
            line.contains(expected) && line.contains("code not redeemed"),
            "{what}: {line}"
        );
        assert_eq!(line.lines().count(), 1, "{what}: one line: {line}");
        assert_eq!(
            provider.code_redemptions(),
            0,
            "{what}: the code never reached the token endpoint"
        );
        assert!(sb.stored_session("default").is_none(), "{what}");
        assert!(r.stdout.is_empty(), "{what}");
    }
}

#[test]
fn hybrid_refuses_another_user_in_the_token_endpoints_id_token() {
    let provider = Provider::start(&[]);
    let sb = flow_sandbox(&provider, "hybrid");
    tamper(
        &provider,
        serde_json::json!({ "at": "token", "id_token": { "set": { "sub": "mallory" } } }),
    );
    let r = sb.run(&["login"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(tampered(&provider, "token"), 1);
    assert!(
        r.error_line().contains("another user") && r.error_line().contains("§3.3.3.6"),
        "{}",
        r.stderr
    );
    // §3.3.3.6 is checked on the token response, so the code was redeemed, but nothing stored.
    assert_eq!(provider.code_redemptions(), 1);
    assert!(sb.stored_session("default").is_none());
}

/// A form_post sign-in whose response the provider's page sends otherwise: the listener or the
/// core refuses it, the sign-in waits on for the genuine one, and times out.
fn form_post_refused(flow: &str, form: Value, page_says: &str) {
    let provider = Provider::start(&[]);
    let mut sb = flow_sandbox(&provider, flow);
    sb.set("LATCHKEY_LOGIN_TIMEOUT", "12");
    tamper(
        &provider,
        serde_json::json!({ "at": "authorization", "form": form }),
    );
    let r = sb.run(&["login"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.error_line().contains("no sign-in completed within 12 s"),
        "{}",
        r.stderr
    );
    assert_eq!(tampered(&provider, "authorization"), 1);
    let done = driver_done(&sb);
    assert_eq!(done.len(), 1, "{done:?}");
    let body = done[0]["body"].as_str().unwrap();
    assert!(
        body.contains("Not accepted") && body.contains(page_says),
        "{body}"
    );
    assert_eq!(
        provider.code_redemptions(),
        0,
        "the code never reached the token endpoint"
    );
    let token_requests = provider.get("/__dev/token_requests");
    assert_eq!(
        token_requests.as_array().unwrap().len(),
        0,
        "{token_requests}"
    );
    assert!(sb.stored_session("default").is_none());
}

#[test]
fn form_post_refuses_a_get_where_a_post_is_due() {
    form_post_refused(
        "hybrid",
        serde_json::json!({ "method": "get" }),
        "response_mode=form_post",
    );
}

#[test]
fn form_post_refuses_the_wrong_content_type() {
    form_post_refused(
        "hybrid",
        serde_json::json!({ "method": "post", "enctype": "text/plain" }),
        "application/x-www-form-urlencoded",
    );
}

#[test]
fn form_post_refuses_a_wrong_state() {
    form_post_refused(
        "hybrid",
        serde_json::json!({ "set": { "state": "forged-state-forged-state-forged-state-00000" } }),
        "does not belong to the sign-in in progress",
    );
}

#[test]
fn implicit_is_sign_in_only_until_its_id_token_expires() {
    let provider = Provider::start(&[("DEV_ID_TOKEN_TTL", "10")]);
    let sb = flow_sandbox(&provider, "implicit");
    let r = sb.run(&["login", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let warnings: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("RFC 9700 §2.1.2"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", r.stderr);
    assert!(
        warnings[0].starts_with("latchkey: warning: "),
        "{}",
        warnings[0]
    );
    let id = r.json();
    assert_eq!(id["flow"], "implicit");
    assert_eq!(id["refreshable"], false);
    assert_eq!(id["token_type"], Value::Null);
    // No access token, so no userinfo: the profile came in the ID token (OIDC Core §5.4).
    assert_eq!(id["name"], "Alice Example");

    let request = last_authorization_request(&provider);
    assert_eq!(request["response_type"], "id_token");
    assert_eq!(request["response_mode"], "form_post");
    assert!(request["nonce"].as_str().is_some_and(|n| n.len() >= 43));
    assert!(request.get("code_challenge").is_none(), "{request}");
    assert!(
        !request["scope"]
            .as_str()
            .unwrap()
            .contains("offline_access"),
        "{request}"
    );
    let stats = provider.stats();
    assert_eq!(stats["token_requests"]["authorization_code"], 0);
    assert_eq!(
        provider
            .get("/__dev/token_requests")
            .as_array()
            .unwrap()
            .len(),
        0,
        "the token endpoint is never called"
    );

    let stored = sb.stored_session("default").unwrap();
    assert_eq!(stored["flow"], "implicit");
    assert_eq!(stored["refresh_token"], Value::Null);
    assert_eq!(stored["access_token"], "");
    assert!(stored["id_token"].as_str().unwrap().split('.').count() == 3);

    let status = sb.run(&["status", "--json"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert_eq!(status.json()["refreshable"], false);
    assert_eq!(status.json()["flow"], "implicit");

    let token = sb.run(&["token"]);
    assert_eq!(token.code, 1, "{}", token.stderr);
    assert!(token.stdout.is_empty());
    assert!(
        token.error_line().contains("gives no access token"),
        "{}",
        token.stderr
    );

    // The ID token is still a credential kubectl can send (what the OIDC authenticator checks).
    let cred = sb.run(&["exec-credential"]);
    assert_eq!(cred.code, 0, "{}", cred.stderr);
    assert_eq!(cred.json()["status"]["token"], stored["id_token"]);

    // Logout forgets it, and there is nothing to revoke.
    let out = sb.run(&["logout"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(provider.stats()["revocations"], 0);
    assert!(sb.stored_session("default").is_none());

    // Signed in again (the provider's session skips the login page): kept until exp, then gone.
    let id = sb.login();
    assert!(sb.stored_session("default").is_some());
    sleep_until(id["expires_at"].as_str().unwrap());
    let status = sb.run(&["status"]);
    assert_eq!(status.code, 1, "{}", status.stderr);
    assert!(
        status.error_line().contains("ID token expired"),
        "{}",
        status.stderr
    );
    assert!(sb.stored_session("default").is_none(), "forgotten at exp");
    assert_eq!(provider.stats()["token_requests"]["refresh_token"], 0);
}

#[test]
fn implicit_refuses_a_get_where_a_post_is_due() {
    form_post_refused(
        "implicit",
        serde_json::json!({ "method": "get" }),
        "response_mode=form_post",
    );
}

/// Issue 18, M4: a link of the app's scheme reaches the app as a new process's argv, which every
/// local user can read, so the flows whose response carries an ID token (hybrid, implicit) are
/// refused on it before any browser opens; the app takes its loopback listener for them instead
/// (this test used to sign in with hybrid through the link's fragment).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_custom_scheme_refuses_hybrid_and_implicit_and_the_app_takes_the_loopback_listener()
 {
    let provider = Provider::start(&[]);
    let sb = Sandbox::new(&provider.issuer);
    let redirect = url::Url::parse(APP_REDIRECT).unwrap();
    for flow in ["hybrid", "implicit"] {
        let latchkey = core_with_flow(&sb, flow);
        let e = latchkey.begin(&redirect).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{flow}");
        assert!(
            e.message().contains(&format!(
                "`flow = {flow}` works only with the loopback redirect"
            )),
            "{e}"
        );
        assert_eq!(
            latchkey.sign_in_route(FrontEnd::App).unwrap(),
            SignInRoute::Loopback,
            "{flow}"
        );
    }
    assert_eq!(provider.stats()["authorization_requests"], 0);
    // The code flow keeps the app's link: its response carries no token.
    let code = core_with_flow(&sb, "code");
    assert_eq!(
        code.sign_in_route(FrontEnd::App).unwrap(),
        SignInRoute::AppLink
    );
    let sign_in = code.begin(&redirect).await.unwrap();
    let asked: std::collections::HashMap<_, _> = sign_in.url.query_pairs().collect();
    assert_eq!(asked["response_type"], "code");
    assert!(!asked.contains_key("response_mode"), "{asked:?}");
}
