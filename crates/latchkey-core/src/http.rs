//! The back-channel HTTP client every provider call goes through.
//!
//! - connect timeout 10 s, whole request 30 s;
//! - redirects are never followed (RFC 9700 §4.11: a token endpoint that redirects is a bug or an
//!   attack, and following it could carry credentials elsewhere);
//! - rustls with the OS trust store (rustls-native-certs): on Linux the distribution's bundle
//!   (`/etc/ssl/certs/ca-certificates.crt`, which `update-ca-certificates` builds), on macOS and
//!   Windows the system's; `SSL_CERT_FILE` and/or `SSL_CERT_DIR`, when set, *replace* it, as they
//!   do for OpenSSL and curl. So a corporate TLS-inspection CA works once IT has added it the
//!   usual way. Verification is never turned off; an untrusted certificate is [`HttpError::Tls`],
//!   whose message says how to trust the CA;
//! - `HTTPS_PROXY`/`https_proxy`, `HTTP_PROXY`/`http_proxy`, `ALL_PROXY`/`all_proxy` and
//!   `NO_PROXY`/`no_proxy` are honoured (reqwest's system proxy, read when the client is built;
//!   the upper-case spelling wins when both are set). No host is exempt by default, loopback
//!   included: `NO_PROXY` lists what bypasses the proxy (names match their subdomains, IPs may
//!   carry a `/prefix`, `*` means all, addresses included, see [`no_proxy_everywhere`]). As in CGI programs, every proxy variable is ignored when
//!   `REQUEST_METHOD` is set (the "httpoxy" rule);
//! - response bodies are capped, so a hostile endpoint cannot exhaust memory;
//! - 5xx answers become a transient error here, so no caller can mistake them for an OAuth error.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
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
    /// The server's certificate did not verify. `problem` says why, `hint` what to do.
    #[error("cannot verify the TLS certificate of {host}: {problem}; {hint}")]
    Tls {
        host: String,
        problem: String,
        hint: String,
    },
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
    /// The server answered `use_dpop_nonce` again after a retry with the nonce it sent
    /// (RFC 9449 §8, §9).
    #[error(
        "{host} still asks for a DPoP nonce (use_dpop_nonce) after a retry with the nonce it sent; try again, and if it persists set dpop to never or tell the provider's administrator"
    )]
    DpopNonce { host: String },
}

/// What an HTTP answer is worth before the policy above is applied to it.
pub type HttpResult = Result<HttpResponse, HttpError>;

/// The HTTP port: sends one request and returns the server's answer as it came, its body read
/// (at most [`MAX_BODY`] bytes). [`SystemHttp`] is the network; tests and fuzzers put a fake
/// provider here (see [`crate::Ports::http`]). [`HttpClient`] applies the policy (no
/// redirects, 5xx as transient, the body cap) over any transport, so a fake one is held to it too.
pub trait HttpTransport: Send + Sync + fmt::Debug {
    fn send(&self, request: HttpRequest) -> Pin<Box<dyn Future<Output = HttpResult> + Send + '_>>;
}

/// The network, over reqwest with the settings listed in this module's documentation. The
/// client is built on first use: loading the OS trust store costs milliseconds that a cached
/// `latchkey token` must not pay.
#[derive(Debug)]
pub struct SystemHttp {
    user_agent: &'static str,
    client: std::sync::OnceLock<Result<reqwest::Client, String>>,
}

impl SystemHttp {
    /// A transport that sends `user_agent` (the app's [`crate::AppIdentity::user_agent`]).
    pub fn new(user_agent: &'static str) -> Self {
        Self {
            user_agent,
            client: std::sync::OnceLock::new(),
        }
    }

    fn client(&self) -> Result<&reqwest::Client, HttpError> {
        self.client
            .get_or_init(|| base(self.user_agent).build().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(tls_setup_failed)
    }
}

impl HttpTransport for SystemHttp {
    fn send(&self, request: HttpRequest) -> Pin<Box<dyn Future<Output = HttpResult> + Send + '_>> {
        Box::pin(async move { send_with(self.client()?, request).await })
    }
}

/// A client that could not be built (its TLS configuration, in practice).
fn tls_setup_failed(e: impl fmt::Display) -> HttpError {
    HttpError::Other {
        host: "-".into(),
        reason: format!("cannot set up TLS: {e}"),
    }
}

