//! The back-channel HTTP client every provider call goes through.
//!
//! - connect timeout 10 s, whole request 30 s;
//! - redirects are never followed (RFC 9700 §4.11: a token endpoint that redirects is a bug or an
//!   attack, and following it could carry credentials elsewhere);
//! - rustls with the OS trust store, so corporate TLS-inspection roots work;
//! - `HTTPS_PROXY` / `NO_PROXY` are honoured (reqwest's system proxy support);
//! - response bodies are capped, so a hostile endpoint cannot exhaust memory;
//! - 5xx answers become a transient error here, so no caller can mistake them for an OAuth error.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use openidconnect::{HttpRequest, HttpResponse};

/// Largest response body accepted from a provider.
pub const MAX_BODY: usize = 1024 * 1024;
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(30);

/// A failed HTTP exchange, without URLs' query strings or bodies (which may carry codes).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    #[error("{host} did not answer within {secs} s")]
    Timeout { host: String, secs: u64 },
    #[error("cannot connect to {host}: {reason}")]
    Connect { host: String, reason: String },
    #[error("{host} answered HTTP {status}, a server error")]
    ServerError { host: String, status: u16 },
    #[error(
        "{host} answered with a redirect to elsewhere, which is not followed on back-channel calls"
    )]
    Redirect { host: String },
    #[error("{host} sent a response larger than {MAX_BODY} bytes")]
    TooLarge { host: String },
    #[error("request to {host} failed: {reason}")]
    Other { host: String, reason: String },
}

/// The HTTP client. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    /// Total time spent waiting on the provider, for the sign-in timing split.
    waited_nanos: Arc<AtomicU64>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

impl HttpClient {
    pub fn new() -> Result<Self, HttpError> {
        let inner = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("latchkey/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpError::Other {
                host: "-".into(),
                reason: format!("cannot set up TLS: {e}"),
            })?;
        Ok(Self {
            inner,
            waited_nanos: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Time spent waiting on the network since this client was made.
    pub fn waited(&self) -> Duration {
        Duration::from_nanos(self.waited_nanos.load(Ordering::Relaxed))
    }

    async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let started = Instant::now();
        let result = self.execute_inner(request).await;
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.waited_nanos.fetch_add(nanos, Ordering::Relaxed);
        result
    }

    async fn execute_inner(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let url = parts.uri.to_string();
        let host = host_of(&url);
        let mut builder = self
            .inner
            .request(parts.method, &url)
            .headers(parts.headers)
            .body(body);
        if let Some(v) = parts.extensions.get::<reqwest::Version>() {
            builder = builder.version(*v);
        }
        let response = builder.send().await.map_err(|e| classify(&host, &e))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(HttpError::ServerError {
                host,
                status: status.as_u16(),
            });
        }
        if status.is_redirection() {
            return Err(HttpError::Redirect { host });
        }
        let headers = response.headers().clone();
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY as u64)
        {
            return Err(HttpError::TooLarge { host });
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| classify(&host, &e))?;
            if body.len() + chunk.len() > MAX_BODY {
                return Err(HttpError::TooLarge { host });
            }
            body.extend_from_slice(&chunk);
        }
        let mut out = HttpResponse::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }
}

/// Only scheme, host and port: URLs of authorization and token calls may carry codes in queries.
fn host_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => "the provider".into(),
    }
}

fn classify(host: &str, e: &reqwest::Error) -> HttpError {
    if e.is_timeout() {
        let secs = if e.is_connect() {
            CONNECT_TIMEOUT.as_secs()
        } else {
            TOTAL_TIMEOUT.as_secs()
        };
        return HttpError::Timeout {
            host: host.into(),
            secs,
        };
    }
    // reqwest's own Display includes the URL; walk the source chain instead for the root cause.
    let mut reason = String::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        reason = s.to_string();
        source = s.source();
    }
    if reason.is_empty() {
        reason = "unknown error".into();
    }
    if e.is_connect() {
        HttpError::Connect {
            host: host.into(),
            reason,
        }
    } else {
        HttpError::Other {
            host: host.into(),
            reason,
        }
    }
}

impl<'c> openidconnect::AsyncHttpClient<'c> for HttpClient {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.execute(request))
    }
}
