//! The stages together: sources read from real files (with the managed file's checks), merged
//! and resolved. The fixture is shared with the other stages' tests.

use std::collections::HashMap;
use std::time::Duration;

use super::*;
use crate::error::Result;

/// A user file and a managed file in a fresh folder, and an environment to read.
pub(super) struct Fixture {
    _dir: tempfile::TempDir,
    pub(super) paths: Paths,
    pub(super) env: HashMap<String, String>,
}

pub(super) fn fixture(user: Option<&str>, system: Option<&str>) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let user_path = dir.path().join("user.toml");
    let system_path = dir.path().join("system.toml");
    if let Some(u) = user {
        std::fs::write(&user_path, u).expect("write");
    }
    if let Some(s) = system {
        std::fs::write(&system_path, s).expect("write");
    }
    Fixture {
        paths: Paths {
            user_file: Some(user_path),
            system_file: Some(system_path),
            identity: crate::AppIdentity::TEST,
        },
        _dir: dir,
        env: HashMap::new(),
    }
}

impl Fixture {
    pub(super) fn load(&self, flags: Settings) -> Result<Sources> {
        let env = |k: &str| self.env.get(k).cloned();
        Sources::load(flags, &self.paths, &env)
    }
    pub(super) fn resolve(&self, flags: Settings) -> Result<Config> {
        self.load(flags)?.resolve()
    }
}

fn flags_issuer(i: &str) -> Settings {
    Settings {
        issuer: Some(i.into()),
        ..Default::default()
    }
}

#[test]
fn defaults_apply() {
    let f = fixture(
        Some("issuer = \"https://id.example.com\"\nclient_id = \"app\"\n"),
        None,
    );
    let c = f.resolve(Settings::default()).expect("valid");
    assert_eq!(c.scopes, ["openid", "profile", "email", "offline_access"]);
    assert_eq!(c.profile, "default");
    assert_eq!(c.login_timeout, Duration::from_secs(300));
    assert_eq!(c.redirect_uri.as_str(), "http://127.0.0.1/callback");
    assert!(c.wants_offline_access());
}

#[test]
fn precedence_is_flags_env_user_system() {
    let mut f = fixture(
        Some(
            "issuer = \"https://user.example\"\nclient_id = \"user\"\nscopes = \"openid email\"\n",
        ),
        Some("issuer = \"https://system.example\"\nclient_id = \"sys\"\nlogin_timeout = 60\n"),
    );
    let c = f.resolve(Settings::default()).expect("valid");
    assert_eq!(c.issuer, "https://user.example");
    assert_eq!(c.client_id, "user");
    assert_eq!(
        c.login_timeout,
        Duration::from_secs(60),
        "system fills gaps"
    );

    f.env
        .insert("CORE_TEST_ISSUER".into(), "https://env.example".into());
    f.env
        .insert("CORE_TEST_SCOPES".into(), "openid,api:read".into());
    let c = f.resolve(Settings::default()).expect("valid");
    assert_eq!(c.issuer, "https://env.example");
    assert_eq!(c.scopes, ["openid", "api:read"]);

    let c = f
        .resolve(flags_issuer("https://flag.example"))
        .expect("valid");
    assert_eq!(c.issuer, "https://flag.example");
    assert_eq!(c.client_id, "user");
}

#[test]
fn locked_keys_win_and_conflicts_are_named() {
    let mut f = fixture(
        Some("client_id = \"app\"\n"),
        Some("issuer = \"https://corp.example\"\nlocked = [\"issuer\"]\n"),
    );
    let sources = f.load(Settings::default()).expect("load");
    assert!(sources.merged().expect("merge").is_locked("issuer"));
    assert_eq!(
        f.resolve(Settings::default()).expect("ok").issuer,
        "https://corp.example"
    );

    // The same value is not a conflict.
    f.resolve(flags_issuer("https://corp.example"))
        .expect("same value is fine");

    let e = f
        .resolve(flags_issuer("https://evil.example"))
        .expect_err("locked");
    assert!(e.message().contains("managed by your organization"), "{e}");
    assert!(e.message().contains("the command line"), "{e}");

    f.env
        .insert("CORE_TEST_ISSUER".into(), "https://evil.example".into());
    let e = f.resolve(Settings::default()).expect_err("locked");
    assert!(e.message().contains("$CORE_TEST_ISSUER"), "{e}");
}

