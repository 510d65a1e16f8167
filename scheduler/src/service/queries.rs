//! The query table: statements planned by `GetFlightInfo` and waiting for the `DoGet` that runs
//! them, cancellation, and the expiry of tickets nobody redeemed.
//!
//! `GetFlightInfo` only plans (errors in the SQL or its names are its answer); the statement
//! runs when its ticket is fetched, and a ticket is fetched once. So a `FlightInfo` asked for
//! twice, or never fetched, runs nothing: a DDL or DML statement sent as a query changes the
//! tables exactly once, on the `DoGet`. The run is a task (the *pump*) in the query's
//! [`CURRENT_QUERY`] scope, so the jobs it starts carry the query id that cancellation and
//! progress use; it feeds a bounded buffer that the `DoGet` stream drains, and stops when that
//! stream goes away (a client that disconnects cancels its query).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use floe_core::FloeSession;
use floe_core::session::prepared::PreparedStatement;

use super::SchedulerService;
use super::prepared::run_for_each_row;
use crate::error::SchedulerError;
use crate::query::CURRENT_QUERY;

/// Result batches buffered per query between the running job and the client's `DoGet`.
pub const RESULT_BUFFER_BATCHES: usize = 16;

/// Tickets not redeemed yet.
pub const MAX_PENDING_QUERIES: usize = 1024;

/// A ticket nobody redeemed for this long is forgotten.
pub const UNFETCHED_QUERY_TIMEOUT: Duration = Duration::from_secs(600);

/// What a ticket runs: a planned statement in its session, once per bound parameter row.
pub(super) struct PlannedRun {
    pub(super) session: Arc<FloeSession>,
    pub(super) statement: PreparedStatement,
    pub(super) parameters: Vec<Vec<ScalarValue>>,
}

pub(super) struct PendingQuery {
    /// The run, until a `DoGet` takes it; the entry stays while that `DoGet` streams, so that
    /// progress and cancellation find the query before its first job exists.
    run: Option<PlannedRun>,
    /// The task running it, once a `DoGet` started it: cancelling stops it even before (or
    /// without) any job of its own.
    pump: Option<AbortHandle>,
    created: Instant,
    /// The session whose tickets alone may fetch the results (see `sessions.rs`).
    owner: Option<String>,
}

/// A started run: its schema, its batches, and the guard that stops it.
pub(super) struct StartedRun {
    pub(super) schema: SchemaRef,
    pub(super) batches: mpsc::Receiver<Result<RecordBatch, DataFusionError>>,
    pub(super) guard: RunGuard,
}

/// The batches of a started run as a stream. A run that stopped without finishing (cancelled,
/// or its task gone) ends the stream with an error, never as a result silently cut short.
pub(super) fn drain(
    receiver: mpsc::Receiver<Result<RecordBatch, DataFusionError>>,
    guard: RunGuard,
) -> impl futures::Stream<Item = Result<RecordBatch, DataFusionError>> + Send {
    futures::stream::unfold(Some((receiver, guard)), |state| async move {
        let (mut receiver, guard) = state?;
        match receiver.recv().await {
            Some(batch) => Some((batch, Some((receiver, guard)))),
            None if guard.finished.load(Ordering::Acquire) => None,
            None => {
                let stopped = floe_proto::status::CodedError::new(
                    tonic::Code::Cancelled,
                    format!("query `{}` was cancelled", guard.query_id),
                );
                Some((Err(stopped.into_datafusion()), None))
            }
        }
    })
}

/// Held by a `DoGet` stream: stops the run and forgets its query when dropped.
pub(super) struct RunGuard {
    pump: AbortHandle,
    /// Set by the run when it has sent everything it had (its last batch or its error).
    finished: Arc<AtomicBool>,
    queries: Arc<Mutex<HashMap<String, PendingQuery>>>,
    query_id: String,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.pump.abort();
        if let Ok(mut queries) = self.queries.lock() {
            queries.remove(&self.query_id);
        }
    }
}

impl SchedulerService {
    /// Plans `sql` in `session` without running it; returns the query id (the ticket) and the
    /// schema of its result. Its ticket is redeemable only in session `owner`, when there is one.
    pub(super) async fn plan_statement(
        &self,
        session: Arc<FloeSession>,
        sql: &str,
        owner: Option<String>,
    ) -> Result<(String, SchemaRef), SchedulerError> {
        let statement = session.prepare(sql).await?;
        self.register(
            PlannedRun {
                session,
                statement,
                parameters: Vec::new(),
            },
            owner,
        )
    }

    /// Files `run` under a new query id until its ticket is redeemed.
    pub(super) fn register(
        &self,
        run: PlannedRun,
        owner: Option<String>,
    ) -> Result<(String, SchemaRef), SchedulerError> {
        let mut queries = self
            .queries
            .lock()
            .map_err(|_| SchedulerError::Internal("query table poisoned".into()))?;
        if queries.len() >= MAX_PENDING_QUERIES {
            return Err(SchedulerError::Busy(format!(
                "{MAX_PENDING_QUERIES} tickets are waiting to be fetched; fetch or cancel some"
            )));
        }
        let query_id = uuid::Uuid::new_v4().simple().to_string();
        let schema = run.statement.result_schema();
        queries.insert(
            query_id.clone(),
            PendingQuery {
                run: Some(run),
                pump: None,
                created: Instant::now(),
                owner,
            },
        );
        Ok((query_id, schema))
    }

