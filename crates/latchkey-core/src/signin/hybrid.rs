//! The hybrid flow (OIDC Core §3.3), `response_type=code id_token`: the authorization response
//! carries an ID token next to the code, and that ID token is verified before the code is
//! redeemed (§3.3.2.12), with `nonce` and `c_hash` both required (§3.3.2.11). So a code injected
//! into the response (another sign-in's, an attacker's) or a response replayed into another
//! sign-in fails here and is never sent to the token endpoint.
//!
//! Same shape as the code flow: [`begin`](super::authorize::begin) asks for `code id_token` with
//! PKCE S256, `state` and `nonce`, and `response_mode=form_post` to a loopback listener, in the
//! CLI and the app alike: a custom-scheme link would put the ID token in a new process's argv.
//! [`resume_form_post`](super::callback::resume_form_post) hands the listener's POST body here.

use std::sync::Arc;

use openidconnect::AuthorizationCode;
use openidconnect::core::CoreIdToken;

use crate::config::FlowChoice;
use crate::context::Context;
use crate::discovery::Provider;
use crate::error::{Error, ErrorKind, Result};
use crate::flow::{CallbackParams, Redemption, Sent};
use crate::oauth::{id_token, userinfo};
use crate::session::Session;

/// §3.3.2.5-§3.3.3: checks the response's ID token, then redeems the code and checks that
/// the token endpoint's ID token names the same user.
pub(crate) async fn hybrid_session(
    ctx: &Context,
    provider: &Arc<Provider>,
    sent: &Sent,
    redemption: Redemption,
    params: CallbackParams,
) -> Result<Session> {
    let (Some(code), Some(id_token)) = (params.code, params.id_token) else {
        return Err(Error::new(
            ErrorKind::ForeignCallback,
            "the sign-in response lacks the code or the ID token that `code id_token` returns (OIDC Core §3.3.2.5); please sign in again",
        ));
    };
    let code = AuthorizationCode::new(code);
    let id_token = front_channel_id_token(&id_token)?;
    // §3.3.2.12: signature, iss, aud/azp, exp, iat, nonce and c_hash, before redemption.
    let front = id_token::verify_front(ctx, provider, &id_token, sent, Some(&code))
        .await
        .map_err(|e| e.context("the sign-in response was refused, and its code not redeemed"))?;

    let client = ctx.client(provider)?;
    let redeeming = (sent, redemption, FlowChoice::Hybrid);
    let session = super::code::redeem(ctx, provider, &client, code, redeeming).await?;
    // §3.3.3.6: the token endpoint's ID token must have the front channel's iss and sub.
    // Both were verified against this provider's one issuer, so iss agrees; sub is compared.
    if session.claims.sub != front.sub {
        return Err(Error::new(
            ErrorKind::ProviderInvalid,
            "the token endpoint's ID token is for another user than the sign-in response's (OIDC Core §3.3.3.6); sign-in rejected",
        ));
    }
    userinfo::with_userinfo(ctx, &client, session).await
}

/// An ID token as the authorization response carries it: a compact JWS (RFC 7515 §7.1).
pub(crate) fn front_channel_id_token(text: &str) -> Result<CoreIdToken> {
    text.parse().map_err(|_| {
        Error::new(
            ErrorKind::ProviderInvalid,
            "the ID token in the sign-in response is not a signed JWT; sign-in rejected",
        )
    })
}
