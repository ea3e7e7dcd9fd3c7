//! Logs never hold a secret, proven: a whole CLI session at the most verbose level
//! (`LATCHKEY_LOG=trace`), through sign-in, refresh, each failure path (provider 5xx, provider
//! down, `invalid_grant`, keychain locked) and logout, then every secret that existed on the way
//! (tokens read back from the keychain, codes and PKCE verifiers from the provider's record of
//! its token requests) is looked for in everything the CLI wrote to stderr. A second session
//! does the same for every other way to sign in: hybrid and implicit (form_post), the device
//! grant, an installed-app client secret, and the code flow with PAR and a DPoP key.

#![allow(clippy::unwrap_used)]

use latchkey_e2e::*;

/// Every token of the stored session, and its DPoP key.
fn secrets_of(session: &Value) -> Vec<String> {
    ["access_token", "refresh_token", "id_token", "dpop_key"]
        .iter()
        .filter_map(|k| session[*k].as_str().map(str::to_owned))
        // The implicit flow's session holds no access or refresh token: empty strings.
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn trace_logs_of_a_whole_session_hold_no_secret() {
    let mut provider = Provider::start(&[("DEV_ACCESS_TOKEN_TTL", "4")]);
    let keyring = PrivateKeyring::start();
    let mut sb = Sandbox::new(&provider.issuer);
    sb.set("DBUS_SESSION_BUS_ADDRESS", &keyring.address)
        .set("LATCHKEY_LOG", "trace");
    let mut logs = String::new();
    let mut secrets = Vec::new();
    let run = |sb: &Sandbox, args: &[&str], logs: &mut String| -> Run {
        let r = sb.run(args);
        logs.push_str(&r.stderr);
        r
    };
    let expires = |sb: &Sandbox| {
        sb.stored_session("default").unwrap()["expires_at"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // Sign-in, status, token, and a refresh with rotation.
    assert_eq!(run(&sb, &["login"], &mut logs).code, 0, "{logs}");
    secrets.extend(secrets_of(&sb.stored_session("default").unwrap()));
    assert_eq!(run(&sb, &["status", "--json"], &mut logs).code, 0);
    assert_eq!(run(&sb, &["token"], &mut logs).code, 0);
    sleep_until(&expires(&sb));
    assert_eq!(run(&sb, &["token"], &mut logs).code, 0, "{logs}");
    secrets.extend(secrets_of(&sb.stored_session("default").unwrap()));

    // A 5xx on refresh, then the recovery.
    sleep_until(&expires(&sb));
    provider.post(
        "/__dev/fault",
        serde_json::json!({ "path": "/token", "status": 503, "count": 1 }),
    );
    assert_eq!(run(&sb, &["token"], &mut logs).code, 2);
    assert_eq!(run(&sb, &["token"], &mut logs).code, 0);
    secrets.extend(secrets_of(&sb.stored_session("default").unwrap()));

    // Logout with revocation, then a new session that the provider ends (invalid_grant).
    assert_eq!(run(&sb, &["logout"], &mut logs).code, 0);
    assert_eq!(run(&sb, &["login"], &mut logs).code, 0);
    secrets.extend(secrets_of(&sb.stored_session("default").unwrap()));
    provider.post(
        "/__dev/revoke_grants",
        serde_json::json!({ "sub": "alice" }),
    );
    sleep_until(&expires(&sb));
    assert_eq!(run(&sb, &["token"], &mut logs).code, 1, "{logs}");

    // A third session, then the provider goes away, then the keychain locks.
    assert_eq!(run(&sb, &["login"], &mut logs).code, 0);
    secrets.extend(secrets_of(&sb.stored_session("default").unwrap()));
    secrets.extend(provider_secrets(&provider));
    let expiry = expires(&sb);
    provider.stop();
    sleep_until(&expiry);
    assert_eq!(run(&sb, &["token"], &mut logs).code, 2);
    keyring.lock();
    assert_eq!(run(&sb, &["status"], &mut logs).code, 2);

    scan(&logs, &secrets, 15);
}

/// Every secret the provider saw in a token request: codes, PKCE verifiers, device codes.
fn provider_secrets(provider: &Provider) -> Vec<String> {
    let mut secrets = Vec::new();
    for request in provider.get("/__dev/token_requests").as_array().unwrap() {
        for key in ["code", "code_verifier", "device_code"] {
            if let Some(s) = request[key].as_str() {
                secrets.push(s.to_owned());
            }
        }
    }
    secrets
}

/// None of `secrets` (at least `min` of them, every kind) is in `logs`.
fn scan(logs: &str, secrets: &[String], min: usize) {
    // The scan means something only if there was much to scan and every kind of secret is in it.
    let codes = secrets.iter().filter(|s| s.len() < 100).count();
    assert!(
        secrets.len() >= min && codes >= 3,
        "{} secrets",
        secrets.len()
    );
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "the level applied: {logs}"
    );
    assert!(logs.lines().count() > 20, "{logs}");
    for secret in secrets {
        assert!(
            secret.len() >= 16,
            "a secret this short would match by chance"
        );
        assert!(
            !logs.contains(secret.as_str()),
            "a secret ({} chars) appears in the trace log",
            secret.len()
        );
    }
}

#[test]
fn trace_logs_of_every_other_flow_hold_no_secret() {
    let mut logs = String::new();
    let mut secrets = Vec::new();
    let run = |sb: &Sandbox, args: &[&str], logs: &mut String| -> Run {
        let r = sb.run(args);
        logs.push_str(&r.stderr);
        r
    };

    // Hybrid and implicit (form_post to the loopback listener), the device grant, and an
    // installed-app client secret, against the provider's defaults.
    let provider = Provider::start(&[("DEV_DEVICE_INTERVAL", "1")]);
    let mut sb = Sandbox::new(&provider.issuer);
    sb.set("LATCHKEY_LOG", "trace");
    for flow in ["hybrid", "implicit"] {
        sb.set("LATCHKEY_FLOW", flow);
        let r = run(&sb, &["login", "--json"], &mut logs);
        assert_eq!(r.code, 0, "{flow}: {}", r.stderr);
        assert_eq!(r.json()["flow"], flow);
        secrets.extend(secrets_of(&sb.stored_session("default").unwrap()));
        assert_eq!(run(&sb, &["status", "--json"], &mut logs).code, 0);
        assert_eq!(run(&sb, &["logout"], &mut logs).code, 0);
    }
    sb.unset("LATCHKEY_FLOW");
    let mut login = Running::start(&sb, &["login", "--device", "--json"]);
    let (_, _, complete) = login.device_codes();
    let (rc, err) = approve_device(&sb, &complete, &[]);
    assert_eq!(rc, 0, "{err}");
    let device = login.finish(std::time::Duration::from_secs(30));
    logs.push_str(&device.stderr);
    assert_eq!(device.code, 0, "{}", device.stderr);
    secrets.extend(secrets_of(&sb.stored_session("default").unwrap()));
    assert_eq!(run(&sb, &["token", "--force-refresh"], &mut logs).code, 0);
    secrets.extend(secrets_of(&sb.stored_session("default").unwrap()));
    assert_eq!(run(&sb, &["logout"], &mut logs).code, 0);

    let secret = "installed-app-secret-not-confidential";
    sb.set("LATCHKEY_CLIENT_ID", "latchkey-installed")
        .set("LATCHKEY_CLIENT_SECRET", secret);
    let r = run(&sb, &["login"], &mut logs);
    assert_eq!(r.code, 0, "{}", r.stderr);
    secrets.extend(secrets_of(
        &sb.stored_session_of("latchkey-installed", "default")
            .unwrap(),
    ));
    assert_eq!(run(&sb, &["token", "--force-refresh"], &mut logs).code, 0);
    assert_eq!(run(&sb, &["logout"], &mut logs).code, 0);
    secrets.push(secret.to_owned());
    secrets.extend(provider_secrets(&provider));

    // The code flow with a pushed request and a DPoP key: its refresh and `headers` sign proofs.
    let dpop = Provider::start(&[("DEV_PAR", "on"), ("DEV_DPOP", "on")]);
    let mut sb = Sandbox::new(&dpop.issuer);
    sb.set("LATCHKEY_LOG", "trace")
        .set("LATCHKEY_PAR", "always")
        .set("LATCHKEY_DPOP", "always");
    let r = run(&sb, &["login", "--json"], &mut logs);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["token_type"], "DPoP");
    let session = sb.stored_session("default").unwrap();
    assert!(session["dpop_key"].is_string(), "a DPoP key to look for");
    secrets.extend(secrets_of(&session));
    assert_eq!(run(&sb, &["token", "--force-refresh"], &mut logs).code, 0);
    let me = format!("{}/me", dpop.issuer);
    assert_eq!(run(&sb, &["headers", "--url", &me], &mut logs).code, 0);
    secrets.extend(secrets_of(&sb.stored_session("default").unwrap()));
    assert_eq!(run(&sb, &["logout"], &mut logs).code, 0);
    secrets.extend(provider_secrets(&dpop));
    assert_eq!(dpop.stats()["par_requests"], 1, "the request was pushed");

    scan(&logs, &secrets, 20);
}
