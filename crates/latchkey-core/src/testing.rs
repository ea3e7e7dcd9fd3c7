//! Fixtures for the unit tests of the use cases: an account over in-memory ports with its
//! provider's metadata seeded (nothing touches the network), sessions to store, and small local
//! HTTP servers that stand in for a provider's endpoints.

// What most tests use, for their `use crate::testing::*`.
pub(crate) use std::sync::Arc;
pub(crate) use std::time::Duration;

pub(crate) use chrono::{DateTime, Utc};
pub(crate) use url::Url;

use crate::AppIdentity;
use crate::browser::BrowserLauncher;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::discovery::Provider;
use crate::session::{Claims, Session};
pub(crate) use crate::store::{MemoryStore, SecretStore, StoreError};
use crate::token_cache::TokenCache;
use crate::{Identity, Latchkey, Ports};

pub(crate) const ISSUER: &str = "https://id.example";

#[derive(Debug)]
pub(crate) struct NoBrowser;

impl BrowserLauncher for NoBrowser {
    fn open(&self, _: &Url) -> std::result::Result<(), String> {
        Err("no browser in tests".into())
    }
}

/// A Latchkey over a MemoryStore whose small entries force chunking, with the provider's
/// metadata seeded so nothing touches the network.
/// The configuration every fixture account starts from.
pub(crate) fn config(issuer: &str) -> Config {
    Config {
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
        kube_servers: Vec::new(),
        flow: crate::config::FlowChoice::Code,
        par: crate::config::UseChoice::Auto,
        dpop: crate::config::UseChoice::Auto,
        app_redirect: Default::default(),
    }
}

pub(crate) fn offline(cache: &std::path::Path) -> (Arc<MemoryStore>, Latchkey) {
    offline_at(cache, ISSUER)
}

pub(crate) fn offline_at(cache: &std::path::Path, issuer: &str) -> (Arc<MemoryStore>, Latchkey) {
    let store = Arc::new(MemoryStore::new(200));
    let latchkey = offline_with(cache, issuer, store.clone());
    (store, latchkey)
}

pub(crate) fn offline_with(
    cache: &std::path::Path,
    issuer: &str,
    store: Arc<dyn SecretStore>,
) -> Latchkey {
    offline_with_cache(cache, issuer, store, None)
}

/// [`offline_with`] and a token cache.
pub(crate) fn offline_with_cache(
    cache: &std::path::Path,
    issuer: &str,
    store: Arc<dyn SecretStore>,
    token_cache: Option<Arc<dyn TokenCache>>,
) -> Latchkey {
    let config = config(issuer);
    let ports = Ports {
        store,
        browser: Arc::new(NoBrowser),
        clock: Arc::new(SystemClock),
        http: Arc::new(crate::http::SystemHttp::new(AppIdentity::TEST.user_agent)),
        cache_dir: Some(cache.to_path_buf()),
        keychain_timeout: Duration::from_secs(5),
        token_cache,
        identity: AppIdentity::TEST,
    };
    let latchkey = Latchkey::new(config, ports);
    seed(&latchkey, metadata(issuer, "token", None));
    latchkey
}

/// Provider metadata with the token endpoint at `{issuer}/{token}`, and the revocation
/// endpoint at `{issuer}/{revocation}` when given.
pub(crate) fn metadata(issuer: &str, token: &str, revocation: Option<&str>) -> serde_json::Value {
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
pub(crate) fn seed(latchkey: &Latchkey, metadata: serde_json::Value) {
    latchkey.ctx.discovery.seed_for_tests(Provider::for_tests(
        metadata,
        openidconnect::JsonWebKeySet::new(Vec::new()),
    ));
}

pub(crate) fn session(now: DateTime<Utc>) -> Session {
    session_at(now, ISSUER)
}

/// A session signed in at `issuer`, bound to the endpoints [`offline_at`] seeds.
pub(crate) fn session_at(now: DateTime<Utc>, issuer: &str) -> Session {
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
        flow: crate::config::FlowChoice::Code,
        token_type: Some("Bearer".into()),
        dpop_jkt: None,
        dpop_key: None,
        par: false,
        picture: None,
        refresh_gives_no_id_token: false,
    }
}

