//! Which sign-in a front end runs, decided here and nowhere else: the route (the app's own link,
//! a loopback listener or a code on another device), then the flow's response mode, PAR and DPoP
//! from the configuration and the provider's metadata, before any browser opens or code is shown.

use url::Url;

use crate::config::{AppRedirect, Config, FlowChoice, UseChoice};
use crate::context::Context;
use crate::discovery::Provider;
use crate::dpop::{self, DpopKey};
use crate::error::{Error, ErrorKind, Result, sanitize};
use crate::flow::ResponseMode;
use crate::util::oauth_code;

/// What a front end can receive the provider's answer on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrontEnd {
    /// A terminal: a loopback listener (RFC 8252 §7.3), or a code typed on another device.
    Terminal,
    /// An app that receives its own links (a private-use URI scheme, RFC 8252 §7.1), or a
    /// loopback listener when `app_redirect = "loopback"`.
    App,
}

/// How the configured sign-in runs for a front end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignInRoute {
    /// The browser, back to the app's own link: [`begin`](crate::Latchkey::begin) with the app's
    /// redirect URI, then [`resume`](crate::Latchkey::resume) for each link the OS delivers.
    AppLink,
    /// The browser, back to a listener on 127.0.0.1 that this process runs:
    /// [`login_loopback`](crate::Latchkey::login_loopback).
    Loopback,
    /// A code to enter on another device (RFC 8628): [`login_device`](crate::Latchkey::login_device).
    Device,
}

/// The route `config` takes on `front`. An app has no device sign-in. The flows whose response
/// carries an ID token (hybrid, implicit) take the loopback listener in an app too: a link of
/// the app's scheme reaches it as a new process's argv on Linux and Windows, which every local
/// user can read (`/proc/<pid>/cmdline`), and an implicit form POST cannot reach a link at all.
pub(crate) fn route(config: &Config, front: FrontEnd) -> Result<SignInRoute> {
    let loopback_app = config.app_redirect == AppRedirect::Loopback;
    match (config.flow, front) {
        (FlowChoice::Device, FrontEnd::Terminal) => Ok(SignInRoute::Device),
        (FlowChoice::Device, _) => Err(device_not_offered()),
        (_, FrontEnd::Terminal) => Ok(SignInRoute::Loopback),
        (FlowChoice::Hybrid | FlowChoice::Implicit, _) => Ok(SignInRoute::Loopback),
        _ if loopback_app => Ok(SignInRoute::Loopback),
        _ => Ok(SignInRoute::AppLink),
    }
}

fn device_not_offered() -> Error {
    Error::config(
        "`flow = device` signs in with a code on another device, which this front end does not offer; set flow to code",
    )
}

fn needs_loopback(flow: FlowChoice) -> Error {
    Error::config(format!(
        "`flow = {}` works only with the loopback redirect, as its response carries an ID token that an app's link would expose to every local user (or, for implicit, a form POST a link cannot receive); sign in through the loopback listener or set flow to code",
        flow.as_str()
    ))
}

/// A fresh DPoP key for a sign-in when `dpop` and the provider say so, decided before any
/// browser opens or code is shown.
pub(crate) fn dpop_key_for(ctx: &Context, provider: &Provider) -> Result<Option<DpopKey>> {
    if dpop_wanted(ctx.config.dpop, provider)? {
        Ok(Some(DpopKey::generate()?))
    } else {
        Ok(None)
    }
}

/// Refuses a sign-in of another flow than `flow` configured: each flow has its own entry
/// point ([`begin`](super::authorize::begin) for `code`, [`login_device`](super::device::login_device)).
pub(crate) fn flow_is(ctx: &Context, flow: FlowChoice) -> Result<()> {
    let configured = ctx.config.flow;
    if configured == flow {
        return Ok(());
    }
    if configured == FlowChoice::Device {
        return Err(device_not_offered());
    }
    Err(Error::config(format!(
        "`flow = {}` does not sign in this way; set flow to {}",
        configured.as_str(),
        flow.as_str()
    )))
}

