//! The CLI's redirect receiver: an HTTP listener on the loopback interface (RFC 8252 §7.3),
//! bound to 127.0.0.1 or ::1 only (§8.3) on an ephemeral port unless one is configured.
//!
//! It speaks just enough HTTP/1.1 for a browser's single GET, answers with a small page and closes
//! each connection. Anything other than a GET of the redirect path gets a 404 and is otherwise
//! ignored.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

use crate::error::{Error, Result};

const MAX_REQUEST_HEAD: usize = 16 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct LoopbackServer {
    listener: TcpListener,
    redirect_uri: Url,
}

/// A request to the redirect path, waiting for its answer.
#[derive(Debug)]
pub struct CallbackRequest {
    stream: TcpStream,
    /// The full redirect URL as the browser sent it.
    pub url: String,
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
        })
    }

    /// The redirect URI with the bound port, to send in the authorization request.
    pub fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }

    /// Waits for the next GET of the redirect path. Other requests are answered with 404.
    pub async fn next(&self) -> Result<CallbackRequest> {
        loop {
            let (mut stream, _) = self
                .listener
                .accept()
                .await
                .map_err(|e| Error::internal(format!("the redirect listener failed: {e}")))?;
            let Ok(Ok(Some(target))) =
                tokio::time::timeout(READ_TIMEOUT, read_request_target(&mut stream)).await
            else {
                let _ = respond(&mut stream, 400, "Bad request", "").await;
                continue;
            };
            let path = target.split('?').next().unwrap_or_default();
            if path != self.redirect_uri.path() {
                let _ = respond(&mut stream, 404, "Not found", "").await;
                continue;
            }
            let mut url = self.redirect_uri.clone();
            url.set_query(target.split_once('?').map(|(_, q)| q));
            return Ok(CallbackRequest {
                stream,
                url: url.to_string(),
            });
        }
    }
}

impl CallbackRequest {
    /// Answers the browser with a small page and closes the connection.
    pub async fn finish(mut self, ok: bool, title: &str, detail: &str) {
        let status = if ok { 200 } else { 400 };
        let _ = respond(&mut self.stream, status, title, detail).await;
    }
}

/// Reads the request head and returns the target of a GET, or `None` for other methods.
async fn read_request_target(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > MAX_REQUEST_HEAD {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or_default().split(' ');
    match (parts.next(), parts.next()) {
        (Some("GET"), Some(target)) if target.starts_with('/') => Ok(Some(target.to_owned())),
        _ => Ok(None),
    }
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
