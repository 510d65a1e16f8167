//! `floe-tpcds`: generate TPC-DS data into Iceberg tables, and run the 99 queries on a Floe
//! cluster, timed, validated, profiled and compared with peers. This file owns the command
//! line and the order of a run: Floe's rounds, then the external peer's, then the report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use floe_client::remote::{Connection, EmbeddedCluster};
use floe_common::config::DEFAULT_WAREHOUSE_DIR;
use floe_core::{FloeConfig, FloeSession};
use floe_tpcds::generate::{GenerateOptions, default_namespace, generate};
use floe_tpcds::queries::select_queries;
use floe_tpcds::run::peer::{PeerCommand, PeerJob, run_external};
use floe_tpcds::run::{QuerySettings, RunOptions, RunReport, run_queries_with};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The external peer's name in the report when --peer-name is not given.
const DEFAULT_PEER_NAME: &str = "peer";
/// The name of the peer --duckdb runs, unless --peer-name says otherwise.
const DUCKDB_PEER_NAME: &str = "DuckDB";

/// TPC-DS on Floe.
#[derive(Debug, Parser)]
#[command(name = "floe-tpcds", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate the 24 TPC-DS tables into Iceberg (replacing tables of the same names).
    Generate {
        #[command(flatten)]
        tables: TablesArgs,
        /// Partition the seven fact tables by their date key (e.g. ss_sold_date_sk).
        #[arg(long)]
        partitioned: bool,
        /// Tables written at once, and threads generating one large table (default: cores).
        #[arg(long)]
        parallelism: Option<usize>,
        /// Only these tables (comma-separated; default all 24).
        #[arg(long, value_delimiter = ',')]
        tables_only: Vec<String>,
    },
    /// Run the queries and report times per query, total and geometric mean.
    Run(Box<RunArgs>),
}

/// `floe-tpcds run`.
#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    tables: TablesArgs,
    /// A running Floe scheduler (`host:port`); default: an embedded cluster.
    #[arg(long)]
    host: Option<String>,
    /// Executors of the embedded cluster.
    #[arg(long, default_value_t = 2)]
    executors: usize,
    /// `all`, or query names separated by commas (q01,q14,...).
    #[arg(long, default_value = "all")]
    queries: String,
    /// Times each query runs; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Compare each result with the reference answer in --answers.
    #[arg(long)]
    validate: bool,
    /// Directory of reference answers (qNN.csv), e.g. ../shared/tpcds/answers/sf1.
    #[arg(long, env = "FLOE_TPCDS_ANSWERS")]
    answers: Option<PathBuf>,
    /// Also run every query on single-process DataFusion over the same tables, compare
    /// results and report the time ratio.
    #[arg(long)]
    compare: bool,
    /// Cancel a query that runs longer than this on Floe (or on single-process DataFusion);
    /// it is reported as `timeout` and not run again.
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    /// Run EXPLAIN ANALYZE of each query once after its rounds and write it to DIR/qNN.txt.
    #[arg(long, value_name = "DIR")]
    profile: Option<PathBuf>,
    /// After Floe's rounds, run this shell command as an external peer: it writes a CSV
    /// (query,median_s,...) to $FLOE_TPCDS_PEER_OUTPUT, told what to run by FLOE_TPCDS_NAMESPACE,
    /// FLOE_TPCDS_ROUNDS, FLOE_TPCDS_QUERIES, FLOE_TPCDS_QUERY_DIR and FLOE_TPCDS_TIMEOUT.
    #[arg(long, value_name = "CMD", conflicts_with = "duckdb")]
    peer_command: Option<String>,
    /// After Floe's rounds, run DuckDB as the external peer with this Python (which has
    /// duckdb and pyiceberg installed) over the Parquet files of --warehouse.
    #[arg(long, value_name = "PYTHON")]
    duckdb: Option<PathBuf>,
    /// Name of the external peer in the report (default: `DuckDB` with --duckdb, else `peer`).
    #[arg(long)]
    peer_name: Option<String>,
    /// Warehouse directory of the local catalog (holding catalog.db), which --duckdb reads.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_WAREHOUSE_DIR)]
    warehouse: PathBuf,
    /// Per-query CSV: query,median_s,min_s,max_s,rows,status, then the peers' columns.
    #[arg(long, default_value = "results.csv")]
    output: PathBuf,
    /// A session setting for Floe's queries, `KEY=VALUE` (`SET KEY = VALUE` before the first
    /// query); repeatable, e.g. `--set floe.single_task_max_scan_bytes=0`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
}

