//! DPoP, sender-constrained tokens (RFC 9449).
//!
//! A sign-in that uses DPoP makes a fresh P-256 key ([`DpopKey`]). The authorization request (or
//! the pushed one) names it by its RFC 7638 thumbprint (`dpop_jkt`, §10); every token request
//! (code, refresh, device polling) and every userinfo call then carries a proof signed with it
//! (§4), made per request by [`ProofClient`], which wraps the core's HTTP client. The key lives
//! with the session in the keychain, and beside its fresh token in the token cache (see
//! [`token_cache`](crate::token_cache)); nowhere else. Its `Debug` shows only the thumbprint.
//!
//! The elliptic-curve maths and ECDSA are RustCrypto's `p256`; only the JWS compact form
//! (`base64url(header).base64url(claims).base64url(r || s)`, RFC 7515 §7.1, RFC 7518 §3.4) is
//! assembled here.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use openidconnect::http::{HeaderValue, StatusCode, header};
use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::Generate as _;
use sha2::{Digest as _, Sha256};

use crate::clock::Clock;
use crate::error::{Error, Result, sanitize};
use crate::http::{HttpClient, HttpError};

/// The one proof algorithm used: ES256 (RFC 9449 §4.2 leaves the choice to the client among
/// what the server lists in `dpop_signing_alg_values_supported`).
pub(crate) const ALG: &str = "ES256";

/// Random bytes in a proof's `jti`: 128 bits, above the 96 RFC 9449 §4.2 asks for.
const JTI_BYTES: usize = 16;

/// The longest `DPoP-Nonce` kept: the server's value goes into every later proof.
const MAX_NONCE: usize = 512;

/// A DPoP key pair. The private half is only ever serialized into the stored session (see
/// [`secret`](Self::secret)); `Debug` shows the public thumbprint.
#[derive(Clone)]
pub(crate) struct DpopKey {
    key: SigningKey,
    /// The public JWK with only the RFC 7638 members, in their lexicographic order.
    jwk: serde_json::Value,
    jkt: String,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("jkt", &self.jkt)
            .field("private", &"[redacted]")
            .finish()
    }
}

impl DpopKey {
    /// A fresh key from the operating system's random number generator.
    pub(crate) fn generate() -> Result<Self> {
        let key = SigningKey::try_generate().map_err(|e| {
            Error::internal(format!(
                "cannot make a DPoP key: the system's random number generator failed ({e})"
            ))
        })?;
        Ok(Self::from_key(key))
    }

    fn from_key(key: SigningKey) -> Self {
        let point = key.verifying_key().to_sec1_point(false);
        let coord = |c: Option<&[u8]>| B64.encode(c.unwrap_or_default());
        let x = coord(point.x().map(|a| a.as_slice()));
        let y = coord(point.y().map(|a| a.as_slice()));
        // RFC 7638 §3.2: the required members only, in lexicographic order, no whitespace;
        // written out, so no JSON map's ordering can change it (base64url needs no escaping).
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let jkt = B64.encode(Sha256::digest(canonical.as_bytes()));
        let jwk = serde_json::json!({ "crv": "P-256", "kty": "EC", "x": x, "y": y });
        Self { key, jwk, jkt }
    }

    /// The key as stored with the session: base64url of the private scalar. For the keychain
    /// only.
    pub(crate) fn secret(&self) -> String {
        B64.encode(self.key.to_bytes())
    }

    /// The key [`secret`](Self::secret) wrote, or `None` if it is not one.
    pub(crate) fn from_secret(text: &str) -> Option<Self> {
        let bytes = B64.decode(text).ok()?;
        SigningKey::from_slice(&bytes).ok().map(Self::from_key)
    }

    /// The JWK SHA-256 thumbprint (RFC 7638), base64url: `dpop_jkt` and the `cnf.jkt` a bound
    /// token carries (RFC 9449 §6.1).
    pub(crate) fn thumbprint(&self) -> &str {
        &self.jkt
    }

