//! ID token validation (OIDC Core §3.1.3.7) and the refresh rules of §12.2.
//!
//! Signature, `iss`, `aud`, `exp` and `nonce` are checked by `openidconnect`'s verifier, configured
//! here with our clock and algorithm list; this module adds the steps it leaves to the client:
//! `azp`, `iat`, `at_hash`, the front channel's `c_hash` (§3.3.2.11) and the refresh comparisons.

use chrono::{DateTime, Duration, Utc};
use openidconnect::core::{
    CoreIdToken, CoreIdTokenClaims, CoreIdTokenVerifier, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthorizationCode, AuthorizationCodeHash,
    ClaimsVerificationError, ClientId, Nonce, SignatureVerificationError,
};

use crate::discovery::Provider;
use crate::error::{Error, ErrorKind, Result, sanitize};
use crate::session::Claims;

/// How far in the future `iat` may be before we suspect the provider's or our clock.
pub const MAX_CLOCK_SKEW: Duration = Duration::seconds(120);

/// Asymmetric algorithms only. `none` and the HMAC family are never accepted: a public client has
/// no secret to verify an HMAC with, and `none` proves nothing.
const SUPPORTED_ALGS: &[CoreJwsSigningAlgorithm] = &[
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// How the `nonce` claim is checked.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NonceCheck<'a> {
    /// After an authorization code exchange: must equal the one we sent (§3.1.3.7 step 11).
    Equals(&'a Nonce),
    /// After a refresh: §12.2 says it SHOULD NOT be present; we do not reject one.
    Refresh,
    /// None was sent (the device grant, RFC 8628, has no nonce): step 11 does not apply.
    NotSent,
}

/// Why an ID token was refused, by the step of OIDC Core §3.1.3.7 (and §3.3.2.11, §12.2) that
/// refused it. Each variant carries the verifier's detail, for the message only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VerifyError {
    /// Step 6: signed with a key the provider does not publish (a JWKS refetch may find it).
    UnknownKey,
    /// Steps 6-8: a bad signature, or an algorithm not allowed.
    Signature(String),
    /// Step 2: `iss` is not the provider's issuer.
    Issuer(String),
    /// Step 3: `aud` does not name this client.
    Audience(String),
    /// Steps 4-5: `azp` names another client, or is missing with several audiences.
    Azp(String),
    /// Step 9: `exp` has passed.
    Expired(String),
    /// Step 10: `iat` is in the future.
    IssuedInFuture(String),
    /// Step 11: `nonce` is missing or not the one sent.
    Nonce(String),
    /// §3.1.3.8: `at_hash` does not match the access token.
    AtHash(String),
    /// §3.3.2.11: `c_hash` is missing with a code, or does not match it.
    CHash(String),
    /// §12.2: a refreshed ID token names another `sub`, `aud` or `azp`.
    Refreshed(&'static str),
    /// Anything else the verifier refused (malformed or unsupported claims).
    Other(String),
}

impl VerifyError {
    pub(crate) fn into_error(self) -> Error {
        let why = match self {
            VerifyError::UnknownKey => {
                return Error::new(
                    ErrorKind::ProviderInvalid,
                    "the ID token is signed with a key the provider does not publish; sign-in rejected",
                );
            }
            VerifyError::Refreshed(why) => why.to_owned(),
            VerifyError::Signature(why) => format!("signature: {why}"),
            VerifyError::Issuer(why)
            | VerifyError::Audience(why)
            | VerifyError::Azp(why)
            | VerifyError::Expired(why)
            | VerifyError::IssuedInFuture(why)
            | VerifyError::Nonce(why)
            | VerifyError::AtHash(why)
            | VerifyError::CHash(why)
            | VerifyError::Other(why) => why,
        };
        Error::new(
            ErrorKind::ProviderInvalid,
            format!(
                "the ID token is invalid ({}); sign-in rejected",
                sanitize(&why)
            ),
        )
    }
}

/// How step 10's failure starts, so [`map_claims_error`] can tell it from an expiry.
const ISSUED_IN_FUTURE: &str = "issued in the future";

fn verifier<'a>(
    provider: &'a Provider,
    client_id: &str,
    now: DateTime<Utc>,
) -> CoreIdTokenVerifier<'a> {
    let advertised = provider.metadata.id_token_signing_alg_values_supported();
    let algs: Vec<CoreJwsSigningAlgorithm> = SUPPORTED_ALGS
        .iter()
        .filter(|a| advertised.contains(a))
        .cloned()
        .collect();
    CoreIdTokenVerifier::new_public_client(
        ClientId::new(client_id.to_owned()),
        provider.metadata.issuer().clone(),
        provider.metadata.jwks().clone(),
    )
    // §3.1.3.7 step 7: RS256 by default, or what the provider advertises, minus `none`/HMAC.
    .set_allowed_algs(if algs.is_empty() {
        vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]
    } else {
        algs
    })
    // Step 9: "now" comes from the injected clock.
    .set_time_fn(move || now)
    // Step 10: reject tokens issued in the future.
    .set_issue_time_verifier_fn(move |iat| {
        if iat > now + MAX_CLOCK_SKEW {
            Err(format!(
                "{ISSUED_IN_FUTURE} ({iat}); check this computer's clock"
            ))
        } else {
            Ok(())
        }
    })
}

