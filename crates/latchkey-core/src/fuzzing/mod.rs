//! Entry points for the fuzzers in `tests/fuzz` (feature `fuzzing`, never in a release build).
//!
//! Each function takes the fuzzer's bytes and feeds them to the real parser, the way the
//! production code receives them; none reimplements one. They return nothing: any input must
//! be answered with a value or an error, and a panic (or a sanitizer report) is a bug. A few
//! `assert!`s state invariants the callers rely on (a session the core builds reads back, a
//! deleted vault entry is gone).
//!
//! Inputs with several parts split them at NUL bytes, which none of the formats needs.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use openidconnect::core::{CoreEdDsaPrivateSigningKey, CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use openidconnect::{JsonWebKeyId, PrivateSigningKey};
use tokio::io::{AsyncRead, ReadBuf};
use url::Url;

mod sign_in;
mod world;
use crate::discovery::{self, Provider};
use crate::{AppIdentity, config, deep_link, flow, loopback, store};
use sign_in::{FakeProvider, Reply};
use world::{Answer, World};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime");
    }
    RUNTIME.with(|rt| rt.block_on(f))
}

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// The part before the first NUL, and the rest (`None` without a NUL).
fn split(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    }
}

// ----- the fixture ---------------------------------------------------------------------------

/// The fixed key the structured ID token mutations are signed with (the unit tests' key).
fn fuzz_key() -> &'static CoreEdDsaPrivateSigningKey {
    static KEY: OnceLock<CoreEdDsaPrivateSigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        CoreEdDsaPrivateSigningKey::from_ed25519_pem(
            include_str!("../../testdata/ed25519.pem"),
            Some(JsonWebKeyId::new("fuzz-ed".into())),
        )
        .expect("the test key")
    })
}

/// The world the fuzzers run in, from `tests/fuzz/seeds/fixture.json` (written by
/// `tests/fuzz/seed-from-provider` from the dev provider): its issuer, discovery document and
/// JWKS, the client, the clock and the sign-in's nonce, code and access token, so its real ID
/// tokens verify. The fuzz key joins the JWKS (and EdDSA the algorithms) for the structured
/// ID token mutations.
#[derive(Debug)]
pub struct Fixture {
    world: World,
    /// The provider behind the HTTP port, serving the fixture's discovery document and JWKS.
    provider: Arc<FakeProvider>,
    issuer: String,
    client_id: String,
    now: DateTime<Utc>,
}

#[derive(serde::Deserialize)]
struct FixtureFile {
    client_id: String,
    now: i64,
    nonce: String,
    code: String,
    access_token: String,
    /// The app's redirect scheme at that provider.
    scheme: String,
    metadata: serde_json::Value,
    jwks: serde_json::Value,
}

impl Fixture {
    /// Built once per process from the fixture's JSON, outside any runtime.
    pub fn get(json: &str) -> &'static Fixture {
        static FIXTURE: OnceLock<Fixture> = OnceLock::new();
        FIXTURE.get_or_init(|| {
            let f: FixtureFile = serde_json::from_str(json).expect("fixture.json");
            let mut metadata = f.metadata;
            if let Some(algs) = metadata
                .get_mut("id_token_signing_alg_values_supported")
                .and_then(|a| a.as_array_mut())
                && !algs.iter().any(|a| a == "EdDSA")
            {
                algs.push("EdDSA".into());
            }
            let jwks = discovery::parse_jwks(&f.jwks).expect("the fixture's JWKS");
            let mut keys = jwks.keys().clone();
            keys.push(fuzz_key().as_verification_key());
            let jwks = CoreJsonWebKeySet::new(keys);
            let served = serde_json::to_value(&jwks).expect("a JWKS serializes");
            // The provider behind the port offers DPoP too, so a sign-in can ask for it.
            let mut offered = metadata.clone();
            offered["dpop_signing_alg_values_supported"] = serde_json::json!(["ES256"]);
            let http = Arc::new(FakeProvider::new(&offered, &served));
            let issuer = metadata["issuer"].as_str().unwrap_or_default().to_owned();
            let provider = Provider::for_tests(metadata, jwks);
            let now = DateTime::<Utc>::from_timestamp(f.now, 0).expect("fixture time");
            Fixture {
                world: World::new(
                    provider,
                    http.clone(),
                    &f.client_id,
                    now,
                    &f.nonce,
                    &f.code,
                    &f.access_token,
                    &f.scheme,
                ),
                provider: http,
                issuer,
                client_id: f.client_id,
                now,
            }
        })
    }
}

