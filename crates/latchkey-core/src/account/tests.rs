//! The facade's tests: a whole account over in-memory ports and local servers, reaching into the
//! use cases where a test needs a seam.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use url::Url;

use super::*;
use crate::AppIdentity;
use crate::browser::BrowserLauncher;
use crate::clock::SystemClock;
use crate::discovery::Provider;
use crate::error::ErrorKind;
use crate::oauth::token::{DEFAULT_ACCESS_TOKEN_LIFETIME, MAX_ACCESS_TOKEN_LIFETIME};
use crate::oauth::token::{access_token_expiry, check_token_type};
use crate::session::{Claims, Session};
use crate::store::{MemoryStore, SecretStore, StoreError};

const ISSUER: &str = "https://id.example";

#[derive(Debug)]
struct NoBrowser;
impl BrowserLauncher for NoBrowser {
    fn open(&self, _: &Url) -> std::result::Result<(), String> {
        Err("no browser in tests".into())
    }
}

/// A Latchkey over a MemoryStore whose small entries force chunking, with the provider's
/// metadata seeded so nothing touches the network.
fn offline(cache: &std::path::Path) -> (Arc<MemoryStore>, Latchkey) {
    offline_at(cache, ISSUER)
}

fn offline_at(cache: &std::path::Path, issuer: &str) -> (Arc<MemoryStore>, Latchkey) {
    let store = Arc::new(MemoryStore::new(200));
    let latchkey = offline_with(cache, issuer, store.clone());
    (store, latchkey)
}

fn offline_with(cache: &std::path::Path, issuer: &str, store: Arc<dyn SecretStore>) -> Latchkey {
    let config = Config {
        issuer: issuer.into(),
        client_id: "app".into(),
        scopes: vec!["openid".into(), "email".into()],
        redirect_uri: Url::parse("http://127.0.0.1/callback").expect("url"),
        client_secret: None,
        profile: crate::config::DEFAULT_PROFILE.into(),
        login_timeout: Duration::from_secs(300),
        extra_auth_params: Default::default(),
        post_logout_redirect_uri: None,
        scope_descriptions: Default::default(),
        store: crate::config::StoreChoice::Auto,
        git_hosts: Vec::new(),
        git_username: "oauth2".into(),
        flow: crate::config::FlowChoice::Code,
        par: crate::config::UseChoice::Auto,
        dpop: crate::config::UseChoice::Auto,
        app_redirect: Default::default(),
    };
    let ports = Ports {
        store,
        browser: Arc::new(NoBrowser),
        clock: Arc::new(SystemClock),
        cache_dir: Some(cache.to_path_buf()),
        keychain_timeout: Duration::from_secs(5),
        token_cache: None,
        identity: AppIdentity::TEST,
    };
    let latchkey = Latchkey::new(config, ports);
    seed(&latchkey, metadata(issuer, "token", None));
    latchkey
}

/// Finding 9 of issue 8: the provider's return from RP-initiated logout is recognised, for
/// the logout this process started only (its `state`), once.
#[test]
fn the_logout_return_is_matched_by_state_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut lk = offline_with(dir.path(), ISSUER, Arc::new(MemoryStore::new(200)));
    let ret = "com.example.app:/logout";
    lk.ctx.config.post_logout_redirect_uri = Some(Url::parse(ret).expect("url"));
    let mut m = metadata(ISSUER, "token", None);
    m["end_session_endpoint"] = serde_json::json!(format!("{ISSUER}/session/end"));
    let provider = Provider::for_tests(m, openidconnect::JsonWebKeySet::new(Vec::new()));

    let back = |state: &str| lk.logout_return(&format!("{ret}?state={state}"));
    assert!(
        back("x").expect("addressed to the logout URI").is_err(),
        "none started"
    );
    let url = end_session::end_session_url(&lk.ctx, &provider, &session(Utc::now()))
        .expect("end-session URL");
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state sent");
    assert!(back("wrong").expect("addressed").is_err(), "forged state");
    assert!(
        lk.logout_return(ret).expect("addressed").is_err(),
        "no state"
    );
    assert!(back(&state).expect("addressed").is_ok(), "the real return");
    assert!(back(&state).expect("addressed").is_err(), "replayed");
    assert!(
        lk.logout_return("com.example.app:/callback?code=a&state=b")
            .is_none(),
        "a sign-in redirect is not a logout return"
    );
}