    /// A DPoP proof JWT (RFC 9449 §4.2) for one request: `method` and `url` (query and fragment
    /// are dropped for `htu`), `ath` when `access_token` is presented with it (§4.2, §7), and
    /// the server's `nonce` once it sent one (§8, §9).
    pub(crate) fn proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let htu = htu(url).ok_or_else(|| {
            Error::config(format!(
                "`{}` is not an http or https URL, so no DPoP proof can be made for it",
                sanitize(url)
            ))
        })?;
        let mut jti = [0u8; JTI_BYTES];
        getrandom::fill(&mut jti).map_err(|e| {
            Error::internal(format!(
                "cannot make a DPoP proof: the system's random number generator failed ({e})"
            ))
        })?;
        let header = serde_json::json!({ "typ": "dpop+jwt", "alg": ALG, "jwk": self.jwk });
        let mut claims = serde_json::json!({
            "jti": B64.encode(jti),
            "htm": method,
            "htu": htu,
            "iat": now.timestamp(),
        });
        if let Some(token) = access_token {
            claims["ath"] = ath(token).into();
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        // ECDSA P-256 with SHA-256; the JWS signature is r || s, 32 bytes each (RFC 7518 §3.4).
        let signature: Signature = self.key.sign(signing_input.as_bytes());
        Ok(format!(
            "{signing_input}.{}",
            B64.encode(signature.to_bytes())
        ))
    }
}

impl serde::Serialize for DpopKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.secret())
    }
}

impl<'de> serde::Deserialize<'de> for DpopKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::from_secret(&text).ok_or_else(|| serde::de::Error::custom("not a P-256 key"))
    }
}

/// RFC 9449 §4.2: `htu` is the target URI without query and fragment.
pub(crate) fn htu(url: &str) -> Option<String> {
    let mut url = url::Url::parse(url).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    // Never credentials in a proof (`headers` refuses such URLs anyway).
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Some(url.into())
}

/// RFC 9449 §4.2: `ath` is base64url(SHA-256(ASCII access token)).
pub(crate) fn ath(access_token: &str) -> String {
    B64.encode(Sha256::digest(access_token.as_bytes()))
}

/// Whether a request method is an HTTP token (RFC 9110 §9.1, §5.6.2), as `htm` must match it.
pub(crate) fn valid_method(method: &str) -> bool {
    !method.is_empty()
        && method.len() <= 32
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The core's HTTP client, plus a DPoP proof on each request when a key is given: what token
/// requests and userinfo calls go through. With `access_token`, the request presents it with
/// the `DPoP` scheme (RFC 9449 §7.1) and the proof carries its `ath`. A `DPoP-Nonce` from the
/// server is used in every later proof of this client; a `use_dpop_nonce` answer (§8: a 400
/// from the token endpoint; §9: a 401 with `WWW-Authenticate: DPoP error="use_dpop_nonce"`) is
/// retried once with the new nonce, and a second one is [`HttpError::DpopNonce`].
pub(crate) struct ProofClient<'a> {
    http: &'a HttpClient,
    key: Option<&'a DpopKey>,
    access_token: Option<&'a str>,
    clock: Arc<dyn Clock>,
    nonce: Mutex<Option<String>>,
}

impl fmt::Debug for ProofClient<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProofClient")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl<'a> ProofClient<'a> {
    pub(crate) fn new(
        http: &'a HttpClient,
        key: Option<&'a DpopKey>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            http,
            key,
            access_token: None,
            clock,
            nonce: Mutex::new(None),
        }
    }

    /// Presents `access_token` with each request (userinfo), as `DPoP` when there is a key.
    pub(crate) fn presenting(mut self, access_token: &'a str) -> Self {
        self.access_token = Some(access_token);
        self
    }

    fn nonce(&self) -> Option<String> {
        self.nonce.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Keeps the server's latest `DPoP-Nonce`; says whether it is a new one.
    fn remember_nonce(&self, response: &HttpResponse) -> bool {
        let Some(value) = response
            .headers()
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= MAX_NONCE)
        else {
            return false;
        };
        let mut slot = self.nonce.lock().unwrap_or_else(|p| p.into_inner());
        let new = slot.as_deref() != Some(value);
        *slot = Some(value.to_owned());
        new
    }

    async fn send(&self, request: HttpRequest) -> std::result::Result<HttpResponse, HttpError> {
        let Some(key) = self.key else {
            return self.http.call(request).await;
        };
        let host = crate::http::host_of(&request.uri().to_string());
        for attempt in 0..2 {
            let mut request = request.clone();
            let proof = key
                .proof(
                    request.method().as_str(),
                    &request.uri().to_string(),
                    self.access_token,
                    self.nonce().as_deref(),
                    self.clock.now(),
                )
                .map_err(|e| HttpError::Other {
                    host: host.clone(),
                    reason: e.to_string(),
                })?;
            let invalid = |_| HttpError::Other {
                host: host.clone(),
                reason: "the DPoP header could not be built".into(),
            };
            let headers = request.headers_mut();
            headers.insert("dpop", HeaderValue::from_str(&proof).map_err(invalid)?);
            if let Some(token) = self.access_token {
                let mut value = HeaderValue::from_str(&format!("DPoP {token}")).map_err(invalid)?;
                value.set_sensitive(true);
                headers.insert(header::AUTHORIZATION, value);
            }
            let response = self.http.call(request).await?;
            let new_nonce = self.remember_nonce(&response);
            if !asks_for_nonce(&response) {
                return Ok(response);
            }
            if attempt == 0 && new_nonce {
                tracing::debug!("the server asked for a DPoP nonce; retrying once with it");
                continue;
            }
            break;
        }
        Err(HttpError::DpopNonce { host })
    }
}

