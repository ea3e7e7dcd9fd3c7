//! The user's picture (OIDC Core §5.1 `picture`): fetched from a checked address, and kept with
//! the session so a start-up shows it without the network.

use openidconnect::AsyncHttpClient as _;

use super::{CachedPicture, Identity, repo};
use crate::context::Context;
use crate::error::{Error, ErrorKind, Result, sanitize};
use crate::http::HttpClient;
use crate::oauth::transient_http;
use crate::picture::{MAX_PICTURE, Picture};

/// Fetches the user's picture when their claims name one (OIDC Core §5.1), so a UI can show
/// it without loading remote content. A plain GET with no credentials, with the provider
/// calls' limits (timeouts, no redirects, size cap). The URL comes from the provider, so a
/// release build fetches only https from a host whose every address is public, and connects
/// only to those checked addresses, or through `HTTPS_PROXY` when one applies (see
/// [`HttpClient::pinned`]); a debug build also allows loopback, for the dev provider.
/// `Ok(None)`: no `picture`.
///
/// The picture last fetched is kept with the session in the keychain (up to
/// [`MAX_CACHED_PICTURE`](crate::MAX_CACHED_PICTURE) bytes) and answered from there
/// while the claims name the same URL, so a start-up shows it without waiting for the
/// network.
pub(crate) async fn picture(ctx: &Context, identity: &Identity) -> Result<Option<Picture>> {
    let Some(claim) = identity.picture.as_deref() else {
        return Ok(None);
    };
    if let Some(cached) = cached_picture_of(ctx, claim).await {
        return Ok(Some(cached));
    }
    fetch_picture(ctx, identity).await
}

/// [`picture`] from the network now, whatever is kept (and keeps the new
/// one): for a UI that offers to reload it, and for tests of the fetch itself.
pub(crate) async fn fetch_picture(ctx: &Context, identity: &Identity) -> Result<Option<Picture>> {
    let Some(claim) = identity.picture.as_deref() else {
        return Ok(None);
    };
    let picture = download_picture(ctx, claim).await?;
    cache_picture(ctx, claim, &picture).await;
    Ok(Some(picture))
}

pub(crate) async fn cached_picture_of(ctx: &Context, claim: &str) -> Option<Picture> {
    let session = repo::load(ctx).await.ok()??;
    let cached = session.picture.as_ref().filter(|p| p.url == claim)?;
    cached.picture()
}

/// Keeps a fetched picture with the session, when the session still names it. Best effort.
pub(crate) async fn cache_picture(ctx: &Context, claim: &str, picture: &Picture) {
    let Some(cached) = CachedPicture::new(claim, picture) else {
        tracing::debug!("the picture is too large to keep with the session");
        return;
    };
    let result = async {
        let _exclusive = repo::exclusive(ctx).await?;
        let Some(mut session) = repo::load(ctx).await? else {
            return Ok(());
        };
        if session.claims.picture.as_deref() != Some(claim)
            || session.picture.as_ref() == Some(&cached)
        {
            return Ok(());
        }
        session.picture = Some(cached);
        ctx.vault.save(&ctx.session_name, session.to_bytes()).await
    }
    .await;
    if let Err(e) = result {
        tracing::info!("the picture was not kept with the session: {e}");
    }
}

pub(crate) async fn download_picture(ctx: &Context, claim: &str) -> Result<Picture> {
    use openidconnect::http::{Method, Request, StatusCode, header};
    let allow_loopback = cfg!(debug_assertions);
    let url = crate::picture::picture_url(claim, allow_loopback).map_err(|why| {
        Error::new(
            ErrorKind::ProviderInvalid,
            format!("picture: {}", sanitize(&why)),
        )
    })?;
    let addrs = crate::picture::resolve(&url, allow_loopback).await?;
    let host = url.host_str().unwrap_or_default();
    let http = HttpClient::pinned(ctx.ports.identity.user_agent, host, &addrs)
        .map_err(|e| Error::internal(format!("picture: {e}")))?;
    let request = Request::builder()
        .method(Method::GET)
        .uri(url.as_str())
        .header(
            header::ACCEPT,
            "image/png, image/jpeg, image/gif, image/webp",
        )
        .body(Vec::new())
        .map_err(|e| Error::new(ErrorKind::ProviderInvalid, format!("picture: {e}")))?;
    let response = http
        .call(request)
        .await
        .map_err(|e| transient_http("fetching the picture", &e))?;
    if response.status() != StatusCode::OK {
        return Err(Error::new(
            ErrorKind::ProviderError,
            format!("picture: HTTP {}", response.status().as_u16()),
        ));
    }
    Picture::from_bytes(response.into_body()).ok_or_else(|| {
        Error::new(
            ErrorKind::ProviderInvalid,
            format!("picture: not a PNG, JPEG, GIF or WebP image of at most {MAX_PICTURE} bytes"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    /// The picture stored with the session, without any network call: `None` when there is
    /// none, or when it is not the one the claims name now.
    async fn cached_picture(ctx: &Context) -> Result<Option<Picture>> {
        let Some(session) = repo::load(ctx).await? else {
            return Ok(None);
        };
        Ok(session.picture.as_ref().and_then(|p| {
            (Some(&p.url) == session.claims.picture.as_ref())
                .then(|| p.picture())
                .flatten()
        }))
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
            assert!(cached_picture(&latchkey.ctx).await.expect("read").is_none());
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
            let cached = cached_picture(&latchkey.ctx).await.expect("read");
            assert_eq!(cached.map(|p| p.media_type()), Some("image/png"));

            // A new picture URL: the old one is not shown for it, and the new one is fetched.
            let mut stored = repo::load(&latchkey.ctx)
                .await
                .expect("load")
                .expect("session");
            assert!(stored.picture.is_some());
            stored.claims.picture = Some(format!("{}/b.png", stub.base));
            put(&latchkey, &stored).await;
            assert!(cached_picture(&latchkey.ctx).await.expect("read").is_none());
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
}
