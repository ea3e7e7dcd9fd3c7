//! `latchkey exec-credential`: kubectl's exec credential plugin
//! (`client.authentication.k8s.io`, KEP-541).
//!
//! kubectl runs the plugin before requests and caches what it prints until
//! `status.expirationTimestamp`. It says how it was called in `KUBERNETES_EXEC_INFO`: the
//! `apiVersion` to answer in, and `spec.interactive` (whether the plugin may prompt, i.e. kubectl
//! has a terminal). stdout must hold the ExecCredential alone, so every notice goes to stderr.

use std::io::IsTerminal as _;

use latchkey_core::config::Config;
use latchkey_core::{Error, ErrorKind, Latchkey, TokenInfo, sanitize};

const V1: &str = "client.authentication.k8s.io/v1";
const V1BETA1: &str = "client.authentication.k8s.io/v1beta1";

/// Which token kubectl sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// The ID token: what the Kubernetes OIDC authenticator (`--oidc-issuer-url`) verifies.
    Id,
    /// The access token, for API servers behind an authenticating proxy or a webhook.
    Access,
}

/// What kubectl says about the call.
#[derive(Debug, PartialEq, Eq)]
struct ExecInfo {
    api_version: &'static str,
    interactive: bool,
    /// `spec.cluster.server`: the API server, when the kubeconfig's exec section sets
    /// `provideClusterInfo: true`.
    server: Option<String>,
}

fn exec_info(env: Option<&str>, stdin_is_terminal: bool) -> Result<ExecInfo, Error> {
    let Some(text) = env.filter(|t| !t.trim().is_empty()) else {
        // Called by hand, or by a kubectl too old to say: v1, interactive on a terminal.
        return Ok(ExecInfo {
            api_version: V1,
            interactive: stdin_is_terminal,
            server: None,
        });
    };
    let bad = |why: &str| Error::config(format!("$KUBERNETES_EXEC_INFO {why}"));
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|_| bad("is not JSON; is kubectl calling?"))?;
    let api_version = match value.get("apiVersion").and_then(|v| v.as_str()) {
        Some(V1) => V1,
        Some(V1BETA1) => V1BETA1,
        Some(other) => {
            return Err(bad(&format!(
                "asks for `{}`; latchkey speaks {V1} and {V1BETA1}",
                other.escape_debug()
            )));
        }
        None => return Err(bad("has no apiVersion")),
    };
    let interactive = value
        .pointer("/spec/interactive")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let server = value
        .pointer("/spec/cluster/server")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    Ok(ExecInfo {
        api_version,
        interactive,
        server,
    })
}

/// With `kube_servers` set, a token goes only to a listed API server, and kubectl must name it
/// (`provideClusterInfo`): a kubeconfig from elsewhere that runs `latchkey exec-credential`
/// does not get a token for its own server.
fn check_server(config: &Config, server: Option<&str>) -> Result<(), Error> {
    if config.kube_servers.is_empty() {
        return Ok(());
    }
    let Some(server) = server else {
        return Err(Error::config(
            "kube_servers is set, so kubectl must say which API server it calls: add `provideClusterInfo: true` to this user's exec section in kubeconfig",
        ));
    };
    if config.allows_kube_server(server) {
        return Ok(());
    }
    Err(Error::config(format!(
        "kubectl asks for a token for `{}`, which is not in kube_servers; no token was given (add the server there if it is yours)",
        sanitize(server)
    )))
}

fn credential(api_version: &str, info: &TokenInfo) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "status": {
            "token": info.token.secret(),
            "expirationTimestamp": info.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    })
}

async fn get(latchkey: &Latchkey, which: Which) -> Result<TokenInfo, Error> {
    match which {
        Which::Id => latchkey.id_token().await,
        Which::Access => {
            let info = latchkey.token(Default::default()).await?;
            crate::bearer_only(&info, "kubectl")?;
            Ok(info)
        }
    }
}

