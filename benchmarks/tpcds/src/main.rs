//! `floe-tpcds`: generate TPC-DS data into Iceberg tables, and run the 99 queries on a Floe
//! cluster, timed and validated.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use floe_client::remote::{Connection, EmbeddedCluster};
use floe_core::{FloeConfig, FloeSession};
use floe_tpcds::generate::{GenerateOptions, default_namespace, generate};
use floe_tpcds::queries::select_queries;
use floe_tpcds::run::{RunOptions, run_queries};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    Run {
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
        /// Per-query CSV: query,median_s,min_s,max_s,rows,status.
        #[arg(long, default_value = "results.csv")]
        output: PathBuf,
    },
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

    /// `catalog.namespace`.
    fn qualified_namespace(&self, config: &FloeConfig) -> String {
        let catalog = self
            .catalog
            .clone()
            .unwrap_or_else(|| config.default_catalog_name());
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| default_namespace(self.scale_factor));
        format!("{catalog}.{namespace}")
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Generate {
            tables,
            partitioned,
            parallelism,
            tables_only,
        } => run_generate(&tables, partitioned, parallelism, tables_only).await,
        Command::Run {
            tables,
            host,
            executors,
            queries,
            rounds,
            validate,
            answers,
            compare,
            output,
        } => {
            let answers = match (validate, answers) {
                (true, None) => Err(
                    "--validate needs --answers DIR (reference answers, e.g. ../shared/tpcds/answers/sf1)"
                        .to_string(),
                ),
                (true, Some(dir)) if !dir.is_dir() => {
                    Err(format!("--answers {}: not a directory", dir.display()))
                }
                (true, answers) => Ok(answers),
                (false, _) => Ok(None),
            };
            match answers {
                Ok(answers) => {
                    let options = RunSettings {
                        host,
                        executors,
                        queries,
                        rounds,
                        answers,
                        compare,
                        output,
                    };
                    run_benchmark(&tables, options).await
                }
                Err(message) => Err(message),
            }
        }
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
        parallelism: parallelism.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        }),
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

struct RunSettings {
    host: Option<String>,
    executors: usize,
    queries: String,
    rounds: usize,
    answers: Option<PathBuf>,
    compare: bool,
    output: PathBuf,
}

async fn run_benchmark(tables: &TablesArgs, settings: RunSettings) -> Result<ExitCode, String> {
    let config = tables.config()?;
    let options = RunOptions {
        queries: select_queries(&settings.queries).map_err(|e| e.to_string())?,
        rounds: settings.rounds,
        namespace: tables.qualified_namespace(&config),
        answers: settings.answers,
    };
    let cluster = match &settings.host {
        Some(_) => None,
        None => Some(EmbeddedCluster::start(&config, settings.executors).await?),
    };
    let address = match (&settings.host, &cluster) {
        (Some(host), _) => host.clone(),
        (None, Some(cluster)) => cluster.address(),
        (None, None) => String::new(),
    };
    let peer = if settings.compare {
        Some(FloeSession::new(&config).await.map_err(|e| e.to_string())?)
    } else {
        None
    };
    let outcome = async {
        let mut connection = Connection::connect(&address).await?.without_progress_bar();
        let progress = ProgressBar::new(0);
        progress.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
                .map_err(|e| e.to_string())?
                .progress_chars("=> "),
        );
        let report = run_queries(&mut connection, peer.as_ref(), &options, &progress)
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
    if settings.host.is_some() {
        // The cluster's memory is in other processes.
        report.peak_memory_bytes = None;
    }
    report
        .write_csv(&settings.output)
        .map_err(|e| e.to_string())?;
    print!("{}", report.csv());
    print!("{}", report.summary());
    println!("per-query results written to {}", settings.output.display());
    Ok(if report.problems().next().is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