fn map_claims_error(e: ClaimsVerificationError) -> VerifyError {
    use ClaimsVerificationError as C;
    let text = e.to_string();
    match e {
        C::SignatureVerification(SignatureVerificationError::NoMatchingKey) => {
            VerifyError::UnknownKey
        }
        C::SignatureVerification(s) => VerifyError::Signature(s.to_string()),
        C::InvalidIssuer(_) => VerifyError::Issuer(text),
        C::InvalidAudience(_) => VerifyError::Audience(text),
        // Step 10's hook reports through `Expired` (openidconnect's choice): told apart by the
        // message the hook above writes.
        C::Expired(why) if why.starts_with(ISSUED_IN_FUTURE) => VerifyError::IssuedInFuture(why),
        C::Expired(_) => VerifyError::Expired(text),
        C::InvalidNonce(_) => VerifyError::Nonce(text),
        _ => VerifyError::Other(text),
    }
}

/// Validates an ID token and returns the claims Latchkey keeps.
pub(crate) fn verify_id_token(
    provider: &Provider,
    client_id: &str,
    id_token: &CoreIdToken,
    access_token: &AccessToken,
    nonce: NonceCheck<'_>,
    now: DateTime<Utc>,
) -> Result<Claims, VerifyError> {
    verify(
        provider,
        client_id,
        id_token,
        Some(access_token),
        None,
        nonce,
        now,
    )
}

/// Validates an ID token that came in the authorization response (the hybrid flow, §3.3.2.12,
/// and the implicit flow, §3.2.2.11): as at the token endpoint, with the `nonce` required
/// (§3.2.2.11 step 11), and for the hybrid flow `c_hash` required and matching `code`
/// (§3.3.2.11). This runs before the code is redeemed.
pub(crate) fn verify_front_channel(
    provider: &Provider,
    client_id: &str,
    id_token: &CoreIdToken,
    nonce: &Nonce,
    code: Option<&AuthorizationCode>,
    now: DateTime<Utc>,
) -> Result<Claims, VerifyError> {
    verify(
        provider,
        client_id,
        id_token,
        None,
        code,
        NonceCheck::Equals(nonce),
        now,
    )
}

fn verify(
    provider: &Provider,
    client_id: &str,
    id_token: &CoreIdToken,
    access_token: Option<&AccessToken>,
    code: Option<&AuthorizationCode>,
    nonce: NonceCheck<'_>,
    now: DateTime<Utc>,
) -> Result<Claims, VerifyError> {
    let verifier = verifier(provider, client_id, now);
    // Steps 1-3, 6-9, 11 (iss, aud, signature, alg, exp, nonce) and 10 via the iat hook.
    let claims: &CoreIdTokenClaims = match nonce {
        NonceCheck::Equals(n) => id_token.claims(&verifier, n),
        NonceCheck::Refresh | NonceCheck::NotSent => {
            id_token.claims(&verifier, |_: Option<&Nonce>| Ok(()))
        }
    }
    .map_err(map_claims_error)?;

    // Steps 4-5: with several audiences an azp SHOULD be present, and a present azp MUST be us.
    let aud: Vec<String> = claims.audiences().iter().map(|a| a.to_string()).collect();
    match claims.authorized_party() {
        Some(azp) if azp.as_str() != client_id => {
            return Err(VerifyError::Azp(format!(
                "azp `{}` is not this client",
                sanitize(azp.as_str())
            )));
        }
        None if aud.len() > 1 => {
            return Err(VerifyError::Azp("several audiences but no azp".into()));
        }
        _ => {}
    }

    check_hashes(id_token, claims, &verifier, access_token, code)?;

    Ok(Claims {
        sub: claims.subject().to_string(),
        aud,
        azp: claims.authorized_party().map(|a| a.to_string()),
        name: claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string()),
        email: claims.email().map(|e| e.to_string()),
        email_verified: claims.email_verified(),
        picture: claims
            .picture()
            .and_then(|p| p.get(None))
            .map(|p| p.to_string()),
        preferred_username: claims.preferred_username().map(|u| u.to_string()),
        // Filled from userinfo; the ID token's own grants are read from the stored token.
        userinfo_grants: Default::default(),
    })
}