/// `use_dpop_nonce`: from an authorization server as a 400 with that `error` (RFC 9449 §8), from
/// a resource server as a 401 whose `WWW-Authenticate` says so (§9).
fn asks_for_nonce(response: &HttpResponse) -> bool {
    match response.status() {
        StatusCode::BAD_REQUEST => serde_json::from_slice::<serde_json::Value>(response.body())
            .ok()
            .and_then(|v| v.get("error")?.as_str().map(|e| e == "use_dpop_nonce"))
            .unwrap_or(false),
        StatusCode::UNAUTHORIZED => {
            let values = response
                .headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok());
            crate::oauth::challenge::parse(values)
                .iter()
                .any(|c| c.scheme == "dpop" && c.param("error") == Some("use_dpop_nonce"))
        }
        _ => false,
    }
}

impl<'c> AsyncHttpClient<'c> for ProofClient<'_> {
    type Error = HttpError;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

/// The header lines for calling a resource with the current access token (`latchkey headers`).
/// `Debug` is redacted: both lines are credentials.
#[non_exhaustive]
pub struct ResourceHeaders {
    /// `Bearer <token>` or `DPoP <token>`, the value of `Authorization`.
    pub authorization: String,
    /// The `DPoP` header's value (a proof for that method and URL, with `ath`), for a DPoP-bound
    /// token.
    pub dpop: Option<String>,
}

