//! Shared helpers for floe-core's integration tests: a fresh on-disk warehouse per test.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use datafusion::physical_plan::{ExecutionPlan, collect};
use floe_core::{FloeConfig, FloeSession};
use floe_iceberg::scan::IcebergScanExec;
use tempfile::TempDir;

pub struct Warehouse {
    pub dir: TempDir,
    pub session: FloeSession,
}

impl Warehouse {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = FloeConfig::local_warehouse(&dir.path().join("warehouse"));
        let session = FloeSession::new(&config).await.unwrap();
        Self { dir, session }
    }

    pub async fn with_config(toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = toml.replace("{dir}", &dir.path().display().to_string());
        let config = FloeConfig::parse(&text, "test floe.toml").unwrap();
        let session = FloeSession::new(&config).await.unwrap();
        Self { dir, session }
    }

    pub async fn run(&self, sql: &str) -> Vec<RecordBatch> {
        let mut outputs = self
            .session
            .execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        outputs.pop().map(|o| o.batches).unwrap_or_default()
    }

    pub async fn text(&self, sql: &str) -> String {
        pretty_format_batches(&self.run(sql).await)
            .unwrap()
            .to_string()
    }

    pub async fn error(&self, sql: &str) -> String {
        match self.session.execute(sql).await {
            Ok(_) => panic!("expected `{sql}` to fail"),
            Err(e) => e.to_string(),
        }
    }

    /// The physical plan of `sql`.
    pub async fn plan(&self, sql: &str) -> Arc<dyn ExecutionPlan> {
        let frame = self.session.context().sql(sql).await.unwrap();
        frame.create_physical_plan().await.unwrap()
    }

    /// Plans `sql`, runs it, and returns the rows plus every Iceberg scan in the plan.
    pub async fn run_with_scans(
        &self,
        sql: &str,
    ) -> (Vec<RecordBatch>, Vec<Arc<dyn ExecutionPlan>>) {
        let ctx = self.session.context();
        let plan = self.plan(sql).await;
        let batches = collect(Arc::clone(&plan), ctx.task_ctx()).await.unwrap();
        let mut scans = Vec::new();
        find_scans(&plan, &mut scans);
        (batches, scans)
    }
}

pub fn find_scans(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<Arc<dyn ExecutionPlan>>) {
    if plan.as_any().downcast_ref::<IcebergScanExec>().is_some() {
        out.push(Arc::clone(plan));
    }
    for child in plan.children() {
        find_scans(child, out);
    }
}

pub fn scan_of(plan: &Arc<dyn ExecutionPlan>) -> &IcebergScanExec {
    plan.as_any().downcast_ref::<IcebergScanExec>().unwrap()
}

/// Sum of a named metric over a plan node.
pub fn metric(plan: &Arc<dyn ExecutionPlan>, name: &str) -> usize {
    plan.metrics()
        .unwrap()
        .sum_by_name(name)
        .map(|v| v.as_usize())
        .unwrap_or(0)
}
pub mod row_delta;
