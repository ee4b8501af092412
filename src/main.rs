//! The `xvs` command line: `run`, `check`, `ctl`, `import` (see CONTRACT.md).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xvs::control::logging::{self, LogLevel};

#[derive(Parser)]
#[command(
    name = "xvs",
    version,
    about = "XDP Virtual Server: a Layer-4 load balancer on AF_XDP"
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
