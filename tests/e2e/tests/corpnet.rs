//! A corporate network: the dev provider over HTTPS with a private CA the OS trust store does not
//! know (as behind TLS inspection), trusted the ways IT does it (`SSL_CERT_FILE`, `SSL_CERT_DIR`,
//! the system store rebuilt by `update-ca-certificates` in a throw-away mount namespace), and
//! Debian's tinyproxy as `HTTPS_PROXY`, with `NO_PROXY` honoured.
//!
//! tinyproxy connects out from 127.0.0.2 ([`PROXY_SOURCE`]) and the provider records each
//! request's peer, so every request is attributed: through the proxy, or direct. The browser
//! (Chromium) never uses the proxy for loopback, so its requests stay direct; the CLI's
//! back-channel calls go through the proxy unless `NO_PROXY` names the host.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use latchkey_e2e::*;

mod common;

/// The CLI's back-channel requests of a sign-in, a forced refresh and a logout.
const BACK_CHANNEL: &[(&str, &str)] = &[
    ("GET", "/.well-known/openid-configuration"),
    ("GET", "/jwks"),
    ("POST", "/token"),
    ("GET", "/me"),
    ("POST", "/token/revocation"),
];

/// A sandbox for `provider`, whose browser accepts `ca`'s server certificate (test-only SPKI
/// pinning in the driver); the CLI still trusts nothing but what each test gives it.
fn sandbox(provider: &Provider, ca: &PrivateCa) -> Sandbox {
    let mut sb = Sandbox::new(&provider.issuer);
    sb.set("DRIVER_TRUST_CERT", ca.cert_file().to_str().unwrap());
    sb
}

/// The one line a failed command printed, which must be all of its stderr.
fn only_line(r: &Run) -> String {
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr: {:?}", r.stderr);
    lines[0].to_owned()
}

fn cert_error(issuer: &str, what: &str, hint: &str) -> String {
    format!(
        "latchkey: {what}: cannot verify the TLS certificate of {issuer}: it is not issued by a CA \
         this machine trusts (UnknownIssuer); {hint}"
    )
}

/// What the CLI was doing when discovery failed, as its error names it.
const WHAT: &str = "fetching the provider's configuration";

const SYSTEM_HINT: &str = "if your network inspects TLS, trust its CA: add it to the system store \
    (Debian and Ubuntu: copy it to /usr/local/share/ca-certificates/ as a .crt file, then run \
    update-ca-certificates), or set SSL_CERT_FILE to a PEM file that holds it";

