//! Reading the configuration file without trusting what is at the path.
//!
//! `xvs check`, `xvs run` and every reload read the file here, so a hostile path cannot hang or
//! exhaust the daemon:
//! - the path is `stat`ed first and anything but a regular file (a FIFO, a directory, a device
//!   such as `/dev/zero`, a socket) is refused before it is opened; the file is then opened with
//!   `O_NONBLOCK` (opening a FIFO swapped in between cannot block) and the opened descriptor is
//!   checked again with `fstat`;
//! - at most [`MAX_CONFIG_BYTES`] + 1 bytes are read: a larger file is refused, also one that
//!   grows while it is read;
//! - the bytes must be UTF-8; the first invalid byte is reported at its line and column.
//!
//! A UTF-8 byte order mark at the start is dropped by [`super::Config::from_str_named`], where
//! text from any source passes.

use std::fs::{File, FileType, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::Diagnostic;

/// The largest configuration file xvs reads: 16 MiB, hundreds of times a large real
/// configuration (a service with two real servers takes about 150 bytes).
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

fn not_regular(t: FileType) -> String {
    format!(
        "is {}, not a regular file: refusing to read it",
        crate::sys::file_kind(t)
    )
}

fn too_large(len: u64) -> String {
    format!("is {len} bytes; a configuration file may be at most {MAX_CONFIG_BYTES} bytes (16 MiB)")
}

/// Reads the configuration file at `path` (see the module documentation); `Err` is the one
/// diagnostic that says why it was refused, named `name`.
pub fn read(path: &Path, name: &str) -> Result<String, Diagnostic> {
    let refuse = |message: String| Diagnostic {
        file: name.to_string(),
        line: 0,
        col: 0,
        message,
    };
    let cannot = |e: std::io::Error| refuse(format!("cannot read: {e}"));
    // stat before open: opening a FIFO or a device may block or act on the device.
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if !meta.file_type().is_file() {
        return Err(refuse(not_regular(meta.file_type())));
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(cannot)?;
    // The path may have been replaced between the stat and the open.
    let meta = file.metadata().map_err(cannot)?;
    if !meta.file_type().is_file() {
        return Err(refuse(not_regular(meta.file_type())));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(refuse(too_large(meta.len())));
    }
    let bytes = read_capped(file, meta.len()).map_err(cannot)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(refuse(format!(
            "grew beyond {MAX_CONFIG_BYTES} bytes while it was read; a configuration file may be at most 16 MiB"
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        let (line, col) = line_col(&bytes[..at]);
        Diagnostic {
            file: name.to_string(),
            line,
            col,
            message: format!(
                "invalid UTF-8 (byte 0x{:02x}): a configuration file must be UTF-8 text",
                bytes[at]
            ),
        }
    })
}

/// At most [`MAX_CONFIG_BYTES`] + 1 bytes of `file`, whose size was `len` when it was opened.
fn read_capped(file: File, len: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    // `len` is at most the cap here, so this reserves at most 16 MiB.
    bytes
        .try_reserve_exact(usize::try_from(len).unwrap_or(0).saturating_add(1))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::OutOfMemory, e))?;
    file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The 1-based line and column (in characters) just after `valid`, valid UTF-8 text.
fn line_col(valid: &[u8]) -> (usize, usize) {
    let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = std::str::from_utf8(&valid[line_start..]).map_or(1, |s| s.chars().count() + 1);
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_invalid_byte_is_placed_by_line_and_character() {
        assert_eq!(line_col(b""), (1, 1));
        assert_eq!(line_col(b"ab"), (1, 3));
        assert_eq!(line_col(b"a\nb"), (2, 2));
        // "é" is two bytes, one column.
        assert_eq!(line_col("a\n\u{e9}x".as_bytes()), (2, 3));
    }
}
