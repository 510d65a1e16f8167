//! Statements committing to one table at the same time, over Flight SQL, on a cluster of
//! separate processes. Two Iceberg appends never truly conflict, so every one must commit (in
//! turn, or retried on the table's new version); the row count, the rows' ids and the snapshot
//! count must be exact, in Floe and in PyIceberg reading the table independently.

use crate::cluster::{client_with_defaults, rows, run};
use crate::{processes, weed};

/// Statements in flight at once (the issue's reproduction failed 2 of 8).
const WRITERS: i64 = 16;
/// Rows each statement appends.
const ROWS_PER_WRITER: i64 = 1000;

/// What PyIceberg's `count` command prints for the table once every writer has committed.
fn expected_count(snapshots_before: i64) -> serde_json::Value {
    let rows = WRITERS * ROWS_PER_WRITER;
    serde_json::json!({
        "rows": rows,
        "distinct_ids": rows,
        "sum_ids": rows * (rows - 1) / 2,
        "snapshots": snapshots_before + WRITERS,
    })
}

/// Creates `table` (its namespace must exist), then runs [`WRITERS`] INSERTs into it at once,
/// each on its own connection and session, writer `w` appending ids `w * 1000 ..< (w + 1) *
/// 1000`; asserts that all commit and that Floe reads exactly their rows. Returns the number of
/// snapshots the table had before the writers started.
async fn concurrent_inserts_all_commit(address: &str, table: &str) -> i64 {
    let mut setup = client_with_defaults(address, "writers-setup").await;
    run(
        &mut setup,
        &format!("CREATE TABLE {table} (id BIGINT, writer INT)"),
    )
    .await
    .unwrap();
    let snapshots_before = snapshot_count(&mut setup, table).await;

    let writers = (0..WRITERS).map(|writer| {
        let address = address.to_string();
        let table = table.to_string();
        tokio::spawn(async move {
            let mut client = client_with_defaults(&address, &format!("writer-{writer}")).await;
            let (first, last) = (writer * ROWS_PER_WRITER, (writer + 1) * ROWS_PER_WRITER - 1);
            let insert = format!(
                "INSERT INTO {table} SELECT value, CAST({writer} AS INT) \
                 FROM generate_series({first}, {last})"
            );
            run(&mut client, &insert).await
        })
    });
    let results = futures::future::join_all(writers).await;
    let failures: Vec<String> = results
        .into_iter()
        .map(Result::unwrap)
        .filter_map(Result::err)
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {WRITERS} INSERTs failed: {failures:?}",
        failures.len()
    );

    let rows_total = WRITERS * ROWS_PER_WRITER;
    let counts = run(
        &mut setup,
        &format!(
            "SELECT count(*) AS n, count(DISTINCT id) AS ids, sum(id) AS total, \
             count(DISTINCT writer) AS writers FROM {table}"
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        rows(&counts),
        [format!(
            "{rows_total} | {rows_total} | {} | {WRITERS}",
            rows_total * (rows_total - 1) / 2
        )]
    );
    assert_eq!(
        snapshot_count(&mut setup, table).await,
        snapshots_before + WRITERS
    );
    snapshots_before
}

async fn snapshot_count(
    client: &mut arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>,
    table: &str,
) -> i64 {
    let (namespace, name) = table.rsplit_once('.').unwrap();
    let sql = format!(r#"SELECT count(*) AS n FROM {namespace}."{name}$snapshots""#);
    let batches = run(client, &sql).await.unwrap();
    rows(&batches)[0].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_commit_on_the_sql_catalog() {
    let cluster = processes::start_cluster();
    let mut setup = client_with_defaults(&cluster.scheduler.address, "writers-setup").await;
    run(&mut setup, "CREATE SCHEMA busy").await.unwrap();
    let snapshots_before =
        concurrent_inserts_all_commit(&cluster.scheduler.address, "busy.appends").await;

    let warehouse = cluster.dir.path().join("floe-warehouse");
    let read = processes::run_interop_script(
        "pyiceberg_tables.py",
        &["count", warehouse.to_str().unwrap(), "busy.appends"],
    );
    let read: serde_json::Value = serde_json::from_str(read.trim()).unwrap();
    assert_eq!(read, expected_count(snapshots_before));
}

/// The same on a REST catalog over S3 (`weed mini`), whose commits are refused with 409; called
/// by the lake test that owns the one `weed` server.
pub fn concurrent_inserts_commit_on_the_rest_catalog(weed: &weed::Weed) {
    let cluster = processes::start_cluster_with_config(Some(&weed.floe_config()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let snapshots_before = runtime.block_on(async {
        let mut setup = client_with_defaults(&cluster.scheduler.address, "writers-setup").await;
        run(&mut setup, "CREATE SCHEMA IF NOT EXISTS lake.busy")
            .await
            .unwrap();
        concurrent_inserts_all_commit(&cluster.scheduler.address, "lake.busy.appends").await
    });
    let read = processes::run_interop_script_with_env(
        "pyiceberg_rest.py",
        &[
            weed.s3.as_str(),
            weed.rest.as_str(),
            "count",
            "busy.appends",
        ],
        &[
            ("AWS_ACCESS_KEY_ID", weed::ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", weed::SECRET_KEY),
        ],
    );
    let read: serde_json::Value = serde_json::from_str(read.trim()).unwrap();
    assert_eq!(read, expected_count(snapshots_before));
}
