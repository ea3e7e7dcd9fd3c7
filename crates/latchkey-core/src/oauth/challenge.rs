//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1), as protected resources send them: the
//! scheme (`Bearer`, RFC 6750 §3; `DPoP`, RFC 9449 §7.1) and its parameters (`error`,
//! `scope`, `resource_metadata` of RFC 9728 §5.1, `acr_values` and `max_age` of RFC 9470 §3).
//!
//! The value comes from a server that may be hostile: a header above [`MAX_HEADER`] bytes, or
//! one that does not parse, gives no challenge at all (the caller then treats the answer as a
//! plain error), and the number of challenges and parameters is capped.

/// The longest header read; real challenges are a few hundred bytes.
pub(crate) const MAX_HEADER: usize = 8 * 1024;
const MAX_CHALLENGES: usize = 8;
const MAX_PARAMS: usize = 32;

/// One challenge: its scheme, lower-cased, and its parameters (names lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of parameter `name` (the first, if repeated).
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every challenge in the header values `values` (a response may carry several headers).
/// Malformed or oversized input gives an empty list, never a guess.
pub(crate) fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    let mut out = Vec::new();
    for value in values {
        if value.len() > MAX_HEADER {
            return Vec::new();
        }
        match parse_one(value) {
            Some(mut challenges) => out.append(&mut challenges),
            None => return Vec::new(),
        }
        if out.len() > MAX_CHALLENGES {
            return Vec::new();
        }
    }
    out
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// A cursor over one header value.
struct Reader<'a> {
    rest: &'a str,
}

impl<'a> Reader<'a> {
    fn skip(&mut self, what: impl Fn(char) -> bool) {
        self.rest = self.rest.trim_start_matches(what);
    }

    fn token(&mut self) -> Option<&'a str> {
        let end = self.rest.find(|c| !is_tchar(c)).unwrap_or(self.rest.len());
        let (token, rest) = self.rest.split_at(end);
        self.rest = rest;
        (!token.is_empty()).then_some(token)
    }

    /// A quoted-string's content, its `\` escapes resolved (RFC 9110 §5.6.4).
    fn quoted(&mut self) -> Option<String> {
        let mut chars = self.rest.strip_prefix('"')?.char_indices();
        let mut out = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.rest = &self.rest[i + 2..];
                    return Some(out);
                }
                '\\' => out.push(chars.next()?.1),
                c if c.is_control() && c != '\t' => return None,
                c => out.push(c),
            }
        }
        None
    }

    fn peek(&self) -> Option<char> {
        self.rest.chars().next()
    }
}

fn parse_one(value: &str) -> Option<Vec<Challenge>> {
    let mut r = Reader { rest: value };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        r.skip(|c| c == ' ' || c == '\t' || c == ',');
        if r.rest.is_empty() {
            return Some(out);
        }
        let name = r.token()?;
        r.skip(|c| c == ' ' || c == '\t');
        if r.peek() != Some('=') {
            // A new challenge: `name` is its scheme.
            out.push(Challenge {
                scheme: name.to_ascii_lowercase(),
                params: Vec::new(),
            });
            continue;
        }
        r.rest = &r.rest[1..];
        r.skip(|c| c == ' ' || c == '\t');
        let value = match r.peek() {
            Some('"') => r.quoted()?,
            // token68 (RFC 9110 §11.2) padding, or an empty value: not a parameter we read.
            Some('=') | Some(',') | None => {
                r.skip(|c| c == '=');
                continue;
            }
            _ => r.token()?.to_owned(),
        };
        let current = out.last_mut()?;
        if current.params.len() >= MAX_PARAMS {
            return None;
        }
        current.params.push((name.to_ascii_lowercase(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_dpop_challenges_with_their_parameters() {
        let c = parse([
            r#"Bearer realm="api", error="insufficient_scope", scope="read write", resource_metadata="https://api.example/.well-known/oauth-protected-resource""#,
            r#"DPoP algs="ES256 PS256", error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#,
        ]);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("scope"), Some("read write"));
        assert_eq!(
            c[0].param("resource_metadata"),
            Some("https://api.example/.well-known/oauth-protected-resource")
        );
        assert_eq!(c[1].scheme, "dpop");
        assert_eq!(c[1].param("error"), Some("use_dpop_nonce"));
    }

    #[test]
    fn several_challenges_in_one_value_tokens_and_escapes() {
        let c = parse([
            r#"Basic realm="x", Bearer error=invalid_token, max_age=0, acr_values="urn:a \"b\"""#,
        ]);
        assert_eq!(
            c.iter().map(|c| c.scheme.as_str()).collect::<Vec<_>>(),
            ["basic", "bearer"]
        );
        assert_eq!(c[1].param("error"), Some("invalid_token"));
        assert_eq!(c[1].param("max_age"), Some("0"));
        assert_eq!(c[1].param("acr_values"), Some(r#"urn:a "b""#));
    }

    #[test]
    fn token68_is_skipped_and_bad_input_gives_nothing() {
        let c = parse(["Negotiate YIIB==, Bearer"]);
        assert_eq!(c.len(), 2);
        // A parameter before any scheme, an open quote, a control character, a huge header.
        for bad in [
            "error=\"x\"",
            "Bearer error=\"open",
            "Bearer error=\"a\u{1b}b\"",
        ] {
            assert!(parse([bad]).is_empty(), "{bad:?}");
        }
        let huge = format!("Bearer scope=\"{}\"", "a".repeat(MAX_HEADER));
        assert!(parse([huge.as_str()]).is_empty());
        let many = format!("Bearer {}", "a=b, ".repeat(MAX_PARAMS + 1));
        assert!(parse([many.as_str()]).is_empty());
    }
}