/// Provider metadata with the token endpoint at `{issuer}/{token}`, and the revocation
/// endpoint at `{issuer}/{revocation}` when given.
fn metadata(issuer: &str, token: &str, revocation: Option<&str>) -> serde_json::Value {
    let mut m = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/{token}"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    });
    if let Some(r) = revocation {
        m["revocation_endpoint"] = serde_json::json!(format!("{issuer}/{r}"));
    }
    m
}

/// Makes `metadata` the provider's current (as if cached) metadata. Outside a runtime.
fn seed(latchkey: &Latchkey, metadata: serde_json::Value) {
    latchkey.ctx.discovery.seed_for_tests(Provider::for_tests(
        metadata,
        openidconnect::JsonWebKeySet::new(Vec::new()),
    ));
}

fn session(now: DateTime<Utc>) -> Session {
    session_at(now, ISSUER)
}

/// A session signed in at `issuer`, bound to the endpoints [`offline_at`] seeds.
fn session_at(now: DateTime<Utc>, issuer: &str) -> Session {
    Session {
        v: 1,
        issuer: issuer.into(),
        client_id: "app".into(),
        profile: crate::config::DEFAULT_PROFILE.into(),
        access_token: "AT".repeat(200),
        expires_at: now + chrono::Duration::hours(1),
        issued_at: Some(now),
        refresh_token: Some("RT".repeat(100)),
        id_token: None,
        requested_scopes: vec!["openid".into()],
        granted_scopes: vec!["openid".into()],
        claims: Claims {
            sub: "alice".into(),
            ..Default::default()
        },
        signed_in_at: now,
        endpoints: Some(crate::discovery::Endpoints {
            token: format!("{issuer}/token"),
            ..Default::default()
        }),
        flow: "code".into(),
        token_type: Some("Bearer".into()),
        dpop_jkt: None,
        dpop_key: None,
        par: false,
        picture: None,
    }
}

/// Saves a chunked session, then removes one of its chunks.
async fn damage(store: &MemoryStore, latchkey: &Latchkey) {
    latchkey
        .ctx
        .vault
        .save(&latchkey.ctx.session_name, session(Utc::now()).to_bytes())
        .await
        .expect("save");
    let chunks: Vec<String> = store
        .names()
        .into_iter()
        .filter(|n| n.contains('#'))
        .collect();
    assert!(chunks.len() > 1, "chunked: {chunks:?}");
    store.delete(&chunks[0]).expect("delete");
    let e = latchkey.current().await.expect_err("damaged");
    assert!(e.message().contains("missing"), "{e}");
}

#[test]
fn a_damaged_session_does_not_lock_the_user_out() {
    let dir = tempfile::tempdir().expect("tmp");
    let (store, latchkey) = offline(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        damage(&store, &latchkey).await;
        // A new sign-in starts over an unreadable entry (and will replace it).
        let redirect = Url::parse("http://127.0.0.1:5000/callback").expect("url");
        latchkey.begin(&redirect).await.expect("begin over damage");

        let out = latchkey.logout().await.expect("logout over damage");
        assert!(out.was_signed_in && out.damaged && !out.revoked, "{out:?}");
        assert!(store.names().is_empty(), "{:?}", store.names());
        assert!(latchkey.current().await.expect("readable").is_none());
        let again = latchkey.logout().await.expect("second logout");
        assert!(!again.was_signed_in && !again.damaged);
        latchkey.begin(&redirect).await.expect("begin after logout");

        // A complete entry whose bytes are not a session.
        latchkey
            .ctx
            .vault
            .save(&latchkey.ctx.session_name, vec![b'{'; 700])
            .await
            .expect("save");
        let e = latchkey.current().await.expect_err("unparsable");
        assert!(e.message().contains("unreadable"), "{e}");
        latchkey.begin(&redirect).await.expect("begin over garbage");
        assert!(latchkey.logout().await.expect("logout").damaged);
        assert!(store.names().is_empty(), "{:?}", store.names());
    });
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).expect("ts")
}

#[test]
fn huge_expires_in_is_clamped_not_a_panic() {
    for secs in [10_000_000_000_000, u64::MAX / 1000, u64::MAX] {
        let at = access_token_expiry(now(), Some(Duration::from_secs(secs)), None);
        assert_eq!(at, now() + MAX_ACCESS_TOKEN_LIFETIME, "{secs}");
    }
    let at = access_token_expiry(now(), Some(Duration::from_secs(3600)), None);
    assert_eq!(at, now() + chrono::Duration::hours(1));
}

