//! What the provider says about the account, end to end: every granted role, group and
//! permission with its source (`status --json`), a profile that stays current without a new
//! sign-in, and `logout --provider` reaching the provider's end-session endpoint.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use latchkey_e2e::*;
use serde_json::{Value, json};

/// The resource the dev provider issues JWT access tokens for (RFC 8707, RFC 9068).
const API: &str = "resource=urn:latchkey:api";

/// `(value, source)` of the grants of one kind read from one claim.
fn grants<'a>(id: &'a Value, kind: &str, claim: &str) -> Vec<(&'a str, &'a str)> {
    id["grants"]["entries"]
        .as_array()
        .expect("grants.entries")
        .iter()
        .filter(|g| g["kind"] == kind && g["claim"] == claim)
        .map(|g| (g["value"].as_str().unwrap(), g["source"].as_str().unwrap()))
        .collect()
}

#[test]
fn status_json_shows_each_grant_with_its_source() {
    let provider = Provider::start(&[]);
    let mut sb = Sandbox::new(&provider.issuer);
    sb.set("LATCHKEY_EXTRA_AUTH_PARAMS", API);
    sb.login();
    let r = sb.run(&["status", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let id = r.json();
    let at = "access_token";

    // Keycloak's shapes, in the access token.
    assert_eq!(
        grants(&id, "role", "realm_access.roles"),
        [("offline_access", at), ("developer", at)]
    );
    assert_eq!(
        grants(&id, "role", "resource_access.latchkey-desktop.roles"),
        [("reader", at)]
    );
    assert_eq!(
        grants(&id, "role", "resource_access.orders-api.roles"),
        [("orders:write", at)]
    );
    // Entra ID's: app roles, directory roles by template ID (with the role's name), scp.
    assert_eq!(grants(&id, "role", "roles"), [("Orders.Approver", at)]);
    let wids: Vec<&Value> = id["grants"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["kind"] == "directory_role")
        .collect();
    assert_eq!(wids.len(), 1, "{wids:?}");
    assert_eq!(wids[0]["value"], "62e90394-69f5-4237-9190-012177145e10");
    assert_eq!(wids[0]["name"], "Global Administrator");
    assert_eq!(wids[0]["claim"], "wids");
    assert_eq!(grants(&id, "scope", "scp"), [("api:read", at)]);
    assert_eq!(grants(&id, "scope", "scope"), [("api:read", at)]);
    // Auth0's: permissions, and a namespaced roles claim.
    assert_eq!(
        grants(&id, "permission", "permissions"),
        [("read:reports", at), ("export:reports", at)]
    );
    assert_eq!(
        grants(&id, "role", "https://latchkey.example/roles"),
        [("admin", at)]
    );
    // Groups and entitlements from each source: the access token, the ID token (which carries
    // the profile when the access token is for the API) and userinfo.
    assert_eq!(
        grants(&id, "group", "groups"),
        [
            ("engineering", "id_token"),
            ("on-call", "id_token"),
            ("engineering", at),
            ("engineering", "userinfo"),
            ("on-call", "userinfo"),
        ]
    );
    assert_eq!(
        grants(&id, "entitlement", "entitlements"),
        [
            ("urn:latchkey:entitlement:beta", "id_token"),
            ("urn:latchkey:entitlement:beta", "userinfo"),
        ]
    );
    assert_eq!(id["grants"]["groups_overage"], false);
    assert_eq!(id["grants"]["omitted"], 0);

    // No token in the output.
    let session = sb.stored_session("default").expect("session");
    for token in ["access_token", "id_token", "refresh_token"] {
        let secret = session[token].as_str().unwrap();
        assert!(!r.stdout.contains(secret), "{token} in status --json");
    }

    // The same in words.
    let human = sb.run(&["status"]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    for line in [
        "  Roles: Orders.Approver (access token), offline_access (access token), developer (access token), reader (access token)",
        "  Directory roles (Entra ID): Global Administrator [62e90394-69f5-4237-9190-012177145e10] (access token)",
        "  Permissions: read:reports (access token), export:reports (access token)",
        "  Entitlements: urn:latchkey:entitlement:beta (ID token), urn:latchkey:entitlement:beta (userinfo)",
        "  Access token scopes: api:read (access token)",
    ] {
        assert!(
            human.stdout.lines().any(|l| l.starts_with(line)),
            "{line:?} not in\n{}",
            human.stdout
        );
    }
}

#[test]
fn a_changed_profile_shows_without_signing_in_again() {
    let provider = Provider::start(&[]);
    let sb = Sandbox::new(&provider.issuer);
    assert_eq!(sb.login()["name"], "Alice Example");
    let stored_name = || {
        // `accounts` reads the keychain only: what the last refresh or status saved.
        let r = sb.run(&["accounts", "--json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.json()[0]["name"].as_str().unwrap().to_owned()
    };

    // After a refresh: the refresh fetched userinfo and saved the new name.
    provider.post("/__dev/users/alice", json!({ "name": "Alice Renamed" }));
    let r = sb.run(&["token", "--force-refresh"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(stored_name(), "Alice Renamed");
    assert_eq!(provider.code_redemptions(), 1, "one sign-in");
    assert_eq!(provider.refreshes(), 1);

    // At status, as at the app's start: userinfo again, groups too.
    provider.post(
        "/__dev/users/alice",
        json!({ "name": "Alice Third", "groups": ["support"] }),
    );
    let id = sb.run(&["status", "--json"]).json();
    assert_eq!(id["name"], "Alice Third");
    assert_eq!(grants(&id, "group", "groups"), [("support", "userinfo")]);
    assert_eq!(stored_name(), "Alice Third");

    // Userinfo down: status and refresh still work, with the claims as they were.
    provider.post(
        "/__dev/fault",
        json!({ "path": "/me", "status": 503, "count": -1 }),
    );
    provider.post("/__dev/users/alice", json!({ "name": "Alice Fourth" }));
    let r = sb.run(&["status", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["name"], "Alice Third");
    let r = sb.run(&["token", "--force-refresh"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(stored_name(), "Alice Third");
    assert!(provider.stats()["faults_served"]["/me"].as_u64().unwrap() >= 2);

    // Userinfo hanging: status waits 5 s for it at most, not for the HTTP timeouts (30 s).
    provider.post("/__dev/reset", json!({}));
    provider.post("/__dev/fault", json!({ "path": "/me", "delay_ms": 40000 }));
    let r = sb.run(&["status", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["name"], "Alice Third");
    assert!(r.elapsed < Duration::from_secs(12), "{:?}", r.elapsed);
    assert_eq!(provider.stats()["faults_served"]["/me"], 1);

    assert_eq!(sb.launches(), 1, "no browser after the sign-in");
}

#[test]
fn logout_provider_opens_the_end_session_page() {
    let provider = Provider::start(&[]);
    let sb = Sandbox::new(&provider.issuer);
    sb.login();
    let r = sb.run(&["logout", "--provider"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("Opened your browser to sign you out of the provider too."),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("id_token_hint"),
        "the URL carries the ID token and is not printed: {}",
        r.stderr
    );
    // The browser runs on after the CLI exits; the provider counts its visit.
    let deadline = Instant::now() + Duration::from_secs(30);
    while provider.stats()["end_session_requests"]
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "the end-session page was never requested"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(sb.launches(), 2, "sign-in and sign-out");
    assert!(sb.stored_session("default").is_none());

    // Signed out already: nothing to end, no browser. The browser is spawned detached, so a
    // launch could be logged after the command exits; with one that cannot start, any attempt
    // to open it is reported on stderr before the command exits.
    let out = sb
        .command(&["logout", "--provider"])
        .env("BROWSER", "/nonexistent/browser")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Not signed in"), "{stderr}");
    assert!(
        !stderr.contains("Opened your browser") && !stderr.contains("could not sign you out"),
        "a browser was asked for: {stderr}"
    );
    assert_eq!(sb.launches(), 2);
}
