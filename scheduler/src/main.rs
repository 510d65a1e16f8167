//! `floe-scheduler`: serves Flight SQL clients and executors on one address.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use floe_core::FloeConfig;
use floe_scheduler::Scheduler;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Floe's scheduler.
#[derive(Debug, Parser)]
#[command(name = "floe-scheduler", version)]
struct Args {
    /// Address for clients (Flight SQL) and executors; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:50050")]
    bind: String,
    /// Catalog configuration (floe.toml); also read from FLOE_CONFIG.
    #[arg(long, env = "FLOE_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    floe_core::install_crypto_provider();
    let args = Args::parse();
    let config = match FloeConfig::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("floe-scheduler: {err}");
            return ExitCode::FAILURE;
        }
    };
    let scheduler = match Scheduler::start(&args.bind, &config).await {
        Ok(scheduler) => scheduler,
        Err(err) => {
            eprintln!("floe-scheduler: {err}");
            return ExitCode::FAILURE;
        }
    };
    // Tests and scripts read the bound address from this line.
    println!("floe-scheduler listening on {}", scheduler.address());
    tokio::select! {
        _ = scheduler.wait() => ExitCode::FAILURE,
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
    }
}
