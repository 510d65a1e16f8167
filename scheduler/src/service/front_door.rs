//! The Flight service the scheduler serves: arrow-flight's Flight SQL dispatch over
//! [`SchedulerService`], plus Flight's `GetSchema`, which that dispatch leaves unimplemented and
//! which clients use to learn a statement's result schema without running it (ADBC's
//! `execute_schema` on a statement it did not prepare).
//!
//! `GetSchema` answers what `GetFlightInfo` would put in its `FlightInfo`, for a statement
//! (planned in the caller's session, nothing run, no ticket filed) or a prepared statement (its
//! dataset schema); other commands get `Unimplemented`.

use std::sync::Arc;

use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::{Any, Command};
use arrow_flight::{
    Action, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, PollInfo, SchemaAsIpc, SchemaResult, Ticket,
};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use floe_proto::status::to_status;

use super::SchedulerService;
use super::sessions::session_key;

/// The scheduler's Flight service; see the module docs.
#[derive(Debug, Clone)]
pub struct FlightSqlFrontDoor(pub Arc<SchedulerService>);

type Inner = SchedulerService;

impl FlightSqlFrontDoor {
    async fn schema_of(&self, request: &Request<FlightDescriptor>) -> Result<SchemaResult, Status> {
        let any = Any::decode(&*request.get_ref().cmd)
            .map_err(|e| Status::invalid_argument(format!("invalid command: {e}")))?;
        let command = Command::try_from(any)
            .map_err(|e| Status::invalid_argument(format!("invalid command: {e}")))?;
        let schema = match command {
            Command::CommandStatementQuery(query) => {
                let session = self.0.session(request)?;
                let prepared = session.prepare(&query.query).await.map_err(|e| to_status(&e))?;
                prepared.result_schema()
            }
            Command::CommandPreparedStatementQuery(query) => {
                let caller = session_key(request);
                let (_, statement, _) = self
                    .0
                    .prepared_run(&query.prepared_statement_handle, caller.as_ref())?;
                statement.result_schema()
            }
            other => {
                return Err(Status::unimplemented(format!(
                    "GetSchema of {}",
                    other.type_url()
                )));
            }
        };
        SchemaResult::try_from(SchemaAsIpc::new(&schema, &IpcWriteOptions::default()))
            .map_err(|e| Status::internal(format!("cannot encode schema: {e}")))
    }
}

#[tonic::async_trait]
impl FlightService for FlightSqlFrontDoor {
    type HandshakeStream = <Inner as FlightService>::HandshakeStream;
    type ListFlightsStream = <Inner as FlightService>::ListFlightsStream;
    type DoGetStream = <Inner as FlightService>::DoGetStream;
    type DoPutStream = <Inner as FlightService>::DoPutStream;
    type DoExchangeStream = <Inner as FlightService>::DoExchangeStream;
    type DoActionStream = <Inner as FlightService>::DoActionStream;
    type ListActionsStream = <Inner as FlightService>::ListActionsStream;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        FlightService::handshake(self.0.as_ref(), request).await
    }

    async fn list_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        FlightService::list_flights(self.0.as_ref(), request).await
    }

    async fn get_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        FlightService::get_flight_info(self.0.as_ref(), request).await
    }

    async fn poll_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        FlightService::poll_flight_info(self.0.as_ref(), request).await
    }

    async fn get_schema(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        Ok(Response::new(self.schema_of(&request).await?))
    }

    async fn do_get(&self, request: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        FlightService::do_get(self.0.as_ref(), request).await
    }

    async fn do_put(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        FlightService::do_put(self.0.as_ref(), request).await
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        FlightService::do_exchange(self.0.as_ref(), request).await
    }

    async fn do_action(
        &self,
        request: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        FlightService::do_action(self.0.as_ref(), request).await
    }

    async fn list_actions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        FlightService::list_actions(self.0.as_ref(), request).await
    }
}
