//! Iceberg overhead: the same Parquet files scanned as an Iceberg table through Floe's scan
//! (`IcebergScanExec`) and as a plain Parquet table through DataFusion's `ListingTable`.
//!
//! Run with `cargo bench -p floe-core --bench iceberg_scan`; the ratio of the two medians per
//! query is the Iceberg overhead (planning from manifests, field-id mapping).
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use floe_core::iceberg::scan::IcebergScanExec;
use floe_core::{FloeConfig, FloeSession};

/// Rows per INSERT; each INSERT writes one data file.
const ROWS_PER_FILE: i64 = 1_000_000;
/// Data files in the table.
const FILES: i64 = 8;

fn find_scan(plan: &Arc<dyn ExecutionPlan>) -> Option<&IcebergScanExec> {
    if let Some(scan) = plan.as_any().downcast_ref::<IcebergScanExec>() {
        return Some(scan);
    }
    plan.children().into_iter().find_map(find_scan)
}

struct Setup {
    _dir: tempfile::TempDir,
    floe: FloeSession,
    plain: SessionContext,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut config = FloeConfig::local_warehouse(&dir.path().join("warehouse"));
    let partitions = std::thread::available_parallelism().map_or(2, |n| n.get());
    config.engine.target_partitions = Some(partitions);
    let floe = FloeSession::new(&config).await.unwrap();
    floe.execute("CREATE TABLE bench (id BIGINT, k INT, v DOUBLE, s VARCHAR)")
        .await
        .unwrap();
    for file in 0..FILES {
        let start = file * ROWS_PER_FILE;
        let end = start + ROWS_PER_FILE - 1;
        floe.execute(&format!(
            "INSERT INTO bench SELECT v, CAST(v % 1000 AS INT), v * 0.5, 'name-' || CAST(v % 977 AS VARCHAR)
             FROM generate_series({start}, {end}) AS t(v)"
        ))
        .await
        .unwrap();
    }
    // The plain table reads exactly the files the Iceberg snapshot references.
    let plan = floe
        .context()
        .sql("SELECT * FROM bench")
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let scan = find_scan(&plan).unwrap();
    let first = &scan.spec().file_groups[0][0].path;
    let data_dir = format!("/{}", &first[..first.rfind('/').unwrap() + 1]);
    let plain =
        SessionContext::new_with_config(SessionConfig::new().with_target_partitions(partitions));
    plain
        .register_parquet("bench", &data_dir, ParquetReadOptions::default())
        .await
        .unwrap();
    Setup {
        _dir: dir,
        floe,
        plain,
    }
}

const QUERIES: [(&str, &str); 2] = [
    ("full_scan", "SELECT sum(v), count(s), max(k) FROM bench"),
    (
        "selective_filter",
        "SELECT count(*), sum(v) FROM bench WHERE id BETWEEN 2500000 AND 2510000",
    ),
];

fn bench_scans(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let setup = runtime.block_on(setup());
    for (name, sql) in QUERIES {
        // Same answer from both, or the comparison means nothing.
        let (a, b) = runtime.block_on(async {
            let a = setup
                .floe
                .context()
                .sql(sql)
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            let b = setup.plain.sql(sql).await.unwrap().collect().await.unwrap();
            (a, b)
        });
        assert_eq!(
            arrow::util::pretty::pretty_format_batches(&a)
                .unwrap()
                .to_string(),
            arrow::util::pretty::pretty_format_batches(&b)
                .unwrap()
                .to_string()
        );
        let mut group = c.benchmark_group(name);
        group.sample_size(20);
        group.bench_function("iceberg_floe", |bench| {
            bench.to_async(&runtime).iter(|| async {
                setup
                    .floe
                    .context()
                    .sql(sql)
                    .await
                    .unwrap()
                    .collect()
                    .await
                    .unwrap()
            })
        });
        group.bench_function("parquet_datafusion", |bench| {
            bench
                .to_async(&runtime)
                .iter(|| async { setup.plain.sql(sql).await.unwrap().collect().await.unwrap() })
        });
        group.finish();
    }
}

criterion_group!(benches, bench_scans);
criterion_main!(benches);
