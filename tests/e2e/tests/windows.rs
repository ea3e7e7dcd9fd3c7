//! The Windows CLI, cross-built for x86_64-pc-windows-gnu and run under Wine, against the real
//! dev provider and headless Chromium: loopback sign-in, the session in Wine's Credential Manager
//! (and in no file), token, headers, a refresh, logout, and the cross-process sign-in lock.
//!
//! Ignored in the Linux suites; `tests/cross/run e2e` builds latchkey.exe and runs these with
//! `--ignored` (tests/README.md, "Windows and macOS").

#![allow(clippy::unwrap_used)]

use latchkey_e2e::*;

/// The vault's primary entry for the default profile, as Credential Manager names it
/// (windows-native-keyring-store: `<user>.<service>`).
fn target(sb: &Sandbox) -> String {
    format!("{}.latchkey", sb.entry_name("default"))
}

#[test]
#[ignore = "the Windows CLI under Wine: run by tests/cross/run e2e"]
fn sign_in_token_refresh_and_logout_on_windows() {
    let provider = Provider::start(&[("DEV_ACCESS_TOKEN_TTL", "20")]);
    let sb = Sandbox::windows(&provider.issuer);

    let id = sb.login();
    assert_eq!(id["subject"], "alice");
    assert_eq!(id["name"], "Alice Example");
    assert_eq!(sb.launches(), 1);
    let requests = provider.get("/__dev/authorization_requests");
    let req = &requests.as_array().unwrap()[0];
    assert_eq!(req["code_challenge_method"], "S256");
    let redirect = url::Url::parse(req["redirect_uri"].as_str().unwrap()).unwrap();
    assert_eq!(
        redirect.host_str(),
        Some("127.0.0.1"),
        "RFC 8252 §7.3 loopback"
    );

    let status = sb.run(&["status", "--json"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert_eq!(status.json()["subject"], "alice");
    assert_eq!(
        status.json()["store"],
        "windows-credential-manager",
        "{}",
        status.stdout
    );

    let token = sb.run(&["token"]);
    assert_eq!(token.code, 0, "{}", token.stderr);
    let access = token.stdout.trim().to_owned();
    assert!(provider.is_active(&access));
    let headers = sb.run(&["headers", "--url", &format!("{}/me", provider.issuer)]);
    assert_eq!(headers.code, 0, "{}", headers.stderr);
    assert!(
        headers
            .stdout
            .contains(&format!("Authorization: Bearer {access}")),
        "{}",
        headers.stdout
    );

    // The session is a Credential Manager entry, and the token is in no file of the prefix
    // (the registry files included: Wine encrypts credential blobs).
    sb.wine_settle();
    let creds = sb.wine_credentials();
    assert!(creds.iter().any(|c| c.ends_with(&target(&sb))), "{creds:?}");
    assert_eq!(
        files_containing(&sb.wine_prefix(), &access),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(
        files_containing(&sb.home(), &access),
        Vec::<std::path::PathBuf>::new()
    );

    // A refresh once the access token expired: a new token, saved back to the keychain.
    sleep_until(id["expires_at"].as_str().unwrap());
    let before = provider.refreshes();
    let again = sb.run(&["token"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_ne!(again.stdout.trim(), access);
    assert!(provider.is_active(again.stdout.trim()));
    assert_eq!(provider.refreshes(), before + 1);
    let third = sb.run(&["token"]);
    assert_eq!(
        third.stdout, again.stdout,
        "the refreshed session was stored"
    );
    assert_eq!(provider.refreshes(), before + 1);

    let out = sb.run(&["logout"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(provider.stats()["revocations"], 1);
    let status = sb.run(&["status"]);
    assert_eq!(status.code, 1, "{}", status.stderr);
    assert!(
        status.error_line().contains("not signed in"),
        "{}",
        status.stderr
    );
    sb.wine_settle();
    let creds = sb.wine_credentials();
    assert!(
        !creds.iter().any(|c| c.contains(&sb.entry_name("default"))),
        "{creds:?}"
    );
    assert_eq!(sb.launches(), 1);
}

/// Two `login`s at once: the cross-process sign-in lock (a lock file under %LOCALAPPDATA%)
/// lets one open the browser while the other waits for it, then finds the session.
#[test]
#[ignore = "the Windows CLI under Wine: run by tests/cross/run e2e"]
fn two_logins_at_once_open_one_browser_on_windows() {
    let provider = Provider::start(&[]);
    let sb = Sandbox::windows(&provider.issuer);
    let spawn = || {
        sb.command(&["login"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(b.status.success(), "{}", stderr(&b));
    let waited = [&a, &b]
        .iter()
        .filter(|o| stderr(o).contains("waiting for it"))
        .count();
    assert_eq!(
        waited,
        1,
        "one waited for the other: {} / {}",
        stderr(&a),
        stderr(&b)
    );
    assert_eq!(sb.launches(), 1, "one browser for two concurrent logins");
    assert_eq!(provider.code_redemptions(), 1);
}
