//! The CLI's redirect receiver: an HTTP listener on the loopback interface (RFC 8252 §7.3),
//! bound to 127.0.0.1 or ::1 only (§8.3) on an ephemeral port unless one is configured.
//!
//! It speaks just enough HTTP/1.1 for a browser's single GET, or its form POST (the hybrid and
//! implicit flows' `response_mode=form_post`), answers with a small page and closes each
//! connection. Anything other than a GET or POST of the redirect path gets a 404 and is otherwise
//! ignored; a POST that is not a bounded `application/x-www-form-urlencoded` body gets a one-line
//! error page and never reaches the sign-in. Connections are served concurrently (at most
//! [`MAX_CONNECTIONS`] at once), so an idle one, such as a browser's speculative preconnect,
//! cannot hold up the real redirect. Against a local flood: the request line must arrive within
//! [`REQUEST_LINE_DEADLINE`], idle connections are dropped first when every slot is taken, and a
//! request whose `Host` is not a loopback name is refused (a DNS-rebinding page cannot post to it).
//!
//! `localhost` in the configured redirect binds **both** 127.0.0.1 and ::1 on the same port, or
//! fails: the browser may resolve `localhost` to either, and a port left free on one of them could
//! be taken by another local user to receive the redirect (§8.3).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};
use url::Url;

use crate::error::{Error, Result};

const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// The largest form body read: the form-post response's code, ID token and state fit many times.
pub const MAX_FORM_BODY: usize = crate::flow::MAX_RESPONSE;
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a new connection may take to send its request line. A browser sends it at once; a
/// preconnect that stays idle longer is closed, and the browser opens a new one when it needs it.
pub const REQUEST_LINE_DEADLINE: Duration = Duration::from_secs(2);
/// Connections read at once; more wait in the listen backlog until one is done or, when one of
/// those being read has not sent its request line yet, it is dropped for the newcomer.
pub const MAX_CONNECTIONS: usize = 16;
/// Ephemeral ports tried for `localhost` until one is free on both 127.0.0.1 and ::1.
const DUAL_BIND_TRIES: usize = 8;

#[derive(Debug)]
pub struct LoopbackServer {
    /// 127.0.0.1 or ::1, or both for `localhost`.
    listeners: Vec<TcpListener>,
    redirect_uri: Url,
    /// Connections being read. Kept across [`next`](Self::next) calls, so a redirect that
    /// arrives while nobody waits is not lost; dropping the server aborts them.
    connections: tokio::sync::Mutex<Connections>,
}

/// The connections being read, oldest first, each with whether its request line has arrived.
#[derive(Debug, Default)]
struct Connections {
    tasks: JoinSet<Option<CallbackRequest>>,
    order: VecDeque<(AbortHandle, Arc<AtomicBool>)>,
}

impl Connections {
    /// Whether a new connection can be read now: a free slot, or an idle one to give up.
    fn room(&mut self) -> bool {
        self.order.retain(|(task, _)| !task.is_finished());
        self.order.len() < MAX_CONNECTIONS
            || self
                .order
                .iter()
                .any(|(_, line)| !line.load(Ordering::Acquire))
    }

    fn spawn(&mut self, stream: TcpStream, redirect_uri: Url) {
        if self.order.len() >= MAX_CONNECTIONS
            && let Some(i) = self
                .order
                .iter()
                .position(|(_, line)| !line.load(Ordering::Acquire))
            && let Some((idle, _)) = self.order.remove(i)
        {
            idle.abort();
        }
        let line = Arc::new(AtomicBool::new(false));
        let task = self
            .tasks
            .spawn(serve(stream, redirect_uri, Arc::clone(&line)));
        self.order.push_back((task, line));
    }
}

/// A request to the redirect path, waiting for its answer.
#[derive(Debug)]
pub struct CallbackRequest {
    stream: TcpStream,
    /// The full redirect URL as the browser sent it.
    pub url: String,
    /// A POST's `application/x-www-form-urlencoded` body (Form Post Response Mode §2); `None` for
    /// a GET.
    pub form: Option<String>,
}

