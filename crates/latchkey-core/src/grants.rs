//! What the signed-in account is allowed to do, as the provider says it: roles, groups,
//! permissions, scopes, directory roles and entitlements, read from the ID token, from a JWT
//! access token and from userinfo, each labelled with where it came from.
//!
//! Providers put these in different places under different names; this module knows the
//! well-known shapes:
//!
//! | provider | claims |
//! |---|---|
//! | Keycloak | `realm_access.roles`, `resource_access.<client>.roles` |
//! | Microsoft Entra ID | `roles` (app roles), `groups` (with the `_claim_names`/`hasgroups` overage marker), `wids` (directory roles), `scp` |
//! | Okta | `groups`, `scp` |
//! | Auth0 | `permissions`, namespaced claims such as `https://example.com/roles` |
//! | any | `roles`, `groups`, `permissions`, `entitlements`; `scope` and `scp` of the access token |
//!
//! **For display only.** The ID token's claims were verified when it was received. The access
//! token is meant for its resource server, not for this app (RFC 9068 §6, RFC 6749 §10.3): it is
//! decoded here *without verification*, so what it says is shown, never relied on. The result
//! holds no token, only claim values, bounded in number and length and cleaned of control
//! characters, so it is safe for a UI, JSON output and logs.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::sanitize;

/// At most this many entries are kept in all (an Entra token lists up to 200 groups).
pub const MAX_GRANTS: usize = 256;
/// Longer values are left out (counted in [`Grants::omitted`]) rather than cut: a shortened
/// group name would name a different group.
pub const MAX_GRANT_VALUE: usize = 256;
/// `resource_access` lists at most this many clients.
const MAX_CLIENTS: usize = 32;

/// What an entry grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GrantKind {
    Role,
    Group,
    Permission,
    /// A scope of the access token (`scope`, `scp`).
    Scope,
    /// A Microsoft Entra directory role (`wids`), by its role template ID.
    DirectoryRole,
    Entitlement,
}

impl GrantKind {
    /// Every kind, in the order a UI lists them.
    pub const ALL: [GrantKind; 6] = [
        GrantKind::Role,
        GrantKind::Group,
        GrantKind::DirectoryRole,
        GrantKind::Permission,
        GrantKind::Entitlement,
        GrantKind::Scope,
    ];

    /// A plain name for a heading.
    pub fn label(self) -> &'static str {
        match self {
            GrantKind::Role => "Roles",
            GrantKind::Group => "Groups",
            GrantKind::Permission => "Permissions",
            GrantKind::Scope => "Access token scopes",
            GrantKind::DirectoryRole => "Directory roles (Entra ID)",
            GrantKind::Entitlement => "Entitlements",
        }
    }
}

/// Where an entry was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GrantSource {
    /// The ID token, verified when it was received.
    IdToken,
    /// A JWT access token, decoded without verification (informational).
    AccessToken,
    /// The userinfo response (OIDC Core §5.3).
    Userinfo,
}

impl GrantSource {
    pub fn label(self) -> &'static str {
        match self {
            GrantSource::IdToken => "ID token",
            GrantSource::AccessToken => "access token",
            GrantSource::Userinfo => "userinfo",
        }
    }
}

/// One granted role, group, permission, ...
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Grant {
    pub kind: GrantKind,
    pub value: String,
    pub source: GrantSource,
    /// The claim it was read from, as a path: `roles`, `realm_access.roles`,
    /// `resource_access.<client>.roles`, `https://example.com/roles`.
    pub claim: String,
    /// A plain name for a well-known value: an Entra directory role's name for its template ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Everything granted, from every source. Contains no token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Grants {
    pub entries: Vec<Grant>,
    /// Entra ID left the groups out because there are too many to list (`_claim_names.groups`,
    /// `hasgroups`): "too many groups to list".
    #[serde(default)]
    pub groups_overage: bool,
    /// Values left out: over [`MAX_GRANTS`], longer than [`MAX_GRANT_VALUE`], or not text.
    #[serde(default)]
    pub omitted: usize,
}

