//! The query table: statements started by `GetFlightInfo`, their results waiting for `DoGet`,
//! cancellation and the expiry of results nobody fetched.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use floe_core::FloeSession;

use super::SchedulerService;
use crate::error::SchedulerError;
use crate::query::CURRENT_QUERY;

/// Result batches buffered per query between the running job and the client's `DoGet`.
pub const RESULT_BUFFER_BATCHES: usize = 16;

/// Queries whose results have not been fetched yet.
pub const MAX_PENDING_QUERIES: usize = 1024;

/// A query whose results nobody fetched for this long is cancelled and forgotten.
pub const UNFETCHED_QUERY_TIMEOUT: Duration = Duration::from_secs(600);


pub(super) type BatchReceiver = mpsc::Receiver<Result<RecordBatch, datafusion::error::DataFusionError>>;

pub(super) struct PendingQuery {
    pub(super) schema: SchemaRef,
    pub(super) results: Option<BatchReceiver>,
    pub(super) pump: AbortHandle,
    created: Instant,
    /// The session whose tickets alone may fetch the results (see `sessions.rs`).
    pub(super) owner: Option<String>,
}

impl SchedulerService {
    /// Plans `sql` and starts it; returns the query id and the result schema. Its ticket is
    /// redeemable only in session `owner`, when there is one.
    pub(super) async fn start_statement(
        &self,
        session: Arc<FloeSession>,
        sql: String,
        owner: Option<String>,
    ) -> Result<(String, SchemaRef), SchedulerError> {
        self.start(owner, async move { session.execute_statement_stream(&sql).await })
            .await
    }

    /// Starts the statement `plan` plans and runs (in the new query's [`CURRENT_QUERY`] scope,
    /// so the jobs it starts are the query's); returns the query id and the result schema.
    pub(super) async fn start(
        &self,
        owner: Option<String>,
        plan: impl Future<Output = floe_core::Result<SendableRecordBatchStream>> + Send,
    ) -> Result<(String, SchemaRef), SchedulerError> {
        {
            let queries = self
                .queries
                .lock()
                .map_err(|_| SchedulerError::Internal("query table poisoned".into()))?;
            if queries.len() >= MAX_PENDING_QUERIES {
                return Err(SchedulerError::Busy(format!(
                    "{MAX_PENDING_QUERIES} queries are waiting to be fetched; fetch or cancel some"
                )));
            }
        }
        let query_id = uuid::Uuid::new_v4().simple().to_string();
        let mut stream = CURRENT_QUERY.scope(query_id.clone(), plan).await?;
        let schema = stream.schema();
        let (sender, receiver) = mpsc::channel(RESULT_BUFFER_BATCHES);
        let pump = tokio::spawn(CURRENT_QUERY.scope(query_id.clone(), async move {
            while let Some(batch) = stream.next().await {
                let failed = batch.is_err();
                if sender.send(batch).await.is_err() || failed {
                    break;
                }
            }
        }));
        let mut queries = self
            .queries
            .lock()
            .map_err(|_| SchedulerError::Internal("query table poisoned".into()))?;
        queries.insert(
            query_id.clone(),
            PendingQuery {
                schema: Arc::clone(&schema),
                results: Some(receiver),
                pump: pump.abort_handle(),
                created: Instant::now(),
                owner,
            },
        );
        Ok((query_id, schema))
    }

    /// Stops a query: its pump, and with it every job it started.
    pub(super) fn cancel_query(&self, query_id: &str) -> Result<(), SchedulerError> {
        let removed = self
            .queries
            .lock()
            .map_err(|_| SchedulerError::Internal("query table poisoned".into()))?
            .remove(query_id);
        let jobs = self.cluster.jobs_of_query(query_id);
        if removed.is_none() && jobs.is_empty() {
            return Err(SchedulerError::Unknown {
                kind: "query",
                id: query_id.to_string(),
            });
        }
        if let Some(query) = removed {
            query.pump.abort();
        }
        for job in jobs {
            self.cluster.cancel_job(&job);
        }
        Ok(())
    }

    /// Cancels queries nobody fetched within [`UNFETCHED_QUERY_TIMEOUT`].
    pub fn expire_queries(&self) {
        let stale: Vec<String> = match self.queries.lock() {
            Ok(queries) => queries
                .iter()
                .filter(|(_, q)| {
                    q.results.is_some() && q.created.elapsed() > UNFETCHED_QUERY_TIMEOUT
                })
                .map(|(id, _)| id.clone())
                .collect(),
            Err(_) => return,
        };
        for query_id in stale {
            let _ = self.cancel_query(&query_id);
        }
    }

    pub(super) fn progress(&self, query_id: &str) -> Result<floe_proto::QueryProgress, SchedulerError> {
        if let Some(progress) = self.cluster.query_progress(query_id) {
            return Ok(progress);
        }
        let known = self
            .queries
            .lock()
            .map_err(|_| SchedulerError::Internal("query table poisoned".into()))?
            .contains_key(query_id);
        if known {
            return Ok(floe_proto::QueryProgress {
                query_id: query_id.to_string(),
                finished: true,
                ..Default::default()
            });
        }
        Err(SchedulerError::Unknown {
            kind: "query",
            id: query_id.to_string(),
        })
    }
}
