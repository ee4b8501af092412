//! keepalived.conf's tokens, one file at a time (keepalived.conf(5), "Quoted strings").
//!
//! The text is read line by line; a line ending in `\` (outside quotes) continues on the next
//! one, and every token of the joined line carries the line it started on. On a line:
//! - `#` or `!` outside double quotes starts a comment that runs to the end of the line (`\#`
//!   and `\!` outside quotes are the characters themselves);
//! - whitespace separates words; `"` starts and ends a quoted part of a word, which keeps its
//!   whitespace and braces and loses the quotes (`abc" d "e` is the one word `abc d e`); inside
//!   quotes `\\`, `\"`, `\n`, `\t`, `\r`, `\a`, `\b`, `\f`, `\v`, `\xHH`, `\NNN` (octal) are
//!   escapes and `\C` is `C`. A quote left open at the end of the line is an error;
//! - `{` and `}` outside quotes are tokens of their own, wherever they stand (keepalived splits
//!   lines at them too);
//! - a line whose first word is `include` (or keepalived's variants `includer`, `includem`,
//!   `includew`, `includeb`, `includea`) is one [`Kind::Include`] token carrying the rest of the
//!   line as a pattern (comments removed, one level of quotes removed): its braces are glob
//!   brace expressions, not blocks, so the line is not split into words.
//!
//! The lexer never fails on content other than an unterminated quote; what the words mean is
//! the parser's and converter's business.

use std::fmt;

/// One token and the (1-based) line it starts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub line: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A word, quotes removed and escapes applied.
    Word(String),
    /// `{`
    Open,
    /// `}`
    Close,
    /// `include PATTERN`: the pattern, to be expanded by [`super::include`].
    Include(String),
}

/// Why a file could not be split into tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LexError {
    pub line: u32,
    pub message: String,
}

impl fmt::Display for LexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The include keywords (keepalived.conf(5), "include FILENAME" and its variants).
pub const INCLUDE_KEYWORDS: [&str; 6] = [
    "include", "includer", "includem", "includew", "includeb", "includea",
];

/// Splits `text` into tokens (see the module documentation).
pub fn lex(text: &str) -> Result<Vec<Token>, LexError> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, first)) = lines.next() {
        let line = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let mut logical = first.to_string();
        // Join continuation lines: a `\` at the very end outside quotes and comments.
        while ends_with_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next),
                None => break,
            }
        }
        lex_line(&logical, line, &mut out)?;
    }
    Ok(out)
}

/// Whether `line` ends in a backslash that is outside quotes and comments (and not itself
/// escaped by a backslash).
fn ends_with_continuation(line: &str) -> bool {
    let mut quote = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => quote = !quote,
            '#' | '!' if !quote => return false,
            // The guard consumes the escaped character either way.
            '\\' if chars.next().is_none() => return true,
            _ => {}
        }
    }
    false
}

/// The tokens of one logical line.
fn lex_line(line: &str, at: u32, out: &mut Vec<Token>) -> Result<(), LexError> {
    let trimmed = line.trim_start();
    if let Some(rest) = include_rest(trimmed) {
        let mut words = Vec::new();
        scan(rest, at, &mut words, true)?;
        let pattern = words
            .into_iter()
            .filter_map(|t| match t.kind {
                Kind::Word(w) => Some(w),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" ");
        out.push(Token {
            kind: Kind::Include(pattern),
            line: at,
        });
        return Ok(());
    }
    scan(line, at, out, false)
}

/// The rest of the line after an include keyword and whitespace, if the line starts with one.
fn include_rest(line: &str) -> Option<&str> {
    let end = line.find(|c: char| c.is_whitespace()).unwrap_or(line.len());
    let (word, rest) = line.split_at(end);
    INCLUDE_KEYWORDS.contains(&word).then_some(rest)
}

/// A word being built: its characters, and whether it has started (`""` is an empty word).
#[derive(Default)]
struct Word {
    text: String,
    started: bool,
}

impl Word {
    fn flush(&mut self, at: u32, out: &mut Vec<Token>) {
        if self.started {
            out.push(Token {
                kind: Kind::Word(std::mem::take(&mut self.text)),
                line: at,
            });
            self.started = false;
        }
    }

    fn push(&mut self, c: char) {
        self.text.push(c);
        self.started = true;
    }
}

/// Scans one logical line into `out`. With `braces_are_text` (an include pattern), `{` and `}`
/// are ordinary characters.
fn scan(line: &str, at: u32, out: &mut Vec<Token>, braces_are_text: bool) -> Result<(), LexError> {
    let mut word = Word::default();
    let mut quote = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if quote {
            match c {
                '"' => quote = false,
                '\\' => word.push(unescape(&mut chars)),
                _ => word.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                quote = true;
                word.started = true;
            }
            '#' | '!' => break,
            '\\' => match chars.next() {
                Some(n @ ('#' | '!')) => word.push(n),
                Some(n) => {
                    word.push('\\');
                    word.push(n);
                }
                None => {}
            },
            '{' | '}' if !braces_are_text => {
                word.flush(at, out);
                let kind = if c == '{' { Kind::Open } else { Kind::Close };
                out.push(Token { kind, line: at });
            }
            c if c.is_whitespace() => word.flush(at, out),
            c => word.push(c),
        }
    }
    if quote {
        return Err(LexError {
            line: at,
            message: "unterminated quote: a `\"` opened on this line is not closed".to_string(),
        });
    }
    word.flush(at, out);
    Ok(())
}

