//! Shuffle throughput: Arrow data through `ShuffleWriterExec` (hash partitioning into IPC
//! files), and back through a local read and an Arrow Flight `do_get` over loopback, the two
//! ways a `ShuffleReaderExec` reads. Reported as bytes of in-memory Arrow data per second.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::flight_service_server::FlightServiceServer;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::physical_expr::Partitioning;
use datafusion::physical_expr::expressions::col;
use datafusion::prelude::{SessionConfig, SessionContext};
use floe_executor::flight::ShuffleFlightService;
use floe_shuffle::flight::{FlightClientPool, fetch_remote, read_local_file};
use floe_shuffle::{ShuffleEnv, ShuffleLocation, ShuffleOutputFile, ShuffleWriterExec};
use futures::StreamExt;

const BATCHES: usize = 16;
const ROWS_PER_BATCH: usize = 65_536;
const OUTPUT_PARTITIONS: usize = 4;

fn batches() -> (Arc<Schema>, Vec<RecordBatch>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("name", DataType::Utf8, false),
    ]));
    let batches = (0..BATCHES)
        .map(|b| {
            let start = (b * ROWS_PER_BATCH) as i64;
            let ids: Vec<i64> = (start..start + ROWS_PER_BATCH as i64).collect();
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int64Array::from(ids.clone())),
                    Arc::new(Float64Array::from_iter_values(
                        ids.iter().map(|i| *i as f64 * 0.5),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        ids.iter().map(|i| format!("customer-{i:010}")),
                    )),
                ],
            )
            .unwrap()
        })
        .collect();
    (schema, batches)
}

async fn write(
    work_dir: &std::path::Path,
    schema: &Arc<Schema>,
    data: &[RecordBatch],
) -> Vec<ShuffleOutputFile> {
    let source =
        MemorySourceConfig::try_new_exec(&[data.to_vec()], Arc::clone(schema), None).unwrap();
    let writer = ShuffleWriterExec::try_new(
        source,
        "bench",
        0,
        Some(Partitioning::Hash(
            vec![col("id", schema).unwrap()],
            OUTPUT_PARTITIONS,
        )),
    )
    .unwrap();
    let config = SessionConfig::new().with_extension(Arc::new(ShuffleEnv::executor(
        "bench-executor",
        work_dir.to_path_buf(),
    )));
    let ctx = SessionContext::new_with_config(config);
    writer.write_partition(0, ctx.task_ctx()).await.unwrap()
}

fn bench_shuffle(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (schema, data) = batches();
    let arrow_bytes: usize = data.iter().map(RecordBatch::get_array_memory_size).sum();
    let work_dir = tempfile::tempdir().unwrap();

    // Serve the work dir over Flight on a loopback port.
    let address = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let service = ShuffleFlightService::new(work_dir.path().to_path_buf());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(FlightServiceServer::new(service))
                .serve_with_incoming(
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                ),
        );
        address.to_string()
    });

    let mut group = c.benchmark_group("shuffle");
    group.throughput(Throughput::Bytes(arrow_bytes as u64));
    group.sample_size(10);
    group.bench_function("write_hash_4_partitions", |b| {
        b.iter(|| runtime.block_on(write(work_dir.path(), &schema, &data)))
    });
    let files = runtime.block_on(write(work_dir.path(), &schema, &data));
    let locations: Vec<ShuffleLocation> = files
        .iter()
        .map(|f| ShuffleLocation {
            executor_id: "bench-executor".into(),
            address: address.clone(),
            path: f.path.clone(),
            ranges: f.ranges.clone(),
            rows: f.rows,
            bytes: f.bytes,
        })
        .collect();
    let expected_rows = (BATCHES * ROWS_PER_BATCH) as u64;
    group.bench_function("read_local", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut rows = 0;
                for location in &locations {
                    let mut stream = read_local_file(
                        work_dir.path().join(&location.path),
                        location.ranges.clone(),
                    );
                    while let Some(batch) = stream.next().await {
                        rows += batch.unwrap().num_rows() as u64;
                    }
                }
                assert_eq!(rows, expected_rows);
            })
        })
    });
    let pool = FlightClientPool::default();
    group.bench_function("read_flight_loopback", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let streams = locations
                    .iter()
                    .map(|location| fetch_remote(&pool, location).unwrap());
                let mut all = futures::stream::select_all(streams);
                let mut rows = 0;
                while let Some(batch) = all.next().await {
                    rows += batch.unwrap().num_rows() as u64;
                }
                assert_eq!(rows, expected_rows);
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench_shuffle);
criterion_main!(benches);
