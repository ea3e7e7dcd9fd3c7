//! What `status`, `login` and `accounts` print: the identity and its grants, as text or JSON.

use latchkey_core::{Error, Identity, Latchkey, Ports, sanitize};
use latchkey_identity::LATCHKEY;

use crate::{Global, explained, fail, sources};

/// `accounts`: each configured profile's stored identity, read from the keychain only.
pub(crate) async fn accounts(g: &Global, json: bool) -> i32 {
    let sources = match sources(g) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let selected = sources.profile();
    let ports = Ports::system(&LATCHKEY);
    let mut rows = Vec::new();
    let mut code = 0;
    for profile in sources.profiles() {
        // A profile without a usable configuration cannot have signed in.
        let Ok(config) = sources.resolve_profile(&profile) else {
            continue;
        };
        match Latchkey::new(config, ports.clone()).current().await {
            Ok(Some(identity)) => rows.push((profile == selected, identity)),
            Ok(None) => {}
            // One unreadable profile does not hide the others.
            Err(e) => {
                say!("latchkey: profile `{profile}`: {}", explained(&e));
                code = 2;
            }
        }
    }
    if json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|(default, id)| {
                serde_json::json!({
                    "profile": id.profile,
                    "default": default,
                    "issuer": id.issuer,
                    "subject": id.subject,
                    "name": id.name,
                    "email": id.email,
                    "expires_at": id.expires_at.to_rfc3339_opts(chrono_secs(), true),
                    "refreshable": id.refreshable,
                    "store": id.store,
                })
            })
            .collect();
        match serde_json::to_string_pretty(&list) {
            Ok(s) => out!("{s}"),
            Err(e) => return fail(&Error::config(format!("cannot encode JSON: {e}"))),
        }
        return code;
    }
    if rows.is_empty() && code == 0 {
        say!("No stored sessions; sign in with `latchkey login`.");
    }
    for (default, id) in &rows {
        let who = id.name.as_deref().unwrap_or(&id.subject);
        out!(
            "{} {:<16} {} ({}) at {}",
            if *default { "*" } else { " " },
            sanitize(&id.profile),
            sanitize(who),
            sanitize(&id.subject),
            sanitize(&id.issuer)
        );
    }
    code
}

pub(crate) fn print_identity(identity: &Identity, json: bool) -> i32 {
    if json {
        match serde_json::to_string_pretty(identity) {
            Ok(s) => out!("{s}"),
            Err(e) => return fail(&Error::config(format!("cannot encode JSON: {e}"))),
        }
        return 0;
    }
    // Every provider-derived string is cleaned of terminal escapes (OSC 52 writes the clipboard,
    // CSI moves the cursor) and control characters; the JSON above stays exact.
    let who = match (&identity.name, &identity.email) {
        (Some(n), Some(e)) => format!("{n} <{e}>"),
        (Some(n), None) => n.clone(),
        (None, Some(e)) => e.clone(),
        (None, None) => identity.subject.clone(),
    };
    out!("Signed in as {}", sanitize(&who));
    out!("  issuer:   {}", sanitize(&identity.issuer));
    out!("  subject:  {}", sanitize(&identity.subject));
    out!("  profile:  {}", sanitize(&identity.profile));
    if let Some(store) = identity.store {
        out!("  stored:   {store}");
    }
    out!("  granted:  {}", sanitize(&identity.scopes.join(" ")));
    let denied = identity.denied_scopes();
    if !denied.is_empty() {
        out!("  denied:   {}", sanitize(&denied.join(" ")));
    }
    out!(
        "  expires:  {}{}",
        identity.expires_at.to_rfc3339_opts(chrono_secs(), true),
        if identity.refreshable {
            " (refreshes automatically)"
        } else {
            ""
        }
    );
    print_grants(&identity.grants);
    0
}

/// The grants by kind, each value with where it was read: `  Roles: admin (access token), ...`.
fn print_grants(grants: &latchkey_core::Grants) {
    for kind in latchkey_core::GrantKind::ALL {
        let values: Vec<String> = grants
            .of_kind(kind)
            .map(|g| match &g.name {
                Some(name) => format!(
                    "{} [{}] ({})",
                    sanitize(name),
                    sanitize(&g.value),
                    g.source.label()
                ),
                None => format!("{} ({})", sanitize(&g.value), g.source.label()),
            })
            .collect();
        if kind == latchkey_core::GrantKind::Group && grants.groups_overage {
            out!("  {}: too many groups to list", kind.label());
        }
        if !values.is_empty() {
            out!("  {}: {}", kind.label(), values.join(", "));
        }
    }
    if grants.omitted > 0 {
        out!("  ({} more values not shown)", grants.omitted);
    }
}

pub(crate) fn chrono_secs() -> chrono::SecondsFormat {
    chrono::SecondsFormat::Secs
}
