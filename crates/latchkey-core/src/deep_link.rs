//! Incoming redirect URLs from an app's argv (deep links on a custom scheme). Arguments are
//! hostile input: anyone can start the app with any argv. Nothing here interprets a URL; every
//! candidate goes to [`Latchkey::resume`](crate::Latchkey::resume), which accepts only the
//! response to the sign-in this process started, once, in time.
//!
//! Pure logic over `url`, with no Tauri: the Tauri plugin uses it as its `links` module, and
//! `tests/fuzz` fuzzes it.

use url::Url;

/// At most this many URLs from one launch are looked at.
pub const MAX_URLS: usize = 4;

/// A redirect scheme must follow RFC 3986 §3.1, and RFC 8252 §7.1 wants a reverse-DNS name with
/// a dot (`com.example.app`); lower case, since URL parsers lower-case schemes.
pub fn check_scheme(scheme: &str) -> Result<(), String> {
    let valid = scheme.contains('.')
        && scheme.starts_with(|c: char| c.is_ascii_lowercase())
        && scheme
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "redirect scheme `{scheme}` must be a lower-case reverse-DNS name like com.example.app (tauri.conf.json: plugins.deep-link.desktop.schemes[0])"
        ))
    }
}

/// Whether `arg` claims to be one of our redirects (`<scheme>:...`, scheme case-insensitive).
pub fn is_ours(arg: &str, scheme: &str) -> bool {
    arg.get(..scheme.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
        && arg.as_bytes().get(scheme.len()) == Some(&b':')
}

/// Whether the deep-link plugin delivers this argv itself: a lone argument that parses as a URL
/// of our scheme (what the OS passes).
pub fn plugin_delivers(args: &[String], scheme: &str) -> bool {
    args.len() == 2 && Url::parse(&args[1]).is_ok_and(|u| u.scheme() == scheme)
}

/// The arguments that claim to be our redirect but that the deep-link plugin drops (malformed,
/// or among other arguments). They go to `resume` too, so the window can say why they were not
/// accepted instead of ignoring them silently.
pub fn stray_args(args: &[String], scheme: &str) -> Vec<String> {
    if plugin_delivers(args, scheme) {
        return Vec::new();
    }
    args.iter()
        .skip(1)
        .filter(|a| is_ours(a, scheme))
        .take(MAX_URLS)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_checked() {
        assert!(check_scheme("com.acme.signin").is_ok());
        for bad in [
            "myapp",
            "Com.Acme",
            "com.acme:x",
            "",
            "1com.acme",
            "com acme.x",
        ] {
            assert!(check_scheme(bad).is_err(), "{bad}");
        }
    }

    const S: &str = "com.example.app";

    fn argv(a: &[&str]) -> Vec<String> {
        std::iter::once("my-app")
            .chain(a.iter().copied())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_os_form_is_left_to_the_plugin() {
        let a = argv(&["com.example.app:/callback?code=x&state=y"]);
        assert!(plugin_delivers(&a, S));
        assert!(stray_args(&a, S).is_empty());
    }

    #[test]
    fn malformed_and_crowded_arguments_still_reach_resume() {
        let a = argv(&["com.example.app://[::1"]);
        assert!(!plugin_delivers(&a, S));
        assert_eq!(stray_args(&a, S), ["com.example.app://[::1"]);
        let a = argv(&["--flag", "COM.EXAMPLE.APP:/callback?state=1"]);
        assert_eq!(stray_args(&a, S), ["COM.EXAMPLE.APP:/callback?state=1"]);
    }

    #[test]
    fn other_arguments_are_ignored() {
        assert!(stray_args(&argv(&["https://evil.example/?code=1"]), S).is_empty());
        assert!(stray_args(&argv(&["com.example.appx:/cb"]), S).is_empty());
        assert!(stray_args(&argv(&["com.example.ap"]), S).is_empty());
        assert!(stray_args(&argv(&["é"]), S).is_empty());
        assert!(stray_args(&argv(&[]), S).is_empty());
    }

    #[test]
    fn a_flood_is_capped() {
        let many: Vec<&str> = std::iter::repeat_n("com.example.app:x", 50).collect();
        assert_eq!(stray_args(&argv(&many), S).len(), MAX_URLS);
    }
}
