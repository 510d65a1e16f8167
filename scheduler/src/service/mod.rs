//! The scheduler's Flight SQL service for clients (`SchedulerControl` for executors, on the same
//! address, is in `control.rs`).
//!
//! A Flight SQL statement (`CommandStatementQuery`) is planned in `GetFlightInfo` and runs on
//! the `DoGet` of the returned ticket, once (`queries.rs`), its rows pumped into a bounded buffer
//! that the `DoGet` drains. The ticket carries the query id, which also answers the
//! `floe.query_progress` action and the Flight `CancelFlightInfo` / Flight SQL `CancelQuery`
//! actions. A client keeps its `USE` choices in
//! its session (`sessions.rs`: the `arrow_flight_session_id` cookie the server assigns, or the
//! shell's `x-floe-session` header), which Flight's `SetSessionOptions`, `GetSessionOptions` and
//! `CloseSession` actions also reach; a ticket is redeemable only in the session that made it.
//!
//! `front_door.rs` is the Flight service served (this dispatch plus `GetSchema`). Prepared
//! statements and `DoPut` updates are in `prepared.rs`; the metadata commands a BI
//! tool's navigator sends (`GetCatalogs`, `GetTables`, `GetSqlInfo`, ...) in `metadata.rs`, the
//! server's self-description in `sql_info.rs`.

mod front_door;
mod metadata;
mod prepared;
mod queries;
mod sessions;
mod sql_info;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementUpdate,
    DoPutPreparedStatementResult, CommandGetCatalogs,
    CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys,
    CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandGetXdbcTypeInfo, CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus, FlightData,
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
};
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use floe_core::FloeCatalogs;
use floe_proto::status::to_status;
use floe_proto::QUERY_PROGRESS_ACTION;
use floe_proto::flight_sessions::{
    CLOSE_SESSION_ACTION, CloseSessionResult, GET_SESSION_OPTIONS_ACTION,
    SET_SESSION_OPTIONS_ACTION, SetSessionOptionsRequest, close_session_result,
};

use crate::query::DistributedQueryPlanner;
use crate::state::ClusterState;


pub use queries::{MAX_PENDING_QUERIES, RESULT_BUFFER_BATCHES, UNFETCHED_QUERY_TIMEOUT};
pub use front_door::FlightSqlFrontDoor;
pub use prepared::{MAX_BOUND_PARAMETER_ROWS, MAX_PREPARED_STATEMENTS, PREPARED_IDLE_TIMEOUT};
use prepared::PreparedEntry;
use queries::{PendingQuery, PlannedRun, StartedRun};
pub use sessions::{
    MAX_SESSION_ID_BYTES, MAX_SESSIONS, SESSION_IDLE_TIMEOUT, SessionCookieLayer, SessionCookies,
};
use sessions::{SessionEntry, session_key};

/// `ActionCancelQueryResult.CancelResult.CANCEL_RESULT_CANCELLED` (its enum is not exported by
/// arrow-flight).
const CANCEL_RESULT_CANCELLED: i32 = 1;

/// What every `DoGet` answers with.
type DoGetStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send>>;


/// Serves clients and executors; see the module docs.
pub struct SchedulerService {
    catalogs: Arc<FloeCatalogs>,
    cluster: Arc<ClusterState>,
    planner: Arc<DistributedQueryPlanner>,
    sessions: Mutex<HashMap<String, SessionEntry>>,
    queries: Arc<Mutex<HashMap<String, PendingQuery>>>,
    prepared: Mutex<HashMap<String, PreparedEntry>>,
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
            queries: Arc::new(Mutex::new(HashMap::new())),
            prepared: Mutex::new(HashMap::new()),
        }
    }
}

