//! The `corestore` binary: the server (once the S3 front end exists), admin tools and the
//! benchmark entry point.
//!
//! Architecture invariant: a leaf. It may depend on every library crate; nothing depends on it,
//! and it does not depend on `bench` (it runs the `corestore-bench` binary beside it instead).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use engine::Env;

#[derive(Parser)]
#[command(name = "corestore", version, about = "corestore: a thread-per-core, io_uring S3-compatible object store")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Checks that this kernel and process can run corestore (io_uring, ring flags, memlock).
    Doctor {
        /// Cores to start, as `serve` would.
        #[arg(long)]
        cores: Option<usize>,
    },
    /// Runs a benchmark (`corestore bench engine --help`); needs the corestore-bench binary
    /// built beside this one (`cargo build --release -p bench`).
    #[command(disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Doctor { cores } => doctor(cores),
        Command::Bench { args } => bench(args),
    }
}

fn doctor(cores: Option<usize>) -> ExitCode {
    let config = match cores {
        Some(n) => engine::RuntimeConfig::cores(n),
        None => Ok(engine::RuntimeConfig::all_cores()),
    };
    let result = config.and_then(|config| {
        let n = config.cpus.len();
        let arena_mib = config.arena.total_bytes() >> 20;
        // Start every core for real: ring flags, registered buffers, pinning, mesh.
        engine::run(config, |core: engine::Core<()>| async move { core.env.core() }).map(|_| (n, arena_mib))
    });
    match result {
        Ok((n, arena_mib)) => {
            println!(
                "ok: {n} cores started, each with an io_uring (SINGLE_ISSUER|DEFER_TASKRUN) and {arena_mib} MiB of registered buffers"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("corestore: cannot start: {e}");
            ExitCode::from(2)
        }
    }
}

fn bench(args: Vec<String>) -> ExitCode {
    let exe = std::env::current_exe().ok().and_then(|p| p.parent().map(|d| d.join("corestore-bench")));
    let exe = match exe {
        Some(p) if p.exists() => p,
        _ => PathBuf::from("corestore-bench"),
    };
    let err = std::process::Command::new(&exe).args(&args).exec();
    eprintln!("corestore: running {}: {err}. Build it with `cargo build --release -p bench`.", exe.display());
    ExitCode::from(2)
}
