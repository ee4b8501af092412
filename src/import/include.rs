//! Reading the main file and its includes into one token stream.
//!
//! `include PATTERN` (and keepalived's variants) is replaced by the tokens of every file the
//! pattern names, in the order keepalived reads them. The rules:
//! - a relative pattern is relative to the directory of the file that includes it;
//! - csh-style brace expressions (`{a,b}`, nested) are expanded first, then each pattern with a
//!   glob character (`*`, `?`, `[`) is matched with [`glob`] (sorted, regular files only); a
//!   glob that matches nothing includes nothing (keepalived's `include` tolerates that) and is
//!   reported as a note; a pattern without glob characters must name a readable file;
//! - includes nest at most [`MAX_DEPTH`] deep, at most [`MAX_FILES`] files are read in all, and
//!   a file that includes itself, directly or through others, is an error at the include line;
//! - every file is read by [`crate::control::config::source::read`]: regular files of at most
//!   16 MiB of UTF-8 only.
//!
//! Every token carries its [`Pos`]: the file name as given (or as joined to the including
//! file's directory) and the line.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::lexer::{self, Kind};
use super::{ImportError, Pos};

/// How deep includes may nest (the main file is depth 0).
pub const MAX_DEPTH: usize = 16;

/// How many files (the main one included) one import reads at most.
pub const MAX_FILES: usize = 1024;

/// A token of the whole configuration: a word or a brace, and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tok {
    pub kind: Kind,
    pub at: Pos,
}

/// The tokens of the main file with every include expanded, and the notes (includes that
/// matched no file) to show the user.
#[derive(Debug, Default)]
pub struct Loaded {
    pub tokens: Vec<Tok>,
    pub notes: Vec<(Pos, String)>,
}

/// Reads `path` and everything it includes (see the module documentation).
pub fn load(path: &Path) -> Result<Loaded, ImportError> {
    let mut st = State {
        out: Loaded::default(),
        stack: Vec::new(),
        files: 0,
    };
    st.file(path, &path.display().to_string(), None)?;
    Ok(st.out)
}

struct State {
    out: Loaded,
    /// The canonical paths of the files being read, outermost first.
    stack: Vec<PathBuf>,
    files: usize,
}

impl State {
    /// Reads one file, named `name`, included from `from` (None for the main file).
    fn file(&mut self, path: &Path, name: &str, from: Option<&Pos>) -> Result<(), ImportError> {
        let at_include = |message: String| match from {
            Some(p) => ImportError::at(p, message),
            None => ImportError::file(name, message),
        };
        self.files += 1;
        if self.files > MAX_FILES {
            return Err(at_include(format!(
                "more than {MAX_FILES} files included: refusing to read {name}"
            )));
        }
        if self.stack.len() > MAX_DEPTH {
            return Err(at_include(format!(
                "includes nest more than {MAX_DEPTH} deep (at {name})"
            )));
        }
        let text = crate::control::config::source::read(path, name).map_err(|d| {
            let msg = d.message;
            match (from, d.line) {
                (_, l) if l > 0 => ImportError::at(
                    &Pos {
                        file: name.into(),
                        line: u32::try_from(l).unwrap_or(u32::MAX),
                    },
                    msg,
                ),
                (Some(p), _) => ImportError::at(p, format!("cannot include {name}: {msg}")),
                (None, _) => ImportError::file(name, msg),
            }
        })?;
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if self.stack.contains(&canonical) {
            return Err(at_include(format!(
                "include cycle: {name} is already being read (it includes itself through this line)"
            )));
        }
        let file: Rc<str> = name.into();
        let tokens = lexer::lex(&text).map_err(|e| {
            ImportError::at(
                &Pos {
                    file: file.clone(),
                    line: e.line,
                },
                e.message,
            )
        })?;
        self.stack.push(canonical);
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for t in tokens {
            let at = Pos {
                file: file.clone(),
                line: t.line,
            };
            match t.kind {
                Kind::Include(pattern) => self.include(&dir, &pattern, &at)?,
                kind => self.out.tokens.push(Tok { kind, at }),
            }
        }
        self.stack.pop();
        Ok(())
    }

    /// Expands one `include PATTERN` line at `at`, relative to `dir`.
    fn include(&mut self, dir: &Path, pattern: &str, at: &Pos) -> Result<(), ImportError> {
        if pattern.is_empty() {
            return Err(ImportError::at(at, "include needs a file name".to_string()));
        }
        for p in expand_braces(pattern) {
            let full = if Path::new(&p).is_absolute() || dir.as_os_str().is_empty() {
                PathBuf::from(&p)
            } else {
                dir.join(&p)
            };
            let full_str = full.display().to_string();
            if !p.contains(['*', '?', '[']) {
                self.file(&full, &full_str, Some(at))?;
                continue;
            }
            let paths = glob::glob(&full_str).map_err(|e| {
                ImportError::at(at, format!("bad include pattern `{pattern}`: {e}"))
            })?;
            let mut matched: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
            matched.retain(|m| m.is_file());
            matched.sort();
            if matched.is_empty() {
                self.out
                    .notes
                    .push((at.clone(), format!("include {pattern} matches no file")));
            }
            for m in matched {
                self.file(&m, &m.display().to_string(), Some(at))?;
            }
        }
        Ok(())
    }
}

