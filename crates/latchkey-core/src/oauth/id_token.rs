//! ID token validation (OIDC Core §3.1.3.7, §3.3.2.12) with key rotation: one JWKS refetch when
//! the token's key is unknown, the single copy of that rule for every flow.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use openidconnect::AuthorizationCode;
use openidconnect::core::CoreIdToken;

use crate::context::Context;
use crate::discovery::Provider;
use crate::error::Result;
use crate::flow::Sent;
use crate::session::Claims;
use crate::verify::{self, NonceCheck, VerifyError};

/// Runs `verify` against the provider's keys, and once more against a freshly fetched JWKS when
/// the token's key is unknown (key rotation, OIDC Core §10.1.1): the single copy of that rule.
async fn with_rotation(
    ctx: &Context,
    provider: &Arc<Provider>,
    now: DateTime<Utc>,
    verify: impl Fn(&Provider) -> std::result::Result<Claims, VerifyError>,
) -> Result<Claims> {
    match verify(provider) {
        Err(VerifyError::UnknownKey) => {
            let Some(fresh) = ctx.discovery.refetch_jwks(ctx.http(), now).await? else {
                return Err(VerifyError::UnknownKey.into_error());
            };
            verify(&fresh).map_err(VerifyError::into_error)
        }
        other => other.map_err(VerifyError::into_error),
    }
}

/// An ID token from the authorization response (the hybrid and implicit flows: OIDC Core
/// §3.3.2.12, §3.2.2.11), with `nonce` and, when a code came with it, `c_hash`.
pub(crate) async fn verify_front(
    ctx: &Context,
    provider: &Arc<Provider>,
    id_token: &CoreIdToken,
    sent: &Sent,
    code: Option<&AuthorizationCode>,
) -> Result<Claims> {
    let now = ctx.now();
    let client_id = &ctx.config.client_id;
    with_rotation(ctx, provider, now, |p| {
        verify::verify_front_channel(p, client_id, id_token, &sent.nonce, code, now)
    })
    .await
}

/// An ID token from the token endpoint (OIDC Core §3.1.3.7), with `at_hash` for `access`.
pub(crate) async fn verify_with_rotation(
    ctx: &Context,
    provider: &Arc<Provider>,
    id_token: &CoreIdToken,
    access: &openidconnect::AccessToken,
    nonce: NonceCheck<'_>,
    now: DateTime<Utc>,
) -> Result<Claims> {
    let client_id = &ctx.config.client_id;
    with_rotation(ctx, provider, now, |p| {
        verify::verify_id_token(p, client_id, id_token, access, nonce, now)
    })
    .await
}