#[test]
fn token_type_error_quotes_the_type_sanitized() {
    assert!(!check_token_type("bearer", false).expect("bearer"));
    assert!(!check_token_type("Bearer", true).expect("bearer with a proof"));
    let e = check_token_type("DPoP\u{1b}[2J\u{9b}1;1H\u{7}\nx", true).expect_err("not bearer");
    assert_eq!(
        e.to_string(),
        "the provider issued a `DPoP x` token; only Bearer and DPoP are supported"
    );
}

#[test]
fn a_dpop_token_is_accepted_only_after_a_proof() {
    assert!(check_token_type("DPoP", true).expect("dpop"));
    assert!(check_token_type("dpop", true).expect("case-insensitive"));
    let e = check_token_type("DPoP", false).expect_err("no proof was sent");
    assert!(e.message().contains("without a DPoP proof"), "{e}");
}

#[test]
fn jwt_exp_is_clamped_too() {
    let far = DateTime::from_timestamp(253_402_300_799, 0).expect("year 9999");
    assert_eq!(
        access_token_expiry(now(), None, Some(far)),
        now() + MAX_ACCESS_TOKEN_LIFETIME
    );
    let past = now() - chrono::Duration::days(1);
    assert_eq!(access_token_expiry(now(), None, Some(past)), now());
    assert_eq!(
        access_token_expiry(now(), None, None),
        now() + DEFAULT_ACCESS_TOKEN_LIFETIME
    );
}

/// Reads one request's head and form body; returns the head.
async fn read_request(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while let Ok(read) = stream.read(&mut chunk).await {
        buf.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return text[..end].to_owned();
            }
        }
        if read == 0 {
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

async fn answer(stream: &mut tokio::net::TcpStream, status: &str, body: &[u8]) {
    use tokio::io::AsyncWriteExt as _;
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let _ = stream.shutdown().await;
}

/// A token endpoint that answers every request with a fresh access token that is already
/// expired (`expires_in: 0`), counting the requests.
async fn expired_token_endpoint() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let issuer = format!("http://{}", listener.local_addr().expect("addr"));
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            read_request(&mut stream).await;
            let body =
                format!(r#"{{"access_token":"AT-{n}","token_type":"Bearer","expires_in":0}}"#);
            answer(&mut stream, "200 OK", body.as_bytes()).await;
        }
    });
    (issuer, count)
}

/// A small HTTP server on 127.0.0.1: each path in `routes` is answered 200 with its body,
/// anything else 404; every request's path is recorded in `hits`.
#[derive(Clone)]
struct Stub {
    base: String,
    routes: Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>>,
    hits: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Stub {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let stub = Stub {
            base: format!("http://{}", listener.local_addr().expect("addr")),
            routes: Arc::default(),
            hits: Arc::default(),
        };
        let server = stub.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let head = read_request(&mut stream).await;
                let path = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                server.hits.lock().expect("hits").push(path.clone());
                let body = server.routes.lock().expect("routes").get(&path).cloned();
                match body {
                    Some(b) => answer(&mut stream, "200 OK", &b).await,
                    None => answer(&mut stream, "404 Not Found", b"{}").await,
                }
            }
        });
        stub
    }

    fn route(&self, path: &str, body: impl Into<Vec<u8>>) {
        self.routes
            .lock()
            .expect("routes")
            .insert(path.into(), body.into());
    }

    fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .expect("hits")
            .iter()
            .filter(|p| *p == path)
            .count()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn the_picture_is_fetched_from_a_checked_address() {
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    let rt = runtime();
    let stub = rt.block_on(Stub::start());
    stub.route("/a.png", PNG);
    let dir = tempfile::tempdir().expect("tmp");
    let (_store, latchkey) = offline(dir.path());
    let port = stub.base.rsplit(':').next().expect("port").to_owned();
    let mut s = session(Utc::now());
    rt.block_on(async {
        // An address literal, and a name the pinned client must connect by: this debug
        // build allows loopback (the dev provider); a release build refuses both.
        for url in [
            format!("{}/a.png", stub.base),
            format!("http://localhost:{port}/a.png"),
        ] {
            s.claims.picture = Some(url.clone());
            let picture = latchkey.picture(&s.identity()).await.expect(&url);
            assert_eq!(picture.map(|p| p.media_type()), Some("image/png"), "{url}");
        }
        assert_eq!(stub.hits("/a.png"), 2);
        s.claims.picture = Some("https://10.0.0.1/a.png".into());
        let e = latchkey.picture(&s.identity()).await.expect_err("private");
        assert_eq!(e.kind(), ErrorKind::ProviderInvalid);
    });
}

