//! `xvs ctl`: the command line, and the client side of the admin socket.
//!
//! [`main`] finds the socket ([`socket_path`]: `--socket`, else `global.admin_socket` of `-c
//! FILE`, else [`DEFAULT_SOCKET`]), sends one [`Request`] ([`request`]) and prints the reply:
//! `--json` prints the JSON (pretty), otherwise the ipvsadm layouts of
//! [`format`](super::format). Every failure is one [`CtlError`], printed as one line on stderr
//! with exit status 1; nothing is made up when the daemon cannot be reached.
//!
//! Imports: [`protocol`](super::protocol) and [`format`](super::format) only, nothing of the
//! daemon's side ([`answer`](super::answer), [`server`](super::server)).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use super::format::{
    format_announce, format_conns, format_list, format_list_rate, format_list_stats, format_stats,
    format_sync, format_vrrp,
};
use super::protocol::{RealChange, RealChangeKind, Reply, ReplyError, Request};

/// Where the daemon listens unless the config says otherwise (CONTRACT.md).
pub const DEFAULT_SOCKET: &str = "/run/xvs/admin.sock";

/// How long the client waits for each read or write of a reply (a reload waits for the daemon's
/// main loop, which answers within a second or two).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// `xvs ctl` subcommands.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum CtlCommand {
    /// Services and real servers, in `ipvsadm -L -n` layout.
    List {
        /// ipvsadm's `--stats`: connections, packets and bytes of each service and real server.
        #[arg(long, conflicts_with = "rate")]
        stats: bool,
        /// ipvsadm's `--rate`: per-second rates over the daemon's last 2-second interval.
        #[arg(long)]
        rate: bool,
        /// JSON instead of the ipvsadm layout.
        #[arg(long)]
        json: bool,
    },
    /// The connection table, in `ipvsadm -L -n -c` layout.
    Conns {
        #[arg(long)]
        json: bool,
    },
    /// Each worker's load over the daemon's last 2-second interval: queue, received and
    /// transmitted frames per second, utilisation (busy share) and mean frames per batch.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Change a real server at run time, without touching the file (a reload of the file
    /// replaces such changes): `add`, `edit --weight N`, `del` (drains: no new flows, its
    /// connections continue until they end).
    Real {
        #[command(subcommand)]
        op: RealOp,
    },
    /// VRRP instances: name, vrid, state, priority, master address.
    Vrrp {
        #[arg(long)]
        json: bool,
    },
    /// Connection sync: each peer with messages and records sent and received, in-sync flag and
    /// lag, then drops, installs, refusals and receive errors.
    Sync {
        #[arg(long)]
        json: bool,
    },
    /// The announce table (`announce:`): each VIP announced or withdrawn (and why: quorum,
    /// drained), the table, the device, whether the box is drained.
    Announce {
        #[arg(long)]
        json: bool,
    },
    /// Withdraw every announced VIP (maintenance): the routers stop sending new flows here,
    /// while existing flows keep being forwarded. Kept across reloads; `undrain` ends it.
    Drain,
    /// Announce again every VIP that is ready (its services have quorum).
    Undrain,
    /// Reload the configuration file, like SIGHUP; prints what changed or why the file was refused.
    Reload {
        /// The change lines as JSON (`{"changes": [...]}`); a refusal stays text on stderr.
        #[arg(long)]
        json: bool,
    },
}

/// `xvs ctl real` operations.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum RealOp {
    Add(RealArgs),
    Edit(RealArgs),
    /// Removes the real server; its connections drain (they continue until they end).
    Del(RealArgs),
}

impl RealOp {
    pub fn args(&self) -> &RealArgs {
        match self {
            RealOp::Add(a) | RealOp::Edit(a) | RealOp::Del(a) => a,
        }
    }
}

#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct RealArgs {
    /// Service name (`services[].name`).
    pub service: String,
    /// Real server, ADDR:PORT (`198.18.1.11:80` or `[2001:db8::11]:80`).
    #[arg(value_parser = crate::control::config::parse_socket_addr)]
    pub addr: SocketAddr,
    /// Weight (`add`: default 1; `edit`: required).
    #[arg(long)]
    pub weight: Option<u32>,
    /// The changes as JSON (`{"changes": [...]}`).
    #[arg(long)]
    pub json: bool,
}