impl fmt::Debug for ResourceHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceHeaders")
            .field("authorization", &"[redacted]")
            .field("dpop", &self.dpop.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier as _;

    fn part(jwt: &str, i: usize) -> serde_json::Value {
        let seg = jwt.split('.').nth(i).expect("segment");
        serde_json::from_slice(&B64.decode(seg).expect("base64url")).expect("json")
    }

    #[test]
    fn htu_is_the_url_without_query_fragment_or_credentials() {
        assert_eq!(
            htu("https://me:s3cret@api.example.com/v1/x?q=1#f").as_deref(),
            Some("https://api.example.com/v1/x")
        );
        assert_eq!(htu("ftp://api.example.com/x"), None);
    }

    #[test]
    fn the_thumbprint_is_rfc7638_over_the_sorted_required_members() {
        // RFC 7638 §3.1's procedure on a key whose JWK we build independently here.
        let key = DpopKey::generate().expect("key");
        let point = key.key.verifying_key().to_sec1_point(false);
        let x = B64.encode(point.x().expect("x"));
        let y = B64.encode(point.y().expect("y"));
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        assert_eq!(key.jwk["x"], x.as_str());
        assert_eq!(key.jwk["y"], y.as_str());
        assert_eq!(
            key.thumbprint(),
            B64.encode(Sha256::digest(canonical.as_bytes()))
        );
        assert_eq!(key.thumbprint().len(), 43);
    }

    #[test]
    fn a_proof_verifies_with_the_public_key_in_its_header_and_has_every_claim() {
        let key = DpopKey::generate().expect("key");
        let now = DateTime::from_timestamp(1_700_000_000, 0).expect("time");
        let jwt = key
            .proof(
                "POST",
                "https://as.example/token?x=1#f",
                Some("AT-1"),
                Some("n-1"),
                now,
            )
            .expect("proof");
        let header = part(&jwt, 0);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["jwk"]["kty"], "EC");
        assert!(
            header["jwk"].get("d").is_none(),
            "no private part: {header}"
        );
        let claims = part(&jwt, 1);
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], "https://as.example/token");
        assert_eq!(claims["iat"], 1_700_000_000);
        assert_eq!(claims["nonce"], "n-1");
        assert_eq!(claims["ath"], B64.encode(Sha256::digest(b"AT-1")));
        assert!(
            B64.decode(claims["jti"].as_str().expect("jti"))
                .expect("b64")
                .len()
                >= 12
        );
        // Verified with a key rebuilt from the header's JWK alone.
        let coord = |k: &str| {
            B64.decode(header["jwk"][k].as_str().expect("c"))
                .expect("b64")
        };
        let mut sec1 = vec![4u8];
        sec1.extend(coord("x"));
        sec1.extend(coord("y"));
        let public = VerifyingKey::from_sec1_bytes(&sec1).expect("public key");
        let (input, sig) = jwt.rsplit_once('.').expect("jws");
        let sig = Signature::from_slice(&B64.decode(sig).expect("b64")).expect("r||s");
        assert!(public.verify(input.as_bytes(), &sig).is_ok());
        assert!(public.verify(b"tampered", &sig).is_err());
    }

    #[test]
    fn each_proof_has_its_own_jti_and_no_ath_or_nonce_unless_given() {
        let key = DpopKey::generate().expect("key");
        let now = Utc::now();
        let a = part(
            &key.proof("GET", "http://127.0.0.1:1/me", None, None, now)
                .expect("a"),
            1,
        );
        let b = part(
            &key.proof("GET", "http://127.0.0.1:1/me", None, None, now)
                .expect("b"),
            1,
        );
        assert_ne!(a["jti"], b["jti"]);
        assert!(a.get("ath").is_none() && a.get("nonce").is_none(), "{a}");
        assert!(key.proof("GET", "ftp://x/y", None, None, now).is_err());
    }

    #[test]
    fn the_stored_key_round_trips_and_debug_hides_it() {
        let key = DpopKey::generate().expect("key");
        let secret = key.secret();
        let back = DpopKey::from_secret(&secret).expect("parses");
        assert_eq!(back.thumbprint(), key.thumbprint());
        let shown = format!("{key:?}");
        assert!(!shown.contains(&secret), "{shown}");
        assert!(shown.contains(key.thumbprint()));
        assert!(DpopKey::from_secret("not a key").is_none());
        assert!(DpopKey::from_secret(&B64.encode([0u8; 32])).is_none());
    }

    #[test]
    fn methods_must_be_http_tokens() {
        assert!(valid_method("GET") && valid_method("PATCH") && valid_method("M-SEARCH"));
        assert!(!valid_method("") && !valid_method("GET /") && !valid_method("G\nET"));
    }

    #[test]
    fn use_dpop_nonce_is_read_from_either_kind_of_server() {
        let response = |status: u16, www: Option<&str>, body: &str| {
            let mut r = HttpResponse::new(body.as_bytes().to_vec());
            *r.status_mut() = StatusCode::from_u16(status).expect("status");
            if let Some(w) = www {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_str(w).expect("h"),
                );
            }
            r
        };
        assert!(asks_for_nonce(&response(
            400,
            None,
            r#"{"error":"use_dpop_nonce"}"#
        )));
        assert!(!asks_for_nonce(&response(
            400,
            None,
            r#"{"error":"invalid_grant"}"#
        )));
        assert!(asks_for_nonce(&response(
            401,
            Some(r#"DPoP error="use_dpop_nonce", error_description="x""#),
            ""
        )));
        assert!(!asks_for_nonce(&response(
            401,
            Some(r#"DPoP error="invalid_token""#),
            ""
        )));
        // Beside a Bearer challenge in one value, and as a token: still the DPoP challenge's.
        assert!(asks_for_nonce(&response(
            401,
            Some(r#"Bearer realm="api", DPoP algs="ES256", error=use_dpop_nonce"#),
            ""
        )));
        // Only quoted inside another parameter, or in the Bearer challenge: not asked.
        assert!(!asks_for_nonce(&response(
            401,
            Some(r#"DPoP error="invalid_token", error_description="error=\"use_dpop_nonce\"""#),
            ""
        )));
        assert!(!asks_for_nonce(&response(
            401,
            Some(r#"Bearer error="use_dpop_nonce""#),
            ""
        )));
        assert!(!asks_for_nonce(&response(
            200,
            None,
            r#"{"error":"use_dpop_nonce"}"#
        )));
    }
}
