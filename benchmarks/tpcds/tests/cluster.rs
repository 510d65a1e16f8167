//! All 99 TPC-DS queries on a real multi-process cluster (one `floe-scheduler`, two
//! `floe-executor` processes) over a small generated data set, each result checked against an
//! engine nobody here wrote, DuckDB (over the same Parquet files, as the tables' Iceberg metadata
//! lists them), and compared with single-process DataFusion (`FloeSession` without a cluster)
//! over the same Iceberg tables.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../../../client/tests/support/processes.rs"]
mod processes;

use floe_client::remote::Connection;
use floe_core::{FloeConfig, FloeSession};
use floe_tpcds::generate::{GenerateOptions, generate};
use floe_tpcds::queries::all_query_names;
use floe_tpcds::run::peer::{PeerCommand, PeerJob, run_external};
use floe_tpcds::run::{QueryRun, QueryStatus, RunOptions, run_queries};
use indicatif::{MultiProgress, ProgressBar};

/// Small enough for CI on two cores, large enough that every query returns rows or exercises
/// its joins (scale factor 0.01: 2.6 million rows, most of them customer_demographics).
const SCALE_FACTOR: f64 = 0.01;

/// Queries whose answer differs from DuckDB's for a reason of dialect, not of correctness, and
/// why. Each must still differ (so the list stays true) and agree with single-process DataFusion.
const DIALECT_DIFFERENCES: &[(&str, &str)] = &[(
    "q66",
    "DuckDB divides DECIMAL by DECIMAL as DOUBLE (0.6764327813726302); DataFusion keeps a \
     DECIMAL of scale 6, truncated (0.676432), a relative difference over the 1e-6 tolerance",
)];

/// Queries whose answer is empty at [`SCALE_FACTOR`] (on DuckDB too): their filters select
/// nothing in so little data. Every other query must return rows.
const EMPTY_AT_THIS_SCALE: &[&str] = &[
    "q08", "q10", "q23", "q24", "q31", "q37", "q41", "q44", "q54", "q58", "q64", "q82", "q83",
    "q84", "q85", "q91",
];

