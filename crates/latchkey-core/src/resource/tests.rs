use super::*;
use crate::testing::{Arc, FakeHttp};

const API: &str = "https://api.example/v1/";

fn prm(resource: &str, servers: &[&str]) -> String {
    serde_json::json!({
        "resource": resource,
        "authorization_servers": servers,
        "scopes_supported": ["read", "write"],
    })
    .to_string()
}

fn api() -> Url {
    Url::parse(API).expect("url")
}

#[test]
fn well_known_goes_between_host_and_path() {
    let u = |s: &str| Url::parse(s).expect("url");
    assert_eq!(
        well_known(
            &u("https://r.example/resource1"),
            "oauth-protected-resource"
        )
        .as_str(),
        "https://r.example/.well-known/oauth-protected-resource/resource1"
    );
    assert_eq!(
        well_known(&u("https://r.example/"), "oauth-protected-resource").as_str(),
        "https://r.example/.well-known/oauth-protected-resource"
    );
    assert_eq!(
        well_known(
            &u("https://as.example/tenant/a"),
            "oauth-authorization-server"
        )
        .as_str(),
        "https://as.example/.well-known/oauth-authorization-server/tenant/a"
    );
}

/// RFC 9728 §5.1: the 401's `resource_metadata` is followed, and its `scope` kept.
#[tokio::test]
async fn the_challenge_points_at_the_metadata() {
    let fake = Arc::new(FakeHttp::default());
    fake.route(
        API,
        401,
        &[(
            "www-authenticate",
            r#"Bearer resource_metadata="https://api.example/meta", scope="read""#,
        )],
        "",
    );
    fake.route(
        "https://api.example/meta",
        200,
        &[],
        &prm(API, &["https://as.example"]),
    );
    let found = discover(&fake.client(), &api()).await.expect("found");
    assert_eq!(found.authorization_servers, ["https://as.example"]);
    assert_eq!(found.challenge_scope.as_deref(), Some("read"));
    assert_eq!(found.metadata_url.as_str(), "https://api.example/meta");
    assert_eq!(fake.seen(), [API, "https://api.example/meta"]);
}

/// §3.1: without a challenge, the path-inserted location, then the host's root.
#[tokio::test]
async fn without_a_challenge_the_well_known_locations_are_tried_in_order() {
    let fake = Arc::new(FakeHttp::default());
    fake.route(
        "https://api.example/.well-known/oauth-protected-resource",
        200,
        &[],
        &prm(API, &["https://as.example"]),
    );
    let found = discover(&fake.client(), &api()).await.expect("found");
    assert_eq!(found.scopes_supported, ["read", "write"]);
    assert_eq!(
        fake.seen(),
        [
            API,
            "https://api.example/.well-known/oauth-protected-resource/v1",
            "https://api.example/.well-known/oauth-protected-resource",
        ]
    );
}

/// §3.3: a document about another resource stops everything, naming both.
#[tokio::test]
async fn a_document_for_another_resource_is_refused() {
    let fake = Arc::new(FakeHttp::default());
    fake.route(
        "https://api.example/.well-known/oauth-protected-resource/v1",
        200,
        &[],
        &prm("https://other.example/", &["https://as.example"]),
    );
    let e = discover(&fake.client(), &api())
        .await
        .expect_err("mismatch");
    assert_eq!(e.kind(), ErrorKind::ProviderInvalid);
    assert!(e.message().contains("RFC 9728 §3.3"), "{e}");
    assert!(e.message().contains("https://other.example/"), "{e}");
    assert!(e.message().contains(API), "{e}");
}

#[tokio::test]
async fn a_plain_http_pointer_or_resource_is_refused() {
    let fake = Arc::new(FakeHttp::default());
    fake.route(
        API,
        401,
        &[(
            "www-authenticate",
            r#"Bearer resource_metadata="http://evil.example/m""#,
        )],
        "",
    );
    let e = discover(&fake.client(), &api()).await.expect_err("http");
    assert!(e.message().contains("not https"), "{e}");
    let http = Url::parse("http://api.example/").expect("url");
    let e = discover(&fake.client(), &http).await.expect_err("http");
    assert!(
        e.message().contains("the resource `http://api.example/`"),
        "{e}"
    );
}

#[test]
fn the_configured_issuer_must_be_listed_else_the_first_is_taken() {
    let found = ProtectedResource {
        resource: api(),
        authorization_servers: vec!["https://a.example".into(), "https://b.example".into()],
        scopes_supported: Vec::new(),
        challenge_scope: None,
        metadata_url: api(),
    };
    assert_eq!(
        authorization_server(&found, None).expect("first"),
        "https://a.example"
    );
    assert_eq!(
        authorization_server(&found, Some("https://b.example")).expect("listed"),
        "https://b.example"
    );
    let e = authorization_server(&found, Some("https://c.example")).expect_err("not listed");
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(
        e.message().contains("https://a.example, https://b.example"),
        "{e}"
    );
}

/// RFC 8414 §3.1 first, then OIDC Discovery; §3.3: the issuer must be the one asked for.
#[tokio::test]
async fn server_metadata_prefers_rfc_8414_and_checks_the_issuer() {
    let fake = Arc::new(FakeHttp::default());
    let issuer = "https://as.example/tenant";
    fake.route(
        "https://as.example/tenant/.well-known/openid-configuration",
        200,
        &[],
        &serde_json::json!({ "issuer": issuer }).to_string(),
    );
    let (_, oidc) = server_metadata(&fake.client(), issuer).await.expect("oidc");
    assert!(oidc, "found by OpenID Connect Discovery");
    assert_eq!(
        fake.seen(),
        [
            "https://as.example/.well-known/oauth-authorization-server/tenant",
            "https://as.example/tenant/.well-known/openid-configuration",
        ]
    );

    fake.route(
        "https://as.example/.well-known/oauth-authorization-server/tenant",
        200,
        &[],
        &serde_json::json!({ "issuer": issuer, "scopes_supported": ["read"] }).to_string(),
    );
    let (doc, oidc) = server_metadata(&fake.client(), issuer)
        .await
        .expect("oauth");
    assert!(!oidc, "an OAuth-only server");
    assert_eq!(doc["scopes_supported"][0], "read");

    fake.route(
        "https://as.example/.well-known/oauth-authorization-server/tenant",
        200,
        &[],
        &serde_json::json!({ "issuer": "https://evil.example" }).to_string(),
    );
    let e = server_metadata(&fake.client(), issuer)
        .await
        .expect_err("mismatch");
    assert!(e.message().contains("RFC 8414 §3.3"), "{e}");
    assert!(e.message().contains("https://evil.example"), "{e}");
}