/// A reqwest client that connects to one host only at addresses the caller checked.
#[derive(Debug)]
struct PinnedHttp(reqwest::Client);

impl HttpTransport for PinnedHttp {
    fn send(&self, request: HttpRequest) -> Pin<Box<dyn Future<Output = HttpResult> + Send + '_>> {
        Box::pin(send_with(&self.0, request))
    }
}

/// One exchange over reqwest: the body is read only up to [`MAX_BODY`], and not at all when
/// the status is one the policy refuses anyway.
async fn send_with(client: &reqwest::Client, request: HttpRequest) -> HttpResult {
    let (parts, body) = request.into_parts();
    let url = parts.uri.to_string();
    let host = host_of(&url);
    let mut builder = client
        .request(parts.method, &url)
        .headers(parts.headers)
        .body(body);
    if let Some(v) = parts.extensions.get::<reqwest::Version>() {
        builder = builder.version(*v);
    }
    let response = builder.send().await.map_err(|e| classify(&host, &e))?;
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    if !(status.is_server_error() || status.is_redirection()) {
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY as u64)
        {
            return Err(HttpError::TooLarge { host });
        }
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| classify(&host, &e))?;
            if body.len() + chunk.len() > MAX_BODY {
                return Err(HttpError::TooLarge { host });
            }
            body.extend_from_slice(&chunk);
        }
    }
    let mut out = HttpResponse::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