/// Regression (fuzz target `config`): a key the managed file locks but does not set takes
/// the user's value, so it is not shown as managed (doctor, the app's form) either.
#[test]
fn a_locked_key_the_managed_file_does_not_set_is_not_shown_as_locked() {
    let f = fixture(
        Some("client_id = \"other\"\n"),
        Some("issuer = \"https://corp.example\"\nlocked = [\"issuer\", \"client_id\"]\n"),
    );
    let merged = f
        .load(Settings::default())
        .expect("load")
        .merged()
        .expect("merge");
    assert!(merged.is_locked("issuer"));
    let (value, source) = merged.text("client_id").expect("client_id");
    let user = f.paths.user_file.clone().expect("user file");
    assert_eq!(
        (value.as_str(), source.clone()),
        ("other", Source::UserFile(user))
    );
    assert!(
        !merged.is_locked("client_id"),
        "the user's value is shown as managed"
    );
    assert_eq!(
        f.resolve(Settings::default()).expect("ok").client_id,
        "other"
    );
}

#[test]
fn lock_in_user_file_is_rejected() {
    let f = fixture(Some("locked = [\"issuer\"]\n"), None);
    let e = f.load(Settings::default()).expect_err("user lock");
    assert!(
        e.message().contains("only honoured in the system-wide"),
        "{e}"
    );
}

/// Documented in the README: `*` (or naming `profile`) never locks the profile; locks apply
/// to whichever profile is selected.
#[test]
fn lock_all_does_not_lock_the_profile() {
    let managed = "issuer = \"https://corp.example\"\nclient_id = \"corp\"\nprofile = \"work\"\nlocked = [\"*\", \"profile\"]\n";
    let home = || Settings {
        profile: Some("home".into()),
        ..Default::default()
    };
    let f = fixture(Some("[profiles.home]\nlogin_timeout = 60\n"), Some(managed));
    let sources = f.load(home()).expect("load");
    assert!(!sources.merged().expect("merge").is_locked("profile"));
    let c = sources.resolve().expect("another profile");
    assert_eq!((c.profile.as_str(), c.client_id.as_str()), ("home", "corp"));
    let f = fixture(
        Some("[profiles.home]\nclient_id = \"mine\"\n"),
        Some(managed),
    );
    let e = f.resolve(home()).expect_err("still locked there");
    assert!(e.message().contains("`client_id`"), "{e}");
}

#[test]
fn lock_all_keys_with_star() {
    let f = fixture(
        Some("client_id = \"mine\"\n"),
        Some("issuer = \"https://corp.example\"\nclient_id = \"corp\"\nlocked = [\"*\"]\n"),
    );
    let e = f
        .resolve(Settings::default())
        .expect_err("client_id locked");
    assert!(e.message().contains("`client_id`"), "{e}");
}

#[test]
fn profiles_override_top_level_per_file() {
    let f = fixture(
        Some(
            "issuer = \"https://home.example\"\nclient_id = \"a\"\n[profiles.work]\nissuer = \"https://work.example\"\n",
        ),
        None,
    );
    let c = f.resolve(Settings::default()).expect("ok");
    assert_eq!(c.issuer, "https://home.example");
    let c = f
        .resolve(Settings {
            profile: Some("work".into()),
            ..Default::default()
        })
        .expect("ok");
    assert_eq!(c.issuer, "https://work.example");
    assert_eq!(c.client_id, "a");
    assert_eq!(c.profile, "work");
}

#[test]
fn app_redirect_is_scheme_or_loopback() {
    let base = "issuer = \"https://id.example\"\nclient_id = \"a\"\n";
    let f = fixture(Some(base), None);
    assert_eq!(
        f.resolve(Settings::default())
            .expect("default")
            .app_redirect,
        AppRedirect::Scheme
    );
    let f = fixture(Some(&format!("{base}app_redirect = \"loopback\"\n")), None);
    assert_eq!(
        f.resolve(Settings::default())
            .expect("loopback")
            .app_redirect,
        AppRedirect::Loopback
    );
    let mut f = fixture(Some(base), None);
    f.env
        .insert("CORE_TEST_APP_REDIRECT".into(), "https".into());
    let e = f.resolve(Settings::default()).expect_err("bad");
    assert!(
        e.message()
            .contains("`app_redirect` from $CORE_TEST_APP_REDIRECT"),
        "{e}"
    );
}

#[test]
fn errors_name_the_key_and_source() {
    let f = fixture(
        Some("issuer = \"http://id.example.com\"\nclient_id = \"a\"\n"),
        None,
    );
    let e = f.resolve(Settings::default()).expect_err("bad issuer");
    assert!(e.message().starts_with("`issuer` from "), "{e}");
    assert!(e.message().contains("user.toml"), "{e}");

    let f = fixture(Some("issuer = \"https://id.example\"\n"), None);
    let e = f.resolve(Settings::default()).expect_err("no client");
    assert!(e.message().contains("$CORE_TEST_CLIENT_ID"), "{e}");
}