#[test]
fn expires_in_zero_refreshes_at_most_once_per_ten_seconds() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (issuer, count) = rt.block_on(expired_token_endpoint());
    let dir = tempfile::tempdir().expect("tmp");
    let (_store, latchkey) = offline_at(dir.path(), &issuer);
    rt.block_on(async {
        let expired = session_at(Utc::now() - chrono::Duration::hours(2), &issuer);
        latchkey
            .ctx
            .vault
            .save(&latchkey.ctx.session_name, expired.to_bytes())
            .await
            .expect("save");
        for _ in 0..5 {
            let token = latchkey.access_token().await.expect("token");
            assert_eq!(token.secret(), "AT-1");
        }
        assert_eq!(
            count.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one refresh, then the refresh floor holds"
        );
    });
}

/// A token endpoint that answers every request with HTTP 400 and `body`.
async fn failing_token_endpoint(body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let issuer = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            read_request(&mut stream).await;
            answer(&mut stream, "400 Bad Request", body.as_bytes()).await;
        }
    });
    issuer
}

/// LemonLDAP::NG answers `invalid_request` for a refresh token it no longer knows: the
/// session stays (only invalid_grant ends one), and the error's remedy is to sign in again.
#[test]
fn an_oauth_error_other_than_invalid_grant_on_refresh_keeps_the_session_and_advises_sign_in() {
    let rt = runtime();
    let issuer = rt.block_on(failing_token_endpoint(r#"{"error":"invalid_request"}"#));
    let dir = tempfile::tempdir().expect("tmp");
    let (_store, latchkey) = offline_at(dir.path(), &issuer);
    rt.block_on(async {
        let expired = session_at(Utc::now() - chrono::Duration::hours(2), &issuer);
        put(&latchkey, &expired).await;
        let e = latchkey.access_token().await.expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::ProviderError);
        assert_eq!(e.oauth_error(), Some("invalid_request"));
        assert_eq!(e.remedy(), Some(crate::Remedy::SignIn));
        assert!(e.to_string().contains("(still signed in)"), "{e}");
        assert!(
            latchkey.current().await.expect("read").is_some(),
            "the session is kept"
        );
    });
}

type Pause = (
    tokio::sync::oneshot::Sender<()>,
    std::sync::mpsc::Receiver<()>,
);

/// A MemoryStore whose next `set`, once armed, says it was reached and then waits to be
/// released: a refresh stopped in the middle of saving its rotated tokens.
#[derive(Debug)]
struct PausingStore {
    inner: MemoryStore,
    pause: std::sync::Mutex<Option<Pause>>,
}

impl SecretStore for PausingStore {
    fn get(&self, name: &str) -> std::result::Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(name)
    }
    fn set(&self, name: &str, secret: &[u8]) -> std::result::Result<(), StoreError> {
        let pause = self.pause.lock().expect("pause").take();
        if let Some((reached, release)) = pause {
            let _ = reached.send(());
            let _ = release.recv_timeout(Duration::from_secs(20));
        }
        self.inner.set(name, secret)
    }
    fn delete(&self, name: &str) -> std::result::Result<bool, StoreError> {
        self.inner.delete(name)
    }
    fn max_secret_len(&self) -> usize {
        self.inner.max_secret_len()
    }
}

const ROTATED: &str =
    r#"{"access_token":"AT-new","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-new"}"#;

