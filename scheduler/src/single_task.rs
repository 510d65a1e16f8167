//! The small-query fast path: a plan whose scans read little runs whole as one task.
//!
//! Cutting a plan into stages costs, per stage, a launch, shuffle files written and fetched and
//! a barrier: a few milliseconds each, paid 5 to 30 times by a TPC-DS query. When a plan's
//! scans read at most `floe.single_task_max_scan_bytes` ([`floe_common::options::FloeOptions`]),
//! the whole plan is instead one stage of one task: the executor runs DataFusion's plan as a
//! single process would, its exchanges (`RepartitionExec`, merges) in memory and its partitions
//! on the executor's task threads.
//!
//! It is the cluster's path, not a local shortcut: the scheduler plans, launches, tracks,
//! cancels and fetches that one task like any other, on the embedded cluster and on a real one
//! alike, and a setting of 0 sends every query through stages (the cluster tests do, so they
//! keep exercising distribution).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::ExecutionPlanProperties;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::placeholder_row::PlaceholderRowExec;
use floe_iceberg::scan::IcebergScanExec;

/// Bytes `plan`'s scans read, estimated: each data file (or byte range of one) counted once
/// however often the plan scans it (TPC-DS q27 reads `store_sales` three times, from cache
/// after the first); for Iceberg scans times the share of the table's columns projected, as
/// Parquet reads only those (other file scans count whole files, erring high). `None` when a
/// leaf's size is unknown (a source that is neither a file scan nor in-memory rows).
pub fn scan_bytes(plan: &dyn ExecutionPlan) -> Option<u64> {
    let mut files = HashMap::new();
    collect_scanned_files(plan, &mut files)?;
    Some(files.values().sum())
}

/// Adds each file piece `plan` scans to `files` (key: path and first byte) with the bytes its
/// projected columns are estimated to take, keeping the largest estimate for a piece scanned
/// twice; `None` for a leaf of unknown size.
fn collect_scanned_files(
    plan: &dyn ExecutionPlan,
    files: &mut HashMap<(String, u64), u64>,
) -> Option<()> {
    let mut add = |path: &str, start: u64, bytes: u64| {
        let entry = files.entry((path.to_string(), start)).or_default();
        *entry = (*entry).max(bytes);
    };
    let any = plan.as_any();
    if let Some(scan) = any.downcast_ref::<IcebergScanExec>() {
        let spec = scan.spec();
        let columns = spec.table_schema.fields().len().max(1);
        let projected = spec
            .projection
            .as_ref()
            .map_or(columns, |projection| projection.len().clamp(1, columns));
        for file in spec.file_groups.iter().flatten() {
            let start = file.range.as_ref().map_or(0, |range| range.start);
            add(
                &file.path,
                start,
                file.bytes() * projected as u64 / columns as u64,
            );
        }
        return Some(());
    }
    if let Some(source) = any.downcast_ref::<DataSourceExec>() {
        let source = source.data_source().as_any();
        if let Some(config) = source.downcast_ref::<FileScanConfig>() {
            for file in config.file_groups.iter().flat_map(|group| group.iter()) {
                let (start, bytes) = match &file.range {
                    Some(range) => (
                        range.start.max(0) as u64,
                        (range.end - range.start).max(0) as u64,
                    ),
                    None => (0, file.object_meta.size),
                };
                add(file.object_meta.location.as_ref(), start, bytes);
            }
            return Some(());
        }
        // VALUES and other in-memory rows travel inside the plan already.
        return source.is::<MemorySourceConfig>().then_some(());
    }
    let children = plan.children();
    if children.is_empty() {
        return (any.is::<PlaceholderRowExec>() || any.is::<EmptyExec>()).then_some(());
    }
    for child in children {
        collect_scanned_files(child.as_ref(), files)?;
    }
    Some(())
}

/// Whether `plan` runs as one task under `max_scan_bytes` (0: never).
pub fn runs_as_one_task(plan: &dyn ExecutionPlan, max_scan_bytes: u64) -> bool {
    max_scan_bytes > 0 && scan_bytes(plan).is_some_and(|bytes| bytes <= max_scan_bytes)
}

/// The plan of the one task: all of `plan`'s partitions merged into one output.
pub fn one_task_plan(plan: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    if plan.output_partitioning().partition_count() <= 1 {
        plan
    } else {
        Arc::new(CoalescePartitionsExec::new(plan))
    }
}
