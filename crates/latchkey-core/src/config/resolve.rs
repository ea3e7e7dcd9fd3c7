//! Stage 2, resolution: the [`Merged`] values, one per key with its source, validated into the
//! [`Config`] the rest of the program reads. Each key group has its own check, and every error
//! names the key and the source that set it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use url::Url;

use super::{
    ClientSecret, Config, DEFAULT_LOGIN_TIMEOUT, DEFAULT_LOOPBACK_REDIRECT, DEFAULT_SCOPES, Source,
    Value, split_scopes,
};
use crate::error::{Error, Result};

/// Parameters the core sets itself; configuring them would break the protocol.
const RESERVED_AUTH_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "request",
    "request_uri",
    // Chosen by the flow and the redirect (query, fragment or form_post), and checked on return.
    "response_mode",
];

/// Merged values with their sources; what the app shows in its first-run form.
#[derive(Debug, Clone)]
pub struct Merged {
    pub profile: String,
    pub(super) values: BTreeMap<&'static str, (Source, Value)>,
    pub(super) locked: BTreeSet<String>,
    /// The app's variable prefix, for messages that name a variable.
    pub(super) env_prefix: &'static str,
}

impl Merged {
    /// A key's merged value as text (lists joined by spaces), with its source.
    pub fn text(&self, key: &str) -> Option<(String, &Source)> {
        self.values.get(key).map(|(src, v)| {
            let text = match v {
                Value::Text(t) => t.clone(),
                Value::List(l) => l.join(" "),
                Value::Map(m) => m
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("&"),
            };
            (text, src)
        })
    }

    /// Whether the managed file locks `key` and its value is the managed file's. A lock applies
    /// only to keys the managed file sets (see [`Sources::merged`](super::Sources::merged)):
    /// another key it names keeps the value of another source, which is the user's to change.
    pub fn is_locked(&self, key: &str) -> bool {
        self.locked.contains(key)
            && matches!(self.values.get(key), Some((Source::SystemFile(_), _)))
    }

    fn source(&self, key: &str) -> String {
        self.values
            .get(key)
            .map(|(s, _)| s.to_string())
            .unwrap_or_else(|| Source::Default.to_string())
    }

    /// The configuration to sign in with. The fields are checked in the order written, so with
    /// several bad keys the error names the same one as before the checks were split.
    pub(super) fn validate(&self) -> Result<Config> {
        Ok(Config {
            issuer: self.issuer()?,
            client_id: self.client_id()?,
            scopes: self.scopes()?,
            redirect_uri: self.redirect_uri()?,
            profile: self.profile_name()?,
            login_timeout: self.login_timeout()?,
            extra_auth_params: self.extra_auth_params()?,
            post_logout_redirect_uri: self.post_logout_redirect_uri()?,
            client_secret: self
                .trimmed("client_secret")
                .filter(|s| !s.is_empty())
                .map(ClientSecret),
            scope_descriptions: self.map("scope_descriptions"),
            store: self.choice("store", super::StoreChoice::parse)?,
            git_hosts: self.git_hosts()?,
            git_username: self.git_username()?,
            kube_servers: self.kube_servers()?,
            flow: self.choice("flow", super::FlowChoice::parse)?,
            par: self.choice("par", super::UseChoice::parse)?,
            dpop: self.choice("dpop", super::UseChoice::parse)?,
            app_redirect: self.choice("app_redirect", super::AppRedirect::parse)?,
        })
    }

    /// An error about `key`, naming where its value came from.
    fn invalid(&self, key: &str, why: String) -> Error {
        Error::config(format!("`{key}` from {}: {why}", self.source(key)))
    }

    /// A text key's value, trimmed.
    fn trimmed(&self, key: &str) -> Option<String> {
        match self.values.get(key) {
            Some((_, Value::Text(t))) => Some(t.trim().to_owned()),
            _ => None,
        }
    }

    fn map(&self, key: &str) -> BTreeMap<String, String> {
        match self.values.get(key) {
            Some((_, Value::Map(m))) => m.clone(),
            _ => BTreeMap::new(),
        }
    }

    /// A choice key (`store`, `flow`, `par`, `dpop`, `app_redirect`): its parser, or its default
    /// when unset.
    fn choice<T: Default>(&self, key: &str, parse: fn(&str) -> Result<T, String>) -> Result<T> {
        match self.trimmed(key) {
            None => Ok(T::default()),
            Some(t) => parse(&t).map_err(|why| self.invalid(key, why)),
        }
    }
}