/// The browser flow `begin` runs for `redirect_uri`, and how its response comes back: the
/// query for `code`; a form POST to a loopback listener for `hybrid` and `implicit`, whose ID
/// token a custom-scheme link would put in a process's argv.
pub(crate) fn browser_flow(
    ctx: &Context,
    redirect_uri: &Url,
) -> Result<(FlowChoice, ResponseMode)> {
    let web = matches!(redirect_uri.scheme(), "http" | "https");
    match ctx.config.flow {
        FlowChoice::Hybrid | FlowChoice::Implicit if web => {
            Ok((ctx.config.flow, ResponseMode::FormPost))
        }
        flow @ (FlowChoice::Hybrid | FlowChoice::Implicit) => Err(needs_loopback(flow)),
        FlowChoice::Code => Ok((FlowChoice::Code, ResponseMode::Query)),
        _ => flow_is(ctx, FlowChoice::Code).map(|()| (FlowChoice::Code, ResponseMode::Query)),
    }
}

/// Refuses, before any browser opens, a flow whose `response_type` the provider does not list
/// (OIDC Discovery §3, `response_types_supported`), or a response mode it lists without
/// (`response_modes_supported`; many providers omit the list, which is not taken as a no).
pub(crate) fn browser_flow_offered(
    provider: &Provider,
    flow: FlowChoice,
    mode: ResponseMode,
) -> Result<()> {
    let wanted: &[&str] = match flow {
        FlowChoice::Hybrid => &["code", "id_token"],
        FlowChoice::Implicit => &["id_token"],
        _ => return Ok(()),
    };
    let offered = provider
        .metadata
        .response_types_supported()
        .iter()
        .any(|types| {
            let mut names: Vec<String> = types.iter().map(oauth_code).collect();
            names.sort();
            names == wanted
        });
    if !offered {
        return Err(Error::new(
            ErrorKind::ProviderInvalid,
            format!(
                "the provider does not offer response_type `{}` (response_types_supported), which `flow = {}` needs; set flow to code",
                wanted.join(" "),
                flow.as_str()
            ),
        ));
    }
    if let Some(modes) = provider.metadata.response_modes_supported()
        && !modes.iter().any(|m| oauth_code(m) == mode.as_str())
    {
        return Err(Error::new(
            ErrorKind::ProviderInvalid,
            format!(
                "the provider does not offer response_mode `{}` (response_modes_supported), which `flow = {}` needs here; set flow to code",
                mode.as_str(),
                flow.as_str()
            ),
        ));
    }
    Ok(())
}

/// The PAR endpoint this sign-in pushes to, or `None` for a plain front-channel request. Decided
/// before any browser opens: `always` without an endpoint, and `never` (or a provider without
/// an endpoint) where the provider requires PAR, are errors.
pub(crate) fn par_endpoint(choice: UseChoice, provider: &Provider) -> Result<Option<&str>> {
    let extra = provider.extra();
    let endpoint = extra.pushed_authorization_request_endpoint.as_deref();
    let required = extra.require_pushed_authorization_requests == Some(true);
    match (choice, endpoint) {
        (UseChoice::Never, _) if required => Err(Error::config(
            "`par` is never, but the provider requires pushed authorization requests (require_pushed_authorization_requests); set par to auto",
        )),
        (UseChoice::Never, _) => Ok(None),
        (_, Some(e)) => Ok(Some(e)),
        (UseChoice::Always, None) => Err(Error::config(
            "`par` is always, but the provider has no pushed_authorization_request_endpoint; set par to auto",
        )),
        (_, None) if required => Err(Error::new(
            ErrorKind::ProviderInvalid,
            "the provider requires pushed authorization requests but names no pushed_authorization_request_endpoint",
        )),
        (_, None) => Ok(None),
    }
}

/// Whether this sign-in uses DPoP: `auto` when the provider lists ES256 in
/// `dpop_signing_alg_values_supported` (RFC 9449 §5.1), `always` insists, `never` never.
/// Decided before any browser opens, like `par`.
pub(crate) fn dpop_wanted(choice: UseChoice, provider: &Provider) -> Result<bool> {
    let algs = provider
        .extra()
        .dpop_signing_alg_values_supported
        .as_deref();
    let offered = algs.is_some_and(|a| a.iter().any(|x| x == dpop::ALG));
    match choice {
        UseChoice::Never => Ok(false),
        UseChoice::Auto => Ok(offered),
        UseChoice::Always if offered => Ok(true),
        UseChoice::Always => Err(Error::config(match algs {
            None => "`dpop` is always, but the provider offers no DPoP (no dpop_signing_alg_values_supported); set dpop to auto or never".to_owned(),
            Some(a) => format!(
                "`dpop` is always, but the provider's DPoP does not offer ES256 (dpop_signing_alg_values_supported: {}); set dpop to auto or never",
                sanitize(&a.join(" "))
            ),
        })),
    }
}

