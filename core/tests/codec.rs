//! Plans with Iceberg scans survive a datafusion-proto round trip through the Floe codec and
//! give the same rows when decoded and run in a fresh session.
#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::sync::Arc;

use arrow::util::pretty::pretty_format_batches;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::SessionContext;
use datafusion_proto::bytes::{
    physical_plan_from_bytes_with_extension_codec, physical_plan_to_bytes_with_extension_codec,
};
use floe_core::codec::FloePhysicalCodec;

/// `plan` encoded and decoded in a different session, as an executor would have: no catalogs,
/// only the runtime.
fn round_trip(plan: &Arc<dyn ExecutionPlan>) -> (Arc<dyn ExecutionPlan>, SessionContext) {
    let bytes =
        physical_plan_to_bytes_with_extension_codec(Arc::clone(plan), &FloePhysicalCodec).unwrap();
    let executor = SessionContext::new();
    let decoded = physical_plan_from_bytes_with_extension_codec(
        &bytes,
        &executor.task_ctx(),
        &FloePhysicalCodec,
    )
    .unwrap();
    (decoded, executor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iceberg_scan_round_trips() {
    let wh = common::Warehouse::new().await;
    wh.run("CREATE TABLE t (id BIGINT, s VARCHAR) PARTITIONED BY (bucket(4, id))")
        .await;
    wh.run("INSERT INTO t SELECT v, 's' || CAST(v AS VARCHAR) FROM generate_series(1, 100) t(v)")
        .await;
    let sql = "SELECT s, id * 2 AS twice FROM t WHERE id > 90 ORDER BY id";
    let ctx = wh.session.context();
    let plan = wh.plan(sql).await;
    let expected =
        pretty_format_batches(&collect(Arc::clone(&plan), ctx.task_ctx()).await.unwrap())
            .unwrap()
            .to_string();

    let (decoded, executor) = round_trip(&plan);
    let mut scans = Vec::new();
    common::find_scans(&decoded, &mut scans);
    assert_eq!(scans.len(), 1, "decoded plan lost the Iceberg scan");
    let original = common::scan_of(&{
        let mut s = Vec::new();
        common::find_scans(&plan, &mut s);
        s.remove(0)
    })
    .spec()
    .file_groups
    .clone();
    assert_eq!(common::scan_of(&scans[0]).spec().file_groups, original);
    assert!(common::scan_of(&scans[0]).spec().predicate.is_some());
    let actual = pretty_format_batches(&collect(decoded, executor.task_ctx()).await.unwrap())
        .unwrap()
        .to_string();
    assert_eq!(actual, expected);
    assert!(actual.contains("| s100 | 200   |"), "{actual}");
}

/// With `pushdown_filters`, DataFusion moves the query's filter into the Parquet reader and
/// drops the `FilterExec` above the scan: the decoded scan must filter rows itself, or a task
/// returns rows the query's filter drops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_down_row_filters_survive_the_round_trip() {
    let wh = common::Warehouse::new().await;
    wh.run("CREATE TABLE t (id BIGINT, s VARCHAR)").await;
    wh.run("INSERT INTO t SELECT v, 's' || CAST(v AS VARCHAR) FROM generate_series(1, 100) t(v)")
        .await;
    wh.run("SET datafusion.execution.parquet.pushdown_filters = true")
        .await;
    let plan = wh.plan("SELECT id FROM t WHERE id % 10 = 3").await;
    let shown = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string();
    assert!(!shown.contains("FilterExec"), "filter not pushed: {shown}");

    let (decoded, executor) = round_trip(&plan);
    let batches = collect(decoded, executor.task_ctx()).await.unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 10, "{}", pretty_format_batches(&batches).unwrap());
}