impl CtlCommand {
    /// The request this command sends.
    pub fn request(&self) -> Request {
        match self {
            CtlCommand::Real { op } => {
                let (kind, a) = match op {
                    RealOp::Add(a) => (RealChangeKind::Add, a),
                    RealOp::Edit(a) => (RealChangeKind::Edit, a),
                    RealOp::Del(a) => (RealChangeKind::Del, a),
                };
                Request::Real(RealChange {
                    op: kind,
                    service: a.service.clone(),
                    addr: a.addr,
                    weight: a.weight,
                })
            }
            CtlCommand::List { .. } => Request::List,
            CtlCommand::Conns { .. } => Request::Conns,
            CtlCommand::Stats { .. } => Request::Stats,
            CtlCommand::Vrrp { .. } => Request::Vrrp,
            CtlCommand::Sync { .. } => Request::Sync,
            CtlCommand::Announce { .. } => Request::Announce,
            CtlCommand::Drain => Request::Drain,
            CtlCommand::Undrain => Request::Undrain,
            CtlCommand::Reload { .. } => Request::Reload,
        }
    }
}

/// Why `xvs ctl` failed. The text is the one line printed on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("xvs ctl: cannot reach the daemon at {}: {}", .socket.display(), io_reason(.source))]
    Unreachable { socket: PathBuf, source: io::Error },
    /// Connected, but the exchange failed or the reply was not understood.
    #[error("xvs ctl: no usable answer from the daemon at {}: {why}", .socket.display())]
    NoAnswer { socket: PathBuf, why: ExchangeError },
    /// The daemon answered `error`: its text, shown as it is.
    #[error("{0}")]
    Refused(String),
    #[error("xvs ctl: unreadable reply from the daemon: {0}")]
    Unreadable(#[source] serde_json::Error),
    #[error("xvs ctl: cannot read {}: {}", .file.display(), io_reason(.source))]
    ReadConfig { file: PathBuf, source: io::Error },
    #[error(
        "xvs ctl: cannot read global.admin_socket from {}: {why} (give the socket with --socket PATH)",
        .file.display()
    )]
    SocketKey { file: PathBuf, why: SocketKeyError },
}

/// Why a connected exchange gave no reply.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("{}", io_reason(.0))]
    Io(#[from] io::Error),
    #[error(transparent)]
    Reply(#[from] ReplyError),
}

/// Why `global.admin_socket` could not be read from a config file.
#[derive(Debug, thiserror::Error)]
pub enum SocketKeyError {
    /// Not YAML at all.
    #[error("{0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("it is not a path")]
    NotAPath,
}

/// What `xvs ctl` prints and its exit status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    pub code: u8,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    fn ok(stdout: String) -> Output {
        Output {
            code: 0,
            stdout,
            stderr: String::new(),
        }
    }

    fn fail(e: &CtlError) -> Output {
        let mut stderr = e.to_string();
        if !stderr.ends_with('\n') {
            stderr.push('\n');
        }
        Output {
            code: 1,
            stdout: String::new(),
            stderr,
        }
    }
}

/// An I/O error without Rust's ` (os error N)` suffix.
fn io_reason(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Sends `req` to the daemon at `socket` and returns its reply.
pub fn request(socket: &Path, req: &Request) -> Result<Reply, CtlError> {
    let stream = UnixStream::connect(socket).map_err(|source| CtlError::Unreachable {
        socket: socket.to_path_buf(),
        source,
    })?;
    exchange(stream, req).map_err(|why| CtlError::NoAnswer {
        socket: socket.to_path_buf(),
        why,
    })
}

/// Writes the request line, shuts down the write side, reads the reply to the end.
fn exchange(mut stream: UnixStream, req: &Request) -> Result<Reply, ExchangeError> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    stream.write_all(format!("{}\n", req.line()).as_bytes())?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(Reply::decode(&text)?)
}

fn to_json<T: Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Renders a data reply as JSON or as text.
fn render<T, F>(body: &str, json: bool, text: F) -> Result<String, CtlError>
where
    T: Serialize + for<'de> Deserialize<'de>,
    F: Fn(&T) -> String,
{
    let v: T = serde_json::from_str(body).map_err(CtlError::Unreadable)?;
    Ok(if json { to_json(&v) } else { text(&v) })
}

/// The change lines of a reload or `real` change as `{"changes": [...]}`.
fn changes_json(body: &str) -> String {
    let lines: Vec<&str> = body.lines().collect();
    to_json(&serde_json::json!({ "changes": lines }))
}

/// Runs one `xvs ctl` command against the daemon at `socket`.
pub fn execute(socket: &Path, cmd: &CtlCommand) -> Output {
    match run(socket, cmd) {
        Ok(stdout) => Output::ok(stdout),
        Err(e) => Output::fail(&e),
    }
}