/// The HTTP client every provider call goes through: a transport, the policy, and the time
/// spent waiting. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    transport: Arc<dyn HttpTransport>,
    /// Total time spent waiting on the provider, for the sign-in timing split.
    waited_nanos: Arc<AtomicU64>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client over `transport` ([`SystemHttp`] for the network).
    pub fn new(transport: Arc<dyn HttpTransport>) -> Self {
        Self {
            transport,
            waited_nanos: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A client that connects to `host` only at `addrs`, which the caller has checked. For the
    /// profile picture, whose URL comes from the provider (see [`crate::picture::resolve`]).
    ///
    /// When a proxy applies to the URL (`HTTPS_PROXY` without a matching `NO_PROXY`), the request
    /// goes through it like every other call: on a network that allows egress only through its
    /// proxy, a direct connection would just time out. The proxy then resolves the name itself
    /// (the `CONNECT` names the host, not an address), so the local check still refuses a name
    /// that resolves to a private address here, and what the proxy may reach beyond that is its
    /// operator's policy.
    pub(crate) fn pinned(
        user_agent: &str,
        host: &str,
        addrs: &[SocketAddr],
    ) -> Result<Self, HttpError> {
        let client = base(user_agent)
            .resolve_to_addrs(host, addrs)
            .build()
            .map_err(tls_setup_failed)?;
        Ok(Self::new(Arc::new(PinnedHttp(client))))
    }

    /// Time spent waiting on the network since this client was made.
    pub fn waited(&self) -> Duration {
        Duration::from_nanos(self.waited_nanos.load(Ordering::Relaxed))
    }

    async fn execute(&self, request: HttpRequest) -> HttpResult {
        let uri = request.uri().clone();
        let started = Instant::now();
        let result = self.transport.send(request).await;
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.waited_nanos.fetch_add(nanos, Ordering::Relaxed);
        policy(&uri, result?)
    }
}

/// What no caller may see: a redirect (never followed, RFC 9700 §4.11), a server error (a
/// transient failure, never an OAuth answer), or a body above [`MAX_BODY`].
fn policy(uri: &openidconnect::http::Uri, response: HttpResponse) -> HttpResult {
    // Named only in an error: no URL parse on the way of an answer that passes.
    let host = || host_of(&uri.to_string());
    let status = response.status();
    if status.is_server_error() {
        return Err(HttpError::ServerError {
            host: host(),
            status: status.as_u16(),
        });
    }
    if status.is_redirection() {
        return Err(HttpError::Redirect { host: host() });
    }
    if response.body().len() > MAX_BODY {
        return Err(HttpError::TooLarge { host: host() });
    }
    Ok(response)
}

/// How long an idle connection is kept for reuse.
const POOL_IDLE: Duration = Duration::from_secs(3);

fn base(user_agent: &str) -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(TOTAL_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        // An idle pooled connection is dropped before a server's keep-alive would close it
        // (Node's default is 5 s): a token request sent on a connection the server is closing
        // gets "connection reset", and a code cannot be sent twice (RFC 6749 §4.1.2).
        .pool_idle_timeout(POOL_IDLE)
        .user_agent(user_agent);
    if no_proxy_everywhere(&no_proxy_var()) {
        builder.no_proxy()
    } else {
        builder
    }
}

/// The proxy the back-channel client uses for `url`, as `scheme://host:port` (never with the
/// credentials a proxy URL may carry), or `None` when it connects directly: reqwest's own
/// matcher over the same variables, plus the `NO_PROXY=*` rule of [`no_proxy_everywhere`].
pub fn proxy_for(url: &str) -> Option<String> {
    if no_proxy_everywhere(&no_proxy_var()) {
        return None;
    }
    let uri: openidconnect::http::Uri = url.parse().ok()?;
    let intercept = hyper_util::client::proxy::matcher::Matcher::from_system().intercept(&uri)?;
    let proxy = intercept.uri();
    Some(format!(
        "{}://{}",
        proxy.scheme_str().unwrap_or("http"),
        proxy.authority().map(|a| a.as_str()).unwrap_or_default()
    ))
}

/// `NO_PROXY`, else `no_proxy`, as reqwest (hyper-util) reads them: the upper case wins when set.
fn no_proxy_var() -> String {
    std::env::var("NO_PROXY")
        .or_else(|_| std::env::var("no_proxy"))
        .unwrap_or_default()
}

/// Whether `NO_PROXY` has a `*` entry, which for curl means no proxy for any host. hyper-util's
/// matcher applies `*` to names only, so an issuer at an address (`https://10.1.2.3`) would
/// still go through the proxy: the client is built without one instead.
fn no_proxy_everywhere(list: &str) -> bool {
    list.split(',').any(|entry| entry.trim() == "*")
}

/// Only scheme, host and port: URLs of authorization and token calls may carry codes in queries.
pub(crate) fn host_of(url: &str) -> String {
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
    if let Some(rustls::Error::InvalidCertificate(why)) = rustls_error(e) {
        let (problem, hint) = certificate_problem(why);
        return HttpError::Tls {
            host: host.into(),
            problem,
            hint,
        };
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

/// The rustls error somewhere in `e`'s source chain. tokio-rustls wraps it in an `io::Error`,
/// which reqwest's connector wraps in another, and an `io::Error`'s `source()` skips the error
/// it wraps: so each `io::Error` is opened with `get_ref()` instead.
fn rustls_error<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(found) = err.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        current = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// Why a certificate was refused, and what the user can do about it (one clause each).
fn certificate_problem(why: &rustls::CertificateError) -> (String, String) {
    use rustls::CertificateError as E;
    let ask = "ask the provider's administrator; certificate checks are never turned off";
    match why {
        E::UnknownIssuer => (
            "it is not issued by a CA this machine trusts (UnknownIssuer)".into(),
            trust_hint(),
        ),
        E::NotValidForName | E::NotValidForNameContext { .. } => (
            "it is not valid for this host name".into(),
            "use the issuer URL the certificate was made for, or ".to_owned() + ask,
        ),
        E::Expired | E::ExpiredContext { .. } => (
            "it has expired".into(),
            "check this machine's clock, or ".to_owned() + ask,
        ),
        E::NotValidYet | E::NotValidYetContext { .. } => (
            "it is not valid yet".into(),
            "check this machine's clock, or ".to_owned() + ask,
        ),
        E::Revoked => ("it has been revoked".into(), ask.into()),
        other => (format!("it was refused ({other})"), ask.into()),
    }
}

/// How to trust a CA that is missing, given how this process picks its roots
/// (rustls-native-certs: `SSL_CERT_FILE`/`SSL_CERT_DIR` replace the system store when set).
fn trust_hint() -> String {
    for var in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
        if let Some(path) = std::env::var_os(var) {
            let path = std::path::PathBuf::from(path);
            let shown = crate::error::sanitize(&path.display().to_string());
            return match std::fs::metadata(&path) {
                Err(e) => format!(
                    "{var}={shown} is set but cannot be read ({e}), so no CA is trusted: fix or unset it"
                ),
                Ok(_) => format!(
                    "{var}={shown} is set and replaces the system store: add your network's CA to it, or unset it"
                ),
            };
        }
    }
    format!(
        "if your network inspects TLS, trust its CA: {}, or set SSL_CERT_FILE to a PEM file that holds it",
        SYSTEM_STORE_HINT
    )
}

#[cfg(target_os = "macos")]
const SYSTEM_STORE_HINT: &str = "add it to the System keychain as trusted";
#[cfg(target_os = "windows")]
const SYSTEM_STORE_HINT: &str =
    "add it to the Windows certificate store (Trusted Root Certification Authorities)";
#[cfg(not(any(target_os = "macos", target_os = "windows")))]
const SYSTEM_STORE_HINT: &str = "add it to the system store (Debian and Ubuntu: copy it to /usr/local/share/ca-certificates/ as a .crt file, then run update-ca-certificates)";

impl<'c> openidconnect::AsyncHttpClient<'c> for HttpClient {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.execute(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transport that answers every request with one status and body.
    #[derive(Debug)]
    struct Fixed(u16, usize);

    impl HttpTransport for Fixed {
        fn send(&self, _: HttpRequest) -> Pin<Box<dyn Future<Output = HttpResult> + Send + '_>> {
            let mut response = HttpResponse::new(vec![b'x'; self.1]);
            *response.status_mut() =
                openidconnect::http::StatusCode::from_u16(self.0).expect("status");
            Box::pin(async move { Ok(response) })
        }
    }

    async fn through_policy(status: u16, len: usize) -> HttpResult {
        use openidconnect::AsyncHttpClient as _;
        let client = HttpClient::new(Arc::new(Fixed(status, len)));
        let request = openidconnect::http::Request::builder()
            .uri("https://id.example/token?code=secret")
            .body(Vec::new())
            .expect("request");
        client.call(request).await
    }

    /// The policy holds over any transport, a fake provider's too: a 5xx is transient, a
    /// redirect is not followed, a body above the cap is refused; the host named has no query.
    #[tokio::test]
    async fn the_policy_applies_over_any_transport() {
        match through_policy(503, 10).await {
            Err(HttpError::ServerError { host, status }) => {
                assert_eq!((host.as_str(), status), ("https://id.example", 503));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            through_policy(302, 0).await,
            Err(HttpError::Redirect { .. })
        ));
        assert!(matches!(
            through_policy(200, MAX_BODY + 1).await,
            Err(HttpError::TooLarge { .. })
        ));
        let ok = through_policy(200, MAX_BODY).await.expect("at the cap");
        assert_eq!(ok.body().len(), MAX_BODY);
    }

    #[test]
    fn a_certificate_error_is_found_inside_the_io_error_that_carries_it() {
        // As reqwest reports it: the rustls error in tokio-rustls's io::Error, in the connector's
        // io::Error, in hyper-util's error.
        #[derive(Debug, thiserror::Error)]
        #[error("client error (Connect)")]
        struct Wrapper(#[source] std::io::Error);
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let wrapped = Wrapper(std::io::Error::other(io));
        assert!(matches!(
            rustls_error(&wrapped),
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ));
        let plain = Wrapper(std::io::Error::other("connection refused"));
        assert!(rustls_error(&plain).is_none());
    }

    #[test]
    fn a_star_in_no_proxy_means_every_host() {
        assert!(no_proxy_everywhere("*"));
        assert!(no_proxy_everywhere("corp.example, * "));
        assert!(!no_proxy_everywhere(""));
        assert!(!no_proxy_everywhere("*.corp.example,127.0.0.1"));
    }

    #[test]
    fn each_certificate_problem_says_what_to_do() {
        use rustls::CertificateError as E;
        let (problem, hint) = certificate_problem(&E::UnknownIssuer);
        assert!(
            problem.contains("not issued by a CA this machine trusts"),
            "{problem}"
        );
        assert!(hint.contains("SSL_CERT_"), "{hint}");
        let (problem, hint) = certificate_problem(&E::Expired);
        assert_eq!(problem, "it has expired");
        assert!(hint.contains("clock"), "{hint}");
        let (problem, _) = certificate_problem(&E::NotValidForName);
        assert_eq!(problem, "it is not valid for this host name");
        let (_, hint) = certificate_problem(&E::BadSignature);
        assert!(hint.contains("never turned off"), "{hint}");
    }
}
