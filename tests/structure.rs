//! Structural rules of the source tree that review alone would let slip (issue 13's done-when):
//!
//! - no function in `src/` longer than [`MAX_FN_LINES`] lines (tests included: a test that long
//!   hides what it checks);
//! - `src/vrrp` never imports `crate::control` (the control plane drives vrrp with plain data);
//! - no `unwrap(` / `expect(` in non-test code under `src/datapath` (a bad packet is a counted
//!   drop, never a panic).
//!
//! The scanner is deliberately small: it strips comments, string and char literals, then counts
//! braces from each `fn` item to the brace that closes its body. It is tested below on inputs
//! that would fool a naive counter (braces in strings and comments, lifetimes, nested fns).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)] // test code: a failed unwrap is a failed test; casts are of test-sized values

use std::fs;
use std::path::{Path, PathBuf};

/// The longest function allowed in `src/` (lines from the `fn` line to its closing brace).
const MAX_FN_LINES: usize = 120;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

fn src_files(sub: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(sub);
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    assert!(!files.is_empty(), "no .rs files under {}", root.display());
    files
}

/// `text` with comments, string literals and char literals replaced by spaces (newlines kept,
/// so line numbers stay right).
fn code_only(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || (next == Some('#') && raw_string_at(&b, i))) {
            // Raw string r"..." or r#"..."#.
            let mut hashes = 0;
            i += 1;
            out.push(' ');
            while b.get(i) == Some(&'#') {
                hashes += 1;
                i += 1;
                out.push(' ');
            }
            i += 1; // opening quote
            out.push(' ');
            while i < b.len() {
                if b[i] == '"' && (0..hashes).all(|k| b.get(i + 1 + k) == Some(&'#')) {
                    for _ in 0..=hashes {
                        out.push(' ');
                    }
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(b[i]));
                i += 1;
            }
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && is_char_literal(&b, i) {
            let end = char_literal_end(&b, i);
            for k in i..=end {
                out.push(blank(b[k]));
            }
            i = end + 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn raw_string_at(b: &[char], i: usize) -> bool {
    let mut j = i + 1;
    while b.get(j) == Some(&'#') {
        j += 1;
    }
    b.get(j) == Some(&'"') && (i == 0 || !b[i - 1].is_alphanumeric())
}

/// A `'` starts a char literal (`'x'`, `'\n'`, `'\u{1F}'`), not a lifetime (`'a`).
fn is_char_literal(b: &[char], i: usize) -> bool {
    match b.get(i + 1) {
        Some('\\') => true,
        Some(_) => b.get(i + 2) == Some(&'\''),
        None => false,
    }
}

fn char_literal_end(b: &[char], i: usize) -> usize {
    let mut j = i + 1;
    if b[j] == '\\' {
        j += 2;
    } else {
        j += 1;
    }
    while j < b.len() && b[j] != '\'' {
        j += 1;
    }
    j.min(b.len() - 1)
}

/// `(name, first line, line count)` of every function with a body in `code` (comments and
/// literals already blanked).
fn functions(code: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let Some(name) = fn_name(line) else { continue };
        let mut depth = 0i32;
        let mut opened = false;
        'scan: for (j, l) in lines.iter().enumerate().skip(start) {
            for (k, ch) in l.char_indices() {
                // A `;` before the body opens ends a bodiless declaration (trait method).
                if j == start && k < line.find("fn ").unwrap_or(0) {
                    continue;
                }
                match ch {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    ';' if !opened && depth == 0 => break 'scan,
                    _ => {}
                }
                if opened && depth == 0 {
                    found.push((name.clone(), start + 1, j - start + 1));
                    break 'scan;
                }
            }
        }
    }
    found
}

fn fn_name(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "fn")?;
    let before_ok = words[..at].iter().all(|w| {
        w.starts_with("pub")
            || matches!(*w, "const" | "unsafe" | "async" | "extern" | "default")
            || w.starts_with('"')
    });
    let name: String = words
        .get(at + 1)?
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (before_ok && !name.is_empty()).then_some(name)
}

