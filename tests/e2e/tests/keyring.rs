//! The store ladder and the token cache, for real: the kernel keyring (read back with `keyctl`)
//! where there is no Secret Service, a locked Secret Service that is not a reason to switch, and
//! the access-token cache in the kernel user keyring that `latchkey token` answers from without
//! D-Bus.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use latchkey_e2e::*;

mod common;
use common::core_for;

fn short_lived() -> Provider {
    Provider::start(&[("DEV_ACCESS_TOKEN_TTL", "4")])
}

#[test]
fn without_a_session_bus_the_session_lives_in_the_kernel_keyring() {
    let provider = short_lived();
    let mut sb = Sandbox::new(&provider.issuer);
    sb.unset("DBUS_SESSION_BUS_ADDRESS");

    let r = sb.run(&["login", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["store"], "kernel-keyring");
    // Said once, on stderr, at the first sign-in into the kernel keyring.
    assert_eq!(
        r.stderr.matches("kernel keyring").count(),
        1,
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("until reboot"), "{}", r.stderr);

    // keyctl sees the session, owner-only, with the refresh token in it.
    let key = sb
        .kernel_entry("default")
        .expect("session key in the kernel keyring");
    assert_eq!(
        key.permissions(),
        "003f0000",
        "the user only, not any possessor"
    );
    let session = sb.kernel_session("default").unwrap();
    let rt = session["refresh_token"].as_str().unwrap().to_owned();
    assert!(provider.is_active(&rt));
    assert!(
        sb.stored_session("default").is_none(),
        "nothing in the Secret Service"
    );
    let status = sb.run(&["status", "--json"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert_eq!(status.json()["store"], "kernel-keyring");

    // token: the stored access token; a refresh after expiry rotates it in the kernel keyring.
    let r = sb.run(&["token"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), session["access_token"].as_str().unwrap());
    sleep_until(status.json()["expires_at"].as_str().unwrap());
    let r = sb.run(&["token"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(provider.refreshes(), 1);
    let refreshed = sb.kernel_session("default").unwrap();
    assert_eq!(r.stdout.trim(), refreshed["access_token"].as_str().unwrap());
    // The refreshed token is cached too (with this provider's 4 s tokens, for about 3 s).
    let cached = sb
        .token_cache_entry("default")
        .expect("cached after the refresh");
    assert!(
        cached
            .payload()
            .contains(refreshed["access_token"].as_str().unwrap())
    );
    assert_ne!(
        refreshed["refresh_token"], session["refresh_token"],
        "rotated"
    );
    let second = sb.run(&["login"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        !second.stderr.contains("kernel keyring"),
        "said only at the first sign-in: {}",
        second.stderr
    );

    // No token in any file, under $HOME or /tmp.
    let now = sb.kernel_session("default").unwrap();
    for secret in [
        now["access_token"].as_str().unwrap(),
        now["refresh_token"].as_str().unwrap(),
        now["id_token"].as_str().unwrap(),
    ] {
        assert!(files_containing(&sb.home(), secret).is_empty());
        assert!(sb.tmp_files_containing(secret).is_empty());
    }

    // logout revokes and removes every key: the session's and the cached token's.
    let r = sb.run(&["logout"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("revoked"), "{}", r.stderr);
    assert!(sb.kernel_entry("default").is_none());
    assert!(sb.token_cache_entry("default").is_none());
    assert_eq!(sb.run(&["token"]).code, 1);
}

#[test]
fn an_explicit_secret_service_without_one_fails_instead_of_falling_back() {
    let provider = Provider::start(&[]);
    let mut sb = Sandbox::new(&provider.issuer);
    sb.unset("DBUS_SESSION_BUS_ADDRESS");
    sb.set("LATCHKEY_STORE", "secret-service");
    let r = sb.run(&["login"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let line = r.error_line();
    assert_eq!(line.lines().count(), 1, "{}", r.stderr);
    assert!(
        line.contains("`store` is `secret-service`") && line.contains("no D-Bus session bus"),
        "{line}"
    );
    assert_eq!(sb.launches(), 0, "fails before any browser opens");
    assert!(sb.kernel_entry("default").is_none());

    // A typo names the key and its source.
    sb.set("LATCHKEY_STORE", "kernel");
    let r = sb.run(&["status"]);
    assert_eq!(r.code, 2);
    assert!(
        r.error_line().contains("$LATCHKEY_STORE") && r.error_line().contains("kernel-keyring"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_locked_secret_service_is_transient_and_nothing_moves() {
    let provider = short_lived();
    let keyring = PrivateKeyring::start();
    let mut sb = Sandbox::new(&provider.issuer);
    sb.set("DBUS_SESSION_BUS_ADDRESS", &keyring.address);
    let id = sb.login();
    assert_eq!(id["store"], "secret-service");

    keyring.lock();
    // Once the cached token has expired, `token` needs the (locked) keychain.
    sleep_until(id["expires_at"].as_str().unwrap());
    for cmd in ["token", "status"] {
        let r = sb.run(&[cmd]);
        assert_eq!(r.code, 2, "{cmd}: {}", r.stderr);
        assert!(r.error_line().contains("locked"), "{}", r.stderr);
        assert!(r.stdout.is_empty());
    }
    let r = sb.run(&["login"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        sb.kernel_entry("default").is_none(),
        "nothing moved to the kernel keyring"
    );
    assert_eq!(
        provider.refreshes(),
        0,
        "nothing refreshed without the keychain"
    );
    assert_eq!(sb.launches(), 1, "no second browser sign-in");
}

/// `keyctl print <id>` as uid 65534 in a new session keyring that links this user's keyring:
/// the position of a process that inherited the session keyring across `sudo -u` (L5). The
/// other uid possesses every key reachable from there.
fn print_as_another_uid(id: &str) -> std::process::Output {
    std::process::Command::new("keyctl")
        .args(["session", "-", "sh", "-c"])
        .arg("keyctl link @u @s >/dev/null && exec setpriv --reuid=65534 --regid=65534 --clear-groups keyctl print \"$0\"")
        .arg(id)
        .output()
        .unwrap()
}

/// L5: a process of another uid that shares the session keyring reads neither the session nor
/// the cached token. A key with the kernel's default possessor rights, reached the same way, is
/// readable, so the refusal is the permissions' doing.
#[test]
fn another_uid_sharing_the_session_keyring_reads_no_key() {
    if effective_uid() != 0 {
        eprintln!("skipped: switching to another uid needs root (CI runs as root)");
        return;
    }
    let provider = Provider::start(&[]);
    let mut sb = Sandbox::new(&provider.issuer);
    sb.unset("DBUS_SESSION_BUS_ADDRESS");
    assert_eq!(sb.run(&["login"]).code, 0);
    let session = sb.kernel_entry("default").expect("session key");
    let cached = sb.token_cache_entry("default").expect("cached token");

    let control = std::process::Command::new("keyctl")
        .args(["add", "user", "latchkey-e2e:control", "readable", "@u"])
        .output()
        .unwrap();
    let control_id = String::from_utf8(control.stdout).unwrap().trim().to_owned();
    let read = print_as_another_uid(&control_id);
    let _ = std::process::Command::new("keyctl")
        .args(["invalidate", &control_id])
        .status();
    assert!(
        read.status.success() && String::from_utf8_lossy(&read.stdout).contains("readable"),
        "the other uid possesses keys reached this way: {}",
        String::from_utf8_lossy(&read.stderr)
    );

    for key in [&session, &cached] {
        let out = print_as_another_uid(&key.id);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{} was readable by uid 65534 (its payload is not shown)",
            key.description
        );
        assert!(
            err.contains("Permission denied"),
            "{}: {err}",
            key.description
        );
    }
}

fn effective_uid() -> u32 {
    let out = std::process::Command::new("id").arg("-u").output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_cached_token_is_served_without_any_dbus_connection() {
    let provider = Provider::start(&[]);
    let mut sb = Sandbox::new(&provider.issuer);
    sb.login();
    let session = sb.stored_session("default").unwrap();
    let at = session["access_token"].as_str().unwrap();
    let cached = sb
        .token_cache_entry("default")
        .expect("login fills the cache");
    assert_eq!(
        cached.permissions(),
        "003f0000",
        "the user only, not any possessor"
    );
    assert!(
        !cached
            .payload()
            .contains(session["refresh_token"].as_str().unwrap())
    );
    let timeout = cached.timeout().unwrap();
    assert_ne!(timeout, "perm", "the kernel forgets it at expiry");

    // A bus that counts its connections: the hot path must make none.
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("bus.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&connections);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            seen.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    sb.set(
        "DBUS_SESSION_BUS_ADDRESS",
        &format!("unix:path={}", sock.display()),
    );
    sb.set("LATCHKEY_KEYCHAIN_TIMEOUT_MS", "1500");
    let r = sb.run(&["token"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), at);
    assert_eq!(connections.load(Ordering::SeqCst), 0, "no D-Bus connection");

    // The same call with the cache off goes to the (frozen) bus and times out.
    sb.set("LATCHKEY_TOKEN_CACHE", "off");
    let r = sb.run(&["token"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.error_line().contains("did not answer"), "{}", r.stderr);
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        connections.load(Ordering::SeqCst) >= 1,
        "the keychain path did connect"
    );
}

#[test]
fn the_cache_follows_refreshes_by_other_processes_and_logout() {
    let provider = Provider::start(&[]);
    let sb = Sandbox::new(&provider.issuer);
    sb.login();
    let first = sb.run(&["token"]).stdout;
    assert!(!first.trim().is_empty());

    // Another process refreshes (the core in this test process, as the app would): the next
    // `token` sees the new token although the old one is still valid and was cached.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let latchkey = core_for(&sb);
    runtime.block_on(latchkey.refresh()).expect("refresh");
    assert_eq!(provider.refreshes(), 1);
    let second = sb.run(&["token"]).stdout;
    assert_ne!(first, second);
    assert_eq!(
        second.trim(),
        sb.stored_session("default").unwrap()["access_token"]
            .as_str()
            .unwrap()
    );

    // After logout the kernel's cached value is gone, and `token` says "not signed in".
    assert!(sb.token_cache_entry("default").is_some());
    assert_eq!(sb.run(&["logout"]).code, 0);
    assert!(sb.token_cache_entry("default").is_none());
    let r = sb.run(&["token"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stdout.is_empty());

    // The same when the other process signs out.
    sb.login();
    assert!(sb.run(&["token"]).code == 0 && sb.token_cache_entry("default").is_some());
    runtime.block_on(latchkey.logout()).expect("logout");
    assert_eq!(sb.run(&["token"]).code, 1);

    // And when the process that signs out has the cache turned off: `off` stops its reads and
    // writes, never its clearing (issue 18, L1).
    sb.login();
    assert!(sb.run(&["token"]).code == 0 && sb.token_cache_entry("default").is_some());
    let out = sb
        .command(&["logout"])
        .env("LATCHKEY_TOKEN_CACHE", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        sb.token_cache_entry("default").is_none(),
        "a cached token outlived the logout"
    );
}
