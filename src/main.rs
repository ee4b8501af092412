//! The `xvs` command line: `run`, `check`, `ctl`, `import` (see CONTRACT.md), and the hidden
//! `man`, which prints the man page `xvs.1` (roff, rendered by clap_mangen from this very
//! definition, so it cannot drift from `--help`); `make deb` packages its output.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use xvs::control::logging::{self, LogLevel};

#[derive(Parser)]
#[command(
    name = "xvs",
    version,
    about = "XDP Virtual Server: a Layer-4 load balancer on AF_XDP",
    after_long_help = "Files: /etc/xvs/xvs.yaml, the configuration (check it with `xvs check -c`); \
        /run/xvs/admin.sock, the admin socket of `xvs ctl`. Under systemd: `systemctl start xvs`, \
        `systemctl reload xvs` (SIGHUP: the file is validated in full and applied, or refused \
        with FILE:LINE:COL while the running configuration stays)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance in the foreground.
    Run {
        #[arg(short, long)]
        config: PathBuf,
        /// Log lines at this level and above, to stderr (one line per event).
        #[arg(long, value_enum, value_name = "LEVEL", default_value = "info")]
        log_level: LogLevel,
    },
    /// Validate a configuration file without touching the network.
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Talk to the running daemon over its admin socket.
    Ctl {
        /// The admin socket (default: `global.admin_socket` of -c FILE, else /run/xvs/admin.sock).
        #[arg(long, global = true, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// Read `global.admin_socket` from this configuration file.
        #[arg(short, long, global = true, value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: xvs::control::ctl::CtlCommand,
    },
    /// Print the man page xvs(1) in roff to stdout (`xvs man | man -l -`), or, with --dir,
    /// write it and one page per subcommand (xvs-check.1, xvs-ctl-list.1, ...) into DIR.
    #[command(hide = true)]
    Man {
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print an equivalent xvs configuration for another program's (exit 0: all converted,
    /// 2: something left out, as comments and on stderr; 1: unreadable or malformed input).
    Import {
        #[command(subcommand)]
        from: ImportFrom,
    },
}

#[derive(Subcommand)]
enum ImportFrom {
    /// A keepalived.conf (and the files it includes), as xvs YAML on stdout.
    Keepalived {
        /// The keepalived configuration file.
        file: PathBuf,
        /// A datapath interface (repeatable); default: the vrrp_instances' interfaces.
        #[arg(long = "interface", value_name = "NAME")]
        interfaces: Vec<String>,
    },
}

/// Writes the man page xvs(1) to stdout, or every page (xvs(1) and one per visible subcommand,
/// the pages xvs(1) refers to) into `dir`.
fn man_pages(dir: Option<&std::path::Path>) -> ExitCode {
    let written = match dir {
        // As generate_to does: no `help` subcommand page to point to.
        None => clap_mangen::Man::new(Cli::command().disable_help_subcommand(true))
            .render(&mut std::io::stdout().lock()),
        Some(dir) => clap_mangen::generate_to(Cli::command(), dir),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xvs: cannot write the man page: {e}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config, log_level } => {
            if let Err(e) = logging::init(log_level) {
                eprintln!("xvs: cannot install the logger: {e}");
                return ExitCode::from(1);
            }
            match xvs::control::daemon::run(&config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    log::error!("{}", e.report());
                    ExitCode::from(1)
                }
            }
        }
        Command::Check { config } => {
            use xvs::control::config::{load, SystemHost};
            match load(&config, &SystemHost::startup()) {
                Ok(_) => {
                    println!("{}: OK", config.display());
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    eprintln!("{errors}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Ctl {
            socket,
            config,
            command,
        } => ExitCode::from(xvs::control::ctl::main(
            socket.as_deref(),
            config.as_deref(),
            &command,
        )),
        Command::Man { dir } => man_pages(dir.as_deref()),
        Command::Import {
            from: ImportFrom::Keepalived { file, interfaces },
        } => import_keepalived(&file, interfaces),
    }
}

/// `xvs import keepalived FILE`: the YAML on stdout, what was left out on stderr.
fn import_keepalived(file: &std::path::Path, interfaces: Vec<String>) -> ExitCode {
    let opts = xvs::import::Options { interfaces };
    match xvs::import::keepalived(file, &opts) {
        Ok(out) => {
            print!("{}", out.yaml);
            for n in &out.notes {
                eprintln!("{n}");
            }
            for l in &out.left_out {
                eprintln!("{l}");
            }
            if out.left_out.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
