//! Floe's scheduler: the cluster's front door and brain.
//!
//! Clients speak Arrow Flight SQL to it; executors register with it over `SchedulerControl`
//! (`core/proto/floe.proto`), both on one address. For each statement the scheduler's
//! [`FloeSession`](floe_core::FloeSession) plans with DataFusion; the physical plan is cut
//! into stages at its exchanges ([`planner::StagePlanner`]); [`state::ClusterState`] pushes one
//! task per partition of each runnable stage to executors with free slots, as datafusion-proto
//! bytes; executors write shuffle files and serve them over Arrow Flight; the final stage's
//! files are streamed back to the client through the scheduler ([`query`]).
//!
//! Embedding: [`Scheduler::start`] binds (port 0 picks a free port) and returns the bound
//! address, which is how the `floe` shell runs a scheduler and executors in one process.

pub mod build_sides;
pub mod control;
pub mod error;
pub mod planner;
pub mod query;
pub mod semi_join_reduction;
pub mod service;
pub mod single_task;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use floe_core::{FloeCatalogs, FloeConfig};
use floe_proto::scheduler_control_server::SchedulerControlServer;
use floe_shuffle::flight::{FlightClientPool, MAX_GRPC_MESSAGE_BYTES};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

pub use error::{Result, SchedulerError};

use crate::control::ControlService;
use crate::query::DistributedQueryPlanner;
use crate::service::{FlightSqlFrontDoor, SchedulerService};
use crate::state::{ClusterState, HEARTBEAT_INTERVAL};

/// A running scheduler.
#[derive(Debug)]
pub struct Scheduler {
    address: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
    monitor: JoinHandle<()>,
}

impl Scheduler {
    /// Connects the catalogs of `config`, binds `bind` (`host:port`; port 0 picks one) and
    /// serves until [`Scheduler::shutdown`] or drop.
    pub async fn start(bind: &str, config: &FloeConfig) -> Result<Self> {
        let catalogs = FloeCatalogs::connect(config).await?;
        let cluster = Arc::new(ClusterState::default());
        let planner = Arc::new(DistributedQueryPlanner::new(
            Arc::clone(&cluster),
            Arc::new(FlightClientPool::default()),
        ));
        let flight_sql = Arc::new(SchedulerService::new(
            catalogs,
            Arc::clone(&cluster),
            planner,
        ));
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|e| SchedulerError::Transport(format!("cannot bind {bind}: {e}")))?;
        let address = listener
            .local_addr()
            .map_err(|e| SchedulerError::Transport(e.to_string()))?;
        let (shutdown, shutdown_signal) = oneshot::channel::<()>();
        let router = tonic::transport::Server::builder()
            .layer(crate::service::SessionCookieLayer)
            .add_service(
                FlightServiceServer::new(FlightSqlFrontDoor(Arc::clone(&flight_sql)))
                    .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES),
            )
            .add_service(
                SchedulerControlServer::new(ControlService::new(Arc::clone(&cluster)))
                    .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES),
            );
        let server = tokio::spawn(async move {
            // Small gRPC messages (a launch, a report, one result batch) must not wait for
            // Nagle's algorithm: on loopback that costs a 40 ms delayed ACK per exchange.
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            let stopped = async {
                let _ = shutdown_signal.await;
            };
            if let Err(err) = router.serve_with_incoming_shutdown(incoming, stopped).await {
                log::error!("scheduler server stopped: {err}");
            }
        });
        let monitor = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(HEARTBEAT_INTERVAL);
            loop {
                ticks.tick().await;
                cluster.expire_executors();
                flight_sql.expire_queries();
                flight_sql.expire_sessions();
                flight_sql.expire_prepared();
            }
        });
        Ok(Self {
            address,
            shutdown: Some(shutdown),
            server,
            monitor,
        })
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops serving and waits for the server to finish.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.monitor.abort();
        let _ = (&mut self.server).await;
    }

    /// Serves until the process is stopped.
    pub async fn wait(mut self) {
        let _ = (&mut self.server).await;
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.monitor.abort();
    }
}
