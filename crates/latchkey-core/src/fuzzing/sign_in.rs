//! A whole sign-in through the public API, with the provider behind the HTTP port
//! ([`crate::Ports::http`]): discovery and the JWKS come from the fixture, the token and userinfo
//! endpoints answer with the fuzzer's bytes. Whatever the session holds then goes where the CLI
//! sends it: the userinfo request during sign-in, `token`, `headers` and the git credential
//! helper's answer. A panic anywhere on that path, inside a dependency too, is a crash: this is
//! the path on which an access token with CR/LF once made `openidconnect` panic.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use openidconnect::http::{HeaderValue, StatusCode, header};
use openidconnect::{HttpRequest, HttpResponse};
use url::Url;

use crate::config::UseChoice;
use crate::http::{HttpError, HttpResult, HttpTransport};
use crate::{Latchkey, TokenOptions};

/// What the fake provider answers at one endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The provider as the HTTP port sees it: fixed discovery and JWKS documents, and the replies
/// the fuzzer chose for the token and userinfo endpoints. Anything else is a connection error.
#[derive(Debug)]
pub(crate) struct FakeProvider {
    discovery_url: String,
    metadata: Vec<u8>,
    jwks_uri: String,
    jwks: Vec<u8>,
    token_endpoint: String,
    userinfo_endpoint: String,
    replies: Mutex<(Reply, Reply)>,
}

impl FakeProvider {
    pub(crate) fn new(metadata: &serde_json::Value, jwks: &serde_json::Value) -> Self {
        let field = |k: &str| metadata[k].as_str().unwrap_or_default().to_owned();
        let empty = Reply {
            status: 500,
            body: Vec::new(),
        };
        Self {
            discovery_url: format!("{}/.well-known/openid-configuration", field("issuer")),
            metadata: metadata.to_string().into_bytes(),
            jwks_uri: field("jwks_uri"),
            jwks: jwks.to_string().into_bytes(),
            token_endpoint: field("token_endpoint"),
            userinfo_endpoint: field("userinfo_endpoint"),
            replies: Mutex::new((empty.clone(), empty)),
        }
    }

    /// The token endpoint's and the userinfo endpoint's next replies.
    fn answer_with(&self, token: Reply, userinfo: Reply) {
        *self.replies.lock().unwrap_or_else(|p| p.into_inner()) = (token, userinfo);
    }

    fn reply(&self, url: &str) -> Option<Reply> {
        let json = |body: &Vec<u8>| {
            Some(Reply {
                status: 200,
                body: body.clone(),
            })
        };
        let replies = self.replies.lock().unwrap_or_else(|p| p.into_inner());
        // Query strings aside: a GET for userinfo carries none, but match on the path anyway.
        let path = url.split('?').next().unwrap_or(url);
        match path {
            p if p == self.discovery_url => json(&self.metadata),
            p if p == self.jwks_uri => json(&self.jwks),
            p if p == self.token_endpoint => Some(replies.0.clone()),
            p if p == self.userinfo_endpoint => Some(replies.1.clone()),
            _ => None,
        }
    }
}

impl HttpTransport for FakeProvider {
    fn send(&self, request: HttpRequest) -> Pin<Box<dyn Future<Output = HttpResult> + Send + '_>> {
        let url = request.uri().to_string();
        let reply = self.reply(&url);
        Box::pin(async move {
            let Some(reply) = reply else {
                return Err(HttpError::Connect {
                    host: crate::http::host_of(&url),
                    reason: "no such endpoint at the fuzzer's provider".into(),
                });
            };
            let mut response = HttpResponse::new(reply.body);
            *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(response)
        })
    }
}

/// An account at the fake provider, its clock at the fixture's time.
pub(crate) fn account(
    provider: &Arc<FakeProvider>,
    issuer: &str,
    client_id: &str,
    now: DateTime<Utc>,
    dpop: bool,
) -> Latchkey {
    let mut config = super::world::config(issuer, client_id);
    config.redirect_uri = Url::parse(REDIRECT).expect("fixed URL");
    config.par = UseChoice::Never;
    config.dpop = if dpop {
        UseChoice::Always
    } else {
        UseChoice::Never
    };
    // The session lock's file and the discovery cache: small files, one folder per process.
    let http = Arc::clone(provider) as Arc<dyn HttpTransport>;
    let ports = super::world::ports(now, http, Some(scratch_dir()));
    Latchkey::new(config, ports)
}

fn scratch_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("core-fuzz-{}", std::process::id()))
}

pub(crate) const REDIRECT: &str = "http://127.0.0.1:5000/callback";

/// RFC 6750 §2.1's `b64token`: what an `Authorization` header and a git credential line can
/// carry without ending the line or the header early.
fn b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// Signs in with the token endpoint answering `token` (its `$ID` replaced by `id_token(nonce)`,
/// an ID token signed for this sign-in) and the userinfo endpoint answering `userinfo`, then
/// reads the session back the ways the CLI does.
pub(crate) async fn sign_in(
    latchkey: &Latchkey,
    issuer: &str,
    provider: &FakeProvider,
    token: Reply,
    userinfo: Reply,
    id_token: impl Fn(&str) -> Option<String>,
) {
    let redirect = Url::parse(REDIRECT).expect("fixed URL");
    let Ok(started) = latchkey.begin(&redirect).await else {
        return;
    };
    let query = |name: &str| {
        started
            .url
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let (Some(state), Some(nonce)) = (query("state"), query("nonce")) else {
        panic!("an authorization request without state or nonce");
    };
    let Some(signed) = id_token(&nonce) else {
        return;
    };
    let body = String::from_utf8_lossy(&token.body).replace("$ID", &signed);
    provider.answer_with(
        Reply {
            status: token.status,
            body: body.into_bytes(),
        },
        userinfo,
    );
    // RFC 9207: the provider names itself in the redirect, as its metadata promises.
    let mut callback = Url::parse(REDIRECT).expect("fixed URL");
    callback
        .query_pairs_mut()
        .append_pair("code", "fuzz-code")
        .append_pair("state", &state)
        .append_pair("iss", issuer);
    let callback = callback.to_string();
    if latchkey.resume(&callback).await.is_err() {
        return;
    }
    // Signed in: what the CLI prints or sends from here must be one well-formed line.
    if let Ok(info) = latchkey.token(TokenOptions::default()).await {
        let token = info.token.secret();
        assert!(b64token(token), "token handed out: {token:?}");
        // `git-credential` writes `password=<token>` and `credential=<token>` lines.
        assert!(!token.contains(['\n', '\r', '\0']));
        assert!(b64token(&info.token_type), "{:?}", info.token_type);
    }
    if let Ok(h) = latchkey
        .resource_headers("GET", "https://api.example/items")
        .await
    {
        assert!(HeaderValue::from_str(&h.authorization).is_ok());
        if let Some(proof) = h.dpop {
            assert!(HeaderValue::from_str(&proof).is_ok());
        }
    }
    let _ = latchkey.status().await;
    let _ = latchkey.id_token().await;
}
