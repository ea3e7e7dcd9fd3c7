//! `latchkey git-credential get|store|erase`: a git credential helper (`gitcredentials(7)`).
//!
//! git writes `key=value` lines on stdin and reads the same from stdout. Latchkey answers only
//! for `protocol=https` and the hosts listed in `git_hosts`: a token is never handed to a host
//! nobody named, and never over plain http.

use chrono::{DateTime, Utc};
use std::io::{BufRead as _, Read as _};

use latchkey_core::{ErrorKind, Latchkey};

/// What git asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Operation {
    /// Give git the current access token.
    Get,
    /// git would save a credential that worked: Latchkey's session is in the keychain already.
    Store,
    /// The token was refused: the next `get` refreshes first. The session is kept.
    Erase,
}

/// The longest request we read: git's own lines are short (git caps them at 64 KiB each).
const MAX_REQUEST: u64 = 256 * 1024;

#[derive(Debug, Default, PartialEq, Eq)]
struct Request {
    protocol: Option<String>,
    host: Option<String>,
    password: Option<String>,
    credential: Option<String>,
    authtype_capable: bool,
}

fn parse(input: &[u8]) -> Request {
    let mut r = Request::default();
    for line in input.lines().map_while(Result::ok) {
        if line.is_empty() {
            break; // a blank line ends the description
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "protocol" => r.protocol = Some(value.to_owned()),
            "host" => r.host = Some(value.to_ascii_lowercase()),
            "password" => r.password = Some(value.to_owned()),
            "credential" => r.credential = Some(value.to_owned()),
            // git 2.46+: the helper may answer with a pre-encoded `credential` and its `authtype`.
            "capability[]" if value == "authtype" => r.authtype_capable = true,
            _ => {}
        }
    }
    r
}

/// Whether this request is for a host we serve: https only, and exactly a listed host.
fn allowed(r: &Request, hosts: &[String]) -> bool {
    r.protocol.as_deref() == Some("https")
        && r.host
            .as_deref()
            .is_some_and(|h| hosts.iter().any(|listed| listed == h))
}

/// The answer to `get`: Basic-style `username`/`password`, or a Bearer `credential` for a git
/// that announced the `authtype` capability. The Basic answer says when the token expires
/// (`password_expiry_utc`, git 2.41), so a storing helper after this one (`credential-store`
/// writes plain text) neither keeps nor replays it past then.
fn answer(r: &Request, username: &str, token: &str, expires_at: DateTime<Utc>) -> String {
    if r.authtype_capable {
        format!("capability[]=authtype\nauthtype=Bearer\ncredential={token}\nephemeral=1\n")
    } else {
        let expiry = expires_at.timestamp();
        format!("username={username}\npassword={token}\npassword_expiry_utc={expiry}\n")
    }
}

pub async fn credential(latchkey: &Latchkey, op: Operation) -> i32 {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().take(MAX_REQUEST).read_to_end(&mut input) {
        say!("latchkey: cannot read git's request: {e}");
        return 2;
    }
    let request = parse(&input);
    let config = latchkey.config();
    if !allowed(&request, &config.git_hosts) {
        // Not ours: say nothing, so git asks its next helper.
        return 0;
    }
    match op {
        Operation::Store => 0,
        Operation::Erase => {
            let Some(refused) = request
                .credential
                .as_deref()
                .or(request.password.as_deref())
            else {
                return 0;
            };
            match latchkey.reject_token(refused).await {
                Ok(()) => 0,
                Err(e) => crate::fail(&e),
            }
        }
        Operation::Get => match latchkey
            .token(Default::default())
            .await
            .and_then(|info| crate::bearer_only(&info, "git").map(|()| info))
        {
            Ok(info) => {
                out!(
                    "{}",
                    answer(
                        &request,
                        &config.git_username,
                        info.token.secret(),
                        info.expires_at
                    )
                    .trim_end()
                );
                0
            }
            Err(e) if matches!(e.kind(), ErrorKind::NotSignedIn | ErrorKind::SessionExpired) => {
                say!("latchkey: {}", crate::explained(&e));
                1
            }
            Err(e) => crate::fail(&e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_parsed_up_to_the_blank_line() {
        let r = parse(b"protocol=https\nhost=Git.Example.com:8443\ncapability[]=authtype\ncapability[]=state\n\nhost=evil\n");
        assert_eq!(r.protocol.as_deref(), Some("https"));
        assert_eq!(r.host.as_deref(), Some("git.example.com:8443"));
        assert!(r.authtype_capable);
    }

    #[test]
    fn only_listed_https_hosts_get_a_token() {
        let hosts = vec!["git.example.com".to_owned()];
        let ok = parse(b"protocol=https\nhost=git.example.com\n");
        assert!(allowed(&ok, &hosts));
        for other in [
            &b"protocol=http\nhost=git.example.com\n"[..],
            b"protocol=https\nhost=git.example.com.evil.test\n",
            b"protocol=https\nhost=git.example.com:8443\n",
            b"protocol=https\n",
        ] {
            assert!(
                !allowed(&parse(other), &hosts),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        assert!(!allowed(&ok, &[]), "an empty list answers nothing");
    }

    #[test]
    fn answers_match_gits_capabilities() {
        let basic = parse(b"protocol=https\nhost=h\n");
        let at = DateTime::from_timestamp(1_900_000_000, 0).expect("a time");
        assert_eq!(
            answer(&basic, "oauth2", "T", at),
            "username=oauth2\npassword=T\npassword_expiry_utc=1900000000\n"
        );
        let bearer = parse(b"protocol=https\nhost=h\ncapability[]=authtype\n");
        let a = answer(&bearer, "oauth2", "T", at);
        assert!(
            a.starts_with("capability[]=authtype\nauthtype=Bearer\ncredential=T\n"),
            "{a}"
        );
        assert!(!a.contains("password"));
    }
}
