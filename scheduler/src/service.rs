//! The scheduler's Flight SQL service for clients (`SchedulerControl` for executors, on the same
//! address, is in `control.rs`).
//!
//! A Flight SQL statement (`CommandStatementQuery`) is planned in `GetFlightInfo`: Floe's own
//! statements (DDL, USE, SHOW) run there; queries and DML start as jobs right away, with their
//! rows pumped into a bounded buffer that `DoGet` on the returned ticket drains. The ticket
//! carries the query id, which also answers the `floe.query_progress` action and the Flight
//! `CancelFlightInfo` / Flight SQL `CancelQuery` actions. A client keeps its `USE` choices by
//! sending the same `x-floe-session` header on every call; without it each call gets a fresh
//! session.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, CommandStatementQuery, ProstMessageExt,
    SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus, FlightDescriptor,
    FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
};
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tonic::{Request, Response, Status, Streaming};

use floe_core::{FloeCatalogs, FloeSession};
use floe_proto::status::to_status;
use floe_proto::{QUERY_PROGRESS_ACTION, SESSION_HEADER};

use crate::error::SchedulerError;
use crate::query::{CURRENT_QUERY, DistributedQueryPlanner};
use crate::state::ClusterState;

/// Result batches buffered per query between the running job and the client's `DoGet`.
pub const RESULT_BUFFER_BATCHES: usize = 16;

/// Client sessions kept; the least recently used is dropped beyond this.
pub const MAX_SESSIONS: usize = 1024;

/// Queries whose results have not been fetched yet.
pub const MAX_PENDING_QUERIES: usize = 1024;

/// A query whose results nobody fetched for this long is cancelled and forgotten.
pub const UNFETCHED_QUERY_TIMEOUT: Duration = Duration::from_secs(600);

/// `ActionCancelQueryResult.CancelResult.CANCEL_RESULT_CANCELLED` (its enum is not exported by
/// arrow-flight).
const CANCEL_RESULT_CANCELLED: i32 = 1;

type BatchReceiver = mpsc::Receiver<Result<RecordBatch, datafusion::error::DataFusionError>>;

struct PendingQuery {
    schema: SchemaRef,
    results: Option<BatchReceiver>,
    pump: AbortHandle,
    created: Instant,
}

struct SessionEntry {
    session: Arc<FloeSession>,
    last_used: Instant,
}

/// Serves clients and executors; see the module docs.
pub struct SchedulerService {
    catalogs: Arc<FloeCatalogs>,
    cluster: Arc<ClusterState>,
    planner: Arc<DistributedQueryPlanner>,
    sessions: Mutex<HashMap<String, SessionEntry>>,
    queries: Mutex<HashMap<String, PendingQuery>>,
}

impl std::fmt::Debug for SchedulerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerService").finish_non_exhaustive()
    }
}

impl SchedulerService {
    /// A service over connected catalogs and the cluster.
    pub fn new(
        catalogs: Arc<FloeCatalogs>,
        cluster: Arc<ClusterState>,
        planner: Arc<DistributedQueryPlanner>,
    ) -> Self {
        Self {
            catalogs,
            cluster,
            planner,
            sessions: Mutex::new(HashMap::new()),
            queries: Mutex::new(HashMap::new()),
        }
    }

    fn session<T>(&self, request: &Request<T>) -> Result<Arc<FloeSession>, SchedulerError> {
        let key = request
            .metadata()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let new_session = || {
            FloeSession::with_catalogs(&self.catalogs, Some(Arc::clone(&self.planner) as Arc<_>))
                .map(Arc::new)
        };
        let Some(key) = key else {
            return Ok(new_session()?);
        };
        let mut sessions = self
            .sessions
            .lock()
            .map_err(|_| SchedulerError::Internal("session table poisoned".into()))?;
        if let Some(entry) = sessions.get_mut(&key) {
            entry.last_used = Instant::now();
            return Ok(Arc::clone(&entry.session));
        }
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        let session = new_session()?;
        sessions.insert(
            key,
            SessionEntry {
                session: Arc::clone(&session),
                last_used: Instant::now(),
            },
        );
        Ok(session)
    }