impl LoopbackServer {
    /// Binds the loopback address of `configured`: 127.0.0.1 or ::1 as written, and both for
    /// `localhost` (module docs). Port 0 or none means ephemeral.
    pub async fn bind(configured: &Url) -> Result<Self> {
        let port = configured.port().unwrap_or(0);
        let listeners = match configured.host() {
            Some(url::Host::Ipv6(ip)) => vec![listen(IpAddr::V6(ip), port).await?],
            Some(url::Host::Ipv4(ip)) => vec![listen(IpAddr::V4(ip), port).await?],
            _ => bind_both(port).await?,
        };
        let actual = listeners[0]
            .local_addr()
            .map_err(|e| Error::internal(format!("cannot read the listener address: {e}")))?;
        let mut redirect_uri = configured.clone();
        redirect_uri
            .set_port(Some(actual.port()))
            .map_err(|()| Error::internal("cannot set the redirect port"))?;
        Ok(Self {
            listeners,
            redirect_uri,
            connections: tokio::sync::Mutex::new(Connections::default()),
        })
    }

    /// The redirect URI with the bound port, to send in the authorization request.
    pub fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }

    /// Waits for the next GET of the redirect path. Other requests are answered with 404. Each
    /// connection is read by its own task, so a slow or idle one delays no other. Cancel-safe.
    pub async fn next(&self) -> Result<CallbackRequest> {
        let mut live = self.connections.lock().await;
        loop {
            let room = live.room();
            tokio::select! {
                accepted = accept_any(&self.listeners), if room => {
                    let stream = accepted.map_err(|e| {
                        Error::internal(format!("the redirect listener failed: {e}"))
                    })?;
                    live.spawn(stream, self.redirect_uri.clone());
                }
                Some(done) = live.tasks.join_next() => {
                    // Err: the task panicked or was aborted; that connection is just gone.
                    if let Ok(Some(request)) = done {
                        return Ok(request);
                    }
                }
            }
        }
    }
}

async fn listen(ip: IpAddr, port: u16) -> Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(ip, port))
        .await
        .map_err(|e| bind_error(ip, port, &e))
}

fn bind_error(ip: IpAddr, port: u16, e: &std::io::Error) -> Error {
    Error::internal(format!(
        "cannot listen on {} for the sign-in redirect: {e}",
        SocketAddr::new(ip, port)
    ))
}

/// 127.0.0.1 and ::1 on one port. A host without IPv6 (`::1` cannot be assigned) gets 127.0.0.1
/// alone: nobody can take `[::1]` there either. With an ephemeral port, a port already taken on
/// ::1 means trying another; a configured one fails.
async fn bind_both(port: u16) -> Result<Vec<TcpListener>> {
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    for _ in 0..DUAL_BIND_TRIES {
        let first = listen(IpAddr::V4(Ipv4Addr::LOCALHOST), port).await?;
        let bound = first
            .local_addr()
            .map_err(|e| Error::internal(format!("cannot read the listener address: {e}")))?
            .port();
        match TcpListener::bind(SocketAddr::new(v6, bound)).await {
            Ok(second) => return Ok(vec![first, second]),
            Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => return Ok(vec![first]),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && port == 0 => continue,
            Err(e) => return Err(bind_error(v6, bound, &e)),
        }
    }
    Err(Error::internal(format!(
        "cannot find a port free on both 127.0.0.1 and ::1 for the sign-in redirect after {DUAL_BIND_TRIES} tries; use http://127.0.0.1/callback as the redirect"
    )))
}

/// The next connection on any of the listeners (`accept` is cancel-safe).
async fn accept_any(listeners: &[TcpListener]) -> std::io::Result<TcpStream> {
    match listeners {
        [one] => one.accept().await.map(|(s, _)| s),
        [a, b, ..] => tokio::select! {
            r = a.accept() => r.map(|(s, _)| s),
            r = b.accept() => r.map(|(s, _)| s),
        },
        [] => std::future::pending().await,
    }
}

