//! The core never names a product: every keychain service, folder, variable and user agent comes
//! from the embedder's `AppIdentity` (TEMPLATE.md). This scans the core's sources for a string
//! literal that contains the product's name.

use std::path::Path;

/// The string literals of Rust source `text` (normal, byte and raw strings), outside comments.
fn literals(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            // A char literal such as '"' must not start a string.
            b'\'' if b.get(i + 2) == Some(&b'\'') || (b.get(i + 1) == Some(&b'\\')) => {
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'r' if matches!(b.get(i + 1), Some(b'#' | b'"'))
                && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) =>
            {
                let mut hashes = 0;
                let mut j = i + 1;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let start = j + 1;
                let close = format!("\"{}", "#".repeat(hashes));
                let end = text[start..].find(&close).map_or(b.len(), |e| start + e);
                out.push(text[start..end].to_owned());
                i = end + close.len();
            }
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                out.push(text[start..i.min(b.len())].to_owned());
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

fn scan(dir: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            scan(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("read");
            for lit in literals(&text) {
                if lit.to_ascii_lowercase().contains("latchkey") {
                    found.push(format!("{}: \"{lit}\"", path.display()));
                }
            }
        }
    }
}

#[test]
fn no_string_literal_in_the_core_names_the_product() {
    // The scanner itself finds what it must, and skips comments and char literals.
    let sample =
        "// \"latchkey\" in a comment\nlet q = '\"'; let a = \"x\"; let b = r#\"Latchkey\"#;";
    assert_eq!(literals(sample), ["x", "Latchkey"]);

    let mut found = Vec::new();
    scan(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    assert!(
        found.is_empty(),
        "the core names the product; take it from AppIdentity instead:\n{}",
        found.join("\n")
    );
}