/// What `cmd` prints on stdout, or why it failed.
fn run(socket: &Path, cmd: &CtlCommand) -> Result<String, CtlError> {
    let reply = request(socket, &cmd.request())?;
    if !reply.ok {
        return Err(CtlError::Refused(reply.body));
    }
    match *cmd {
        CtlCommand::List {
            json, stats: true, ..
        } => render(&reply.body, json, format_list_stats),
        CtlCommand::List {
            json, rate: true, ..
        } => render(&reply.body, json, format_list_rate),
        CtlCommand::List { json, .. } => render(&reply.body, json, format_list),
        CtlCommand::Conns { json } => render(&reply.body, json, format_conns),
        CtlCommand::Stats { json } => render(&reply.body, json, format_stats),
        CtlCommand::Vrrp { json } => render(&reply.body, json, format_vrrp),
        CtlCommand::Sync { json } => render(&reply.body, json, format_sync),
        CtlCommand::Announce { json } => render(&reply.body, json, format_announce),
        CtlCommand::Reload { json: true } => Ok(changes_json(&reply.body)),
        CtlCommand::Real { ref op } if op.args().json => Ok(changes_json(&reply.body)),
        _ => {
            let mut out = reply.body;
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            Ok(out)
        }
    }
}

/// The socket to talk to: `--socket`, else `global.admin_socket` of `-c FILE`, else the default.
///
/// The file is read leniently (only `global.admin_socket` is looked at), so that `xvs ctl -c
/// FILE reload` still reaches the daemon when FILE has a validation error elsewhere — the daemon
/// then says what is wrong with it. A file that is not YAML at all is refused here, asking for
/// `--socket PATH`.
pub fn socket_path(socket: Option<&Path>, config: Option<&Path>) -> Result<PathBuf, CtlError> {
    if let Some(s) = socket {
        return Ok(s.to_path_buf());
    }
    let Some(file) = config else {
        return Ok(PathBuf::from(DEFAULT_SOCKET));
    };
    let text = std::fs::read_to_string(file).map_err(|source| CtlError::ReadConfig {
        file: file.to_path_buf(),
        source,
    })?;
    admin_socket_of(&text).map_err(|why| CtlError::SocketKey {
        file: file.to_path_buf(),
        why,
    })
}

/// `global.admin_socket` of a config text, or the default when the key is absent.
fn admin_socket_of(text: &str) -> Result<PathBuf, SocketKeyError> {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)?;
    match doc.get("global").and_then(|g| g.get("admin_socket")) {
        None | Some(serde_yaml_ng::Value::Null) => Ok(PathBuf::from(DEFAULT_SOCKET)),
        Some(serde_yaml_ng::Value::String(s)) => Ok(PathBuf::from(s)),
        Some(_) => Err(SocketKeyError::NotAPath),
    }
}