/// Reads one connection: the redirect comes back to [`LoopbackServer::next`], anything else is
/// answered here.
async fn serve(
    mut stream: TcpStream,
    redirect_uri: Url,
    line_arrived: Arc<AtomicBool>,
) -> Option<CallbackRequest> {
    let mut line = Vec::with_capacity(1024);
    match tokio::time::timeout(REQUEST_LINE_DEADLINE, read_line(&mut stream, &mut line)).await {
        Ok(Ok(true)) => line_arrived.store(true, Ordering::Release),
        // Idle, too slow, or closed: dropped without an answer.
        _ => return None,
    }
    let read = tokio::time::timeout(
        READ_TIMEOUT,
        read_request(
            &mut AsyncReadExt::chain(&line[..], &mut stream),
            &redirect_uri,
        ),
    )
    .await;
    let request = match read {
        Ok(Ok(Read::Callback { target, form })) => {
            return Some(CallbackRequest {
                stream,
                url: callback_url(redirect_uri, &target),
                form,
            });
        }
        Ok(Ok(Read::Refused(status, why))) => (status, why),
        Ok(Err(_)) | Err(_) => (400, ""),
    };
    if !request.1.is_empty() {
        tracing::warn!("the redirect listener refused a request: {}", request.1);
    }
    let title = match request.0 {
        404 => "Not found",
        _ => "Not accepted",
    };
    let _ = tokio::time::timeout(
        READ_TIMEOUT,
        respond(&mut stream, request.0, title, request.1),
    )
    .await;
    None
}

/// Reads into `line` until it holds a line end; `false` if the peer closed first. Stops at
/// [`MAX_REQUEST_HEAD`] too, for [`read_request`] to refuse.
async fn read_line(stream: &mut TcpStream, line: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = [0u8; 4096];
    loop {
        // Only the new bytes (and the one before them) can complete "\r\n".
        let from = line.len().saturating_sub(1);
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(false);
        }
        line.extend_from_slice(&chunk[..n]);
        if line[from..].windows(2).any(|w| w == b"\r\n") || line.len() > MAX_REQUEST_HEAD {
            return Ok(true);
        }
    }
}

/// The redirect URL a request for `target` (the redirect path, maybe with a query) stands for.
pub(crate) fn callback_url(mut redirect_uri: Url, target: &str) -> String {
    redirect_uri.set_query(target.split_once('?').map(|(_, q)| q));
    redirect_uri.to_string()
}

impl CallbackRequest {
    /// Answers the browser with a small page and closes the connection.
    pub async fn finish(mut self, ok: bool, title: &str, detail: &str) {
        let status = if ok { 200 } else { 400 };
        let _ = respond(&mut self.stream, status, title, detail).await;
    }
}

/// What one connection sent.
#[derive(Debug)]
pub(crate) enum Read {
    /// A GET (`form: None`) or form POST to the redirect path.
    Callback {
        target: String,
        form: Option<String>,
    },
    /// Answered with this status and one-line reason, and dropped.
    Refused(u16, &'static str),
}

/// Reads the request head, and a POST's body: at most [`MAX_FORM_BODY`] bytes, announced by
/// `Content-Length`, of type `application/x-www-form-urlencoded`, in UTF-8. Generic over the
/// stream so the fuzzer (`tests/fuzz`) can feed it bytes from memory.
pub(crate) async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    redirect_uri: &Url,
) -> std::io::Result<Read> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = match read_head(stream, &mut buf).await? {
        Ok(end) => end,
        Err(refused) => return Ok(refused),
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut parts = lines.next().unwrap_or_default().split(' ');
    let (method, target) = match (parts.next(), parts.next()) {
        (Some(m @ ("GET" | "POST")), Some(t)) if t.starts_with('/') => (m, t.to_owned()),
        _ => return Ok(Read::Refused(404, "")),
    };
    if !loopback_host(&head) {
        return Ok(Read::Refused(
            400,
            "the request's Host is not this computer",
        ));
    }
    if target.split('?').next() != Some(redirect_uri.path()) {
        return Ok(Read::Refused(404, ""));
    }
    if method == "GET" {
        return Ok(Read::Callback { target, form: None });
    }
    let length = match form_length(&head) {
        Ok(length) => length,
        Err(refused) => return Ok(refused),
    };
    let mut body = buf.split_off(head_end);
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Read::Refused(400, "the sign-in form was cut short"));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    match String::from_utf8(body) {
        Ok(form) => Ok(Read::Callback {
            target,
            form: Some(form),
        }),
        Err(_) => Ok(Read::Refused(
            400,
            "the sign-in form is not UTF-8; it was ignored",
        )),
    }
}

