//! The configuration file (CONTRACT.md's YAML): typed model, parsing and validation.
//!
//! Loading runs three passes, so that every error names `FILE:LINE:COL`:
//! 1. saphyr-parser reads the events: YAML syntax errors, duplicate keys, a second document, and
//!    a map from paths such as `services[0].reals[1].address` to line:column ([`positions`]);
//! 2. serde_yaml_ng builds the typed [`Config`] (unknown keys, wrong types, bad addresses and
//!    durations — the first such error stops loading; a misspelt key or value names the closest
//!    valid one, [`suggest`]);
//! 3. semantic validation ([`validate`]) and the not-supported-yet table ([`unsupported`]) run in
//!    full and report every problem, sorted by position.
//!
//! The file is read by [`source`] (regular files only, at most 16 MiB, UTF-8), and checked
//! against the machine through a [`Host`]: interfaces, their MTU, the box's own addresses, memory.
//!
//! ```no_run
//! use std::path::Path;
//! use xvs::control::config::{self, SystemHost};
//! match config::load(Path::new("/etc/xvs/xvs.yaml"), &SystemHost::startup()) {
//!     Ok(cfg) => println!("{} services", cfg.services.len()),
//!     Err(errors) => eprintln!("{errors}"),
//! }
//! ```

use std::fmt;
use std::path::Path;

mod de;
pub mod host;
mod model;
pub mod positions;
pub mod source;
pub mod suggest;
pub mod unsupported;
mod validate;

pub use de::parse_socket_addr;
pub use host::{Host, SystemHost};
pub use model::*;

/// One error: where and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file name as given to [`load`] (or the name given to [`Config::from_str_named`]).
    pub file: String,
    /// 1-based line; 0 when the error has no position (an unreadable file).
    pub line: usize,
    /// 1-based column; 0 when the error has no position.
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    /// `FILE:LINE:COL: message`, or `FILE: message` without a position.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.col, self.message
            )
        }
    }
}

/// Why a config was refused: at least one [`Diagnostic`], sorted by position.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    errors: Vec<Diagnostic>,
}

impl ConfigErrors {
    /// Every error, in file order.
    pub fn errors(&self) -> &[Diagnostic] {
        &self.errors
    }
}

impl fmt::Display for ConfigErrors {
    /// One `FILE:LINE:COL: message` per line (no trailing newline).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Reads, parses and validates the config file at `path` against the machine `host`
/// ([`SystemHost`] outside tests; a closure `Fn(&str) -> bool` saying which interfaces exist
/// for a machine with no other facts).
pub fn load(path: &Path, host: &dyn Host) -> Result<Config, ConfigErrors> {
    let name = path.display().to_string();
    match source::read(path, &name) {
        Ok(text) => Config::from_str_named(&text, &name, host),
        Err(d) => Err(ConfigErrors { errors: vec![d] }),
    }
}

impl Config {
    /// Parses and validates `text` (a leading UTF-8 byte order mark is ignored); errors name
    /// the file `name`.
    pub fn from_str_named(text: &str, name: &str, host: &dyn Host) -> Result<Config, ConfigErrors> {
        // Editors never show a BOM, so positions are counted without it.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let fail = |problems: Vec<positions::Problem>| {
            let mut problems = problems;
            problems.sort_by_key(|(p, _)| *p);
            ConfigErrors {
                errors: problems
                    .into_iter()
                    .map(|(p, message)| Diagnostic {
                        file: name.to_string(),
                        line: p.line,
                        col: p.col,
                        message,
                    })
                    .collect(),
            }
        };
        let pos = positions::scan(text).map_err(fail)?;
        let cfg: Config = serde_yaml_ng::from_str(text).map_err(|e| {
            let p = e
                .location()
                .map(|l| positions::Pos {
                    line: l.line(),
                    col: l.column(),
                })
                .unwrap_or(positions::Pos::START);
            fail(vec![(p, suggest::suggest(&strip_location(&e.to_string())))])
        })?;
        let mut problems = validate::validate(&cfg, &pos, host);
        problems.extend(unsupported::check(&cfg, &pos));
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(fail(problems))
        }
    }
}

/// Validates a configuration changed at run time (`xvs ctl real`), which has no file: the same
/// rules as a load, the messages without positions. `Err` lists every problem.
pub fn validate_runtime(cfg: &Config, host: &dyn Host) -> Result<(), Vec<String>> {
    let pos = positions::scan("").unwrap_or_default();
    let mut problems = validate::validate(cfg, &pos, host);
    problems.extend(unsupported::check(cfg, &pos));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.into_iter().map(|(_, m)| m).collect())
    }
}

/// Removes serde_yaml_ng's ` at line N column M` (the position is printed in front instead).
fn strip_location(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + " at line ".len()..];
        let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
        let n = digits(tail);
        let after = &tail[n..];
        if n > 0 && after.starts_with(" column ") {
            let after = &after[" column ".len()..];
            let m = digits(after);
            if m > 0 {
                rest = &after[m..];
                continue;
            }
        }
        out.push_str(" at line ");
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// Whether a network interface of this name exists in this network namespace
/// (`if_nametoindex(3)`).
pub fn system_iface_exists(name: &str) -> bool {
    crate::sys::if_nametoindex(name).is_ok()
}

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;