/// csh-style brace expansion: `a{b,c{d,e}}f` → `abf`, `acdf`, `acef`. A brace without a
/// matching close, or without a comma at its level, is kept as text.
pub fn expand_braces(pattern: &str) -> Vec<String> {
    let bytes = pattern.as_bytes();
    let Some(open) = pattern.find('{') else {
        return vec![pattern.to_string()];
    };
    // Find the matching close and the top-level commas.
    let mut depth = 0usize;
    let mut commas = Vec::new();
    let mut close = None;
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            b',' if depth == 1 => commas.push(i),
            _ => {}
        }
    }
    let (Some(close), false) = (close, commas.is_empty()) else {
        // Not an expression: keep this brace as text, expand what follows it.
        let (head, tail) = pattern.split_at(open + 1);
        return expand_braces(tail)
            .into_iter()
            .map(|t| format!("{head}{t}"))
            .collect();
    };
    let (prefix, suffix) = (&pattern[..open], &pattern[close + 1..]);
    let mut bounds = vec![open];
    bounds.extend(&commas);
    bounds.push(close);
    let mut out = Vec::new();
    for w in bounds.windows(2) {
        let alt = &pattern[w[0] + 1..w[1]];
        for s in expand_braces(&format!("{prefix}{alt}{suffix}")) {
            out.push(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn braces() {
        assert_eq!(expand_braces("a.conf"), ["a.conf"]);
        assert_eq!(expand_braces("{a,b}.conf"), ["a.conf", "b.conf"]);
        assert_eq!(
            expand_braces("x/{,cat,dog}/{1,2}"),
            ["x//1", "x//2", "x/cat/1", "x/cat/2", "x/dog/1", "x/dog/2"]
        );
        assert_eq!(expand_braces("a{b,c{d,e}}f"), ["abf", "acdf", "acef"]);
        assert_eq!(expand_braces("a{b}c"), ["a{b}c"]);
        assert_eq!(expand_braces("a{b"), ["a{b"]);
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xvs-include-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn includes_relative_to_the_including_file() {
        let d = tmpdir("rel");
        std::fs::create_dir_all(d.join("conf.d")).unwrap();
        std::fs::write(d.join("main.conf"), "a\ninclude conf.d/*.conf\nz\n").unwrap();
        std::fs::write(d.join("conf.d/2.conf"), "c\n").unwrap();
        std::fs::write(d.join("conf.d/1.conf"), "b\ninclude ../leaf\n").unwrap();
        std::fs::write(d.join("leaf"), "leaf\n").unwrap();
        let l = load(&d.join("main.conf")).unwrap();
        let w: Vec<String> = l
            .tokens
            .iter()
            .map(|t| match &t.kind {
                Kind::Word(w) => format!("{w}@{}", t.at),
                _ => unreachable!(),
            })
            .collect();
        let f = |n: &str| d.join(n).display().to_string();
        assert_eq!(
            w,
            [
                format!("a@{}:1", f("main.conf")),
                format!("b@{}:1", f("conf.d/1.conf")),
                format!("leaf@{}/../leaf:1", f("conf.d")),
                format!("c@{}:1", f("conf.d/2.conf")),
                format!("z@{}:3", f("main.conf")),
            ]
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn missing_cycle_and_empty_glob() {
        let d = tmpdir("bad");
        std::fs::write(d.join("m.conf"), "x\ninclude nothere.conf\n").unwrap();
        let e = load(&d.join("m.conf")).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}:2: cannot include", d.join("m.conf").display())),
            "{e}"
        );

        std::fs::write(d.join("a.conf"), "include b.conf\n").unwrap();
        std::fs::write(d.join("b.conf"), "\n\ninclude a.conf\n").unwrap();
        let e = load(&d.join("a.conf")).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}:3: include cycle", d.join("b.conf").display())),
            "{e}"
        );

        std::fs::write(d.join("g.conf"), "include none/*.conf\n").unwrap();
        let l = load(&d.join("g.conf")).unwrap();
        assert!(l.tokens.is_empty());
        assert_eq!(l.notes.len(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn depth_bound() {
        let d = tmpdir("deep");
        std::fs::write(d.join("self.conf"), "include self.conf\n").unwrap();
        let e = load(&d.join("self.conf")).unwrap_err().to_string();
        assert!(e.contains("include cycle"), "{e}");
        for i in 0..=MAX_DEPTH + 1 {
            std::fs::write(
                d.join(format!("{i}.conf")),
                format!("include {}.conf\n", i + 1),
            )
            .unwrap();
        }
        let e = load(&d.join("0.conf")).unwrap_err().to_string();
        assert!(e.contains("nest more than"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
