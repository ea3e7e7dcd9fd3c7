//! The core in-process, against the real provider and keychain.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use latchkey_core::Latchkey;
use latchkey_e2e::*;

mod common;
use common::core_for;

/// Starts a sign-in and returns its `state`, to craft responses for it.
async fn begin_state(latchkey: &Latchkey, redirect: &url::Url) -> String {
    let sign_in = latchkey.begin(redirect).await.unwrap();
    let state = sign_in
        .url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1;
    state.into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_requests_at_expiry_refresh_once() {
    let provider = Provider::start(&[("DEV_ACCESS_TOKEN_TTL", "4")]);
    let sb = Sandbox::new(&provider.issuer);
    let id = sb.login(); // the CLI signs in; the core in this process shares its keychain session
    let latchkey = Arc::new(core_for(&sb));
    assert_eq!(latchkey.current().await.unwrap().unwrap().subject, "alice");
    sleep_until(id["expires_at"].as_str().unwrap());

    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let l = Arc::clone(&latchkey);
            tokio::spawn(async move { l.access_token().await })
        })
        .collect();
    let mut tokens = std::collections::BTreeSet::new();
    for t in tasks {
        tokens.insert(t.await.unwrap().unwrap().secret().to_owned());
    }
    assert_eq!(tokens.len(), 1, "every caller got the one refreshed token");
    assert_eq!(provider.refreshes(), 1);
    assert_eq!(
        sb.stored_session("default").unwrap()["access_token"]
            .as_str()
            .unwrap(),
        tokens.first().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_replayed_after_sign_in_is_rejected_before_the_token_endpoint() {
    let provider = Provider::start(&[]);
    let sb = Sandbox::new(&provider.issuer);
    let latchkey = core_for(&sb);
    // The app's way: begin with the custom-scheme redirect, let the browser driver capture the
    // redirect instead of an OS, then hand it to resume() — twice.
    let redirect = url::Url::parse("com.example.latchkey:/callback").unwrap();
    let sign_in = latchkey.begin(&redirect).await.unwrap();
    let capture = sb.dir.path().join("captured.txt");
    let status = std::process::Command::new("node")
        .arg(root().join("tests/browser/driver.mjs"))
        .arg(sign_in.url.as_str())
        .env("DRIVER_CAPTURE", &capture)
        .env("DBUS_SESSION_BUS_ADDRESS", "disabled:")
        .status()
        .unwrap();
    assert!(status.success());
    let url = std::fs::read_to_string(&capture).unwrap();
    assert!(
        url.starts_with("com.example.latchkey:/callback?code="),
        "{url}"
    );

    let identity = latchkey.resume(url.trim()).await.unwrap();
    assert_eq!(identity.subject, "alice");
    assert_eq!(provider.code_redemptions(), 1);

    let replay = latchkey.resume(url.trim()).await.unwrap_err();
    assert_eq!(replay.kind(), latchkey_core::ErrorKind::ForeignCallback);
    assert_eq!(
        provider.code_redemptions(),
        1,
        "a replay never reaches the token endpoint"
    );

    // A fresh process (a new Latchkey) has no sign-in in flight: "started by an earlier window".
    let other = core_for(&sb);
    let e = other.resume(url.trim()).await.unwrap_err();
    assert!(e.message().contains("earlier window"), "{e}");

    // RFC 9207: a response whose iss names another issuer is refused.
    let state = begin_state(&latchkey, &redirect).await;
    let mixed_up = format!(
        "com.example.latchkey:/callback?code=x&state={state}&iss=https%3A%2F%2Fevil.example"
    );
    let e = latchkey.resume(&mixed_up).await.unwrap_err();
    assert!(e.message().contains("different provider"), "{e}");
    // ...and so is one without iss, since this provider promises it.
    let state = begin_state(&latchkey, &redirect).await;
    let e = latchkey
        .resume(&format!(
            "com.example.latchkey:/callback?code=x&state={state}"
        ))
        .await
        .unwrap_err();
    assert!(e.message().contains("RFC 9207"), "{e}");
    assert_eq!(provider.code_redemptions(), 1);
}
