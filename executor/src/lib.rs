//! Floe's executor: runs the tasks a scheduler pushes and serves their shuffle files.
//!
//! One address serves `ExecutorControl` (`core/proto/floe.proto`: launch, cancel, clean up) and
//! Arrow Flight (`do_get` of shuffle files). An executor has no catalog connection: a task
//! carries its plan (datafusion-proto bytes), the files it reads and the storage settings they
//! need. Each task decodes its plan in a fresh DataFusion task context, re-derives the dynamic
//! filters whose producer and consumer both sit in its stage (they do not survive
//! serialization, and none can come from another stage), runs its partition into shuffle
//! files, and reports the files and metrics back. At most `slots` tasks run at once.
//!
//! Each executor works in its own subdirectory of `--work-dir` ([`work_dir`]: marked as Floe's
//! and locked while it runs), which holds one directory per job, removed when the scheduler says
//! the job's results have been read. Start-up removes only the directories of executors that
//! crashed, never anything else in `--work-dir`.
//!
//! Heartbeats list the tasks the executor holds (running, or with a report not yet
//! acknowledged) and count the launches it had accepted then, so the scheduler finds tasks
//! whose report was lost (judging each only by heartbeats built after its launch) and the
//! executor stops tasks the scheduler no longer knows.

pub mod flight;
pub mod join_filters;
mod tasks;
pub mod work_dir;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use floe_proto::executor_control_server::ExecutorControlServer;
use floe_proto::scheduler_control_client::SchedulerControlClient;
use floe_proto::{HeartbeatRequest, RegisterExecutorRequest};
use floe_shuffle::flight::{MAX_GRPC_MESSAGE_BYTES, channel_to};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::transport::server::TcpIncoming;

use crate::flight::ShuffleFlightService;
use crate::tasks::{ControlHandle, TaskRunner};
use crate::work_dir::WorkDir;

pub use crate::tasks::{REPORT_RETRY_MAX_DELAY, REPORT_RETRY_MIN_DELAY};

/// Errors of the executor.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// Binding, connecting or talking to the scheduler.
    #[error("{0}")]
    Transport(String),
    /// The work dir.
    #[error("work dir {path}: {source}")]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Result of executor operations.
pub type Result<T, E = ExecutorError> = std::result::Result<T, E>;

/// How long an executor keeps trying to reach its scheduler at start-up.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);

/// How an executor is started.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// Scheduler `host:port`.
    pub scheduler: String,
    /// Address to serve on (`host:port`; port 0 picks one).
    pub bind: String,
    /// Where the executor creates its own work directory for shuffle files. May be shared
    /// with other executors and other programs: only directories of stopped executors are
    /// ever removed from it.
    pub work_dir: PathBuf,
    /// Tasks run at once; defaults to the number of cores.
    pub slots: Option<usize>,
    /// Executor id; a fresh UUID when absent.
    pub executor_id: Option<String>,
}

/// A running executor.
#[derive(Debug)]
pub struct Executor {
    executor_id: String,
    address: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
    heartbeat: JoinHandle<()>,
    /// Declared last: removed (and unlocked) after the servers have been told to stop.
    work_dir: WorkDir,
}

