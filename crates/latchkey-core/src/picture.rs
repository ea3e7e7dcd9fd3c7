//! The signed-in user's picture (the `picture` claim, OIDC Core §5.1), fetched here so a UI can
//! show it without loading remote content: a webview whose CSP is `img-src 'self' data:` gets a
//! `data:` URL. Only raster images, recognised by their first bytes rather than by the server's
//! `Content-Type`; SVG, which can carry script, is refused.

use std::fmt;

use url::Url;

use crate::config::is_loopback_host;

/// Largest picture accepted. Profile pictures are thumbnails; anything bigger is not one.
pub const MAX_PICTURE: usize = 512 * 1024;

/// A raster image in memory.
#[derive(Clone, PartialEq, Eq)]
pub struct Picture {
    media_type: &'static str,
    bytes: Vec<u8>,
}

impl fmt::Debug for Picture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Picture")
            .field("media_type", &self.media_type)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl Picture {
    /// PNG, JPEG, GIF or WebP up to [`MAX_PICTURE`] bytes; anything else is `None`.
    pub fn from_bytes(bytes: Vec<u8>) -> Option<Self> {
        if bytes.len() > MAX_PICTURE {
            return None;
        }
        let media_type = sniff(&bytes)?;
        Some(Self { media_type, bytes })
    }

    pub fn media_type(&self) -> &'static str {
        self.media_type
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// `data:<type>;base64,...` (RFC 2397).
    pub fn data_url(&self) -> String {
        use base64::Engine as _;
        format!(
            "data:{};base64,{}",
            self.media_type,
            base64::engine::general_purpose::STANDARD.encode(&self.bytes)
        )
    }
}

/// The image type from its signature bytes.
fn sniff(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if b.starts_with(b"\xff\xd8\xff") {
        Some("image/jpeg")
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if b.len() >= 12 && b.starts_with(b"RIFF") && &b[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// The claim as a URL worth fetching: https, or http to a loopback host (as for issuers), with
/// no credentials in it.
pub(crate) fn picture_url(claim: &str) -> Result<Url, String> {
    let url = Url::parse(claim).map_err(|e| format!("not a URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(&url) => {}
        other => return Err(format!("{other}: URLs are not fetched; only https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("it carries credentials".into());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn recognises_raster_images_by_their_bytes() {
        assert_eq!(
            Picture::from_bytes(PNG.to_vec()).map(|p| p.media_type()),
            Some("image/png")
        );
        assert_eq!(sniff(b"\xff\xd8\xff\xe0\0\x10JFIF"), Some("image/jpeg"));
        assert_eq!(sniff(b"GIF89a\x01\0"), Some("image/gif"));
        assert_eq!(sniff(b"RIFF\x24\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"RIFF\x24\0\0\0WAVEfmt "), None);
        assert_eq!(sniff(b"<svg xmlns='http://www.w3.org/2000/svg'>"), None);
        assert_eq!(sniff(b"<html>"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn refuses_oversized_pictures() {
        let mut big = PNG.to_vec();
        big.resize(MAX_PICTURE + 1, 0);
        assert!(Picture::from_bytes(big).is_none());
    }

    #[test]
    fn data_url_and_debug() {
        let p = Picture::from_bytes(PNG.to_vec()).expect("png");
        assert_eq!(
            p.data_url(),
            "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="
        );
        assert_eq!(
            format!("{p:?}"),
            r#"Picture { media_type: "image/png", len: 16 }"#
        );
    }

    #[test]
    fn only_https_or_loopback_http_without_credentials() {
        assert!(picture_url("https://cdn.example.com/a.png").is_ok());
        assert!(picture_url("http://127.0.0.1:8080/a.png").is_ok());
        assert!(picture_url("http://example.com/a.png").is_err());
        assert!(picture_url("file:///etc/passwd").is_err());
        assert!(picture_url("data:image/png;base64,AAAA").is_err());
        assert!(picture_url("https://user:pw@example.com/a.png").is_err());
        assert!(picture_url("not a url").is_err());
    }
}