#[test]
fn unknown_keys_and_bad_toml_are_clear() {
    let f = fixture(Some("isuer = \"https://id.example\"\n"), None);
    let e = f.load(Settings::default()).expect_err("typo");
    assert!(e.message().contains("isuer"), "{e}");
    let f = fixture(Some("issuer = \n"), None);
    let e = f.load(Settings::default()).expect_err("bad TOML");
    assert_eq!(e.kind(), crate::error::ErrorKind::Config);
    assert!(e.message().contains("user.toml: "), "{e}");
    assert!(e.message().ends_with("; fix the file or remove it"), "{e}");
}

#[test]
fn extra_params_parse_and_reserved_are_rejected() {
    let mut f = fixture(
        Some("issuer = \"https://id.example\"\nclient_id = \"a\"\n"),
        None,
    );
    f.env.insert(
        "CORE_TEST_EXTRA_AUTH_PARAMS".into(),
        "prompt=login&audience=https%3A%2F%2Fapi".into(),
    );
    let c = f.resolve(Settings::default()).expect("ok");
    assert_eq!(
        c.extra_auth_params.get("audience").map(String::as_str),
        Some("https://api")
    );
    f.env
        .insert("CORE_TEST_EXTRA_AUTH_PARAMS".into(), "state=x".into());
    let e = f.resolve(Settings::default()).expect_err("reserved");
    assert!(e.message().contains("`state`"), "{e}");
    // The flow picks the response mode, and the response is checked against it.
    f.env.insert(
        "CORE_TEST_EXTRA_AUTH_PARAMS".into(),
        "response_mode=query".into(),
    );
    let e = f.resolve(Settings::default()).expect_err("reserved");
    assert!(e.message().contains("`response_mode`"), "{e}");
    assert_eq!(
        parse_params("novalue").expect_err("no value"),
        "expected key=value, found `novalue`"
    );
}

#[test]
fn store_key_is_validated_and_lockable() {
    let base = "issuer = \"https://id.example\"\nclient_id = \"a\"\n";
    let f = fixture(Some(base), None);
    assert_eq!(
        f.resolve(Settings::default()).expect("default").store,
        StoreChoice::Auto
    );
    let f = fixture(Some(&format!("{base}store = \"file\"\n")), None);
    let e = f.resolve(Settings::default()).expect_err("bad store");
    assert!(e.message().starts_with("`store` from "), "{e}");
    assert!(e.message().contains("secret-service"), "{e}");
    let f = fixture(Some(&format!("{base}store = \"kernel-keyring\"\n")), None);
    if !cfg!(target_os = "linux") {
        // Elsewhere there is one keychain, the OS's (run under Wine by tests/cross/run unit).
        let e = f.resolve(Settings::default()).expect_err("Linux only");
        assert!(e.message().contains("exists only on Linux"), "{e}");
        return;
    }
    assert_eq!(
        f.resolve(Settings::default()).expect("kernel").store,
        StoreChoice::KernelKeyring
    );
    // IT can pin the store: the managed value wins over the user's flag.
    let f = fixture(
        Some(base),
        Some("store = \"secret-service\"\nlocked = [\"store\"]\n"),
    );
    let flags = Settings {
        store: Some("kernel-keyring".into()),
        ..Settings::default()
    };
    let e = f.resolve(flags).expect_err("locked");
    assert!(e.message().contains("managed by your organization"), "{e}");
    assert_eq!(
        f.resolve(Settings::default()).expect("managed").store,
        StoreChoice::SecretService
    );
}

#[test]
fn flow_par_and_dpop_are_validated_with_key_and_source() {
    let base = "issuer = \"https://id.example\"\nclient_id = \"a\"\n";
    let f = fixture(Some(base), None);
    let c = f.resolve(Settings::default()).expect("defaults");
    assert_eq!(
        (c.flow, c.par, c.dpop),
        (FlowChoice::Code, UseChoice::Auto, UseChoice::Auto)
    );
    let f = fixture(
        Some(&format!(
            "{base}flow = \"device\"\npar = \"never\"\ndpop = \"always\"\n"
        )),
        None,
    );
    let c = f.resolve(Settings::default()).expect("set");
    assert_eq!(
        (c.flow, c.par, c.dpop),
        (FlowChoice::Device, UseChoice::Never, UseChoice::Always)
    );
    for flow in ["code", "hybrid", "implicit", "device"] {
        assert_eq!(FlowChoice::parse(flow).expect("valid").as_str(), flow);
    }

    // Each source is named: the file, the variable, the flag.
    let f = fixture(Some(&format!("{base}par = \"sometimes\"\n")), None);
    let e = f.resolve(Settings::default()).expect_err("bad par");
    let user = f.paths.user_file.clone().expect("user file");
    assert_eq!(
        e.message(),
        format!(
            "`par` from {}: `sometimes` is not a choice here; use auto, always or never",
            user.display()
        )
    );
    let mut f = fixture(Some(base), None);
    f.env.insert("CORE_TEST_FLOW".into(), "pkce".into());
    let e = f.resolve(Settings::default()).expect_err("bad flow");
    assert_eq!(
        e.message(),
        "`flow` from $CORE_TEST_FLOW: `pkce` is not a flow; use code, hybrid, implicit or device"
    );
    let flags = Settings {
        dpop: Some("yes".into()),
        ..Settings::default()
    };
    let e = fixture(Some(base), None)
        .resolve(flags)
        .expect_err("bad dpop");
    assert!(
        e.message()
            .starts_with("`dpop` from the command line: `yes`"),
        "{e}"
    );
    assert!(!e.message().contains('\n'), "one line: {e}");
}

