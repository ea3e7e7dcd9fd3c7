//! The Latchkey plugin as this app configures it, on Tauri's mock runtime with the app's real
//! `tauri.conf.json` and capabilities: the IPC layer and its ACL, the view model and URL
//! handling, with an in-memory keychain and a recording browser. No network: the issuer is a
//! closed port. Real sign-ins are covered by `tests/window`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use latchkey_core::Ports;
use latchkey_core::browser::BrowserLauncher;
use latchkey_core::clock::SystemClock;
use latchkey_core::store::{MemoryStore, SecretStore};
use serde_json::{Value, json};
use tauri::test::{INVOKE_KEY, MockRuntime, mock_builder};
use tauri::webview::InvokeRequest;
use tauri::{App, WebviewWindow};

use latchkey_identity::LATCHKEY;
use tauri_plugin_latchkey::LatchkeyExt;
use tauri_plugin_latchkey::models::Phase;

/// A closed port: every provider call fails at once with "connection refused".
const DEAD_ISSUER: &str = "http://127.0.0.1:9";
const AT: &str = "AT-SECRET-HEADER";
const RT: &str = "RT-SECRET-VALUE-0123456789";
const IDT: &str = "IDT-SECRET-VALUE-0123456789";

#[derive(Debug, Default)]
struct RecordingBrowser(Mutex<Vec<String>>);

impl BrowserLauncher for RecordingBrowser {
    fn open(&self, url: &url::Url) -> Result<(), String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(url.to_string());
        Ok(())
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    env: HashMap<String, String>,
    store: Arc<MemoryStore>,
    browser: Arc<RecordingBrowser>,
}

impl Fixture {
    fn configured() -> Self {
        let mut f = Self::unconfigured();
        f.env.insert("LATCHKEY_ISSUER".into(), DEAD_ISSUER.into());
        f.env
            .insert("LATCHKEY_CLIENT_ID".into(), "latchkey-desktop".into());
        f.env.insert(
            "LATCHKEY_SCOPES".into(),
            "openid profile email offline_access api:read".into(),
        );
        f
    }

