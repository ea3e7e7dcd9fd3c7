//! How this client authenticates to the provider's endpoints (RFC 6749 §2.3.1).
//!
//! A public client (no `client_secret`) only names itself with `client_id`. An "installed app"
//! client with a secret (Google's) sends it with every token request (code, device, refresh) and
//! with the pushed authorization request, as `client_secret_basic` or `client_secret_post`,
//! whichever the provider's `token_endpoint_auth_methods_supported` offers, basic first.

use base64::Engine as _;
use openidconnect::AuthType;
use openidconnect::core::CoreClientAuthMethod;

use crate::config::Config;
use crate::discovery::Provider;
use crate::error::{Error, ErrorKind, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    /// No secret configured: `client_id` in the body, nothing else (RFC 6749 §2.3).
    Public,
    /// `Authorization: Basic` with the form-encoded id and secret (RFC 6749 §2.3.1).
    Basic,
    /// `client_id` and `client_secret` in the body (RFC 6749 §2.3.1).
    Post,
}

impl ClientAuth {
    /// The method for this configuration and provider. A secret is never sent when none is
    /// configured; one that the provider accepts in neither form is an error before any request.
    pub(crate) fn choose(config: &Config, provider: &Provider) -> Result<Self> {
        if config.client_secret.is_none() {
            return Ok(ClientAuth::Public);
        }
        // RFC 8414 §2: when the metadata omits the list, the default is client_secret_basic.
        let Some(methods) = provider.metadata.token_endpoint_auth_methods_supported() else {
            return Ok(ClientAuth::Basic);
        };
        if methods.contains(&CoreClientAuthMethod::ClientSecretBasic) {
            Ok(ClientAuth::Basic)
        } else if methods.contains(&CoreClientAuthMethod::ClientSecretPost) {
            Ok(ClientAuth::Post)
        } else {
            Err(Error::new(
                ErrorKind::ProviderInvalid,
                "a client_secret is configured, but the provider accepts neither client_secret_basic nor client_secret_post (token_endpoint_auth_methods_supported); remove client_secret or register another client",
            ))
        }
    }

    /// What `oauth2` is told: without a secret it sends `client_id` in the body either way.
    pub(crate) fn auth_type(self) -> AuthType {
        match self {
            ClientAuth::Post => AuthType::RequestBody,
            ClientAuth::Public | ClientAuth::Basic => AuthType::BasicAuth,
        }
    }

    /// For requests built by hand (PAR, revocation): the `Authorization` header value, if any.
    pub(crate) fn header(self, config: &Config) -> Option<String> {
        let secret = config.client_secret.as_ref()?;
        if self != ClientAuth::Basic {
            return None;
        }
        // §2.3.1: both are form-encoded before they are joined.
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(&config.client_id),
            enc(secret.secret())
        ));
        Some(format!("Basic {basic}"))
    }

    /// For requests built by hand: the body fields that identify the client. `client_id` is
    /// always there (RFC 6749 §2.3; RFC 9126 §2.1 wants it in the pushed request anyway).
    pub(crate) fn body_fields(self, config: &Config) -> Vec<(&'static str, String)> {
        let mut fields = vec![("client_id", config.client_id.clone())];
        if let (ClientAuth::Post, Some(secret)) = (self, &config.client_secret) {
            fields.push(("client_secret", secret.secret().to_owned()));
        }
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(methods: Option<&[&str]>) -> Provider {
        let mut m = crate::discovery::minimal_metadata("https://id.example");
        if let Some(methods) = methods {
            m["token_endpoint_auth_methods_supported"] = serde_json::json!(methods);
        }
        Provider::for_tests(m, openidconnect::JsonWebKeySet::new(Vec::new()))
    }

    fn config(secret: Option<&str>) -> Config {
        let flags = crate::config::Settings {
            issuer: Some("https://id.example".into()),
            client_id: Some("app id".into()),
            client_secret: secret.map(str::to_owned),
            ..Default::default()
        };
        let paths = crate::config::Paths {
            user_file: None,
            system_file: None,
            identity: crate::AppIdentity::TEST,
        };
        crate::config::Sources::load(flags, &paths, &|_| None)
            .and_then(|s| s.resolve())
            .expect("config")
    }

    #[test]
    fn basic_first_then_post_and_never_a_secret_that_is_not_configured() {
        let both = provider(Some(&["client_secret_post", "client_secret_basic", "none"]));
        let post = provider(Some(&["client_secret_post", "none"]));
        let neither = provider(Some(&["private_key_jwt", "none"]));
        let unstated = provider(None);
        let secret = config(Some("s:cr&t"));
        assert_eq!(
            ClientAuth::choose(&secret, &both).expect("ok"),
            ClientAuth::Basic
        );
        assert_eq!(
            ClientAuth::choose(&secret, &post).expect("ok"),
            ClientAuth::Post
        );
        // RFC 8414 §2's default.
        assert_eq!(
            ClientAuth::choose(&secret, &unstated).expect("ok"),
            ClientAuth::Basic
        );
        let e = ClientAuth::choose(&secret, &neither).expect_err("neither");
        assert!(e.message().contains("client_secret_basic"), "{e}");
        let public = config(None);
        for p in [&both, &post, &neither, &unstated] {
            assert_eq!(
                ClientAuth::choose(&public, p).expect("ok"),
                ClientAuth::Public
            );
        }
        assert_eq!(ClientAuth::Public.header(&public), None);
        assert_eq!(
            ClientAuth::Public.body_fields(&public),
            [("client_id", "app id".to_owned())]
        );
    }

    #[test]
    fn basic_form_encodes_both_halves_and_post_puts_the_secret_in_the_body() {
        let secret = config(Some("s:cr&t"));
        // RFC 6749 §2.3.1: "app id" -> "app+id", "s:cr&t" -> "s%3Acr%26t", then base64.
        use base64::Engine as _;
        let expected = base64::engine::general_purpose::STANDARD.encode("app+id:s%3Acr%26t");
        assert_eq!(
            ClientAuth::Basic.header(&secret),
            Some(format!("Basic {expected}"))
        );
        assert_eq!(
            ClientAuth::Basic.body_fields(&secret),
            [("client_id", "app id".to_owned())]
        );
        assert_eq!(ClientAuth::Post.header(&secret), None);
        assert_eq!(
            ClientAuth::Post.body_fields(&secret),
            [
                ("client_id", "app id".to_owned()),
                ("client_secret", "s:cr&t".to_owned())
            ]
        );
    }
}
