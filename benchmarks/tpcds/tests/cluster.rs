//! All 99 TPC-DS queries on a real multi-process cluster (one `floe-scheduler`, two
//! `floe-executor` processes) over a small generated data set, each result compared with
//! single-process DataFusion (`FloeSession` without a cluster) over the same Iceberg tables.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../../../client/tests/support/processes.rs"]
mod processes;

use floe_client::remote::Connection;
use floe_core::{FloeConfig, FloeSession};
use floe_tpcds::generate::{GenerateOptions, generate};
use floe_tpcds::queries::all_query_names;
use floe_tpcds::run::{QueryStatus, RunOptions, run_queries};
use indicatif::{MultiProgress, ProgressBar};

/// Small enough for CI on two cores, large enough that every query returns rows or exercises
/// its joins (scale factor 0.01: 2.6 million rows, most of them customer_demographics).
const SCALE_FACTOR: f64 = 0.01;

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
    let options = RunOptions {
        queries: all_query_names(),
        rounds: 1,
        namespace,
        answers: None,
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
    let problems: Vec<_> = report
        .queries
        .iter()
        .filter(|q| q.status != QueryStatus::Ok)
        .collect();
    assert!(problems.is_empty(), "{}", report.summary());
    // Each query was checked against the peer, which ran it too.
    assert!(report.queries.iter().all(|q| q.peer_times.len() == 1));
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