    fn unconfigured() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut env = HashMap::new();
        env.insert(
            "LATCHKEY_CONFIG".into(),
            dir.path().join("user.toml").display().to_string(),
        );
        env.insert(
            "LATCHKEY_SYSTEM_CONFIG".into(),
            dir.path().join("system.toml").display().to_string(),
        );
        Self {
            dir,
            env,
            store: Arc::new(MemoryStore::new(64 * 1024)),
            browser: Arc::default(),
        }
    }

    /// A session as the core stores it (`LK1 <generation> <count>\n<json>`), valid for an hour.
    fn store_session(&self) {
        use base64::Engine as _;
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"roles":["reader"],"groups":["staff"]}"#);
        let now = chrono::Utc::now();
        let ts = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339();
        let session = json!({
            "v": 1, "issuer": DEAD_ISSUER, "client_id": "latchkey-desktop", "profile": "default",
            "access_token": format!("{AT}.{claims}.sig"), "expires_at": ts(now + chrono::Duration::hours(1)),
            "issued_at": ts(now), "refresh_token": RT, "id_token": IDT,
            "requested_scopes": ["openid", "profile", "email", "offline_access", "api:read"],
            "granted_scopes": ["openid", "profile", "email", "offline_access"],
            "claims": { "sub": "alice", "aud": ["latchkey-desktop"], "name": "Alice Example",
                        "email": "alice@example.com", "email_verified": true },
            "signed_in_at": ts(now),
        });
        let blob = format!("LK1 g1 1\n{session}");
        self.store
            .set(
                &format!("default/latchkey-desktop@{DEAD_ISSUER}"),
                blob.as_bytes(),
            )
            .expect("store");
    }

    fn app(&self) -> (App<MockRuntime>, WebviewWindow<MockRuntime>) {
        let env = self.env.clone();
        let store: Arc<dyn SecretStore> = self.store.clone();
        let ports = Ports {
            store,
            browser: self.browser.clone(),
            clock: Arc::new(SystemClock),
            http: Arc::new(latchkey_core::http::SystemHttp::new(LATCHKEY.user_agent)),
            cache_dir: Some(self.dir.path().join("cache")),
            keychain_timeout: Duration::from_secs(5),
            // Not the kernel's: these tests must not share a cache with each other or the CLI.
            token_cache: None,
            identity: LATCHKEY,
        };
        let plugin = tauri_plugin_latchkey::Builder::new(LATCHKEY)
            .env(Arc::new(move |k: &str| env.get(k).cloned()))
            .ports(ports)
            .without_deep_link()
            .build();
        // The plugin's setup runs in `build`; the mock runtime has no event loop, so the
        // configured window is made here.
        let app = mock_builder()
            .plugin(plugin)
            .build(tauri::generate_context!(test = true))
            .expect("app");
        let window = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
            .build()
            .expect("window");
        (app, window)
    }

    fn opened(&self) -> Vec<String> {
        self.browser
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn wait_phase(app: &App<MockRuntime>, phase: Phase) -> tauri_plugin_latchkey::models::ViewModel {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let vm = app.latchkey().view();
        if vm.phase == phase {
            return vm;
        }
        assert!(
            Instant::now() < deadline,
            "still {:?}, waiting for {phase:?}",
            vm.phase
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (10 s at most) until `done` holds.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "waited 10 s for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Invokes a command through the IPC layer, ACL included, as the page does. A bare name is the
/// Latchkey plugin's (`plugin:latchkey|<name>`).
fn invoke(window: &WebviewWindow<MockRuntime>, cmd: &str, body: Value) -> Result<Value, Value> {
    let cmd = if cmd.starts_with("plugin:") {
        cmd.to_owned()
    } else {
        format!("plugin:latchkey|{cmd}")
    };
    tauri::test::get_ipc_response(
        window,
        InvokeRequest {
            cmd,
            callback: tauri::ipc::CallbackFn(0),
            error: tauri::ipc::CallbackFn(1),
            url: "tauri://localhost".parse().expect("url"),
            body: tauri::ipc::InvokeBody::Json(body),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        },
    )
    .map(|b| b.deserialize::<Value>().expect("json"))
}

fn assert_no_token(what: &str, text: &str) {
    for secret in [AT, RT, IDT, "SECRET"] {
        assert!(!text.contains(secret), "{what} contains a token: {text}");
    }
}

#[test]
fn stored_session_signs_in_silently_and_no_command_returns_a_token() {
    let f = Fixture::configured();
    f.store_session();
    let (app, window) = f.app();
    let vm = wait_phase(&app, Phase::SignedIn);
    assert!(f.opened().is_empty(), "no browser at start-up");

    let state = invoke(&window, "get_state", json!({})).expect("get_state");
    let text = state.to_string();
    assert_no_token("get_state", &text);
    let id = &state["identity"];
    assert_eq!(id["name"], "Alice Example");
    assert_eq!(id["initials"], "AE");
    assert_eq!(
        id["granted"][2],
        json!({"scope": "email", "description": "See your email address"})
    );
    assert_eq!(
        id["notGranted"],
        json!([{"scope": "api:read", "description": null}])
    );
    assert_eq!(
        id["accessClaims"],
        json!({"roles": ["reader"], "groups": ["staff"], "permissions": []})
    );
    assert_eq!(state["phase"], "signedIn");
    assert_eq!(state["seq"], json!(vm.seq));

    for (cmd, body) in [
        ("dismiss", json!({})),
        ("retry", json!({})),
        ("open_browser_again", json!({})),
        ("cancel_sign_in", json!({})),
        ("sign_in", json!({})),
    ] {
        let r = invoke(&window, cmd, body);
        assert_no_token(cmd, &format!("{r:?}"));
    }

    // Sign-out with the provider unreachable: the local session is still forgotten.
    let out = invoke(&window, "sign_out", json!({"alsoProvider": true})).expect("sign_out");
    assert_no_token("sign_out", &out.to_string());
    assert_eq!(out["phase"], "signedOut");
    assert!(
        out["notice"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("could not revoke")),
        "{out}"
    );
    assert!(f.store.names().is_empty(), "keychain entry deleted");
    assert!(
        f.opened().is_empty(),
        "no end-session URL without discovery"
    );
}

#[test]
fn next_state_answers_at_the_next_change_or_unchanged_after_its_wait() {
    let f = Fixture::configured();
    f.store_session();
    let (app, window) = f.app();
    let mut seq = wait_phase(&app, Phase::SignedIn).seq;

    // Nothing changes: the view as it was, once the wait is over. Start-up may still change the
    // view after it is signed in (its background work ends with a notice or a picture), so this
    // waits until a whole wait passes with no change, and each change comes back at once.
    let state = app.latchkey();
    let wait = Duration::from_millis(300);
    let mut quiet = false;
    for _ in 0..20 {
        let started = Instant::now();
        let vm = tauri::async_runtime::block_on(state.next_view(Some(seq), wait));
        if vm.seq == seq {
            assert!(started.elapsed() >= wait, "unchanged, but early");
            quiet = true;
            break;
        }
        assert!(vm.seq > seq, "{} after {seq}", vm.seq);
        seq = vm.seq;
    }
    assert!(quiet, "the view kept changing");

    // No `after`, or one already passed: at once.
    let vm = invoke(&window, "next_state", json!({ "after": null })).expect("next_state");
    assert_eq!(vm["seq"], json!(seq));
    let vm = invoke(&window, "next_state", json!({ "after": seq - 1 })).expect("next_state");
    assert_eq!(vm["seq"], json!(seq));

    // A change while the window waits: answered with it, well before the 25 s long poll ends.
    let waiting = window.clone();
    let poll = std::thread::spawn(move || {
        let started = Instant::now();
        let vm = invoke(&waiting, "next_state", json!({ "after": seq }));
        (vm, started.elapsed())
    });
    // Changed only once the poll listens, so the change cannot come before it.
    wait_until("the poll listens", || state.waiting_polls() == 1);
    invoke(&window, "dismiss", json!({})).expect("dismiss");
    let (vm, took) = poll.join().expect("poll thread");
    assert_eq!(
        state.waiting_polls(),
        0,
        "the answered poll stopped listening"
    );
    let vm = vm.expect("next_state");
    assert_eq!(vm["seq"], json!(seq + 1));
    assert_eq!(vm["phase"], "signedIn");
    assert_no_token("next_state", &vm.to_string());
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
}

#[test]
fn command_errors_serialize_as_kind_and_message() {
    let f = Fixture::configured();
    f.store_session();
    let (app, window) = f.app();
    wait_phase(&app, Phase::SignedIn);
    let e = invoke(&window, "sign_in", json!({})).expect_err("already signed in");
    assert_eq!(
        e,
        json!({"kind": "busy", "message": "Already signed in; sign out first"})
    );
    let e = invoke(&window, "open_browser_again", json!({})).expect_err("not signing in");
    assert_eq!(e["kind"], "not_signing_in");

    // Issue 8, finding 13: once set up, the settings form is closed, so a page cannot repoint
    // a signed-in app at another provider.
    let form =
        json!({"form": {"issuer": "https://evil.example", "clientId": "x", "scopes": "openid"}});
    let e = invoke(&window, "save_settings", form).expect_err("signed in");
    assert_eq!(e["kind"], "config", "{e}");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("before the app is set up")),
        "{e}"
    );
    assert!(!f.dir.path().join("user.toml").exists(), "nothing saved");
}

#[test]
fn the_window_may_call_only_the_apps_commands() {
    let f = Fixture::configured();
    let (app, window) = f.app();
    wait_phase(&app, Phase::SignedOut);
    for cmd in [
        // The window follows the state with `next_state`, not events.
        "plugin:event|listen",
        "plugin:window|close",
        "plugin:webview|print",
        "plugin:app|version",
        "plugin:path|resolve_directory",
    ] {
        let e = invoke(&window, cmd, json!({})).expect_err(cmd);
        assert!(e.to_string().contains("not allowed"), "{cmd}: {e}");
    }
}

#[test]
fn hostile_urls_are_rejected_and_change_nothing() {
    let f = Fixture::configured();
    let (app, _window) = f.app();
    wait_phase(&app, Phase::SignedOut);
    let state = app.latchkey();
    let long = format!(
        "com.example.latchkey:/callback?state={}",
        "A".repeat(20_000)
    );
    for url in [
        "",
        "not a url",
        "com.example.latchkey:/callback?code=x&state=forged",
        "com.example.latchkey:/callback?code=a&code=b&state=s",
        "com.example.latchkey:/callback?error=access_denied",
        "com.example.latchkey://[::1",
        long.as_str(),
    ] {
        let vm = tauri::async_runtime::block_on(state.incoming(app.handle(), url.to_owned()));
        assert_eq!(vm.phase, Phase::SignedOut, "{url:.60}");
        let error = vm.error.expect("banner");
        assert_eq!(error.kind, "foreign_callback", "{url:.60}");
        assert!(!error.message.is_empty());
    }
    assert!(f.store.names().is_empty());
}

#[test]
fn an_unreachable_provider_at_sign_in_is_a_banner_not_a_browser() {
    let f = Fixture::configured();
    let (app, window) = f.app();
    wait_phase(&app, Phase::SignedOut);
    let vm = invoke(&window, "sign_in", json!({})).expect("sign_in answers with the view");
    assert_eq!(vm["phase"], "signedOut");
    assert_eq!(vm["error"]["kind"], "provider_unreachable");
    assert_eq!(vm["error"]["retry"], "signIn");
    assert!(f.opened().is_empty());
}

#[test]
fn first_run_form_shows_managed_keys_read_only() {
    let f = Fixture::unconfigured();
    std::fs::write(
        f.dir.path().join("system.toml"),
        "client_id = \"corp-app\"\nlocked = [\"client_id\"]\n",
    )
    .expect("write");
    let (app, window) = f.app();
    let vm = wait_phase(&app, Phase::Setup);
    let setup = vm.setup.expect("form");
    assert!(setup.client_id.read_only);
    assert_eq!(setup.client_id.value, "corp-app");
    assert_eq!(
        setup.client_id.note.as_deref(),
        Some("Managed by your organization")
    );
    assert!(!setup.issuer.read_only);
    assert_eq!(setup.scopes.value, latchkey_core::config::DEFAULT_SCOPES);

    // Validation happens before anything is written.
    let form = json!({"form": {"issuer": "http://id.example.com", "clientId": "ignored", "scopes": "openid"}});
    let e = invoke(&window, "save_settings", form).expect_err("plain http issuer");
    assert_eq!(e["kind"], "config");
    let form = json!({"form": {"issuer": DEAD_ISSUER, "clientId": "ignored", "scopes": "openid"}});
    let e = invoke(&window, "save_settings", form).expect_err("unreachable issuer");
    assert_eq!(e["kind"], "provider_unreachable");
    assert!(!f.dir.path().join("user.toml").exists());
}

/// The window has no bundler, so it carries a copy of the plugin's JavaScript API; the copy must
/// be the plugin's, byte for byte (`cp crates/tauri-plugin-latchkey/guest-js/index.js ui/latchkey.js`).
#[test]
fn the_ui_carries_the_plugins_js_api_unchanged() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let api = std::fs::read_to_string(root.join("crates/tauri-plugin-latchkey/guest-js/index.js"))
        .expect("guest-js");
    for copy in ["ui/latchkey.js", "tests/template/ui/latchkey.js"] {
        let text = std::fs::read_to_string(root.join(copy)).unwrap_or_default();
        assert!(
            text == api,
            "{copy} differs from the plugin's guest-js/index.js: copy it again"
        );
    }
}
