//! The `latchkey` CLI against a second real provider, LemonLDAP::NG 2.16 (Debian's), through
//! headless Chromium and the Secret Service. Each quirk it has is named in tests/README.md
//! ("LemonLDAP::NG quirks"); the tests below pin them, so a LemonLDAP::NG that changes fails here.

#![allow(clippy::unwrap_used)]

use latchkey_e2e::*;

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

fn claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// In a module, so `tests/run` can leave these out of the dev-provider step (`--skip lemonldap::`)
/// and run them in a step of their own.
mod lemonldap {
    use super::*;

    #[test]
    fn login_with_pkce_status_and_token() {
        let lemon = Lemon::start(LemonOptions::default());
        let disco = lemon.discovery();
        assert_eq!(disco["issuer"], lemon.issuer.as_str());
        let sb = lemon.sandbox();

        let id = sb.login();
        assert_eq!(id["issuer"], lemon.issuer.as_str());
        assert_eq!(id["subject"], LEMON_USER);
        assert_eq!(id["name"], LEMON_NAME, "from userinfo");
        assert_eq!(id["email"], LEMON_EMAIL);
        // Quirk: offline_access is granted (an offline refresh token comes back) but the token
        // response's `scope` leaves it out, so Latchkey reports it as not granted.
        assert_eq!(
            strings(&id["scopes"]),
            ["openid", "profile", "email", "api:read"],
            "{id}"
        );
        assert!(strings(&id["requested_scopes"]).contains(&"offline_access"));
        assert_eq!(sb.launches(), 1);

        let r = sb.run(&["status", "--json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let st = r.json();
        assert_eq!(st["subject"], LEMON_USER);
        assert_eq!(st["refreshable"], true, "{st}");
        let human = sb.run(&["status"]);
        assert!(
            human
                .stdout
                .contains(&format!("Signed in as {LEMON_NAME} <{LEMON_EMAIL}>")),
            "{}",
            human.stdout
        );
        assert!(
            human
                .stdout
                .contains("granted:  openid profile email api:read"),
            "{}",
            human.stdout
        );

        // token: the stored access token, which LemonLDAP::NG's userinfo accepts.
        let r = sb.run(&["token"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let session = sb.stored_session("default").expect("session stored");
        assert_eq!(r.stdout.trim(), session["access_token"].as_str().unwrap());
        let (status, info) = lemon.userinfo(r.stdout.trim());
        assert_eq!(status, 200, "{}", shown(&info));
        assert_eq!(info["sub"], LEMON_USER);
        let (status, _) = lemon.userinfo("not-a-token");
        assert_eq!(status, 401, "userinfo refuses what it did not issue");
        assert!(
            session["refresh_token"].is_string(),
            "a refresh token issued"
        );
        let idt = claims(session["id_token"].as_str().unwrap());
        assert_eq!(idt["iss"], lemon.issuer.as_str());
        assert_eq!(idt["azp"], CLIENT_ID);
        assert_eq!(sb.launches(), 1, "status and token open no browser");

        assert!(
            human.stdout.contains("denied:   offline_access"),
            "{}",
            human.stdout
        );
    }

    /// The relying party requires PKCE, so the sign-ins above did send it: the same request
    /// without a code challenge comes back as an error (RFC 7636 §4.4.1).
    #[test]
    fn the_relying_party_requires_pkce() {
        let lemon = Lemon::start(LemonOptions::default());
        let mut auth = url::Url::parse(
            lemon.discovery()["authorization_endpoint"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        auth.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", CLIENT_ID)
            .append_pair("scope", "openid")
            .append_pair("redirect_uri", &lemon.redirect_uri())
            .append_pair("state", "s-123");
        let callback = redirect_to_listener(&lemon, &auth);
        let q: std::collections::HashMap<_, _> = callback.query_pairs().into_owned().collect();
        assert_eq!(
            q.get("error").map(String::as_str),
            Some("invalid_request"),
            "{callback}"
        );
        assert_eq!(
            q.get("error_description").map(String::as_str),
            Some("Code challenge is required")
        );
        assert_eq!(q.get("state").map(String::as_str), Some("s-123"));
        assert!(!q.contains_key("code"));
    }

    #[test]
    fn expired_access_token_is_refreshed_without_rotation() {
        let lemon = Lemon::start(LemonOptions {
            access_token_ttl: Some(3),
            ..Default::default()
        });
        let sb = lemon.sandbox();
        let id = sb.login();
        let before = sb.stored_session("default").unwrap();
        sleep_until(id["expires_at"].as_str().unwrap());

        let r = sb.run(&["token"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let after = sb.stored_session("default").unwrap();
        assert_ne!(after["access_token"], before["access_token"]);
        assert_eq!(r.stdout.trim(), after["access_token"].as_str().unwrap());
        assert_eq!(lemon.userinfo(r.stdout.trim()).0, 200);
        // Quirk: no rotation. The refresh response has no refresh_token, so Latchkey keeps the old
        // one (RFC 6749 §6), which still works.
        assert_eq!(after["refresh_token"], before["refresh_token"]);
        // Quirk: a new ID token on every refresh (OIDC Core §12.2 allows it), same subject, no nonce.
        assert_ne!(after["id_token"], before["id_token"]);
        let (old, new) = (
            claims(before["id_token"].as_str().unwrap()),
            claims(after["id_token"].as_str().unwrap()),
        );
        assert_eq!(new["sub"], old["sub"]);
        assert_eq!(new["auth_time"], old["auth_time"]);
        assert!(
            old["nonce"].is_string() && new.get("nonce").is_none(),
            "{new}"
        );
        let s = sb.run(&["status", "--json"]).json();
        assert!(s["expires_at"].as_str().unwrap() > id["expires_at"].as_str().unwrap());
        assert_eq!(s["subject"], LEMON_USER);
    }

    #[test]
    fn logout_cannot_revoke_there_is_no_revocation_endpoint() {
        let lemon = Lemon::start(LemonOptions::default());
        // Quirk: 2.16 has no RFC 7009 endpoint.
        assert!(lemon.discovery().get("revocation_endpoint").is_none());
        let sb = lemon.sandbox();
        sb.login();
        let rt = sb.stored_session("default").unwrap()["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();

        let r = sb.run(&["logout"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(
            r.stderr
                .contains("the provider was not told: the provider offers no revocation endpoint"),
            "{}",
            r.stderr
        );
        assert!(secret_search(&lemon.issuer).is_empty(), "the entry is gone");
        assert_eq!(sb.run(&["status"]).code, 1);
        // The offline refresh token outlives the logout: whoever copied it can still refresh.
        let (status, body) = lemon.refresh_at_provider(&rt);
        assert_eq!(status, 200, "{}", shown(&body));
        assert!(body["access_token"].is_string());
    }

    /// What logout can do here: the app opens the end-session URL in the browser (OIDC RP-Initiated
    /// Logout §2), which ends the SSO session, and with it every refresh token tied to it. Offline
    /// ones are not tied to it, so this needs the RP's offline access off.
    #[test]
    fn end_session_in_the_browser_revokes_online_refresh_tokens() {
        let lemon = Lemon::start(LemonOptions {
            cookie_expiration: Some(600),
            no_offline: true,
            ..Default::default()
        });
        let mut sb = lemon.sandbox();
        let profile = sb.dir.path().join("browser-profile");
        sb.set("DRIVER_PROFILE_DIR", profile.to_str().unwrap());
        sb.login();
        let session = sb.stored_session("default").unwrap();
        let rt = session["refresh_token"].as_str().unwrap().to_owned();
        let id_token = session["id_token"].as_str().unwrap().to_owned();
        assert_eq!(lemon.refresh_at_provider(&rt).0, 200, "live before");

        let r = sb.run(&["logout"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(
            lemon.refresh_at_provider(&rt).0,
            200,
            "logout alone revokes nothing"
        );

        // The end-session request as core's `end_session_url` builds it, in the signed-in browser.
        let disco = lemon.discovery();
        let mut end = url::Url::parse(disco["end_session_endpoint"].as_str().unwrap()).unwrap();
        end.query_pairs_mut()
            .append_pair("id_token_hint", &id_token)
            .append_pair("client_id", CLIENT_ID)
            .append_pair(
                "post_logout_redirect_uri",
                &format!("http://127.0.0.1:{}/logout", lemon.redirect_port),
            )
            .append_pair("state", "end-session-state");
        // Quirk: for a signed-in browser the portal ends the session and then sends it to its
        // own page, never to post_logout_redirect_uri (2.16's deleteSession returns its own
        // redirect first). So the browser only opens the URL; a listener proves nothing came.
        let listener = std::net::TcpListener::bind(("127.0.0.1", lemon.redirect_port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let driver = std::process::Command::new("node")
            .arg(root().join("tests/browser/driver.mjs"))
            .arg(end.as_str())
            .env("DRIVER_PROFILE_DIR", &profile)
            .env("DRIVER_ACTION", "none")
            .env("DRIVER_HOLD_MS", "3000")
            .output()
            .unwrap();
        assert!(
            driver.status.success(),
            "{}",
            String::from_utf8_lossy(&driver.stderr).replace(&id_token, "[id_token]")
        );
        assert!(
            matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "the portal now follows post_logout_redirect_uri: update the quirk list"
        );
        assert!(
            lemon.portal_log().contains("has been disconnected"),
            "the SSO session was ended"
        );

        let (status, body) = lemon.refresh_at_provider(&rt);
        assert_eq!(
            (status, &body["error"]),
            (400, &Value::from("invalid_grant")),
            "{}",
            shown(&body)
        );
    }

    #[test]
    fn a_provider_ended_session_signs_out_with_invalid_grant() {
        let lemon = Lemon::start(LemonOptions {
            no_offline: true,
            ..Default::default()
        });
        let sb = lemon.sandbox();
        sb.login();
        // An administrator ends the SSO session at the provider.
        let sso = lemon.session_ids("_session_kind=SSO");
        assert_eq!(sso.len(), 1, "one SSO session: {sso:?}");
        lemon.delete_sessions(None, &[&sso[0]]);

        let r = sb.run(&["token", "--force-refresh"]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.error_line().contains("invalid_grant"), "{}", r.stderr);
        assert!(r.stdout.is_empty());
        assert!(
            secret_search(&lemon.issuer).is_empty(),
            "invalid_grant ends it"
        );
    }

    /// Quirk: a refresh token LemonLDAP::NG does not know (an offline session removed or expired)
    /// gets `invalid_request`, not RFC 6749 §5.2's `invalid_grant`. Latchkey ends a session only on
    /// `invalid_grant`, so it keeps this one and says how to get out.
    #[test]
    fn an_unknown_refresh_token_is_invalid_request_and_keeps_the_session() {
        let lemon = Lemon::start(LemonOptions::default());
        let sb = lemon.sandbox();
        sb.login();
        let rt = sb.stored_session("default").unwrap()["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        // An administrator removes the offline session (or it expires, 30 days by default).
        lemon.delete_sessions(None, &[&rt]);
        let (status, body) = lemon.refresh_at_provider(&rt);
        assert_eq!(
            (status, &body["error"]),
            (400, &Value::from("invalid_request")),
            "{}",
            shown(&body)
        );

        let r = sb.run(&["token", "--force-refresh"]);
        assert_ne!(r.code, 0);
        let line = r.error_line();
        assert!(
            line.contains("(still signed in)")
                && line.contains("invalid_request")
                && line.ends_with("; run `latchkey login`"),
            "{}",
            r.stderr
        );
        assert!(sb.stored_session("default").is_some());
        // `login` is the way out, and replaces the session.
        sb.login();
        let new_rt = sb.stored_session("default").unwrap()["refresh_token"].clone();
        assert_ne!(new_rt, Value::from(rt));
        assert_eq!(sb.run(&["token", "--force-refresh"]).code, 0);
    }

    #[test]
    fn refused_consent_is_consent_required() {
        let lemon = Lemon::start(LemonOptions::default());
        let mut sb = lemon.sandbox();
        sb.set("DRIVER_ACTION", "deny");
        let r = sb.run(&["login"]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        let line = r.error_line();
        // Quirk: "Refuse" gives consent_required ("consent not given"), not access_denied.
        assert!(
            line.contains("(consent_required)") && line.contains("consent not given"),
            "{line}"
        );
        assert_eq!(line.lines().count(), 1);
        assert!(secret_search(&lemon.issuer).is_empty(), "nothing stored");
    }

    /// Quirk: redirect URIs are compared as exact strings, so the RFC 8252 §7.3 loopback redirect on
    /// an ephemeral port is refused on the portal's own error page after the user signed in, and
    /// never reaches Latchkey. Latchkey is configured with the registered fixed port instead
    /// (`redirect_uri = "http://127.0.0.1:<port>/callback"`), which every other test here uses.
    #[test]
    fn an_ephemeral_loopback_port_is_refused() {
        let lemon = Lemon::start(LemonOptions::default());
        let mut sb = lemon.sandbox();
        sb.unset("LATCHKEY_REDIRECT_URI")
            .set("LATCHKEY_LOGIN_TIMEOUT", "10");
        let r = sb.run(&["login"]);
        assert_ne!(r.code, 0, "{}", r.stderr);
        assert!(
            r.error_line().contains("no sign-in completed within 10 s"),
            "{}",
            r.stderr
        );
        let log = std::fs::read_to_string(sb.dir.path().join("driver.log")).unwrap();
        assert!(
            log.contains("provider error page") && log.contains("LemonLDAP::NG error"),
            "{log}"
        );
        assert!(
            lemon
                .portal_log()
                .lines()
                .any(|l| l.contains("Redirect URI") && l.contains("not allowed")),
            // Not the log itself: the portal logs codes and tokens it cannot find.
            "the portal logged no refused redirect URI"
        );
        assert!(secret_search(&lemon.issuer).is_empty());
    }
}

/// Runs the browser driver (as `dwho`) on `url` and returns the URL it was redirected to on the
/// registered loopback port, answering that one request as the app's listener would.
fn redirect_to_listener(lemon: &Lemon, url: &url::Url) -> url::Url {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind(("127.0.0.1", lemon.redirect_port)).unwrap();
    let answer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 8192];
        let n = s.read(&mut buf).unwrap_or(0);
        let _ =
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    let driver = std::process::Command::new("node")
        .arg(root().join("tests/browser/driver.mjs"))
        .arg(url.as_str())
        .env("DRIVER_USER", LEMON_USER)
        .env("DRIVER_PASSWORD", LEMON_USER)
        .env("DRIVER_TIMEOUT_MS", "30000")
        .output()
        .unwrap();
    assert!(
        driver.status.success(),
        "{}",
        String::from_utf8_lossy(&driver.stderr)
    );
    let request = answer.join().unwrap();
    let target = request
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("not an HTTP request: {request:?}"));
    url::Url::parse(&format!("http://127.0.0.1:{}{target}", lemon.redirect_port)).unwrap()
}
