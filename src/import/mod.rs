//! `xvs import keepalived FILE`: an equivalent xvs configuration for a keepalived.conf.
//!
//! Four stages, each its own module:
//! 1. [`include`] reads the file and every file its `include` lines name (globs and brace
//!    expressions relative to the including file's directory, nesting bounded, cycles refused),
//!    splitting each with [`lexer`] (words, quotes, comments, braces);
//! 2. [`parser`] builds the tree of statements (keyword, arguments, block), each with its
//!    `FILE:LINE`;
//! 3. [`convert`] maps the tree onto xvs's configuration (CONTRACT.md's YAML), section by
//!    section (`global_defs`, `vrrp_*`, `virtual_server`);
//! 4. [`yaml`] writes it, with comments.
//!
//! Invariants:
//! - **Nothing is dropped silently.** Every statement of the input is converted, or appears in
//!   the output as a comment `# keepalived: <statement> (FILE:LINE) has no xvs equivalent` (or
//!   `converted approximately: <why>` when xvs can only come close) at the place it would have
//!   gone, and in [`Outcome::left_out`], which the command prints on stderr as
//!   `FILE:LINE: ...`. An empty `left_out` means the output is equivalent.
//! - **Malformed input is an error, never a guess**: unbalanced braces, an unterminated quote, an
//!   include that cannot be read or that cycles, a number or address that does not parse, an
//!   unknown `lb_kind` or scheduler are an [`ImportError`] at their `FILE:LINE`, and nothing is
//!   printed on stdout.
//! - **The output is YAML that `xvs check` accepts** for input that keepalived accepts and whose
//!   interfaces exist, every user string quoted (see [`yaml`]); the tests load every fixture's
//!   output with the same code `xvs check` runs.
//! - Reading is bounded: files are read through `control::config::source` (regular files, at
//!   most 16 MiB each), at most [`include::MAX_FILES`] files, includes at most
//!   [`include::MAX_DEPTH`] deep and blocks at most [`parser::MAX_NESTING`] deep.

use std::fmt;
use std::path::Path;
use std::rc::Rc;

pub mod convert;
pub mod include;
pub mod lexer;
pub mod parser;
pub mod yaml;

/// Where a statement is: the file's name and the 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pos {
    pub file: Rc<str>,
    pub line: u32,
}

impl fmt::Display for Pos {
    /// `FILE:LINE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Why the input could not be converted: `FILE:LINE: message` (or `FILE: message` for a file
/// that cannot be read at all).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ImportError {
    pub file: String,
    /// 0 when the error is about the whole file.
    pub line: u32,
    pub message: String,
}

impl ImportError {
    pub fn at(pos: &Pos, message: String) -> ImportError {
        ImportError {
            file: pos.file.to_string(),
            line: pos.line,
            message,
        }
    }

    pub fn file(name: &str, message: String) -> ImportError {
        ImportError {
            file: name.to_string(),
            line: 0,
            message,
        }
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

/// What the user asked for besides the file.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--interface NAME` (repeatable): the datapath's interfaces. Empty = the interfaces of
    /// the `vrrp_instance`s, in their order.
    pub interfaces: Vec<String>,
}

/// A converted configuration.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The xvs YAML.
    pub yaml: String,
    /// Every statement left out or converted approximately, in input order:
    /// `FILE:LINE: <statement> has no xvs equivalent` (the stderr lines).
    pub left_out: Vec<String>,
    /// Remarks that change nothing (an include that matched no file).
    pub notes: Vec<String>,
}

/// Converts the keepalived configuration at `path` (see the module documentation).
pub fn keepalived(path: &Path, opts: &Options) -> Result<Outcome, ImportError> {
    let loaded = include::load(path)?;
    let tree = parser::parse(&loaded.tokens)?;
    let mut out = convert::convert(&tree, &path.display().to_string(), opts)?;
    out.notes = loaded
        .notes
        .iter()
        .map(|(at, n)| format!("{at}: {n}"))
        .collect();
    Ok(out)
}
