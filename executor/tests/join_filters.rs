//! A task runs one partition of a broadcast hash join whose probe side is a Parquet scan, as an
//! executor does: the join's dynamic filter must reach the scan (row groups skipped) without
//! waiting for the partitions other tasks run, and the rows must be the join's rows.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, collect};
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use floe_executor::join_filters::run_hash_joins_per_partition;
use futures::TryStreamExt;

const ROWS_PER_FILE: i64 = 50_000;
const ROW_GROUP_ROWS: usize = 1_000;

/// Two fact files with ascending ids (so row-group bounds are narrow) and a dimension whose ids
/// hit one row group of the second file.
fn write_tables(dir: &std::path::Path) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]));
    let facts = dir.join("facts");
    std::fs::create_dir(&facts).unwrap();
    for file in 0..2 {
        let ids: Vec<i64> = (file * ROWS_PER_FILE..(file + 1) * ROWS_PER_FILE).collect();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(Int64Array::from(
                    ids.iter().map(|id| id * 10).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let out = std::fs::File::create(facts.join(format!("part-{file}.parquet"))).unwrap();
        let mut writer = ArrowWriter::try_new(out, Arc::clone(&schema), Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }
    let dim = dir.join("dim");
    std::fs::create_dir(&dim).unwrap();
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from(vec![60_010, 60_020, 60_030])),
            Arc::new(Int64Array::from(vec![1, 2, 3])),
        ],
    )
    .unwrap();
    let out = std::fs::File::create(dim.join("dim.parquet")).unwrap();
    let mut writer = ArrowWriter::try_new(out, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

async fn join_plan(dir: &std::path::Path) -> (SessionContext, Arc<dyn ExecutionPlan>) {
    let config = SessionConfig::new().with_target_partitions(2);
    let ctx = SessionContext::new_with_config(config);
    for table in ["facts", "dim"] {
        ctx.register_parquet(
            table,
            dir.join(table).to_str().unwrap(),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
    }
    let plan = ctx
        .sql("SELECT f.id, f.v, d.v FROM facts f JOIN dim d ON f.id = d.id")
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    (ctx, plan)
}

fn sorted_rows(batches: &[RecordBatch]) -> Vec<String> {
    let text = arrow::util::pretty::pretty_format_batches(batches)
        .unwrap()
        .to_string();
    let mut rows: Vec<String> = text
        .lines()
        .filter(|line| line.starts_with("| ") && !line.contains(" id "))
        .map(str::to_string)
        .collect();
    rows.sort();
    rows
}

/// Rows the scans under `plan` produced.
fn scanned_rows(plan: &Arc<dyn ExecutionPlan>) -> usize {
    let mut rows = 0;
    plan.apply(|node| {
        if node.name() == "DataSourceExec" {
            rows += node
                .metrics()
                .and_then(|m| m.output_rows())
                .unwrap_or_default();
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .unwrap();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_gets_its_broadcast_joins_dynamic_filter_without_waiting_for_other_tasks() {
    let dir = tempfile::tempdir().unwrap();
    write_tables(dir.path());
    let (ctx, plan) = join_plan(dir.path()).await;
    let expected = sorted_rows(&collect(Arc::clone(&plan), ctx.task_ctx()).await.unwrap());
    assert_eq!(expected.len(), 3, "{expected:?}");

    let mut modes = Vec::new();
    plan.apply(|node| {
        if let Some(join) = node.as_any().downcast_ref::<HashJoinExec>() {
            modes.push(*join.partition_mode());
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .unwrap();
    assert_eq!(modes, vec![PartitionMode::CollectLeft], "{plan:?}");
    assert_eq!(plan.output_partitioning().partition_count(), 2);

    // DataFusion's join, one partition run alone (as a task would): its filter's barrier waits
    // for the other partition. If this ever completes, the wrapper can go.
    let (_, alone) = join_plan(dir.path()).await;
    let waited = tokio::time::timeout(Duration::from_secs(3), async {
        alone
            .execute(0, ctx.task_ctx())?
            .try_collect::<Vec<_>>()
            .await
    })
    .await;
    assert!(
        waited.is_err(),
        "one partition of a join ran alone to the end"
    );

    // Each partition as its own task, each on its own decoded plan.
    let mut rows = Vec::new();
    let mut scanned = 0;
    for partition in 0..2 {
        let (_, plan) = join_plan(dir.path()).await;
        let plan = run_hash_joins_per_partition(plan).unwrap();
        let stream = plan.execute(partition, ctx.task_ctx()).unwrap();
        let batches = tokio::time::timeout(Duration::from_secs(60), stream.try_collect::<Vec<_>>())
            .await
            .expect("a task's partition of a join finishes")
            .unwrap();
        rows.extend(batches);
        scanned += scanned_rows(&plan);
    }
    assert_eq!(sorted_rows(&rows), expected);
    // The filter (ids 60010..=60030) reached the scans: one row group of 100 read.
    assert!(
        scanned <= 2 * ROW_GROUP_ROWS,
        "scans read {scanned} of {} rows",
        2 * ROWS_PER_FILE
    );
}
