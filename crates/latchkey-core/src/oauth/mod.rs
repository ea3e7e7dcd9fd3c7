//! Stateless protocol calls: each takes what it needs (a client, an endpoint, a token) and owns
//! no state, like `openidconnect`'s request types. The use cases in `signin` and `session` call
//! them.

use crate::error::{Error, ErrorKind};
use crate::http::HttpError;

pub(crate) mod challenge;
pub(crate) mod client_auth;
pub(crate) mod end_session;
pub(crate) mod form;
pub(crate) mod id_token;
pub(crate) mod par;
pub(crate) mod revoke;
pub(crate) mod token;
pub(crate) mod userinfo;

/// An HTTP failure on the way to the provider: transient (the session is kept), except a server
/// that keeps asking for a DPoP nonce, which was reached and is not a network problem.
pub(crate) fn transient_http(what: &str, e: &HttpError) -> Error {
    let kind = match e {
        HttpError::DpopNonce { .. } => ErrorKind::ProviderError,
        _ => ErrorKind::ProviderUnreachable,
    };
    Error::new(kind, format!("{what}: {e}"))
}
