//! The token endpoint (RFC 6749 §4.1.3, §5): the code redemption, and how its answers and errors
//! are read: token type (RFC 9449 §5), lifetime (§5.1), error codes (§5.2).

use std::borrow::Cow;
use std::time::Duration;

use chrono::{DateTime, Utc};
use openidconnect::core::CoreTokenResponse;
use openidconnect::{
    AuthorizationCode, ErrorResponseType, RedirectUrl, RequestTokenError, StandardErrorResponse,
};
use url::Url;

use super::transient_http;
use crate::context::{Client, Context};
use crate::dpop::DpopKey;
use crate::error::{Error, ErrorKind, Result, sanitize};
use crate::http::HttpError;
use crate::util::oauth_code;

pub(crate) type TokenError = RequestTokenError<
    HttpError,
    openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
>;

/// Access tokens whose lifetime the provider does not state are treated as living this long.
pub(crate) const DEFAULT_ACCESS_TOKEN_LIFETIME: chrono::Duration = chrono::Duration::seconds(300);
/// Longer stated lifetimes are clamped to this: a session still refreshes at least yearly, and no
/// `expires_in` can overflow date arithmetic.
pub(crate) const MAX_ACCESS_TOKEN_LIFETIME: chrono::Duration = chrono::Duration::days(366);

/// RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.5): the code for tokens.
pub(crate) async fn redeem(
    ctx: &Context,
    client: &Client,
    code: AuthorizationCode,
    verifier: openidconnect::PkceCodeVerifier,
    redirect_uri: &Url,
    dpop: Option<&DpopKey>,
) -> Result<CoreTokenResponse> {
    // With DPoP, the redemption carries a proof of the key the request named (RFC 9449 §5).
    redeem_with(
        client,
        code,
        verifier,
        redirect_uri,
        &ctx.proof_client(dpop),
    )
    .await
}

/// [`redeem`] over `http`: oauth2's request and its parsing of the answer, with the
/// errors mapped by [`token_error`]. The fuzzer (`tests/fuzz`) gives it a fake HTTP client.
pub(crate) async fn redeem_with<'c, C>(
    client: &'c Client,
    code: AuthorizationCode,
    verifier: openidconnect::PkceCodeVerifier,
    redirect_uri: &Url,
    http: &'c C,
) -> Result<CoreTokenResponse>
where
    C: openidconnect::AsyncHttpClient<'c, Error = HttpError>,
{
    client
        .exchange_code(code)
        .map_err(|e| Error::new(ErrorKind::ProviderInvalid, e.to_string()))?
        .set_pkce_verifier(verifier)
        .set_redirect_uri(Cow::Owned(RedirectUrl::from_url(redirect_uri.clone())))
        .request_async(http)
        .await
        .map_err(|e| token_error(&e).context("redeeming the sign-in code"))
}

/// When an access token expires: `now + expires_in` (RFC 6749 §5.1), else the JWT's `exp`, else
/// [`DEFAULT_ACCESS_TOKEN_LIFETIME`]. The lifetime is clamped to `0..=MAX_ACCESS_TOKEN_LIFETIME`
/// with checked arithmetic: `expires_in` is an arbitrary provider-chosen number, and chrono's
/// `Add` panics on overflow.
pub(crate) fn access_token_expiry(
    now: DateTime<Utc>,
    expires_in: Option<Duration>,
    jwt_exp: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    let lifetime = match (expires_in, jwt_exp) {
        // Too large for chrono means far beyond the clamp anyway.
        (Some(d), _) => chrono::Duration::from_std(d).unwrap_or(MAX_ACCESS_TOKEN_LIFETIME),
        (None, Some(exp)) => exp.signed_duration_since(now),
        (None, None) => DEFAULT_ACCESS_TOKEN_LIFETIME,
    };
    let lifetime = lifetime.clamp(chrono::Duration::zero(), MAX_ACCESS_TOKEN_LIFETIME);
    now.checked_add_signed(lifetime).unwrap_or(now)
}

