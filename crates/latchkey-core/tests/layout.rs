//! The layout's limits (ARCHITECTURE.md), checked on every test run so they cannot drift:
//! no file in `crates/*/src` over 600 lines without its tests, no function over 80 lines, and
//! the `Latchkey` facade in one `impl` block of at most 300 lines.
//!
//! How lines are counted: a file's lines up to its `#[cfg(test)] mod tests` (files named
//! `tests.rs` are tests); a function's from its `fn` line to the closing brace at the same
//! indentation (rustfmt's layout), doc comments not included.

use std::path::{Path, PathBuf};

const MAX_FILE: usize = 600;
const MAX_FN: usize = 80;
const MAX_FACADE: usize = 300;

fn sources() -> Vec<PathBuf> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = std::fs::read_dir(&crates)
        .expect("crates/")
        .flatten()
        .map(|e| e.path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("tests.rs") {
                out.push(p);
            }
        }
    }
    assert!(out.len() > 50, "found only {} source files", out.len());
    out
}

/// The lines before the file's unit tests.
fn code_of(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .windows(2)
        .position(|w| w[0] == "#[cfg(test)]" && w[1].starts_with("mod tests"))
        .unwrap_or(lines.len());
    lines[..end].to_vec()
}

/// Each function's name and length in lines.
fn functions<'a>(code: &[&'a str]) -> Vec<(&'a str, usize)> {
    let mut out = Vec::new();
    for (i, line) in code.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let Some(at) = trimmed.find("fn ") else {
            continue;
        };
        let head = &trimmed[..at];
        let is_fn = head.split_whitespace().all(|w| {
            matches!(
                w,
                "pub" | "pub(crate)" | "pub(super)" | "async" | "const" | "unsafe"
            )
        });
        if !is_fn || trimmed.ends_with(';') {
            continue;
        }
        let name = trimmed[at + 3..]
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .next()
            .unwrap_or_default();
        let close = format!("{indent}}}");
        if let Some(len) = code[i..].iter().position(|l| *l == close) {
            out.push((name, len + 1));
        }
    }
    out
}

#[test]
fn files_and_functions_stay_within_their_limits() {
    let mut over = Vec::new();
    for path in sources() {
        let text = std::fs::read_to_string(&path).expect("read");
        let code = code_of(&text);
        if code.len() > MAX_FILE {
            over.push(format!("{}: {} lines", path.display(), code.len()));
        }
        for (name, len) in functions(&code) {
            if len > MAX_FN {
                over.push(format!("{}: fn {name} is {len} lines", path.display()));
            }
        }
    }
    assert!(over.is_empty(), "over the limits:\n{}", over.join("\n"));
}

#[test]
fn the_facade_is_one_small_impl_block() {
    let mut blocks = Vec::new();
    for path in sources() {
        let text = std::fs::read_to_string(&path).expect("read");
        for line in text.lines() {
            if line.starts_with("impl Latchkey {") || line.starts_with("impl Latchkey<") {
                blocks.push(path.clone());
            }
        }
    }
    assert_eq!(blocks.len(), 1, "impl Latchkey blocks: {blocks:?}");
    assert!(blocks[0].ends_with("account.rs"), "{blocks:?}");
    let facade = std::fs::read_to_string(&blocks[0]).expect("read");
    let lines = code_of(&facade).len();
    assert!(lines <= MAX_FACADE, "account.rs: {lines} lines");
}

/// The counters themselves: a long function and the test cut are seen.
#[test]
fn the_counters_see_what_they_count() {
    let body = "    x();\n".repeat(MAX_FN);
    let text =
        format!("pub(crate) async fn long() {{\n{body}}}\n\n#[cfg(test)]\nmod tests {{\n}}\n");
    let code = code_of(&text);
    assert_eq!(code.len(), MAX_FN + 3);
    assert_eq!(functions(&code), vec![("long", MAX_FN + 2)]);
}
