//! A small YAML writer for the converted configuration: block mappings and sequences, flow
//! lists of scalars, and `#` comment lines anywhere.
//!
//! Invariants: every string that came from the keepalived file is written through [`quote`]
//! (double-quoted, escaped), so no input can change the structure of the output; comments are
//! single lines (line breaks and control characters in them are replaced), so no input can end
//! a comment early. An empty mapping is written `{}` and an empty sequence `[]`, with their
//! comments on the lines after them.

use std::fmt::Write as _;

/// A value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Written as is: the caller renders it (numbers, addresses, durations, enums) or quotes it.
    Scalar(String),
    /// `[a, b]`, each written as is.
    Flow(Vec<String>),
    Map(Map),
    Seq(Vec<Item>),
}

/// A block mapping: entries in order, then comments that follow them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Map {
    pub entries: Vec<Entry>,
    pub trailing: Vec<String>,
}

/// `key: value`, with comment lines before it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub comments: Vec<String>,
    pub key: String,
    pub value: Value,
}

/// A sequence item: comment lines before it, and the value (`None`: the comments only).
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub comments: Vec<String>,
    pub value: Option<Value>,
}

impl Map {
    fn write(&self, out: &mut String, indent: usize) {
        for e in &self.entries {
            write_comments(out, indent, &e.comments);
            pad(out, indent);
            out.push_str(&e.key);
            out.push(':');
            write_value(out, indent, &e.value);
        }
        write_comments(out, indent, &self.trailing);
    }

    /// Whether the map holds nothing, comments included.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.trailing.is_empty()
    }
}

/// A builder that keeps comments where they were added: `comment` then `put` puts the
/// comments before the entry.
///
/// [`MapBuilder::note`] files a comment under a key instead: it is written before that key
/// when the key is put, or after the last entry if it never is.
#[derive(Debug, Default)]
pub struct MapBuilder {
    map: Map,
    pending: Vec<String>,
    notes: Vec<(String, String)>,
}

impl MapBuilder {
    pub fn comment(&mut self, line: String) {
        self.pending.push(line);
    }

    /// A comment to write before `key` (see the type's documentation).
    pub fn note(&mut self, key: &str, line: String) {
        self.notes.push((key.to_string(), line));
    }

    pub fn put(&mut self, key: &str, value: Value) {
        let mut comments = std::mem::take(&mut self.pending);
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.notes)
            .into_iter()
            .partition(|(k, _)| k == key);
        self.notes = rest;
        comments.extend(mine.into_iter().map(|(_, l)| l));
        self.map.entries.push(Entry {
            comments,
            key: key.to_string(),
            value,
        });
    }

    pub fn scalar(&mut self, key: &str, value: impl ToString) {
        self.put(key, Value::Scalar(value.to_string()));
    }

    pub fn string(&mut self, key: &str, value: &str) {
        self.put(key, Value::Scalar(quote(value)));
    }

    pub fn has(&self, key: &str) -> bool {
        self.map.entries.iter().any(|e| e.key == key)
    }

    pub fn finish(mut self) -> Map {
        self.map.trailing.append(&mut self.pending);
        self.map
            .trailing
            .extend(self.notes.into_iter().map(|(_, l)| l));
        self.map
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn write_comments(out: &mut String, indent: usize, lines: &[String]) {
    for l in lines {
        pad(out, indent);
        out.push_str("# ");
        out.push_str(&one_line(l));
        out.push('\n');
    }
}

/// Writes the value after `key:` (or after `- `), ending the line.
fn write_value(out: &mut String, indent: usize, v: &Value) {
    match v {
        Value::Scalar(s) => {
            out.push(' ');
            out.push_str(s);
            out.push('\n');
        }
        Value::Flow(items) => {
            let _ = writeln!(out, " [{}]", items.join(", "));
        }
        Value::Map(m) if m.entries.is_empty() => {
            out.push_str(" {}\n");
            write_comments(out, indent + 2, &m.trailing);
        }
        Value::Map(m) => {
            out.push('\n');
            m.write(out, indent + 2);
        }
        Value::Seq(items) if items.iter().all(|i| i.value.is_none()) => {
            out.push_str(" []\n");
            for i in items {
                write_comments(out, indent + 2, &i.comments);
            }
        }
        Value::Seq(items) => {
            out.push('\n');
            write_seq(out, indent + 2, items);
        }
    }
}

fn write_seq(out: &mut String, indent: usize, items: &[Item]) {
    for i in items {
        write_comments(out, indent, &i.comments);
        match &i.value {
            None => {}
            Some(Value::Map(m)) if !m.entries.is_empty() => {
                let (first, rest) = m.entries.split_at(1);
                write_comments(out, indent, &first[0].comments);
                pad(out, indent);
                out.push_str("- ");
                out.push_str(&first[0].key);
                out.push(':');
                write_value(out, indent + 2, &first[0].value);
                let tail = Map {
                    entries: rest.to_vec(),
                    trailing: m.trailing.clone(),
                };
                tail.write(out, indent + 2);
            }
            Some(v) => {
                pad(out, indent);
                out.push('-');
                write_value(out, indent, v);
            }
        }
    }
}

/// The document: a top-level mapping after header comment lines.
pub fn document(header: &[String], root: &Map) -> String {
    let mut out = String::new();
    write_comments(&mut out, 0, header);
    root.write(&mut out, 0);
    out
}

/// `s` as a YAML double-quoted scalar: `"` and `\` escaped, control characters as escapes.
pub fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            '\r' => q.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(q, "\\u{:04x}", u32::from(c));
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// `s` on one line: line breaks and other control characters become spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("lb1"), "\"lb1\"");
        assert_eq!(quote("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }

    #[test]
    fn nested_document() {
        let mut real = MapBuilder::default();
        real.scalar("address", "198.18.1.11:80");
        real.comment("keepalived: x (k:3) has no xvs equivalent".into());
        real.scalar("weight", 2);
        let mut svc = MapBuilder::default();
        svc.string("name", "web");
        svc.put(
            "reals",
            Value::Seq(vec![
                Item {
                    comments: vec!["first".into()],
                    value: Some(Value::Map(real.finish())),
                },
                Item {
                    comments: vec!["left\nout".into()],
                    value: None,
                },
            ]),
        );
        svc.put("empty", Value::Seq(vec![]));
        svc.put("flow", Value::Flow(vec!["1".into(), "2".into()]));
        let mut g = MapBuilder::default();
        g.comment("nothing here".into());
        svc.put("global", Value::Map(g.finish()));
        let mut root = MapBuilder::default();
        root.put(
            "services",
            Value::Seq(vec![Item {
                comments: vec![],
                value: Some(Value::Map(svc.finish())),
            }]),
        );
        let doc = document(&["head".into()], &root.finish());
        assert_eq!(
            doc,
            "# head\nservices:\n  - name: \"web\"\n    reals:\n      # first\n      - address: 198.18.1.11:80\n        # keepalived: x (k:3) has no xvs equivalent\n        weight: 2\n      # left out\n    empty: []\n    flow: [1, 2]\n    global: {}\n      # nothing here\n"
        );
    }
}
