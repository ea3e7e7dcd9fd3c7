//! DPoP, sender-constrained tokens (RFC 9449), with the real CLI, the dev provider's own DPoP
//! (oidc-provider's `features.dPoP`, `DEV_DPOP`), headless Chromium, the keychain and curl:
//! the key's thumbprint in the authorization request, a proof on the code redemption, every
//! refresh and userinfo call, `use_dpop_nonce` answered once, `auto`/`always`/`never`,
//! `latchkey headers` used by curl (and a replayed proof refused), and the private key found
//! nowhere but the keychain.

#![allow(clippy::unwrap_used)]

use latchkey_e2e::*;

/// A proof as the provider recorded it: (header, claims).
fn proof(record: &Value) -> (&Value, &Value) {
    let dpop = &record["dpop"];
    assert!(dpop.is_object(), "no DPoP proof in {record}");
    (&dpop["header"], &dpop["claims"])
}

/// The RFC 9449 §4.2 shape every proof must have.
fn assert_proof_shape(record: &Value, htm: &str, htu: &str) {
    let (header, claims) = proof(record);
    assert_eq!(header["typ"], "dpop+jwt", "{header}");
    assert_eq!(header["alg"], "ES256", "{header}");
    let jwk = header["jwk"].as_object().unwrap();
    let mut members: Vec<&str> = jwk.keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(members, ["crv", "kty", "x", "y"], "public members only");
    assert_eq!(claims["htm"], htm, "{claims}");
    assert_eq!(claims["htu"], htu, "{claims}");
    assert!(claims["iat"].as_i64().unwrap() > 1_700_000_000, "{claims}");
    // base64url: 16 characters are 96 bits.
    assert!(claims["jti"].as_str().unwrap().len() >= 16, "{claims}");
}

fn token_requests(provider: &Provider, grant: &str) -> Vec<Value> {
    provider.get("/__dev/token_requests").as_array().unwrap()[..]
        .iter()
        .filter(|r| r["grant_type"] == grant)
        .cloned()
        .collect()
}

fn userinfo_requests(provider: &Provider) -> Vec<Value> {
    provider
        .get("/__dev/userinfo_requests")
        .as_array()
        .unwrap()
        .clone()
}

/// Every output and log line of the test so far, for the "nowhere else" scan.
#[derive(Default)]
struct Seen(String);

impl Seen {
    fn run(&mut self, sb: &Sandbox, args: &[&str]) -> Run {
        let r = sb.run(args);
        self.0.push_str(&r.stdout);
        self.0.push_str(&r.stderr);
        r
    }
}

