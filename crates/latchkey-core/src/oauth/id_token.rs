//! ID token validation (OIDC Core §3.1.3.7, §3.3.2.12) with key rotation: one JWKS refetch when
//! the token's key is unknown, the single copy of that rule for every flow.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use openidconnect::AuthorizationCode;
use openidconnect::core::CoreIdToken;

use crate::context::Context;
use crate::discovery::Provider;
use crate::error::Result;
use crate::flow::Pending;
use crate::session::Claims;
use crate::verify::{self, NonceCheck, VerifyError};

/// Verifies an ID token from the authorization response (the hybrid and implicit flows),
/// with one JWKS refetch when its key is unknown (key rotation).
pub(crate) async fn verify_front(
    ctx: &Context,
    provider: &Arc<Provider>,
    id_token: &CoreIdToken,
    pending: &Pending,
    code: Option<&AuthorizationCode>,
) -> Result<Claims> {
    let now = ctx.now();
    let client_id = &ctx.config.client_id;
    let nonce = &pending.nonce;
    match verify::verify_front_channel(provider, client_id, id_token, nonce, code, now) {
        Err(VerifyError::UnknownKey) => {
            let Some(fresh) = ctx.discovery.refetch_jwks(ctx.http()?, now).await? else {
                return Err(VerifyError::UnknownKey.into_error());
            };
            verify::verify_front_channel(&fresh, client_id, id_token, nonce, code, now)
                .map_err(VerifyError::into_error)
        }
        other => other.map_err(VerifyError::into_error),
    }
}

/// ID token validation, with one JWKS refetch when the key is unknown (key rotation).
pub(crate) async fn verify_with_rotation(
    ctx: &Context,
    provider: &Arc<Provider>,
    id_token: &CoreIdToken,
    access: &openidconnect::AccessToken,
    nonce: NonceCheck<'_>,
    now: DateTime<Utc>,
) -> Result<Claims> {
    match verify::verify_id_token(
        provider,
        &ctx.config.client_id,
        id_token,
        access,
        nonce,
        now,
    ) {
        Err(VerifyError::UnknownKey) => {
            let Some(fresh) = ctx.discovery.refetch_jwks(ctx.http()?, now).await? else {
                return Err(VerifyError::UnknownKey.into_error());
            };
            verify::verify_id_token(&fresh, &ctx.config.client_id, id_token, access, nonce, now)
                .map_err(VerifyError::into_error)
        }
        other => other.map_err(VerifyError::into_error),
    }
}