/// Where the tables are.
#[derive(Debug, Args)]
struct TablesArgs {
    /// TPC-DS scale factor (1 is about 1 GB of raw data).
    #[arg(long, default_value_t = 1.0)]
    scale_factor: f64,
    /// Catalog configuration (floe.toml); also read from FLOE_CONFIG.
    #[arg(long, env = "FLOE_CONFIG")]
    config: Option<PathBuf>,
    /// Catalog of the tables (default: the configuration's default catalog).
    #[arg(long)]
    catalog: Option<String>,
    /// Namespace of the tables (default: tpcds_sf<SF>).
    #[arg(long)]
    namespace: Option<String>,
}

impl TablesArgs {
    fn config(&self) -> Result<FloeConfig, String> {
        FloeConfig::load(self.config.as_deref()).map_err(|e| e.to_string())
    }

    /// The namespace, without the catalog.
    fn namespace(&self) -> String {
        self.namespace
            .clone()
            .unwrap_or_else(|| default_namespace(self.scale_factor))
    }

    /// `catalog.namespace`.
    fn qualified_namespace(&self, config: &FloeConfig) -> String {
        let catalog = self
            .catalog
            .clone()
            .unwrap_or_else(|| config.default_catalog_name());
        format!("{catalog}.{}", self.namespace())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    floe_core::install_crypto_provider();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Generate {
            tables,
            partitioned,
            parallelism,
            tables_only,
        } => run_generate(&tables, partitioned, parallelism, tables_only).await,
        Command::Run(args) => run_benchmark(*args).await,
    };
    match outcome {
        Ok(code) => code,
        Err(message) => {
            eprintln!("floe-tpcds: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run_generate(
    tables: &TablesArgs,
    partitioned: bool,
    parallelism: Option<usize>,
    tables_only: Vec<String>,
) -> Result<ExitCode, String> {
    let config = tables.config()?;
    let session = FloeSession::new(&config).await.map_err(|e| e.to_string())?;
    let options = GenerateOptions {
        scale_factor: tables.scale_factor,
        namespace: tables.qualified_namespace(&config),
        partitioned,
        parallelism: parallelism.unwrap_or_else(cores),
        tables: tables_only,
    };
    println!(
        "generating TPC-DS at scale factor {} into {}{}",
        options.scale_factor,
        options.namespace,
        if partitioned {
            " (fact tables partitioned by date)"
        } else {
            ""
        }
    );
    let started = Instant::now();
    let generated = generate(&session, &options, &MultiProgress::new())
        .await
        .map_err(|e| e.to_string())?;
    let rows: u64 = generated.iter().map(|t| t.rows).sum();
    println!(
        "generated {} tables, {rows} rows in {:.1} s",
        generated.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// `--validate`'s reference answers, checked to be a directory.
fn answers_dir(args: &RunArgs) -> Result<Option<PathBuf>, String> {
    match (args.validate, &args.answers) {
        (true, None) => Err(
            "--validate needs --answers DIR (reference answers, e.g. ../shared/tpcds/answers/sf1)"
                .to_string(),
        ),
        (true, Some(dir)) if !dir.is_dir() => {
            Err(format!("--answers {}: not a directory", dir.display()))
        }
        (true, answers) => Ok(answers.clone()),
        (false, _) => Ok(None),
    }
}

/// `--timeout` as a duration; it must be a positive number of seconds.
fn timeout(seconds: Option<f64>) -> Result<Option<Duration>, String> {
    seconds
        .map(|s| {
            Duration::try_from_secs_f64(s)
                .ok()
                .filter(|limit| !limit.is_zero())
                .ok_or_else(|| format!("--timeout {s}: not a positive number of seconds"))
        })
        .transpose()
}

/// The external peer asked for, and its name in the report.
fn external_peer(args: &RunArgs) -> Option<(String, PeerCommand)> {
    let (default_name, command) = match (&args.peer_command, &args.duckdb) {
        (Some(line), _) => (DEFAULT_PEER_NAME, PeerCommand::Shell(line.clone())),
        (None, Some(python)) => (
            DUCKDB_PEER_NAME,
            PeerCommand::DuckDb {
                python: python.clone(),
                warehouse: args.warehouse.clone(),
            },
        ),
        (None, None) => return None,
    };
    let name = args
        .peer_name
        .clone()
        .unwrap_or_else(|| default_name.to_string());
    Some((name, command))
}

/// Cores of this machine (2 if unknown).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

async fn run_benchmark(args: RunArgs) -> Result<ExitCode, String> {
    let config = args.tables.config()?;
    let options = RunOptions {
        queries: select_queries(&args.queries).map_err(|e| e.to_string())?,
        rounds: args.rounds,
        namespace: args.tables.qualified_namespace(&config),
        answers: answers_dir(&args)?,
    };
    let settings = QuerySettings {
        timeout: timeout(args.timeout)?,
        profile: args.profile.clone(),
    };
    if let Some(dir) = &settings.profile {
        // Now rather than after the first query's rounds.
        std::fs::create_dir_all(dir).map_err(|e| format!("--profile {}: {e}", dir.display()))?;
    }
    let mut report = run_on_floe(&args, &config, &options, &settings).await?;
    let peer_error = match external_peer(&args) {
        Some((name, command)) => {
            let job = PeerJob {
                namespace: args.tables.namespace(),
                rounds: options.rounds.max(1),
                queries: options.queries.clone(),
                timeout: settings.timeout,
                threads: cores(),
                answers: None,
            };
            run_external_peer(&mut report, name, command, job)
                .await
                .err()
        }
        None => None,
    };
    report.write_csv(&args.output).map_err(|e| e.to_string())?;
    print!("{}", report.csv());
    print!("{}", report.summary());
    println!("per-query results written to {}", args.output.display());
    if let Some(message) = &peer_error {
        eprintln!("floe-tpcds: {message}");
    }
    Ok(
        if report.problems().next().is_some() || peer_error.is_some() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// Floe's rounds (and single-process DataFusion's, with --compare), on --host or on an
/// embedded cluster that is stopped before this returns, so that no peer run later shares the
/// machine with it.
async fn run_on_floe(
    args: &RunArgs,
    config: &FloeConfig,
    options: &RunOptions,
    settings: &QuerySettings,
) -> Result<RunReport, String> {
    let cluster = match &args.host {
        Some(_) => None,
        None => Some(EmbeddedCluster::start(config, args.executors).await?),
    };
    let address = match (&args.host, &cluster) {
        (Some(host), _) => host.clone(),
        (None, Some(cluster)) => cluster.address(),
        (None, None) => String::new(),
    };
    let peer = if args.compare {
        Some(FloeSession::new(config).await.map_err(|e| e.to_string())?)
    } else {
        None
    };
    let outcome = async {
        let mut connection = Connection::connect(&address).await?.without_progress_bar();
        for setting in &args.settings {
            let (key, value) = setting
                .split_once('=')
                .ok_or_else(|| format!("--set {setting}: expected KEY=VALUE"))?;
            connection
                .execute(&format!("SET {} = {}", key.trim(), value.trim()))
                .await
                .map_err(|e| format!("--set {setting}: {e:?}"))?;
        }
        let progress = ProgressBar::new(0);
        progress.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
                .map_err(|e| e.to_string())?
                .progress_chars("=> "),
        );
        let report = run_queries_with(&mut connection, peer.as_ref(), options, settings, &progress)
            .await
            .map_err(|e| e.to_string());
        progress.finish_and_clear();
        report
    }
    .await;
    if let Some(cluster) = cluster {
        cluster.shutdown().await;
    }
    let mut report = outcome?;
    if args.host.is_some() {
        // The cluster's memory is in other processes.
        report.peak_memory_bytes = None;
    }
    Ok(report)
}

/// Runs the external peer (blocking, on a thread of its own) and merges its results; the
/// error names the command and how it ended.
async fn run_external_peer(
    report: &mut RunReport,
    name: String,
    command: PeerCommand,
    job: PeerJob,
) -> Result<(), String> {
    eprintln!("running {name} over the same tables");
    let results = tokio::task::spawn_blocking(move || run_external(&command, &job))
        .await
        .map_err(|e| format!("{name}: {e}"))??;
    report.set_external(&name, &results);
    Ok(())
}
