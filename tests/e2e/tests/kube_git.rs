//! Latchkey as kubectl's and git's credential source, with the real tools: kubectl against a
//! stand-in API server that accepts only ID tokens that verify against the dev provider's JWKS,
//! and git cloning from `git http-backend` behind a server that checks each token at the
//! provider's userinfo endpoint (tests/tools).

#![allow(clippy::unwrap_used)]

use latchkey_e2e::*;

fn kubeconfig(sb: &Sandbox, api: &Tool) -> std::path::PathBuf {
    kubeconfig_with(sb, api, false)
}

/// A kubeconfig for `api`; `cluster_info`: kubectl passes the cluster (its server) to the plugin.
fn kubeconfig_with(sb: &Sandbox, api: &Tool, cluster_info: bool) -> std::path::PathBuf {
    let yaml = format!(
        r#"apiVersion: v1
kind: Config
clusters:
- name: stub
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: latchkey
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: {bin}
      args: ["exec-credential"]
      interactiveMode: IfAvailable
      provideClusterInfo: {cluster_info}
contexts:
- name: stub
  context:
    cluster: stub
    user: latchkey
current-context: stub
"#,
        server = api.url,
        ca = api.ca_file().display(),
        bin = latchkey_bin().display(),
    );
    let path = sb.dir.path().join(format!("kubeconfig-{cluster_info}"));
    std::fs::write(&path, yaml).unwrap();
    path
}

/// `kubectl get --raw /version` with `config`, in the sandbox's environment.
fn kubectl_version(sb: &Sandbox, config: &std::path::Path) -> Run {
    let out = sb
        .tool(
            "kubectl",
            &[
                "--kubeconfig",
                config.to_str().unwrap(),
                "get",
                "--raw",
                "/version",
            ],
        )
        .output()
        .unwrap();
    Run::new(out, std::time::Duration::ZERO)
}

#[test]
fn kubectl_authenticates_with_the_id_token_and_refreshes_it() {
    let provider = Provider::start(&[("DEV_ID_TOKEN_TTL", "6"), ("DEV_ACCESS_TOKEN_TTL", "6")]);
    let api = Tool::start(
        "kube-apiserver.mjs",
        &["--issuer", &provider.issuer, "--audience", CLIENT_ID],
    );
    let sb = Sandbox::new(&provider.issuer);
    let config = kubeconfig(&sb, &api);
    let kubectl = |sb: &Sandbox| kubectl_version(sb, &config);

    // Not signed in, and kubectl has no terminal: the plugin says what to do, nothing opens.
    let r = kubectl(&sb);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("run `latchkey login`"), "{}", r.stderr);
    assert_eq!(sb.launches(), 0);

    let id = sb.login();
    let r = kubectl(&sb);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("v1.32.0-latchkey-stub"), "{}", r.stdout);
    let accepted: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|q| q["ok"] == true)
        .collect();
    assert!(!accepted.is_empty());
    assert!(accepted.iter().all(|q| q["sub"] == "alice"));

    // Once the ID token has expired, the refresh token gets a new one.
    sleep_until(id["expires_at"].as_str().unwrap());
    std::thread::sleep(std::time::Duration::from_secs(1));
    let before = provider.refreshes();
    let r = kubectl(&sb);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        provider.refreshes() > before,
        "the expired ID token was refreshed"
    );
    assert_eq!(sb.launches(), 1, "no second browser sign-in");
}

/// Issue 18 (point 13): with `kube_servers`, kubectl gets a token only for a listed API server
/// it names through `provideClusterInfo`; otherwise the API server sees no token at all.
#[test]
fn kube_servers_decide_which_api_server_gets_a_token() {
    let provider = Provider::start(&[]);
    let api = Tool::start(
        "kube-apiserver.mjs",
        &["--issuer", &provider.issuer, "--audience", CLIENT_ID],
    );
    let mut sb = Sandbox::new(&provider.issuer);
    sb.login();
    let with_token = |api: &Tool| {
        api.requests()
            .into_iter()
            .filter(|q| q["sub"] == "alice")
            .count()
    };
    let (unnamed, named) = (
        kubeconfig_with(&sb, &api, false),
        kubeconfig_with(&sb, &api, true),
    );

    // Listed, but kubectl does not say which server it calls.
    sb.set("LATCHKEY_KUBE_SERVERS", &api.url);
    let r = kubectl_version(&sb, &unnamed);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("provideClusterInfo"), "{}", r.stderr);
    assert_eq!(with_token(&api), 0, "no token reached the API server");

    // Another server is listed: this one gets nothing.
    sb.set("LATCHKEY_KUBE_SERVERS", "https://k8s.example:6443");
    let r = kubectl_version(&sb, &named);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("not in kube_servers"), "{}", r.stderr);
    assert_eq!(with_token(&api), 0, "no token reached the API server");

    // Listed and named: kubectl authenticates.
    sb.set("LATCHKEY_KUBE_SERVERS", &api.url);
    let r = kubectl_version(&sb, &named);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(with_token(&api) > 0);
}