#[test]
fn a_logout_during_a_refresh_is_not_undone_by_its_save() {
    let rt = runtime();
    let stub = rt.block_on(Stub::start());
    stub.route("/token", ROTATED);
    let dir = tempfile::tempdir().expect("tmp");
    let store = Arc::new(PausingStore {
        inner: MemoryStore::new(200),
        pause: std::sync::Mutex::new(None),
    });
    let latchkey = offline_with(dir.path(), &stub.base, store.clone());
    rt.block_on(async {
        let expired = session_at(Utc::now() - chrono::Duration::hours(2), &stub.base);
        latchkey
            .ctx
            .vault
            .save(&latchkey.ctx.session_name, expired.to_bytes())
            .await
            .expect("save");
        let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel();
        *store.pause.lock().expect("pause") = Some((reached_tx, release_rx));

        // The refresh has sent the old refresh token and is saving the rotated one when the
        // logout starts; the save goes on a moment later.
        let refresh = latchkey.access_token();
        let logout = async {
            reached_rx.await.expect("the refresh reached its save");
            let release = async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                release_tx.send(()).expect("release");
            };
            tokio::join!(latchkey.logout(), release).0
        };
        let (token, out) = tokio::join!(refresh, logout);
        assert_eq!(token.expect("refreshed").secret(), "AT-new");
        assert!(out.expect("logout").was_signed_in);
        assert_eq!(stub.hits("/token"), 1);
        assert!(
            store.inner.names().is_empty(),
            "the session came back: {:?}",
            store.inner.names()
        );
        assert!(latchkey.current().await.expect("readable").is_none());
    });
}

/// The app awaits these on a multi-threaded runtime: holding the refresh lock across the
/// keychain and network calls must keep them `Send`.
#[test]
fn session_changing_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let dir = tempfile::tempdir().expect("tmp");
    let (_store, latchkey) = offline(dir.path());
    send(&latchkey.logout());
    send(&latchkey.resume("http://127.0.0.1/callback"));
    send(&latchkey.refresh());
}

async fn put(latchkey: &Latchkey, s: &Session) {
    latchkey
        .ctx
        .vault
        .save(&latchkey.ctx.session_name, s.to_bytes())
        .await
        .expect("save");
}

const DISCOVERY: &str = "/.well-known/openid-configuration";

/// An expired session bound to `{base}/token-a`, while the cached metadata says
/// `{base}/token-b` (a same-user process rewrote the discovery cache).
fn bound_to_a(base: &str) -> Session {
    let mut s = session_at(Utc::now() - chrono::Duration::hours(2), base);
    s.endpoints = Some(crate::discovery::Endpoints {
        token: format!("{base}/token-a"),
        ..Default::default()
    });
    s
}