/// Reads into `buf` until the blank line that ends the request head; its end, or the refusal of
/// a head that is too long or cut short.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> std::io::Result<Result<usize, Read>> {
    let mut chunk = [0u8; 4096];
    // Only the bytes just read (and the 3 before them) can complete the blank line that ends the
    // head: scanning all of it after every read is quadratic for a peer sending a byte at a time.
    let mut searched: usize = 0;
    loop {
        let from = searched.saturating_sub(3);
        if let Some(i) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Ok(from + i + 4));
        }
        if buf.len() > MAX_REQUEST_HEAD {
            return Ok(Err(Read::Refused(400, "the request head is too long")));
        }
        searched = buf.len();
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Err(Read::Refused(400, "")));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Whether the head's `Host` names this computer's loopback interface (`127.0.0.1`, `[::1]` or
/// `localhost`, any port). Anything else is a page that resolved its own name to 127.0.0.1 (DNS
/// rebinding) or no browser at all; HTTP/1.1 requires the header (RFC 9112 §3.2).
fn loopback_host(head: &str) -> bool {
    let host = head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case("host").then(|| v.trim())
    });
    let Some(host) = host else { return false };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    matches!(
        name.to_ascii_lowercase().as_str(),
        "127.0.0.1" | "::1" | "localhost"
    )
}

