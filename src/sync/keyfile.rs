//! Reading the shared key of `sync.key_file`.
//!
//! The key is the file's bytes with one trailing newline (`\n` or `\r\n`) stripped, so
//! `head -c 32 /dev/urandom | base64 > key` and a binary file both work. Refused, each with a
//! [`KeyFileError`] whose message names the file:
//! - a path that cannot be read (missing, no permission) or is not a regular file (a directory,
//!   a FIFO, a device: `stat`ed before it is opened, and the opened descriptor checked again);
//! - a file readable or writable by its group or by others (`mode & 0o077 != 0`): the key
//!   authenticates every connection a peer installs, it must be `0600` or stricter;
//! - a file larger than [`MAX_KEY_FILE_LEN`] (not a key), empty, or shorter than
//!   [`MIN_KEY_LEN`] bytes once the newline is stripped.
//!
//! `xvs check` (configuration validation) and start-up both call [`load`], so a bad key file is
//! refused before the daemon starts.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::auth::{Key, MIN_KEY_LEN};

/// The largest key file read: a key is 16 to a few hundred bytes; anything larger is a mistake.
pub const MAX_KEY_FILE_LEN: u64 = 4096;

/// Why the key file was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    #[error("key file {}: cannot read: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("key file {} is {what}, not a regular file", path.display())]
    NotRegular { path: PathBuf, what: &'static str },
    #[error("key file {} has mode {mode:04o}: it must not be readable or writable by group or others (chmod 600)", path.display())]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("key file {} is {len} bytes; a key file may be at most {MAX_KEY_FILE_LEN} bytes", path.display())]
    TooLarge { path: PathBuf, len: u64 },
    #[error("key file {} is empty", path.display())]
    Empty { path: PathBuf },
    #[error("key file {} holds a {len}-byte key; at least {MIN_KEY_LEN} bytes are required", path.display())]
    TooShort { path: PathBuf, len: usize },
}

/// The key in the file at `path` (see the module documentation for what is refused).
pub fn load(path: &Path) -> Result<Key, KeyFileError> {
    let bytes = read(path)?;
    key_of(path, &bytes)
}

/// The key of the file's `bytes`: one trailing newline stripped, then the length rules.
pub fn key_of(path: &Path, bytes: &[u8]) -> Result<Key, KeyFileError> {
    let secret = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let secret = secret.strip_suffix(b"\r").unwrap_or(secret);
    if secret.is_empty() {
        return Err(KeyFileError::Empty { path: path.into() });
    }
    Key::new(secret).map_err(|e| KeyFileError::TooShort {
        path: path.into(),
        len: e.0,
    })
}

/// The file's bytes, after the type, mode and size checks.
fn read(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    let unreadable = |e: std::io::Error| KeyFileError::Unreadable {
        path: path.into(),
        reason: e.to_string(),
    };
    let check = |meta: &std::fs::Metadata| {
        if !meta.file_type().is_file() {
            return Err(KeyFileError::NotRegular {
                path: path.into(),
                what: crate::sys::file_kind(meta.file_type()),
            });
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::TooOpen {
                path: path.into(),
                mode,
            });
        }
        if meta.len() > MAX_KEY_FILE_LEN {
            return Err(KeyFileError::TooLarge {
                path: path.into(),
                len: meta.len(),
            });
        }
        Ok(())
    };
    // stat before open: opening a FIFO or a device may block or act on the device.
    check(&std::fs::metadata(path).map_err(unreadable)?)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(unreadable)?;
    // The path may have been replaced between the stat and the open.
    check(&file.metadata().map_err(unreadable)?)?;
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_KEY_FILE_LEN {
        return Err(KeyFileError::TooLarge {
            path: path.into(),
            len: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::fs;

    /// A fresh directory under the system's temporary directory, removed when dropped.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!("xvs-{tag}-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }

        /// Writes `bytes` to `name` with `mode`; returns its path.
        pub(crate) fn file(&self, name: &str, bytes: &[u8], mode: u32) -> PathBuf {
            let p = self.0.join(name);
            fs::write(&p, bytes).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            p
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_good_key_loads_with_its_newline_stripped() {
        let d = TempDir::new("key");
        let with = d.file("a", b"0123456789abcdef\n", 0o600);
        let without = d.file("b", b"0123456789abcdef", 0o400);
        let crlf = d.file("c", b"0123456789abcdef\r\n", 0o600);
        let data = b"message";
        let tag = load(&without).unwrap().sign(data);
        assert!(load(&with).unwrap().verify(data, &tag));
        assert!(load(&crlf).unwrap().verify(data, &tag));
        // Only one newline is stripped: the second is part of the key.
        let two = d.file("d", b"0123456789abcdef\n\n", 0o600);
        assert!(!load(&two).unwrap().verify(data, &tag));
    }

    #[test]
    fn every_refusal_names_the_file() {
        let d = TempDir::new("key");
        let missing = d.0.join("missing");
        let cases: Vec<(PathBuf, &str)> = vec![
            (missing, "cannot read"),
            (d.0.clone(), "is a directory, not a regular file"),
            (d.file("empty", b"", 0o600), "is empty"),
            (d.file("nl", b"\n", 0o600), "is empty"),
            (
                d.file("short", b"0123456789abcde\n", 0o600),
                "holds a 15-byte key",
            ),
            (d.file("group", b"0123456789abcdef", 0o640), "has mode 0640"),
            (d.file("other", b"0123456789abcdef", 0o604), "has mode 0604"),
            (d.file("gw", b"0123456789abcdef", 0o620), "has mode 0620"),
            (d.file("big", &[b'k'; 5000], 0o600), "is 5000 bytes"),
        ];
        for (path, expect) in cases {
            let e = load(&path).unwrap_err().to_string();
            assert!(e.contains(expect), "{}: {e}", path.display());
            assert!(
                e.starts_with(&format!("key file {}", path.display())),
                "{e}"
            );
        }
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let d = TempDir::new("key");
        let p = d.0.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&p).status();
        if !made.is_ok_and(|s| s.success()) {
            return; // no mkfifo(1) here: nothing to test
        }
        let e = load(&p).unwrap_err();
        assert!(
            matches!(
                e,
                KeyFileError::NotRegular {
                    what: "a FIFO (named pipe)",
                    ..
                }
            ),
            "{e}"
        );
    }
}