#[test]
fn a_rewritten_cached_token_endpoint_gets_no_refresh_token() {
    let rt = runtime();
    let stub = rt.block_on(Stub::start());
    let base = stub.base.clone();
    for path in ["/token-a", "/token-b"] {
        stub.route(path, ROTATED);
    }
    stub.route("/jwks", r#"{"keys":[]}"#);
    let dir = tempfile::tempdir().expect("tmp");
    let (_store, latchkey) = offline_at(dir.path(), &base);

    // The issuer itself still says A: its fresh metadata is used, and B gets nothing.
    seed(&latchkey, metadata(&base, "token-b", None));
    stub.route(DISCOVERY, metadata(&base, "token-a", None).to_string());
    rt.block_on(async {
        put(&latchkey, &bound_to_a(&base)).await;
        let token = latchkey.access_token().await.expect("refreshed at A");
        assert_eq!(token.secret(), "AT-new");
        assert_eq!((stub.hits("/token-a"), stub.hits("/token-b")), (1, 0));
        assert_eq!(stub.hits(DISCOVERY), 1);
        let saved = repo::load(&latchkey.ctx)
            .await
            .expect("load")
            .expect("session");
        assert_eq!(
            saved.endpoints.map(|e| e.token),
            Some(format!("{base}/token-a"))
        );
    });

    // The issuer says B too: the endpoint changed since sign-in, and nothing is sent.
    seed(&latchkey, metadata(&base, "token-b", None));
    stub.route(DISCOVERY, metadata(&base, "token-b", None).to_string());
    rt.block_on(async {
        put(&latchkey, &bound_to_a(&base)).await;
        let e = latchkey.access_token().await.expect_err("endpoint changed");
        assert_eq!(e.kind(), ErrorKind::ProviderInvalid);
        assert!(
            e.message().contains("token endpoint") && e.message().contains("no token was sent"),
            "{e}"
        );
        assert_eq!((stub.hits("/token-a"), stub.hits("/token-b")), (1, 0));
        assert!(
            latchkey.current().await.expect("read").is_some(),
            "still signed in"
        );
    });
}

#[test]
fn a_session_without_recorded_endpoints_refreshes_with_fresh_metadata() {
    let rt = runtime();
    let stub = rt.block_on(Stub::start());
    let base = stub.base.clone();
    for path in ["/token-a", "/token-b"] {
        stub.route(path, ROTATED);
    }
    stub.route("/jwks", r#"{"keys":[]}"#);
    stub.route(DISCOVERY, metadata(&base, "token-a", None).to_string());
    let dir = tempfile::tempdir().expect("tmp");
    let (_store, latchkey) = offline_at(dir.path(), &base);
    seed(&latchkey, metadata(&base, "token-b", None));
    rt.block_on(async {
        let mut old = bound_to_a(&base);
        old.endpoints = None; // stored by an earlier version
        latchkey
            .ctx
            .vault
            .save(&latchkey.ctx.session_name, old.to_bytes())
            .await
            .expect("save");
        latchkey.access_token().await.expect("refreshed");
        assert_eq!((stub.hits("/token-a"), stub.hits("/token-b")), (1, 0));
        let saved = repo::load(&latchkey.ctx)
            .await
            .expect("load")
            .expect("session");
        assert_eq!(
            saved.endpoints.map(|e| e.token),
            Some(format!("{base}/token-a")),
            "bound from now on"
        );
    });
}

#[test]
fn a_rewritten_cached_revocation_endpoint_gets_no_token() {
    let rt = runtime();
    let stub = rt.block_on(Stub::start());
    let base = stub.base.clone();
    for path in ["/revoke-a", "/revoke-b"] {
        stub.route(path, "{}");
    }
    stub.route("/jwks", r#"{"keys":[]}"#);
    let dir = tempfile::tempdir().expect("tmp");
    let (store, latchkey) = offline_at(dir.path(), &base);
    let mut s = session_at(Utc::now(), &base);
    s.endpoints = Some(crate::discovery::Endpoints {
        token: format!("{base}/token"),
        revocation: Some(format!("{base}/revoke-a")),
        end_session: None,
        userinfo: None,
    });

    // The issuer confirms B: no revocation, the session is still removed.
    seed(&latchkey, metadata(&base, "token", Some("revoke-b")));
    stub.route(
        DISCOVERY,
        metadata(&base, "token", Some("revoke-b")).to_string(),
    );
    rt.block_on(async {
        put(&latchkey, &s).await;
        let out = latchkey.logout().await.expect("logout");
        assert!(out.was_signed_in && !out.revoked, "{out:?}");
        let problem = out.revocation_problem.unwrap_or_default();
        assert!(problem.contains("revocation endpoint"), "{problem}");
        assert_eq!((stub.hits("/revoke-a"), stub.hits("/revoke-b")), (0, 0));
        assert!(store.names().is_empty());
    });

    // The issuer still says A: revoked there.
    seed(&latchkey, metadata(&base, "token", Some("revoke-b")));
    stub.route(
        DISCOVERY,
        metadata(&base, "token", Some("revoke-a")).to_string(),
    );
    rt.block_on(async {
        put(&latchkey, &s).await;
        let out = latchkey.logout().await.expect("logout");
        assert!(out.revoked, "{out:?}");
        assert_eq!((stub.hits("/revoke-a"), stub.hits("/revoke-b")), (1, 0));
        assert!(store.names().is_empty());
    });
}

/// [`offline_at`] with a userinfo endpoint at `{base}/me`, and a session bound to it.
fn with_userinfo_endpoint(latchkey: &Latchkey, base: &str, s: &mut Session) {
    let mut m = metadata(base, "token", None);
    m["userinfo_endpoint"] = serde_json::json!(format!("{base}/me"));
    seed(latchkey, m);
    if let Some(e) = s.endpoints.as_mut() {
        e.userinfo = Some(format!("{base}/me"));
    }
}

fn groups(id: &Identity) -> Vec<(String, crate::GrantSource)> {
    id.grants
        .of_kind(crate::GrantKind::Group)
        .map(|g| (g.value.clone(), g.source))
        .collect()
}

#[test]
fn status_renews_the_profile_and_keeps_it_when_userinfo_fails() {
    let rt = runtime();
    let stub = rt.block_on(Stub::start());
    let base = stub.base.clone();
    let dir = tempfile::tempdir().expect("tmp");
    let (_store, latchkey) = offline_at(dir.path(), &base);
    let mut s = session_at(Utc::now(), &base);
    s.claims.name = Some("Alice Example".into());
    with_userinfo_endpoint(&latchkey, &base, &mut s);
    rt.block_on(async {
        put(&latchkey, &s).await;
        stub.route(
            "/me",
            r#"{"sub":"alice","name":"Alice Renamed","groups":["staff"]}"#,
        );
        let id = latchkey.status().await.expect("status");
        assert_eq!(id.name.as_deref(), Some("Alice Renamed"));
        assert_eq!(
            groups(&id),
            [("staff".into(), crate::GrantSource::Userinfo)]
        );
        let stored = latchkey.current().await.expect("read").expect("session");
        assert_eq!(stored.name.as_deref(), Some("Alice Renamed"), "saved");

        // OIDC Core §5.3.2: an answer for another subject is not used.
        stub.route("/me", r#"{"sub":"mallory","name":"Mallory","groups":[]}"#);
        let id = latchkey.status().await.expect("still signed in");
        assert_eq!(id.name.as_deref(), Some("Alice Renamed"));
        assert_eq!(groups(&id).len(), 1);

        // A provider that fails (here: not JSON) changes nothing.
        stub.route("/me", "<html>busy</html>");
        let id = latchkey.status().await.expect("still signed in");
        assert_eq!(id.name.as_deref(), Some("Alice Renamed"));
        assert_eq!(stub.hits("/me"), 3);
        assert_eq!(stub.hits("/token"), 0, "no refresh was needed");
    });
}

#[test]
fn a_refresh_renews_the_profile_and_survives_a_userinfo_failure() {
    let rt = runtime();
    let stub = rt.block_on(Stub::start());
    let base = stub.base.clone();
    stub.route("/token", ROTATED);
    stub.route("/jwks", r#"{"keys":[]}"#);
    let dir = tempfile::tempdir().expect("tmp");
    let (_store, latchkey) = offline_at(dir.path(), &base);
    let mut s = session_at(Utc::now() - chrono::Duration::hours(2), &base);
    s.claims.name = Some("Alice Example".into());
    with_userinfo_endpoint(&latchkey, &base, &mut s);
    rt.block_on(async {
        // No /me route: the provider answers 404. The refresh still succeeds.
        put(&latchkey, &s).await;
        let token = latchkey.access_token().await.expect("refreshed");
        assert_eq!(token.secret(), "AT-new");
        let id = latchkey.current().await.expect("read").expect("session");
        assert_eq!(id.name.as_deref(), Some("Alice Example"));
        assert_eq!(stub.hits("/me"), 1);

        stub.route("/me", r#"{"sub":"alice","name":"Alice Renamed"}"#);
        put(&latchkey, &s).await;
        latchkey.access_token().await.expect("refreshed");
        let id = latchkey.current().await.expect("read").expect("session");
        assert_eq!(id.name.as_deref(), Some("Alice Renamed"));
        assert_eq!((stub.hits("/token"), stub.hits("/me")), (2, 2));
    });
}

#[test]
fn the_picture_is_kept_with_the_session() {
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    let rt = runtime();
    let stub = rt.block_on(Stub::start());
    stub.route("/a.png", PNG);
    stub.route("/b.png", PNG);
    let dir = tempfile::tempdir().expect("tmp");
    let (_store, latchkey) = offline(dir.path());
    let mut s = session(Utc::now());
    s.claims.picture = Some(format!("{}/a.png", stub.base));
    rt.block_on(async {
        put(&latchkey, &s).await;
        assert!(latchkey.cached_picture().await.expect("read").is_none());
        let id = latchkey.current().await.expect("read").expect("session");
        for _ in 0..3 {
            let p = latchkey.picture(&id).await.expect("picture").expect("some");
            assert_eq!(p.bytes(), PNG);
        }
        assert_eq!(
            stub.hits("/a.png"),
            1,
            "fetched once, then from the keychain"
        );
        let cached = latchkey.cached_picture().await.expect("read");
        assert_eq!(cached.map(|p| p.media_type()), Some("image/png"));

        // A new picture URL: the old one is not shown for it, and the new one is fetched.
        let mut stored = repo::load(&latchkey.ctx)
            .await
            .expect("load")
            .expect("session");
        assert!(stored.picture.is_some());
        stored.claims.picture = Some(format!("{}/b.png", stub.base));
        put(&latchkey, &stored).await;
        assert!(latchkey.cached_picture().await.expect("read").is_none());
        let id = latchkey.current().await.expect("read").expect("session");
        latchkey.picture(&id).await.expect("picture");
        assert_eq!(stub.hits("/b.png"), 1);
        let debug = format!("{:?}", repo::load(&latchkey.ctx).await.expect("load"));
        assert!(
            debug.contains("base64_len") && !debug.contains("iVBOR"),
            "{debug}"
        );
    });
}
