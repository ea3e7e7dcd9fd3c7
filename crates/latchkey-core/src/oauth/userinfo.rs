//! The userinfo endpoint (OIDC Core §5.3): the profile and the grants it carries, for the
//! session's access token (presented with a DPoP proof when bound, RFC 9449 §7).

use openidconnect::SubjectIdentifier;
use openidconnect::core::CoreGenderClaim;

use super::transient_http;
use crate::context::{Client, Context};
use crate::error::{Error, ErrorKind, Result, sanitize};
use crate::grants::{GrantSource, Grants};
use crate::http::HttpError;
use crate::session::{Claims, Session};

/// OIDC Core §5.3: profile and email usually come from userinfo; §5.3.2: its `sub` must be
/// the ID token's. At sign-in any failure fails the sign-in.
/// A DPoP-bound token is presented as `DPoP` with a proof (RFC 9449 §7).
pub(crate) async fn with_userinfo(
    ctx: &Context,
    client: &Client,
    mut session: Session,
) -> Result<Session> {
    if let Some(profile) = fetch_userinfo(ctx, client, &session).await? {
        profile.apply(&mut session.claims);
    }
    Ok(session)
}

/// The userinfo response for the session's access token; `None` when the provider has no
/// userinfo endpoint. A response for another `sub` is an error (§5.3.2: the claims "MUST
/// NOT be used"), and so is one that fails validation.
pub(crate) async fn fetch_userinfo(
    ctx: &Context,
    client: &Client,
    session: &Session,
) -> Result<Option<Profile>> {
    let Ok(request) = client.user_info(
        openidconnect::AccessToken::new(session.access_token.clone()),
        Some(SubjectIdentifier::new(session.claims.sub.clone())),
    ) else {
        return Ok(None); // no userinfo endpoint
    };
    let token = session.access_token.clone();
    let sender = ctx
        .proof_client(session.dpop_key.as_ref())
        .presenting(&token);
    let info: UserInfo = request
        .request_async(&sender)
        .await
        .map_err(userinfo_error)?;
    Ok(Some(Profile::from_userinfo(&info)))
}

/// A failed userinfo request or response (OIDC Core §5.3), as [`fetch_userinfo`]
/// reports it.
pub(crate) fn userinfo_error(e: openidconnect::UserInfoError<HttpError>) -> Error {
    use openidconnect::UserInfoError as U;
    match e {
        U::Request(h) => transient_http("fetching your profile", &h),
        U::ClaimsVerification(openidconnect::ClaimsVerificationError::InvalidSubject(_)) => {
            Error::new(
                ErrorKind::ProviderInvalid,
                "the provider's profile answer is for a different user than the ID token (OIDC Core 5.3.2); it was not used",
            )
        }
        U::ClaimsVerification(c) => Error::new(
            ErrorKind::ProviderInvalid,
            format!(
                "the provider's profile answer failed validation ({}); sign-in rejected",
                sanitize(&c.to_string())
            ),
        ),
        U::Response(status, _, _) => Error::new(
            ErrorKind::ProviderInvalid,
            format!(
                "fetching your profile: the provider answered HTTP {}",
                status.as_u16()
            ),
        ),
        _ => Error::new(
            ErrorKind::ProviderInvalid,
            "fetching your profile: the provider's answer is invalid",
        ),
    }
}

/// Every claim of a userinfo response beyond the standard ones, kept for [`Grants::read`].
#[derive(Default, serde::Deserialize, serde::Serialize)]
pub(crate) struct OtherClaims {
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Debug for OtherClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.rest.keys()).finish()
    }
}

impl openidconnect::AdditionalClaims for OtherClaims {}

pub(crate) type UserInfo = openidconnect::UserInfoClaims<OtherClaims, CoreGenderClaim>;

/// What a userinfo response says about the user: the profile Latchkey shows, and the grants.
#[derive(Debug)]
pub(crate) struct Profile {
    name: Option<String>,
    email: Option<String>,
    email_verified: Option<bool>,
    picture: Option<String>,
    preferred_username: Option<String>,
    grants: Grants,
}

impl Profile {
    pub(crate) fn from_userinfo(info: &UserInfo) -> Self {
        Self {
            name: info.name().and_then(|n| n.get(None)).map(|n| n.to_string()),
            email: info.email().map(|e| e.to_string()),
            email_verified: info.email_verified(),
            picture: info
                .picture()
                .and_then(|p| p.get(None))
                .map(|p| p.to_string()),
            preferred_username: info.preferred_username().map(|u| u.to_string()),
            grants: Grants::read(
                &serde_json::Value::Object(info.additional_claims().rest.clone()),
                GrantSource::Userinfo,
            ),
        }
    }

    /// A claim the response carries replaces the stored one; one it omits is kept (the ID token
    /// may have it). The grants are replaced whole: a group left is gone.
    pub(crate) fn apply(&self, c: &mut Claims) {
        if let Some(n) = &self.name {
            c.name = Some(n.clone());
        }
        if let Some(e) = &self.email {
            c.email = Some(e.clone());
        }
        if let Some(v) = self.email_verified {
            c.email_verified = Some(v);
        }
        if let Some(p) = &self.picture {
            c.picture = Some(p.clone());
        }
        if let Some(u) = &self.preferred_username {
            c.preferred_username = Some(u.clone());
        }
        c.userinfo_grants = self.grants.clone();
    }
}
