//! The CLI's commands for other tools: `token` options counted at the real provider, `accounts`,
//! and the completion scripts and man page generated from the clap definition.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use latchkey_e2e::*;

#[test]
fn token_min_valid_force_refresh_and_json_are_counted_at_the_provider() {
    let provider = Provider::start(&[("DEV_ACCESS_TOKEN_TTL", "120")]);
    let sb = Sandbox::new(&provider.issuer);
    sb.login();

    // Valid for 2 minutes: 60 s asks for no refresh, and is answered from the cache.
    let r = sb.run(&["token", "--min-valid", "60", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    assert_eq!(j["token_type"], "Bearer");
    let first = j["access_token"].as_str().unwrap().to_owned();
    let expires = chrono::DateTime::parse_from_rfc3339(j["expires_at"].as_str().unwrap()).unwrap();
    assert!(expires > chrono::Utc::now() + chrono::Duration::seconds(60));
    assert_eq!(provider.refreshes(), 0);
    assert_eq!(
        j.as_object().unwrap().len(),
        3,
        "exactly access_token, token_type, expires_at: {j}"
    );

    // --force-refresh: one refresh, a new token.
    let r = sb.run(&["token", "--force-refresh"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(provider.refreshes(), 1);
    let second = r.stdout.trim().to_owned();
    assert_ne!(second, first);
    assert!(provider.is_active(&second));

    // --min-valid beyond what is left, but within the lifetime: refreshes first (1m55s left
    // at most, 119 s asked).
    std::thread::sleep(std::time::Duration::from_secs(2));
    let r = sb.run(&["token", "--min-valid", "119s"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(provider.refreshes(), 2);
    assert_ne!(r.stdout.trim(), second);

    // Longer than the provider's tokens ever live: an error that says so, and no refresh.
    let r = sb.run(&["token", "--min-valid", "5m"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.error_line().contains("live 120 s"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert_eq!(provider.refreshes(), 2);

    let r = sb.run(&["token", "--min-valid", "soon"]);
    assert_eq!(r.code, 2);
    assert!(r.error_line().contains("--min-valid"), "{}", r.stderr);
}

#[test]
fn accounts_lists_every_profile_with_a_session() {
    let provider = Provider::start(&[]);
    let sb = Sandbox::new(&provider.issuer);
    let dir = sb.home().join(".config/latchkey");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        "[profiles.work]\n[profiles.unused]\n",
    )
    .unwrap();

    let r = sb.run(&["accounts", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json(), serde_json::json!([]));

    sb.login();
    let r = sb.run(&["--profile", "work", "login"]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let r = sb.run(&["accounts", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let list = r.json();
    let list = list.as_array().unwrap();
    let profiles: Vec<&str> = list
        .iter()
        .map(|a| a["profile"].as_str().unwrap())
        .collect();
    assert_eq!(profiles, ["default", "work"], "no row for `unused`");
    for a in list {
        assert_eq!(a["issuer"], provider.issuer.as_str());
        assert_eq!(a["subject"], "alice");
        assert_eq!(a["refreshable"], true);
        assert_eq!(a["store"], "secret-service");
        chrono::DateTime::parse_from_rfc3339(a["expires_at"].as_str().unwrap()).unwrap();
    }
    assert_eq!(list[0]["default"], true);
    assert_eq!(list[1]["default"], false);

    // The selected profile is the one marked; the human form marks it with `*`.
    let r = sb.run(&["--profile", "work", "accounts"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let work = r.stdout.lines().find(|l| l.contains("work")).unwrap();
    assert!(work.starts_with('*'), "{}", r.stdout);

    // No network: the provider is gone and the list is the same.
    let mut provider = provider;
    provider.stop();
    let r = sb.run(&["accounts", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json().as_array().unwrap().len(), 2);
}

#[test]
fn completions_and_man_page_come_from_the_clap_definition() {
    let sb = Sandbox::new("https://unused.example");
    let bash = sb.run(&["completions", "bash"]);
    assert_eq!(bash.code, 0, "{}", bash.stderr);
    for word in [
        "login",
        "status",
        "token",
        "logout",
        "accounts",
        "--min-valid",
    ] {
        assert!(bash.stdout.contains(word), "bash completion lacks {word}");
    }
    // The script is valid bash.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("latchkey.bash");
    std::fs::write(&file, &bash.stdout).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).status().unwrap();
    assert!(check.success(), "bash -n rejects the completion script");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let r = sb.run(&["completions", shell]);
        assert_eq!(r.code, 0, "{shell}: {}", r.stderr);
        assert!(r.stdout.contains("force-refresh"), "{shell}");
    }
    assert_eq!(sb.run(&["completions", "tcsh"]).code, 2);

    let man = sb.run(&["manpage"]);
    assert_eq!(man.code, 0, "{}", man.stderr);
    assert!(man.stdout.contains(".TH latchkey 1"), "{}", man.stdout);
    assert!(man.stdout.contains("accounts"));
}

/// `KUBERNETES_EXEC_INFO` as kubectl sets it.
fn exec_info(interactive: bool) -> String {
    serde_json::json!({
        "kind": "ExecCredential",
        "apiVersion": "client.authentication.k8s.io/v1",
        "spec": { "interactive": interactive },
    })
    .to_string()
}

#[test]
fn parallel_sign_ins_open_one_browser_tab() {
    let provider = Provider::start(&[]);
    let mut sb = Sandbox::new(&provider.issuer);
    sb.set("KUBERNETES_EXEC_INFO", &exec_info(true));
    // Eight kubectl-style calls at once, none signed in: one browser, one sign-in, eight answers.
    let children: Vec<_> = (0..8)
        .map(|_| {
            sb.command(&["exec-credential"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut tokens = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        let cred: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(cred["kind"], "ExecCredential");
        tokens.push(cred["status"]["token"].as_str().unwrap().to_owned());
    }
    assert_eq!(sb.launches(), 1, "exactly one browser launch");
    assert_eq!(provider.code_redemptions(), 1);
    assert!(tokens.windows(2).all(|w| w[0] == w[1]), "one session");

    // `latchkey login` twice at once: one tab.
    assert_eq!(sb.run(&["logout"]).code, 0);
    let a = sb
        .command(&["login"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let b = sb
        .command(&["login"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    let waited = [&a, &b]
        .iter()
        .filter(|o| String::from_utf8_lossy(&o.stderr).contains("waiting for it"))
        .count();
    assert_eq!(waited, 1, "one waited for the other");
    assert_eq!(sb.launches(), 2, "one more tab for both logins");
}

#[test]
fn exec_credential_speaks_kubectls_versions_and_refuses_when_not_interactive() {
    let provider = Provider::start(&[]);
    let mut sb = Sandbox::new(&provider.issuer);
    // Not signed in and not interactive: exit 1 with the line that says what to do.
    sb.set("KUBERNETES_EXEC_INFO", &exec_info(false));
    let r = sb.run(&["exec-credential"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(r.stderr.contains("run `latchkey login`"), "{}", r.stderr);
    assert_eq!(sb.launches(), 0);

    sb.login();
    let session = sb.stored_session("default").unwrap();
    let r = sb.run(&["exec-credential"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let cred = r.json();
    assert_eq!(cred["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(cred["status"]["token"], session["id_token"]);
    chrono::DateTime::parse_from_rfc3339(cred["status"]["expirationTimestamp"].as_str().unwrap())
        .unwrap();

    sb.set(
        "KUBERNETES_EXEC_INFO",
        r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":false}}"#,
    );
    let r = sb.run(&["exec-credential", "--token", "access"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let cred = r.json();
    assert_eq!(cred["apiVersion"], "client.authentication.k8s.io/v1beta1");
    assert_eq!(cred["status"]["token"], session["access_token"]);

    sb.set(
        "KUBERNETES_EXEC_INFO",
        r#"{"apiVersion":"client.authentication.k8s.io/v2"}"#,
    );
    let r = sb.run(&["exec-credential"]);
    assert_eq!(r.code, 2);
    assert!(r.error_line().contains("v2"), "{}", r.stderr);
}

#[test]
fn doctor_passes_on_a_healthy_setup_and_names_each_broken_thing() {
    let mut provider = Provider::start(&[]);
    let keyring = PrivateKeyring::start();
    let mut sb = Sandbox::new(&provider.issuer);
    sb.set("DBUS_SESSION_BUS_ADDRESS", &keyring.address);
    sb.login();

    let check = |r: &Run, name: &str| -> serde_json::Value {
        r.json()["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no `{name}` check: {}", r.stdout))
    };

    let r = sb.run(&["doctor", "--json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let j = r.json();
    assert_eq!(j["ok"], true);
    for name in ["configuration", "provider", "clock", "keychain", "browser"] {
        assert_eq!(check(&r, name)["status"], "ok", "{name}: {}", r.stdout);
    }
    assert!(
        check(&r, "keychain")["detail"]
            .as_str()
            .unwrap()
            .contains("secret-service")
    );
    assert!(
        check(&r, "provider")["detail"]
            .as_str()
            .unwrap()
            .contains("no proxy")
    );
    let issuer_row = j["config"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == "issuer")
        .unwrap()
        .clone();
    assert_eq!(issuer_row["source"], "$LATCHKEY_ISSUER");
    assert_eq!(issuer_row["locked"], false);
    let human = sb.run(&["doctor"]);
    assert_eq!(human.code, 0);
    assert!(human.stdout.contains("ok   provider"), "{}", human.stdout);

    // Each broken thing is named, with its fix, and exits 2.
    keyring.lock();
    let r = sb.run(&["doctor", "--json"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    let k = check(&r, "keychain");
    assert_eq!(k["status"], "fail");
    assert!(k["fix"].as_str().unwrap().contains("unlock"), "{k}");
    assert_eq!(check(&r, "provider")["status"], "ok");

    sb.set("LATCHKEY_ISSUER", &format!("{}/elsewhere", provider.issuer));
    let r = sb.run(&["doctor", "--json"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    let p = check(&r, "provider");
    assert_eq!(p["status"], "fail");
    assert!(p["fix"].as_str().unwrap().contains("`issuer`"), "{p}");

    sb.set("LATCHKEY_ISSUER", &provider.issuer);
    provider.stop();
    let r = sb.run(&["doctor"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stdout.contains("FAIL provider"), "{}", r.stdout);
    assert!(r.stdout.contains("the provider is up"), "{}", r.stdout);
}
