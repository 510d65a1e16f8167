//! What a statement costs beyond its work: `SELECT 1` and a one-table aggregate sent over
//! Flight SQL to the embedded cluster (a scheduler and two executors on loopback, as `floe`
//! starts them), against the same statements in single-process DataFusion over the same
//! catalog ([`FloeSession`]), the peer measured in the same run. The difference is Floe's
//! front door, planning into stages, task launch and result hand-off.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use floe_client::remote::{Connection, EmbeddedCluster};
use floe_common::config::FloeConfig;
use floe_core::session::FloeSession;
use tokio::runtime::Runtime;

/// Rows of the one-table query's table: a few kilobytes of Parquet, so the query's own work
/// is small next to its fixed cost.
const TABLE_ROWS: u64 = 10_000;

const STATEMENTS: [(&str, &str); 2] = [
    ("select_1", "SELECT 1"),
    (
        "one_table_aggregate",
        "SELECT k, count(*), sum(v) FROM t GROUP BY k",
    ),
];

fn fixed_cost(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let warehouse = tempfile::tempdir().unwrap();
    let config = FloeConfig::local_warehouse(warehouse.path());
    let (cluster, mut connection, session) = runtime.block_on(async {
        let cluster = EmbeddedCluster::start(&config, 2).await.unwrap();
        let mut connection = Connection::connect(&cluster.address())
            .await
            .unwrap()
            .without_progress_bar();
        let create = format!(
            "CREATE TABLE t AS SELECT value % 10 AS k, value AS v FROM generate_series(1, {TABLE_ROWS})"
        );
        connection.execute(&create).await.unwrap();
        let session = FloeSession::new(&config).await.unwrap();
        (cluster, connection, session)
    });
    let mut group = c.benchmark_group("fixed_cost");
    for (name, sql) in STATEMENTS {
        group.bench_function(format!("{name}/floe_embedded_cluster"), |b| {
            b.iter(|| runtime.block_on(connection.execute(sql)).unwrap())
        });
        group.bench_function(format!("{name}/datafusion_single_process"), |b| {
            b.iter(|| runtime.block_on(session.execute_statement(sql)).unwrap())
        });
    }
    group.finish();
    runtime.block_on(cluster.shutdown());
}

criterion_group!(benches, fixed_cost);
criterion_main!(benches);