impl Executor {
    /// Removes crashed executors' directories from the work dir and creates its own, binds,
    /// registers with the scheduler and starts heartbeats.
    pub async fn start(options: ExecutorOptions) -> Result<Self> {
        let executor_id = options
            .executor_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let work_dir = WorkDir::create(&options.work_dir, &executor_id)?;
        let slots = options.slots.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        });
        let listener = tokio::net::TcpListener::bind(&options.bind)
            .await
            .map_err(|e| ExecutorError::Transport(format!("cannot bind {}: {e}", options.bind)))?;
        let address = listener
            .local_addr()
            .map_err(|e| ExecutorError::Transport(e.to_string()))?;
        let scheduler = scheduler_client(&options.scheduler)?;
        let runner = Arc::new(TaskRunner::new(
            executor_id.clone(),
            work_dir.path().to_path_buf(),
            slots,
            scheduler.clone(),
        ));
        let (shutdown, shutdown_signal) = oneshot::channel::<()>();
        let router = tonic::transport::Server::builder()
            .add_service(
                FlightServiceServer::new(ShuffleFlightService::new(work_dir.path().to_path_buf()))
                    .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES),
            )
            .add_service(
                ExecutorControlServer::new(ControlHandle(Arc::clone(&runner)))
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
                log::error!("executor server stopped: {err}");
            }
        });
        let advertised = advertised_address(&options.bind, address);
        let registration = RegisterExecutorRequest {
            executor_id: executor_id.clone(),
            address: advertised,
            slots: slots as u32,
        };
        let interval = register(scheduler.clone(), &registration, &options.scheduler).await?;
        let heartbeat = tokio::spawn(heartbeat_loop(scheduler, registration, interval, runner));
        Ok(Self {
            executor_id,
            address,
            shutdown: Some(shutdown),
            server,
            heartbeat,
            work_dir,
        })
    }

    /// The executor's id.
    pub fn id(&self) -> &str {
        &self.executor_id
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The executor's own work directory, inside the configured work dir.
    pub fn work_dir(&self) -> &std::path::Path {
        self.work_dir.path()
    }

    /// Stops serving.
    pub async fn shutdown(mut self) {
        self.heartbeat.abort();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = (&mut self.server).await;
    }

    /// Serves until the process is stopped.
    pub async fn wait(mut self) {
        let _ = (&mut self.server).await;
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.heartbeat.abort();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// The address other processes should use: the bound port on the bind host (an unspecified
/// bind address is advertised as loopback).
fn advertised_address(bind: &str, bound: SocketAddr) -> String {
    let host = bind.rsplit_once(':').map_or(bind, |(host, _)| host);
    let host = match host {
        "" | "0.0.0.0" | "[::]" => "127.0.0.1",
        other => other,
    };
    format!("{host}:{}", bound.port())
}

fn scheduler_client(address: &str) -> Result<SchedulerControlClient<Channel>> {
    let channel = channel_to(address).map_err(|e| ExecutorError::Transport(e.to_string()))?;
    Ok(SchedulerControlClient::new(channel)
        .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES))
}

/// Registers, retrying while the scheduler is not up yet; returns the heartbeat interval.
async fn register(
    mut client: SchedulerControlClient<Channel>,
    request: &RegisterExecutorRequest,
    scheduler: &str,
) -> Result<Duration> {
    let deadline = tokio::time::Instant::now() + REGISTER_TIMEOUT;
    loop {
        match client.register_executor(request.clone()).await {
            Ok(response) => {
                let millis = response.into_inner().heartbeat_interval_ms.max(100);
                return Ok(Duration::from_millis(millis));
            }
            Err(status) if tokio::time::Instant::now() < deadline => {
                log::debug!(
                    "scheduler {scheduler} not reachable yet: {}",
                    status.message()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(status) => {
                return Err(ExecutorError::Transport(format!(
                    "cannot register with scheduler {scheduler}: {}",
                    status.message()
                )));
            }
        }
    }
}

async fn heartbeat_loop(
    mut client: SchedulerControlClient<Channel>,
    registration: RegisterExecutorRequest,
    interval: Duration,
    runner: Arc<TaskRunner>,
) {
    let mut ticks = tokio::time::interval(interval);
    loop {
        ticks.tick().await;
        let held = runner.held_snapshot();
        let request = HeartbeatRequest {
            executor_id: registration.executor_id.clone(),
            tasks: held.tasks,
            launches_accepted: held.launches_accepted,
        };
        match client.heartbeat(request).await {
            Ok(response) if response.get_ref().reregister => {
                if let Err(err) = client.register_executor(registration.clone()).await {
                    log::warn!("cannot register again: {}", err.message());
                }
            }
            Ok(_) => {}
            Err(status) => log::warn!("heartbeat failed: {}", status.message()),
        }
    }
}