impl Grants {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && !self.groups_overage && self.omitted == 0
    }

    /// The entries of one kind, in the order they were read.
    pub fn of_kind(&self, kind: GrantKind) -> impl Iterator<Item = &Grant> {
        self.entries.iter().filter(move |g| g.kind == kind)
    }

    /// Reads the well-known claims of one source: a JWT payload or a userinfo response.
    pub(crate) fn read(claims: &Value, source: GrantSource) -> Self {
        let mut out = Grants::default();
        let Some(map) = claims.as_object() else {
            return out;
        };
        for (name, kind) in [
            ("roles", GrantKind::Role),
            ("groups", GrantKind::Group),
            ("permissions", GrantKind::Permission),
            ("entitlements", GrantKind::Entitlement),
            ("wids", GrantKind::DirectoryRole),
        ] {
            if let Some(v) = map.get(name) {
                out.add_values(kind, source, name, v);
            }
        }
        // Keycloak: realm roles, then each client's roles.
        if let Some(v) = map.get("realm_access").and_then(|r| r.get("roles")) {
            out.add_values(GrantKind::Role, source, "realm_access.roles", v);
        }
        if let Some(clients) = map.get("resource_access").and_then(Value::as_object) {
            for (client, access) in clients.iter().take(MAX_CLIENTS) {
                if let Some(v) = access.get("roles") {
                    let claim = format!("resource_access.{}.roles", sanitize(client));
                    out.add_values(GrantKind::Role, source, &claim, v);
                }
            }
            out.omitted += clients.len().saturating_sub(MAX_CLIENTS);
        }
        // The scopes an access token carries (RFC 9068 §2.2.3 `scope`; Entra and Okta `scp`).
        // Elsewhere `scope` is not a grant.
        if source == GrantSource::AccessToken {
            for name in ["scope", "scp"] {
                if let Some(v) = map.get(name) {
                    out.add_values(GrantKind::Scope, source, name, v);
                }
            }
        }
        // Namespaced claims (Auth0 rules and actions, ADFS): a URI whose last segment names the
        // kind, e.g. `https://example.com/roles`.
        for (name, v) in map {
            if let Some(kind) = namespaced_kind(name) {
                out.add_values(kind, source, &sanitize(name), v);
            }
        }
        // Entra ID: more groups than a token holds (200 in a JWT) are replaced by a reference
        // to Microsoft Graph in `_claim_names`, or by `hasgroups: true` in the implicit flow.
        out.groups_overage = map
            .get("_claim_names")
            .and_then(|n| n.get("groups"))
            .is_some()
            || map.get("hasgroups").and_then(Value::as_bool) == Some(true);
        out
    }

    /// Joins several sources, still bounded by [`MAX_GRANTS`].
    pub(crate) fn merge(parts: impl IntoIterator<Item = Grants>) -> Self {
        let mut out = Grants::default();
        for part in parts {
            out.groups_overage |= part.groups_overage;
            out.omitted += part.omitted;
            for g in part.entries {
                out.push(g);
            }
        }
        out
    }

    /// A claim's values: an array of strings (or of SCIM-style `{"value": ...}` objects), or a
    /// string. Scope strings are space-separated (RFC 6749 §3.3); other strings are one value,
    /// except Entra's `wids`, which some token versions send comma-separated.
    fn add_values(&mut self, kind: GrantKind, source: GrantSource, claim: &str, v: &Value) {
        let text = |item: &Value| -> Option<String> {
            match item {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o.get("value").and_then(Value::as_str).map(str::to_owned),
                _ => None,
            }
        };
        let values: Vec<Option<String>> = match v {
            Value::Array(items) => items.iter().map(text).collect(),
            Value::String(s) if kind == GrantKind::Scope => {
                s.split(' ').map(|p| Some(p.to_owned())).collect()
            }
            Value::String(s) if kind == GrantKind::DirectoryRole => {
                s.split(',').map(|p| Some(p.to_owned())).collect()
            }
            Value::String(s) => vec![Some(s.clone())],
            Value::Null => Vec::new(),
            _ => vec![None],
        };
        for value in values {
            let Some(value) = value else {
                self.omitted += 1;
                continue;
            };
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            if value.chars().count() > MAX_GRANT_VALUE {
                self.omitted += 1;
                continue;
            }
            let value = sanitize(value).trim().to_owned();
            if value.is_empty() {
                continue;
            }
            let name = (kind == GrantKind::DirectoryRole)
                .then(|| entra_role_name(&value))
                .flatten()
                .map(str::to_owned);
            self.push(Grant {
                kind,
                value,
                source,
                claim: claim.to_owned(),
                name,
            });
        }
    }

    fn push(&mut self, g: Grant) {
        let duplicate = self.entries.iter().any(|e| {
            e.kind == g.kind && e.source == g.source && e.claim == g.claim && e.value == g.value
        });
        if duplicate {
            return;
        }
        if self.entries.len() >= MAX_GRANTS {
            self.omitted += 1;
            return;
        }
        self.entries.push(g);
    }
}