    /// Takes the planned run of `query_id` off the table for the caller in session `caller`.
    pub(super) fn redeem(
        &self,
        query_id: &str,
        caller: Option<&str>,
    ) -> Result<PlannedRun, SchedulerError> {
        let mut queries = self
            .queries
            .lock()
            .map_err(|_| SchedulerError::Internal("query table poisoned".into()))?;
        let unknown = || SchedulerError::Unknown {
            kind: "query",
            id: query_id.to_string(),
        };
        let pending = queries.get_mut(query_id).ok_or_else(unknown)?;
        if pending
            .owner
            .as_deref()
            .is_some_and(|owner| caller != Some(owner))
        {
            return Err(SchedulerError::PermissionDenied(format!(
                "the ticket of query `{query_id}` belongs to another session"
            )));
        }
        let run = pending.run.take().ok_or_else(|| {
            SchedulerError::InvalidRequest(format!(
                "the ticket of query `{query_id}` was already fetched"
            ))
        })?;
        drop(queries);
        if let Some(caller) = caller {
            self.touch_session(caller);
        }
        Ok(run)
    }

    /// Starts `run` as query `query_id`: answers once the statement is planned physically and
    /// its first jobs are submitted, with the schema of its rows, or with its error.
    pub(super) async fn start_run(
        &self,
        query_id: &str,
        run: PlannedRun,
    ) -> Result<StartedRun, DataFusionError> {
        let (schema_sender, schema_receiver) = oneshot::channel();
        let (sender, receiver) = mpsc::channel(RESULT_BUFFER_BATCHES);
        let finished = Arc::new(AtomicBool::new(false));
        let finished_by_run = Arc::clone(&finished);
        let pump = tokio::spawn(CURRENT_QUERY.scope(query_id.to_string(), async move {
            let PlannedRun {
                session,
                statement,
                parameters,
            } = run;
            let mut stream = match run_for_each_row(session, statement, parameters).await {
                Ok(stream) => stream,
                Err(err) => {
                    let _ = schema_sender.send(Err(DataFusionError::from(err)));
                    return;
                }
            };
            if schema_sender.send(Ok(stream.schema())).is_err() {
                return;
            }
            while let Some(batch) = stream.next().await {
                let failed = batch.is_err();
                if sender.send(batch).await.is_err() || failed {
                    break;
                }
            }
            finished_by_run.store(true, Ordering::Release);
        }));
        // From here the query is forgotten and its pump stopped however this call ends: an
        // error, or the `DoGet` going away before the statement was planned.
        let pump = pump.abort_handle();
        if let Ok(mut queries) = self.queries.lock()
            && let Some(pending) = queries.get_mut(query_id)
        {
            pending.pump = Some(pump.clone());
        }
        let guard = RunGuard {
            pump,
            finished,
            queries: Arc::clone(&self.queries),
            query_id: query_id.to_string(),
        };
        match schema_receiver.await {
            Ok(Ok(schema)) => Ok(StartedRun {
                schema,
                batches: receiver,
                guard,
            }),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(DataFusionError::Internal(format!(
                "query `{query_id}` stopped before it was planned"
            ))),
        }
    }

    /// Stops a query: forgets its ticket, stops its run, and cancels every job it started. A
    /// query the scheduler does not know (never, or no longer) is NotFound, as the spec asks.
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
        if let Some(pump) = removed.and_then(|pending| pending.pump) {
            pump.abort();
        }
        for job in jobs {
            self.cluster.cancel_job(&job);
        }
        Ok(())
    }

    /// Cancels every query whose ticket belongs to session `session_id`.
    pub(super) fn cancel_queries_of_session(&self, session_id: &str) {
        let owned: Vec<String> = match self.queries.lock() {
            Ok(queries) => queries
                .iter()
                .filter(|(_, query)| query.owner.as_deref() == Some(session_id))
                .map(|(id, _)| id.clone())
                .collect(),
            Err(_) => return,
        };
        for query_id in owned {
            // Gone in the meantime is as good as cancelled.
            let _ = self.cancel_query(&query_id);
        }
    }

    /// Forgets tickets nobody redeemed within [`UNFETCHED_QUERY_TIMEOUT`].
    pub fn expire_queries(&self) {
        if let Ok(mut queries) = self.queries.lock() {
            queries.retain(|_, query| {
                query.run.is_none() || query.created.elapsed() <= UNFETCHED_QUERY_TIMEOUT
            });
        }
    }

    pub(super) fn progress(
        &self,
        query_id: &str,
    ) -> Result<floe_proto::QueryProgress, SchedulerError> {
        if let Some(progress) = self.cluster.query_progress(query_id) {
            return Ok(progress);
        }
        let waiting = self
            .queries
            .lock()
            .map_err(|_| SchedulerError::Internal("query table poisoned".into()))?
            .contains_key(query_id);
        if waiting {
            // Waiting for its DoGet, or fetched and not yet cut into stages.
            return Ok(floe_proto::QueryProgress {
                query_id: query_id.to_string(),
                finished: false,
                ..Default::default()
            });
        }
        Err(SchedulerError::Unknown {
            kind: "query",
            id: query_id.to_string(),
        })
    }
}