/// Saves a chunked session, then removes one of its chunks.
pub(crate) async fn damage(store: &MemoryStore, latchkey: &Latchkey) {
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

/// A clock the test moves forward.
#[derive(Debug)]
pub(crate) struct ManualClock(std::sync::Mutex<DateTime<Utc>>);

impl ManualClock {
    pub(crate) fn new(at: DateTime<Utc>) -> Self {
        Self(std::sync::Mutex::new(at))
    }

    pub(crate) fn advance(&self, secs: i64) {
        *self.0.lock().expect("clock") += chrono::Duration::seconds(secs);
    }
}

impl crate::clock::Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock")
    }
}

pub(crate) fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).expect("ts")
}

/// Reads one request's head and form body; returns the head.
pub(crate) async fn read_request(stream: &mut tokio::net::TcpStream) -> String {
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

pub(crate) async fn answer(stream: &mut tokio::net::TcpStream, status: &str, body: &[u8]) {
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
pub(crate) async fn expired_token_endpoint() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
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
pub(crate) struct Stub {
    pub(crate) base: String,
    pub(crate) routes: Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>>,
    pub(crate) hits: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Stub {
    pub(crate) async fn start() -> Self {
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

    pub(crate) fn route(&self, path: &str, body: impl Into<Vec<u8>>) {
        self.routes
            .lock()
            .expect("routes")
            .insert(path.into(), body.into());
    }

    pub(crate) fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .expect("hits")
            .iter()
            .filter(|p| *p == path)
            .count()
    }
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A token endpoint that answers every request with HTTP 400 and `body`.
pub(crate) async fn failing_token_endpoint(body: &'static str) -> String {
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

/// What the armed [`PausingStore`] signals (reached) and waits for (release).
pub(crate) type Pause = (
    tokio::sync::oneshot::Sender<()>,
    std::sync::mpsc::Receiver<()>,
);

/// A MemoryStore whose next `set`, once armed, says it was reached and then waits to be
/// released: a refresh stopped in the middle of saving its rotated tokens. An armed `deleted`
/// says when an entry is first deleted.
#[derive(Debug)]
pub(crate) struct PausingStore {
    pub(crate) inner: MemoryStore,
    pub(crate) pause: std::sync::Mutex<Option<Pause>>,
    /// The same for the next `get`, paused after it has read: a read that has happened but
    /// has not been delivered yet.
    pub(crate) pause_get: std::sync::Mutex<Option<Pause>>,
    pub(crate) deleted: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl SecretStore for PausingStore {
    fn get(&self, name: &str) -> std::result::Result<Option<Vec<u8>>, StoreError> {
        let value = self.inner.get(name);
        let pause = self.pause_get.lock().expect("pause").take();
        if let Some((reached, release)) = pause {
            let _ = reached.send(());
            let _ = release.recv_timeout(Duration::from_secs(20));
        }
        value
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
        if let Some(tx) = self.deleted.lock().expect("deleted").take() {
            let _ = tx.send(());
        }
        self.inner.delete(name)
    }
    fn max_secret_len(&self) -> usize {
        self.inner.max_secret_len()
    }
}

pub(crate) const ROTATED: &str =
    r#"{"access_token":"AT-new","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-new"}"#;

pub(crate) async fn put(latchkey: &Latchkey, s: &Session) {
    latchkey
        .ctx
        .vault
        .save(&latchkey.ctx.session_name, s.to_bytes())
        .await
        .expect("save");
}

pub(crate) const DISCOVERY: &str = "/.well-known/openid-configuration";

/// An expired session bound to `{base}/token-a`, while the cached metadata says
/// `{base}/token-b` (a same-user process rewrote the discovery cache).
pub(crate) fn bound_to_a(base: &str) -> Session {
    let mut s = session_at(Utc::now() - chrono::Duration::hours(2), base);
    s.endpoints = Some(crate::discovery::Endpoints {
        token: format!("{base}/token-a"),
        ..Default::default()
    });
    s
}

/// [`offline_at`] with a userinfo endpoint at `{base}/me`, and a session bound to it.
pub(crate) fn with_userinfo_endpoint(latchkey: &Latchkey, base: &str, s: &mut Session) {
    let mut m = metadata(base, "token", None);
    m["userinfo_endpoint"] = serde_json::json!(format!("{base}/me"));
    seed(latchkey, m);
    if let Some(e) = s.endpoints.as_mut() {
        e.userinfo = Some(format!("{base}/me"));
    }
}

pub(crate) fn groups(id: &Identity) -> Vec<(String, crate::GrantSource)> {
    id.grants
        .of_kind(crate::GrantKind::Group)
        .map(|g| (g.value.clone(), g.source))
        .collect()
}

/// A token cache in memory.
#[derive(Debug, Default)]
pub(crate) struct MemoryCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>,
}

impl MemoryCache {
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.lock().expect("cache").is_empty()
    }
}

impl TokenCache for MemoryCache {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.entries.lock().expect("cache").get(key).cloned()
    }
    fn put(&self, key: &str, value: &[u8], _: u64) -> Result<(), String> {
        self.entries
            .lock()
            .expect("cache")
            .insert(key.into(), value.to_vec());
        Ok(())
    }
    fn remove(&self, key: &str) -> Result<(), String> {
        self.entries.lock().expect("cache").remove(key);
        Ok(())
    }
}

/// A token cache that holds nothing and says when an entry is first removed. `logout` removes
/// the cached token right before it waits for the session lock, so the signal tells a test the
/// logout is under way and about to wait.
#[derive(Debug, Default)]
pub(crate) struct RemovalSignal {
    pub(crate) removed: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl TokenCache for RemovalSignal {
    fn get(&self, _: &str) -> Option<Vec<u8>> {
        None
    }
    fn put(&self, _: &str, _: &[u8], _: u64) -> Result<(), String> {
        Ok(())
    }
    fn remove(&self, _: &str) -> Result<(), String> {
        if let Some(tx) = self.removed.lock().expect("signal").take() {
            let _ = tx.send(());
        }
        Ok(())
    }
}

/// A provider behind the HTTP port: each URL answers as routed (status, headers, body),
/// anything else 404; every requested URL is recorded.
#[derive(Debug, Default)]
pub(crate) struct FakeHttp {
    routes: std::sync::Mutex<std::collections::HashMap<String, FakeAnswer>>,
    seen: std::sync::Mutex<Vec<String>>,
    bodies: std::sync::Mutex<Vec<Vec<u8>>>,
}

type FakeAnswer = (u16, Vec<(String, String)>, Vec<u8>);

impl FakeHttp {
    pub(crate) fn route(&self, url: &str, status: u16, headers: &[(&str, &str)], body: &str) {
        let headers = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.routes
            .lock()
            .expect("routes")
            .insert(url.to_owned(), (status, headers, body.as_bytes().to_vec()));
    }

    pub(crate) fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("seen").clone()
    }

    /// The requests' bodies, in order.
    pub(crate) fn bodies(&self) -> Vec<Vec<u8>> {
        self.bodies.lock().expect("bodies").clone()
    }

    /// An HTTP client over this fake (the policy applies).
    pub(crate) fn client(self: &Arc<Self>) -> crate::http::HttpClient {
        crate::http::HttpClient::new(Arc::clone(self) as Arc<dyn crate::http::HttpTransport>)
    }
}

impl crate::http::HttpTransport for FakeHttp {
    fn send(
        &self,
        request: openidconnect::HttpRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = crate::http::HttpResult> + Send + '_>>
    {
        let url = request.uri().to_string();
        self.seen.lock().expect("seen").push(url.clone());
        self.bodies
            .lock()
            .expect("bodies")
            .push(request.body().clone());
        let (status, headers, body) = self
            .routes
            .lock()
            .expect("routes")
            .get(&url)
            .cloned()
            .unwrap_or((404, Vec::new(), b"{}".to_vec()));
        Box::pin(async move {
            let mut response = openidconnect::HttpResponse::new(body);
            *response.status_mut() =
                openidconnect::http::StatusCode::from_u16(status).expect("status");
            for (k, v) in headers {
                response.headers_mut().append(
                    openidconnect::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                    openidconnect::http::HeaderValue::from_str(&v).expect("value"),
                );
            }
            Ok(response)
        })
    }
}