/// A JWT signed with the fuzz key (EdDSA), whose payload is `claims` as they are.
fn signed_jwt(claims: &[u8]) -> Option<String> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let input = format!(
        "{}.{}",
        b64.encode(br#"{"alg":"EdDSA","kid":"fuzz-ed","typ":"JWT"}"#),
        b64.encode(claims)
    );
    let signature = fuzz_key()
        .sign(&CoreJwsSigningAlgorithm::EdDsa, input.as_bytes())
        .ok()?;
    Some(format!("{input}.{}", b64.encode(signature)))
}

// ----- targets -------------------------------------------------------------------------------

/// A redirect URL (query or fragment), or with a NUL a form post: the URL, then the body. Also
/// through `Latchkey::resume` and the logout return.
pub fn callback(fx: &Fixture, data: &[u8]) {
    let (url, body) = split(data);
    let url = text(url);
    match body {
        Some(body) => {
            let _ = flow::parse_form_post(&url, &text(body));
        }
        None => {
            if let Ok((parsed, _, _)) = flow::parse_callback(&url) {
                let redirect = Url::parse("http://127.0.0.1/callback").expect("fixed URL");
                let _ = flow::same_endpoint(&parsed, &redirect);
            }
            block_on(fx.world.redirect(&url));
        }
    }
}

/// Hands out its bytes at most `step` at a time, as a socket may.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.step.min(self.data.len()).min(buf.remaining());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(()))
    }
}

/// What a browser sends the loopback listener: byte 0 chooses how many bytes each read returns
/// (1-256), the rest is the connection's bytes. A request it accepts goes on to the redirect
/// parsing, as `login_loopback` does.
pub fn loopback(data: &[u8]) {
    let Some((&step, bytes)) = data.split_first() else {
        return;
    };
    let redirect = Url::parse("http://127.0.0.1:5000/callback").expect("fixed URL");
    let mut stream = Trickle {
        data: bytes,
        step: usize::from(step) + 1,
    };
    let Ok(loopback::Read::Callback { target, form }) =
        block_on(loopback::read_request(&mut stream, &redirect))
    else {
        return;
    };
    assert!(target.starts_with('/'), "accepted target {target:?}");
    let url = loopback::callback_url(redirect, &target);
    match form {
        Some(body) => {
            assert!(body.len() <= loopback::MAX_FORM_BODY);
            let _ = flow::parse_form_post(&url, &body);
        }
        None => {
            let _ = flow::parse_callback(&url);
        }
    }
}

/// Byte 0: bits 0-1 the HTTP status (200, 400, 401, 500), bit 2 no `Content-Type`, bit 3 a
/// refresh (else a code redemption), bit 4 a DPoP proof was sent. The rest is the body.
fn answer(data: &[u8]) -> Option<(Answer, u8)> {
    let (&flags, body) = data.split_first()?;
    let status = [200, 400, 401, 500][usize::from(flags & 3)];
    let content_type = (flags & 4 == 0).then(|| "application/json; charset=utf-8".to_owned());
    Some((
        Answer {
            status,
            content_type,
            body: body.to_vec(),
        },
        flags,
    ))
}

/// A token endpoint answer, to a code redemption or a refresh (see [`answer`] for byte 0).
pub fn token_response(fx: &Fixture, data: &[u8]) {
    let Some((answer, flags)) = answer(data) else {
        return;
    };
    block_on(
        fx.world
            .token_response(&answer, flags & 8 != 0, flags & 16 != 0),
    );
}

