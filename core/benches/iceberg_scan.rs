//! Iceberg overhead: the same Parquet files scanned as an Iceberg table through Floe's scan
//! (`IcebergScanExec`) and as a plain Parquet table through DataFusion's `ListingTable`.
//!
//! Run with `cargo bench -p floe-core --bench iceberg_scan`; the ratio of the two medians per
//! query is the Iceberg overhead (planning from manifests, field-id mapping).
//!
//! The `object_store_latency` group reads the same table through Floe twice, its data files
//! held in an in-memory object store: as is, and through `object_store`'s `ThrottledStore`
//! adding [`REQUEST_LATENCY`] to every request, as S3 does. The ratio of the two is what object-store
//! latency costs a scan once its metadata is cached (footers in the Parquet metadata cache,
//! manifests in the table cache); the throttle applies to data-file requests, which go through
//! `object_store`, not to Iceberg metadata, which the `iceberg` crate's FileIO reads.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use floe_core::{FloeConfig, FloeSession};
use floe_iceberg::scan::IcebergScanExec;
use object_store::memory::InMemory;
use object_store::throttle::{ThrottleConfig, ThrottledStore};
use object_store::{ObjectStore, ObjectStoreExt};

/// Rows per INSERT; each INSERT writes one data file.
const ROWS_PER_FILE: i64 = 1_000_000;
/// Data files in the table.
const FILES: i64 = 8;
/// What each object-store request costs in the latency group: S3's first-byte latency.
const REQUEST_LATENCY: std::time::Duration = std::time::Duration::from_millis(20);

fn find_scan(plan: &Arc<dyn ExecutionPlan>) -> Option<&IcebergScanExec> {
    if let Some(scan) = plan.as_any().downcast_ref::<IcebergScanExec>() {
        return Some(scan);
    }
    plan.children().into_iter().find_map(find_scan)
}

struct Setup {
    _dir: tempfile::TempDir,
    floe: FloeSession,
    /// Sessions on the same catalog reading its data files from memory, as they are and after
    /// [`REQUEST_LATENCY`] per request.
    floe_memory: FloeSession,
    floe_slow_store: FloeSession,
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
    // `ThrottledStore` cannot wrap the local file system (it streams files, which the throttle
    // does not support), so both latency sessions read the data files from memory.
    let memory = InMemory::new();
    for group in &scan.spec().file_groups {
        for file in group {
            let bytes = std::fs::read(format!("/{}", file.path)).unwrap();
            memory
                .put(&file.path.as_str().into(), bytes.into())
                .await
                .unwrap();
        }
    }
    let memory = Arc::new(memory);
    let throttle = ThrottleConfig {
        wait_get_per_call: REQUEST_LATENCY,
        wait_list_per_call: REQUEST_LATENCY,
        ..ThrottleConfig::default()
    };
    let stores: [Arc<dyn ObjectStore>; 2] = [
        Arc::clone(&memory) as _,
        Arc::new(ThrottledStore::new(Arc::clone(&memory), throttle)),
    ];
    let mut latency_sessions = Vec::new();
    for store in stores {
        let session = FloeSession::new(&config).await.unwrap();
        // What a scan of S3 gets by default; the store is registered under `file://`, where a
        // scan would read one file at a time.
        session
            .execute("SET floe.scan_concurrent_files = 4")
            .await
            .unwrap();
        session
            .context()
            .runtime_env()
            .register_object_store(&url::Url::parse("file://").unwrap(), store);
        latency_sessions.push(session);
    }
    let [floe_memory, floe_slow_store] =
        <[FloeSession; 2]>::try_from(latency_sessions).unwrap_or_else(|_| unreachable!());
    Setup {
        _dir: dir,
        floe,
        floe_memory,
        floe_slow_store,
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
            let a = collect(&setup.floe, sql).await;
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
            bench.to_async(&runtime).iter(|| collect(&setup.floe, sql))
        });
        group.bench_function("parquet_datafusion", |bench| {
            bench
                .to_async(&runtime)
                .iter(|| async { setup.plain.sql(sql).await.unwrap().collect().await.unwrap() })
        });
        group.finish();
    }
    bench_latency(c, &runtime, &setup);
}

async fn collect(session: &FloeSession, sql: &str) -> Vec<arrow::record_batch::RecordBatch> {
    session
        .context()
        .sql(sql)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
}

fn bench_latency(c: &mut Criterion, runtime: &tokio::runtime::Runtime, setup: &Setup) {
    let sql = QUERIES[0].1;
    let mut group = c.benchmark_group("object_store_latency");
    group.sample_size(10);
    group.bench_function("no_latency", |bench| {
        bench
            .to_async(runtime)
            .iter(|| collect(&setup.floe_memory, sql))
    });
    group.bench_function("latency_20ms_per_request", |bench| {
        bench
            .to_async(runtime)
            .iter(|| collect(&setup.floe_slow_store, sql))
    });
    group.finish();
}

criterion_group!(benches, bench_scans);
criterion_main!(benches);
