//! keepalived.conf's tree: every statement is a keyword, its arguments and, when a block
//! follows, its children, each with the [`Pos`] of its keyword.
//!
//! A statement is the words of one line (the keyword first). A `{` after them, on the same line
//! or as the next token on a later line, opens its block, which runs to the matching `}`; words
//! after a `{` or `}` on the same line start the next statement (`virtual_ipaddress { 198.18.0.1
//! }` is a block with one child). A `}` with no open block, a `{` with no keyword before it,
//! a block left open at the end of the input and blocks nested more than [`MAX_NESTING`] deep
//! are errors at their `FILE:LINE`.

use super::include::Tok;
use super::lexer::Kind;
use super::{ImportError, Pos};

/// How deep blocks may nest (keepalived's deepest is 4: virtual_server, real_server, checker,
/// url).
pub const MAX_NESTING: usize = 32;

/// One statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub keyword: String,
    pub args: Vec<String>,
    /// `Some` when a block followed (possibly empty).
    pub children: Option<Vec<Node>>,
    pub at: Pos,
}

impl Node {
    /// The children, or none.
    pub fn kids(&self) -> &[Node] {
        self.children.as_deref().unwrap_or(&[])
    }

    /// The statement as keepalived.conf would show it, arguments quoted where they hold spaces
    /// and a block shortened to `{…}`: for comments and messages.
    pub fn text(&self) -> String {
        let mut s = self.keyword.clone();
        for a in &self.args {
            s.push(' ');
            if a.is_empty() || a.contains(char::is_whitespace) {
                s.push('"');
                s.push_str(a);
                s.push('"');
            } else {
                s.push_str(a);
            }
        }
        if self.children.is_some() {
            s.push_str(" {…}");
        }
        s
    }
}

/// Builds the tree of `tokens` (see the module documentation).
pub fn parse(tokens: &[Tok]) -> Result<Vec<Node>, ImportError> {
    let mut p = Parser { tokens, next: 0 };
    p.block(None, 0)
}

struct Parser<'a> {
    tokens: &'a [Tok],
    next: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.next)
    }

    /// The statements up to the `}` closing the block opened at `open` (or to the end of the
    /// input for the top level, `open` = None).
    fn block(&mut self, open: Option<&Pos>, depth: usize) -> Result<Vec<Node>, ImportError> {
        let mut out = Vec::new();
        loop {
            let Some(t) = self.peek() else {
                return match open {
                    Some(p) => Err(ImportError::at(
                        p,
                        "unbalanced braces: this `{` is never closed (a `}` is missing)"
                            .to_string(),
                    )),
                    None => Ok(out),
                };
            };
            let at = t.at.clone();
            match &t.kind {
                Kind::Close => {
                    self.next += 1;
                    return match open {
                        Some(_) => Ok(out),
                        None => Err(ImportError::at(
                            &at,
                            "unbalanced braces: `}` closes no block".to_string(),
                        )),
                    };
                }
                Kind::Open => {
                    return Err(ImportError::at(
                        &at,
                        "`{` without a keyword before it".to_string(),
                    ))
                }
                // The include layer expands these; none reach here.
                Kind::Include(_) => self.next += 1,
                Kind::Word(_) => out.push(self.statement(depth)?),
            }
        }
    }

    /// One statement: the words of the line the next token is on, and its block if one follows.
    fn statement(&mut self, depth: usize) -> Result<Node, ImportError> {
        let mut words = Vec::new();
        let mut at = None;
        while let Some(t) = self.peek() {
            let Kind::Word(w) = &t.kind else { break };
            match &at {
                None => at = Some(t.at.clone()),
                Some(a) if *a != t.at => break,
                Some(_) => {}
            }
            words.push(w.clone());
            self.next += 1;
        }
        let at = at.unwrap_or_else(|| Pos {
            file: "".into(),
            line: 0,
        });
        let mut words = words.into_iter();
        let keyword = words.next().unwrap_or_default();
        let args = words.collect();
        let children = match self.peek() {
            Some(Tok {
                kind: Kind::Open,
                at: open,
            }) => {
                let open = open.clone();
                if depth + 1 > MAX_NESTING {
                    return Err(ImportError::at(
                        &open,
                        format!("blocks nest more than {MAX_NESTING} deep"),
                    ));
                }
                self.next += 1;
                Some(self.block(Some(&open), depth + 1)?)
            }
            _ => None,
        };
        Ok(Node {
            keyword,
            args,
            children,
            at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::lexer::lex;

    fn tree(text: &str) -> Result<Vec<Node>, ImportError> {
        let toks: Vec<Tok> = lex(text)
            .unwrap()
            .into_iter()
            .map(|t| Tok {
                kind: t.kind,
                at: Pos {
                    file: "k.conf".into(),
                    line: t.line,
                },
            })
            .collect();
        parse(&toks)
    }

    /// A compact rendering: `kw(args){children}`.
    fn show(nodes: &[Node]) -> String {
        nodes
            .iter()
            .map(|n| {
                let mut s = format!("{}@{}", n.keyword, n.at.line);
                if !n.args.is_empty() {
                    s.push_str(&format!("({})", n.args.join(",")));
                }
                if let Some(c) = &n.children {
                    s.push_str(&format!("{{{}}}", show(c)));
                }
                s
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn blocks_on_the_line_or_the_next() {
        let t = tree(
            "global_defs {\n router_id lb1\n}\nvrrp_instance VI_1\n{\n  virtual_ipaddress { 198.18.0.1/24 dev eth0 }\n  nopreempt\n}\n",
        )
        .unwrap();
        assert_eq!(
            show(&t),
            "global_defs@1{router_id@2(lb1)} vrrp_instance@4(VI_1){virtual_ipaddress@6{198.18.0.1/24@6(dev,eth0)} nopreempt@7}"
        );
    }

    #[test]
    fn empty_block_and_words_after_close() {
        let t = tree("a {}\nb { c } d\n").unwrap();
        assert_eq!(show(&t), "a@1{} b@2{c@2} d@2");
        assert_eq!(t[0].text(), "a {…}");
    }

    #[test]
    fn text_quotes_arguments_with_spaces() {
        let t = tree("notify_master \"/bin/x a b\" root\n").unwrap();
        assert_eq!(t[0].text(), "notify_master \"/bin/x a b\" root");
    }

    #[test]
    fn unbalanced() {
        let e = tree("a {\n b {\n }\n").unwrap_err().to_string();
        assert_eq!(
            e,
            "k.conf:1: unbalanced braces: this `{` is never closed (a `}` is missing)"
        );
        let e = tree("a {\n}\n}\n").unwrap_err().to_string();
        assert_eq!(e, "k.conf:3: unbalanced braces: `}` closes no block");
        let e = tree("{\n").unwrap_err().to_string();
        assert_eq!(e, "k.conf:1: `{` without a keyword before it");
    }

    #[test]
    fn nesting_bound() {
        let text = "a {\n".repeat(MAX_NESTING + 1) + &"}\n".repeat(MAX_NESTING + 1);
        let e = tree(&text).unwrap_err().to_string();
        assert!(e.contains("nest more than"), "{e}");
        let ok = "a {\n".repeat(MAX_NESTING) + &"}\n".repeat(MAX_NESTING);
        assert!(tree(&ok).is_ok());
    }
}