#[test]
fn no_function_in_src_is_longer_than_the_limit() {
    let mut long = Vec::new();
    let mut counted = 0;
    for path in src_files("") {
        let text = fs::read_to_string(&path).expect("read source file");
        for (name, line, len) in functions(&code_only(&text)) {
            counted += 1;
            if len > MAX_FN_LINES {
                long.push(format!("{}:{line}: fn {name} is {len} lines", path.display()));
            }
        }
    }
    assert!(counted > 500, "the scanner found only {counted} functions in src/");
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines (split them):\n{}",
        long.join("\n")
    );
}

#[test]
fn vrrp_does_not_import_the_control_plane() {
    let mut offending = Vec::new();
    for path in src_files("vrrp") {
        let code = code_only(&fs::read_to_string(&path).expect("read source file"));
        for (n, line) in code.lines().enumerate() {
            if line.contains("crate::control") {
                offending.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(offending.is_empty(), "src/vrrp uses the control plane:\n{}", offending.join("\n"));
}

/// The line ranges of `#[cfg(test)]` items (a `mod tests { … }` or a single test fn).
fn test_ranges(code: &str) -> Vec<(usize, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_start().starts_with("#[cfg(test)]") {
            let mut depth = 0i32;
            let mut opened = false;
            let mut j = i;
            'item: while j < lines.len() {
                for ch in lines[j].chars() {
                    match ch {
                        '{' => {
                            depth += 1;
                            opened = true;
                        }
                        '}' => depth -= 1,
                        ';' if !opened => break 'item,
                        _ => {}
                    }
                    if opened && depth == 0 {
                        break 'item;
                    }
                }
                j += 1;
            }
            ranges.push((i, j));
            i = j + 1;
        } else {
            i += 1;
        }
    }
    ranges
}

fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "tests.rs" || name.ends_with("_tests.rs") || path.components().any(|c| c.as_os_str() == "tests")
}

#[test]
fn the_datapath_has_no_unwrap_or_expect_outside_tests() {
    let mut offending = Vec::new();
    for path in src_files("datapath") {
        if is_test_file(&path) {
            continue;
        }
        let code = code_only(&fs::read_to_string(&path).expect("read source file"));
        let tests = test_ranges(&code);
        for (n, line) in code.lines().enumerate() {
            let in_test = tests.iter().any(|&(a, b)| (a..=b).contains(&n));
            if !in_test && (line.contains(".unwrap(") || line.contains(".expect(")) {
                offending.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(offending.is_empty(), "unwrap/expect on the packet path:\n{}", offending.join("\n"));
}

#[test]
fn the_scanner_ignores_braces_in_literals_and_comments() {
    let text = "fn a() {\n    let s = \"}}}\";\n    let c = '}';\n    // }\n    /* } */\n    let r = r#\"}\"#;\n}\nfn b<'x>(v: &'x str) -> &'x str {\n    v\n}\ntrait T {\n    fn c(&self);\n}\n";
    let found = functions(&code_only(text));
    let expected: Vec<(String, usize, usize)> = vec![("a".into(), 1, 7), ("b".into(), 8, 3)];
    assert_eq!(found, expected, "a bodiless trait fn is not a function with a body");
}

#[test]
fn the_scanner_measures_a_long_function_and_finds_test_modules() {
    let body: String = (0..130).map(|i| format!("    let x{i} = {i};\n")).collect();
    let text = format!("pub(crate) fn long() {{\n{body}}}\n#[cfg(test)]\nmod tests {{\n    fn t() {{ x.unwrap(); }}\n}}\n");
    let code = code_only(&text);
    let found = functions(&code);
    assert_eq!(found[0], ("long".into(), 1, 132));
    assert_eq!(test_ranges(&code), vec![(132, 135)]);
}
