//! Runs `core/tests/slt/*.slt` the ways a user's statement can run, each under every settings
//! profile a user may `SET`, against one set of expected results:
//!
//! - an embedded cluster (scheduler and two executors in this process, as `floe` starts them);
//! - a cluster of separate processes (`floe-scheduler` and two `floe-executor` binaries).
//!
//! Both talk Flight SQL with a session header, so the profile's `SET` statements hold for the
//! whole file. `core` runs the same files in a single process. A setting that changes how a plan
//! is cut, filtered or batched must never change its rows (a pushed-down Parquet filter once
//! came back unfiltered from executors).
#![allow(clippy::unwrap_used, missing_docs)]

use crate::processes;

use std::path::PathBuf;
use std::time::Duration;

use crate::slt_types::column_type;
use arrow::array::RecordBatch;
use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use async_trait::async_trait;
use floe_core::FloeConfig;
use floe_executor::{Executor, ExecutorOptions};
use floe_scheduler::Scheduler;
use futures::TryStreamExt;
use sqllogictest::{DBOutput, DefaultColumnType};
use tonic::transport::Channel;

/// Settings a user may `SET` that change plans but never results. Each runs every file.
/// "defaults" and "small batches" run these small tables as one task each
/// (`scheduler/src/single_task.rs`); every other profile sends each query through stages, so
/// cutting, shuffling and broadcasting are exercised under every setting.
const PROFILES: &[(&str, &[&str])] = &[
    ("defaults", &[]),
    ("stages", &[STAGES]),
    (
        "parquet filter pushdown",
        &[
            STAGES,
            "SET datafusion.execution.parquet.pushdown_filters = true",
            "SET datafusion.execution.parquet.reorder_filters = true",
        ],
    ),
    (
        "one partition",
        &[STAGES, "SET datafusion.execution.target_partitions = 1"],
    ),
    (
        "seven partitions",
        &[STAGES, "SET datafusion.execution.target_partitions = 7"],
    ),
    (
        "small batches",
        &["SET datafusion.execution.batch_size = 2"],
    ),
    (
        "no join dynamic filters",
        &[
            STAGES,
            "SET datafusion.optimizer.enable_join_dynamic_filter_pushdown = false",
        ],
    ),
    (
        "sort-merge joins",
        &[STAGES, "SET datafusion.optimizer.prefer_hash_join = false"],
    ),
];

/// Every query through stages, however small its scans.
const STAGES: &str = "SET floe.single_task_max_scan_bytes = 0";

#[derive(Debug)]
struct SltError(String);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SltError {}

fn message(err: FlightError) -> SltError {
    match err {
        FlightError::Tonic(status) => SltError(status.message().to_string()),
        other => SltError(other.to_string()),
    }
}

struct ClusterDb {
    client: FlightSqlServiceClient<Channel>,
}

impl ClusterDb {
    /// A Flight SQL connection in `session`, with the profile's settings applied.
    async fn connect(address: &str, session: &str, settings: &[&str]) -> Result<Self, SltError> {
        let channel = Channel::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .map_err(|e| SltError(e.to_string()))?;
        let mut client = FlightSqlServiceClient::new(channel);
        client.set_header("x-floe-session", session);
        let mut db = Self { client };
        for setting in settings {
            db.query(setting).await?;
        }
        Ok(db)
    }

    async fn query(
        &mut self,
        sql: &str,
    ) -> Result<(arrow::datatypes::Schema, Vec<RecordBatch>), SltError> {
        let info = self
            .client
            .execute(sql.to_string(), None)
            .await
            .map_err(message)?;
        let schema = arrow::datatypes::Schema::try_from(info.clone())
            .map_err(|e| SltError(e.to_string()))?;
        let mut batches: Vec<RecordBatch> = Vec::new();
        for endpoint in &info.endpoint {
            let stream = self
                .client
                .do_get(endpoint.ticket.clone().unwrap())
                .await
                .map_err(message)?;
            batches.extend(stream.try_collect::<Vec<_>>().await.map_err(message)?);
        }
        Ok((schema, batches))
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for ClusterDb {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let (schema, batches) = self.query(sql).await?;
        if schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let types = schema
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let rows =
            floe_core::text_rows::rows_as_text(&batches).map_err(|e| SltError(e.to_string()))?;
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "floe-cluster"
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }
}

fn slt_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/slt");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    files
}

/// Runs `file` in a new session of the scheduler at `address` under `settings`; returns the
/// failure, naming the file and the profile.
async fn run_file(
    address: &str,
    file: &PathBuf,
    (profile, settings): (&str, &'static [&'static str]),
) -> Result<(), String> {
    let address = address.to_string();
    let session = uuid::Uuid::new_v4().to_string();
    let mut runner = sqllogictest::Runner::new(move || {
        let address = address.clone();
        let session = session.clone();
        async move { ClusterDb::connect(&address, &session, settings).await }
    });
    runner
        .run_file_async(file)
        .await
        .map_err(|err| format!("{} under \"{profile}\": {err}", file.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slt_files_on_an_embedded_cluster_under_every_profile() {
    let mut failures = Vec::new();
    for &profile in PROFILES {
        for file in slt_files() {
            let warehouse = tempfile::tempdir().unwrap();
            let config = FloeConfig::local_warehouse(&warehouse.path().join("warehouse"));
            let scheduler = Scheduler::start("127.0.0.1:0", &config).await.unwrap();
            let address = scheduler.address().to_string();
            let mut executors = Vec::new();
            for i in 0..2 {
                executors.push(
                    Executor::start(ExecutorOptions {
                        scheduler: address.clone(),
                        bind: "127.0.0.1:0".into(),
                        work_dir: warehouse.path().join(format!("work-{i}")),
                        slots: Some(2),
                        executor_id: None,
                    })
                    .await
                    .unwrap(),
                );
            }
            if let Err(failure) = run_file(&address, &file, profile).await {
                failures.push(failure);
            }
            for executor in executors {
                executor.shutdown().await;
            }
            scheduler.shutdown().await;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slt_files_on_a_process_cluster_under_every_profile() {
    let mut failures = Vec::new();
    for &profile in PROFILES {
        for file in slt_files() {
            let cluster = processes::start_cluster();
            if let Err(failure) = run_file(&cluster.scheduler.address, &file, profile).await {
                failures.push(failure);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