/// RFC 6749 §7.1: Bearer (RFC 6750), or DPoP (RFC 9449 §5) when the request carried a proof;
/// types are case-insensitive. Whether the token is DPoP-bound.
pub(crate) fn check_token_type(token_type: &str, proof_sent: bool) -> Result<bool> {
    if token_type.eq_ignore_ascii_case("bearer") {
        return Ok(false);
    }
    if token_type.eq_ignore_ascii_case("dpop") {
        if proof_sent {
            return Ok(true);
        }
        return Err(Error::new(
            ErrorKind::ProviderInvalid,
            "the provider issued a DPoP token to a request without a DPoP proof (RFC 9449 §5), so it cannot be used; sign in again, or set dpop to always",
        ));
    }
    Err(Error::new(
        ErrorKind::ProviderInvalid,
        format!(
            "the provider issued a `{}` token; only Bearer and DPoP are supported",
            sanitize(token_type)
        ),
    ))
}

/// Maps a token-endpoint failure. Only the provider's `error`/`error_description` are kept; the
/// body itself is never echoed, since a malformed success response could contain tokens.
pub(crate) fn token_error(e: &TokenError) -> Error {
    token_error_with(e, |_, _, _| None)
}

/// [`token_error`] for any grant's error codes (RFC 6749 §5.2, RFC 8628 §3.5): `special` maps
/// the codes that grant gives a meaning of its own; every other answer is mapped here.
pub(crate) fn token_error_with<T>(
    e: &RequestTokenError<HttpError, StandardErrorResponse<T>>,
    special: impl FnOnce(&T, &str, Option<&str>) -> Option<Error>,
) -> Error
where
    T: ErrorResponseType + std::fmt::Display + serde::Serialize,
{
    match e {
        RequestTokenError::ServerResponse(r) => {
            let code = oauth_code(r.error());
            let description = r.error_description().map(String::as_str);
            special(r.error(), &code, description).unwrap_or_else(|| {
                Error::oauth(
                    ErrorKind::ProviderError,
                    format!("the provider answered `{}`", sanitize(&code)),
                    &code,
                    description,
                )
            })
        }
        RequestTokenError::Request(h @ HttpError::DpopNonce { .. }) => {
            transient_http("the token request was refused", h)
        }
        RequestTokenError::Request(h) => transient_http("the provider could not be reached", h),
        RequestTokenError::Parse(p, _) => Error::new(
            ErrorKind::ProviderInvalid,
            format!(
                "the provider's token response is malformed (at `{}`)",
                sanitize(&p.path().to_string())
            ),
        ),
        RequestTokenError::Other(s) => Error::new(
            ErrorKind::ProviderInvalid,
            format!("the provider's token response is invalid: {}", sanitize(s)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[test]
    fn huge_expires_in_is_clamped_not_a_panic() {
        for secs in [10_000_000_000_000, u64::MAX / 1000, u64::MAX] {
            let at = access_token_expiry(now(), Some(Duration::from_secs(secs)), None);
            assert_eq!(at, now() + MAX_ACCESS_TOKEN_LIFETIME, "{secs}");
        }
        let at = access_token_expiry(now(), Some(Duration::from_secs(3600)), None);
        assert_eq!(at, now() + chrono::Duration::hours(1));
    }

    #[test]
    fn token_type_error_quotes_the_type_sanitized() {
        assert!(!check_token_type("bearer", false).expect("bearer"));
        assert!(!check_token_type("Bearer", true).expect("bearer with a proof"));
        let e = check_token_type("DPoP\u{1b}[2J\u{9b}1;1H\u{7}\nx", true).expect_err("not bearer");
        assert_eq!(
            e.to_string(),
            "the provider issued a `DPoP x` token; only Bearer and DPoP are supported"
        );
    }

    #[test]
    fn a_dpop_token_is_accepted_only_after_a_proof() {
        assert!(check_token_type("DPoP", true).expect("dpop"));
        assert!(check_token_type("dpop", true).expect("case-insensitive"));
        let e = check_token_type("DPoP", false).expect_err("no proof was sent");
        assert!(e.message().contains("without a DPoP proof"), "{e}");
    }

    #[test]
    fn jwt_exp_is_clamped_too() {
        let far = DateTime::from_timestamp(253_402_300_799, 0).expect("year 9999");
        assert_eq!(
            access_token_expiry(now(), None, Some(far)),
            now() + MAX_ACCESS_TOKEN_LIFETIME
        );
        let past = now() - chrono::Duration::days(1);
        assert_eq!(access_token_expiry(now(), None, Some(past)), now());
        assert_eq!(
            access_token_expiry(now(), None, None),
            now() + DEFAULT_ACCESS_TOKEN_LIFETIME
        );
    }
}