/// The length of a posted form, from a head whose headers must describe one (Form Post Response
/// Mode §2: an `application/x-www-form-urlencoded` body, `; charset=…` allowed), or the refusal.
fn form_length(head: &str) -> Result<usize, Read> {
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    // Form Post Response Mode §2: the response is an application/x-www-form-urlencoded body;
    // `; charset=…` may follow.
    let media_type = header("content-type").unwrap_or_default();
    let media_type = media_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(Read::Refused(
            415,
            "the sign-in response must be posted as application/x-www-form-urlencoded; this one was ignored",
        ));
    }
    if header("transfer-encoding").is_some() {
        return Err(Read::Refused(
            411,
            "the sign-in form must be sent with a Content-Length; this one was ignored",
        ));
    }
    let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) else {
        return Err(Read::Refused(
            411,
            "the sign-in form must be sent with a Content-Length; this one was ignored",
        ));
    };
    if length > MAX_FORM_BODY {
        return Err(Read::Refused(
            413,
            "the sign-in form is too large to be genuine; it was ignored",
        ));
    }
    Ok(length)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    title: &str,
    detail: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        _ => "Bad Request",
    };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <style>body{{font:16px system-ui,sans-serif;margin:4rem auto;max-width:32rem;padding:0 1rem;color:#222}}\
         @media(prefers-color-scheme:dark){{body{{background:#1b1b1b;color:#eee}}}}</style></head>\
         <body><h1>{t}</h1><p>{d}</p></body></html>",
        t = escape(title),
        d = escape(detail)
    );
    // no-store: the page must not be cached with the code in its URL (RFC 8252 §8.1 spirit).
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener for `http://127.0.0.1/callback` on an ephemeral port.
    async fn bind_local() -> LoopbackServer {
        LoopbackServer::bind(&Url::parse("http://127.0.0.1/callback").expect("url"))
            .await
            .expect("bind")
    }

    async fn get(addr: &Url, path: &str) -> String {
        send(
            addr,
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes(),
        )
        .await
    }

    #[tokio::test]
    async fn serves_the_callback_and_ignores_other_paths() {
        let server = bind_local().await;
        let uri = server.redirect_uri().clone();
        assert_ne!(uri.port(), Some(0));
        let client = tokio::spawn({
            let uri = uri.clone();
            async move {
                let not_found = get(&uri, "/favicon.ico").await;
                let ok = get(&uri, "/callback?code=c&state=s").await;
                (not_found, ok)
            }
        });
        let req = server.next().await.expect("callback");
        assert_eq!(
            req.url,
            format!(
                "http://127.0.0.1:{}/callback?code=c&state=s",
                uri.port().expect("port")
            )
        );
        req.finish(true, "Signed in <ok>", "You can close this tab.")
            .await;
        let (not_found, ok) = client.await.expect("join");
        assert!(not_found.starts_with("HTTP/1.1 404"), "{not_found}");
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains("Signed in &lt;ok&gt;"), "escaped: {ok}");
        assert!(ok.contains("Cache-Control: no-store"));
    }

    /// Sends `raw` to the address `addr` names (127.0.0.1 or [::1]) and reads the answer.
    async fn send(addr: &Url, raw: &[u8]) -> String {
        let ip = match addr.host() {
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        let mut s = TcpStream::connect((ip, addr.port().expect("port")))
            .await
            .expect("connect");
        s.write_all(raw).await.expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    }

    fn post(path: &str, content_type: &str, body: &str) -> Vec<u8> {
        format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn a_form_post_is_read_and_bad_ones_are_refused_here() {
        let server = bind_local().await;
        let uri = server.redirect_uri().clone();
        let client = tokio::spawn({
            let uri = uri.clone();
            async move {
                let refused = vec![
                    send(&uri, &post("/callback", "text/plain", "code=c&state=s")).await,
                    send(&uri, b"POST /callback HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\ncode=c").await,
                    send(&uri, b"POST /callback HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").await,
                    send(&uri, &post("/callback", "application/x-www-form-urlencoded", &"a".repeat(MAX_FORM_BODY + 1))).await,
                    send(&uri, &post("/other", "application/x-www-form-urlencoded", "code=c")).await,
                ];
                let ok = send(
                    &uri,
                    &post(
                        "/callback",
                        "Application/X-WWW-Form-Urlencoded; charset=UTF-8",
                        "code=c&state=s",
                    ),
                )
                .await;
                (refused, ok)
            }
        });
        let req = server.next().await.expect("the form post");
        assert_eq!(req.form.as_deref(), Some("code=c&state=s"));
        assert!(req.url.ends_with("/callback"), "{}", req.url);
        req.finish(true, "Signed in", "").await;
        let (refused, ok) = client.await.expect("join");
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        let statuses: Vec<&str> = refused.iter().map(|r| &r[9..12]).collect();
        assert_eq!(statuses, ["415", "411", "411", "413", "404"]);
        assert!(
            refused[0].contains("application/x-www-form-urlencoded"),
            "{}",
            refused[0]
        );
    }

    /// `idle` connections that send nothing (a browser's preconnect, or a local flood) are
    /// opened first; the redirect that follows must still be served within a second.
    async fn served_behind_idle_connections(idle: usize, why: &str) {
        let server = bind_local().await;
        let uri = server.redirect_uri().clone();
        let port = uri.port().expect("port");
        let mut held = Vec::new();
        for _ in 0..idle {
            held.push(TcpStream::connect(("127.0.0.1", port)).await.expect("idle"));
        }
        let client = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            get(&uri, "/callback?code=c&state=s").await
        });
        let req = tokio::time::timeout(Duration::from_secs(1), server.next())
            .await
            .expect(why)
            .expect("callback");
        assert!(req.url.ends_with("/callback?code=c&state=s"), "{}", req.url);
        req.finish(true, "Signed in", "").await;
        assert!(client.await.expect("join").starts_with("HTTP/1.1 200"));
        drop(held);
    }

    #[tokio::test]
    async fn an_idle_connection_does_not_delay_the_redirect() {
        served_behind_idle_connections(3, "not held up by the idle connections").await;
    }

    fn addresses(server: &LoopbackServer) -> Vec<SocketAddr> {
        server
            .listeners
            .iter()
            .map(|l| l.local_addr().expect("addr"))
            .collect()
    }

    /// Whether this machine has an IPv6 loopback to bind.
    fn has_ipv6_loopback() -> bool {
        std::net::TcpListener::bind("[::1]:0").is_ok()
    }

    #[tokio::test]
    async fn binds_loopback_only() {
        for url in [
            "http://127.0.0.1/cb",
            "http://[::1]/cb",
            "http://localhost/cb",
        ] {
            if url.contains("::1") && !has_ipv6_loopback() {
                continue;
            }
            let server = LoopbackServer::bind(&Url::parse(url).expect("url"))
                .await
                .expect("bind");
            assert!(
                addresses(&server).iter().all(|a| a.ip().is_loopback()),
                "{url}"
            );
        }
    }

    /// M3: `localhost` may resolve to ::1 in the browser, so that address is held too, on the
    /// same port, and the redirect arrives through it.
    #[tokio::test]
    async fn localhost_binds_both_loopback_addresses_on_one_port() {
        if !has_ipv6_loopback() {
            return;
        }
        let server = LoopbackServer::bind(&Url::parse("http://localhost/cb").expect("url"))
            .await
            .expect("bind");
        let port = server.redirect_uri().port().expect("port");
        let bound = addresses(&server);
        assert_eq!(
            bound,
            [
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port)
            ]
        );
        let via_v6 = Url::parse(&format!("http://[::1]:{port}/cb")).expect("url");
        let client = tokio::spawn(async move {
            send(
                &via_v6,
                b"GET /cb?code=c&state=s HTTP/1.1\r\nHost: localhost\r\n\r\n",
            )
            .await
        });
        let req = tokio::time::timeout(Duration::from_secs(5), server.next())
            .await
            .expect("the request over ::1 arrived")
            .expect("callback over ::1");
        assert!(req.url.ends_with("/cb?code=c&state=s"), "{}", req.url);
        req.finish(true, "Signed in", "").await;
        assert!(client.await.expect("join").starts_with("HTTP/1.1 200"));
    }

    /// M3: a configured `localhost` port that someone else holds on ::1 is an error, not a
    /// listener on 127.0.0.1 alone that lets them receive the redirect.
    #[tokio::test]
    async fn localhost_refuses_a_port_taken_on_ipv6() {
        if !has_ipv6_loopback() {
            return;
        }
        let squatter = std::net::TcpListener::bind("[::1]:0").expect("squat ::1");
        let port = squatter.local_addr().expect("addr").port();
        let url = Url::parse(&format!("http://localhost:{port}/cb")).expect("url");
        let e = LoopbackServer::bind(&url).await.expect_err("::1 is taken");
        assert!(e.message().contains(&format!("[::1]:{port}")), "{e}");
    }

    /// I9: a request whose Host is another name (DNS rebinding) or missing is refused.
    #[tokio::test]
    async fn a_request_for_another_host_is_refused() {
        let server = bind_local().await;
        let uri = server.redirect_uri().clone();
        let client = tokio::spawn({
            let uri = uri.clone();
            async move {
                let rebound = send(
                    &uri,
                    b"GET /callback?code=c&state=s HTTP/1.1\r\nHost: evil.example:80\r\n\r\n",
                )
                .await;
                let missing = send(&uri, b"GET /callback?code=c&state=s HTTP/1.1\r\n\r\n").await;
                let ok = send(
                    &uri,
                    b"GET /callback?code=c&state=s HTTP/1.1\r\nHost: LOCALHOST:1\r\n\r\n",
                )
                .await;
                (rebound, missing, ok)
            }
        });
        let req = server.next().await.expect("the good request");
        req.finish(true, "Signed in", "").await;
        let (rebound, missing, ok) = client.await.expect("join");
        for refused in [&rebound, &missing] {
            assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
            assert!(refused.contains("Host is not this computer"), "{refused}");
        }
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    }

    /// L7: with every slot taken by connections that sent nothing, a new one still gets read:
    /// the oldest idle one is dropped for it (long before any deadline).
    #[tokio::test]
    async fn idle_connections_give_way_when_every_slot_is_taken() {
        served_behind_idle_connections(
            MAX_CONNECTIONS,
            "served while the idle connections still held every slot",
        )
        .await;
    }

    /// L7: a connection that sends no request line within the deadline is closed unanswered
    /// (paused clock: the deadline passes as soon as nothing else can run).
    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_closed_at_the_request_line_deadline() {
        let server = bind_local().await;
        let port = server.redirect_uri().port().expect("port");
        let serving = tokio::spawn(async move { server.next().await.map(|_| ()) });
        let mut silent = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let started = tokio::time::Instant::now();
        let mut answer = Vec::new();
        silent.read_to_end(&mut answer).await.expect("read");
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
        assert!(started.elapsed() >= REQUEST_LINE_DEADLINE);
        assert!(
            started.elapsed() < READ_TIMEOUT,
            "closed at the line deadline, not the read one"
        );
        serving.abort();
    }
}
