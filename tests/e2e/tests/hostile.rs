//! A hostile provider, end to end (issue 18): what it sends never crashes the CLI and never
//! reaches the user's terminal raw. Each case failed before its fix: the first made `latchkey
//! login` panic inside `openidconnect`'s userinfo request (exit 101), the second let a display
//! name write the clipboard (OSC 52) and clear the screen.

#![allow(clippy::unwrap_used)]

use latchkey_e2e::*;
use serde_json::json;

/// The terminal escapes a hostile name carries: OSC 52 (write the clipboard), then CSI 2J (clear
/// the screen), each ended by BEL.
const HOSTILE_NAME: &str = "Mallory \u{1b}]52;c;ZXZpbA==\u{7}\u{1b}[2JExample";

#[test]
fn an_access_token_with_cr_lf_is_refused_with_a_clear_error_not_a_crash() {
    let provider = Provider::start(&[]);
    let sb = Sandbox::new(&provider.issuer);
    // The token response's access_token holds CR/LF; `at_hash` is dropped from the re-signed ID
    // token so that nothing else in the response is wrong.
    let tamper = json!({
        "at": "token",
        "response": { "set": { "access_token": "ok\r\nX-Evil: 1" } },
        "id_token": { "unset": ["at_hash"] },
    });
    assert_eq!(provider.post("/__dev/tamper", tamper)["ok"], true);
    let r = sb.run(&["login", "--json"]);
    assert_eq!(r.code, 2, "a provider error, not a crash: {}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    // The error is the last line, one line, after the browser notice.
    let error = r.stderr.trim().lines().last().unwrap_or_default();
    assert!(
        error.starts_with("latchkey: ")
            && error.contains("the provider's access_token has characters a token cannot have"),
        "{}",
        r.stderr
    );
    assert!(sb.stored_session("default").is_none(), "nothing was stored");
    assert_eq!(
        provider.stats()["tampers_served"]["token"].as_u64(),
        Some(1),
        "the hostile answer was served"
    );
}

#[test]
fn identity_text_output_carries_no_terminal_escapes_and_json_stays_exact() {
    let provider = Provider::start(&[]);
    let sb = Sandbox::new(&provider.issuer);
    sb.login();
    provider.post("/__dev/users/alice", json!({ "name": HOSTILE_NAME }));
    // `status` fetches userinfo again, so the hostile name is now the account's.
    let json = sb.run(&["status", "--json"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    assert_eq!(json.json()["name"], HOSTILE_NAME, "JSON output is exact");
    for args in [&["status"][..], &["accounts"][..], &["doctor"][..]] {
        let r = sb.run(args);
        let shown = format!("{}{}", r.stdout, r.stderr);
        assert!(
            !shown.contains('\u{1b}') && !shown.contains('\u{7}'),
            "`latchkey {}` printed a terminal escape: {shown:?}",
            args[0]
        );
        assert!(
            shown.contains("Mallory") && shown.contains("Example"),
            "`latchkey {}` still names the account: {shown:?}",
            args[0]
        );
    }
}

/// Issue 18, M1: a same-user process that cannot read the keychain can still rewrite the
/// discovery cache on disk. A new sign-in fetches the metadata fresh from the issuer, so a
/// rewritten `token_endpoint` gets neither the code nor the verifier, and is not bound into the
/// session.
#[test]
fn a_rewritten_discovery_cache_does_not_choose_where_a_new_sign_in_sends_its_code() {
    let provider = Provider::start(&[]);
    let sb = Sandbox::new(&provider.issuer);
    sb.login(); // fills the cache
    assert_eq!(sb.run(&["logout"]).code, 0);
    let thief = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    thief.set_nonblocking(true).unwrap();
    let stolen = format!("http://{}/token", thief.local_addr().unwrap());
    let providers = sb.dir.path().join("home/.cache/latchkey/providers");
    let mut rewritten = 0;
    let mut real = String::new();
    for entry in std::fs::read_dir(&providers).unwrap() {
        let path = entry.unwrap().path();
        let mut cache: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        real = cache["metadata"]["token_endpoint"]
            .as_str()
            .unwrap()
            .to_owned();
        cache["metadata"]["token_endpoint"] = json!(stolen);
        std::fs::write(&path, serde_json::to_vec(&cache).unwrap()).unwrap();
        rewritten += 1;
    }
    assert_eq!(
        rewritten,
        1,
        "one cached provider in {}",
        providers.display()
    );

    let id = sb.login();
    assert_eq!(id["subject"], "alice");
    assert!(
        thief.accept().is_err(),
        "the rewritten token endpoint was contacted"
    );
    let stored = sb.stored_session("default").unwrap();
    assert_eq!(stored["endpoints"]["token"], real.as_str());
}