#[test]
fn git_clones_with_the_access_token_for_listed_hosts_only() {
    let provider = Provider::start(&[]);
    let server = Tool::start("git-server.mjs", &["--issuer", &provider.issuer]);
    let mut sb = Sandbox::new(&provider.issuer);
    let host = format!("127.0.0.1:{}", server.port());
    sb.set("LATCHKEY_GIT_HOSTS", &host)
        .set("GIT_CONFIG_NOSYSTEM", "1")
        .set("GIT_TERMINAL_PROMPT", "0")
        .set("GIT_ASKPASS", "");
    sb.login();
    let helper = format!("{} git-credential", latchkey_bin().display());
    let ca = format!("http.sslCAInfo={}", server.ca_file().display());
    let clone = |git: &str, url: &str, dest: &str| {
        let out = sb
            .tool(
                git,
                &[
                    "-c",
                    &ca,
                    "-c",
                    "credential.helper=",
                    "-c",
                    &format!("credential.helper={helper}"),
                    "clone",
                    "--quiet",
                    url,
                    dest,
                ],
            )
            .output()
            .unwrap();
        Run::new(out, std::time::Duration::ZERO)
    };
    let work = sb.dir.path().to_owned();

    // Debian's git (2.39): username/password, sent as Basic.
    let dest = work.join("basic");
    let r = clone(
        "/usr/bin/git",
        &format!("https://{host}/demo.git"),
        dest.to_str().unwrap(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(dest.join("README")).unwrap(),
        "hello from latchkey\n"
    );
    assert!(
        server
            .requests()
            .iter()
            .any(|q| q["auth"] == "basic" && q["ok"] == true)
    );

    // git >= 2.46 announces `authtype`: the helper answers with a Bearer credential.
    if std::path::Path::new("/usr/local/bin/git").exists() {
        let dest = work.join("bearer");
        let r = clone(
            "/usr/local/bin/git",
            &format!("https://{host}/demo.git"),
            dest.to_str().unwrap(),
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(dest.join("README").exists());
        assert!(
            server
                .requests()
                .iter()
                .any(|q| q["auth"] == "bearer" && q["ok"] == true)
        );
    }

    // The same server under a name not in git_hosts: the helper gives nothing, the clone fails.
    let seen = server.requests().len();
    let dest = work.join("unlisted");
    let r = clone(
        "/usr/bin/git",
        &format!("https://localhost:{}/demo.git", server.port()),
        dest.to_str().unwrap(),
    );
    assert_ne!(r.code, 0);
    assert!(
        server.requests()[seen..]
            .iter()
            .all(|q| q["auth"] == "none"),
        "no credential reached an unlisted host"
    );
    let r = sb.git_credential(
        "get",
        &format!("protocol=https\nhost=localhost:{}\n\n", server.port()),
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    let r = sb.git_credential("get", &format!("protocol=http\nhost={host}\n\n"));
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, ""),
        "never over plain http"
    );
    let files_with_token = files_containing(
        &sb.home(),
        sb.stored_session("default").unwrap()["access_token"]
            .as_str()
            .unwrap(),
    );
    assert!(files_with_token.is_empty(), "{files_with_token:?}");
}

#[test]
fn erase_makes_the_next_get_refresh_and_keeps_the_session() {
    let provider = Provider::start(&[]);
    let mut sb = Sandbox::new(&provider.issuer);
    sb.set("LATCHKEY_GIT_HOSTS", "git.example.test");
    sb.login();
    let request = "protocol=https\nhost=git.example.test\npath=demo.git\n\n";

    let first = sb.git_credential("get", request);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(
        first.stdout.starts_with("username=oauth2\npassword="),
        "{}",
        first.stdout
    );
    let token = first
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("password="))
        .unwrap()
        .to_owned();
    assert_eq!(provider.refreshes(), 0);
    // Issue 18, L8: the Basic answer says when the token expires, so no helper after this one
    // keeps it longer: the stored session's expiry, in Unix seconds.
    let expiry: i64 = first
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("password_expiry_utc="))
        .expect("password_expiry_utc")
        .parse()
        .unwrap();
    let stored = sb.stored_session("default").unwrap();
    let expires_at = chrono::DateTime::parse_from_rfc3339(stored["expires_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert_eq!(expiry, expires_at);

    // `store` does nothing; `erase` records the refusal without ending the session.
    assert_eq!(
        sb.git_credential(
            "store",
            &format!("{request}username=oauth2\npassword={token}\n")
        )
        .code,
        0
    );
    let r = sb.git_credential(
        "erase",
        &format!("protocol=https\nhost=git.example.test\nusername=oauth2\npassword={token}\n\n"),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        sb.stored_session("default").is_some(),
        "erase never deletes the session"
    );

    let second = sb.git_credential("get", request);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(
        provider.refreshes(),
        1,
        "the get after erase refreshed first"
    );
    assert!(!second.stdout.contains(&token));
    // ...once: the next get uses the new token as it is.
    sb.git_credential("get", request);
    assert_eq!(provider.refreshes(), 1);

    // The authtype capability (git 2.46+) gets a Bearer credential, and a custom user name
    // applies to the Basic form.
    let r = sb.git_credential("get", &format!("capability[]=authtype\n{request}"));
    assert!(
        r.stdout
            .starts_with("capability[]=authtype\nauthtype=Bearer\ncredential="),
        "{}",
        r.stdout
    );
    sb.set("LATCHKEY_GIT_USERNAME", "x-token");
    assert!(
        sb.git_credential("get", request)
            .stdout
            .starts_with("username=x-token\n")
    );
}