pub async fn exec_credential(latchkey: &Latchkey, which: Which) -> i32 {
    let env = std::env::var("KUBERNETES_EXEC_INFO").ok();
    let call = match exec_info(env.as_deref(), std::io::stdin().is_terminal()) {
        Ok(c) => c,
        Err(e) => return crate::fail(&e),
    };
    if let Err(e) = check_server(latchkey.config(), call.server.as_deref()) {
        return crate::fail(&e);
    }
    let info = match get(latchkey, which).await {
        Ok(info) => info,
        Err(e) if matches!(e.kind(), ErrorKind::NotSignedIn | ErrorKind::SessionExpired) => {
            if !call.interactive {
                say!("latchkey: {e}");
                say!(
                    "latchkey: kubectl is not interactive here; run `latchkey login{}` in a terminal, then retry",
                    profile_flag(latchkey)
                );
                return 1;
            }
            say!("latchkey: {e}; signing in through the browser");
            if let Err(e) = crate::sign_in(latchkey).await {
                return crate::fail(&e);
            }
            match get(latchkey, which).await {
                Ok(info) => info,
                Err(e) => return crate::fail(&e),
            }
        }
        Err(e) => return crate::fail(&e),
    };
    out!("{}", credential(call.api_version, &info));
    0
}

fn profile_flag(latchkey: &Latchkey) -> String {
    let profile = &latchkey.config().profile;
    if profile == latchkey_core::config::DEFAULT_PROFILE {
        String::new()
    } else {
        format!(" --profile {profile}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_info_follows_kubectl() {
        assert_eq!(
            exec_info(None, true).expect("none"),
            ExecInfo {
                api_version: V1,
                interactive: true,
                server: None
            }
        );
        let v1beta1 = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":true}}"#;
        assert_eq!(
            exec_info(Some(v1beta1), false).expect("v1beta1"),
            ExecInfo {
                api_version: V1BETA1,
                interactive: true,
                server: None
            }
        );
        let v1 = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#;
        assert!(!exec_info(Some(v1), true).expect("v1").interactive);
        let alpha = r#"{"apiVersion":"client.authentication.k8s.io/v1alpha1"}"#;
        let e = exec_info(Some(alpha), false).expect_err("alpha");
        assert!(e.message().contains("v1alpha1"), "{e}");
        assert!(exec_info(Some("{"), false).is_err());
    }

    /// Issue 18 (point 13): the server kubectl names (provideClusterInfo) is read, and with
    /// `kube_servers` set a call that names none or another server gets no token.
    #[test]
    fn only_listed_servers_get_a_token() {
        let with_cluster = r#"{"apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false,"cluster":{"server":"https://k8s.example:6443"}}}"#;
        let info = exec_info(Some(with_cluster), false).expect("v1");
        assert_eq!(info.server.as_deref(), Some("https://k8s.example:6443"));

        use latchkey_core::config::{Paths, Scopes, Settings, Sources};
        let flags = Settings {
            issuer: Some("https://id.example.com".into()),
            client_id: Some("app".into()),
            kube_servers: Some(Scopes::Text("https://k8s.example:6443".into())),
            ..Default::default()
        };
        let paths = Paths {
            user_file: None,
            system_file: None,
            identity: latchkey_identity::LATCHKEY,
        };
        let config = Sources::load(flags, &paths, &|_: &str| None)
            .and_then(|s| s.resolve())
            .expect("config");
        assert!(check_server(&config, Some("https://k8s.example:6443")).is_ok());
        let e = check_server(&config, Some("https://evil.example\u{1b}[2J")).expect_err("other");
        assert!(e.message().contains("not in kube_servers"), "{e}");
        assert!(!e.message().contains('\u{1b}'), "sanitized: {e}");
        let e = check_server(&config, None).expect_err("unnamed");
        assert!(e.message().contains("provideClusterInfo"), "{e}");
    }
}
