//! `floe-executor`: runs tasks for a Floe scheduler and serves their shuffle files.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use floe_executor::work_dir::default_work_root;
use floe_executor::{Executor, ExecutorOptions};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Floe's executor.
#[derive(Debug, Parser)]
#[command(name = "floe-executor", version)]
struct Args {
    /// The scheduler's address.
    #[arg(long, default_value = "127.0.0.1:50050")]
    scheduler: String,
    /// Address for task control and shuffle reads; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:50061")]
    bind: String,
    /// Directory for shuffle files, shareable: the executor works in a subdirectory of its own
    /// and removes only those of executors that stopped (default: `floe-executor-$USER` in the
    /// system temp dir).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Tasks run at once (default: number of cores).
    #[arg(long)]
    slots: Option<usize>,
}

#[tokio::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    floe_core::install_crypto_provider();
    let args = Args::parse();
    let executor_id = uuid::Uuid::new_v4().simple().to_string();
    let work_dir = args.work_dir.unwrap_or_else(default_work_root);
    let options = ExecutorOptions {
        scheduler: args.scheduler,
        bind: args.bind,
        work_dir,
        slots: args.slots,
        executor_id: Some(executor_id),
    };
    let executor = match Executor::start(options).await {
        Ok(executor) => executor,
        Err(err) => {
            eprintln!("floe-executor: {err}");
            return ExitCode::FAILURE;
        }
    };
    // Tests and scripts read the bound address from this line.
    println!(
        "floe-executor {} listening on {}",
        executor.id(),
        executor.address()
    );
    tokio::select! {
        _ = executor.wait() => ExitCode::FAILURE,
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
    }
}
