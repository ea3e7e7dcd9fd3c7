//! The hybrid flow (OIDC Core §3.3), `response_type=code id_token`: the authorization response
//! carries an ID token next to the code, and that ID token is verified before the code is
//! redeemed (§3.3.2.12), with `nonce` and `c_hash` both required (§3.3.2.11). So a code injected
//! into the response (another sign-in's, an attacker's) or a response replayed into another
//! sign-in fails here and is never sent to the token endpoint.
//!
//! Same shape as the code flow: [`Latchkey::begin`] asks for `code id_token` with PKCE S256,
//! `state` and `nonce`, and a response mode that suits the redirect: `form_post` on the CLI's
//! loopback listener, `fragment` on the app's custom scheme. [`Latchkey::resume`] (a fragment
//! link) or [`Latchkey::resume_form_post`] (the listener's POST body) hand the response here.

use std::sync::Arc;

use openidconnect::AuthorizationCode;
use openidconnect::core::CoreIdToken;

use super::Latchkey;
use crate::config::FlowChoice;
use crate::discovery::Provider;
use crate::error::{Error, ErrorKind, Result};
use crate::flow::{CallbackParams, Pending};
use crate::session::{Claims, Session};
use crate::verify::{self, NonceCheck, VerifyError};

impl Latchkey {
    /// §3.3.2.5-§3.3.3: checks the response's ID token, then redeems the code and checks that
    /// the token endpoint's ID token names the same user.
    pub(super) async fn hybrid_session(
        &self,
        provider: &Arc<Provider>,
        pending: Pending,
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
        let front = self
            .verify_front(provider, &id_token, &pending, Some(&code))
            .await
            .map_err(|e| {
                e.context("the sign-in response was refused, and its code not redeemed")
            })?;

        let client = self.client(provider)?;
        let response = self
            .redeem(
                &client,
                code,
                pending.verifier,
                &pending.redirect_uri,
                pending.dpop.as_ref(),
            )
            .await?;
        let mut session = self
            .session_from_response(
                provider,
                &response,
                NonceCheck::Equals(&pending.nonce),
                None,
                pending.dpop.as_ref(),
            )
            .await?;
        // §3.3.3.6: the token endpoint's ID token must have the front channel's iss and sub.
        // Both were verified against this provider's one issuer, so iss agrees; sub is compared.
        if session.claims.sub != front.sub {
            return Err(Error::new(
                ErrorKind::ProviderInvalid,
                "the token endpoint's ID token is for another user than the sign-in response's (OIDC Core §3.3.3.6); sign-in rejected",
            ));
        }
        session.flow = FlowChoice::Hybrid.as_str().into();
        session.par = pending.par;
        self.with_userinfo(&client, session).await
    }

    /// Verifies an ID token from the authorization response (the hybrid and implicit flows),
    /// with one JWKS refetch when its key is unknown (key rotation).
    pub(super) async fn verify_front(
        &self,
        provider: &Arc<Provider>,
        id_token: &CoreIdToken,
        pending: &Pending,
        code: Option<&AuthorizationCode>,
    ) -> Result<Claims> {
        let now = self.now();
        let client_id = &self.config.client_id;
        let nonce = &pending.nonce;
        match verify::verify_front_channel(provider, client_id, id_token, nonce, code, now) {
            Err(VerifyError::UnknownKey) => {
                let Some(fresh) = self.discovery.refetch_jwks(self.http()?, now).await? else {
                    return Err(VerifyError::UnknownKey.into_error());
                };
                verify::verify_front_channel(&fresh, client_id, id_token, nonce, code, now)
                    .map_err(VerifyError::into_error)
            }
            other => other.map_err(VerifyError::into_error),
        }
    }
}

/// An ID token as the authorization response carries it: a compact JWS (RFC 7515 §7.1).
pub(super) fn front_channel_id_token(text: &str) -> Result<CoreIdToken> {
    text.parse().map_err(|_| {
        Error::new(
            ErrorKind::ProviderInvalid,
            "the ID token in the sign-in response is not a signed JWT; sign-in rejected",
        )
    })
}