/// The `FlightInfo` of a started query: its schema and one ticket naming it.
fn statement_info(
    query_id: String,
    schema: &arrow::datatypes::Schema,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, Status> {
    let ticket = TicketStatementQuery {
        statement_handle: query_id.into_bytes().into(),
    };
    let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec()));
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("cannot encode result schema: {e}")))?
        .with_endpoint(endpoint)
        .with_descriptor(descriptor))
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
        let owner = session_key(&request).and_then(|key| key.owner());
        let (query_id, schema) = self.plan_statement(session, &query.query, owner).await?;
        Ok(Response::new(statement_info(
            query_id,
            &schema,
            request.into_inner(),
        )?))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let query_id = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("ticket holds no query id"))?;
        let caller = session_key(&request).map(|key| key.id);
        let run = self.redeem(&query_id, caller.as_deref())?;
        let StartedRun {
            schema,
            batches: receiver,
            guard: pump_guard,
        } = self
            .start_run(&query_id, run)
            .await
            .map_err(|e| to_status(&e))?;
        let batches = queries::drain(receiver, pump_guard)
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

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let session = self.session(&request)?;
        let (handle, statement) = self
            .create_prepared(session, session_key(&request), &query.query)
            .await?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into_bytes().into(),
            dataset_schema: prepared::schema_bytes(&statement.dataset_schema())?,
            parameter_schema: prepared::schema_bytes(&statement.parameter_schema())?,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        self.close_prepared(
            &query.prepared_statement_handle,
            session_key(&request).as_ref(),
        )
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let caller = session_key(&request);
        self.bind_parameters(
            &query.prepared_statement_handle,
            caller.as_ref(),
            request.into_inner(),
        )
        .await?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = session_key(&request);
        let (session, statement, parameters) =
            self.prepared_run(&query.prepared_statement_handle, caller.as_ref())?;
        prepared::check_arity(&statement, &parameters)?;
        let owner = caller.and_then(|key| key.owner());
        let run = PlannedRun {
            session,
            statement,
            parameters,
        };
        let (query_id, schema) = self.register(run, owner)?;
        Ok(Response::new(statement_info(
            query_id,
            &schema,
            request.into_inner(),
        )?))
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let caller = session_key(&request);
        self.run_prepared_update(
            &query.prepared_statement_handle,
            caller.as_ref(),
            request.into_inner(),
        )
        .await
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let session = self.session(&request)?;
        self.run_update(session, &command.query).await
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
        match request.get_ref().r#type.as_str() {
            SET_SESSION_OPTIONS_ACTION => {
                let options = SetSessionOptionsRequest::decode(request.get_ref().body.clone())
                    .map_err(|e| Status::invalid_argument(format!("invalid request: {e}")))?;
                let result = self.set_session_options(&request, options).await?;
                return Ok(Response::new(one_result(result.encode_to_vec())));
            }
            GET_SESSION_OPTIONS_ACTION => {
                let result = self.get_session_options(&request)?;
                return Ok(Response::new(one_result(result.encode_to_vec())));
            }
            CLOSE_SESSION_ACTION => {
                self.close_session(&request)?;
                let result = CloseSessionResult {
                    status: close_session_result::Status::Closed as i32,
                };
                return Ok(Response::new(one_result(result.encode_to_vec())));
            }
            _ => {}
        }
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

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        metadata::info_response(query, &schema, request)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let session = self.session(&request)?;
        Ok(Response::new(metadata::catalogs(&session, query)?))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        metadata::info_response(query, &schema, request)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let session = self.session(&request)?;
        Ok(Response::new(metadata::schemas(&session, query).await?))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        metadata::info_response(query, &schema, request)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let session = self.session(&request)?;
        Ok(Response::new(metadata::tables(&session, query).await?))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        metadata::info_response(query, &schema, request)
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        Ok(Response::new(metadata::table_types(query)?))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(sql_info::sql_info()?).schema();
        metadata::info_response(query, &schema, request)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let batch = query.into_builder(sql_info::sql_info()?).build();
        Ok(Response::new(metadata::batch_stream(
            batch.map_err(|e| arrow::error::ArrowError::ExternalError(Box::new(e))),
        )?))
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query
            .clone()
            .into_builder(sql_info::xdbc_type_info()?)
            .schema();
        metadata::info_response(query, &schema, request)
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let batch = query.into_builder(sql_info::xdbc_type_info()?).build();
        Ok(Response::new(metadata::batch_stream(
            batch.map_err(|e| arrow::error::ArrowError::ExternalError(Box::new(e))),
        )?))
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata::info_response(query, &metadata::PRIMARY_KEYS_SCHEMA, request)
    }

    async fn do_get_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata::empty_response(&metadata::PRIMARY_KEYS_SCHEMA)
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata::info_response(query, &metadata::FOREIGN_KEYS_SCHEMA, request)
    }

    async fn do_get_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata::empty_response(&metadata::FOREIGN_KEYS_SCHEMA)
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata::info_response(query, &metadata::FOREIGN_KEYS_SCHEMA, request)
    }

    async fn do_get_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata::empty_response(&metadata::FOREIGN_KEYS_SCHEMA)
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        metadata::info_response(query, &metadata::FOREIGN_KEYS_SCHEMA, request)
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        metadata::empty_response(&metadata::FOREIGN_KEYS_SCHEMA)
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
