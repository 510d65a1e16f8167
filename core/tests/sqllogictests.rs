//! Runs the `.slt` files under `tests/slt/` (sqllogictest format) against a `FloeSession` over a
//! fresh on-disk warehouse per file.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::slt_types::column_type;
use async_trait::async_trait;
use floe_core::{FloeConfig, FloeError, FloeSession};
use sqllogictest::{DBOutput, DefaultColumnType};

struct FloeDb {
    session: Arc<FloeSession>,
}

#[async_trait]
impl sqllogictest::AsyncDB for FloeDb {
    type Error = FloeError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let output = self.session.execute_statement(sql).await?;
        if output.schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let types = output
            .schema
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let rows = floe_core::text_rows::rows_as_text(&output.batches)
            .map_err(|e| FloeError::DataFusion(e.into()))?;
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "floe"
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slt_files() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
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
        let session = Arc::new(FloeSession::new(&config).await.unwrap());
        let mut runner = sqllogictest::Runner::new(move || {
            let session = Arc::clone(&session);
            async move { Ok::<_, FloeError>(FloeDb { session }) }
        });
        if let Err(err) = runner.run_file_async(&file).await {
            panic!("{}: {err}", file.display());
        }
    }
}