/// A userinfo answer: byte 0 as for [`token_response`], except that bit 3 makes the
/// `Content-Type` `application/jwt` (a signed userinfo response).
pub fn userinfo(fx: &Fixture, data: &[u8]) {
    let Some((mut answer, flags)) = answer(data) else {
        return;
    };
    if flags & 8 != 0 {
        answer.content_type = Some("application/jwt".into());
    }
    block_on(fx.world.userinfo(&answer));
}

/// A discovery document, then after a NUL a JWKS, as fetched from the issuer. The document is
/// validated for the issuer it names itself (so the checks after the issuer match are reached),
/// and then used the way sign-ins use it.
pub fn discovery(fx: &Fixture, data: &[u8]) {
    let (metadata, jwks) = split(data);
    if let Ok(raw) = serde_json::from_slice::<serde_json::Value>(metadata) {
        let issuer = raw
            .get("issuer")
            .and_then(|i| i.as_str())
            .unwrap_or("http://127.0.0.1:3000")
            .to_owned();
        if discovery::validate_metadata(&issuer, &raw).is_ok() {
            let provider = Provider::for_tests(raw, CoreJsonWebKeySet::new(Vec::new()));
            fx.world.provider_checks(&provider);
        }
    }
    if let Some(jwks) = jwks
        && let Ok(raw) = serde_json::from_slice::<serde_json::Value>(jwks)
    {
        let _ = discovery::parse_jwks(&raw);
    }
}