/// §3.1.3.8 and §3.3.2.11: `at_hash` and `c_hash`, the left half of the access token's or code's
/// hash under the ID token's own signing algorithm.
fn check_hashes(
    id_token: &CoreIdToken,
    claims: &CoreIdTokenClaims,
    verifier: &CoreIdTokenVerifier<'_>,
    access_token: Option<&AccessToken>,
    code: Option<&AuthorizationCode>,
) -> Result<(), VerifyError> {
    // The left half of the token's hash under its own signing algorithm (§3.1.3.8, §3.3.2.11).
    let alg = || {
        id_token
            .signing_alg()
            .map_err(|e| VerifyError::Signature(e.to_string()))
    };
    let key = || {
        id_token
            .signing_key(verifier)
            .map_err(|e| VerifyError::Signature(e.to_string()))
    };

    // §3.1.3.8 / §3.2.2.9: when at_hash is present it must match the access token.
    if let (Some(expected), Some(access_token)) = (claims.access_token_hash(), access_token) {
        let actual = AccessTokenHash::from_token(access_token, alg()?, key()?)
            .map_err(|e| VerifyError::AtHash(format!("at_hash: {e}")))?;
        if actual != *expected {
            return Err(VerifyError::AtHash(
                "at_hash does not match the access token".into(),
            ));
        }
    }

    // §3.3.2.11: with `code id_token`, c_hash is REQUIRED and binds the ID token to this code,
    // so a code swapped into the response (§3.3.2.10 code injection) is caught before redemption.
    if let Some(code) = code {
        let Some(expected) = claims.code_hash() else {
            return Err(VerifyError::CHash(
                "it has no c_hash, which OIDC Core §3.3.2.11 requires with the code".into(),
            ));
        };
        let actual = AuthorizationCodeHash::from_code(code, alg()?, key()?)
            .map_err(|e| VerifyError::CHash(format!("c_hash: {e}")))?;
        if actual != *expected {
            return Err(VerifyError::CHash("c_hash does not match the code".into()));
        }
    }
    Ok(())
}

/// OIDC Core §12.2: a refreshed ID token must keep `iss` (checked by the verifier), `sub`, `aud`
/// and `azp`.
pub(crate) fn check_refreshed(previous: &Claims, refreshed: &Claims) -> Result<(), VerifyError> {
    if previous.sub != refreshed.sub {
        return Err(VerifyError::Refreshed(
            "the refreshed ID token is for a different subject",
        ));
    }
    let mut a = previous.aud.clone();
    let mut b = refreshed.aud.clone();
    a.sort();
    b.sort();
    if a != b {
        return Err(VerifyError::Refreshed(
            "the refreshed ID token has a different audience",
        ));
    }
    // §12.2: "its azp Claim Value MUST be the same as in the ID Token issued when the original
    // authentication occurred; if no azp Claim was present in the original ID Token, one MUST
    // NOT be present in the new ID Token". So an azp may neither change, appear nor disappear.
    let why = match (&previous.azp, &refreshed.azp) {
        (Some(a), Some(b)) if a != b => "the refreshed ID token has a different azp",
        (None, Some(_)) => "the refreshed ID token has an azp the original did not",
        (Some(_), None) => "the refreshed ID token lacks the azp the original had",
        _ => return Ok(()),
    };
    Err(VerifyError::Refreshed(why))
}

#[cfg(test)]
mod tests;
