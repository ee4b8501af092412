//! Where each config path is written: a map from paths such as `services[0].reals[1].address` to
//! the line and column of the key and of the value, built from saphyr-parser's events.
//!
//! The same pass finds what serde cannot place well: YAML syntax errors, duplicate keys and a
//! second document.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, Span};

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    /// The start of the file.
    pub const START: Pos = Pos { line: 1, col: 1 };

    fn of(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            col: span.start.col() + 1,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Where the key is (`None` for sequence items and the root).
    key: Option<Pos>,
    /// Where the value starts.
    value: Pos,
}

/// Positions of every path written in the file.
#[derive(Debug, Default)]
pub struct Positions {
    map: HashMap<String, Entry>,
}

impl Positions {
    /// Whether the path is written in the file.
    pub fn has(&self, path: &str) -> bool {
        self.map.contains_key(path)
    }

    /// Where the key of `path` is written (for a sequence item: where the item starts); if the
    /// path is not written, the position of its nearest written ancestor.
    pub fn key(&self, path: &str) -> Pos {
        self.find(path, |e| e.key.unwrap_or(e.value))
    }

    /// Where the value of `path` starts; if the path is not written, the nearest written
    /// ancestor's.
    pub fn value(&self, path: &str) -> Pos {
        self.find(path, |e| e.value)
    }

    fn find(&self, path: &str, pick: impl Fn(&Entry) -> Pos) -> Pos {
        let mut p = path;
        loop {
            if let Some(e) = self.map.get(p) {
                return pick(e);
            }
            match parent(p) {
                Some(q) => p = q,
                None => return Pos::START,
            }
        }
    }
}

/// The path one level up: `a.b[2]` → `a.b` → `a` → `` → none.
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    if path.ends_with(']') {
        if let Some(i) = path.rfind('[') {
            return Some(&path[..i]);
        }
    }
    Some(match path.rfind('.') {
        Some(i) => &path[..i],
        None => "",
    })
}

fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

enum Frame {
    Map {
        path: String,
        /// The key whose value comes next.
        key: Option<(String, Pos)>,
        seen: HashMap<String, Pos>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

/// A problem found while scanning: position and message.
pub type Problem = (Pos, String);

/// Paths of complex (non-scalar) keys are not tracked; their contents get this prefix.
const COMPLEX: &str = "<key>";

/// Scans `text`: positions of every path, or the syntax errors / duplicate keys found.
pub fn scan(text: &str) -> Result<Positions, Vec<Problem>> {
    let mut sc = Scanner::default();
    let mut parser = Parser::new_from_str(text);
    while let Some(ev) = parser.next_event() {
        match ev {
            Ok((event, span)) => sc.event(&event, Pos::of(&span)),
            Err(e) => {
                let m = e.marker();
                let at = Pos {
                    line: m.line(),
                    col: m.col() + 1,
                };
                sc.problems
                    .push((at, format!("YAML syntax error: {}", e.info())));
                return Err(sc.problems);
            }
        }
    }
    if sc.problems.is_empty() {
        Ok(sc.positions)
    } else {
        Err(sc.problems)
    }
}

/// The state of one scan: what is found so far, and the open mappings and sequences.
#[derive(Default)]
struct Scanner {
    positions: Positions,
    problems: Vec<Problem>,
    stack: Vec<Frame>,
    documents: usize,
}

impl Scanner {
    /// One parser event at `pos`.
    fn event(&mut self, event: &Event, pos: Pos) {
        let (opens, scalar) = match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents == 2 {
                    let m = "only one YAML document is allowed".to_string();
                    self.problems.push((pos, m));
                }
                return;
            }
            Event::Scalar(v, ..) => (false, Some(v.to_string())),
            Event::Alias(_) => (false, None),
            Event::MappingStart(..) | Event::SequenceStart(..) => (true, None),
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                return;
            }
            _ => return,
        };
        let path = self.node_path(pos, opens, scalar);
        if opens {
            let path = path.unwrap_or_default();
            self.stack.push(match event {
                Event::MappingStart(..) => Frame::Map {
                    path,
                    key: None,
                    seen: HashMap::new(),
                },
                _ => Frame::Seq { path, next: 0 },
            });
        }
    }

    /// Records a node (a scalar, an alias, or the start of a mapping or sequence) at `pos`:
    /// returns its path, or `None` if it is a mapping key.
    fn node_path(&mut self, pos: Pos, opens: bool, scalar: Option<String>) -> Option<String> {
        let at = |key| Entry { key, value: pos };
        let p = match self.stack.last_mut() {
            None => String::new(),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                p
            }
            Some(Frame::Map { path, key, seen }) => match key.take() {
                Some((k, kpos)) => {
                    let p = child(path, &k);
                    self.positions.map.insert(p.clone(), at(Some(kpos)));
                    return Some(p);
                }
                None => {
                    let k = scalar.clone().unwrap_or_else(|| COMPLEX.to_string());
                    if scalar.is_some() {
                        if let Some(first) = seen.get(&k) {
                            let m = format!("duplicate key `{k}` (first at line {})", first.line);
                            self.problems.push((pos, m));
                        } else {
                            seen.insert(k.clone(), pos);
                        }
                    }
                    *key = Some((k, pos));
                    // A complex key: track its contents under a path nobody asks for.
                    return opens.then(|| child(path, COMPLEX));
                }
            },
        };
        self.positions.map.insert(p.clone(), at(None));
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
global:
  router_id: lb1
services:
  - name: web
    reals:
      - address: 198.18.1.11:80
      - { address: 198.18.1.12:80, weight: 2 }
    persistence: { timeout: 0s }
";

    #[test]
    fn paths_have_positions() {
        let p = scan(TEXT).unwrap();
        assert_eq!(p.key("global.router_id"), Pos { line: 2, col: 3 });
        assert_eq!(p.value("global.router_id"), Pos { line: 2, col: 14 });
        assert_eq!(p.key("services[0]"), Pos { line: 4, col: 5 });
        assert_eq!(p.value("services[0].name"), Pos { line: 4, col: 11 });
        assert_eq!(
            p.value("services[0].reals[0].address"),
            Pos { line: 6, col: 18 }
        );
        assert_eq!(
            p.key("services[0].reals[1].weight"),
            Pos { line: 7, col: 36 }
        );
        assert_eq!(
            p.key("services[0].persistence.timeout"),
            Pos { line: 8, col: 20 }
        );
        assert!(p.has("services[0].reals[1]"));
        assert!(!p.has("services[0].scheduler"));
    }

    #[test]
    fn missing_paths_fall_back_to_their_ancestor() {
        let p = scan(TEXT).unwrap();
        assert_eq!(p.key("services[0].scheduler"), Pos { line: 4, col: 5 });
        assert_eq!(
            p.key("services[0].reals[0].weight"),
            Pos { line: 6, col: 9 }
        );
        assert_eq!(p.key("vrrp.instances"), Pos::START);
    }

    #[test]
    fn duplicate_keys_are_found() {
        let e = scan("a: 1\nb:\n  c: 1\n  c: 2\n").unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, Pos { line: 4, col: 3 });
        assert!(e[0].1.contains("duplicate key `c` (first at line 3)"));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = scan("a: [1, 2\nb: 3\n").unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(e[0].1.starts_with("YAML syntax error"), "{:?}", e);
    }

    #[test]
    fn second_document_is_refused() {
        let e = scan("a: 1\n---\na: 2\n").unwrap_err();
        assert_eq!(e[0].0.line, 2);
    }
}
