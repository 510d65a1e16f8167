//! A `SchedulerControl` proxy between executors and the real scheduler, on a loopback port of
//! its own, that forwards everything but can fail, duplicate or swallow task reports: how a
//! test loses a report on the way without killing anything.
//!
//! Included with `#[path]` by `client/tests/cluster.rs`.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use floe_proto::scheduler_control_client::SchedulerControlClient;
use floe_proto::scheduler_control_server::{SchedulerControl, SchedulerControlServer};
use floe_proto::{
    HeartbeatRequest, HeartbeatResponse, RegisterExecutorRequest, RegisterExecutorResponse,
    TaskStatusAck, TaskStatusReport,
};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};

/// What the proxy does with a task report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportMode {
    /// Passes it on.
    Forward,
    /// Answers `Unavailable` to the first `n` attempts of each report, then passes it on.
    FailFirst(usize),
    /// Passes it on twice.
    Duplicate,
    /// Acknowledges it without passing it on: the report is lost.
    Swallow,
}

#[derive(Clone)]
struct Proxy {
    scheduler: SchedulerControlClient<Channel>,
    mode: Arc<Mutex<ReportMode>>,
    /// Attempts seen per report (by task).
    attempts: Arc<Mutex<HashMap<String, usize>>>,
}

/// A running proxy; its server stops with the test's runtime.
pub struct ReportProxy {
    pub address: String,
    mode: Arc<Mutex<ReportMode>>,
    attempts: Arc<Mutex<HashMap<String, usize>>>,
}

impl ReportProxy {
    /// Listens on a free loopback port and forwards to the scheduler at `scheduler`.
    pub async fn start(scheduler: &str) -> Self {
        let channel = Channel::from_shared(format!("http://{scheduler}"))
            .unwrap()
            .connect_lazy();
        let proxy = Proxy {
            scheduler: SchedulerControlClient::new(channel),
            mode: Arc::new(Mutex::new(ReportMode::Forward)),
            attempts: Arc::default(),
        };
        let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = incoming.local_addr().unwrap().to_string();
        let handle = Self {
            address,
            mode: Arc::clone(&proxy.mode),
            attempts: Arc::clone(&proxy.attempts),
        };
        tokio::spawn(
            Server::builder()
                .add_service(SchedulerControlServer::new(proxy))
                .serve_with_incoming(incoming),
        );
        handle
    }

    /// Changes what happens to the reports from now on.
    pub fn set_mode(&self, mode: ReportMode) {
        *self.mode.lock().unwrap() = mode;
        self.attempts.lock().unwrap().clear();
    }

    /// Report attempts seen since the mode was set, over all reports.
    pub fn attempts(&self) -> usize {
        self.attempts.lock().unwrap().values().sum()
    }
}

impl Proxy {
    async fn forward(&self, report: TaskStatusReport) -> Result<Response<TaskStatusAck>, Status> {
        self.scheduler.clone().report_task_status(report).await
    }
}

#[tonic::async_trait]
impl SchedulerControl for Proxy {
    async fn register_executor(
        &self,
        request: Request<RegisterExecutorRequest>,
    ) -> Result<Response<RegisterExecutorResponse>, Status> {
        self.scheduler
            .clone()
            .register_executor(request.into_inner())
            .await
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        self.scheduler.clone().heartbeat(request.into_inner()).await
    }

    async fn report_task_status(
        &self,
        request: Request<TaskStatusReport>,
    ) -> Result<Response<TaskStatusAck>, Status> {
        let report = request.into_inner();
        let key = format!("{:?}", report.task);
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let seen = attempts.entry(key).or_default();
            *seen += 1;
            *seen
        };
        let mode = *self.mode.lock().unwrap();
        match mode {
            ReportMode::Forward => self.forward(report).await,
            ReportMode::FailFirst(n) if attempt <= n => {
                Err(Status::unavailable("proxy: the scheduler is unreachable"))
            }
            ReportMode::FailFirst(_) => self.forward(report).await,
            ReportMode::Duplicate => {
                self.forward(report.clone()).await?;
                self.forward(report).await
            }
            ReportMode::Swallow => Ok(Response::new(TaskStatusAck {})),
        }
    }
}