    /// Plans `sql` and starts it; returns the query id and the result schema.
    async fn start_statement(
        &self,
        session: Arc<FloeSession>,
        sql: String,
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
        let mut stream = CURRENT_QUERY
            .scope(query_id.clone(), async move {
                session.execute_statement_stream(&sql).await
            })
            .await?;
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
            },
        );
        Ok((query_id, schema))
    }

    /// Stops a query: its pump, and with it every job it started.
    fn cancel_query(&self, query_id: &str) -> Result<(), SchedulerError> {
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

    fn progress(&self, query_id: &str) -> Result<floe_proto::QueryProgress, SchedulerError> {
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

/// Aborts a query's pump when the stream fetching its results is dropped.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The query id in a statement ticket.
fn query_id_of_ticket(ticket: &[u8]) -> Result<String, Status> {
    let any = arrow_flight::sql::Any::decode(ticket)
        .map_err(|e| Status::invalid_argument(format!("invalid ticket: {e}")))?;
    let statement = any
        .unpack::<TicketStatementQuery>()
        .map_err(|e| Status::invalid_argument(format!("invalid ticket: {e}")))?
        .ok_or_else(|| Status::invalid_argument("ticket is not a Floe statement ticket"))?;
    String::from_utf8(statement.statement_handle.to_vec())
        .map_err(|_| Status::invalid_argument("ticket holds no query id"))
}

fn query_id_of_info(info: Option<&FlightInfo>) -> Result<String, Status> {
    let ticket = info
        .and_then(|info| info.endpoint.first())
        .and_then(|endpoint| endpoint.ticket.as_ref())
        .ok_or_else(|| Status::invalid_argument("FlightInfo without a ticket"))?;
    query_id_of_ticket(&ticket.ticket)
}

type ActionStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::Result, Status>> + Send>>;

fn one_result(body: Vec<u8>) -> ActionStream {
    futures::stream::once(async move { Ok(arrow_flight::Result { body: body.into() }) }).boxed()
}

#[tonic::async_trait]
impl FlightSqlService for SchedulerService {
    type FlightService = SchedulerService;

    async fn do_handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        // No authentication yet: every client is accepted.
        let response = HandshakeResponse {
            protocol_version: 0,
            payload: Default::default(),
        };
        Ok(Response::new(
            futures::stream::once(async { Ok(response) }).boxed(),
        ))
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let session = self.session(&request)?;
        let (query_id, schema) = self.start_statement(session, query.query).await?;
        let ticket = TicketStatementQuery {
            statement_handle: query_id.into_bytes().into(),
        };
        let endpoint =
            FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec()));
        let info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| Status::internal(format!("cannot encode result schema: {e}")))?
            .with_endpoint(endpoint)
            .with_descriptor(request.into_inner());
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let query_id = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("ticket holds no query id"))?;
        // Fetching takes the query off the pending list; its pump stops when the fetch stream
        // goes away (a client that disconnects cancels its query).
        let query = {
            let mut queries = self
                .queries
                .lock()
                .map_err(|_| Status::internal("query table poisoned"))?;
            match queries.get(&query_id) {
                None => {
                    return Err(SchedulerError::Unknown {
                        kind: "query",
                        id: query_id,
                    }
                    .into());
                }
                Some(query) if query.results.is_none() => {
                    return Err(Status::failed_precondition(format!(
                        "the results of query `{query_id}` are already being fetched"
                    )));
                }
                Some(_) => queries.remove(&query_id),
            }
        };
        let Some(PendingQuery {
            schema,
            results: Some(receiver),
            pump,
            ..
        }) = query
        else {
            return Err(Status::internal("query entry without results"));
        };
        let pump_guard = AbortOnDrop(pump);
        let batches =
            futures::stream::unfold((receiver, pump_guard), |(mut receiver, guard)| async move {
                receiver
                    .recv()
                    .await
                    .map(|batch| (batch, (receiver, guard)))
            })
            .map_err(|e| FlightError::ExternalError(Box::new(e)));
        let encoded = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(|e| match e {
                FlightError::ExternalError(inner) => to_status(inner.as_ref()),
                other => to_status(&other),
            });
        Ok(Response::new(encoded.boxed()))
    }

    async fn do_action_cancel_query(
        &self,
        query: ActionCancelQueryRequest,
        _request: Request<Action>,
    ) -> Result<ActionCancelQueryResult, Status> {
        let info = FlightInfo::decode(query.info)
            .map_err(|e| Status::invalid_argument(format!("invalid FlightInfo: {e}")))?;
        self.cancel_query(&query_id_of_info(Some(&info))?)?;
        Ok(ActionCancelQueryResult {
            result: CANCEL_RESULT_CANCELLED,
        })
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let action = request.into_inner();
        match action.r#type.as_str() {
            "CancelFlightInfo" => {
                let cancel = CancelFlightInfoRequest::decode(action.body)
                    .map_err(|e| Status::invalid_argument(format!("invalid request: {e}")))?;
                self.cancel_query(&query_id_of_info(cancel.info.as_ref())?)?;
                let result = CancelFlightInfoResult::new(CancelStatus::Cancelled);
                Ok(Response::new(one_result(result.encode_to_vec())))
            }
            QUERY_PROGRESS_ACTION => {
                let query_id = String::from_utf8(action.body.to_vec())
                    .map_err(|_| Status::invalid_argument("query id must be UTF-8"))?;
                let progress = self.progress(&query_id)?;
                Ok(Response::new(one_result(progress.encode_to_vec())))
            }
            other => Err(Status::invalid_argument(format!(
                "unknown action `{other}`"
            ))),
        }
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