/// The provider: who signs the user in, and as which client.
impl Merged {
    fn issuer(&self) -> Result<String> {
        let issuer = self
            .trimmed("issuer")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::config(format!(
                    "no issuer configured; set ${}_ISSUER or add `issuer` to the config file",
                    self.env_prefix
                ))
            })?;
        validate_issuer(&issuer).map_err(|why| self.invalid("issuer", why))?;
        Ok(issuer)
    }

    fn client_id(&self) -> Result<String> {
        let client_id = self
            .trimmed("client_id")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::config(format!(
                    "no client_id configured; set ${}_CLIENT_ID or add `client_id` to the config file",
                    self.env_prefix
                ))
            })?;
        if client_id.chars().any(|c| c.is_control()) {
            return Err(self.invalid("client_id", "contains control characters".into()));
        }
        Ok(client_id)
    }
}

/// The sign-in request: what is asked for, where the answer comes back, how long it may take.
impl Merged {
    fn scopes(&self) -> Result<Vec<String>> {
        let scopes = match self.values.get("scopes") {
            Some((_, Value::List(l))) => l.clone(),
            _ => split_scopes(DEFAULT_SCOPES),
        };
        normalize_scopes(scopes).map_err(|why| self.invalid("scopes", why))
    }

    fn redirect_uri(&self) -> Result<Url> {
        let uri = self
            .trimmed("redirect_uri")
            .unwrap_or_else(|| DEFAULT_LOOPBACK_REDIRECT.into());
        validate_loopback_redirect(&uri).map_err(|why| self.invalid("redirect_uri", why))
    }

    fn login_timeout(&self) -> Result<Duration> {
        match self.trimmed("login_timeout") {
            None => Ok(DEFAULT_LOGIN_TIMEOUT),
            Some(t) => parse_duration(&t).map_err(|why| self.invalid("login_timeout", why)),
        }
    }

    fn extra_auth_params(&self) -> Result<BTreeMap<String, String>> {
        let params = self.map("extra_auth_params");
        if let Some(k) = params
            .keys()
            .find(|k| RESERVED_AUTH_PARAMS.contains(&k.as_str()))
        {
            return Err(self.invalid(
                "extra_auth_params",
                format!("`{k}` is set by the app itself and cannot be configured"),
            ));
        }
        Ok(params)
    }

    fn post_logout_redirect_uri(&self) -> Result<Option<Url>> {
        self.trimmed("post_logout_redirect_uri")
            .map(|u| {
                Url::parse(&u).map_err(|e| self.invalid("post_logout_redirect_uri", e.to_string()))
            })
            .transpose()
    }
}

/// Where the sessions are kept, and under which name: the profile and the git helper's keys.
impl Merged {
    /// The profile is part of the keychain entries' names, so it keeps to a safe alphabet.
    fn profile_name(&self) -> Result<String> {
        let profile = self.profile.trim().to_owned();
        if profile.is_empty()
            || profile.len() > 64
            || !profile
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
        {
            return Err(Error::config(format!(
                "profile `{profile}` is invalid; use 1-64 letters, digits, '-', '_', '.' or '@'"
            )));
        }
        Ok(profile)
    }

    fn git_hosts(&self) -> Result<Vec<String>> {
        self.list("git_hosts", validate_git_host)
    }

    fn kube_servers(&self) -> Result<Vec<Url>> {
        self.list("kube_servers", validate_kube_server)
    }

    /// A list key, each entry validated; none set is an empty list.
    fn list<T>(
        &self,
        key: &str,
        validate: fn(&str) -> std::result::Result<T, String>,
    ) -> Result<Vec<T>> {
        match self.values.get(key) {
            Some((_, Value::List(l))) => l
                .iter()
                .map(|v| validate(v))
                .collect::<std::result::Result<_, _>>()
                .map_err(|why| self.invalid(key, why)),
            _ => Ok(Vec::new()),
        }
    }

    fn git_username(&self) -> Result<String> {
        match self.trimmed("git_username") {
            None => Ok("oauth2".into()),
            Some(u) if u.is_empty() || u.chars().any(|c| c.is_control()) => {
                Err(self.invalid("git_username", "must be a non-empty name".into()))
            }
            Some(u) => Ok(u),
        }
    }
}

/// A Kubernetes API server as kubeconfig names it (`clusters[].cluster.server`): an https URL
/// without query or fragment, plain http only on loopback, as for the issuer.
fn validate_kube_server(server: &str) -> std::result::Result<Url, String> {
    let s = server.trim();
    let url =
        Url::parse(s).map_err(|_| format!("`{s}` is not a URL; use https://k8s.example:6443"))?;
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "`{s}` has a query, fragment or user name; name the server only"
        ));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback_host(&url) => Ok(url),
        _ => Err(format!(
            "`{s}` is not https; a token goes only to https servers (or plain http on 127.0.0.1, ::1, localhost)"
        )),
    }
}