/// `xvs ctl`: prints the outcome and returns the exit status.
pub fn main(socket: Option<&Path>, config: Option<&Path>, cmd: &CtlCommand) -> u8 {
    let out = match socket_path(socket, config) {
        Ok(path) => execute(&path, cmd),
        Err(e) => Output::fail(&e),
    };
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    out.code
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::admin::format::tests::sa;

    #[test]
    fn unreachable_daemon_is_one_line_and_exit_1() {
        let path = std::env::temp_dir().join(format!("xvs-ctl-none-{}.sock", std::process::id()));
        let out = execute(
            &path,
            &CtlCommand::List {
                stats: false,
                rate: false,
                json: false,
            },
        );
        assert_eq!(out.code, 1);
        assert!(out.stdout.is_empty());
        assert_eq!(
            out.stderr,
            format!(
                "xvs ctl: cannot reach the daemon at {}: No such file or directory\n",
                path.display()
            )
        );
    }

    /// What `xvs ctl list` prints when a fake daemon answers `reply`.
    fn list_against(name: &str, reply: &'static str) -> (PathBuf, Output) {
        let path = std::env::temp_dir().join(format!("xvs-ctl-{name}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let daemon = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut line = String::new();
            conn.read_to_string(&mut line).unwrap();
            assert_eq!(line, "list\n");
            conn.write_all(reply.as_bytes()).unwrap();
        });
        let out = execute(
            &path,
            &CtlCommand::List {
                stats: false,
                rate: false,
                json: false,
            },
        );
        daemon.join().unwrap();
        std::fs::remove_file(&path).unwrap();
        (path, out)
    }

    #[test]
    fn bad_replies_are_one_line_and_exit_1() {
        let (path, out) = list_against("status", "HTTP/1.0 200 OK");
        assert_eq!(
            (out.code, out.stderr),
            (
                1,
                format!(
                    "xvs ctl: no usable answer from the daemon at {}: unexpected reply \"HTTP/1.0 200 OK\"\n",
                    path.display()
                )
            )
        );
        let (_, out) = list_against("json", "ok\n{\"services\": 7}");
        assert_eq!(out.code, 1);
        assert!(
            out.stderr
                .starts_with("xvs ctl: unreadable reply from the daemon: "),
            "{:?}",
            out.stderr
        );
        assert_eq!(out.stderr.lines().count(), 1, "{:?}", out.stderr);
        // The daemon's own refusal is shown as it is.
        let (_, out) = list_against("refused", "error\nxvs: the daemon is stopping");
        assert_eq!(
            (out.code, out.stdout.as_str(), out.stderr.as_str()),
            (1, "", "xvs: the daemon is stopping\n")
        );
    }

    #[test]
    fn real_addresses_of_both_families_parse_as_in_the_configuration() {
        use clap::Parser;
        #[derive(Parser, Debug)]
        struct Cli {
            #[command(flatten)]
            real: RealArgs,
        }
        let parse = |addr: &str| Cli::try_parse_from(["real", "web6", addr]).map(|c| c.real.addr);
        assert_eq!(
            parse("[2001:2:0:1::13]:80").unwrap(),
            sa("[2001:2:0:1::13]:80")
        );
        assert_eq!(parse("198.18.1.13:80").unwrap(), sa("198.18.1.13:80"));
        let err = parse("2001:2:0:1::13:80").unwrap_err().to_string();
        assert!(err.contains("written in brackets"), "{err}");
    }

    #[test]
    fn every_command_asks_the_daemon() {
        let path = Path::new("/nonexistent/xvs.sock");
        let cmd = CtlCommand::Real {
            op: RealOp::Del(RealArgs {
                service: "web".into(),
                addr: sa("198.18.1.11:80"),
                weight: None,
                json: false,
            }),
        };
        let out = execute(path, &cmd);
        assert_eq!(out.code, 1);
        assert!(
            out.stderr.starts_with("xvs ctl: cannot reach the daemon"),
            "{:?}",
            out.stderr
        );
        assert_eq!(out.stderr.lines().count(), 1);
        let out = execute(path, &CtlCommand::Stats { json: false });
        assert!(
            out.stderr.starts_with("xvs ctl: cannot reach the daemon"),
            "{:?}",
            out.stderr
        );
        assert_eq!(CtlCommand::Stats { json: true }.request(), Request::Stats);
        // --stats and --rate are supported: they ask the daemon (absent here).
        for (stats, rate) in [(true, false), (false, true)] {
            let out = execute(
                path,
                &CtlCommand::List {
                    stats,
                    rate,
                    json: false,
                },
            );
            assert!(
                out.stderr.starts_with("xvs ctl: cannot reach the daemon"),
                "{:?}",
                out.stderr
            );
        }
    }

    #[test]
    fn socket_path_precedence() {
        let explicit = Path::new("/tmp/explicit.sock");
        assert_eq!(socket_path(Some(explicit), None).unwrap(), explicit);
        assert_eq!(socket_path(None, None).unwrap(), Path::new(DEFAULT_SOCKET));
        let dir = std::env::temp_dir();
        let file = dir.join(format!("xvs-ctl-cfg-{}.yaml", std::process::id()));
        std::fs::write(
            &file,
            "global:\n  admin_socket: /run/xvs-test.sock\nservices: [oops\n",
        )
        .unwrap();
        // A syntax error elsewhere: the lenient reader still needs a parsable document.
        let e = socket_path(None, Some(&file)).unwrap_err();
        assert!(
            matches!(
                e,
                CtlError::SocketKey {
                    why: SocketKeyError::Yaml(_),
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .ends_with(" (give the socket with --socket PATH)"),
            "{e}"
        );
        std::fs::write(
            &file,
            "global:\n  admin_socket: /run/xvs-test.sock\n  bogus_key: 1\n",
        )
        .unwrap();
        assert_eq!(
            socket_path(None, Some(&file)).unwrap(),
            Path::new("/run/xvs-test.sock")
        );
        assert_eq!(socket_path(Some(explicit), Some(&file)).unwrap(), explicit);
        std::fs::write(&file, "datapath: {}\n").unwrap();
        assert_eq!(
            socket_path(None, Some(&file)).unwrap(),
            Path::new(DEFAULT_SOCKET)
        );
        std::fs::remove_file(&file).unwrap();
        assert_eq!(
            socket_path(None, Some(&file)).unwrap_err().to_string(),
            format!(
                "xvs ctl: cannot read {}: No such file or directory",
                file.display()
            )
        );
    }
}