/// A whole sign-in (code flow, PKCE) through the public API with the provider behind the HTTP
/// port, then `token`, `headers` and the git credential answer from the session it built.
/// Byte 0: bits 0-1 the token endpoint's status (200, 400, 401, 500), bit 2 DPoP on, bit 3
/// userinfo answers 401. The rest, split at the first NUL: the token endpoint's body, in which
/// `$ID` stands for an ID token signed for this sign-in (issuer, client, nonce, sub `alice`),
/// and the userinfo body (`{"sub":"alice"}` when there is no NUL).
pub fn sign_in(fx: &Fixture, data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (token, userinfo) = split(rest);
    let token = Reply {
        status: [200, 400, 401, 500][usize::from(flags & 3)],
        body: token.to_vec(),
    };
    let userinfo = Reply {
        status: if flags & 8 == 0 { 200 } else { 401 },
        body: userinfo.unwrap_or(br#"{"sub":"alice"}"#).to_vec(),
    };
    let latchkey = sign_in::account(
        &fx.provider,
        &fx.issuer,
        &fx.client_id,
        fx.now,
        flags & 4 != 0,
    );
    let id_token = |nonce: &str| {
        let claims = serde_json::json!({
            "iss": fx.issuer,
            "sub": "alice",
            "aud": fx.client_id,
            "iat": fx.now.timestamp(),
            "exp": fx.now.timestamp() + 600,
            "nonce": nonce,
        });
        signed_jwt(claims.to_string().as_bytes())
    };
    let threads = live_threads();
    block_on(sign_in::sign_in(
        &latchkey,
        &fx.issuer,
        &fx.provider,
        token,
        userinfo,
        id_token,
    ));
    drop(latchkey);
    settle_threads(threads);
}

/// Threads of this process, from /proc (the fuzzers run on Linux).
fn live_threads() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// Waits (a second at most) until only `before` threads are left. Each keychain call runs on a
/// thread of its own (`store::Vault::run`), which may still be exiting when the input is done;
/// LeakSanitizer would then report that thread's thread-local destructor list as a leak.
fn settle_threads(before: Option<usize>) {
    let Some(before) = before else { return };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while live_threads().is_some_and(|n| n > before) && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
}

/// An ID token. Byte 0: bit 0 structured (the rest is the claims JSON, signed with the fuzz
/// key, so mutations reach the claim checks past the signature), else the rest is the token's
/// text; bit 1 the front channel (else the token endpoint); bit 2 with the code (`c_hash`) in
/// the front channel, with the nonce at the token endpoint (else as after a refresh).
pub fn id_token(fx: &Fixture, data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let token = if flags & 1 != 0 {
        let Some(token) = signed_jwt(rest) else {
            return;
        };
        token
    } else {
        text(rest).into_owned()
    };
    fx.world.id_token(&token, flags & 2 != 0, flags & 4 != 0);
}

/// The configuration's four sources, split at NULs: the user file, the managed file (both
/// TOML; a missing part is a missing file), the environment (`SUFFIX=value` lines, read as
/// `CORE_TEST_<SUFFIX>`) and the flags (`key=value` lines). Merged, locked and validated for
/// the selected profile and every other one the files name.
pub fn config(data: &[u8]) {
    let all = text(data);
    let mut parts = all.split('\0');
    let user = parts.next();
    let managed = parts.next();
    let lines = |part: Option<&str>| -> BTreeMap<String, String> {
        part.unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    let env = lines(parts.next());
    let mut flags = config::Settings::default();
    for (key, value) in lines(parts.next()) {
        let _ = config::set_flag(&mut flags, &key, value);
    }
    let identity = AppIdentity::TEST;
    let prefix = format!("{}_", identity.env_prefix);
    let env = |name: &str| env.get(name.strip_prefix(&prefix)?).cloned();
    let Ok(sources) = config::Sources::from_texts(flags, &identity, &env, user, managed) else {
        return;
    };
    let _ = sources.locked_keys();
    if let Ok(merged) = sources.merged() {
        for key in config::KEYS {
            let _ = (merged.text(key), merged.is_locked(key));
        }
    }
    let _ = sources.resolve();
    for profile in sources.profiles().iter().take(8) {
        let _ = sources.resolve_profile(profile);
    }
}

/// A keychain entry and its chunks, split at NULs: the primary entry (`LK1 <generation>
/// <count>\n` and the first bytes), then the chunks its header names, in order. Read as a
/// session; then saved over (which reads the old header too) and read back, then deleted.
pub fn vault(data: &[u8]) {
    const NAME: &str = "default/desktop-app@http://127.0.0.1:3000";
    let memory = store::MemoryStore::new(1024);
    let mut parts = data.split(|b| *b == 0);
    let primary = parts.next().unwrap_or_default();
    let _ = store::SecretStore::set(&memory, NAME, primary);
    if let Some(header) = store::parse_header(primary) {
        for (i, chunk) in (1..header.count).zip(parts) {
            let name = store::chunk_name(NAME, &header.generation, i);
            let _ = store::SecretStore::set(&memory, &name, chunk);
        }
    }
    let data = match store::read_from(&memory, NAME) {
        Ok(store::Stored::Present(data)) => data,
        Ok(_) => primary.to_vec(),
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    if let Some(session) = crate::session::Session::from_bytes(&data) {
        let _ = session.identity();
        assert!(crate::session::Session::from_bytes(&session.to_bytes()).is_some());
    }
    if store::save_to(&memory, NAME, &data).is_ok() {
        match store::read_from(&memory, NAME) {
            Ok(store::Stored::Present(back)) => assert!(back == data, "saved != read back"),
            other => panic!("a saved entry reads back as {other:?}"),
        }
    }
    let _ = store::delete_from(&memory, NAME);
    assert!(
        matches!(store::read_from(&memory, NAME), Ok(store::Stored::Missing)),
        "a deleted entry is still readable"
    );
}

/// An app's argv, split at NULs (after the program name), for an app whose redirect scheme is
/// `scheme`: what the app hands `resume`, whose first step is the redirect parsing.
pub fn deep_link(scheme: &str, data: &[u8]) {
    let all = text(data);
    let args: Vec<String> = std::iter::once("desktop-app")
        .chain(all.split('\0'))
        .map(str::to_owned)
        .collect();
    let _ = deep_link::check_scheme(&args[1]);
    let delivered = deep_link::plugin_delivers(&args, scheme);
    let stray = deep_link::stray_args(&args, scheme);
    assert!(stray.len() <= deep_link::MAX_URLS);
    assert!(!delivered || stray.is_empty());
    for url in &stray {
        assert!(deep_link::is_ours(url, scheme));
    }
    // The plugin delivers the lone URL itself; both end in `resume`.
    let urls = if delivered { &args[1..2] } else { &stray[..] };
    for url in urls {
        let _ = flow::parse_callback(url);
    }
}
