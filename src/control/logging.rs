//! The daemon's log: every line `xvs run` logs goes through the `log` facade, and this module
//! installs the backend, `env_logger`, writing one line per event to stderr (journald picks it
//! up under systemd, with its own timestamp and the unit's name, so the line carries neither).
//!
//! The layout is the message alone, as keepalived's lines are (`(VI_1) Entering MASTER STATE`,
//! `Adding service [198.18.1.13]:tcp:80 to VS [198.18.0.100]:tcp:80`): no level, no module, no
//! timestamp. env_logger formats a record into its own buffer and writes it with one
//! `write_all` under the stderr lock, so lines from different threads never interleave.
//!
//! Levels: errors at `error`, conditions worth a look (a stale program replaced, an unresolved
//! next hop, an unpinned worker) at `warn`, normal events (start, stop, state and service
//! changes, reload outcomes) at `info`, chatty detail at `debug`. `--log-level` (default `info`)
//! is the threshold for xvs's own lines; other crates' lines pass only at `warn` or above.

use std::io::{self, Write};

use log::{LevelFilter, Record};

/// The `--log-level` values of `xvs run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<LogLevel> for LevelFilter {
    fn from(l: LogLevel) -> LevelFilter {
        match l {
            LogLevel::Error => LevelFilter::Error,
            LogLevel::Warn => LevelFilter::Warn,
            LogLevel::Info => LevelFilter::Info,
            LogLevel::Debug => LevelFilter::Debug,
            LogLevel::Trace => LevelFilter::Trace,
        }
    }
}

/// Writes one record as one line: the message and a newline.
pub fn write_line(out: &mut dyn Write, record: &Record<'_>) -> io::Result<()> {
    writeln!(out, "{}", record.args())
}

/// The backend for `level`, writing to `target`.
fn builder(level: LevelFilter, target: env_logger::Target) -> env_logger::Builder {
    let mut b = env_logger::Builder::new();
    b.filter_level(level.min(LevelFilter::Warn))
        .filter_module("xvs", level)
        .target(target)
        .write_style(env_logger::WriteStyle::Never)
        .format(|buf, record| write_line(buf, record));
    b
}

/// Installs the stderr logger at `level` (once per process; a second call fails).
pub fn init(level: LogLevel) -> Result<(), log::SetLoggerError> {
    builder(level.into(), env_logger::Target::Stderr).try_init()
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::{Level, Log, Metadata};
    use std::sync::{Arc, Mutex};

    /// A `Write` the test keeps a handle on.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn logger(level: LevelFilter) -> (env_logger::Logger, Sink) {
        let sink = Sink::default();
        let l = builder(level, env_logger::Target::Pipe(Box::new(sink.clone()))).build();
        (l, sink)
    }

    fn emit(l: &env_logger::Logger, level: Level, target: &str, msg: std::fmt::Arguments<'_>) {
        l.log(
            &Record::builder()
                .level(level)
                .target(target)
                .module_path(Some(target))
                .args(msg)
                .build(),
        );
    }

    fn text(s: &Sink) -> String {
        String::from_utf8(s.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_record_is_one_line_of_the_message_alone() {
        let (l, sink) = logger(LevelFilter::Info);
        let name = "VI_1";
        emit(
            &l,
            Level::Info,
            "xvs::vrrp::driver",
            format_args!("({name}) Entering MASTER STATE"),
        );
        emit(
            &l,
            Level::Error,
            "xvs::control::daemon",
            format_args!("Cannot sync local addresses to the XDP filter: {}", "boom"),
        );
        assert_eq!(
            text(&sink),
            "(VI_1) Entering MASTER STATE\nCannot sync local addresses to the XDP filter: boom\n"
        );
    }

    #[test]
    fn write_line_writes_the_message_and_one_newline() {
        let mut out = Vec::new();
        let queue = 3;
        write_line(
            &mut out,
            &Record::builder()
                .level(Level::Warn)
                .target("xvs::datapath::worker")
                .args(format_args!("worker of queue {queue}: running unpinned"))
                .build(),
        )
        .unwrap();
        assert_eq!(out, b"worker of queue 3: running unpinned\n");
    }

    #[test]
    fn the_level_is_a_threshold_for_xvs_lines() {
        let (l, sink) = logger(LevelFilter::Warn);
        emit(
            &l,
            Level::Info,
            "xvs::control::daemon",
            format_args!("xvs started"),
        );
        emit(
            &l,
            Level::Debug,
            "xvs::vrrp::driver",
            format_args!("(VI_1) added"),
        );
        emit(
            &l,
            Level::Warn,
            "xvs::datapath::filter",
            format_args!("stale program"),
        );
        emit(
            &l,
            Level::Error,
            "xvs",
            format_args!("interface lan0 not found"),
        );
        assert_eq!(text(&sink), "stale program\ninterface lan0 not found\n");

        let (l, sink) = logger(LevelFilter::Debug);
        emit(
            &l,
            Level::Debug,
            "xvs::vrrp::driver",
            format_args!("(VI_1) added"),
        );
        emit(&l, Level::Trace, "xvs::vrrp::driver", format_args!("trace"));
        assert_eq!(text(&sink), "(VI_1) added\n");
    }

    #[test]
    fn other_crates_pass_only_at_warn_or_above() {
        let (l, _) = logger(LevelFilter::Trace);
        let md = |level, target| Metadata::builder().level(level).target(target).build();
        assert!(l.enabled(&md(Level::Trace, "xvs::control::health")));
        assert!(!l.enabled(&md(Level::Debug, "netlink_sys::socket")));
        assert!(!l.enabled(&md(Level::Info, "xsk_rs::umem")));
        assert!(l.enabled(&md(Level::Warn, "xsk_rs::umem")));
        let (l, _) = logger(LevelFilter::Error);
        assert!(!l.enabled(&md(Level::Warn, "xsk_rs::umem")));
        assert!(l.enabled(&md(Level::Error, "xsk_rs::umem")));
    }
}