/// Whether `run` agrees with DuckDB: its notes name no mismatch with the reference answer.
fn matches_duckdb(run: &QueryRun) -> bool {
    !run.notes
        .iter()
        .any(|note| note.starts_with("vs reference answer"))
        && !run
            .notes
            .iter()
            .any(|note| note.starts_with("no reference answer"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_on_a_cluster_equals_single_process_datafusion() {
    let cluster = processes::start_cluster();
    let config = FloeConfig::local_warehouse(&cluster.dir.path().join("floe-warehouse"));
    let session = FloeSession::new(&config).await.unwrap();
    let namespace = "local.tpcds".to_string();
    let generated = generate(
        &session,
        &GenerateOptions {
            scale_factor: SCALE_FACTOR,
            namespace: namespace.clone(),
            partitioned: false,
            parallelism: 2,
            tables: Vec::new(),
        },
        &MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden()),
    )
    .await
    .unwrap();
    assert_eq!(generated.len(), 24);
    assert!(
        generated.iter().all(|table| table.rows > 0),
        "{generated:?}"
    );

    let mut connection = Connection::connect(&cluster.scheduler.address)
        .await
        .unwrap()
        .without_progress_bar();
    // Every query through stages, cut and shuffled, however small its tables.
    connection
        .execute("SET floe.single_task_max_scan_bytes = 0")
        .await
        .unwrap();
    // DuckDB's answers first: the reference Floe's results are checked against.
    let answers = cluster.dir.path().join("duckdb-answers");
    let duckdb = PeerCommand::DuckDb {
        python: processes::test_python(),
        warehouse: cluster.dir.path().join("floe-warehouse"),
    };
    let job = PeerJob {
        namespace: "tpcds".to_string(),
        rounds: 1,
        queries: all_query_names(),
        timeout: None,
        threads: 2,
        answers: Some(answers.clone()),
    };
    let duckdb_results = run_external(&duckdb, &job).unwrap();
    let duckdb_failed: Vec<_> = duckdb_results
        .iter()
        .filter(|r| r.status != "ran")
        .collect();
    assert!(
        duckdb_failed.is_empty(),
        "DuckDB did not run: {duckdb_failed:?}"
    );

    let options = RunOptions {
        queries: all_query_names(),
        rounds: 1,
        namespace,
        answers: Some(answers),
    };
    let report = run_queries(
        &mut connection,
        Some(&session),
        &options,
        &ProgressBar::hidden(),
    )
    .await
    .unwrap();
    assert_eq!(report.queries.len(), 99);
    // Each query was checked against the single-process peer, which ran it too.
    assert!(report.queries.iter().all(|q| q.peer_times.len() == 1));
    let mut problems = Vec::new();
    for run in &report.queries {
        let dialect = DIALECT_DIFFERENCES
            .iter()
            .find(|(name, _)| *name == run.name);
        let empty_expected = EMPTY_AT_THIS_SCALE.contains(&run.name.as_str());
        let against_datafusion = run.notes.iter().any(|n| n.starts_with("vs single-process"));
        let failed = matches!(run.status, QueryStatus::Failed | QueryStatus::TimedOut);
        if failed || against_datafusion {
            problems.push(format!("{}: {:?} {:?}", run.name, run.status, run.notes));
        } else if matches_duckdb(run) == dialect.is_some() {
            let why = dialect.map_or(
                "differs from DuckDB",
                |_| "listed as a dialect difference but matches DuckDB",
            );
            problems.push(format!("{}: {why}: {:?}", run.name, run.notes));
        }
        if (run.rows == 0) != empty_expected {
            problems.push(format!(
                "{}: {} rows (listed as empty: {empty_expected})",
                run.name, run.rows
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n{}",
        problems.join("\n"),
        report.summary()
    );
}

/// `--partitioned` lays a fact table out by its date key: the table is partitioned, its rows
/// all arrive, and a date range reads only the matching partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_fact_tables_are_split_by_date_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = FloeConfig::local_warehouse(&dir.path().join("floe-warehouse"));
    let session = FloeSession::new(&config).await.unwrap();
    let generated = generate(
        &session,
        &GenerateOptions {
            scale_factor: SCALE_FACTOR,
            namespace: "local.tpcds".to_string(),
            partitioned: true,
            parallelism: 2,
            tables: vec!["web_returns".to_string()],
        },
        &MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden()),
    )
    .await
    .unwrap();
    let rows = generated[0].rows;
    assert!(rows > 1000, "{generated:?}");

    let text = |output: floe_core::StatementOutput| {
        floe_core::text_rows::rows_as_text(&output.batches).unwrap()
    };
    let ddl = session
        .execute_statement("SHOW CREATE TABLE local.tpcds.web_returns")
        .await
        .unwrap();
    let ddl = text(ddl).concat().concat();
    assert!(
        ddl.contains("PARTITIONED BY (wr_returned_date_sk)"),
        "{ddl}"
    );
    let count = session
        .execute_statement("SELECT count(*) FROM local.tpcds.web_returns")
        .await
        .unwrap();
    assert_eq!(text(count), vec![vec![rows.to_string()]]);
    let plan = session
        .execute_statement(
            "EXPLAIN SELECT count(*) FROM local.tpcds.web_returns \
             WHERE wr_returned_date_sk BETWEEN 2451000 AND 2451010",
        )
        .await
        .unwrap();
    let plan = text(plan).concat().concat();
    let files = plan
        .split("files=")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .unwrap_or_default()
        .to_string();
    let (read, total) = files.split_once('/').unwrap();
    let (read, total): (u64, u64) = (read.parse().unwrap(), total.parse().unwrap());
    assert!(total > 100 && read <= 11, "files={files}");
}