/// The configured scopes less `offline_access`: the front channel never returns a refresh token
/// (RFC 6749 §4.2.2), so asking for one would only show up as a denied scope.
pub(crate) fn implicit_scopes(scopes: &[String]) -> Vec<String> {
    scopes
        .iter()
        .filter(|s| *s != "offline_access")
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn each_front_end_gets_one_route_for_each_flow() {
        let config = |flow, app_redirect| Config {
            flow,
            app_redirect,
            ..crate::testing::config("https://id.example")
        };
        use AppRedirect::{Loopback, Scheme};
        use FlowChoice::{Code, Device, Hybrid, Implicit};
        for flow in [Code, Hybrid, Implicit] {
            for redirect in [Scheme, Loopback] {
                let c = config(flow, redirect);
                assert_eq!(
                    route(&c, FrontEnd::Terminal).ok(),
                    Some(SignInRoute::Loopback)
                );
            }
            let c = config(flow, Loopback);
            assert_eq!(route(&c, FrontEnd::App).ok(), Some(SignInRoute::Loopback));
        }
        // Only the code flow uses the app's link: an ID token in the response would sit in a
        // new process's argv (issue 18, M4).
        let c = config(Code, Scheme);
        assert_eq!(route(&c, FrontEnd::App).ok(), Some(SignInRoute::AppLink));
        for flow in [Hybrid, Implicit] {
            let c = config(flow, Scheme);
            assert_eq!(
                route(&c, FrontEnd::App).ok(),
                Some(SignInRoute::Loopback),
                "{flow:?}"
            );
        }
        let device = config(Device, Scheme);
        assert_eq!(
            route(&device, FrontEnd::Terminal).ok(),
            Some(SignInRoute::Device)
        );
        let e = route(&device, FrontEnd::App).expect_err("no device sign-in in an app");
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(
            e.message().contains("which this front end does not offer"),
            "{e}"
        );
    }

    fn provider(extra: serde_json::Value) -> Provider {
        let mut m = crate::discovery::minimal_metadata("https://id.example");
        for (k, v) in extra.as_object().expect("object") {
            m[k] = v.clone();
        }
        Provider::for_tests(m, openidconnect::JsonWebKeySet::new(Vec::new()))
    }

    #[test]
    fn the_choice_meets_the_metadata_before_any_browser_opens() {
        let none = provider(serde_json::json!({}));
        let offered = provider(serde_json::json!({
            "pushed_authorization_request_endpoint": "https://id.example/par"
        }));
        let required = provider(serde_json::json!({
            "pushed_authorization_request_endpoint": "https://id.example/par",
            "require_pushed_authorization_requests": true
        }));
        let required_without = provider(serde_json::json!({
            "require_pushed_authorization_requests": true
        }));
        let par = Some("https://id.example/par");
        assert_eq!(par_endpoint(UseChoice::Auto, &none).expect("ok"), None);
        assert_eq!(par_endpoint(UseChoice::Auto, &offered).expect("ok"), par);
        assert_eq!(par_endpoint(UseChoice::Auto, &required).expect("ok"), par);
        assert_eq!(par_endpoint(UseChoice::Always, &offered).expect("ok"), par);
        assert_eq!(par_endpoint(UseChoice::Never, &offered).expect("ok"), None);
        let e = par_endpoint(UseChoice::Always, &none).expect_err("no endpoint");
        assert!(
            e.message()
                .contains("pushed_authorization_request_endpoint"),
            "{e}"
        );
        let e = par_endpoint(UseChoice::Never, &required).expect_err("required");
        assert!(
            e.message()
                .contains("require_pushed_authorization_requests"),
            "{e}"
        );
        let e = par_endpoint(UseChoice::Auto, &required_without).expect_err("required, none named");
        assert_eq!(e.kind(), ErrorKind::ProviderInvalid, "{e}");
        assert!(
            e.message()
                .contains("names no pushed_authorization_request_endpoint"),
            "{e}"
        );
    }

    #[test]
    fn a_plain_http_par_endpoint_of_an_https_issuer_is_refused() {
        let mut m = crate::discovery::minimal_metadata("https://id.example");
        m["pushed_authorization_request_endpoint"] = serde_json::json!("http://id.example/par");
        let e = crate::discovery::validate_metadata("https://id.example", &m).expect_err("http");
        assert!(e.message().contains("is not https"), "{e}");
    }
}
