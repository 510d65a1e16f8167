//! `floe`: the Floe SQL shell.
//!
//! With no statements to run it opens an interactive shell; `-c` and `-f` run statements and
//! exit, with a non-zero status when one fails. Statements go over Arrow Flight SQL to the
//! cluster at `--host`, or to an embedded cluster (a scheduler and `--executors` executors in
//! this process) over the catalogs of `floe.toml` (`--config`, `$FLOE_CONFIG`) or the default
//! local warehouse.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use floe_core::FloeConfig;
use mimalloc::MiMalloc;

mod json_values;
mod output;
mod repl;

use floe_client::remote;

use output::OutputFormat;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// Floe: distributed SQL over Apache Iceberg tables.
#[derive(Debug, Parser)]
#[command(
    name = "floe",
    version,
    about = "Floe SQL shell: query and write Apache Iceberg tables",
    long_about = "Floe SQL shell: query and write Apache Iceberg tables.\n\n\
        Without -c or -f, opens an interactive shell: statements end with `;` and may span \
        lines; Ctrl-C cancels the running statement (or clears the line); Ctrl-D or \\q exits. \
        History is kept in ~/.floe_history.\n\n\
        Catalogs come from floe.toml (--config or $FLOE_CONFIG). Without one, Floe uses the \
        catalog `local`: an Iceberg SQL catalog (SQLite, PyIceberg-compatible) with its \
        warehouse in ./floe-warehouse, and the namespace `default`.",
    after_help = "Examples:\n  \
        floe -c \"CREATE TABLE t (id INT, ts TIMESTAMP) PARTITIONED BY (day(ts)); SELECT * FROM t;\"\n  \
        floe -f setup.sql --format csv\n  \
        floe --config floe.toml\n  \
        floe --host 127.0.0.1:50050 -c \"SHOW TABLES\""
)]
struct Args {
    /// Send statements to the Floe scheduler at HOST:PORT instead of an embedded cluster
    #[arg(long, value_name = "HOST:PORT")]
    host: Option<String>,

    /// Executors of the embedded cluster (ignored with --host)
    #[arg(long, default_value_t = 2, value_name = "N")]
    executors: usize,

    /// Configuration file with the catalogs to use [env: FLOE_CONFIG]
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Run these SQL statements (`;`-separated; may be repeated), then exit
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    commands: Vec<String>,

    /// Run the statements in this file (may be repeated), then exit
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    files: Vec<PathBuf>,

    /// How to print result rows
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,

    /// Don't print row counts and timings
    #[arg(short, long)]
    quiet: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    floe_core::install_crypto_provider();
    let args = Args::parse();
    let mut embedded = None;
    let host = match &args.host {
        Some(host) => host.clone(),
        None => {
            let config = match FloeConfig::load(args.config.as_deref()) {
                Ok(config) => config,
                Err(err) => {
                    eprintln!("Error: {err}");
                    return ExitCode::from(2);
                }
            };
            match remote::EmbeddedCluster::start(&config, args.executors).await {
                Ok(cluster) => {
                    let address = cluster.address();
                    embedded = Some(cluster);
                    address
                }
                Err(err) => {
                    eprintln!("Error: {err}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let code = match remote::Connection::connect(&host).await {
        Ok(mut connection) => run(&args, &mut connection).await,
        Err(err) => {
            eprintln!("Error: {err}");
            ExitCode::from(2)
        }
    };
    if let Some(cluster) = embedded {
        cluster.shutdown().await;
    }
    code
}

async fn run(args: &Args, connection: &mut remote::Connection) -> ExitCode {
    let printer = output::Printer::new(args.format, args.quiet);

    if args.commands.is_empty() && args.files.is_empty() {
        return match repl::run(connection, &printer).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("Error: {err}");
                ExitCode::FAILURE
            }
        };
    }

    let mut scripts = Vec::new();
    for file in &args.files {
        match std::fs::read_to_string(file) {
            Ok(text) => scripts.push(text),
            Err(err) => {
                eprintln!("Error: cannot read {}: {err}", file.display());
                return ExitCode::from(2);
            }
        }
    }
    scripts.extend(args.commands.iter().cloned());
    for script in &scripts {
        for statement in floe_sql::split_statements(script) {
            if !repl::run_statement(connection, &printer, &statement).await {
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