#[test]
fn without_the_ca_the_cli_fails_with_one_line_naming_the_issuer_and_the_fix() {
    let ca = PrivateCa::new();
    let provider = Provider::start_tls(&[], &ca);
    let mut sb = sandbox(&provider, &ca);

    // The system store (SSL_CERT_FILE and SSL_CERT_DIR unset: the sandbox's env is cleared).
    let r = sb.run(&["login"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(
        only_line(&r),
        cert_error(&provider.issuer, WHAT, SYSTEM_HINT)
    );
    assert_eq!(
        sb.launches(),
        0,
        "no browser for a provider that cannot be verified"
    );
    assert_eq!(provider.stats()["discovery_requests"], 0);

    // SSL_CERT_FILE set to a bundle without the CA: it replaces the system store, and says so.
    let bundle = "/etc/ssl/certs/ca-certificates.crt";
    sb.set("SSL_CERT_FILE", bundle);
    let r = sb.run(&["login"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let hint = format!(
        "SSL_CERT_FILE={bundle} is set and replaces the system store: add your network's CA to \
         it, or unset it"
    );
    assert_eq!(only_line(&r), cert_error(&provider.issuer, WHAT, &hint));

    // A path that does not exist: nothing is trusted, and the message says why.
    let missing = sb.dir.path().join("no-such-ca.pem");
    sb.set("SSL_CERT_FILE", missing.to_str().unwrap());
    let r = sb.run(&["login"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let hint = format!(
        "SSL_CERT_FILE={} is set but cannot be read (No such file or directory (os error 2)), so \
         no CA is trusted: fix or unset it",
        missing.display()
    );
    assert_eq!(only_line(&r), cert_error(&provider.issuer, WHAT, &hint));
    assert_eq!(provider.stats()["discovery_requests"], 0);
    assert_eq!(sb.launches(), 0);
}

#[test]
fn ssl_cert_file_or_ssl_cert_dir_with_the_ca_signs_in_refreshes_and_logs_out() {
    let ca = PrivateCa::new();
    let provider = Provider::start_tls(&[], &ca);
    let mut sb = sandbox(&provider, &ca);
    sb.set("SSL_CERT_FILE", ca.ca_file().to_str().unwrap());
    let id = sb.login();
    assert_eq!(id["subject"], "alice");
    assert_eq!(id["issuer"], provider.issuer.as_str());
    assert_eq!(provider.code_redemptions(), 1);

    // SSL_CERT_DIR alone (a directory of PEM files, as `openssl rehash` leaves it).
    let dir = sb.dir.path().join("certs");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(ca.ca_file(), dir.join("corp-ca.pem")).unwrap();
    sb.unset("SSL_CERT_FILE")
        .set("SSL_CERT_DIR", dir.to_str().unwrap());
    let r = sb.run(&["token", "--force-refresh"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(provider.refreshes(), 1);

    let r = sb.run(&["logout"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(provider.stats()["revocations"], 1);
    assert!(sb.stored_session("default").is_none());
}

/// Runs `args` of the CLI in a mount namespace of its own where the system store is rebuilt the
/// way IT adds a CA on Debian: the CA copied into /usr/local/share/ca-certificates and
/// `update-ca-certificates` run. /etc/ssl/certs and /usr/local/share/ca-certificates are
/// bind-mounted copies in the test's temp dir, and the namespace ends with the command, so the
/// machine's own store is never touched. `update-ca-certificates` runs without hooks (Java's
/// would queue a dpkg trigger outside the copies).
fn in_throwaway_root(sb: &Sandbox, ca: &Path, args: &[&str]) -> Run {
    let root = sb.dir.path().join("throwaway-root");
    for d in ["certs", "local", "hooks"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let script = r#"set -e
r=$1; ca=$2; shift 2
cp -a /etc/ssl/certs/. "$r/certs/"
cp -a /usr/local/share/ca-certificates/. "$r/local/"
mount --bind "$r/certs" /etc/ssl/certs
mount --bind "$r/local" /usr/local/share/ca-certificates
cp "$ca" /usr/local/share/ca-certificates/latchkey-test-corp.crt
/usr/sbin/update-ca-certificates --hooksdir "$r/hooks" >/dev/null
exec "$@""#;
    let root_user = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let mut unshare = vec!["--mount", "--propagation", "private"];
    if !root_user {
        unshare.insert(0, "--map-root-user");
    }
    let bin = latchkey_bin();
    let mut all: Vec<&str> = unshare;
    all.extend(["--", "sh", "-c", script, "sh"]);
    all.extend([root.to_str().unwrap(), ca.to_str().unwrap()]);
    all.push(bin.to_str().unwrap());
    all.extend(args);
    let started = std::time::Instant::now();
    let out = sb.tool("unshare", &all).output().unwrap();
    Run::new(out, started.elapsed())
}

#[test]
fn the_system_store_rebuilt_by_update_ca_certificates_trusts_the_ca() {
    let ca = PrivateCa::new();
    let provider = Provider::start_tls(&[], &ca);
    let sb = sandbox(&provider, &ca);
    let pem = std::fs::read_to_string(ca.ca_file()).unwrap();
    let body = pem.lines().nth(1).unwrap().to_owned();

    let r = in_throwaway_root(&sb, &ca.ca_file(), &["login", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["subject"], "alice");
    assert_eq!(provider.code_redemptions(), 1);
    // The copies got the CA; the machine's own bundle did not.
    let copy = std::fs::read_to_string(
        sb.dir
            .path()
            .join("throwaway-root/certs/ca-certificates.crt"),
    )
    .unwrap();
    assert!(copy.contains(&body), "the rebuilt bundle holds the CA");
    let real = std::fs::read_to_string("/etc/ssl/certs/ca-certificates.crt").unwrap();
    assert!(!real.contains(&body), "the machine's store was touched");

    // Outside the namespace the same refresh fails: the trust came from the rebuilt store.
    let r = sb.run(&["token", "--force-refresh"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        only_line(&r).contains(&format!(
            "cannot verify the TLS certificate of {}: it is not issued by a CA this machine trusts",
            provider.issuer
        )),
        "{}",
        r.stderr
    );
    let r = in_throwaway_root(&sb, &ca.ca_file(), &["logout"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(provider.stats()["revocations"], 1);
}

/// Requests as `(method, path)`.
type Requests = BTreeSet<(String, String)>;

/// The provider's requests split by where they came from: through the proxy or direct.
fn by_peer(provider: &Provider) -> (Requests, Requests) {
    let (mut proxied, mut direct) = (BTreeSet::new(), BTreeSet::new());
    for (method, path, peer) in provider.requests() {
        match peer.trim_start_matches("::ffff:") {
            PROXY_SOURCE => proxied.insert((method, path)),
            "127.0.0.1" => direct.insert((method, path)),
            other => panic!("a request from {other}"),
        };
    }
    (proxied, direct)
}

fn pairs(list: &[(&str, &str)]) -> Requests {
    list.iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect()
}

#[test]
fn https_proxy_carries_every_back_channel_call_and_tinyproxy_logs_each_connect() {
    let ca = PrivateCa::new();
    let provider = Provider::start_tls(&[], &ca);
    let proxy = Tinyproxy::start(&[provider.port]);
    let mut sb = sandbox(&provider, &ca);
    sb.set("SSL_CERT_FILE", ca.ca_file().to_str().unwrap())
        .set("HTTPS_PROXY", &proxy.url());
    let id = sb.login();
    assert_eq!(id["subject"], "alice");
    // The lower-case spelling, as many shells and tools set it.
    sb.unset("HTTPS_PROXY").set("https_proxy", &proxy.url());
    let r = sb.run(&["token", "--force-refresh"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = sb.run(&["logout"]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let (proxied, direct) = by_peer(&provider);
    assert_eq!(proxied, pairs(BACK_CHANNEL), "through the proxy");
    assert!(
        direct.iter().all(|(_, p)| p == "/auth"
            || p.starts_with("/auth/")
            || p.starts_with("/interaction/")
            || p == "/favicon.ico"),
        "only the browser's requests are direct: {direct:?}"
    );
    assert!(direct.contains(&("GET".into(), "/auth".into())));
    // One tunnel per CLI process at least (login, refresh, logout), each to the provider and
    // nothing else: no plain-HTTP request went through the proxy.
    let connects = proxy.connects();
    let expected = format!("CONNECT 127.0.0.1:{} HTTP/1.1", provider.port);
    assert!(connects.len() >= 3, "{connects:?}");
    assert!(connects.iter().all(|c| *c == expected), "{connects:?}");
    assert_eq!(proxy.requests(), connects);
}

#[test]
fn no_proxy_in_either_spelling_sends_the_calls_direct() {
    let ca = PrivateCa::new();
    let provider = Provider::start_tls(&[], &ca);
    let proxy = Tinyproxy::start(&[provider.port]);
    let mut sb = sandbox(&provider, &ca);
    sb.set("SSL_CERT_FILE", ca.ca_file().to_str().unwrap())
        .set("HTTPS_PROXY", &proxy.url())
        .set("NO_PROXY", "127.0.0.1");
    assert_eq!(sb.login()["subject"], "alice");
    sb.unset("NO_PROXY")
        .set("no_proxy", "localhost,127.0.0.0/8");
    let r = sb.run(&["token", "--force-refresh"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    sb.set("no_proxy", "*");
    let r = sb.run(&["logout"]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    assert_eq!(
        proxy.requests(),
        Vec::<String>::new(),
        "nothing went through tinyproxy"
    );
    let (proxied, direct) = by_peer(&provider);
    assert!(proxied.is_empty(), "{proxied:?}");
    assert!(pairs(BACK_CHANNEL).is_subset(&direct), "{direct:?}");

    // doctor names the proxy the client really uses: none for a CIDR entry (which its own
    // reading of NO_PROXY used to miss), and never the credentials in a proxy URL.
    sb.set("no_proxy", "localhost,127.0.0.0/8");
    assert_eq!(
        doctor_provider(&sb),
        "discovery answers directly (no proxy applies); TLS certificate verified"
    );
    assert!(proxy.requests().is_empty(), "{:?}", proxy.requests());

    // The control: the same proxy without NO_PROXY is used (so the empty log above means
    // something).
    sb.unset("no_proxy");
    assert_eq!(sb.login()["subject"], "alice");
    assert!(!proxy.connects().is_empty());
    let with_password = format!("http://corp:s3cret-pw@127.0.0.1:{}", proxy.port);
    sb.set("https_proxy", &with_password);
    assert_eq!(
        doctor_provider(&sb),
        format!(
            "discovery answers through the proxy {}; TLS certificate verified",
            proxy.url()
        )
    );
}

/// The detail of `latchkey doctor`'s provider check.
fn doctor_provider(sb: &Sandbox) -> String {
    let r = sb.run(&["doctor", "--json"]);
    assert!(!r.stdout.contains("s3cret"), "{}", r.stdout);
    let checks = r.json()["checks"].as_array().unwrap().clone();
    let provider = checks.iter().find(|c| c["name"] == "provider").unwrap();
    assert_eq!(provider["status"], "ok", "{provider}");
    provider["detail"].as_str().unwrap().to_owned()
}

/// Set in the child process that fetches the picture.
const CHILD: &str = "CORPNET_PICTURE_CHILD";

#[test]
fn the_picture_fetch_goes_through_the_proxy_unless_no_proxy_names_the_host() {
    let ca = PrivateCa::new();
    let provider = Provider::start_tls(&[], &ca);
    let proxy = Tinyproxy::start(&[provider.port]);
    let mut sb = sandbox(&provider, &ca);
    sb.set("SSL_CERT_FILE", ca.ca_file().to_str().unwrap())
        .set("NO_PROXY", "127.0.0.1");
    assert_eq!(sb.login()["subject"], "alice");
    assert!(proxy.connects().is_empty());

    // The core in a process of its own, started with the proxy variables (a test cannot set them
    // in its own, multi-threaded process), fetching alice's picture from the provider.
    let picture = |no_proxy: Option<&str>| {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "picture_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_clear()
        .env(CHILD, "1")
        .env("LATCHKEY_ISSUER", &provider.issuer)
        .env("HOME", sb.home())
        .env("SSL_CERT_FILE", ca.ca_file())
        .env("HTTPS_PROXY", proxy.url());
        for var in ["PATH", "DBUS_SESSION_BUS_ADDRESS", "LATCHKEY_IN_KEYRING"] {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        if let Some(n) = no_proxy {
            cmd.env("NO_PROXY", n);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("picture: image/png"), "{stdout}");
    };
    let avatar = ("GET".to_owned(), "/avatars/alice.png".to_owned());

    picture(None);
    let (proxied, direct) = by_peer(&provider);
    assert!(proxied.contains(&avatar), "{proxied:?}");
    assert!(!direct.contains(&avatar), "{direct:?}");
    let expected = format!("CONNECT 127.0.0.1:{} HTTP/1.1", provider.port);
    assert_eq!(proxy.connects(), vec![expected]);
    assert_eq!(provider.stats()["picture_requests"], 1);

    picture(Some("127.0.0.1"));
    let (_, direct) = by_peer(&provider);
    assert!(direct.contains(&avatar), "{direct:?}");
    assert_eq!(proxy.connects().len(), 1, "no second CONNECT");
    assert_eq!(provider.stats()["picture_requests"], 2);
}

/// Not a test of its own: the child of the test above.
#[test]
#[ignore = "run by the_picture_fetch_goes_through_the_proxy_unless_no_proxy_names_the_host"]
fn picture_child() {
    if std::env::var_os(CHILD).is_none() {
        eprintln!("{CHILD} is not set: this runs only as the picture test's child process");
        return;
    }
    let issuer = std::env::var("LATCHKEY_ISSUER").unwrap();
    let home = std::path::PathBuf::from(std::env::var_os("HOME").unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let latchkey = common::core_at(&issuer, &home);
        let identity = latchkey.current().await.unwrap().expect("signed in");
        // From the network each time: the copy kept with the session would answer otherwise.
        let picture = latchkey
            .fetch_picture(&identity)
            .await
            .unwrap()
            .expect("a picture");
        println!(
            "picture: {} {} bytes",
            picture.media_type(),
            picture.bytes().len()
        );
    });
}