/// `https://example.com/roles` → roles; `http://schemas.microsoft.com/ws/2008/06/identity/claims/role`
/// → roles. Only URIs (`scheme://...`), so a plain claim such as `app_roles` is not taken.
fn namespaced_kind(name: &str) -> Option<GrantKind> {
    let (scheme, rest) = name.split_once("://")?;
    if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric()) || rest.is_empty() {
        return None;
    }
    let last = rest.rsplit(['/', ':', '#']).next()?.to_ascii_lowercase();
    match last.as_str() {
        "roles" | "role" => Some(GrantKind::Role),
        "groups" | "group" => Some(GrantKind::Group),
        "permissions" | "permission" => Some(GrantKind::Permission),
        "entitlements" | "entitlement" => Some(GrantKind::Entitlement),
        _ => None,
    }
}

/// Names of common Microsoft Entra built-in roles, by role template ID (the `wids` values), from
/// Microsoft's "Microsoft Entra built-in roles" reference. Others are shown by ID.
fn entra_role_name(id: &str) -> Option<&'static str> {
    const ROLES: &[(&str, &str)] = &[
        (
            "62e90394-69f5-4237-9190-012177145e10",
            "Global Administrator",
        ),
        ("f2ef992c-3afb-46b9-b7cf-a126ee74c451", "Global Reader"),
        ("b79fbf4d-3ef9-4689-8143-76b194e85509", "User"),
        (
            "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
            "Application Administrator",
        ),
        (
            "cf1c38e5-3621-4004-a7cb-879624dced7c",
            "Application Developer",
        ),
        (
            "158c047a-c907-4556-b7ef-446551a6b5f7",
            "Cloud Application Administrator",
        ),
        (
            "c4e39bd9-1100-46d3-8c65-fb160da0071f",
            "Authentication Administrator",
        ),
        (
            "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9",
            "Conditional Access Administrator",
        ),
        ("88d8e3e3-8f55-4a1e-953a-9b9898b8876b", "Directory Readers"),
        ("9360feb5-f418-4baa-8175-e2a00bac4301", "Directory Writers"),
        (
            "29232cdf-9323-42fd-ade2-1d097af3e4de",
            "Exchange Administrator",
        ),
        (
            "fdd7a751-b60b-444a-984c-02652fe8fa1c",
            "Groups Administrator",
        ),
        (
            "729827e3-9c14-49f7-bb1b-9608f156bbb8",
            "Helpdesk Administrator",
        ),
        (
            "3a2c62db-5318-420d-8d74-23affee5d9d5",
            "Intune Administrator",
        ),
        (
            "e8611ab8-c189-46e8-94e1-60213ab1f814",
            "Privileged Role Administrator",
        ),
        (
            "194ae4cb-b126-40b2-bd5b-6091b380977d",
            "Security Administrator",
        ),
        ("5d6b6bb7-de71-4623-b4af-96380a352509", "Security Reader"),
        (
            "f28a1f50-f6e7-4571-818b-6a12f2af6b6c",
            "SharePoint Administrator",
        ),
        (
            "69091246-20e8-4a56-aa4d-066075b2a7a8",
            "Teams Administrator",
        ),
        ("fe930be7-5e62-47db-91af-98c3a49a38b1", "User Administrator"),
    ];
    let id = id.to_ascii_lowercase();
    ROLES.iter().find(|(k, _)| *k == id).map(|(_, n)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values(g: &Grants, kind: GrantKind, claim: &str) -> Vec<String> {
        g.of_kind(kind)
            .filter(|e| e.claim == claim)
            .map(|e| e.value.clone())
            .collect()
    }

    /// A Keycloak access token (its default `roles` and `profile` client scopes).
    #[test]
    fn keycloak_realm_and_client_roles() {
        let at = json!({
            "exp": 1_700_000_300, "iat": 1_700_000_000, "jti": "4b1c",
            "iss": "https://sso.example.com/realms/acme", "aud": ["orders-api", "account"],
            "sub": "f1c1e6a0-6d1b-4d6b-9f8e-4f1f3a7c2b10", "typ": "Bearer", "azp": "orders-app",
            "realm_access": { "roles": ["default-roles-acme", "offline_access", "uma_authorization", "developer"] },
            "resource_access": {
                "orders-api": { "roles": ["orders:read", "orders:write"] },
                "account": { "roles": ["manage-account", "view-profile"] }
            },
            "scope": "openid email profile",
            "preferred_username": "alice"
        });
        let g = Grants::read(&at, GrantSource::AccessToken);
        assert_eq!(
            values(&g, GrantKind::Role, "realm_access.roles"),
            [
                "default-roles-acme",
                "offline_access",
                "uma_authorization",
                "developer"
            ]
        );
        assert_eq!(
            values(&g, GrantKind::Role, "resource_access.orders-api.roles"),
            ["orders:read", "orders:write"]
        );
        assert_eq!(
            values(&g, GrantKind::Role, "resource_access.account.roles"),
            ["manage-account", "view-profile"]
        );
        assert_eq!(
            values(&g, GrantKind::Scope, "scope"),
            ["openid", "email", "profile"]
        );
        assert!(
            g.entries
                .iter()
                .all(|e| e.source == GrantSource::AccessToken)
        );
        assert!(!g.groups_overage);
    }

    /// An Entra ID v2.0 ID token with app roles, group object IDs and directory roles, and an
    /// access token for a web API with `scp`.
    #[test]
    fn entra_roles_groups_wids_and_scp() {
        let id = json!({
            "aud": "6731de76-14a6-49ae-97bc-6eba6914391e",
            "iss": "https://login.microsoftonline.com/9122040d-6c67-4c5b-b112-36a304b66dad/v2.0",
            "iat": 1_536_361_411, "nbf": 1_536_361_411, "exp": 1_536_365_311,
            "name": "Abe Lincoln", "oid": "00000000-0000-0000-66f3-3332eca7ea81",
            "preferred_username": "AbeLi@microsoft.com",
            "roles": ["Orders.Approver", "Reader"],
            "groups": ["a5b9c2f4-6f4e-4d7a-9e3b-1c2d3e4f5a6b", "0d3e8c1a-2b4f-4c5d-8e9f-a0b1c2d3e4f5"],
            "wids": ["62e90394-69f5-4237-9190-012177145e10", "b79fbf4d-3ef9-4689-8143-76b194e85509"],
            "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
            "tid": "9122040d-6c67-4c5b-b112-36a304b66dad", "ver": "2.0"
        });
        let g = Grants::read(&id, GrantSource::IdToken);
        assert_eq!(
            values(&g, GrantKind::Role, "roles"),
            ["Orders.Approver", "Reader"]
        );
        assert_eq!(values(&g, GrantKind::Group, "groups").len(), 2);
        let wids: Vec<_> = g.of_kind(GrantKind::DirectoryRole).collect();
        assert_eq!(wids.len(), 2);
        assert_eq!(wids[0].name.as_deref(), Some("Global Administrator"));
        assert_eq!(wids[1].name.as_deref(), Some("User"));
        assert_eq!(
            g.of_kind(GrantKind::Scope).count(),
            0,
            "not from an ID token"
        );

        let at = json!({
            "aud": "api://orders", "iss": "https://login.microsoftonline.com/9122040d-6c67-4c5b-b112-36a304b66dad/v2.0",
            "scp": "Orders.Read Orders.Write", "roles": ["Reader"], "ver": "2.0",
            // v1.0 tokens have been seen with the IDs comma-separated in one string.
            "wids": "62e90394-69f5-4237-9190-012177145e10,0000aaaa-11bb-cccc-dd22-eeeeee333333"
        });
        let g = Grants::read(&at, GrantSource::AccessToken);
        assert_eq!(
            values(&g, GrantKind::Scope, "scp"),
            ["Orders.Read", "Orders.Write"]
        );
        let wids: Vec<_> = g.of_kind(GrantKind::DirectoryRole).collect();
        assert_eq!(wids.len(), 2);
        assert_eq!(wids[1].name, None, "an unknown template ID is shown as is");
    }

    /// Entra's groups overage: the groups are replaced by a Graph reference.
    #[test]
    fn entra_groups_overage() {
        let id = json!({
            "sub": "x", "roles": ["Reader"],
            "_claim_names": { "groups": "src1" },
            "_claim_sources": { "src1": { "endpoint": "https://graph.microsoft.com/v1.0/users/00000000-0000-0000-66f3-3332eca7ea81/getMemberObjects" } }
        });
        let g = Grants::read(&id, GrantSource::IdToken);
        assert!(g.groups_overage);
        assert_eq!(g.of_kind(GrantKind::Group).count(), 0);
        assert!(Grants::read(&json!({"hasgroups": true}), GrantSource::IdToken).groups_overage);
        assert!(!Grants::read(&json!({"hasgroups": false}), GrantSource::IdToken).groups_overage);
        let merged = Grants::merge([g, Grants::default()]);
        assert!(merged.groups_overage);
    }

    /// Okta: `groups` in the ID token (a groups claim filter), `scp` as an array in the access
    /// token of a custom authorization server.
    #[test]
    fn okta_groups_and_scp_array() {
        let id = json!({
            "sub": "00uid4BxXw6I6TV4m0g3", "ver": 1, "iss": "https://dev-123456.okta.com/oauth2/default",
            "aud": "0oaoesxtxmPf08QHk0h7", "groups": ["Everyone", "Engineering"]
        });
        let g = Grants::read(&id, GrantSource::IdToken);
        assert_eq!(
            values(&g, GrantKind::Group, "groups"),
            ["Everyone", "Engineering"]
        );
        let at = json!({
            "ver": 1, "jti": "AT.0mP4JKAZX1iACIT4vbEDF7LpvDVjxypPMf0D7uX39RE",
            "iss": "https://dev-123456.okta.com/oauth2/default", "aud": "api://default",
            "cid": "0oaoesxtxmPf08QHk0h7", "uid": "00uid4BxXw6I6TV4m0g3",
            "scp": ["openid", "profile", "orders:read"], "sub": "alice@example.com",
            "groups": ["Everyone"]
        });
        let g = Grants::read(&at, GrantSource::AccessToken);
        assert_eq!(
            values(&g, GrantKind::Scope, "scp"),
            ["openid", "profile", "orders:read"]
        );
        assert_eq!(values(&g, GrantKind::Group, "groups"), ["Everyone"]);
    }

    /// Auth0 with RBAC ("Add Permissions in the Access Token") and an Action adding namespaced
    /// role claims.
    #[test]
    fn auth0_permissions_and_namespaced_roles() {
        let at = json!({
            "iss": "https://acme.us.auth0.com/", "sub": "auth0|5f7c8ec7c33c6c004bbafe82",
            "aud": ["https://api.acme.example", "https://acme.us.auth0.com/userinfo"],
            "azp": "8BJqv8Rx2dZyHHuQ4a0r5GEoF0dJ0kHF", "scope": "openid profile email",
            "permissions": ["read:orders", "create:orders"],
            "https://acme.example/roles": ["admin", "editor"],
            "https://acme.example/groups": "finance",
            "https://acme.example/nickname": "al"
        });
        let g = Grants::read(&at, GrantSource::AccessToken);
        assert_eq!(
            values(&g, GrantKind::Permission, "permissions"),
            ["read:orders", "create:orders"]
        );
        assert_eq!(
            values(&g, GrantKind::Role, "https://acme.example/roles"),
            ["admin", "editor"]
        );
        assert_eq!(
            values(&g, GrantKind::Group, "https://acme.example/groups"),
            ["finance"]
        );
        assert_eq!(g.entries.len(), 8, "{g:?}");
        assert_eq!(
            namespaced_kind("http://schemas.microsoft.com/ws/2008/06/identity/claims/role"),
            Some(GrantKind::Role)
        );
        assert_eq!(namespaced_kind("app_roles"), None);
        assert_eq!(namespaced_kind("roles"), None);
    }

    /// Generic shapes from userinfo: SCIM-style entitlements, plain roles and groups; a
    /// userinfo `scope` is not an access token scope.
    #[test]
    fn generic_userinfo_shapes() {
        let ui = json!({
            "sub": "alice", "roles": "admin", "groups": ["staff", "staff", " "],
            "entitlements": [{"value": "urn:acme:beta"}, "urn:acme:export"],
            "permissions": ["reports:read"], "scope": "openid"
        });
        let g = Grants::read(&ui, GrantSource::Userinfo);
        assert_eq!(values(&g, GrantKind::Role, "roles"), ["admin"]);
        assert_eq!(
            values(&g, GrantKind::Group, "groups"),
            ["staff"],
            "duplicates and blanks dropped"
        );
        assert_eq!(
            values(&g, GrantKind::Entitlement, "entitlements"),
            ["urn:acme:beta", "urn:acme:export"]
        );
        assert_eq!(
            values(&g, GrantKind::Permission, "permissions"),
            ["reports:read"]
        );
        assert_eq!(g.of_kind(GrantKind::Scope).count(), 0);
        let json = serde_json::to_value(&g).expect("json");
        assert_eq!(json["entries"][0]["kind"], "role");
        assert_eq!(json["entries"][0]["source"], "userinfo");
        assert_eq!(json["entries"][0]["claim"], "roles");
    }

    #[test]
    fn sizes_are_bounded_and_text_is_cleaned() {
        let many: Vec<String> = (0..MAX_GRANTS + 10).map(|i| format!("g{i}")).collect();
        let long = "x".repeat(MAX_GRANT_VALUE + 1);
        let ui = json!({
            "groups": many, "roles": [long, 7, "ok\u{1b}[31m\u{7}"],
        });
        let g = Grants::read(&ui, GrantSource::Userinfo);
        assert_eq!(g.entries.len(), MAX_GRANTS);
        // The long role, the number, and the groups over the cap (one slot went to a role).
        assert_eq!(g.omitted, 1 + 1 + 11);
        let g = Grants::read(
            &json!({"roles": ["ok\u{1b}[31m\u{7}"]}),
            GrantSource::Userinfo,
        );
        assert_eq!(values(&g, GrantKind::Role, "roles"), ["ok"]);
        let merged = Grants::merge([
            Grants::read(&ui, GrantSource::Userinfo),
            Grants::read(&ui, GrantSource::IdToken),
        ]);
        assert_eq!(merged.entries.len(), MAX_GRANTS);
        assert!(Grants::read(&json!("not an object"), GrantSource::Userinfo).is_empty());
    }

    #[test]
    fn labels_are_plain() {
        let labels: Vec<_> = GrantKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(
            labels,
            [
                "Roles",
                "Groups",
                "Directory roles (Entra ID)",
                "Permissions",
                "Entitlements",
                "Access token scopes"
            ]
        );
        assert_eq!(GrantSource::AccessToken.label(), "access token");
    }
}
