//! [`Context`]: what every use case works with — the resolved configuration, the ports to the
//! world, and the state one account's sign-ins and session share in this process. A plain
//! struct: the use cases are functions over `&Context` in `signin`, `session` and `oauth`.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use openidconnect::core::CoreClient;
use openidconnect::{ClientId, ClientSecret, EndpointMaybeSet, EndpointNotSet, EndpointSet};

use crate::config::Config;
use crate::discovery::{Discovery, Provider};
use crate::dpop::{DpopKey, ProofClient};
use crate::error::Result;
use crate::flow::{PendingLogout, PendingSet};
use crate::http::HttpClient;
use crate::oauth::client_auth::ClientAuth;
use crate::ports::Ports;
use crate::store::Vault;
use crate::util::short_hash;

/// The provider's client as `openidconnect` types it: authorization endpoint set, token and
/// userinfo endpoints as the metadata says.
pub(crate) type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// One account's configuration, ports and in-process state.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) config: Config,
    pub(crate) ports: Ports,
    http: HttpClient,
    pub(crate) vault: Vault,
    pub(crate) discovery: Discovery,
    /// Sign-ins this process started, awaiting their redirect.
    pub(crate) pending: PendingSet,
    /// The RP-initiated logout this process started, awaiting the provider's return.
    pub(crate) pending_logout: Mutex<Option<PendingLogout>>,
    /// The in-process half of the session lock (see `session::repo::exclusive`).
    pub(crate) refresh_gate: tokio::sync::Mutex<()>,
    /// The keychain entry's name: one per (issuer, client_id, profile).
    pub(crate) session_name: String,
}

impl Context {
    pub(crate) fn new(config: Config, ports: Ports) -> Self {
        let session_name = session_name(&config);
        let store = ports
            .store
            .for_choice(config.store)
            .unwrap_or_else(|| Arc::clone(&ports.store));
        Self {
            vault: Vault::new(store, ports.keychain_timeout),
            discovery: Discovery::new(&config.issuer, ports.cache_dir.clone()),
            config,
            http: HttpClient::new(Arc::clone(&ports.http)),
            ports,
            pending: PendingSet::default(),
            pending_logout: Mutex::default(),
            refresh_gate: tokio::sync::Mutex::new(()),
            session_name,
        }
    }

    /// The provider's HTTP client, over the HTTP port.
    pub(crate) fn http(&self) -> &HttpClient {
        &self.http
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.ports.clock.now()
    }

    /// The client for token requests and userinfo: with a DPoP proof on each request when the
    /// sign-in or session has a key (RFC 9449).
    pub(crate) fn proof_client<'a>(&'a self, key: Option<&'a DpopKey>) -> ProofClient<'a> {
        ProofClient::new(self.http(), key, Arc::clone(&self.ports.clock))
    }

    /// The provider's metadata, from the discovery cache when fresh (OIDC Discovery §4).
    pub(crate) async fn provider(&self) -> Result<Arc<Provider>> {
        self.discovery.get(self.http(), self.now()).await
    }

    /// The provider's client for this configuration, authenticating as [`ClientAuth::choose`]
    /// says.
    pub(crate) fn client(&self, p: &Provider) -> Result<Client> {
        let auth = ClientAuth::choose(&self.config, p)?;
        Ok(CoreClient::from_provider_metadata(
            p.metadata.clone(),
            ClientId::new(self.config.client_id.clone()),
            self.config
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.secret().to_owned())),
        )
        .set_auth_type(auth.auth_type()))
    }
}

/// One keychain entry per (issuer, client_id, profile).
fn session_name(config: &Config) -> String {
    let name = format!("{}/{}@{}", config.profile, config.client_id, config.issuer);
    if name.len() <= 200 {
        return name;
    }
    format!("{}/{}", config.profile, short_hash(&name, 16))
}
