//! Runs `core/tests/slt/*.slt` through an embedded cluster (an in-process scheduler and two
//! executors) over Flight SQL, the path every `floe` statement takes. `core` runs the same
//! files in a single process; both must give the same answers.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use async_trait::async_trait;
use floe_core::FloeConfig;
use floe_executor::{Executor, ExecutorOptions};
use floe_scheduler::Scheduler;
use futures::TryStreamExt;
use sqllogictest::{DBOutput, DefaultColumnType};
use tonic::transport::Channel;

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

fn column_type(data_type: &DataType) -> DefaultColumnType {
    match data_type {
        t if t.is_integer() => DefaultColumnType::Integer,
        t if t.is_floating() || matches!(t, DataType::Decimal128(..)) => {
            DefaultColumnType::FloatingPoint
        }
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => DefaultColumnType::Text,
        _ => DefaultColumnType::Any,
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for ClusterDb {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slt_files_on_an_embedded_cluster() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/slt");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", dir.display());
    for file in files {
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
        let session = uuid::Uuid::new_v4().to_string();
        let mut runner = sqllogictest::Runner::new(move || {
            let address = address.clone();
            let session = session.clone();
            async move {
                let channel = Channel::from_shared(format!("http://{address}"))
                    .unwrap()
                    .connect()
                    .await
                    .map_err(|e| SltError(e.to_string()))?;
                let mut client = FlightSqlServiceClient::new(channel);
                client.set_header("x-floe-session", session);
                Ok::<_, SltError>(ClusterDb { client })
            }
        });
        if let Err(err) = runner.run_file_async(&file).await {
            panic!("{}: {err}", file.display());
        }
        for executor in executors {
            executor.shutdown().await;
        }
        scheduler.shutdown().await;
    }
}
