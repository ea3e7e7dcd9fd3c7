//! The CLI's redirect receiver: an HTTP listener on the loopback interface (RFC 8252 §7.3),
//! bound to 127.0.0.1 or ::1 only (§8.3) on an ephemeral port unless one is configured.
//!
//! It speaks just enough HTTP/1.1 for a browser's single GET, or its form POST (the hybrid and
//! implicit flows' `response_mode=form_post`), answers with a small page and closes each
//! connection. Anything other than a GET or POST of the redirect path gets a 404 and is otherwise
//! ignored; a POST that is not a bounded `application/x-www-form-urlencoded` body gets a one-line
//! error page and never reaches the sign-in. Connections are served concurrently (at most [`MAX_CONNECTIONS`] at once), so an idle
//! one, such as a browser's speculative preconnect, cannot hold up the real redirect.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use url::Url;

use crate::error::{Error, Result};

const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// The largest form body read: the form-post response's code, ID token and state fit many times.
pub const MAX_FORM_BODY: usize = crate::flow::MAX_RESPONSE;
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections read at once; more wait in the listen backlog until one is done.
pub const MAX_CONNECTIONS: usize = 16;

#[derive(Debug)]
pub struct LoopbackServer {
    listener: TcpListener,
    redirect_uri: Url,
    /// Connections being read. Kept across [`next`](Self::next) calls, so a redirect that
    /// arrives while nobody waits is not lost; dropping the server aborts them.
    connections: tokio::sync::Mutex<JoinSet<Option<CallbackRequest>>>,
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
    /// Binds the loopback address of `configured` (`localhost` means 127.0.0.1, so the listener
    /// never depends on name resolution). Port 0 or none means ephemeral.
    pub async fn bind(configured: &Url) -> Result<Self> {
        let ip = match configured.host() {
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        let port = configured.port().unwrap_or(0);
        let listener = TcpListener::bind(SocketAddr::new(ip, port))
            .await
            .map_err(|e| {
                Error::internal(format!(
                    "cannot listen on {ip}:{port} for the sign-in redirect: {e}"
                ))
            })?;
        let actual = listener
            .local_addr()
            .map_err(|e| Error::internal(format!("cannot read the listener address: {e}")))?;
        let mut redirect_uri = configured.clone();
        redirect_uri
            .set_port(Some(actual.port()))
            .map_err(|()| Error::internal("cannot set the redirect port"))?;
        Ok(Self {
            listener,
            redirect_uri,
            connections: tokio::sync::Mutex::new(JoinSet::new()),
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
            tokio::select! {
                accepted = self.listener.accept(), if live.len() < MAX_CONNECTIONS => {
                    let (stream, _) = accepted.map_err(|e| {
                        Error::internal(format!("the redirect listener failed: {e}"))
                    })?;
                    live.spawn(serve(stream, self.redirect_uri.clone()));
                }
                Some(done) = live.join_next() => {
                    // Err: the task panicked or was aborted; that connection is just gone.
                    if let Ok(Some(request)) = done {
                        return Ok(request);
                    }
                }
            }
        }
    }
}

/// Reads one connection: the redirect comes back to [`LoopbackServer::next`], anything else is
/// answered here.
async fn serve(mut stream: TcpStream, redirect_uri: Url) -> Option<CallbackRequest> {
    let read = tokio::time::timeout(READ_TIMEOUT, read_request(&mut stream, &redirect_uri)).await;
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

    async fn get(addr: &Url, path: &str) -> String {
        let host = addr.host_str().expect("host");
        let mut s = TcpStream::connect((host, addr.port().expect("port")))
            .await
            .expect("connect");
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    }

    #[tokio::test]
    async fn serves_the_callback_and_ignores_other_paths() {
        let server = LoopbackServer::bind(&Url::parse("http://127.0.0.1/callback").expect("url"))
            .await
            .expect("bind");
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

    async fn send(addr: &Url, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", addr.port().expect("port")))
            .await
            .expect("connect");
        s.write_all(raw).await.expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    }

    fn post(path: &str, content_type: &str, body: &str) -> Vec<u8> {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn a_form_post_is_read_and_bad_ones_are_refused_here() {
        let server = LoopbackServer::bind(&Url::parse("http://127.0.0.1/callback").expect("url"))
            .await
            .expect("bind");
        let uri = server.redirect_uri().clone();
        let client = tokio::spawn({
            let uri = uri.clone();
            async move {
                let refused = vec![
                    send(&uri, &post("/callback", "text/plain", "code=c&state=s")).await,
                    send(&uri, b"POST /callback HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\ncode=c").await,
                    send(&uri, b"POST /callback HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").await,
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

    #[tokio::test]
    async fn an_idle_connection_does_not_delay_the_redirect() {
        let server = LoopbackServer::bind(&Url::parse("http://127.0.0.1/callback").expect("url"))
            .await
            .expect("bind");
        let uri = server.redirect_uri().clone();
        let port = uri.port().expect("port");
        // Connections that send nothing, like a browser's preconnect, opened first.
        let mut idle = Vec::new();
        for _ in 0..3 {
            idle.push(TcpStream::connect(("127.0.0.1", port)).await.expect("idle"));
        }
        let client = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            get(&uri, "/callback?code=c&state=s").await
        });
        let req = tokio::time::timeout(Duration::from_secs(1), server.next())
            .await
            .expect("not held up by the idle connections")
            .expect("callback");
        assert!(req.url.ends_with("/callback?code=c&state=s"), "{}", req.url);
        req.finish(true, "Signed in", "").await;
        assert!(client.await.expect("join").starts_with("HTTP/1.1 200"));
        drop(idle);
    }

    #[tokio::test]
    async fn binds_loopback_only() {
        let server = LoopbackServer::bind(&Url::parse("http://localhost/cb").expect("url"))
            .await
            .expect("bind");
        assert!(
            server
                .listener
                .local_addr()
                .expect("addr")
                .ip()
                .is_loopback()
        );
    }
}