#[test]
fn dpop_binds_the_code_every_refresh_and_userinfo_to_a_key_kept_only_in_the_keychain() {
    let provider = Provider::start(&[("DEV_DPOP", "on"), ("DEV_ACCESS_TOKEN_TTL", "4")]);
    let mut sb = Sandbox::new(&provider.issuer);
    sb.set("LATCHKEY_LOG", "trace");
    let mut seen = Seen::default();
    let token_url = format!("{}/token", provider.issuer);
    let me_url = format!("{}/me", provider.issuer);

    let login = seen.run(&sb, &["login", "--json"]);
    assert_eq!(login.code, 0, "{}", login.stderr);
    let identity = login.json();
    assert_eq!(identity["token_type"], "DPoP", "{identity}");
    let jkt = identity["dpop_jkt"].as_str().unwrap().to_owned();
    assert_eq!(jkt.len(), 43, "a base64url SHA-256: {jkt}");

    // RFC 9449 §10: the authorization request names the key.
    let auth = provider.get("/__dev/authorization_requests");
    assert_eq!(auth.as_array().unwrap().last().unwrap()["dpop_jkt"], jkt);
    // §5: the code redemption carries a proof, without ath (no access token is presented).
    let codes = token_requests(&provider, "authorization_code");
    assert_eq!(codes.len(), 1, "{codes:?}");
    assert_eq!(codes[0]["status"], 200, "{:?}", codes[0]);
    assert_proof_shape(&codes[0], "POST", &token_url);
    assert!(proof(&codes[0]).1.get("ath").is_none());
    // §7: userinfo gets the token as `DPoP` with a proof whose ath is the token's hash.
    let infos = userinfo_requests(&provider);
    assert_eq!(infos.len(), 1, "{infos:?}");
    assert_eq!(infos[0]["scheme"], "DPoP");
    assert_eq!(infos[0]["status"], 200, "{:?}", infos[0]);
    assert_proof_shape(&infos[0], "GET", &me_url);
    assert!(proof(&infos[0]).1["ath"].as_str().unwrap().len() == 43);
    assert_eq!(
        identity["email"], "alice@example.com",
        "profile from userinfo"
    );

    // The provider bound the tokens to that very key (cnf.jkt, §6).
    let stored = sb.stored_session("default").unwrap();
    let key = stored["dpop_key"].as_str().unwrap().to_owned();
    assert!(key.len() >= 43, "the private scalar, base64url");
    let access = stored["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        provider.post("/__dev/introspect", serde_json::json!({ "token": access }))["jkt"],
        jkt
    );
    let refresh = stored["refresh_token"].as_str().unwrap();
    assert_eq!(
        provider.post("/__dev/introspect", serde_json::json!({ "token": refresh }))["jkt"],
        jkt
    );

    // status --json says so too; token --json reports the type.
    let status = seen.run(&sb, &["status", "--json"]);
    assert_eq!(status.json()["token_type"], "DPoP");
    assert_eq!(status.json()["dpop_jkt"], jkt);
    let token = seen.run(&sb, &["token", "--json"]);
    assert_eq!(token.json()["token_type"], "DPoP", "{}", token.stdout);

    // kubectl gets the ID token as before; an access token it would send as Bearer is refused.
    sb.set(
        "KUBERNETES_EXEC_INFO",
        r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#,
    );
    let r = seen.run(&sb, &["exec-credential"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["status"]["token"], stored["id_token"]);
    let r = seen.run(&sb, &["exec-credential", "--token", "access"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    let line = r.error_line();
    assert!(
        line.contains("DPoP-bound") && line.contains("dpop = \"never\""),
        "{line}"
    );
    sb.unset("KUBERNETES_EXEC_INFO");

    // A refresh with the same key: a proof, and the new tokens bound to it again.
    sleep_until(stored["expires_at"].as_str().unwrap());
    let token = seen.run(&sb, &["token"]);
    assert_eq!(token.code, 0, "{}", token.stderr);
    let refreshes = token_requests(&provider, "refresh_token");
    assert_eq!(refreshes.len(), 1, "{refreshes:?}");
    assert_eq!(refreshes[0]["status"], 200, "{:?}", refreshes[0]);
    assert_proof_shape(&refreshes[0], "POST", &token_url);
    let (h_code, _) = proof(&codes[0]);
    assert_eq!(proof(&refreshes[0]).0["jwk"], h_code["jwk"], "the same key");
    assert_ne!(proof(&refreshes[0]).1["jti"], proof(&codes[0]).1["jti"]);
    let fresh = token.stdout.trim().to_owned();
    assert_ne!(fresh, access);
    assert_eq!(
        provider.post("/__dev/introspect", serde_json::json!({ "token": fresh }))["jkt"],
        jkt
    );
    assert_eq!(
        sb.stored_session("default").unwrap()["dpop_key"],
        key.as_str()
    );

    // The private key is in no file (HOME, /tmp), no output and no trace log.
    let headers = seen.run(&sb, &["headers", "--url", &me_url]);
    assert_eq!(headers.code, 0, "{}", headers.stderr);
    // The refresh filled the kernel token cache with the token and its key: no keychain read.
    assert!(
        headers
            .stderr
            .contains("DPoP token and key served from the token cache"),
        "{}",
        headers.stderr
    );
    // Without the cache, the key comes from the keychain, and the headers are the same kind.
    sb.set("LATCHKEY_TOKEN_CACHE", "off");
    let uncached = seen.run(&sb, &["headers", "--url", &me_url]);
    sb.unset("LATCHKEY_TOKEN_CACHE");
    assert_eq!(uncached.code, 0, "{}", uncached.stderr);
    assert!(!uncached.stderr.contains("served from the token cache"));
    assert_eq!(
        uncached.stdout.lines().next(),
        headers.stdout.lines().next(),
        "the same DPoP token"
    );
    assert!(
        seen.0.contains("TRACE") || seen.0.contains("DEBUG"),
        "the log level applied"
    );
    assert!(
        !seen.0.contains(&key),
        "the private key appears in the output or log"
    );
    assert!(files_containing(&sb.home(), &key).is_empty());
    assert!(sb.tmp_files_containing(&key).is_empty());
    assert_eq!(seen.run(&sb, &["logout"]).code, 0);
}

#[test]
fn without_dpop_at_the_provider_or_with_dpop_never_the_tokens_are_bearer() {
    // The provider offers no DPoP: auto signs in with Bearer, and no proof is sent.
    let provider = Provider::start(&[]);
    let sb = Sandbox::new(&provider.issuer);
    let identity = sb.login();
    assert_eq!(identity["token_type"], "Bearer");
    assert!(identity["dpop_jkt"].is_null(), "{identity}");
    let auth = provider.get("/__dev/authorization_requests");
    assert!(
        auth.as_array().unwrap()[0].get("dpop_jkt").is_none(),
        "{auth}"
    );
    assert!(token_requests(&provider, "authorization_code")[0]["dpop"].is_null());
    assert!(
        sb.stored_session("default")
            .unwrap()
            .get("dpop_key")
            .is_none()
    );
    let headers = sb.run(&["headers", "--url", &format!("{}/me", provider.issuer)]);
    assert_eq!(headers.code, 0, "{}", headers.stderr);
    let token = sb.run(&["token"]).stdout;
    assert_eq!(headers.stdout, format!("Authorization: Bearer {token}"));
    // Kernel keyring keys are per user, not per HOME: a later test's provider may get this port.
    assert_eq!(sb.run(&["logout"]).code, 0);

    // `always` fails before any browser, naming the key and the fix.
    let mut always = Sandbox::new(&provider.issuer);
    always.set("LATCHKEY_DPOP", "always");
    let r = always.run(&["login"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let line = r.error_line();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.contains("`dpop` is always")
            && line.contains("dpop_signing_alg_values_supported")
            && line.contains("set dpop to auto or never"),
        "{line}"
    );
    assert_eq!(always.launches(), 0);

    // The provider offers DPoP, `never` keeps Bearer: no dpop_jkt, no proof anywhere.
    let provider = Provider::start(&[("DEV_DPOP", "on")]);
    let mut never = Sandbox::new(&provider.issuer);
    never.set("LATCHKEY_DPOP", "never");
    let identity = never.login();
    assert_eq!(identity["token_type"], "Bearer");
    assert!(identity["dpop_jkt"].is_null());
    assert!(
        provider.get("/__dev/authorization_requests")[0]
            .get("dpop_jkt")
            .is_none()
    );
    assert!(token_requests(&provider, "authorization_code")[0]["dpop"].is_null());
    assert_eq!(userinfo_requests(&provider)[0]["scheme"], "Bearer");
    assert_eq!(never.run(&["logout"]).code, 0);

    // DPoP without ES256: auto stays Bearer, always says why.
    let provider = Provider::start(&[("DEV_DPOP", "on"), ("DEV_DPOP_ALGS", "EdDSA")]);
    let auto = Sandbox::new(&provider.issuer);
    assert_eq!(auto.login()["token_type"], "Bearer");
    assert_eq!(auto.run(&["logout"]).code, 0);
    let mut always = Sandbox::new(&provider.issuer);
    always.set("LATCHKEY_DPOP", "always");
    let r = always.run(&["login"]);
    assert_eq!(r.code, 2);
    assert!(
        r.error_line()
            .contains("does not offer ES256 (dpop_signing_alg_values_supported: EdDSA)"),
        "{}",
        r.stderr
    );
    assert_eq!(always.launches(), 0);
}

#[test]
fn use_dpop_nonce_is_answered_once_with_the_servers_nonce_then_fails_clearly() {
    // The provider requires a nonce in every proof (features.dPoP.requireNonce).
    let provider = Provider::start(&[("DEV_DPOP", "nonce")]);
    let sb = Sandbox::new(&provider.issuer);
    let identity = sb.login();
    assert_eq!(identity["token_type"], "DPoP");
    // The token endpoint: a 400 use_dpop_nonce (§8), then the same request with the nonce.
    let codes = token_requests(&provider, "authorization_code");
    assert_eq!(codes.len(), 2, "{codes:?}");
    assert_eq!(
        (codes[0]["status"].as_u64(), codes[0]["error"].as_str()),
        (Some(400), Some("use_dpop_nonce"))
    );
    assert!(proof(&codes[0]).1.get("nonce").is_none());
    assert_eq!(codes[1]["status"], 200, "{:?}", codes[1]);
    assert!(!proof(&codes[1]).1["nonce"].as_str().unwrap().is_empty());
    // Userinfo (a resource, §9): a 401 with WWW-Authenticate use_dpop_nonce, then the retry.
    let infos = userinfo_requests(&provider);
    assert_eq!(infos.len(), 2, "{infos:?}");
    assert_eq!(
        (infos[0]["status"].as_u64(), infos[0]["error"].as_str()),
        (Some(401), Some("use_dpop_nonce"))
    );
    assert_eq!(infos[1]["status"], 200, "{:?}", infos[1]);
    assert!(proof(&infos[1]).1["nonce"].is_string());
    assert_eq!(identity["email"], "alice@example.com");

    // A server that asks again after the retry: one retry only, then a clear one-line error,
    // and the session is kept.
    for nonce in ["n-1", "n-2"] {
        provider.post(
            "/__dev/fault",
            serde_json::json!({ "path": "/token", "status": 400, "count": 1,
                "body": { "error": "use_dpop_nonce", "error_description": "nonce" },
                "headers": { "DPoP-Nonce": nonce } }),
        );
    }
    let r = sb.run(&["token", "--force-refresh"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let line = r.error_line();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.contains("still asks for a DPoP nonce (use_dpop_nonce) after a retry"),
        "{line}"
    );
    assert!(line.contains("set dpop to never"), "{line}");
    assert_eq!(
        provider.stats()["faults_served"]["/token"],
        2,
        "exactly one retry"
    );
    assert_eq!(sb.run(&["status"]).code, 0, "still signed in");
    assert_eq!(sb.run(&["logout"]).code, 0);
}

#[test]
fn curl_calls_userinfo_with_latchkey_headers_and_a_replayed_proof_is_refused() {
    let provider = Provider::start(&[("DEV_DPOP", "on")]);
    let sb = Sandbox::new(&provider.issuer);
    assert_eq!(sb.login()["token_type"], "DPoP");
    let me = format!("{}/me", provider.issuer);

    // The README's usage, with the real curl.
    let curl = |script: &str| {
        let out = sb
            .tool(
                "bash",
                &[
                    "-c",
                    script,
                    "bash",
                    &me,
                    &latchkey_bin().display().to_string(),
                ],
            )
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, body, err) =
        curl(r#"curl -sS --fail-with-body -H @<("$2" headers --url "$1") "$1""#);
    assert_eq!(code, Some(0), "{body} {err}");
    let claims: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(claims["sub"], "alice");
    let last = userinfo_requests(&provider).pop().unwrap();
    assert_eq!(last["scheme"], "DPoP");
    assert_proof_shape(&last, "GET", &me);

    // The same headers twice: the second use of the proof's jti is refused (§11.1).
    let (code, body, err) = curl(
        r#"h=$("$2" headers --url "$1") || exit 9
           printf '%s\n' "$h" | curl -sS -o /dev/null -w '%{http_code}\n' -H @- "$1"
           printf '%s\n' "$h" | curl -sS -o /dev/null -w '%{http_code} ' -D - -H @- "$1""#,
    );
    assert_eq!(code, Some(0), "{body} {err}");
    let mut lines = body.lines();
    assert_eq!(lines.next(), Some("200"), "{body}");
    assert!(body.contains("HTTP/1.1 401"), "{body}");
    assert!(
        body.to_ascii_lowercase().contains("www-authenticate: dpop")
            && body.contains("invalid_token"),
        "{body}"
    );
    let replay = userinfo_requests(&provider).pop().unwrap();
    assert_eq!(
        (replay["status"].as_u64(), replay["error"].as_str()),
        (Some(401), Some("invalid_token"))
    );

    // Two lines, the proof for the method asked; POST is another proof.
    let r = sb.run(&[
        "headers",
        "--url",
        &format!("{me}?q=1#f"),
        "--method",
        "POST",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    let token = sb.run(&["token"]).stdout.trim().to_owned();
    assert_eq!(lines[0], format!("Authorization: DPoP {token}"));
    let proof = lines[1].strip_prefix("DPoP: ").unwrap();
    let claims = {
        use base64::Engine as _;
        let part = proof.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()
    };
    assert_eq!(claims["htm"], "POST");
    assert_eq!(claims["htu"], me, "without query and fragment");
    assert!(claims["ath"].is_string());

    // Bad input: one line each, exit 2; signed out: exit 1, as `token`.
    for (args, says) in [
        (
            vec!["headers", "--url", "ftp://x/y"],
            "is not an http or https URL",
        ),
        (
            vec!["headers", "--url", &me, "--method", "GE T"],
            "is not an HTTP method",
        ),
        // Issue 18, L3: no token in the clear to another host, nor with credentials in the URL.
        (
            vec!["headers", "--url", "http://api.example.com/v1"],
            "is plain http, which would send the token in the clear",
        ),
        (
            vec!["headers", "--url", "https://me:s3cret@api.example.com/v1"],
            "carries a user name or password",
        ),
    ] {
        let r = sb.run(&args);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(
            r.error_line().contains(says) && r.error_line().lines().count() == 1,
            "{}",
            r.stderr
        );
        assert!(r.stdout.is_empty());
        assert!(
            !r.stderr.contains("s3cret"),
            "a password echoed: {}",
            r.stderr
        );
    }
    assert_eq!(sb.run(&["logout"]).code, 0);
    let r = sb.run(&["headers", "--url", &me]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stdout.is_empty());
}
