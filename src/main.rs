//! The `xvs` command line: `run`, `check`, `ctl` (see CONTRACT.md).

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
    }
}
