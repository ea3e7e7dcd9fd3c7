//! The authorization code flow's end (RFC 6749 §4.1.3, OIDC Core §3.1.3): the code redeemed with
//! the PKCE verifier (RFC 7636 §4.5) and the session its answer makes. The hybrid flow ends here
//! too, after its front-channel checks.

use std::sync::Arc;

use openidconnect::AuthorizationCode;

use crate::config::FlowChoice;
use crate::context::{Client, Context};
use crate::discovery::Provider;
use crate::error::{Error, ErrorKind, Result};
use crate::flow::{CallbackParams, Redemption, Sent};
use crate::oauth::{token, userinfo};
use crate::session::Session;
use crate::session::build::{self, Origin};
use crate::verify::NonceCheck;

/// The code flow (RFC 6749 §4.1, OIDC Core §3.1): the code redeemed with the PKCE verifier
/// (RFC 7636 §4.5), the session built from the answer, then userinfo.
pub(super) async fn code_session(
    ctx: &Context,
    provider: &Arc<Provider>,
    sent: &Sent,
    redemption: Redemption,
    params: CallbackParams,
) -> Result<Session> {
    let Some(code) = params.code else {
        return Err(Error::new(
            ErrorKind::ForeignCallback,
            "the sign-in response has no code; please sign in again",
        ));
    };
    let client = ctx.client(provider)?;
    let session = redeem(
        ctx,
        provider,
        &client,
        AuthorizationCode::new(code),
        (sent, redemption, FlowChoice::Code),
    )
    .await?;
    userinfo::with_userinfo(ctx, &client, session).await
}

/// RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.5): the code redeemed with this sign-in's verifier (and
/// DPoP key), and the session its answer makes, the ID token checked against this sign-in's
/// nonce. The code and hybrid flows both end here.
pub(super) async fn redeem(
    ctx: &Context,
    provider: &Arc<Provider>,
    client: &Client,
    code: AuthorizationCode,
    (sent, redemption, flow): (&Sent, Redemption, FlowChoice),
) -> Result<Session> {
    let Redemption { verifier, dpop } = redemption;
    let response = token::redeem(
        ctx,
        client,
        code,
        verifier,
        &sent.redirect_uri,
        dpop.as_ref(),
    )
    .await?;
    build::session_from_response(
        ctx,
        provider,
        &response,
        NonceCheck::Equals(&sent.nonce),
        Origin::SignIn {
            flow,
            par: sent.par(),
        },
        dpop.as_ref(),
    )
    .await
}