/// The character a backslash escape inside quotes stands for; `chars` is just after the `\`.
fn unescape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> char {
    let Some(c) = chars.next() else {
        return '\\';
    };
    match c {
        'n' => '\n',
        't' => '\t',
        'r' => '\r',
        'a' => '\u{7}',
        'b' => '\u{8}',
        'f' => '\u{c}',
        'v' => '\u{b}',
        'E' => '\u{1b}',
        'x' => {
            let mut v = 0u32;
            for _ in 0..2 {
                match chars.peek().and_then(|d| d.to_digit(16)) {
                    Some(d) => {
                        v = v * 16 + d;
                        chars.next();
                    }
                    None => break,
                }
            }
            char::from_u32(v).unwrap_or('\u{fffd}')
        }
        '0'..='7' => {
            let mut v = c.to_digit(8).unwrap_or(0);
            for _ in 0..2 {
                match chars.peek().and_then(|d| d.to_digit(8)) {
                    Some(d) => {
                        v = v * 8 + d;
                        chars.next();
                    }
                    None => break,
                }
            }
            char::from_u32(v).unwrap_or('\u{fffd}')
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        lex(text)
            .unwrap()
            .into_iter()
            .map(|t| match t.kind {
                Kind::Word(w) => w,
                Kind::Open => "{".into(),
                Kind::Close => "}".into(),
                Kind::Include(p) => format!("include<{p}>"),
            })
            .collect()
    }

    #[test]
    fn words_and_braces() {
        assert_eq!(
            words("virtual_server 198.18.0.1 80 {\n  lb_algo rr\n}"),
            [
                "virtual_server",
                "198.18.0.1",
                "80",
                "{",
                "lb_algo",
                "rr",
                "}"
            ]
        );
        // Braces split words wherever they stand, as keepalived splits lines at them.
        assert_eq!(words("group{VI_1}"), ["group", "{", "VI_1", "}"]);
    }

    #[test]
    fn line_numbers() {
        let t = lex("a\n\n  b c\n}").unwrap();
        let lines: Vec<u32> = t.iter().map(|t| t.line).collect();
        assert_eq!(lines, [1, 3, 3, 4]);
    }

    #[test]
    fn comments() {
        assert_eq!(words("a # b\nc ! d\n! e\n# f"), ["a", "c"]);
        assert_eq!(words("a\\#b \\!c"), ["a#b", "!c"]);
        assert_eq!(words("notify \"/bin/x #1\" # c"), ["notify", "/bin/x #1"]);
    }

    #[test]
    fn quotes() {
        assert_eq!(words("abcd\" efg h jkl \"mnop"), ["abcd efg h jkl mnop"]);
        assert_eq!(
            words("abcd \"efg h jkl\" mnop"),
            ["abcd", "efg h jkl", "mnop"]
        );
        assert_eq!(words("x \"\" y"), ["x", "", "y"]);
        assert_eq!(words("\"{ not a block }\""), ["{ not a block }"]);
        assert_eq!(words(r#""a\"b\\c\x41\101\n""#), ["a\"b\\cAA\n"]);
        // Single quotes are the script's business: kept as they are.
        assert_eq!(words("\"/x.sh 'a b'\""), ["/x.sh 'a b'"]);
    }

    #[test]
    fn unterminated_quote() {
        let e = lex("a\nscript \"/bin/true\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unterminated quote"), "{e}");
    }

    #[test]
    fn continuation() {
        let t = lex("a b \\\n c\nd").unwrap();
        let w: Vec<(String, u32)> = t
            .into_iter()
            .map(|t| match t.kind {
                Kind::Word(w) => (w, t.line),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            w,
            [
                ("a".into(), 1),
                ("b".into(), 1),
                ("c".into(), 1),
                ("d".into(), 3)
            ]
        );
    }

    #[test]
    fn include_lines() {
        assert_eq!(
            words("include /etc/keepalived/{a,b}/*.conf # c\n  includea \"x y.conf\""),
            ["include</etc/keepalived/{a,b}/*.conf>", "include<x y.conf>"]
        );
        // Only as the first word of a line.
        assert_eq!(words("script include"), ["script", "include"]);
    }

    #[test]
    fn crlf_and_tabs() {
        assert_eq!(words("a\tb\r\nc\r\n"), ["a", "b", "c"]);
    }
}