/// A git host as git names it in the credential protocol: `host` or `host:port`, lower-cased.
fn validate_git_host(host: &str) -> std::result::Result<String, String> {
    let h = host.trim().to_ascii_lowercase();
    let valid = !h.is_empty()
        && h.len() <= 255
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !valid {
        return Err(format!(
            "`{}` is not a host; use a name like git.example.com or git.example.com:8443",
            host.escape_debug()
        ));
    }
    Ok(h)
}

/// An issuer is an https URL without query or fragment; plain http only for loopback hosts, where
/// no network attacker sits between the app and the provider (RFC 8252 §8.3, OIDC Discovery §3).
pub fn validate_issuer(issuer: &str) -> Result<(), String> {
    let url = Url::parse(issuer).map_err(|e| format!("`{issuer}` is not a URL ({e})"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{issuer}` must not have a query or fragment"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(&url) => Ok(()),
        "http" => Err(format!(
            "`{issuer}` uses plain http; only https is allowed, except for 127.0.0.1, ::1 and localhost"
        )),
        other => Err(format!("`{issuer}` has scheme `{other}`; use https")),
    }
}

pub(crate) fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The CLI's redirect must be a loopback http URL (RFC 8252 §7.3); port 0 or none means ephemeral.
fn validate_loopback_redirect(uri: &str) -> Result<Url, String> {
    let url = Url::parse(uri).map_err(|e| format!("`{uri}` is not a URL ({e})"))?;
    if url.scheme() != "http" || !is_loopback_host(&url) {
        return Err(format!(
            "`{uri}` must be a loopback URL like http://127.0.0.1/callback (RFC 8252 §7.3)"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{uri}` must not have a query or fragment"));
    }
    Ok(url)
}

/// RFC 6749 §3.3: scope tokens are printable ASCII except `"` and `\`. `openid` is required.
fn normalize_scopes(scopes: Vec<String>) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = vec!["openid".into()];
    for s in scopes {
        if !s
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
        {
            return Err(format!("`{s}` is not a valid scope token (RFC 6749 §3.3)"));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

fn parse_duration(t: &str) -> Result<Duration, String> {
    let t = t.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix('m') {
        (n, 60)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1)
    } else {
        (t, 1)
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{t}` is not a duration; use seconds like 300 or \"5m\""))?;
    let secs = n.saturating_mul(mult);
    if !(10..=3600).contains(&secs) {
        return Err(format!("{secs} s is out of range; use 10 s to 60 min"));
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_issuer_only_for_loopback() {
        assert!(validate_issuer("http://127.0.0.1:8080").is_ok());
        assert!(validate_issuer("http://[::1]:8080/realm").is_ok());
        assert!(validate_issuer("http://localhost:3000").is_ok());
        assert!(validate_issuer("https://id.example.com/tenant").is_ok());
        let e = validate_issuer("http://id.example.com").expect_err("plain http");
        assert!(e.contains("only https"), "{e}");
        let e = validate_issuer("http://127.0.0.1.example.com").expect_err("not loopback");
        assert!(e.contains("only https"), "{e}");
        let e = validate_issuer("https://id.example.com/?x=1").expect_err("query");
        assert!(e.ends_with("must not have a query or fragment"), "{e}");
        let e = validate_issuer("ftp://id.example.com").expect_err("ftp");
        assert!(e.ends_with("has scheme `ftp`; use https"), "{e}");
        let e = validate_issuer("not a url").expect_err("no URL");
        assert!(e.starts_with("`not a url` is not a URL"), "{e}");
    }

    #[test]
    fn scopes_validated_and_openid_added() {
        assert_eq!(
            normalize_scopes(vec!["email".into(), "email".into()]).expect("ok"),
            ["openid", "email"]
        );
        let e = normalize_scopes(vec!["bad\"scope".into()]).expect_err("quote");
        assert_eq!(e, "`bad\"scope` is not a valid scope token (RFC 6749 §3.3)");
    }

    #[test]
    fn login_timeout_forms() {
        assert_eq!(parse_duration("90").expect("n"), Duration::from_secs(90));
        assert_eq!(parse_duration("2m").expect("m"), Duration::from_secs(120));
        assert_eq!(
            parse_duration("1").expect_err("too short"),
            "1 s is out of range; use 10 s to 60 min"
        );
        let e = parse_duration("soon").expect_err("not a number");
        assert!(e.starts_with("`soon` is not a duration"), "{e}");
    }

    #[test]
    fn cli_redirect_must_be_loopback() {
        assert!(validate_loopback_redirect("http://127.0.0.1:8400/cb").is_ok());
        for uri in ["com.example.app:/callback", "https://app.example/cb"] {
            let e = validate_loopback_redirect(uri).expect_err("not loopback");
            assert!(e.contains("must be a loopback URL"), "{uri}: {e}");
        }
    }
}