#[test]
fn the_managed_file_can_lock_the_flow_and_require_dpop() {
    let base = "issuer = \"https://id.example\"\nclient_id = \"a\"\n";
    let f = fixture(
        Some(base),
        Some("flow = \"code\"\ndpop = \"always\"\nlocked = [\"flow\", \"dpop\"]\n"),
    );
    let c = f.resolve(Settings::default()).expect("managed");
    assert_eq!((c.flow, c.dpop), (FlowChoice::Code, UseChoice::Always));
    let flags = Settings {
        flow: Some("implicit".into()),
        ..Settings::default()
    };
    let e = f.resolve(flags).expect_err("locked flow");
    assert!(
        e.message()
            .starts_with("`flow` is managed by your organization in "),
        "{e}"
    );
    assert!(e.message().contains("the command line"), "{e}");
    let mut f2 = fixture(Some(base), Some("dpop = \"always\"\nlocked = [\"dpop\"]\n"));
    f2.env.insert("CORE_TEST_DPOP".into(), "never".into());
    let e = f2.resolve(Settings::default()).expect_err("locked dpop");
    assert!(e.message().contains("$CORE_TEST_DPOP"), "{e}");
}

#[test]
fn client_secret_is_redacted_in_debug() {
    let f = fixture(
        Some(
            "issuer = \"https://id.example\"\nclient_id = \"a\"\nclient_secret = \"s3cr3t-value\"\n",
        ),
        None,
    );
    let c = f.resolve(Settings::default()).expect("ok");
    assert!(!format!("{c:?}").contains("s3cr3t-value"));
}

#[cfg(unix)]
pub(super) fn chmod(p: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[cfg(unix)]
#[test]
fn loading_refuses_a_writable_managed_file_and_a_user_file_is_not_judged() {
    let f = fixture(
        Some("client_id = \"mine\"\n"),
        Some("issuer = \"https://corp.example\"\nlocked = [\"issuer\"]\n"),
    );
    let system = f.paths.system_file.clone().expect("path");
    let user = f.paths.user_file.clone().expect("path");
    chmod(&system, 0o666);
    let e = f.load(Settings::default()).expect_err("world-writable");
    assert_eq!(e.kind(), crate::error::ErrorKind::Config);
    assert!(e.message().contains("writable by every user"), "{e}");
    chmod(&system, 0o644);
    chmod(&user, 0o666);
    f.load(Settings::default())
        .expect("the user's own file may be anything");
}

/// Issue 18 (point 13): `kube_servers` from the managed file, matched as URLs; a plain-http or
/// query-carrying entry is refused with the key named; none listed allows any server.
#[test]
fn kube_servers_are_urls_matched_by_origin_and_path() {
    let f = fixture(
        Some("issuer = \"https://id.example.com\"\nclient_id = \"app\"\n"),
        Some(
            "kube_servers = [\"https://k8s.example:6443\", \"https://rancher.example/k8s/clusters/c-1/\"]\n",
        ),
    );
    let c = f.resolve(Settings::default()).expect("config");
    assert_eq!(c.kube_servers.len(), 2);
    assert!(c.allows_kube_server("https://K8S.example:6443/"));
    assert!(c.allows_kube_server("https://rancher.example/k8s/clusters/c-1"));
    for refused in [
        "https://k8s.example",
        "https://k8s.example:6443.evil.example",
        "http://k8s.example:6443",
        "https://rancher.example/k8s/clusters/c-2",
        "https://k8s.example:6443/?x=1",
        "https://user@k8s.example:6443",
        "not a url",
    ] {
        assert!(!c.allows_kube_server(refused), "{refused}");
    }

    let bad = fixture(
        Some(
            "issuer = \"https://id.example.com\"\nclient_id = \"app\"\nkube_servers = [\"http://k8s.example\"]\n",
        ),
        None,
    );
    let e = bad.resolve(Settings::default()).expect_err("plain http");
    assert!(e.to_string().contains("kube_servers"), "{e}");
    assert!(e.to_string().contains("not https"), "{e}");

    let none = fixture(
        Some("issuer = \"https://id.example.com\"\nclient_id = \"app\"\n"),
        None,
    );
    let c = none.resolve(Settings::default()).expect("config");
    assert!(c.allows_kube_server("https://anything.example"));
}
